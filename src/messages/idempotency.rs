//! `Idempotency-Key` for the message routes: the first answer to a key is kept 24 h per
//! tenant and replayed for the same key and the same request (same status, same body;
//! nothing is sent again); the same key with another request is a 422. The key row is
//! written in the transaction that writes the messages, so concurrent requests with one key
//! wait for the first and then replay it. An answer that wrote nothing (an error) is not
//! kept: the request may be retried with its key.

use actix_web::HttpRequest;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::stmt;
use crate::error::AppError;

/// The request header.
pub const HEADER: &str = "Idempotency-Key";
/// How long a key's first answer is kept.
pub const TTL_HOURS: i64 = 24;
/// Longest key accepted, in characters.
pub const MAX_LEN: usize = 255;

/// The caller's key, if the request has one: 1–255 visible ASCII characters, else a 422
/// naming the header.
pub fn key_of(req: &HttpRequest) -> Result<Option<String>, AppError> {
    let Some(raw) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let key = raw.to_str().ok().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > MAX_LEN || !key.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        return Err(AppError::field(
            HEADER,
            format!("must be 1 to {MAX_LEN} visible ASCII characters"),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// What identifies a request under a key: the route and its body as parsed (key order and
/// whitespace do not matter), hashed.
pub fn fingerprint(route: &str, body: &Value) -> String {
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update([0]);
    h.update(body.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// A kept answer.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Stored {
    pub request_hash: String,
    pub status: Option<i16>,
    pub body: Option<Value>,
}

/// Claims `key` for this request in `txn` (waiting for a concurrent holder to finish).
/// `Ok(None)`: the key is ours (new, or its answer older than 24 h); `Ok(Some(answer))`: the
/// first answer to replay, for the same request; a 422 naming the header for another one.
pub async fn claim(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    key: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<(u16, Value)>, AppError> {
    let fresh = crate::db::count(
        txn,
        "WITH k AS (INSERT INTO idempotency_keys (tenant_id, key, request_hash, created_at) VALUES ($1, $2, $3, $4) \
           ON CONFLICT (tenant_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, status = NULL, body = NULL, \
             created_at = EXCLUDED.created_at \
           WHERE idempotency_keys.created_at < $5 \
           RETURNING 1) SELECT count(*) AS n FROM k",
        vec![
            tenant_id.into(),
            key.into(),
            hash.into(),
            now.into(),
            (now - Duration::hours(TTL_HOURS)).into(),
        ],
    )
    .await?;
    if fresh > 0 {
        return Ok(None);
    }
    let stored = Stored::find_by_statement(stmt(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
        vec![tenant_id.into(), key.into()],
    ))
    .one(txn)
    .await?
    .ok_or_else(|| AppError::internal(anyhow::anyhow!("idempotency key vanished")))?;
    if stored.request_hash != hash {
        return Err(AppError::field(
            HEADER,
            "was already used with a different request in the last 24 hours",
        ));
    }
    match (stored.status, stored.body) {
        (Some(status), Some(body)) => Ok(Some((status as u16, body))),
        _ => Err(AppError::internal(anyhow::anyhow!("idempotency key without an answer"))),
    }
}

/// Keeps the answer to the request that claimed `key` (in the same transaction).
pub async fn keep(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    key: &str,
    status: u16,
    body: &Value,
) -> Result<(), sea_orm::DbErr> {
    txn.execute(stmt(
        "UPDATE idempotency_keys SET status = $3, body = $4 WHERE tenant_id = $1 AND key = $2",
        vec![
            tenant_id.into(),
            key.into(),
            (status as i16).into(),
            body.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Forgets the answers older than 24 h (the beat, once per tick). Returns how many.
pub async fn forget_expired(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u64, sea_orm::DbErr> {
    let done = db
        .execute(stmt(
            "DELETE FROM idempotency_keys WHERE created_at < $1",
            vec![(now - Duration::hours(TTL_HOURS)).into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::fingerprint;
    use serde_json::json;

    #[test]
    fn the_fingerprint_ignores_key_order_but_not_values_or_routes() {
        let a = json!({"phone": "5511987654321", "text": "oi"});
        let b: serde_json::Value = serde_json::from_str(r#"{ "text": "oi",  "phone": "5511987654321" }"#).unwrap();
        assert_eq!(fingerprint("/messages", &a), fingerprint("/messages", &b));
        assert_ne!(fingerprint("/messages", &a), fingerprint("/messages/bulk", &a));
        assert_ne!(
            fingerprint("/messages", &a),
            fingerprint("/messages", &json!({"phone": "5511987654321", "text": "olá"}))
        );
    }
}
