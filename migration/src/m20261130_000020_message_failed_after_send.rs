//! A one-off message the gateway accepted and then reported `ERROR` for is `failed` with
//! `failed_after_send`, as a campaign recipient is (issue 11): the flag, so that a later
//! delivery or read receipt (reordered) can make it `sent` again.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE messages ADD COLUMN failed_after_send boolean NOT NULL DEFAULT false;
"#;

const DOWN: &str = r#"
ALTER TABLE messages DROP COLUMN IF EXISTS failed_after_send;
"#;

crate::sql_migration!(UP, DOWN);
