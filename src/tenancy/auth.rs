//! Passwords (argon2), the [`AuthUser`] extractor (tokens: [`super::jwt`]) and the
//! short-lived [`UserCache`] it reads users through (kept in [`super::repo`]).

pub use super::domain::AuthUser;
pub use super::repo::UserCache;
use crate::api::extract::state;
use crate::error::AppError;
use actix_web::{dev::Payload, http::header, FromRequest, HttpRequest};
use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use futures_util::future::LocalBoxFuture;

pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
    })
    .await?
}

/// A hash of a password nobody has, verified when the email is unknown so that both
/// failures take the same time.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Yx0B2xTnqYyLhvK3vT9Zr9dmhUHcK1x8nD0bTqgCe+E";

pub async fn verify_password(password: String, hash: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("bad stored hash: {e}"))?;
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(known && ok)
    })
    .await?
}

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state(req);
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(|t| t.trim().to_owned());
        Box::pin(async move {
            let state = state?;
            let token = token.ok_or_else(|| AppError::Unauthorized("a bearer token is required".into()))?;
            let invalid = || AppError::Unauthorized("the token is invalid or expired".into());
            let claims = state.jwt.verify(&token, state.clock.now()).ok_or_else(invalid)?;
            let user = state
                .users
                .get(&state.db, claims.sub)
                .await?
                .filter(|u| u.tenant_id == claims.tid)
                .ok_or_else(invalid)?;
            tracing::Span::current().record("tenant_id", tracing::field::display(user.tenant_id));
            Ok(user)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(verify_password("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!verify_password("wrong horse".into(), Some(hash)).await.unwrap());
        assert!(!verify_password("correct horse".into(), None).await.unwrap());
    }
}
