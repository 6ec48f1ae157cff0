//! "Outcome unknown" becomes a field of its own instead of a prefix of the free-text
//! reason: a recipient whose send may or may not have reached WhatsApp (a timeout, a crash
//! while `sending`) is `failed` with `outcome_unknown = true`, and a late answer or a
//! receipt naming its message turns it into `sent`.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE recipients ADD COLUMN outcome_unknown boolean NOT NULL DEFAULT false;
UPDATE recipients SET outcome_unknown = true,
    reason = NULLIF(regexp_replace(reason, '^outcome_unknown(: )?', ''), '')
  WHERE reason LIKE 'outcome_unknown%';
"#;

const DOWN: &str = r#"
UPDATE recipients SET reason = 'outcome_unknown' || COALESCE(': ' || reason, '') WHERE outcome_unknown;
ALTER TABLE recipients DROP COLUMN IF EXISTS outcome_unknown;
"#;

crate::sql_migration!(UP, DOWN);
