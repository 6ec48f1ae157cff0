//! Number pools (PRODUCT §4, issue 12): a campaign sends over 1–50 instances
//! (`campaigns.instance_ids`, the first one also kept in `instance_id`), each with its own
//! pacing (`campaigns.number_next_send_at`: `{instance_id: instant}` planned by the beat);
//! the number chosen for a recipient is kept on it (`recipients.instance_id`, also what the
//! sticky sender reads back).
//!
//! "A number takes part in at most one active campaign": `active_numbers` holds one row per
//! number of each active campaign, kept by a trigger on the campaign's status, and its
//! unique index carries the name the old per-campaign index had
//! (`campaigns_one_active_per_instance`), so the conflict is reported as before.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE campaigns ADD COLUMN instance_ids uuid[];
UPDATE campaigns SET instance_ids = ARRAY[instance_id];
ALTER TABLE campaigns ALTER COLUMN instance_ids SET NOT NULL;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_instance_ids_check
    CHECK (instance_ids[1] = instance_id AND cardinality(instance_ids) BETWEEN 1 AND 50);
ALTER TABLE campaigns ADD COLUMN number_next_send_at jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX campaigns_instance_ids_idx ON campaigns USING gin (instance_ids);

ALTER TABLE recipients ADD COLUMN instance_id uuid;

DROP INDEX IF EXISTS campaigns_one_active_per_instance;
CREATE TABLE active_numbers (
    instance_id uuid NOT NULL,
    campaign_id uuid NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX campaigns_one_active_per_instance ON active_numbers (instance_id);
CREATE INDEX active_numbers_campaign_idx ON active_numbers (campaign_id);
INSERT INTO active_numbers (instance_id, campaign_id) SELECT instance_id, id FROM campaigns WHERE status = 'active';

CREATE FUNCTION campaigns_sync_active_numbers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.status <> 'active' AND NEW.status <> 'active' THEN
    RETURN NULL;
  END IF;
  DELETE FROM active_numbers WHERE campaign_id = NEW.id;
  IF NEW.status = 'active' THEN
    INSERT INTO active_numbers (instance_id, campaign_id)
    SELECT DISTINCT n, NEW.id FROM unnest(NEW.instance_ids) AS n;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER campaigns_active_numbers AFTER INSERT OR UPDATE OF status, instance_ids ON campaigns
    FOR EACH ROW EXECUTE FUNCTION campaigns_sync_active_numbers();
"#;

const DOWN: &str = r#"
DROP TRIGGER IF EXISTS campaigns_active_numbers ON campaigns;
DROP FUNCTION IF EXISTS campaigns_sync_active_numbers();
DROP TABLE IF EXISTS active_numbers;
CREATE UNIQUE INDEX campaigns_one_active_per_instance ON campaigns (instance_id) WHERE status = 'active';
ALTER TABLE recipients DROP COLUMN IF EXISTS instance_id;
DROP INDEX IF EXISTS campaigns_instance_ids_idx;
ALTER TABLE campaigns DROP COLUMN IF EXISTS number_next_send_at;
ALTER TABLE campaigns DROP CONSTRAINT IF EXISTS campaigns_instance_ids_check;
ALTER TABLE campaigns DROP COLUMN IF EXISTS instance_ids;
"#;

crate::sql_migration!(UP, DOWN);
