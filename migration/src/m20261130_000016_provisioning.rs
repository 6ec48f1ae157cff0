//! Numbers provisioned on the gateway, their health, and sends the gateway failed after
//! accepting them (issue 11):
//! - `instances.provisioned`: Arauto created the instance on the gateway (`POST /instances`
//!   with `create: true`), so deleting it deletes it there too;
//! - `instance_disconnects`: each time a number was heard going `close`, for its health
//!   (disconnects in the last 24 h);
//! - `recipients.failed_after_send`: an `ERROR` receipt arrived after the gateway accepted
//!   the send (the row is `failed` with the receipt's reason); a partial index counts them
//!   per campaign for the stats;
//! - `early_receipts.error`: an `ERROR` receipt that arrived before its send's outcome.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE instances ADD COLUMN provisioned boolean NOT NULL DEFAULT false;
CREATE TABLE instance_disconnects (
    instance_id uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL
);
CREATE INDEX instance_disconnects_instance_at_idx ON instance_disconnects (instance_id, at);
ALTER TABLE recipients ADD COLUMN failed_after_send boolean NOT NULL DEFAULT false;
CREATE INDEX recipients_failed_after_send_idx ON recipients (campaign_id) WHERE failed_after_send;
ALTER TABLE early_receipts ADD COLUMN error text;
"#;

const DOWN: &str = r#"
ALTER TABLE early_receipts DROP COLUMN IF EXISTS error;
DROP INDEX IF EXISTS recipients_failed_after_send_idx;
ALTER TABLE recipients DROP COLUMN IF EXISTS failed_after_send;
DROP TABLE IF EXISTS instance_disconnects;
ALTER TABLE instances DROP COLUMN IF EXISTS provisioned;
"#;

crate::sql_migration!(UP, DOWN);
