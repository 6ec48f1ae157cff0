//! A tenant's contact total, kept by the database (migration
//! `m20261130_000009_contact_counts`): each statement that inserts or deletes contacts
//! appends its change per tenant; [`fold`] merges those deltas into one running total per
//! tenant. Reading sums a tenant's rows in one snapshot: the answer always equals counting
//! the tenant's contacts, at the cost of a handful of rows instead of all of them.

use crate::db::stmt;
use sea_orm::{ConnectionTrait, FromQueryResult};
use uuid::Uuid;

/// Tenants folded by one call.
const FOLD_BATCH: i64 = 5_000;

#[derive(FromQueryResult)]
struct Total {
    n: i64,
}

/// How many contacts the tenant has (0 for an unknown tenant).
pub async fn of(db: &impl ConnectionTrait, tenant_id: Uuid) -> Result<u64, sea_orm::DbErr> {
    let found = Total::find_by_statement(stmt(
        "SELECT COALESCE(sum(contacts), 0)::bigint AS n FROM contact_counts WHERE tenant_id = $1",
        vec![tenant_id.into()],
    ))
    .one(db)
    .await?;
    Ok(found.map_or(0, |t| t.n.max(0) as u64))
}

/// Merges the deltas of up to `FOLD_BATCH` tenants into one row each (a tenant whose total
/// is zero keeps no row); returns how many tenants kept a row. Safe beside writers (their
/// uncommitted deltas are left for next time) and beside another fold (rows are taken by
/// exactly one `DELETE`).
pub async fn fold(db: &impl ConnectionTrait) -> Result<u64, sea_orm::DbErr> {
    let done = db
        .execute(stmt(
            "WITH touched AS (SELECT DISTINCT tenant_id FROM contact_counts WHERE NOT folded LIMIT $1), \
             taken AS (DELETE FROM contact_counts c USING touched t WHERE c.tenant_id = t.tenant_id RETURNING c.*) \
             INSERT INTO contact_counts (tenant_id, contacts, folded) \
             SELECT tenant_id, sum(contacts), true FROM taken GROUP BY tenant_id HAVING sum(contacts) <> 0",
            vec![FOLD_BATCH.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}
