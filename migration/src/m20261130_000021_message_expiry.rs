//! One-off messages may expire (`expires_at`): one still waiting then (`pending` or
//! `queued`: its instance disconnected, its day used up, the gateway down) ends `failed`
//! with the reason `expired` instead of leaving late.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE messages ADD COLUMN expires_at timestamptz;
CREATE INDEX messages_expiry_idx ON messages (expires_at) WHERE expires_at IS NOT NULL AND status IN ('pending', 'queued');
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS messages_expiry_idx;
ALTER TABLE messages DROP COLUMN IF EXISTS expires_at;
"#;

crate::sql_migration!(UP, DOWN);
