//! What a campaign says and how fast: messages, audience, pacing and the status machine.
//! Pure: parsing returns field errors with JSON paths relative to the campaign body.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::calendar::{Pacing, ScheduleSpec};
use crate::error::FieldError;
use crate::templating::{self, Template};
use crate::text::{self, MAX_TEXT};

pub const MAX_VARIANTS: usize = 5;
pub const MAX_AUDIENCE_IDS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Video,
    Document,
    Audio,
}

/// Media by URL; for image, video and document the message text is its caption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Media {
    #[serde(rename = "type")]
    pub kind: MediaKind,
    pub url: String,
    /// The name the recipient sees (documents); by default the URL's last path segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// The file's MIME type (`application/pdf`), sent to the gateway with it: set from the
    /// URL's answer when the campaign is checked, else implied by the URL's extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255)]
    pub mimetype: Option<String>,
}

/// A message variant as clients send it: its own text (and media), or a template's.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    /// Up to 4,096 characters (WhatsApp's limit).
    #[schema(max_length = 4096)]
    pub text: Option<String>,
    pub media: Option<Media>,
    /// Copies the template's text and media into the campaign when it is saved.
    pub template_id: Option<Uuid>,
}

/// A message variant as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    #[schema(max_length = 4096)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
}

/// A campaign's variants as stored in `campaigns.messages` (a JSON array, mapped by
/// sea-orm).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, sea_orm::FromJsonQueryResult)]
#[serde(transparent)]
pub struct Messages(pub Vec<Message>);

/// Who receives the campaign: the union of groups, tags and contacts, deduplicated by phone
/// when the campaign starts. Stored in `campaigns.audience` (JSON, mapped by sea-orm).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, sea_orm::FromJsonQueryResult)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    #[serde(default)]
    pub group_ids: Vec<Uuid>,
    #[serde(default)]
    pub tag_ids: Vec<Uuid>,
    #[serde(default)]
    pub contact_ids: Vec<Uuid>,
    /// Narrows the union to contacts whose date fields match (all filters must), e.g.
    /// birthdays: `[{"field": "aniversario", "matches": "today"}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<DateFilter>,
}

/// Most date filters on an audience.
pub const MAX_FILTERS: usize = 5;

/// A contact date field matched against the campaign's day: the field holds `YYYY-MM-DD`
/// or `DD/MM/YYYY` (the year is ignored); `today` matches day and month on the local date
/// the campaign (or recurring run) starts, in its schedule's time zone; 29 February
/// matches 28 February in years without it. A contact without the field, or with another
/// format, does not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DateFilter {
    /// The contact field's key, e.g. `aniversario`.
    #[schema(max_length = 100)]
    pub field: String,
    pub matches: DateMatch,
}

/// How a [`DateFilter`] matches; only `today` (day and month) for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DateMatch {
    Today,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Black Friday", "instance_id": "0b7e0a5c-3c2f-4c56-9a55-6a1d3f3b2a10", "messages": [{"text": "{{saudacao}}, {{nome}}! {Temos|Preparamos} uma oferta para você."}, {"text": "Oi {{nome|cliente}}, veja a novidade", "media": {"type": "image", "url": "https://example.com/a.png"}}], "audience": {"group_ids": [], "tag_ids": [], "contact_ids": ["4f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f"]}, "schedule": {"mode": "business_hours", "timezone": "America/Sao_Paulo", "calendar": "BR", "days": [1, 2, 3, 4, 5], "windows": [{"start": "09:00", "end": "18:00"}]}, "pacing": {"min_interval_seconds": 20, "max_interval_seconds": 40}}))]
pub struct CampaignRequest {
    #[schema(max_length = 200)]
    pub name: String,
    /// The number the campaign sends from; or give `instance_ids` instead.
    #[serde(default)]
    pub instance_id: Option<Uuid>,
    /// A pool of 1 to 50 numbers the campaign sends from (instead of `instance_id`): its
    /// pacing applies per number, and a recipient last messaged by one of them within
    /// `pool.sticky_days` is sent from it again (PRODUCT §4).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 50)]
    pub instance_ids: Option<Vec<Uuid>>,
    /// 1 to 5 variants, rotated recipient by recipient.
    pub messages: Vec<MessageSpec>,
    pub audience: Audience,
    /// Default: business hours (Mon–Fri 08:00–18:00) in the tenant's time zone, BR calendar.
    pub schedule: Option<ScheduleSpec>,
    /// Default: 20 to 40 seconds between sends.
    pub pacing: Option<PacingSpec>,
    /// Makes the campaign recurring: starting it schedules runs, one per occurrence, in
    /// the schedule's time zone (PRODUCT §8).
    #[serde(default)]
    pub recurrence: Option<super::recurrence::RecurrenceSpec>,
}

