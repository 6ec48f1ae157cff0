//! Arauto's schema, one file per change, each with a `down`. A shipped migration is never
//! edited: add a new one.

pub use sea_orm_migration::prelude::*;

/// A migration written as two SQL scripts: `up` and `down` (its undo).
macro_rules! sql_migration {
    ($up:expr, $down:expr) => {
        #[derive(DeriveMigrationName)]
        pub struct Migration;

        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager.get_connection().execute_unprepared($up).await?;
                Ok(())
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager.get_connection().execute_unprepared($down).await?;
                Ok(())
            }
        }
    };
}
pub(crate) use sql_migration;

mod m20261125_000001_foundation;
mod m20261125_000002_campaigns;
mod m20261125_000003_dispatch;
mod m20261126_000004_instance_state;
mod m20261126_000005_recipient_keys;
mod m20261126_000006_recipient_counts;
mod m20261130_000007_outcome_unknown;
mod m20261130_000008_preparing;
mod m20261130_000009_contact_counts;
mod m20261130_000010_early_receipts;
mod m20261130_000011_canonical_phones;
mod m20261130_000012_reply_lookup;
mod m20261130_000013_variant_counts;
mod m20261130_000014_webhook_outbox;
mod m20261130_000015_recurring;
mod m20261130_000016_provisioning;
mod m20261130_000017_messages;
mod m20261130_000018_number_pools;
mod m20261130_000019_due_order;
mod m20261130_000020_message_failed_after_send;
mod m20261130_000021_message_expiry;
mod m20261130_000022_audience_lanes;
mod m20261130_000023_recipient_checks;
mod m20261130_000024_recipient_collation;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_foundation::Migration),
            Box::new(m20261125_000002_campaigns::Migration),
            Box::new(m20261125_000003_dispatch::Migration),
            Box::new(m20261126_000004_instance_state::Migration),
            Box::new(m20261126_000005_recipient_keys::Migration),
            Box::new(m20261126_000006_recipient_counts::Migration),
            Box::new(m20261130_000007_outcome_unknown::Migration),
            Box::new(m20261130_000008_preparing::Migration),
            Box::new(m20261130_000009_contact_counts::Migration),
            Box::new(m20261130_000010_early_receipts::Migration),
            Box::new(m20261130_000011_canonical_phones::Migration),
            Box::new(m20261130_000012_reply_lookup::Migration),
            Box::new(m20261130_000013_variant_counts::Migration),
            Box::new(m20261130_000014_webhook_outbox::Migration),
            Box::new(m20261130_000015_recurring::Migration),
            Box::new(m20261130_000016_provisioning::Migration),
            Box::new(m20261130_000017_messages::Migration),
            Box::new(m20261130_000018_number_pools::Migration),
            Box::new(m20261130_000019_due_order::Migration),
            Box::new(m20261130_000020_message_failed_after_send::Migration),
            Box::new(m20261130_000021_message_expiry::Migration),
            Box::new(m20261130_000022_audience_lanes::Migration),
            Box::new(m20261130_000023_recipient_checks::Migration),
            Box::new(m20261130_000024_recipient_collation::Migration),
        ]
    }
}
