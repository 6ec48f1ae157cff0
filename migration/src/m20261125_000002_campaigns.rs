//! Message templates and campaign definitions.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
CREATE TABLE templates (
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       text NOT NULL,
    text       text NOT NULL,
    media      jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX templates_tenant_name_key ON templates (tenant_id, lower(name));

CREATE TABLE campaigns (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          text NOT NULL,
    instance_id   uuid NOT NULL REFERENCES instances(id) ON DELETE RESTRICT,
    status        text NOT NULL DEFAULT 'draft'
                  CHECK (status IN ('draft', 'scheduled', 'active', 'paused', 'completed', 'cancelled')),
    -- [{text, media?: {type, url, file_name?}}], 1 to 5 variants
    messages      jsonb NOT NULL,
    -- {group_ids, tag_ids, contact_ids}
    audience      jsonb NOT NULL,
    -- the normalised schedule spec
    schedule      jsonb NOT NULL,
    -- {min_interval_seconds, max_interval_seconds}
    pacing        jsonb NOT NULL,
    paused_reason text,
    next_send_at  timestamptz,
    started_at    timestamptz,
    completed_at  timestamptz,
    cancelled_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_tenant_status_idx ON campaigns (tenant_id, status, created_at, id);
CREATE INDEX campaigns_tenant_instance_idx ON campaigns (tenant_id, instance_id);
-- The beat's scan: active campaigns by next send time.
CREATE INDEX campaigns_due_idx ON campaigns (next_send_at) WHERE status = 'active';
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS campaigns;
DROP TABLE IF EXISTS templates;
"#;

crate::sql_migration!(UP, DOWN);
