//! The database layer's shared pieces: the statement helper, the tenant-scoped lookups every
//! tenant-owned query starts from, and housekeeping outside the migrations.

use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, DbBackend, FromQueryResult, Order, QueryFilter,
    QueryOrder, Select, Statement,
};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::Settings;
use crate::entities::TenantOwned;
use crate::error::{AppError, AppResult};
use crate::pagination::{Page, Pagination};

/// A Postgres statement with bound values: how every hand-written query in Arauto is made.
pub fn stmt(sql: impl Into<String>, values: impl IntoIterator<Item = sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Turns Postgres's JIT compilation off until the end of transaction `txn` (`SET LOCAL`,
/// so a transaction-pooling PgBouncer carries it with the transaction). For statements whose
/// estimated cost is inflated by a `LIMIT` over a large index walk: Postgres then compiles
/// with inlining and optimisation on every run, which cost a 20,000-recipient audience chunk
/// 100–270 ms of its 400–650 (measured with `EXPLAIN ANALYZE`, Postgres 15).
pub async fn without_jit(txn: &sea_orm::DatabaseTransaction) -> Result<(), sea_orm::DbErr> {
    txn.execute_unprepared("SET LOCAL jit = off").await?;
    Ok(())
}

#[derive(FromQueryResult)]
struct Counted {
    n: i64,
}

/// The one number a statement answers as its column `n` (a `count(*) AS n`, or a data-changing
/// statement's `SELECT count(*) AS n FROM <its CTE>`); 0 when it answers no row.
pub async fn count(
    db: &impl ConnectionTrait,
    sql: impl Into<String>,
    values: Vec<sea_orm::Value>,
) -> Result<i64, sea_orm::DbErr> {
    Ok(Counted::find_by_statement(stmt(sql, values))
        .one(db)
        .await?
        .map_or(0, |c| c.n))
}

/// `count(*)` of the rows `from_where` (a `FROM … WHERE …` clause, with its bound `values`)
/// selects, stopping after `cap + 1` rows: the cost is bounded however many rows match.
/// A result above `cap` means "more than `cap`" (see `api::cursor::Total::bounded`).
pub async fn bounded_count(
    db: &impl ConnectionTrait,
    from_where: &str,
    values: Vec<sea_orm::Value>,
    cap: u64,
) -> Result<u64, sea_orm::DbErr> {
    let sql = format!(
        "SELECT count(*) AS n FROM (SELECT 1 {from_where} LIMIT {}) AS bounded",
        cap + 1
    );
    Ok(Counted::find_by_statement(stmt(sql, values))
        .one(db)
        .await?
        .map_or(0, |c| c.n.max(0) as u64))
}

/// Creates the database named in `database.url` when it does not exist, connecting to the
/// server's `postgres` database to do it.
pub async fn create_database_if_missing(settings: &Settings) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(settings.database.url.expose_secret())
        .map_err(|e| anyhow::anyhow!("configuration error: database.url: {e}"))?;
    let name = url.path().trim_start_matches('/').to_owned();
    if name.is_empty() || name == "postgres" {
        return Ok(());
    }
    let mut admin_url = url.clone();
    admin_url.set_path("/postgres");
    let admin = Database::connect(admin_url.as_str())
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the database server: {e}"))?;
    let exists = admin
        .query_one(stmt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.clone().into()],
        ))
        .await?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        admin.execute_unprepared(&format!("CREATE DATABASE {quoted}")).await?;
        tracing::info!(database = %name, "created database");
    }
    admin.close().await?;
    Ok(())
}

/// Rows of `E` that belong to `tenant_id`: the start of every tenant-owned query.
pub fn scoped<E: TenantOwned>(tenant_id: Uuid) -> Select<E> {
    E::find().filter(E::tenant_column().eq(tenant_id))
}

/// The row with this id if it belongs to the tenant; 404 otherwise (missing and foreign ids
/// are indistinguishable).
pub async fn find_owned<E: TenantOwned>(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
    what: &str,
) -> AppResult<E::Model> {
    scoped::<E>(tenant_id)
        .filter(E::id_column().eq(id))
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found(what))
}

/// One page of `query`'s rows sorted by `by`, then by id (ties broken the same way, so
/// pages never overlap), both in `order`.
pub async fn page_sorted<E: TenantOwned>(
    db: &DatabaseConnection,
    query: Select<E>,
    by: E::Column,
    order: Order,
    page: &Pagination,
) -> Result<Page<E::Model>, sea_orm::DbErr>
where
    E::Model: Sync,
{
    let query = query.order_by(by, order.clone()).order_by(E::id_column(), order);
    page.fetch(db, query).await
}
