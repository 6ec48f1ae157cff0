//! Use cases spanning several repositories: validating a campaign against the tenant's
//! data, and previewing a message for a contact.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, TransactionTrait};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

pub use super::domain::ValidCampaign;
use super::domain::{
    pacing_spec, parse_audience, parse_message, parse_numbers, parse_pacing, recipient_seed, Audience, CampaignRequest,
    CampaignStatus, Media, Message, MessageSpec, UpdateCampaignRequest, MAX_VARIANTS,
};
use super::recurrence::Recurrence;
use super::repo;
use crate::audit::{self, Event};
use crate::calendar::{self, Schedule, ScheduleSpec};
use crate::contacts::repo::{foreign_ids, Owned};
use crate::db::{find_owned, stmt};
use crate::entities::{campaigns, contacts, instances, templates};
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;
use crate::templating::{unknown_variables, RenderContext, Template};
use crate::tenancy::auth::AuthUser;

/// Validates everything at once, so the client sees every bad field in one answer.
/// `input` is a create body, or an update merged over the stored campaign.
pub async fn validate(state: &AppState, tenant_id: Uuid, input: CampaignRequest) -> AppResult<ValidCampaign> {
    let db = &state.db;
    let mut errors: Vec<FieldError> = vec![];
    let name = crate::tenancy::domain::parse_name(&input.name, crate::text::MAX_NAME)
        .map_err(|e| errors.push(FieldError::new("name", e)))
        .unwrap_or_default();
    let numbers = match parse_numbers(input.instance_id, input.instance_ids.as_deref()) {
        Ok(ids) => {
            let pool = input.instance_ids.is_some();
            for (i, id) in ids.iter().enumerate() {
                if find_owned::<instances::Entity>(db, tenant_id, *id, "instance")
                    .await
                    .is_err()
                {
                    let field = if pool {
                        format!("instance_ids[{i}]")
                    } else {
                        "instance_id".into()
                    };
                    errors.push(FieldError::new(field, "no such instance"));
                }
            }
            ids
        }
        Err(e) => {
            errors.extend(e);
            vec![]
        }
    };
    let messages = resolve_messages(state, tenant_id, input.messages, &mut errors).await?;
    let audience = match parse_audience(&input.audience) {
        Ok(a) => {
            errors.extend(missing_audience_ids(db, tenant_id, &a, true).await?);
            a
        }
        Err(e) => {
            errors.extend(e);
            Audience::default()
        }
    };
    let schedule = match parse_schedule(state, tenant_id, input.schedule).await? {
        Ok(s) => Some(s),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let pacing = parse_pacing(input.pacing.as_ref()).map_err(|e| errors.extend(e)).ok();
    let recurrence = match input.recurrence.as_ref().map(Recurrence::parse) {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            errors.extend(e.into_iter().map(|e| e.under("recurrence")));
            None
        }
        None => None,
    };
    let mut messages = messages;
    if errors.is_empty() {
        // Only a campaign valid otherwise costs a request per media URL.
        errors.extend(state.media.check_messages(&mut messages).await);
    }
    match (schedule, pacing) {
        (Some(schedule), Some(pacing)) if errors.is_empty() => Ok(ValidCampaign {
            name,
            instance_ids: numbers,
            messages,
            audience,
            schedule: schedule.to_spec(),
            pacing,
            recurrence,
        }),
        _ => Err(AppError::Validation(errors)),
    }
}

/// Templates copied in, each variant checked, unknown variables named.
/// The audience's group and tag ids (and with `contacts`, its contact ids) that are not the
/// tenant's, each a 422 naming it (`audience.group_ids[1]`: "no such group: …").
pub async fn missing_audience_ids(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    a: &Audience,
    contacts: bool,
) -> Result<Vec<FieldError>, sea_orm::DbErr> {
    let mut errors = Vec::new();
    for (table, name, ids) in [
        (Owned::Groups, "audience.group_ids", &a.group_ids),
        (Owned::Tags, "audience.tag_ids", &a.tag_ids),
        (Owned::Contacts, "audience.contact_ids", &a.contact_ids),
    ] {
        if contacts || !matches!(table, Owned::Contacts) {
            errors.extend(foreign_ids(db, tenant_id, table, name, ids).await?);
        }
    }
    Ok(errors)
}

