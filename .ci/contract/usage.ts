// A frontend team's first day with the generated client (checked by .ci/contract/run with
// `tsc --strict`): sign up, list contacts reading their fields, create a campaign, read its
// stats, and read a problem's first offending field. `generated/api.d.ts` is written by
// openapi-typescript from the document the API serves.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/api";

type Problem = components["schemas"]["Problem"];
type CampaignStatus = components["schemas"]["CampaignStatus"];
type FieldValue = string | number | boolean | null;

/** The offending field a problem names first (`schedule.windows[0].start`), if any. */
export function firstInvalidField(problem: Problem): string | undefined {
  return problem.errors?.[0]?.field;
}

export async function firstDay(baseUrl: string): Promise<CampaignStatus | undefined> {
  const anonymous = createClient<paths>({ baseUrl });
  const signup = await anonymous.POST("/api/v1/auth/signup", {
    body: { tenant_name: "Loja da Ana", email: "ana@loja.com", password: "correct horse", timezone: "America/Sao_Paulo" },
  });
  if (signup.error) {
    const status: number = signup.error.status;
    console.log(status, firstInvalidField(signup.error));
    return undefined;
  }
  const token: string = signup.data.token;
  const tenantId: string = signup.data.tenant.id;
  const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });

  const contacts = await api.GET("/api/v1/contacts", { params: { query: { q: "ana", page: 1, per_page: 100 } } });
  if (contacts.error) {
    console.log(contacts.error.detail);
    return undefined;
  }
  const total: number = contacts.data.total;
  for (const contact of contacts.data.items) {
    const referredBy: FieldValue | undefined = contact.fields["quem_indicou"];
    const optedOut: string | null | undefined = contact.opted_out_at;
    console.log(tenantId, total, contact.phone, contact.name, referredBy, optedOut);
  }

  const created = await api.POST("/api/v1/campaigns", {
    body: {
      name: "Black Friday",
      instance_id: "0b7e0a5c-3c2f-4c56-9a55-6a1d3f3b2a10",
      messages: [
        { text: "{{saudacao}}, {{nome}}! {Temos|Preparamos} uma oferta para você." },
        { text: "Oi {{nome|cliente}}", media: { type: "image", url: "https://example.com/a.png" } },
      ],
      audience: { group_ids: [], tag_ids: [], contact_ids: contacts.data.items.map((c) => c.id) },
      schedule: { mode: "business_hours", timezone: "America/Sao_Paulo", calendar: "BR-SP" },
      pacing: { min_interval_seconds: 20, max_interval_seconds: 40 },
    },
  });
  if (created.error) {
    // 422: which field, and why.
    console.log(firstInvalidField(created.error), created.error.errors?.[0]?.message);
    return undefined;
  }
  const campaignId: string = created.data.id;

  const started = await api.POST("/api/v1/campaigns/{id}/start", { params: { path: { id: campaignId } } });
  if (started.error) {
    // 409 on a state transition names the campaign's current status.
    const current: string | null | undefined = started.error.current_status;
    console.log(started.error.status, current);
  }

  const stats = await api.GET("/api/v1/campaigns/{id}/stats", { params: { path: { id: campaignId } } });
  if (stats.error) {
    return undefined;
  }
  const sent: number = stats.data.counts.sent;
  const nextSendAt: string | null | undefined = stats.data.next_send_at;
  console.log(sent, stats.data.total, nextSendAt, stats.data.paused_reason);
  return stats.data.status;
}
