//! Per-variant results (issue 11, "Results a marketer can act on"): the recipient count
//! deltas (migration 000006) are kept per campaign *and variant*, so stats show sent,
//! delivered, read, replied and failed for each of a campaign's 1–5 message variants
//! without counting its recipients. `variant` is NULL for rows not planned yet (a recipient
//! gets its variant when the beat plans it).

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE recipient_counts ADD COLUMN variant smallint;

CREATE OR REPLACE FUNCTION recipient_counts_delta() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO recipient_counts (campaign_id, variant, pending, queued, sending, sent, failed, skipped, cancelled, delivered, read, replied)
        SELECT campaign_id, variant,
               count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'queued'),
               count(*) FILTER (WHERE status = 'sending'), count(*) FILTER (WHERE status = 'sent'),
               count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'skipped'),
               count(*) FILTER (WHERE status = 'cancelled'),
               count(delivered_at), count(read_at), count(replied_at)
        FROM new_rows GROUP BY campaign_id, variant;
    ELSE
        INSERT INTO recipient_counts (campaign_id, variant, pending, queued, sending, sent, failed, skipped, cancelled, delivered, read, replied)
        SELECT campaign_id, variant, sum(pending), sum(queued), sum(sending), sum(sent), sum(failed), sum(skipped),
               sum(cancelled), sum(delivered), sum(read), sum(replied)
        FROM (
            SELECT campaign_id, variant,
                   (status = 'pending')::int AS pending, (status = 'queued')::int AS queued,
                   (status = 'sending')::int AS sending, (status = 'sent')::int AS sent,
                   (status = 'failed')::int AS failed, (status = 'skipped')::int AS skipped,
                   (status = 'cancelled')::int AS cancelled, (delivered_at IS NOT NULL)::int AS delivered,
                   (read_at IS NOT NULL)::int AS read, (replied_at IS NOT NULL)::int AS replied
            FROM new_rows
            UNION ALL
            SELECT campaign_id, variant,
                   -(status = 'pending')::int, -(status = 'queued')::int,
                   -(status = 'sending')::int, -(status = 'sent')::int,
                   -(status = 'failed')::int, -(status = 'skipped')::int,
                   -(status = 'cancelled')::int, -(delivered_at IS NOT NULL)::int,
                   -(read_at IS NOT NULL)::int, -(replied_at IS NOT NULL)::int
            FROM old_rows
        ) d
        GROUP BY campaign_id, variant
        HAVING sum(abs(pending) + abs(queued) + abs(sending) + abs(sent) + abs(failed) + abs(skipped)
                   + abs(cancelled) + abs(delivered) + abs(read) + abs(replied)) > 0;
    END IF;
    RETURN NULL;
END
$fn$;

-- The running totals again, now per variant (counted once, from the recipients).
DELETE FROM recipient_counts;
INSERT INTO recipient_counts (campaign_id, variant, pending, queued, sending, sent, failed, skipped, cancelled, delivered, read, replied, folded)
SELECT campaign_id, variant,
       count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'queued'),
       count(*) FILTER (WHERE status = 'sending'), count(*) FILTER (WHERE status = 'sent'),
       count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'skipped'),
       count(*) FILTER (WHERE status = 'cancelled'),
       count(delivered_at), count(read_at), count(replied_at), true
FROM recipients GROUP BY campaign_id, variant;
"#;

const DOWN: &str = r#"
CREATE OR REPLACE FUNCTION recipient_counts_delta() RETURNS trigger LANGUAGE plpgsql AS $fn$
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
ALTER TABLE recipient_counts DROP COLUMN IF EXISTS variant;
"#;

crate::sql_migration!(UP, DOWN);
