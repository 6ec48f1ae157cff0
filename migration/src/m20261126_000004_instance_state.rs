//! The last connection state heard of each instance (from the gateway's webhook, the state
//! route, start/resume and the beat's probe), so the beat plans only for connected numbers.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE instances
    ADD COLUMN connection_state text CHECK (connection_state IN ('open', 'connecting', 'close')),
    ADD COLUMN state_checked_at timestamptz;
"#;

const DOWN: &str = r#"
ALTER TABLE instances DROP COLUMN IF EXISTS state_checked_at, DROP COLUMN IF EXISTS connection_state;
"#;

crate::sql_migration!(UP, DOWN);
