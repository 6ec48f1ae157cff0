//! Starting a 1,000,000-recipient campaign spent half its time in foreign-key checks: three
//! per recipient row. One composite key to the campaign (which also ties the row's tenant
//! to its campaign's) replaces the keys to tenants and campaigns; the key to contacts goes,
//! and deleting a contact now clears it from recipients in the same transaction (see
//! `contacts::routes::delete`).

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE campaigns ADD CONSTRAINT campaigns_id_tenant_key UNIQUE (id, tenant_id);
ALTER TABLE recipients
    DROP CONSTRAINT recipients_tenant_id_fkey,
    DROP CONSTRAINT recipients_campaign_id_fkey,
    DROP CONSTRAINT recipients_contact_id_fkey,
    ADD CONSTRAINT recipients_campaign_tenant_fkey FOREIGN KEY (campaign_id, tenant_id)
        REFERENCES campaigns (id, tenant_id) ON DELETE CASCADE;
"#;

const DOWN: &str = r#"
ALTER TABLE recipients
    DROP CONSTRAINT IF EXISTS recipients_campaign_tenant_fkey,
    ADD CONSTRAINT recipients_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE,
    ADD CONSTRAINT recipients_campaign_id_fkey FOREIGN KEY (campaign_id) REFERENCES campaigns(id) ON DELETE CASCADE,
    ADD CONSTRAINT recipients_contact_id_fkey FOREIGN KEY (contact_id) REFERENCES contacts(id) ON DELETE SET NULL;
ALTER TABLE campaigns DROP CONSTRAINT IF EXISTS campaigns_id_tenant_key;
"#;

crate::sql_migration!(UP, DOWN);
