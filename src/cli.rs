//! The `arauto` subcommands.

use clap::{Parser, Subcommand};
use sea_orm_migration::MigratorTrait;

use crate::config::Settings;

#[derive(Debug, Parser)]
#[command(name = "arauto", version, about = "Multi-tenant WhatsApp campaign scheduler")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations (creating the database if it is missing).
    Migrate,
    /// Serve the REST API.
    Api,
    /// Migrate, then run every process in this one (today: the API).
    All,
}

pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => migrate(&settings).await,
        Command::Api => api(settings).await,
        Command::All => {
            migrate(&settings).await?;
            api(settings).await
        }
    }
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    crate::db::create_database_if_missing(settings).await?;
    let db = crate::startup::connect_db(settings).await?;
    migration::Migrator::up(&db, None).await?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn api(settings: Settings) -> anyhow::Result<()> {
    let app = crate::startup::Application::build(settings).await?;
    tracing::info!(port = app.port(), "API listening");
    app.run_until_stopped().await?;
    Ok(())
}