async fn resolve_messages(
    state: &AppState,
    tenant_id: Uuid,
    specs: Vec<MessageSpec>,
    errors: &mut Vec<FieldError>,
) -> AppResult<Vec<Message>> {
    if specs.is_empty() || specs.len() > MAX_VARIANTS {
        errors.push(FieldError::new(
            "messages",
            format!("must have 1 to {MAX_VARIANTS} variants"),
        ));
        return Ok(vec![]);
    }
    let mut messages = Vec::with_capacity(specs.len());
    let mut parsed: Vec<(usize, Template)> = vec![];
    for (i, spec) in specs.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        let message = match (spec.template_id, spec.text) {
            (Some(id), None) if spec.media.is_none() => {
                match find_owned::<templates::Entity>(&state.db, tenant_id, id, "template").await {
                    Ok(t) => Message {
                        text: t.text,
                        media: t.media.and_then(|m| serde_json::from_value::<Media>(m).ok()),
                    },
                    Err(_) => {
                        errors.push(FieldError::new(format!("{at}.template_id"), "no such template"));
                        continue;
                    }
                }
            }
            (Some(_), _) => {
                errors.push(FieldError::new(
                    format!("{at}.template_id"),
                    "give either template_id or text and media",
                ));
                continue;
            }
            (None, text) => Message {
                text: text.unwrap_or_default(),
                media: spec.media,
            },
        };
        match parse_message(&message) {
            Ok(t) => parsed.push((i, t)),
            Err(e) => errors.extend(e.into_iter().map(|e| e.under(&at))),
        }
        messages.push(message);
    }
    let candidates: Vec<(usize, String)> = parsed
        .iter()
        .flat_map(|(i, t)| {
            unknown_variables(t, &|_| false)
                .into_iter()
                .map(move |v| (*i, v.to_owned()))
        })
        .collect();
    if !candidates.is_empty() {
        let known = known_field_keys(&state.db, tenant_id, candidates.iter().map(|(_, v)| v.as_str())).await?;
        for (i, var) in candidates.into_iter().filter(|(_, v)| !known.contains(v)) {
            errors.push(FieldError::new(
                format!("messages[{i}].text"),
                format!("unknown variable {{{{{var}}}}}: not built in and no contact has this field; give a fallback like {{{{{var}|…}}}}"),
            ));
        }
    }
    Ok(messages)
}

/// Which of `keys` are a field key of at least one of the tenant's contacts.
async fn known_field_keys<'a>(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    keys: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Key {
        key: String,
    }
    let keys: Vec<&str> = keys.collect();
    Ok(Key::find_by_statement(stmt(
        "SELECT k AS key FROM jsonb_array_elements_text($2::jsonb) AS k \
         WHERE EXISTS (SELECT 1 FROM contacts c WHERE c.tenant_id = $1 AND c.fields ? k)",
        [tenant_id.into(), json!(keys).into()],
    ))
    .all(db)
    .await?
    .into_iter()
    .map(|k| k.key)
    .collect())
}

/// The schedule (business hours in the tenant's zone when absent), with errors under
/// `schedule`; one that can never open is refused.
async fn parse_schedule(
    state: &AppState,
    tenant_id: Uuid,
    spec: Option<ScheduleSpec>,
) -> AppResult<Result<Schedule, Vec<FieldError>>> {
    let tz = calendar::repo::tenant_timezone(&state.db, tenant_id).await?;
    let mut spec = spec.unwrap_or_else(|| ScheduleSpec {
        mode: "business_hours".into(),
        timezone: None,
        calendar: None,
        start_at: None,
        days: None,
        windows: None,
        skip_holidays: None,
    });
    if spec.timezone.is_none() && spec.mode != "immediate" {
        spec.timezone = Some(tz);
    }
    let schedule = match Schedule::parse(spec, &state.calendars) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e.into_iter().map(|e| e.under("schedule")).collect())),
    };
    let dates = state.holidays.dates(&state.db, tenant_id).await?;
    let lookup = schedule.holiday_lookup(&state.calendars, &dates);
    if calendar::next_open(&schedule, &lookup, state.clock.now()).is_none() {
        return Ok(Err(vec![FieldError::new(
            "schedule",
            "never opens: its days, windows and holidays leave no time to send in the next 3 years",
        )]));
    }
    Ok(Ok(schedule))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewVariant {
    pub index: usize,
    pub text: String,
    pub media: Option<Media>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// The next instant the campaign may send (null if it never will); greeting and weekday
    /// are rendered as of then, in the campaign's time zone.
    pub at: Option<DateTime<Utc>>,
    pub variants: Vec<PreviewVariant>,
}

