//! The database layer's shared pieces: the statement helper, the tenant-scoped lookups every
//! tenant-owned query starts from, and housekeeping outside the migrations.

use sea_orm::{ColumnTrait, ConnectionTrait, Database, DbBackend, QueryFilter, Select, Statement};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::Settings;
use crate::entities::TenantOwned;
use crate::error::{AppError, AppResult};

/// A Postgres statement with bound values: how every hand-written query in Arauto is made.
pub fn stmt(sql: impl Into<String>, values: impl IntoIterator<Item = sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
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
