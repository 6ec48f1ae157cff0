use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "instances")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub api_url: String,
    pub instance_name: String,
    /// `crypto::Cipher` output; never returned by the API.
    pub api_key_enc: String,
    pub webhook_token: String,
    pub daily_limit: Option<i32>,
    pub warmup: Option<Json>,
    /// `open`, `connecting` or `close`: the last state heard; `None` before any.
    pub connection_state: Option<crate::gateway::ConnectionState>,
    pub state_checked_at: Option<DateTimeUtc>,
    /// Arauto created the instance on the gateway (`create: true`): deleting the row deletes
    /// it there too.
    pub provisioned: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
