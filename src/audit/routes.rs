use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::entities::audit_logs;
use crate::error::AppResult;
use crate::pagination::Pagination;
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogView {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    /// e.g. `auth.login`, `user.create`, `instance.update`, `contact.delete`.
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<Uuid>,
    /// What changed, by event (`{"name": "Black Friday"}`); `{}` when nothing more.
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<audit_logs::Model> for AuditLogView {
    fn from(m: audit_logs::Model) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            action: m.action,
            entity_type: m.entity_type,
            entity_id: m.entity_id,
            details: m.details,
            created_at: m.created_at,
        }
    }
}

/// The tenant's audit log, newest first (admins only).
#[utoipa::path(
    operation_id = "listAuditLogs",
    tag = "audit",
    params(Pagination),
    responses(
        (status = 200, body = crate::api::extract::Page<AuditLogView>),
        (status = 403, body = crate::error::Problem),
    ),
    security(("bearer" = []))
)]
#[get("/audit-logs")]
pub async fn list(state: web::Data<AppState>, user: AuthUser, page: Pagination) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let page = super::list(&state.reads, user.tenant_id, &page).await?;
    Ok(HttpResponse::Ok().json(page.map(AuditLogView::from)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list);
}
