//! One-off messages (the transactional path): a `messages` row per message, planned,
//! claimed, sent and receipted by the same engine as campaign recipients (its status
//! machine is owned by `src/messages/status.rs`), and the `Idempotency-Key` answers of the
//! message routes, kept 24 h per tenant and key.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
CREATE TABLE messages (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    instance_id uuid NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    phone text NOT NULL,
    text text,
    template_id uuid,
    variables jsonb NOT NULL DEFAULT '{}'::jsonb,
    media jsonb,
    transactional boolean NOT NULL DEFAULT false,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'queued', 'sending', 'sent', 'failed', 'skipped', 'cancelled')),
    reason text,
    outcome_unknown boolean NOT NULL DEFAULT false,
    send_at timestamptz,
    due_at timestamptz NOT NULL,
    planned_at timestamptz,
    queued_at timestamptz,
    sending_at timestamptz,
    sent_at timestamptz,
    delivered_at timestamptz,
    read_at timestamptz,
    replied_at timestamptz,
    message_id text,
    rendered text,
    attempts integer NOT NULL DEFAULT 0,
    gateway_status integer,
    created_at timestamptz NOT NULL,
    CHECK (text IS NOT NULL OR media IS NOT NULL)
);
CREATE INDEX messages_list_idx ON messages (tenant_id, created_at DESC, id DESC);
CREATE INDEX messages_phone_idx ON messages (tenant_id, phone, created_at DESC, id DESC);
CREATE INDEX messages_due_idx ON messages (due_at) WHERE status = 'pending';
CREATE INDEX messages_queued_idx ON messages (queued_at) WHERE status = 'queued';
CREATE INDEX messages_sending_idx ON messages (sending_at) WHERE status = 'sending';
CREATE INDEX messages_gateway_id_idx ON messages (tenant_id, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX messages_reply_idx ON messages (tenant_id, phone, sent_at DESC) WHERE status = 'sent';
CREATE INDEX messages_usage_idx ON messages (instance_id, sent_at);

CREATE TABLE idempotency_keys (
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key text NOT NULL,
    request_hash text NOT NULL,
    status smallint,
    body jsonb,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS idempotency_keys;
DROP TABLE IF EXISTS messages;
"#;

crate::sql_migration!(UP, DOWN);
