//! `arauto rotate-crypto-key`: re-seals every secret stored at rest with the current
//! `crypto.key`, opening it with whichever configured key sealed it (`crypto.key` or one of
//! `crypto.previous_keys`).
//!
//! Each table is walked in id order, `batch` rows per transaction: the rows are read
//! `FOR UPDATE` (an API writing the same row waits, then writes a value sealed with the
//! current key), those sealed with a previous key are re-sealed and written back in one
//! statement, and the transaction commits before the next batch. Idempotent and resumable:
//! a value already sealed with the current key is left as it is, so running the command
//! again (after a crash, or twice) only does what is left. A value no configured key opens
//! is left untouched and reported (by row id, never its content).

use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, TransactionTrait};
use uuid::Uuid;

use super::{Cipher, Resealed};
use crate::db::stmt;

/// A column of secrets sealed with [`Cipher`]: its table, and the column.
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    pub table: &'static str,
    pub column: &'static str,
}

/// Every column Arauto seals: instance api keys and outbound webhook secrets.
pub const SEALED: [SealedColumn; 2] = [
    SealedColumn {
        table: "instances",
        column: "api_key_enc",
    },
    SealedColumn {
        table: "webhook_subscriptions",
        column: "secret_enc",
    },
];

/// What one column's rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotated {
    /// Values that were sealed with a previous key and now are with the current one.
    pub resealed: u64,
    /// Values already sealed with the current key (left as they were).
    pub current: u64,
    /// Rows whose value no configured key opens (left as they were).
    pub unreadable: Vec<Uuid>,
}

#[derive(FromQueryResult)]
struct Row {
    id: Uuid,
    sealed: String,
}

/// Re-seals every value of `col` with the current key, `batch` rows per transaction.
pub async fn rotate(
    db: &DatabaseConnection,
    cipher: &Cipher,
    col: SealedColumn,
    batch: u64,
) -> anyhow::Result<Rotated> {
    let SealedColumn { table, column } = col;
    let mut done = Rotated::default();
    let mut after = Uuid::nil();
    loop {
        let txn = db.begin().await?;
        let rows = Row::find_by_statement(stmt(
            format!("SELECT id, {column} AS sealed FROM {table} WHERE id > $1 ORDER BY id LIMIT $2 FOR UPDATE"),
            [after.into(), (batch.max(1) as i64).into()],
        ))
        .all(&txn)
        .await?;
        let Some(last) = rows.last() else {
            txn.commit().await?;
            return Ok(done);
        };
        after = last.id;
        let mut changed = vec![];
        for row in &rows {
            match cipher.reseal(&row.sealed) {
                Ok(Resealed::Current) => done.current += 1,
                Ok(Resealed::Rotated(sealed)) => changed.push(serde_json::json!({"id": row.id, "sealed": sealed})),
                Err(_) => done.unreadable.push(row.id),
            }
        }
        if !changed.is_empty() {
            done.resealed += changed.len() as u64;
            txn.execute(stmt(
                format!(
                    "UPDATE {table} AS t SET {column} = v.sealed \
                     FROM jsonb_to_recordset($1::jsonb) AS v(id uuid, sealed text) WHERE t.id = v.id"
                ),
                [serde_json::Value::Array(changed).into()],
            ))
            .await?;
        }
        txn.commit().await?;
    }
}

/// Rotates every sealed column; the report per column, in [`SEALED`] order.
pub async fn rotate_all(
    db: &DatabaseConnection,
    cipher: &Cipher,
    batch: u64,
) -> anyhow::Result<Vec<(SealedColumn, Rotated)>> {
    let mut report = vec![];
    for col in SEALED {
        report.push((col, rotate(db, cipher, col, batch).await?));
    }
    Ok(report)
}
