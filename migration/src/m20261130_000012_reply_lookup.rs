//! An inbound message marks the latest recipient sent to that phone as replied: an index on
//! (tenant, phone, sent_at) makes that one lookup, not a scan of the tenant's recipients.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
CREATE INDEX recipients_tenant_phone_sent_idx ON recipients (tenant_id, phone, sent_at DESC) WHERE sent_at IS NOT NULL;
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS recipients_tenant_phone_sent_idx;
"#;

crate::sql_migration!(UP, DOWN);
