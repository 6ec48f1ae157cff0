//! Campaign statistics without counting a million rows per request: every statement that
//! writes recipients appends, per campaign, how it changed the counts (a statement-level
//! trigger over its transition tables), and the beat folds those deltas into one row per
//! campaign each tick (`campaigns::counts::fold`). A read sums a campaign's few rows, in one snapshot.
//!
//! Deltas are appended, never updated in place, so concurrent workers never wait on a
//! shared counter row.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
-- No foreign key on purpose: its check would take a KEY SHARE lock on the campaign row
-- for every writing statement, and the beat's FOR UPDATE SKIP LOCKED would then skip
-- campaigns whose outcomes are being recorded. Only drafts (which have no recipients) can
-- be deleted.
CREATE TABLE recipient_counts (
    campaign_id uuid NOT NULL,
    pending     bigint NOT NULL DEFAULT 0,
    queued      bigint NOT NULL DEFAULT 0,
    sending     bigint NOT NULL DEFAULT 0,
    sent        bigint NOT NULL DEFAULT 0,
    failed      bigint NOT NULL DEFAULT 0,
    skipped     bigint NOT NULL DEFAULT 0,
    cancelled   bigint NOT NULL DEFAULT 0,
    delivered   bigint NOT NULL DEFAULT 0,
    read        bigint NOT NULL DEFAULT 0,
    replied     bigint NOT NULL DEFAULT 0,
    -- false: a delta appended by a statement; true: the beat's running total.
    folded      boolean NOT NULL DEFAULT false
);
CREATE INDEX recipient_counts_campaign_idx ON recipient_counts (campaign_id);
CREATE INDEX recipient_counts_unfolded_idx ON recipient_counts (campaign_id) WHERE NOT folded;

CREATE FUNCTION recipient_counts_delta() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO recipient_counts (campaign_id, pending, queued, sending, sent, failed, skipped, cancelled, delivered, read, replied)
        SELECT campaign_id,
               count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'queued'),
               count(*) FILTER (WHERE status = 'sending'), count(*) FILTER (WHERE status = 'sent'),
               count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'skipped'),
               count(*) FILTER (WHERE status = 'cancelled'),
               count(delivered_at), count(read_at), count(replied_at)
        FROM new_rows GROUP BY campaign_id;
    ELSE
        INSERT INTO recipient_counts (campaign_id, pending, queued, sending, sent, failed, skipped, cancelled, delivered, read, replied)
        SELECT campaign_id, sum(pending), sum(queued), sum(sending), sum(sent), sum(failed), sum(skipped),
               sum(cancelled), sum(delivered), sum(read), sum(replied)
        FROM (
            SELECT campaign_id,
                   (status = 'pending')::int AS pending, (status = 'queued')::int AS queued,
                   (status = 'sending')::int AS sending, (status = 'sent')::int AS sent,
                   (status = 'failed')::int AS failed, (status = 'skipped')::int AS skipped,
                   (status = 'cancelled')::int AS cancelled, (delivered_at IS NOT NULL)::int AS delivered,
                   (read_at IS NOT NULL)::int AS read, (replied_at IS NOT NULL)::int AS replied
            FROM new_rows
            UNION ALL
            SELECT campaign_id,
                   -(status = 'pending')::int, -(status = 'queued')::int,
                   -(status = 'sending')::int, -(status = 'sent')::int,
                   -(status = 'failed')::int, -(status = 'skipped')::int,
                   -(status = 'cancelled')::int, -(delivered_at IS NOT NULL)::int,
                   -(read_at IS NOT NULL)::int, -(replied_at IS NOT NULL)::int
            FROM old_rows
        ) d
        GROUP BY campaign_id
        HAVING sum(abs(pending) + abs(queued) + abs(sending) + abs(sent) + abs(failed) + abs(skipped)
                   + abs(cancelled) + abs(delivered) + abs(read) + abs(replied)) > 0;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER recipients_counted_insert AFTER INSERT ON recipients
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION recipient_counts_delta();
CREATE TRIGGER recipients_counted_update AFTER UPDATE ON recipients
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION recipient_counts_delta();

INSERT INTO recipient_counts (campaign_id, pending, queued, sending, sent, failed, skipped, cancelled, delivered, read, replied, folded)
SELECT campaign_id,
       count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'queued'),
       count(*) FILTER (WHERE status = 'sending'), count(*) FILTER (WHERE status = 'sent'),
       count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'skipped'),
       count(*) FILTER (WHERE status = 'cancelled'),
       count(delivered_at), count(read_at), count(replied_at), true
FROM recipients GROUP BY campaign_id;
"#;

const DOWN: &str = r#"
DROP TRIGGER IF EXISTS recipients_counted_update ON recipients;
DROP TRIGGER IF EXISTS recipients_counted_insert ON recipients;
DROP FUNCTION IF EXISTS recipient_counts_delta();
DROP TABLE IF EXISTS recipient_counts;
"#;

crate::sql_migration!(UP, DOWN);
