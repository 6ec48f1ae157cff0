//! Audience resolution over lanes (issue 10: 100,000 recipients/s): a large audience is
//! resolved by several preparers at once, each over its own range of the tenant's contacts
//! in `(created_at, id)` order, so the database's cores share the work.
//!
//! `audience_lanes` holds one row per lane of a campaign being prepared:
//! - `after`: the sort key `{"at", "id"}` of the last contact the lane resolved, or the
//!   lane's (exclusive) lower bound; NULL from the tenant's first contact.
//! - `until`: the lane's inclusive upper bound; NULL to the tenant's last contact.
//! - `first_position`: the lane numbers its recipients from `first_position + 1`.
//! - `resolved`: recipients the lane wrote; `done` once it reached its bound.
//!
//! The rows go when the preparation finishes (the total is then
//! `campaigns.audience_resolved`). The cursor of a preparation under way moves from
//! `campaigns.audience_cursor` to its one lane.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
CREATE TABLE audience_lanes (
    campaign_id    uuid NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    lane           smallint NOT NULL,
    after          jsonb,
    until          jsonb,
    first_position integer NOT NULL,
    resolved       bigint NOT NULL DEFAULT 0,
    done           boolean NOT NULL DEFAULT false,
    PRIMARY KEY (campaign_id, lane)
);
INSERT INTO audience_lanes (campaign_id, lane, after, until, first_position, resolved)
SELECT id, 0, audience_cursor, NULL, 0, audience_resolved FROM campaigns
WHERE audience_ready_at IS NULL AND audience_total IS NOT NULL AND status IN ('preparing', 'paused');
ALTER TABLE campaigns DROP COLUMN audience_cursor;
"#;

const DOWN: &str = r#"
ALTER TABLE campaigns ADD COLUMN audience_cursor jsonb;
UPDATE campaigns c SET audience_cursor = l.after, audience_resolved = l.resolved
FROM audience_lanes l WHERE l.campaign_id = c.id AND l.lane = 0
  AND NOT EXISTS (SELECT 1 FROM audience_lanes o WHERE o.campaign_id = c.id AND o.lane > 0);
DROP TABLE IF EXISTS audience_lanes;
"#;

crate::sql_migration!(UP, DOWN);
