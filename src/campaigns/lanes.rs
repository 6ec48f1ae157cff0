//! The lanes of an audience being resolved (table `audience_lanes`, migration 000022): a
//! campaign's preparation is split over ranges of the tenant's contacts in
//! `(created_at, id)` order, each with its own cursor, so several preparers resolve it at
//! once. A lane row is locked (`FOR UPDATE SKIP LOCKED`) by the preparer writing its next
//! chunk; its cursor moves in the chunk's transaction, so a crash resumes each lane from its
//! last committed chunk. The rows go when the preparation finishes.

use sea_orm::{ConnectionTrait, FromQueryResult};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::stmt;
use crate::recipients::ContactRange;

/// One lane: the contacts after `after` up to `until` (sort keys `{"at", "id"}`; `None`:
/// unbounded), numbered from `first_position + 1`; `resolved` written so far.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Lane {
    pub lane: i16,
    pub after: Option<Value>,
    pub until: Option<Value>,
    pub first_position: i32,
    pub resolved: i64,
}

impl Lane {
    /// The contacts still to resolve.
    pub fn range(&self) -> ContactRange<'_> {
        ContactRange {
            after: self.after.as_ref(),
            until: self.until.as_ref(),
        }
    }

    /// The position after which its next chunk is numbered.
    pub fn next_position(&self) -> i64 {
        i64::from(self.first_position) + self.resolved
    }
}

/// Whether campaign `campaign_id` has its lanes set up.
pub async fn exist(db: &impl ConnectionTrait, campaign_id: Uuid) -> Result<bool, sea_orm::DbErr> {
    Ok(crate::db::count(
        db,
        "SELECT count(*) AS n FROM audience_lanes WHERE campaign_id = $1",
        vec![campaign_id.into()],
    )
    .await?
        > 0)
}

/// Sets up the lanes of campaign `campaign_id`: one per range between `bounds` (sort keys
/// in order; no bound, one lane over every contact), lane `k` numbering its recipients
/// from `k × stride + 1`.
pub async fn create(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    bounds: &[Value],
    stride: i64,
) -> Result<(), sea_orm::DbErr> {
    let lanes: Vec<Value> = (0..=bounds.len())
        .map(|k| {
            json!({
                "lane": k,
                "after": k.checked_sub(1).map(|p| &bounds[p]),
                "until": bounds.get(k),
                "first_position": k as i64 * stride,
            })
        })
        .collect();
    db.execute(stmt(
        "INSERT INTO audience_lanes (campaign_id, lane, after, until, first_position) \
         SELECT $1, l.lane, l.after, l.until, l.first_position \
         FROM jsonb_to_recordset($2::jsonb) AS l(lane smallint, after jsonb, until jsonb, first_position integer) \
         ON CONFLICT DO NOTHING",
        vec![campaign_id.into(), Value::Array(lanes).into()],
    ))
    .await?;
    Ok(())
}

/// The first unfinished lane no other preparer holds, locked until the transaction ends;
/// `None` when every lane is finished or held.
pub async fn take(db: &impl ConnectionTrait, campaign_id: Uuid) -> Result<Option<Lane>, sea_orm::DbErr> {
    Lane::find_by_statement(stmt(
        "SELECT lane, after, until, first_position, resolved FROM audience_lanes \
         WHERE campaign_id = $1 AND NOT done ORDER BY lane LIMIT 1 FOR UPDATE SKIP LOCKED",
        vec![campaign_id.into()],
    ))
    .one(db)
    .await
}

/// Lanes of campaign `campaign_id` not finished yet (held by a preparer or not).
pub async fn unfinished(db: &impl ConnectionTrait, campaign_id: Uuid) -> Result<i64, sea_orm::DbErr> {
    crate::db::count(
        db,
        "SELECT count(*) AS n FROM audience_lanes WHERE campaign_id = $1 AND NOT done",
        vec![campaign_id.into()],
    )
    .await
}

/// Records a chunk of lane `lane`: `rows` more recipients, the last contact's sort key
/// `cursor` (unchanged when `None`), finished when `done`.
pub async fn advance(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    lane: i16,
    rows: i64,
    cursor: Option<Value>,
    done: bool,
) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "UPDATE audience_lanes SET resolved = resolved + $3, after = COALESCE($4, after), done = $5 \
         WHERE campaign_id = $1 AND lane = $2",
        vec![campaign_id.into(), lane.into(), rows.into(), cursor.into(), done.into()],
    ))
    .await?;
    Ok(())
}

/// Recipients written so far over all lanes of campaign `campaign_id` (0 without lanes).
pub async fn resolved(db: &impl ConnectionTrait, campaign_id: Uuid) -> Result<i64, sea_orm::DbErr> {
    crate::db::count(
        db,
        "SELECT COALESCE(sum(resolved), 0)::bigint AS n FROM audience_lanes WHERE campaign_id = $1",
        vec![campaign_id.into()],
    )
    .await
}

/// Drops the lanes of a finished preparation.
pub async fn clear(db: &impl ConnectionTrait, campaign_id: Uuid) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "DELETE FROM audience_lanes WHERE campaign_id = $1",
        vec![campaign_id.into()],
    ))
    .await?;
    Ok(())
}
