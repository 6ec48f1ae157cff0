//! Integrity violations read from Postgres's error code (SQLSTATE) and constraint name, never
//! from the text of the error: which rule a write broke, and what a unique rule means to a
//! client. [`crate::error::AppError`]'s `From<DbErr>` turns every known unique violation into
//! its 409 here, so callers just use `?`.

use sea_orm::{DbErr, RuntimeErr};

/// SQLSTATE `unique_violation`.
const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE `foreign_key_violation`.
const FOREIGN_KEY_VIOLATION: &str = "23503";

/// The partial unique index that lets an instance take part in one active campaign at a time.
pub const ONE_ACTIVE_PER_INSTANCE: &str = "campaigns_one_active_per_instance";
/// The foreign key from campaigns to their instance (deleting a used instance breaks it).
pub const CAMPAIGNS_INSTANCE_FKEY: &str = "campaigns_instance_id_fkey";

/// The unique index that gives a campaign one recipient per phone (PRODUCT §2: never twice
/// to the same person).
pub const ONE_RECIPIENT_PER_PHONE: &str = "recipients_campaign_id_phone_key";

/// The 409 detail for an email another user has (checked first, then enforced by the index).
pub const EMAIL_TAKEN: &str = "this email is already registered";

/// An integrity rule a statement broke, with the constraint's (or unique index's) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation<'a> {
    /// SQLSTATE 23505.
    Unique(&'a str),
    /// SQLSTATE 23503.
    ForeignKey(&'a str),
}

/// The violation behind a database error, if it is one of those this module knows; `None` for
/// every other error (connection, syntax, other SQLSTATEs, or a violation without a name).
pub fn violation(e: &DbErr) -> Option<Violation<'_>> {
    let (DbErr::Exec(RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(db)))
    | DbErr::Query(RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(db)))) = e
    else {
        return None;
    };
    let constraint = db.constraint()?;
    match db.code()?.as_ref() {
        UNIQUE_VIOLATION => Some(Violation::Unique(constraint)),
        FOREIGN_KEY_VIOLATION => Some(Violation::ForeignKey(constraint)),
        _ => None,
    }
}

/// What breaking a unique rule means to the client (the 409's detail), for every unique index
/// a request can run into; `None` for indexes only the engine's own writes touch.
pub fn unique_conflict(constraint: &str) -> Option<&'static str> {
    Some(match constraint {
        "users_email_key" => EMAIL_TAKEN,
        "instances_tenant_name_key" => "an instance with this name already exists",
        "contacts_tenant_phone_key" => "a contact with this phone already exists",
        "groups_tenant_name_key" => "a group with this name already exists",
        "tags_tenant_name_key" => "a tag with this name already exists",
        "templates_tenant_name_key" => "a template with this name already exists",
        "holidays_tenant_date_key" => "the tenant already has a holiday on this date",
        ONE_ACTIVE_PER_INSTANCE => "the instance already has an active campaign",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_that_are_not_from_the_database_are_no_violation() {
        assert_eq!(violation(&DbErr::Custom("contacts_tenant_phone_key".into())), None);
        assert_eq!(violation(&DbErr::RecordNotFound("x".into())), None);
    }

    #[test]
    fn every_unique_index_a_request_can_meet_has_a_detail() {
        for name in [
            "users_email_key",
            "contacts_tenant_phone_key",
            "groups_tenant_name_key",
            "tags_tenant_name_key",
            ONE_ACTIVE_PER_INSTANCE,
        ] {
            assert!(unique_conflict(name).is_some(), "{name}");
        }
        assert_eq!(unique_conflict(ONE_RECIPIENT_PER_PHONE), None);
    }
}
