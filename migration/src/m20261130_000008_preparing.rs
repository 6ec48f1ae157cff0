//! Instant start: `start` answers at once and the audience is resolved in the background
//! (PRODUCT §4, "preparing"). A campaign records how far its audience resolution got, so a
//! crash in the middle resumes from the last committed chunk instead of starting over.
//!
//! - `audience_total`: contacts in the audience, counted when preparation begins (progress).
//! - `audience_resolved`: recipient rows written so far (the next row's position − 1).
//! - `audience_cursor`: the sort key `{created_at, id}` of the last contact resolved.
//! - `audience_ready_at`: when resolution finished; NULL while it is still to do.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE campaigns DROP CONSTRAINT campaigns_status_check;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_status_check
    CHECK (status IN ('draft', 'preparing', 'scheduled', 'active', 'paused', 'completed', 'cancelled'));
ALTER TABLE campaigns
    ADD COLUMN audience_total bigint,
    ADD COLUMN audience_resolved bigint NOT NULL DEFAULT 0,
    ADD COLUMN audience_cursor jsonb,
    ADD COLUMN audience_ready_at timestamptz;
UPDATE campaigns SET audience_ready_at = COALESCE(started_at, updated_at),
    audience_resolved = (SELECT count(*) FROM recipients r WHERE r.campaign_id = campaigns.id)
  WHERE status <> 'draft';
CREATE INDEX campaigns_preparing_idx ON campaigns (created_at, id) WHERE audience_ready_at IS NULL AND status <> 'draft';
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS campaigns_preparing_idx;
UPDATE campaigns SET status = 'scheduled' WHERE status = 'preparing';
ALTER TABLE campaigns
    DROP COLUMN IF EXISTS audience_total,
    DROP COLUMN IF EXISTS audience_resolved,
    DROP COLUMN IF EXISTS audience_cursor,
    DROP COLUMN IF EXISTS audience_ready_at;
ALTER TABLE campaigns DROP CONSTRAINT campaigns_status_check;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_status_check
    CHECK (status IN ('draft', 'scheduled', 'active', 'paused', 'completed', 'cancelled'));
"#;

crate::sql_migration!(UP, DOWN);
