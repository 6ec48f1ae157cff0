//! Audience resolution spent a fifth of its time in the foreign-key check of every recipient
//! row (`recipients_campaign_tenant_fkey`, one lookup of the campaign per row) and a
//! fourteenth in an index only opt-outs read (`recipients_tenant_contact_idx`), measured at
//! 1,000,000 recipients over two lanes (14.4 s; 10.6 s without both).
//!
//! - The key becomes two statement-level triggers over transition tables: an insert checks
//!   once per statement that each `(campaign_id, tenant_id)` it wrote is a campaign of that
//!   tenant (SQLSTATE 23503, as the key raised), and deleting campaigns (a tenant's deletion
//!   cascades to them) deletes their recipients. What the key's row lock gave, the resolver
//!   has: it writes under a lock on its campaign's row (`FOR SHARE`), which a delete waits for.
//!   Recipients never move to another campaign or tenant, so updates are not checked.
//! - An opt-out finds the pending recipients of the contact through the campaign and phone
//!   (`recipients_campaign_id_phone_key`), see `recipients::skip_opted_out`.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE recipients DROP CONSTRAINT recipients_campaign_tenant_fkey;
DROP INDEX IF EXISTS recipients_tenant_contact_idx;

CREATE FUNCTION recipients_check_campaign() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT campaign_id, tenant_id FROM new_rows) n
               WHERE NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = n.campaign_id AND c.tenant_id = n.tenant_id)) THEN
        RAISE EXCEPTION 'recipients must belong to a campaign of their tenant'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'recipients_campaign_tenant_fkey';
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER recipients_campaign_checked AFTER INSERT ON recipients
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION recipients_check_campaign();

CREATE FUNCTION campaigns_delete_recipients() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM recipients r USING old_rows o WHERE r.campaign_id = o.id;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER campaigns_recipients_deleted AFTER DELETE ON campaigns
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION campaigns_delete_recipients();
"#;

const DOWN: &str = r#"
DROP TRIGGER IF EXISTS campaigns_recipients_deleted ON campaigns;
DROP FUNCTION IF EXISTS campaigns_delete_recipients();
DROP TRIGGER IF EXISTS recipients_campaign_checked ON recipients;
DROP FUNCTION IF EXISTS recipients_check_campaign();
CREATE INDEX recipients_tenant_contact_idx ON recipients (tenant_id, contact_id)
    WHERE status IN ('pending', 'queued');
ALTER TABLE recipients ADD CONSTRAINT recipients_campaign_tenant_fkey FOREIGN KEY (campaign_id, tenant_id)
    REFERENCES campaigns (id, tenant_id) ON DELETE CASCADE;
"#;

crate::sql_migration!(UP, DOWN);