/// A change of a draft campaign: anything not given keeps its value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Black Friday 2026", "pacing": {"messages_per_minute": 2}}))]
pub struct UpdateCampaignRequest {
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// Sends from this one number (replaces the pool).
    pub instance_id: Option<Uuid>,
    /// Sends over this pool of 1 to 50 numbers (replaces the number or pool).
    #[schema(min_items = 1, max_items = 50)]
    pub instance_ids: Option<Vec<Uuid>>,
    pub messages: Option<Vec<MessageSpec>>,
    pub audience: Option<Audience>,
    pub schedule: Option<ScheduleSpec>,
    pub pacing: Option<PacingSpec>,
    /// `null` makes the campaign one-off again.
    #[serde(default, deserialize_with = "crate::api::extract::nullable")]
    #[schema(value_type = Option<super::recurrence::RecurrenceSpec>)]
    pub recurrence: Option<Option<super::recurrence::RecurrenceSpec>>,
}

impl UpdateCampaignRequest {
    /// The whole campaign to validate: this change over `current` (the stored one).
    pub fn over(self, current: CampaignRequest) -> CampaignRequest {
        CampaignRequest {
            name: self.name.unwrap_or(current.name),
            // Either field given replaces the numbers; none keeps them.
            instance_id: self.instance_id.or(if self.instance_ids.is_some() {
                None
            } else {
                current.instance_id
            }),
            instance_ids: match (self.instance_id, self.instance_ids) {
                (None, None) => current.instance_ids,
                (_, ids) => ids,
            },
            messages: self.messages.unwrap_or(current.messages),
            audience: self.audience.unwrap_or(current.audience),
            schedule: self.schedule.or(current.schedule),
            pacing: self.pacing.or(current.pacing),
            recurrence: self.recurrence.unwrap_or(current.recurrence),
        }
    }
}

/// Most numbers in a campaign's pool (PRODUCT §4).
pub const MAX_POOL: usize = 50;

/// The campaign's numbers from `instance_id` or `instance_ids` (exactly one of them), in
/// order, checked for shape only (1 to [`MAX_POOL`], no repeats); ownership is the service's.
/// Errors name the field (`instance_ids[2]` for a repeat).
pub fn parse_numbers(instance_id: Option<Uuid>, instance_ids: Option<&[Uuid]>) -> Result<Vec<Uuid>, Vec<FieldError>> {
    match (instance_id, instance_ids) {
        (Some(id), None) => Ok(vec![id]),
        (Some(_), Some(_)) => Err(vec![FieldError::new(
            "instance_ids",
            "give instance_id or instance_ids, not both",
        )]),
        (None, None) => Err(vec![FieldError::new("instance_id", "is required (or instance_ids)")]),
        (None, Some(ids)) => {
            if ids.is_empty() || ids.len() > MAX_POOL {
                return Err(vec![FieldError::new(
                    "instance_ids",
                    format!("must have 1 to {MAX_POOL} instances"),
                )]);
            }
            let repeats: Vec<FieldError> = ids
                .iter()
                .enumerate()
                .filter(|(i, id)| ids[..*i].contains(id))
                .map(|(i, _)| FieldError::new(format!("instance_ids[{i}]"), "repeats an earlier instance"))
                .collect();
            if repeats.is_empty() {
                Ok(ids.to_vec())
            } else {
                Err(repeats)
            }
        }
    }
}

/// Either both intervals (seconds, decimals allowed) or `messages_per_minute`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PacingSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval_seconds: Option<f64>,
    /// Shorthand for both intervals = 60 / n; 1 to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_minute: Option<f64>,
}

