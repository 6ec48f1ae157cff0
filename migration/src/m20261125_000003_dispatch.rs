//! Sending: one row per recipient of a started campaign, one log row per send attempt,
//! and the constraint behind "one active campaign per instance".

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE campaigns ADD COLUMN planned_count bigint NOT NULL DEFAULT 0;
-- One instance (WhatsApp number) runs at most one active campaign at a time.
CREATE UNIQUE INDEX campaigns_one_active_per_instance ON campaigns (instance_id) WHERE status = 'active';
CREATE INDEX campaigns_scheduled_idx ON campaigns (tenant_id, id) WHERE status = 'scheduled';

CREATE TABLE recipients (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    campaign_id  uuid NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    contact_id   uuid REFERENCES contacts(id) ON DELETE SET NULL,
    phone        text NOT NULL,
    name         text NOT NULL DEFAULT '',
    position     integer NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'queued', 'sending', 'sent', 'failed', 'skipped', 'cancelled')),
    reason       text,
    variant      smallint,
    planned_at   timestamptz,
    queued_at    timestamptz,
    sending_at   timestamptz,
    sent_at      timestamptz,
    delivered_at timestamptz,
    read_at      timestamptz,
    replied_at   timestamptz,
    message_id   text,
    -- At most one recipient row per phone per campaign.
    UNIQUE (campaign_id, phone)
);
CREATE INDEX recipients_campaign_status_idx ON recipients (campaign_id, status, position);
CREATE INDEX recipients_tenant_campaign_idx ON recipients (tenant_id, campaign_id, position);
CREATE INDEX recipients_tenant_contact_idx ON recipients (tenant_id, contact_id) WHERE status = 'pending';
CREATE INDEX recipients_message_idx ON recipients (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX recipients_sending_idx ON recipients (sending_at) WHERE status = 'sending';
CREATE INDEX recipients_queued_idx ON recipients (queued_at) WHERE status = 'queued';
CREATE INDEX recipients_campaign_sent_idx ON recipients (campaign_id, sent_at) WHERE sent_at IS NOT NULL;

CREATE TABLE send_logs (
    id            bigserial PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    campaign_id   uuid NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    recipient_id  uuid NOT NULL,
    variant       smallint,
    rendered      text NOT NULL,
    attempts      integer NOT NULL,
    gateway_status integer,
    body_excerpt  text NOT NULL DEFAULT '',
    duration_ms   integer NOT NULL,
    outcome       text NOT NULL,
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX send_logs_tenant_campaign_idx ON send_logs (tenant_id, campaign_id, id DESC);
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS send_logs;
DROP TABLE IF EXISTS recipients;
DROP INDEX IF EXISTS campaigns_scheduled_idx;
DROP INDEX IF EXISTS campaigns_one_active_per_instance;
ALTER TABLE campaigns DROP COLUMN IF EXISTS planned_count;
"#;

crate::sql_migration!(UP, DOWN);
