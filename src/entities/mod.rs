//! sea-orm entities, one per table, matching `migration/`. Model behaviour lives in the
//! domain modules, not here; response types live beside their routes.

pub mod audit_logs;
pub mod campaigns;
pub mod contact_tags;
pub mod contacts;
pub mod group_members;
pub mod groups;
pub mod holidays;
pub mod instances;
pub mod tags;
pub mod templates;
pub mod tenants;
pub mod users;
pub mod webhook_subscriptions;

/// Entities whose rows belong to a tenant: every lookup by id goes through
/// [`crate::db::scoped`], which filters by the caller's tenant.
pub trait TenantOwned: sea_orm::EntityTrait {
    fn tenant_column() -> Self::Column;
    fn id_column() -> Self::Column;
}

macro_rules! tenant_owned {
    ($($m:ident),*) => {$(
        impl TenantOwned for $m::Entity {
            fn tenant_column() -> Self::Column { $m::Column::TenantId }
            fn id_column() -> Self::Column { $m::Column::Id }
        }
    )*};
}
tenant_owned!(
    users,
    instances,
    contacts,
    groups,
    tags,
    holidays,
    audit_logs,
    templates,
    campaigns,
    webhook_subscriptions
);
