//! Per-tenant contact totals without counting the tenant's contacts on every `GET
//! /contacts`: kept like `recipient_counts` (m20261126_000006). Every statement that inserts
//! or deletes contacts appends, per tenant, how it changed the total (a statement-level
//! trigger over its transition tables), and the beat folds those deltas into one row per
//! tenant each tick (`contacts::counts::fold`). A read sums the tenant's few rows in one
//! snapshot, so it always equals `count(*)` of the tenant's contacts.
//!
//! A trigger rather than application code: it sees every writer — the API's create, bulk
//! upsert and CSV import, deletes, the cascade of a tenant's deletion, `COPY`, and
//! hand-written SQL (benches, operators) — inside the writing transaction. An upsert that
//! updates an existing phone is not an insert for the trigger, so it does not count.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
-- No foreign key on purpose: deleting a tenant cascades to its contacts, whose delete
-- trigger appends a (negative) delta for that tenant; a key to tenants would refuse it.
-- The fold drops a tenant's rows once they sum to zero.
CREATE TABLE contact_counts (
    tenant_id uuid NOT NULL,
    contacts  bigint NOT NULL,
    -- false: a delta appended by a statement; true: the beat's running total.
    folded    boolean NOT NULL DEFAULT false
);
CREATE INDEX contact_counts_tenant_idx ON contact_counts (tenant_id);
CREATE INDEX contact_counts_unfolded_idx ON contact_counts (tenant_id) WHERE NOT folded;

CREATE FUNCTION contact_counts_delta() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO contact_counts (tenant_id, contacts)
        SELECT tenant_id, count(*) FROM new_rows GROUP BY tenant_id;
    ELSE
        INSERT INTO contact_counts (tenant_id, contacts)
        SELECT tenant_id, -count(*) FROM old_rows GROUP BY tenant_id;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER contacts_counted_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION contact_counts_delta();
CREATE TRIGGER contacts_counted_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION contact_counts_delta();

INSERT INTO contact_counts (tenant_id, contacts, folded)
SELECT tenant_id, count(*), true FROM contacts GROUP BY tenant_id;
"#;

const DOWN: &str = r#"
DROP TRIGGER IF EXISTS contacts_counted_delete ON contacts;
DROP TRIGGER IF EXISTS contacts_counted_insert ON contacts;
DROP FUNCTION IF EXISTS contact_counts_delta();
DROP TABLE IF EXISTS contact_counts;
"#;

crate::sql_migration!(UP, DOWN);
