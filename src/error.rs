//! One error type for the whole API, rendered as RFC 9457 `application/problem+json`.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::constraints::{unique_conflict, violation, Violation};

/// One offending input, named by its JSON path (`schedule.windows[0].start`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, nested under `prefix` (`phone` under `contacts[3]`); an empty prefix
    /// (the body itself) leaves it as it is.
    pub fn under(self, prefix: &str) -> Self {
        let field = if prefix.is_empty() {
            self.field
        } else if self.field.is_empty() {
            prefix.to_owned()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        Self { field, ..self }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed request (bad JSON syntax): 400.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid input: 422 with the offending fields.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// Missing id, or another tenant's id: 404 either way.
    #[error("{0}")]
    NotFound(String),
    /// Conflict or invalid state transition: 409, with the current status when there is one.
    #[error("{detail}")]
    Conflict {
        detail: String,
        current_status: Option<String>,
    },
    /// A known path asked with a method it does not have: 405 with `Allow`.
    #[error("{method} is not allowed here; allowed: {}", allow.join(", "))]
    MethodNotAllowed { method: String, allow: Vec<String> },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    /// The WhatsApp gateway failed or refused a call made for the request: 502, the detail
    /// carrying the gateway's own message.
    #[error("{0}")]
    BadGateway(String),
    /// Too many attempts (sign-in throttling): 429 with `Retry-After` (whole seconds).
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            detail: detail.into(),
            current_status: None,
        }
    }

    /// 405 for `method` on a path that only has `allow`.
    pub fn method_not_allowed(method: &actix_web::http::Method, allow: &[actix_web::http::Method]) -> Self {
        Self::MethodNotAllowed {
            method: method.to_string(),
            allow: allow.iter().map(ToString::to_string).collect(),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest(_) => ("malformed-request", "Malformed request"),
            Self::Validation(_) => ("validation", "Invalid input"),
            Self::Unauthorized(_) => ("unauthorized", "Unauthorized"),
            Self::Forbidden(_) => ("forbidden", "Forbidden"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::Conflict { .. } => ("conflict", "Conflict"),
            Self::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed"),
            Self::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            Self::Unavailable(_) => ("unavailable", "Service unavailable"),
            Self::BadGateway(_) => ("bad-gateway", "Gateway error"),
            Self::TooManyRequests { .. } => ("too-many-requests", "Too many requests"),
            Self::Internal(_) => ("internal", "Internal server error"),
        }
    }
}

/// Database errors: a unique violation a client can cause is its 409 (mapped by constraint name
/// in [`crate::constraints::unique_conflict`]); an exhausted pool is a 503; anything else is
/// internal.
impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        if let Some(Violation::Unique(constraint)) = violation(&e) {
            if let Some(detail) = unique_conflict(constraint) {
                return Self::conflict(detail);
            }
        }
        match e {
            // Every pooled connection stayed busy for the acquire timeout: overload, not a
            // fault; the client may retry.
            sea_orm::DbErr::ConnectionAcquire(cause) => {
                tracing::warn!(error = %cause, "no database connection free: answering 503");
                Self::Unavailable("the service is busy; retry shortly".into())
            }
            other => Self::Internal(other.into()),
        }
    }
}

/// The problem+json body (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For 409 on a state transition: the resource's current status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_status: Option<String>,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (slug, title) = self.kind();
        let (detail, errors, current_status) = match self {
            Self::Internal(e) => {
                // Logged once, here at the boundary, with its cause chain; the body stays opaque.
                tracing::error!(error = ?e, "internal error");
                ("an unexpected error occurred".to_owned(), vec![], None)
            }
            Self::Validation(errors) => {
                let detail = match errors.as_slice() {
                    [one] => format!("{}: {}", one.field, one.message),
                    many => format!("{} fields are invalid", many.len()),
                };
                (detail, errors.clone(), None)
            }
            Self::Conflict { detail, current_status } => (detail.clone(), vec![], current_status.clone()),
            other => (other.to_string(), vec![], None),
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
        }
        if let Self::TooManyRequests { retry_after_secs } = self {
            response.insert_header((actix_web::http::header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let Self::MethodNotAllowed { allow, .. } = self {
            response.insert_header((actix_web::http::header::ALLOW, allow.join(", ")));
        }
        response.content_type("application/problem+json").json(Problem {
            type_: format!("https://arauto.dev/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors,
            current_status,
        })
    }
}

/// Collects field errors from `parse` results; `finish` fails with all of them at once.
#[derive(Default)]
pub struct Fields(Vec<FieldError>);

impl Fields {
    pub fn check<T, E: ToString>(&mut self, field: &str, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(FieldError::new(field, e.to_string()));
                None
            }
        }
    }

    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    pub fn finish(self) -> AppResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self.0))
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_with_no_free_connection_is_a_503_to_retry_not_a_500() {
        let e = AppError::from(sea_orm::DbErr::ConnectionAcquire(
            sea_orm::error::ConnAcquireErr::Timeout,
        ));
        let r = e.error_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers().get("retry-after").unwrap(), "1");
        assert_eq!(r.headers().get("content-type").unwrap(), "application/problem+json");
    }

    #[test]
    fn other_database_errors_stay_internal() {
        let e = AppError::from(sea_orm::DbErr::Custom("boom".into()));
        assert_eq!(e.error_response().status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
