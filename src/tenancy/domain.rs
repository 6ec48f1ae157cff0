//! Validated input of the tenancy domain: emails, passwords, roles, tenant names.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::AppError;

/// A lower-cased, trimmed email address of plausible shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let s = raw.trim().to_lowercase();
        let (local, domain) = s.split_once('@').ok_or("must be an email address")?;
        let shape_ok = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !s.chars().any(char::is_whitespace)
            && s.len() <= 254;
        if shape_ok {
            Ok(Self(s))
        } else {
            Err("must be an email address")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of 8 to 128 characters (never stored, only its argon2 hash).
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match raw.chars().count() {
            0..=7 => Err("must have at least 8 characters"),
            129.. => Err("must have at most 128 characters"),
            _ => Ok(Self(raw.to_owned())),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A user's role: the column `users.role` (text), mapped by sea-orm.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sea_orm::EnumIter, sea_orm::DeriveActiveEnum,
)]
#[serde(rename_all = "lowercase")]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Role {
    #[sea_orm(string_value = "admin")]
    Admin,
    #[sea_orm(string_value = "member")]
    Member,
}

/// A non-blank display name that obeys the text rule, of at most `max` characters as sent
/// (usually [`crate::text::MAX_NAME`], the `maxLength` the OpenAPI document states), trimmed.
pub fn parse_name(raw: &str, max: usize) -> Result<String, String> {
    crate::text::check(raw, max).map_err(|e| e.to_string())?;
    let s = raw.trim();
    if s.is_empty() {
        return Err("must not be blank".into());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(Email::parse("  Ana@Loja.COM ").unwrap().as_str(), "ana@loja.com");
    }

    #[test]
    fn things_that_are_not_emails_are_refused() {
        for bad in [
            "",
            "ana",
            "ana@",
            "@loja.com",
            "ana@loja",
            "a na@loja.com",
            "ana@.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Loja  ", 10).unwrap(), "Loja");
        assert!(parse_name("   ", 10).is_err());
        assert!(parse_name("abcdefghijk", 10).is_err());
    }
}

/// The authenticated caller: a user of a tenant, still existing, with their current role.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub role: Role,
    pub email: String,
}

impl AuthUser {
    /// 403 unless the caller is an admin of their tenant.
    pub fn require_admin(&self) -> Result<(), AppError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Member => Err(AppError::Forbidden("only admins may do this".into())),
        }
    }
}
