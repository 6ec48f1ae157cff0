//! Opt-out (PRODUCT §7): the tenant's keywords, how an inbound message is compared with
//! them, and what opting a contact out or back in does.
//!
//! An opt-out applies to the contact (found by its canonical phone, see
//! [`Phone`](super::phone::Phone)) in every campaign of the tenant, whichever of its numbers
//! the message reached: its `pending` and `queued` recipients become `skipped`
//! (`opted_out`) at once, and a worker that claims one anyway does not send it
//! (`recipients::claim`). Opting back in lets future campaigns reach the contact; recipients
//! already skipped stay skipped (terminal, PRODUCT §2.2).

use actix_web::{post, web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::repo::{self, ContactView};
use crate::audit::{self, Event};
use crate::db::find_owned;
use crate::entities::contacts;
use crate::error::{AppError, AppResult, FieldError};
use crate::recipients;
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;
use crate::text;

/// The keywords of a tenant that has not chosen its own.
pub const DEFAULT_KEYWORDS: [&str; 5] = ["SAIR", "PARAR", "STOP", "CANCELAR", "DESCADASTRAR"];
/// At most this many keywords per tenant.
pub const MAX_KEYWORDS: usize = 50;
/// At most this many characters per keyword, as sent (the OpenAPI `maxLength`).
pub const MAX_KEYWORD_CHARS: usize = 30;

/// A text as keywords are compared: without accents or case ([`text::folded_chars`]),
/// without the spaces and punctuation around it, inner runs of whitespace as one space.
/// `" Sáir. "` → `"sair"`; `"Não  quero"` → `"nao quero"`.
pub fn fold(text: &str) -> String {
    let plain: String = text::folded_chars(text).collect();
    plain
        .trim_matches(|c: char| !c.is_alphanumeric())
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A tenant's opt-out keywords: 1 to [`MAX_KEYWORDS`], each 1 to [`MAX_KEYWORD_CHARS`]
/// characters as sent, with a letter or digit, within the text rule ([`text::check`]),
/// distinct once folded ([`fold`]). Kept as the tenant wrote them, trimmed; compared folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutKeywords(Vec<String>);

impl Default for OptOutKeywords {
    fn default() -> Self {
        Self(DEFAULT_KEYWORDS.iter().map(|k| (*k).to_owned()).collect())
    }
}

impl OptOutKeywords {
    /// Validates keywords sent by a client; errors name `field` (the list) or `field[i]`
    /// (one keyword). Repeats (once folded) are dropped, the first kept.
    pub fn parse(raw: Vec<String>, field: &str) -> Result<Self, Vec<FieldError>> {
        if raw.is_empty() || raw.len() > MAX_KEYWORDS {
            return Err(vec![FieldError::new(
                field,
                format!("must have between 1 and {MAX_KEYWORDS} keywords"),
            )]);
        }
        let mut errors = vec![];
        let mut kept: Vec<String> = Vec::with_capacity(raw.len());
        let mut seen = std::collections::HashSet::new();
        for (i, keyword) in raw.iter().enumerate() {
            let problem = if let Err(e) = text::check(keyword, MAX_KEYWORD_CHARS) {
                Some(e.to_string())
            } else if fold(keyword).is_empty() {
                Some("must contain a letter or a digit".to_owned())
            } else {
                None
            };
            let keyword = keyword.trim();
            match problem {
                Some(message) => errors.push(FieldError::new(format!("{field}[{i}]"), message)),
                None if seen.insert(fold(keyword)) => kept.push(keyword.to_owned()),
                None => {}
            }
        }
        if errors.is_empty() {
            Ok(Self(kept))
        } else {
            Err(errors)
        }
    }

    /// The keywords as stored: trusted, but a list that no longer validates (never written
    /// by this code) falls back to the defaults rather than disabling opt-out.
    pub fn from_stored(stored: Vec<String>) -> Self {
        Self::parse(stored, "opt_out_keywords").unwrap_or_default()
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether the whole of `text` is one of the keywords, ignoring case, accents and the
    /// spaces and punctuation around it: `" Sair."` is, `"vou sair amanhã"` is not.
    pub fn matches(&self, text: &str) -> bool {
        let text = fold(text);
        !text.is_empty() && self.0.iter().any(|k| fold(k) == text)
    }
}

/// Where an opt-out came from, for the audit log.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A keyword received on one of the tenant's numbers.
    Inbound { instance_id: Uuid },
    /// A user of the tenant (`PATCH /contacts/{id}` with `opted_out: true`).
    User { user_id: Uuid },
}

/// Opts out the tenant's contact whose phone is `phone` (canonical digits) at `at`, unless
/// it already is: the contact's open recipients in every campaign are skipped, and a first
/// opt-out is audited (`contact.opt_out`, no user, details `{phone, source: "inbound",
/// instance_id}`). One transaction. Returns the contact's id, `None` when the tenant has no
/// contact with that phone.
pub async fn opt_out_phone<C: TransactionTrait>(
    db: &C,
    tenant_id: Uuid,
    phone: &str,
    instance_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<Uuid>, sea_orm::DbErr> {
    let txn = db.begin().await?;
    let Some((contact_id, changed)) = repo::opt_out_by_phone(&txn, tenant_id, phone, at).await? else {
        return Ok(None);
    };
    recipients::skip_opted_out(&txn, tenant_id, contact_id).await?;
    if changed {
        announce_opt_out(&txn, tenant_id, contact_id, phone, Source::Inbound { instance_id }, at).await?;
    }
    txn.commit().await?;
    Ok(Some(contact_id))
}

/// After a contact was opted out in `db`'s transaction: its open recipients are skipped and
/// the change audited (`contact.opt_out`).
pub async fn opted_out(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    contact: &contacts::Model,
    source: Source,
    at: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    recipients::skip_opted_out(db, tenant_id, contact.id).await?;
    announce_opt_out(db, tenant_id, contact.id, &contact.phone, source, at).await
}

/// A first opt-out is audited (`contact.opt_out`) and written to the webhook outbox
/// (`contact.opted_out`, data `{contact_id, phone, opted_out_at, source: "keyword" | "api",
/// instance_id?}`), in `db`'s transaction.
async fn announce_opt_out(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    contact_id: Uuid,
    phone: &str,
    source: Source,
    at: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let (source_name, instance_id) = match source {
        Source::Inbound { instance_id } => ("keyword", Some(instance_id)),
        Source::User { .. } => ("api", None),
    };
    let data = json!({"contact_id": contact_id, "phone": phone, "opted_out_at": at, "source": source_name,
        "instance_id": instance_id});
    crate::webhooks::outbox::enqueue(db, tenant_id, crate::webhooks::EventType::ContactOptedOut, data, at).await?;
    audit_opt_out(db, tenant_id, contact_id, phone, source, at).await
}

async fn audit_opt_out(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    contact_id: Uuid,
    phone: &str,
    source: Source,
    at: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let (user, details) = match source {
        Source::Inbound { instance_id } => (
            None,
            json!({"phone": phone, "source": "inbound", "instance_id": instance_id}),
        ),
        Source::User { user_id } => (Some(user_id), json!({"phone": phone, "source": "user"})),
    };
    let event = Event::new("contact.opt_out", "contact", contact_id).with(details);
    audit::record(db, tenant_id, user, at, event).await
}

/// After a contact was opted back in by `user_id` in `db`'s transaction: audited
/// (`contact.opt_in`, details `{phone, opted_out_at}` with the opt-out it undid).
pub async fn opted_in(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user_id: Uuid,
    contact: &contacts::Model,
    at: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let details = json!({"phone": contact.phone, "opted_out_at": contact.opted_out_at});
    let event = Event::new("contact.opt_in", "contact", contact.id).with(details);
    audit::record(db, tenant_id, Some(user_id), at, event).await
}

/// Undoes a contact's opt-out: future campaigns reach it again (recipients already skipped
/// stay skipped). Audited when the contact was opted out; answers the contact either way.
/// 404 for another tenant's id.
#[utoipa::path(operation_id = "optInContact", tag = "contacts", params(("id" = Uuid, Path)), responses(
    (status = 200, body = ContactView),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/contacts/{id}/opt-in")]
pub async fn opt_in(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let found = find_owned::<contacts::Entity>(&state.db, user.tenant_id, *id, "contact").await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    if repo::set_opted_out(&txn, user.tenant_id, found.id, None, now).await? {
        opted_in(&txn, user.tenant_id, user.user_id, &found, now).await?;
    }
    txn.commit().await?;
    let view = repo::get(&state.db, user.tenant_id, found.id)
        .await?
        .ok_or_else(|| AppError::not_found("contact"))?;
    Ok(HttpResponse::Ok().json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyword_alone_opts_out_whatever_its_case_accents_and_punctuation() {
        let k = OptOutKeywords::default();
        for text in [
            "SAIR",
            "sair",
            " Sair.",
            "Sáir!!",
            "  pArAr  ",
            "stop 🙏",
            "¡Cancelar!",
            "descadastrar\n",
        ] {
            assert!(k.matches(text), "{text:?}");
        }
    }

    #[test]
    fn a_sentence_containing_a_keyword_does_not_opt_out() {
        let k = OptOutKeywords::default();
        for text in [
            "vou sair amanhã",
            "não quero sair",
            "STOPPED",
            "sair sair",
            "",
            "...",
            "s a i r",
        ] {
            assert!(!k.matches(text), "{text:?}");
        }
    }

    #[test]
    fn a_tenants_own_keywords_replace_the_defaults_and_compare_folded() {
        let k = OptOutKeywords::parse(vec!["Não quero mais".into(), " remover ".into()], "k").unwrap();
        assert_eq!(k.as_slice(), ["Não quero mais", "remover"]);
        assert!(k.matches("nao  QUERO mais."));
        assert!(k.matches("Remover"));
        assert!(!k.matches("sair"));
    }

    #[test]
    fn keyword_lists_are_validated_naming_the_offending_keyword() {
        let field = |r: Result<OptOutKeywords, Vec<FieldError>>| -> Vec<String> {
            r.unwrap_err().into_iter().map(|e| e.field).collect()
        };
        assert_eq!(field(OptOutKeywords::parse(vec![], "k")), ["k"]);
        assert_eq!(field(OptOutKeywords::parse(vec!["x".into(); 51], "k")), ["k"]);
        assert_eq!(
            field(OptOutKeywords::parse(
                vec!["ok".into(), " ".into(), "x".repeat(31), "!!".into(), "a\u{0}b".into()],
                "k"
            )),
            ["k[1]", "k[2]", "k[3]", "k[4]"]
        );
        assert!(OptOutKeywords::parse(vec!["x".repeat(30); 50], "k").is_ok());
    }

    #[test]
    fn repeated_keywords_are_kept_once() {
        let k = OptOutKeywords::parse(vec!["Sair".into(), "SAÍR".into(), "parar".into()], "k").unwrap();
        assert_eq!(k.as_slice(), ["Sair", "parar"]);
    }

    #[test]
    fn folding_drops_accents_case_and_surrounding_punctuation() {
        assert_eq!(fold(" Sáir. "), "sair");
        assert_eq!(fold("Não  quero"), "nao quero");
        assert_eq!(fold("DESCADASTRAR!!!"), "descadastrar");
    }
}
