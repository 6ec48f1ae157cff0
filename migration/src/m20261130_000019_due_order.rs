//! The beat's due-campaign query walks an index in its own order: `COALESCE(next_send_at,
//! '-infinity')` (a campaign without a next instant is due first), so each chunk of a tick
//! reads its 1,000 campaigns off the index instead of sorting every due one (issue 13:
//! 100,000 active campaigns with 10,000 due).

use sea_orm_migration::prelude::*;

const UP: &str = r#"
CREATE INDEX campaigns_due_order_idx ON campaigns ((COALESCE(next_send_at, '-infinity'::timestamptz)))
    WHERE status = 'active';
DROP INDEX IF EXISTS campaigns_due_idx;
"#;

const DOWN: &str = r#"
CREATE INDEX campaigns_due_idx ON campaigns (next_send_at) WHERE status = 'active';
DROP INDEX IF EXISTS campaigns_due_order_idx;
"#;

crate::sql_migration!(UP, DOWN);
