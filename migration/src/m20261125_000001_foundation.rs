//! Tenancy, users, instances, contacts, groups, tags, holidays and the audit log.
//! Every tenant-owned table carries `tenant_id`, and its indexes lead with it.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
CREATE TABLE tenants (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    timezone        text NOT NULL DEFAULT 'America/Sao_Paulo',
    default_country text NOT NULL DEFAULT 'BR',
    settings        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email         text NOT NULL,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'member')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- An email signs in to exactly one tenant.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_tenant_idx ON users (tenant_id, created_at);

CREATE TABLE instances (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          text NOT NULL,
    api_url       text NOT NULL,
    instance_name text NOT NULL,
    api_key_enc   text NOT NULL,
    webhook_token text NOT NULL,
    daily_limit   integer,
    warmup        jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX instances_tenant_name_key ON instances (tenant_id, name);
CREATE UNIQUE INDEX instances_webhook_token_key ON instances (webhook_token);

CREATE TABLE contacts (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone        text NOT NULL,
    name         text NOT NULL DEFAULT '',
    fields       jsonb NOT NULL DEFAULT '{}'::jsonb,
    opted_out_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX contacts_tenant_phone_key ON contacts (tenant_id, phone);
CREATE INDEX contacts_tenant_created_idx ON contacts (tenant_id, created_at, id);

CREATE TABLE groups (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        text NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX groups_tenant_name_key ON groups (tenant_id, lower(name));

CREATE TABLE group_members (
    tenant_id  uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    group_id   uuid NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, contact_id)
);
CREATE INDEX group_members_tenant_contact_idx ON group_members (tenant_id, contact_id);
CREATE INDEX group_members_tenant_group_idx ON group_members (tenant_id, group_id);

CREATE TABLE tags (
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       text NOT NULL,
    color      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tags_tenant_name_key ON tags (tenant_id, lower(name));

CREATE TABLE contact_tags (
    tenant_id  uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    tag_id     uuid NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, tag_id)
);
CREATE INDEX contact_tags_tenant_tag_idx ON contact_tags (tenant_id, tag_id);
CREATE INDEX contact_tags_tenant_contact_idx ON contact_tags (tenant_id, contact_id);

CREATE TABLE holidays (
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    date       date NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX holidays_tenant_date_key ON holidays (tenant_id, date);

CREATE TABLE audit_logs (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     uuid,
    action      text NOT NULL,
    entity_type text NOT NULL,
    entity_id   uuid,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_tenant_created_idx ON audit_logs (tenant_id, created_at DESC, id DESC);
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS audit_logs;
DROP TABLE IF EXISTS holidays;
DROP TABLE IF EXISTS contact_tags;
DROP TABLE IF EXISTS tags;
DROP TABLE IF EXISTS group_members;
DROP TABLE IF EXISTS groups;
DROP TABLE IF EXISTS contacts;
DROP TABLE IF EXISTS instances;
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS tenants;
"#;

crate::sql_migration!(UP, DOWN);
