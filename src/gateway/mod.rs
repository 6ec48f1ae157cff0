//! The WhatsApp gateway (Evolution API v2, see `EVOLUTION.md`): the HTTP client the workers
//! send through, the parser for the webhooks it posts back, and `arauto sandbox`, an
//! in-process simulator that speaks the same subset and can inject failures.

pub mod client;
pub mod routes;
pub mod sandbox;
pub mod service;
pub mod webhook;

pub use client::{
    ConnectInfo, ConnectionState, CreatedInstance, ErrorClass, GatewayClient, GatewayError, InstanceTarget, MediaType,
    OutgoingMessage, SentMessage,
};
pub use sandbox::{run_sandbox, sandbox_server, SandboxState, SendKind, SendRecord};
pub use webhook::{parse_webhook, receipt_rank, GatewayEvent, ReceiptStatus, WebhookError};