/// The pacing a campaign gets when none is given: a safe human pace.
pub const DEFAULT_PACING: Pacing = Pacing {
    min_interval_seconds: 20.0,
    max_interval_seconds: 40.0,
};

const MAX_INTERVAL_SECONDS: f64 = 86_400.0;

pub fn parse_pacing(spec: Option<&PacingSpec>) -> Result<Pacing, Vec<FieldError>> {
    let Some(spec) = spec else {
        return Ok(DEFAULT_PACING);
    };
    let err = |f: &str, m: &str| Err(vec![FieldError::new(format!("pacing.{f}"), m)]);
    match (
        spec.min_interval_seconds,
        spec.max_interval_seconds,
        spec.messages_per_minute,
    ) {
        (None, None, Some(n)) => {
            if !(1.0..=600.0).contains(&n) {
                return err("messages_per_minute", "must be between 1 and 600");
            }
            let gap = 60.0 / n;
            Ok(Pacing {
                min_interval_seconds: gap,
                max_interval_seconds: gap,
            })
        }
        (Some(min), Some(max), None) => {
            if !(0.0..=MAX_INTERVAL_SECONDS).contains(&min) {
                return err("min_interval_seconds", "must be between 0 and 86400");
            }
            if !(0.0..=MAX_INTERVAL_SECONDS).contains(&max) {
                return err("max_interval_seconds", "must be between 0 and 86400");
            }
            if min > max {
                return err("min_interval_seconds", "must not be greater than max_interval_seconds");
            }
            Ok(Pacing {
                min_interval_seconds: min,
                max_interval_seconds: max,
            })
        }
        (_, _, Some(_)) => err(
            "messages_per_minute",
            "give either messages_per_minute or both intervals",
        ),
        (None, _, None) => err("min_interval_seconds", "is required with max_interval_seconds"),
        (Some(_), None, None) => err("max_interval_seconds", "is required with min_interval_seconds"),
    }
}

/// Pacing as stored: always the two intervals.
pub fn pacing_spec(p: &Pacing) -> PacingSpec {
    PacingSpec {
        min_interval_seconds: Some(p.min_interval_seconds),
        max_interval_seconds: Some(p.max_interval_seconds),
        messages_per_minute: None,
    }
}

/// One variant's text and media, checked; returns its parsed template. Fields are named
/// relative to the message (`text`, `media.url`).
pub fn parse_message(m: &Message) -> Result<Template, Vec<FieldError>> {
    let at = |f: &str| f.to_owned();
    let mut errors = vec![];
    if let Err(e) = text::check(&m.text, MAX_TEXT) {
        errors.push(FieldError::new(at("text"), e.to_string()));
    }
    if m.text.trim().is_empty() && m.media.is_none() {
        errors.push(FieldError::new(at("text"), "must not be empty (or give media)"));
    }
    if let Some(media) = &m.media {
        if !is_http_url(&media.url) {
            errors.push(FieldError::new(at("media.url"), "must be an absolute http(s) URL"));
        }
        if let Some(mime) = &media.mimetype {
            let ok = mime.len() <= 255
                && mime.split_once('/').is_some_and(|(a, b)| {
                    !a.is_empty() && !b.is_empty() && mime.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                });
            if !ok {
                errors.push(FieldError::new(
                    at("media.mimetype"),
                    "must be a MIME type like image/png",
                ));
            }
        }
        if let Some(name) = &media.file_name {
            if let Err(e) = text::check(name, 255) {
                errors.push(FieldError::new(at("media.file_name"), e.to_string()));
            }
        }
        if media.kind == MediaKind::Audio && !m.text.trim().is_empty() {
            errors.push(FieldError::new(
                at("text"),
                "audio cannot carry a caption: leave text empty",
            ));
        }
    }
    let template = templating::parse(&m.text).map_err(|e| FieldError::new(at("text"), e.to_string()));
    match template {
        Ok(t) if errors.is_empty() => Ok(t),
        Ok(_) => Err(errors),
        Err(e) => {
            errors.push(e);
            Err(errors)
        }
    }
}

