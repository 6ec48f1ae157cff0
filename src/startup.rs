//! The HTTP server: binds the API over the application state.

use actix_web::{dev::Server, middleware::from_fn, web, App, HttpServer};
use std::{net::TcpListener, sync::Arc};

use crate::clock::SystemClock;
use crate::config::Settings;
use crate::state::AppState;

/// A bound, not yet running API server.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let state = AppState::build(settings, Arc::new(SystemClock)).await?;
        Self::with_state(state)
    }

    pub fn with_state(state: AppState) -> anyhow::Result<Self> {
        let address = format!("{}:{}", state.settings.server.host, state.settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(crate::api::security_headers())
                .wrap(crate::api::cors(&state.settings.server.cors_origins))
                .wrap(from_fn(crate::telemetry::request_span))
                .app_data(state.clone())
                .configure(crate::api::configure)
        })
        .listen(listener)?
        .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
