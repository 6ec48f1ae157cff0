//! Opt-out done right (issue 11).
//!
//! - `tenant_settings`: per-tenant settings, starting with the opt-out keywords (a JSON
//!   array of strings; no row means the defaults).
//! - Recipients still open (`pending` or `queued`) are found by their contact, so an opt-out
//!   skips them across every campaign of the tenant without scanning its history.
//! - One phone per WhatsApp line: a Brazilian mobile stored in its legacy 8-digit notation
//!   (`55` + DDD + a number starting 6–9) is rewritten to its 9-digit form, as the API now
//!   normalises it. When the tenant already has a contact with the 9-digit form, the two are
//!   the same person: the legacy contact is merged into it (tags and group memberships
//!   added, fields filling the gaps, the name kept unless empty, opted out if either was,
//!   campaign recipients relinked), then deleted, and each merge is written to the audit
//!   log (`contact.merge`, details `{merged_contact_id, merged_phone}`).
//!
//! `down` drops the settings and restores the index; phones stay canonical (they were
//! always valid) and merges are not undone.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
CREATE TABLE tenant_settings (
    tenant_id        uuid PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    opt_out_keywords jsonb NOT NULL,
    updated_at       timestamptz NOT NULL
);

DROP INDEX IF EXISTS recipients_tenant_contact_idx;
CREATE INDEX recipients_tenant_contact_idx ON recipients (tenant_id, contact_id)
    WHERE status IN ('pending', 'queued');

CREATE TEMP TABLE legacy_phones ON COMMIT DROP AS
SELECT c.id, c.tenant_id, c.phone,
       '55' || substr(c.phone, 3, 2) || '9' || substr(c.phone, 5) AS canonical,
       k.id AS keeper
FROM contacts c
LEFT JOIN contacts k ON k.tenant_id = c.tenant_id
                    AND k.phone = '55' || substr(c.phone, 3, 2) || '9' || substr(c.phone, 5)
WHERE c.phone ~ '^55[1-9]{2}[6-9][0-9]{7}$';

-- No collision: the contact takes the canonical form.
UPDATE contacts c SET phone = l.canonical
FROM legacy_phones l WHERE c.id = l.id AND l.keeper IS NULL;

-- Collision: the legacy contact is merged into the canonical one.
INSERT INTO contact_tags (tenant_id, contact_id, tag_id)
SELECT l.tenant_id, l.keeper, ct.tag_id
FROM legacy_phones l JOIN contact_tags ct ON ct.contact_id = l.id
WHERE l.keeper IS NOT NULL
ON CONFLICT DO NOTHING;

INSERT INTO group_members (tenant_id, group_id, contact_id, created_at)
SELECT l.tenant_id, gm.group_id, l.keeper, gm.created_at
FROM legacy_phones l JOIN group_members gm ON gm.contact_id = l.id
WHERE l.keeper IS NOT NULL
ON CONFLICT DO NOTHING;

UPDATE contacts k SET
    name = CASE WHEN k.name = '' THEN c.name ELSE k.name END,
    fields = c.fields || k.fields,
    opted_out_at = LEAST(k.opted_out_at, c.opted_out_at),
    updated_at = now()
FROM legacy_phones l JOIN contacts c ON c.id = l.id
WHERE k.id = l.keeper;

UPDATE recipients r SET contact_id = l.keeper
FROM legacy_phones l
WHERE l.keeper IS NOT NULL AND r.tenant_id = l.tenant_id AND r.contact_id = l.id;

INSERT INTO audit_logs (id, tenant_id, user_id, action, entity_type, entity_id, details, created_at)
SELECT gen_random_uuid(), l.tenant_id, NULL, 'contact.merge', 'contact', l.keeper,
       jsonb_build_object('merged_contact_id', l.id, 'merged_phone', l.phone, 'phone', l.canonical), now()
FROM legacy_phones l WHERE l.keeper IS NOT NULL;

DELETE FROM contacts c USING legacy_phones l WHERE c.id = l.id AND l.keeper IS NOT NULL;
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS recipients_tenant_contact_idx;
CREATE INDEX recipients_tenant_contact_idx ON recipients (tenant_id, contact_id) WHERE status = 'pending';
DROP TABLE IF EXISTS tenant_settings;
"#;

crate::sql_migration!(UP, DOWN);
