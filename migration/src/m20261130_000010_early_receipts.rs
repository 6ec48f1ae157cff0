//! Receipts that are never lost (issue 11): a delivery or read receipt can reach the webhook
//! before the send's outcome (with its message id) is recorded — the gateway posts it while
//! the outcome waits in a batch. Such a receipt is kept here, with its arrival time, and
//! applied as soon as a recipient with that message id appears (when the outcome is
//! recorded, and by every beat tick as a safety net). Kept at most a day.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
CREATE TABLE early_receipts (
    tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    message_id   text NOT NULL,
    delivered_at timestamptz,
    read_at      timestamptz,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, message_id)
);
CREATE INDEX early_receipts_received_idx ON early_receipts (received_at);
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS early_receipts;
"#;

crate::sql_migration!(UP, DOWN);
