//! The `arauto` subcommands.

use clap::{Parser, Subcommand};
use sea_orm_migration::MigratorTrait;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::clock::SystemClock;
use crate::config::Settings;
use crate::startup::Application;
use crate::state::AppState;

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
    /// Plan sends every `beat.tick_seconds` (one leader at a time; others stand by).
    Beat,
    /// Send planned messages through the gateway, and deliver outbound webhooks.
    Worker,
    /// Migrate, then run the API, a beat and a worker in this one process.
    All,
    /// A gateway simulator speaking the Evolution API subset, with fault injection.
    Sandbox,
    /// Operator check of the invariants: counts recipients left non-terminal in a finished
    /// or cancelled campaign (exit status 1 when there is any).
    Check,
    /// Operator check of everything Arauto needs: Postgres, Redis, migrations, a leading
    /// beat, each busy instance's gateway, stuck rows (exit status 1 on a problem).
    Doctor,
    /// Re-seal every secret stored at rest (instance api keys, webhook secrets) with the
    /// current `crypto.key`, opening each with `crypto.key` or one of
    /// `crypto.previous_keys`. Idempotent and resumable; exit status 1 when a value opens
    /// with no configured key (it is left as it was and its row named).
    RotateCryptoKey {
        /// Rows re-sealed per transaction.
        #[arg(long, default_value_t = 500)]
        batch_size: u64,
    },
    /// Operator views of campaigns.
    Campaigns {
        #[command(subcommand)]
        command: CampaignsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// One campaign as the engine sees it: status, counts, preparation, next send, send
    /// gate, stuck sends (exit status 1 on a problem).
    Inspect { id: uuid::Uuid },
}

pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => migrate(&settings).await,
        Command::Sandbox => crate::gateway::run_sandbox(&settings.sandbox.host, settings.sandbox.port).await,
        Command::Api => api(settings).await,
        Command::Check => check(&settings).await,
        Command::RotateCryptoKey { batch_size } => rotate_crypto_key(&settings, batch_size).await,
        Command::Doctor => {
            let state = AppState::build(settings, Arc::new(SystemClock)).await?;
            report(crate::ops::doctor(&state, chrono::Utc::now()).await)
        }
        Command::Campaigns {
            command: CampaignsCommand::Inspect { id },
        } => {
            let state = AppState::build(settings, Arc::new(SystemClock)).await?;
            match crate::ops::inspect(&state, id).await? {
                Some(findings) => report(findings),
                None => anyhow::bail!("no campaign {id}"),
            }
        }
        Command::Beat => engine(settings, true, false).await,
        Command::Worker => engine(settings, false, true).await,
        Command::All => {
            migrate(&settings).await?;
            let state = AppState::build(settings.clone(), Arc::new(SystemClock)).await?;
            let app = Application::with_state(state)?;
            tracing::info!(port = app.port(), "API listening");
            let api = tokio::spawn(app.run_until_stopped());
            let engine = tokio::spawn(engine(settings, true, true));
            tokio::select! {
                r = api => r??,
                r = engine => r??,
            }
            Ok(())
        }
    }
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    crate::db::create_database_if_missing(settings).await?;
    let db = crate::state::connect_db(settings).await?;
    migration::Migrator::up(&db, None).await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// Prints the findings; an error (exit status 1) when one is a problem.
fn report(findings: Vec<crate::ops::Finding>) -> anyhow::Result<()> {
    print!("{}", crate::ops::render(&findings));
    let problems = findings.iter().filter(|f| !f.ok).count();
    if problems > 0 {
        anyhow::bail!("{problems} problem(s) found");
    }
    Ok(())
}

async fn check(settings: &Settings) -> anyhow::Result<()> {
    let db = crate::state::connect_db(settings).await?;
    let stranded = crate::recipients::stranded(&db).await?;
    println!("non-terminal recipients in completed or cancelled campaigns: {stranded}");
    if stranded > 0 {
        anyhow::bail!("{stranded} recipients are not terminal although their campaign is");
    }
    Ok(())
}

async fn rotate_crypto_key(settings: &Settings, batch_size: u64) -> anyhow::Result<()> {
    let (Some(key), Some(previous)) = (settings.crypto_key(), settings.crypto_previous_keys()) else {
        anyhow::bail!("crypto.key and crypto.previous_keys must each be the base64 encoding of exactly 32 bytes");
    };
    let cipher = crate::crypto::Cipher::with_previous(&key, &previous);
    let db = crate::state::connect_db(settings).await?;
    let report = crate::crypto::rotation::rotate_all(&db, &cipher, batch_size).await?;
    let mut unreadable = 0;
    for (col, done) in &report {
        println!(
            "{}.{}: {} re-sealed with crypto.key, {} already were, {} unreadable",
            col.table,
            col.column,
            done.resealed,
            done.current,
            done.unreadable.len()
        );
        for id in &done.unreadable {
            println!(
                "  unreadable: {} {id} (no configured key opens it; left as it was)",
                col.table
            );
        }
        unreadable += done.unreadable.len();
    }
    if unreadable > 0 {
        anyhow::bail!("{unreadable} value(s) could not be opened with crypto.key or crypto.previous_keys");
    }
    Ok(())
}

async fn api(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "API listening");
    app.run_until_stopped().await?;
    Ok(())
}

/// Runs a beat and/or a worker until SIGTERM or Ctrl-C, then drains them.
async fn engine(settings: Settings, beat: bool, worker: bool) -> anyhow::Result<()> {
    // `all` serves the metrics on the API's `/metrics`; a lone beat or worker on its own port.
    if let (Some(port), false) = (settings.server.metrics_port, beat && worker) {
        let server = crate::observability::serve(&settings.server.host, port)?;
        tracing::info!(port, "metrics listening");
        tokio::spawn(server);
    }
    let state = AppState::build(settings, Arc::new(SystemClock)).await?;
    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    if beat {
        tasks.spawn(crate::scheduler::Beat::new(&state).run(shutdown.clone()));
    }
    if worker {
        tasks.spawn(
            crate::dispatch::worker::Worker::new(&state)
                .await?
                .run(shutdown.clone()),
        );
        // Outbound webhooks: their own task and HTTP client, never on the send path.
        tasks.spawn(crate::webhooks::delivery::Deliverer::new(&state)?.run(shutdown.clone()));
    }
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: draining");
        signal.cancel();
    });
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
