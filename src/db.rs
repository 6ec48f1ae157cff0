//! Database housekeeping outside the migrations.

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use secrecy::ExposeSecret;

use crate::config::Settings;

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
