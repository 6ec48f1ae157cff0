//! What a worker needs to know about a campaign to send its messages, loaded once and
//! cached briefly (a started campaign's messages and schedule never change).

use chrono::NaiveDate;
use sea_orm::{DatabaseConnection, FromQueryResult};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::calendar::{Calendars, Pacing, Schedule, ScheduleSpec};
use crate::campaigns::domain::{Media, MediaKind, Message};
use crate::campaigns::media;
use crate::crypto::Cipher;
use crate::db::stmt;
use crate::gateway::{InstanceTarget, MediaType, OutgoingMessage};
use crate::templating::{self, Template};

pub struct CampaignContext {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub variants: Vec<(Template, Option<Media>)>,
    pub schedule: Schedule,
    pub tenant_holidays: Vec<NaiveDate>,
    /// The gap (ms) the send gate enforces between two of the campaign's sends: its minimum
    /// interval plus the departure margin ([`crate::calendar::guarded_interval_ms`]); 0 when
    /// it sends as fast as it can.
    pub interval_ms: u64,
    /// The numbers it sends from, in order: one, or a pool (PRODUCT §4).
    pub numbers: Vec<NumberTarget>,
}

/// One number of a campaign, as the gateway addresses it, and whether it was last heard
/// disconnected (`close`) when the context was loaded.
pub struct NumberTarget {
    pub id: Uuid,
    pub api_url: String,
    pub instance_name: String,
    pub api_key: String,
    pub closed: bool,
}

impl CampaignContext {
    /// A campaign over several numbers, each paced on its own.
    pub fn is_pool(&self) -> bool {
        self.numbers.len() > 1
    }

    /// Whose pacing a send from `number` counts against: the campaign's, per number in a
    /// pool (PRODUCT §4).
    pub fn pace(&self, number: &NumberTarget) -> super::gate::PaceKey {
        super::gate::PaceKey {
            gate: self.id,
            number: self.is_pool().then_some(number.id),
        }
    }

    /// The number a job names (a pool's choice), else the campaign's first; `None` only for
    /// a campaign without numbers (never stored).
    pub fn number(&self, chosen: Option<Uuid>) -> Option<&NumberTarget> {
        chosen
            .and_then(|id| self.numbers.iter().find(|n| n.id == id))
            .or_else(|| self.numbers.first())
    }

    /// The message of variant `v` with its rendered text.
    pub fn outgoing(&self, variant: usize, text: String) -> OutgoingMessage {
        outgoing(self.variants.get(variant).and_then(|(_, m)| m.clone()), text)
    }
}

/// What goes to the gateway for a rendered `text` with optional `media` (the text is its
/// caption; audio goes as a voice note, without one): campaign variants and one-off
/// messages alike.
pub fn outgoing(media: Option<Media>, text: String) -> OutgoingMessage {
    match media {
        None => OutgoingMessage::Text { text },
        Some(Media {
            kind: MediaKind::Audio,
            url,
            ..
        }) => OutgoingMessage::VoiceNote { url },
        Some(Media {
            kind,
            url,
            file_name,
            mimetype,
        }) => OutgoingMessage::Media {
            mediatype: match kind {
                MediaKind::Image => MediaType::Image,
                MediaKind::Video => MediaType::Video,
                MediaKind::Document => MediaType::Document,
                MediaKind::Audio => MediaType::Audio,
            },
            // Evolution needs both for documents: what the URL answered when the campaign
            // was checked, else what its extension and path say.
            mimetype: mimetype.or_else(|| media::guess_from_url(&url)),
            file_name: file_name.or_else(|| media::file_name_of(&url)),
            url,
            caption: (!text.is_empty()).then_some(text),
        },
    }
}

#[derive(FromQueryResult)]
struct Row {
    id: Uuid,
    tenant_id: Uuid,
    messages: Value,
    schedule: Value,
    pacing: Value,
    numbers: Value,
    holidays: Value,
}

/// A number as loaded with its campaign.
#[derive(serde::Deserialize)]
struct NumberRow {
    id: Uuid,
    api_url: String,
    instance_name: String,
    api_key_enc: String,
    connection_state: Option<String>,
}

