//! Access tokens: JWT (HS256) with an expiry checked on the injected clock that issued them.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a token says: the user (`sub`), their tenant (`tid`), issued-at and expiry (Unix
/// seconds, UTC).
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub tid: Uuid,
    pub iat: i64,
    pub exp: i64,
}

/// The process's signing keys and token lifetime (`auth.jwt_secret`, `auth.token_ttl_hours`).
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: chrono::Duration,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl_hours: i64) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl: chrono::Duration::hours(ttl_hours),
        }
    }

    pub fn issue(&self, user_id: Uuid, tenant_id: Uuid, now: DateTime<Utc>) -> anyhow::Result<String> {
        let claims = Claims {
            sub: user_id,
            tid: tenant_id,
            iat: now.timestamp(),
            exp: (now + self.ttl).timestamp(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The token's claims when its signature holds and it has not expired at `now` (the same
    /// injected clock that issued it: `exp` is checked here, not against the system clock).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|d| d.claims)
            .filter(|c| now.timestamp() < c.exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_token_is_valid_for_its_lifetime_on_the_clock_that_issued_it() {
        let keys = JwtKeys::new(b"secret", 1);
        let (u, t) = (Uuid::new_v4(), Uuid::new_v4());
        // Years away from the system clock, in both directions: only the injected instant counts.
        for issued in [at("2001-01-01T00:00:00Z"), at("2090-06-01T12:00:00Z")] {
            let token = keys.issue(u, t, issued).unwrap();
            assert_eq!(keys.verify(&token, issued).unwrap().sub, u);
            let last_second = issued + chrono::Duration::minutes(59) + chrono::Duration::seconds(59);
            assert!(keys.verify(&token, last_second).is_some());
            assert!(keys.verify(&token, issued + chrono::Duration::hours(1)).is_none());
        }
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let now = at("2026-11-30T10:00:00Z");
        let token = JwtKeys::new(b"one", 1)
            .issue(Uuid::new_v4(), Uuid::new_v4(), now)
            .unwrap();
        assert!(JwtKeys::new(b"two", 1).verify(&token, now).is_none());
    }
}
