use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "campaigns")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    /// The first of `instance_ids`.
    pub instance_id: Uuid,
    /// The numbers it sends from (1 to 50, in order).
    pub instance_ids: Vec<Uuid>,
    pub status: crate::campaigns::domain::CampaignStatus,
    pub messages: crate::campaigns::domain::Messages,
    pub audience: crate::campaigns::domain::Audience,
    /// Normalised: defaults filled in.
    pub schedule: crate::calendar::ScheduleSpec,
    pub pacing: crate::calendar::Pacing,
    pub paused_reason: Option<String>,
    pub next_send_at: Option<DateTimeUtc>,
    pub started_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
    pub cancelled_at: Option<DateTimeUtc>,
    pub planned_count: i64,
    pub audience_total: Option<i64>,
    pub audience_resolved: i64,
    pub audience_ready_at: Option<DateTimeUtc>,
    /// Normalised (see [`crate::campaigns::recurrence::Recurrence::to_spec`]).
    pub recurrence: Option<crate::campaigns::recurrence::RecurrenceSpec>,
    pub next_occurrence_at: Option<DateTimeUtc>,
    pub occurrence_count: i32,
    pub parent_id: Option<Uuid>,
    pub occurrence_at: Option<DateTimeUtc>,
    pub cancel_reason: Option<String>,
    pub audience_on: Option<Date>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