impl NumberTarget {
    pub fn target(&self) -> InstanceTarget<'_> {
        InstanceTarget {
            api_url: &self.api_url,
            instance_name: &self.instance_name,
            api_key: &self.api_key,
        }
    }
}

/// How long a loaded context is used: short, so that a tenant holiday added or deleted
/// (or an instance edited) reaches the workers within a few seconds. A holiday that closes
/// a running campaign's window holds its send gate longer than this
/// (`campaigns::lifecycle::hold_for_holiday`), so none leaves in the meantime.
pub const TTL: Duration = Duration::from_secs(5);

/// Contexts by campaign, with when they were loaded.
type Cached = HashMap<Uuid, (Instant, Arc<CampaignContext>)>;

#[derive(Clone)]
pub struct ContextCache {
    db: DatabaseConnection,
    cipher: Cipher,
    calendars: Arc<Calendars>,
    cache: Arc<Mutex<Cached>>,
}

impl ContextCache {
    pub fn new(db: DatabaseConnection, cipher: Cipher, calendars: Arc<Calendars>) -> Self {
        Self {
            db,
            cipher,
            calendars,
            cache: Arc::default(),
        }
    }

    pub fn calendars(&self) -> &Calendars {
        &self.calendars
    }

    /// The campaign's context; `None` if it no longer exists.
    pub async fn get(&self, campaign_id: Uuid) -> anyhow::Result<Option<Arc<CampaignContext>>> {
        if let Some((at, ctx)) = self.lock().get(&campaign_id) {
            if at.elapsed() < TTL {
                return Ok(Some(ctx.clone()));
            }
        }
        let Some(ctx) = self.load(campaign_id).await? else {
            return Ok(None);
        };
        let ctx = Arc::new(ctx);
        self.lock().insert(campaign_id, (Instant::now(), ctx.clone()));
        Ok(Some(ctx))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn load(&self, campaign_id: Uuid) -> anyhow::Result<Option<CampaignContext>> {
        let row = Row::find_by_statement(stmt(
            "SELECT c.id, c.tenant_id, c.messages, c.schedule, c.pacing, \
               COALESCE((SELECT jsonb_agg(jsonb_build_object('id', i.id, 'api_url', i.api_url, 'instance_name', i.instance_name, \
                  'api_key_enc', i.api_key_enc, 'connection_state', i.connection_state) ORDER BY n.k) \
                FROM unnest(c.instance_ids) WITH ORDINALITY AS n(id, k) JOIN instances i ON i.id = n.id), '[]'::jsonb) AS numbers, \
               COALESCE((SELECT jsonb_agg(h.date ORDER BY h.date) FROM holidays h WHERE h.tenant_id = c.tenant_id), '[]'::jsonb) AS holidays \
             FROM campaigns c WHERE c.id = $1",
            [campaign_id.into()],
        ))
        .one(&self.db)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let messages: Vec<Message> = serde_json::from_value(row.messages)?;
        let variants = messages
            .into_iter()
            .map(|m| Ok((templating::parse(&m.text)?, m.media)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let spec: ScheduleSpec = serde_json::from_value(row.schedule)?;
        let schedule = Schedule::parse(spec, &self.calendars)
            .map_err(|e| anyhow::anyhow!("campaign {campaign_id}: stored schedule does not parse: {e:?}"))?;
        let pacing: Pacing = serde_json::from_value(row.pacing)?;
        let numbers: Vec<NumberRow> = serde_json::from_value(row.numbers)?;
        let numbers = numbers
            .into_iter()
            .map(|n| {
                Ok(NumberTarget {
                    id: n.id,
                    api_key: self.cipher.decrypt(&n.api_key_enc)?,
                    api_url: n.api_url,
                    instance_name: n.instance_name,
                    closed: n.connection_state.as_deref() == Some("close"),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(CampaignContext {
            id: row.id,
            tenant_id: row.tenant_id,
            variants,
            schedule,
            tenant_holidays: serde_json::from_value(row.holidays)?,
            interval_ms: pacing.guarded_interval_ms(),
            numbers,
        }))
    }
}