fn is_http_url(raw: &str) -> bool {
    reqwest::Url::parse(raw).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Deduplicated ids, bounded, and at least one id overall.
pub fn parse_audience(a: &Audience) -> Result<Audience, Vec<FieldError>> {
    let mut errors = vec![];
    for (name, ids) in [
        ("group_ids", &a.group_ids),
        ("tag_ids", &a.tag_ids),
        ("contact_ids", &a.contact_ids),
    ] {
        if ids.len() > MAX_AUDIENCE_IDS {
            errors.push(FieldError::new(
                format!("audience.{name}"),
                format!("must have at most {MAX_AUDIENCE_IDS} ids"),
            ));
        }
    }
    if a.filters.len() > MAX_FILTERS {
        errors.push(FieldError::new(
            "audience.filters",
            format!("must have at most {MAX_FILTERS} filters"),
        ));
    }
    for (i, f) in a.filters.iter().enumerate() {
        if f.field.trim().is_empty() || f.field.chars().count() > 100 {
            errors.push(FieldError::new(
                format!("audience.filters[{i}].field"),
                "must be a contact field key of 1 to 100 characters",
            ));
        }
    }
    if a.group_ids.is_empty() && a.tag_ids.is_empty() && a.contact_ids.is_empty() {
        errors.push(FieldError::new(
            "audience",
            "must name at least one group, tag or contact",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    use crate::contacts::domain::dedup;
    Ok(Audience {
        group_ids: dedup(a.group_ids.clone()),
        tag_ids: dedup(a.tag_ids.clone()),
        contact_ids: dedup(a.contact_ids.clone()),
        filters: a.filters.clone(),
    })
}

/// The spintax seed of one recipient of one campaign: a preview and the real send pick the
/// same alternatives.
pub fn recipient_seed(campaign_id: Uuid, contact_id: Uuid) -> u64 {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(campaign_id.as_bytes());
    bytes[16..].copy_from_slice(contact_id.as_bytes());
    templating::seed_from_bytes(&bytes)
}

/// A campaign's status: the column `campaigns.status` (text), mapped by sea-orm.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sea_orm::EnumIter, sea_orm::DeriveActiveEnum,
)]
#[serde(rename_all = "lowercase")]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum CampaignStatus {
    #[sea_orm(string_value = "draft")]
    Draft,
    /// Started; its audience is being resolved into recipients in the background.
    #[sea_orm(string_value = "preparing")]
    Preparing,
    #[sea_orm(string_value = "scheduled")]
    Scheduled,
    #[sea_orm(string_value = "active")]
    Active,
    #[sea_orm(string_value = "paused")]
    Paused,
    #[sea_orm(string_value = "completed")]
    Completed,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

impl CampaignStatus {
    pub const ALL: [CampaignStatus; 7] = [
        Self::Draft,
        Self::Preparing,
        Self::Scheduled,
        Self::Active,
        Self::Paused,
        Self::Completed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Preparing => "preparing",
            Self::Scheduled => "scheduled",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }

    /// `draft → preparing → scheduled → active ⇄ paused → completed`; `cancelled` from any
    /// non-terminal state (a preparing or scheduled campaign may also be paused before it
    /// starts; resuming one whose audience is not resolved yet goes back to `preparing`).
    pub fn can_become(self, next: Self) -> bool {
        use CampaignStatus::*;
        match (self, next) {
            (Draft, Preparing) => true,
            (Preparing, Scheduled | Active | Paused) => true,
            (Scheduled, Active | Paused) => true,
            (Active, Paused | Completed) => true,
            (Paused, Active | Scheduled | Preparing | Completed) => true,
            (from, Cancelled) => !from.is_terminal(),
            _ => false,
        }
    }
}

/// A campaign ready to store: validated against the tenant's data by
/// `super::service::validate`, written by `super::repo`.
pub struct ValidCampaign {
    pub name: String,
    /// The numbers it sends from, in order (1 to 50; one unless it is a pool).
    pub instance_ids: Vec<Uuid>,
    pub messages: Vec<Message>,
    pub audience: Audience,
    pub schedule: ScheduleSpec,
    pub pacing: Pacing,
    pub recurrence: Option<super::recurrence::Recurrence>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> Message {
        Message {
            text: text.into(),
            media: None,
        }
    }

    #[test]
    fn messages_per_minute_is_shorthand_for_both_intervals() {
        let p = parse_pacing(Some(&PacingSpec {
            messages_per_minute: Some(30.0),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!((p.min_interval_seconds, p.max_interval_seconds), (2.0, 2.0));
    }

    #[test]
    fn pacing_needs_min_not_above_max() {
        let e = parse_pacing(Some(&PacingSpec {
            min_interval_seconds: Some(40.0),
            max_interval_seconds: Some(20.0),
            messages_per_minute: None,
        }))
        .unwrap_err();
        assert_eq!(e[0].field, "pacing.min_interval_seconds");
    }

    #[test]
    fn pacing_refuses_mixed_or_out_of_range_forms() {
        for (spec, field) in [
            (
                PacingSpec {
                    messages_per_minute: Some(601.0),
                    ..Default::default()
                },
                "pacing.messages_per_minute",
            ),
            (
                PacingSpec {
                    messages_per_minute: Some(0.5),
                    ..Default::default()
                },
                "pacing.messages_per_minute",
            ),
            (
                PacingSpec {
                    min_interval_seconds: Some(1.0),
                    max_interval_seconds: Some(2.0),
                    messages_per_minute: Some(3.0),
                },
                "pacing.messages_per_minute",
            ),
            (
                PacingSpec {
                    min_interval_seconds: Some(1.0),
                    ..Default::default()
                },
                "pacing.max_interval_seconds",
            ),
            (
                PacingSpec {
                    min_interval_seconds: Some(-1.0),
                    max_interval_seconds: Some(2.0),
                    ..Default::default()
                },
                "pacing.min_interval_seconds",
            ),
        ] {
            assert_eq!(parse_pacing(Some(&spec)).unwrap_err()[0].field, field, "{spec:?}");
        }
    }

    #[test]
    fn no_pacing_means_the_safe_default() {
        assert_eq!(parse_pacing(None).unwrap(), DEFAULT_PACING);
    }

    #[test]
    fn a_text_over_4096_characters_is_refused() {
        let e = parse_message(&msg(&"á".repeat(4097))).unwrap_err();
        assert_eq!(e[0].field, "text");
        assert!(parse_message(&msg(&"á".repeat(4096))).is_ok());
    }

    #[test]
    fn an_unclosed_variable_is_named_with_its_position() {
        let e = parse_message(&msg("Oi {{nome")).unwrap_err();
        assert_eq!(e[0].field, "text");
        assert!(e[0].message.contains('3'), "{}", e[0].message);
    }

    #[test]
    fn media_needs_an_http_url() {
        let m = Message {
            text: "Veja".into(),
            media: Some(Media {
                kind: MediaKind::Image,
                url: "file:///etc/passwd".into(),
                file_name: None,
                mimetype: None,
            }),
        };
        assert_eq!(parse_message(&m).unwrap_err()[0].field, "media.url");
    }

    #[test]
    fn an_empty_audience_is_refused_and_ids_are_deduplicated() {
        assert_eq!(parse_audience(&Audience::default()).unwrap_err()[0].field, "audience");
        let id = Uuid::new_v4();
        let a = parse_audience(&Audience {
            contact_ids: vec![id, id],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(a.contact_ids, [id]);
    }

    #[test]
    fn the_status_machine_allows_only_the_documented_moves() {
        use CampaignStatus::*;
        assert!(Draft.can_become(Preparing));
        assert!(Preparing.can_become(Scheduled) && Preparing.can_become(Active));
        assert!(Preparing.can_become(Paused) && Paused.can_become(Preparing));
        assert!(Scheduled.can_become(Active));
        assert!(Active.can_become(Paused));
        assert!(Paused.can_become(Active));
        assert!(Active.can_become(Completed));
        for s in [Draft, Preparing, Scheduled, Active, Paused] {
            assert!(s.can_become(Cancelled), "{s:?}");
        }
        for s in [Completed, Cancelled] {
            for next in CampaignStatus::ALL {
                assert!(!s.can_become(next), "{s:?} -> {next:?}");
            }
        }
        assert!(!Draft.can_become(Paused));
        assert!(!Draft.can_become(Completed));
        assert!(!Draft.can_become(Active), "a start always resolves the audience first");
        assert!(!Preparing.can_become(Completed));
    }
}