/// Every variant of campaign `campaign_id` of the tenant rendered for one contact as it
/// would be sent at the next open instant. 404 for another tenant's campaign; 422 (on
/// `contact_id`) for another tenant's contact.
pub async fn preview(state: &AppState, tenant_id: Uuid, campaign_id: Uuid, contact_id: Uuid) -> AppResult<Preview> {
    let campaign = &find_owned::<campaigns::Entity>(&state.db, tenant_id, campaign_id, "campaign").await?;
    let contact = contacts_of(state, tenant_id, contact_id).await?;
    let schedule = Schedule::parse(campaign.schedule.clone(), &state.calendars)
        .map_err(|e| AppError::internal(anyhow::anyhow!("stored schedule no longer parses: {e:?}")))?;
    let dates = state.holidays.dates(&state.db, tenant_id).await?;
    let lookup = schedule.holiday_lookup(&state.calendars, &dates);
    let now = state.clock.now();
    let at = calendar::next_open(&schedule, &lookup, now);
    let local_time = at.unwrap_or(now).with_timezone(&schedule.timezone()).naive_local();
    let ctx = RenderContext {
        name: &contact.name,
        phone: &contact.phone,
        fields: contact.fields.as_object(),
        local_time,
    };
    let seed = recipient_seed(campaign.id, contact.id);
    let variants = campaign
        .messages
        .0
        .iter()
        .enumerate()
        .map(|(index, m)| {
            let template = crate::templating::parse(&m.text).map_err(AppError::internal)?;
            Ok(PreviewVariant {
                index,
                text: template.render(&ctx, seed),
                media: m.media.clone(),
            })
        })
        .collect::<AppResult<_>>()?;
    Ok(Preview { at, variants })
}

async fn contacts_of(state: &AppState, tenant_id: Uuid, id: Uuid) -> AppResult<contacts::Model> {
    find_owned::<contacts::Entity>(&state.db, tenant_id, id, "contact")
        .await
        .map_err(|_| AppError::field("contact_id", "no such contact"))
}

/// 409 (with the current status) unless the campaign is a draft.
fn require_draft(c: &campaigns::Model, action: &str) -> AppResult<()> {
    if c.status == CampaignStatus::Draft {
        Ok(())
    } else {
        Err(AppError::Conflict {
            detail: format!(
                "only a draft campaign can be {action}; this one is {}",
                c.status.as_str()
            ),
            current_status: Some(c.status.as_str().into()),
        })
    }
}

fn stopped_being_draft() -> AppError {
    AppError::conflict("the campaign stopped being a draft")
}

/// The stored definition as a request body (messages as their literal texts).
fn stored_request(c: &campaigns::Model) -> CampaignRequest {
    CampaignRequest {
        name: c.name.clone(),
        instance_id: None,
        instance_ids: Some(c.instance_ids.clone()),
        messages: c
            .messages
            .0
            .iter()
            .cloned()
            .map(|m| MessageSpec {
                text: Some(m.text),
                media: m.media,
                template_id: None,
            })
            .collect(),
        audience: c.audience.clone(),
        schedule: Some(c.schedule.clone()),
        pacing: Some(pacing_spec(&c.pacing)),
        recurrence: c.recurrence.clone(),
    }
}

/// Validates `input` and stores it as a new `draft` of the tenant. 422 with every bad
/// field.
pub async fn create(state: &AppState, tenant_id: Uuid, input: CampaignRequest) -> AppResult<campaigns::Model> {
    let valid = validate(state, tenant_id, input).await?;
    Ok(repo::insert_draft(&state.db, tenant_id, valid, state.clock.now()).await?)
}

/// Applies `change` to draft `id` of the tenant. 404 for another tenant's id; 409 unless it
/// is (still) a draft; 422 with every bad field of the merged campaign.
pub async fn update(
    state: &AppState,
    tenant_id: Uuid,
    id: Uuid,
    change: UpdateCampaignRequest,
) -> AppResult<campaigns::Model> {
    let found = find_owned::<campaigns::Entity>(&state.db, tenant_id, id, "campaign").await?;
    require_draft(&found, "edited")?;
    let input = change.over(stored_request(&found));
    let valid = validate(state, tenant_id, input).await?;
    repo::update_draft(&state.db, found, valid, state.clock.now())
        .await?
        .ok_or_else(stopped_being_draft)
}

/// Deletes draft `id` of the caller's tenant, audited. 404 for another tenant's id; 409
/// unless it is (still) a draft.
pub async fn delete(state: &AppState, by: &AuthUser, id: Uuid) -> AppResult<()> {
    let found = find_owned::<campaigns::Entity>(&state.db, by.tenant_id, id, "campaign").await?;
    require_draft(&found, "deleted")?;
    let txn = state.db.begin().await?;
    if !repo::delete_draft(&txn, found.id).await? {
        return Err(stopped_being_draft());
    }
    let event = Event::new("campaign.delete", "campaign", found.id).with(json!({"name": found.name}));
    audit::record_by(&txn, by, state.clock.now(), event).await?;
    txn.commit().await?;
    Ok(())
}
