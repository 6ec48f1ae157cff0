//! Recurring campaigns (PRODUCT §8, issue 12): a parent carries its `recurrence`, and each
//! occurrence creates one run — a child campaign — at most once, whatever the number of beats.
//!
//! - `recurrence`: the parent's rule (normalised JSON; NULL for ordinary campaigns and runs).
//! - `next_occurrence_at`: the parent's next occurrence instant (NULL once the series ended).
//! - `occurrence_count`: occurrences of the parent so far, sent or skipped (for `count`).
//! - `parent_id`, `occurrence_at`: a run's parent and the occurrence it was created for;
//!   unique together, so racing beats create one run per occurrence (`ON CONFLICT DO NOTHING`).
//! - `cancel_reason`: why a campaign was cancelled by the system (`skipped_late`: an
//!   occurrence missed by more than its lateness bound is recorded as a cancelled run).
//! - `audience_on`: the local date the audience's date filters (birthdays: `"matches":
//!   "today"`) are matched against, fixed when the campaign or run starts.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE campaigns
    ADD COLUMN recurrence jsonb,
    ADD COLUMN next_occurrence_at timestamptz,
    ADD COLUMN occurrence_count integer NOT NULL DEFAULT 0,
    ADD COLUMN parent_id uuid REFERENCES campaigns (id) ON DELETE CASCADE,
    ADD COLUMN occurrence_at timestamptz,
    ADD COLUMN cancel_reason text,
    ADD COLUMN audience_on date;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_run_occurrence_key UNIQUE (parent_id, occurrence_at);
CREATE INDEX campaigns_due_occurrence_idx ON campaigns (next_occurrence_at)
    WHERE status = 'scheduled' AND recurrence IS NOT NULL;
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS campaigns_due_occurrence_idx;
ALTER TABLE campaigns DROP CONSTRAINT IF EXISTS campaigns_run_occurrence_key;
DELETE FROM campaigns WHERE parent_id IS NOT NULL;
ALTER TABLE campaigns
    DROP COLUMN IF EXISTS recurrence,
    DROP COLUMN IF EXISTS next_occurrence_at,
    DROP COLUMN IF EXISTS occurrence_count,
    DROP COLUMN IF EXISTS parent_id,
    DROP COLUMN IF EXISTS occurrence_at,
    DROP COLUMN IF EXISTS cancel_reason,
    DROP COLUMN IF EXISTS audience_on;
"#;

crate::sql_migration!(UP, DOWN);
