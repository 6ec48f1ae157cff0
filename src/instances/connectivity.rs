//! What Arauto last heard of each instance's connection to WhatsApp, and asking again.
//!
//! The state lives on the instance row (`connection_state`, `state_checked_at`), written by
//! every place that learns it: the state route, `start`/`resume`, the dashboard, the
//! gateway's `connection.update` webhook and the beat's probe of instances with an active
//! campaign. Hearing `close` pauses the instance's active campaigns at once (reason
//! `instance disconnected`), instead of letting workers burn through recipients; the beat
//! plans nothing for an instance known to be `close` or `connecting`.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult};
use std::time::Duration;
use uuid::Uuid;

use crate::crypto::Cipher;
use crate::db::stmt;
use crate::entities::instances;
use crate::gateway::{ConnectionState, GatewayClient, GatewayError, InstanceTarget};

/// The reason a campaign paused because its number is not connected.
pub const DISCONNECTED: &str = "instance disconnected";

/// Instances probed by one round of the beat.
const PROBES_PER_ROUND: u64 = 256;
/// Probes in flight at once.
const PROBE_CONCURRENCY: usize = 32;

pub fn target_of<'a>(i: &'a instances::Model, api_key: &'a str) -> InstanceTarget<'a> {
    InstanceTarget {
        api_url: &i.api_url,
        instance_name: &i.instance_name,
        api_key,
    }
}

/// The stored state, if one was heard.
pub fn stored_state(i: &instances::Model) -> Option<ConnectionState> {
    i.connection_state
}

/// Why a probe has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Gateway(#[from] GatewayError),
    #[error("the gateway did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the stored api key cannot be read")]
    Key(#[source] anyhow::Error),
}

/// Records what was heard of an instance (`None`: asked, no answer: only the time is
/// kept). Going `close` from any other state is a disconnect (kept for the number's
/// health, [`super::health`]); `close` pauses its active and scheduled campaigns.
pub async fn record(
    db: &impl ConnectionTrait,
    instance_id: Uuid,
    state: Option<ConnectionState>,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    // The row is locked before its old state is read (in the UPDATE's own plan): of two
    // `close` heard at once, one is the disconnect.
    db.execute(stmt(
        "WITH u AS (UPDATE instances i SET connection_state = COALESCE($2, i.connection_state), state_checked_at = $3 \
               FROM (SELECT connection_state AS old FROM instances WHERE id = $1 FOR UPDATE) o \
               WHERE i.id = $1 RETURNING i.id, o.old) \
         INSERT INTO instance_disconnects (instance_id, at) \
         SELECT u.id, $3 FROM u WHERE $2 = 'close' AND u.old IS DISTINCT FROM 'close'",
        vec![
            instance_id.into(),
            state.map(ConnectionState::as_str).into(),
            now.into(),
        ],
    ))
    .await?;
    if state == Some(ConnectionState::Close) {
        pause_campaigns_of(db, instance_id).await?;
    }
    Ok(())
}

async fn pause_campaigns_of(db: &impl ConnectionTrait, instance_id: Uuid) -> Result<(), sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Id {
        id: Uuid,
    }
    // A pool goes on over its other numbers: it pauses only when none is left that is not
    // heard `close` (PRODUCT §4).
    let running = Id::find_by_statement(stmt(
        "SELECT c.id FROM campaigns c WHERE $1 = ANY(c.instance_ids) AND c.status IN ('active', 'scheduled') \
           AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = ANY(c.instance_ids) AND i.id <> $1 \
                           AND i.connection_state IS DISTINCT FROM 'close')",
        vec![instance_id.into()],
    ))
    .all(db)
    .await?;
    for c in running {
        crate::campaigns::repo::pause_if_active(db, c.id, DISCONNECTED).await?;
    }
    Ok(())
}

/// Asks the gateway for the instance's state (bounded by `limit`) and records the answer.
pub async fn probe(
    db: &DatabaseConnection,
    gateway: &GatewayClient,
    cipher: &Cipher,
    instance: &instances::Model,
    limit: Duration,
    now: DateTime<Utc>,
) -> Result<ConnectionState, ProbeError> {
    let key = cipher.decrypt(&instance.api_key_enc).map_err(ProbeError::Key)?;
    let answer = match tokio::time::timeout(limit, gateway.connection_state(target_of(instance, &key))).await {
        Ok(Ok(state)) => Ok(state),
        Ok(Err(e)) => Err(ProbeError::Gateway(e)),
        Err(_) => Err(ProbeError::Timeout(limit)),
    };
    if let Err(e) = record(db, instance.id, answer.as_ref().ok().copied(), now).await {
        tracing::warn!(instance_id = %instance.id, error = %e, "cannot record the instance's state");
    }
    answer
}

/// The beat's round: probes the instances that have an active campaign and were not heard
/// of for `stale_after`, oldest first, a bounded number per round. Returns how many
/// answered.
pub async fn refresh_stale(
    db: &DatabaseConnection,
    gateway: &GatewayClient,
    cipher: &Cipher,
    stale_after: Duration,
    limit: Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    use futures_util::StreamExt;
    let cutoff = now - chrono::Duration::from_std(stale_after)?;
    let stale = instances::Entity::find()
        .from_raw_sql(stmt(
            "SELECT * FROM instances WHERE id IN (SELECT instance_id FROM active_numbers) \
             AND (state_checked_at IS NULL OR state_checked_at < $1) \
             ORDER BY state_checked_at NULLS FIRST LIMIT $2",
            vec![cutoff.into(), (PROBES_PER_ROUND as i64).into()],
        ))
        .all(db)
        .await?;
    // Owned handles per probe: borrowed ones make the future unfit for `tokio::spawn`.
    let answered = futures_util::stream::iter(stale)
        .map(|i| {
            let (db, gateway, cipher) = (db.clone(), gateway.clone(), cipher.clone());
            async move {
                let answer = probe(&db, &gateway, &cipher, &i, limit, now).await;
                if let Err(e) = &answer {
                    tracing::debug!(instance_id = %i.id, error = %e, "instance state probe without answer");
                }
                answer.is_ok()
            }
        })
        .buffer_unordered(PROBE_CONCURRENCY)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    Ok(answered as u64)
}
