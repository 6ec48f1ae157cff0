//! Writing events to the outbox (`webhook_deliveries`): one row per event and subscription
//! of the tenant that asked for its type, in the statement (or transaction) of the change
//! that caused it, so an event is recorded if and only if its change commits.
//!
//! The cost when nobody listens: the join against `webhook_subscriptions` by its
//! `tenant_id` index — one empty index probe per statement, no extra round trip. That is
//! the one check the send path pays (no cache to go stale between processes).

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::Value;
use uuid::Uuid;

use super::domain::EventType;
use crate::db::stmt;

/// SQL of two common table expressions, to place in a statement's `WITH` list after the
/// one that produced the changed rows: `{name}_events` numbers the events of `source` (a
/// `SELECT` with columns `tenant_id uuid`, `event_type text` — NULL for none — and `data
/// jsonb`) with fresh event ids, and `{name}` writes their deliveries, dated and due at
/// `at` (SQL of a `timestamptz`: a bound parameter, or a column of `source` aliased `s`),
/// to every subscription of the tenant that asked for that type. A data-modifying CTE runs whether or not the statement reads it.
pub fn enqueue_cte(name: &str, source: &str, at: &str) -> String {
    format!(
        "{name}_events AS MATERIALIZED ( \
           SELECT gen_random_uuid() AS event_id, s.tenant_id, s.event_type, s.data, {at} AS at \
           FROM ({source}) s WHERE s.event_type IS NOT NULL), \
         {name} AS ( \
           INSERT INTO webhook_deliveries (id, event_id, subscription_id, tenant_id, event_type, data, created_at, \
             status, attempts, next_attempt_at) \
           SELECT gen_random_uuid(), e.event_id, w.id, e.tenant_id, e.event_type, e.data, e.at, 'pending', 0, e.at \
           FROM {name}_events e JOIN webhook_subscriptions w \
             ON w.tenant_id = e.tenant_id AND w.events @> jsonb_build_array(e.event_type) \
           RETURNING 1)"
    )
}

/// The `data` of a `message.*` or `reply.received` event, as SQL over a recipients row
/// aliased `m` (columns of `recipients`).
pub const MESSAGE_DATA: &str = "jsonb_build_object('campaign_id', m.campaign_id, 'recipient_id', m.id, \
  'contact_id', m.contact_id, 'phone', m.phone, 'variant', m.variant, 'message_id', m.message_id, \
  'status', m.status, 'reason', m.reason, 'outcome_unknown', m.outcome_unknown, 'sent_at', m.sent_at, 'delivered_at', m.delivered_at, \
  'read_at', m.read_at, 'replied_at', m.replied_at)";

/// The `data` of a `campaign.*` event, as SQL over a campaigns row aliased `c`.
pub const CAMPAIGN_DATA: &str = "jsonb_build_object('campaign_id', c.id, 'name', c.name, 'status', c.status, \
  'instance_id', c.instance_id, 'paused_reason', c.paused_reason, 'started_at', c.started_at, \
  'completed_at', c.completed_at)";

/// Writes one event of `tenant_id` (`data` its payload) to the outbox at `at`, for each of
/// the tenant's subscriptions to `event`; for changes made outside a single statement
/// (call it in their transaction).
pub async fn enqueue(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    event: EventType,
    data: Value,
    at: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        format!(
            "WITH {} SELECT 1",
            enqueue_cte(
                "hooks",
                "SELECT $1::uuid AS tenant_id, $2::text AS event_type, $3::jsonb AS data",
                "$4::timestamptz"
            )
        ),
        vec![tenant_id.into(), event.as_str().into(), data.into(), at.into()],
    ))
    .await?;
    Ok(())
}
