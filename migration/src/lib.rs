//! Arauto's schema, one file per change, each with a `down`. A shipped migration is never
//! edited: add a new one.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_foundation;
mod m20261125_000002_campaigns;
mod m20261125_000003_dispatch;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_foundation::Migration),
            Box::new(m20261125_000002_campaigns::Migration),
            Box::new(m20261125_000003_dispatch::Migration),
        ]
    }
}
