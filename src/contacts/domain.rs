//! A contact as validated input.

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::phone::Phone;
use crate::error::FieldError;
use crate::text::{self, MAX_NAME, MAX_NOTE};

/// Most extra fields a contact may carry.
pub const MAX_FIELDS: usize = 50;

/// A contact as sent by clients (`POST /contacts`, `POST /contacts/bulk` items).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"phone": "(11) 98765-4321", "name": "João Silva", "fields": {"quem_indicou": "Ana"}, "tag_ids": []}))]
pub struct ContactRequest {
    /// Any common notation; normalised to digits with country code.
    pub phone: String,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// Extra fields usable as template variables: `{"quem_indicou": "Ana"}`; up to 50 keys,
    /// string values up to 1,000 characters.
    #[serde(default)]
    #[schema(value_type = Option<ContactFields>)]
    pub fields: Option<Map<String, Value>>,
    #[serde(default)]
    pub tag_ids: Option<Vec<Uuid>>,
}

/// The OpenAPI schema of a contact's `fields`, as [`validate_fields`] accepts them and the
/// API returns them: a flat object of at most [`MAX_FIELDS`] keys (letters, digits and `_`,
/// not starting with a digit, at most 64 bytes) whose values are strings (at most
/// [`MAX_NOTE`] characters), numbers, booleans or `null`. Documentation only.
pub struct ContactFields;

impl utoipa::PartialSchema for ContactFields {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let value = ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([
                Type::String,
                Type::Number,
                Type::Boolean,
                Type::Null,
            ]))
            .max_length(Some(MAX_NOTE));
        let key = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(64));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Extra fields, usable as template variables (`{{quem_indicou}}`). Keys: letters, \
                 digits and `_`, not starting with a digit, at most 64 bytes. Values: strings (at \
                 most 1000 characters), numbers, booleans or null.",
            ))
            .property_names(Some(key))
            .additional_properties(Some(value))
            .max_properties(Some(MAX_FIELDS))
            .examples([serde_json::json!({"quem_indicou": "Ana", "pedidos": 3})])
            .into()
    }
}

impl utoipa::ToSchema for ContactFields {}

/// A contact ready to be written.
#[derive(Debug, Clone)]
pub struct NewContact {
    pub phone: Phone,
    pub name: String,
    pub fields: Map<String, Value>,
    pub tag_ids: Vec<Uuid>,
}

impl NewContact {
    pub fn parse(req: ContactRequest, country: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = vec![];
        let phone = Phone::parse(&req.phone, country)
            .map_err(|e| errors.push(FieldError::new("phone", e)))
            .ok();
        let name = req
            .name
            .as_deref()
            .map(parse_contact_name)
            .transpose()
            .unwrap_or_else(|e| {
                errors.push(FieldError::new("name", e));
                None
            });
        let fields = req.fields.unwrap_or_default();
        if let Err(e) = validate_fields(&fields) {
            errors.push(e);
        }
        match phone {
            Some(phone) if errors.is_empty() => Ok(Self {
                phone,
                name: name.unwrap_or_default(),
                fields,
                tag_ids: dedup(req.tag_ids.unwrap_or_default()),
            }),
            _ => Err(errors),
        }
    }
}

pub fn dedup(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    ids
}

/// A contact's name, trimmed (may be empty): at most [`MAX_NAME`] characters of text as sent.
pub fn parse_contact_name(raw: &str) -> Result<String, String> {
    text::check(raw, MAX_NAME).map_err(|e| e.to_string())?;
    Ok(raw.trim().to_owned())
}

/// The longest field key, in bytes of UTF-8 (an accented letter takes 2).
pub const MAX_FIELD_KEY_BYTES: usize = 64;

/// A field key: usable as a template variable (`{{quem_indicou}}`), at most
/// [`MAX_FIELD_KEY_BYTES`].
pub fn is_field_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && key.len() <= MAX_FIELD_KEY_BYTES
}

/// Fields are a flat object of strings, numbers, booleans or nulls.
pub fn validate_fields(fields: &Map<String, Value>) -> Result<(), FieldError> {
    if fields.len() > MAX_FIELDS {
        return Err(FieldError::new(
            "fields",
            format!("must have at most {MAX_FIELDS} keys"),
        ));
    }
    for (key, value) in fields {
        let at = |m: &str| FieldError::new(format!("fields.{key}"), m);
        if key.len() > MAX_FIELD_KEY_BYTES {
            return Err(at(&format!(
                "keys must have at most {MAX_FIELD_KEY_BYTES} bytes (an accented letter takes 2)"
            )));
        }
        if !is_field_key(key) {
            return Err(at("keys must be letters, digits and '_', not starting with a digit"));
        }
        match value {
            Value::Array(_) | Value::Object(_) => return Err(at("must be a string, number, boolean or null")),
            Value::String(s) => text::check(s, MAX_NOTE).map_err(|e| at(&e.to_string()))?,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> ContactRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_contact_gets_a_normalised_phone_and_a_trimmed_name() {
        let c = NewContact::parse(req(json!({"phone": "(11) 98765-4321", "name": " Ana Souza "})), "BR").unwrap();
        assert_eq!(c.phone.as_str(), "5511987654321");
        assert_eq!(c.name, "Ana Souza");
    }

    #[test]
    fn every_bad_part_of_a_contact_is_named() {
        let errors = NewContact::parse(
            req(json!({"phone": "12", "name": "x".repeat(201), "fields": {"a b": 1}})),
            "BR",
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["phone", "name", "fields.a b"]);
    }

    #[test]
    fn nested_field_values_are_refused() {
        let e = validate_fields(json!({"k": [1]}).as_object().unwrap()).unwrap_err();
        assert_eq!(e.field, "fields.k");
    }

    #[test]
    fn field_keys_must_work_as_template_variables() {
        assert!(is_field_key("quem_indicou"));
        assert!(is_field_key("cidade2"));
        assert!(!is_field_key("2cidade"));
        assert!(!is_field_key("quem-indicou"));
        assert!(!is_field_key(""));
        let long: serde_json::Map<String, Value> = [("a".repeat(65), Value::from("x"))].into_iter().collect();
        let e = validate_fields(&long).unwrap_err();
        assert!(e.message.contains("at most 64 bytes"), "{}", e.message);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "João P. Silva", "fields": {"quem_indicou": "Ana"}}))]
pub struct UpdateContactRequest {
    pub phone: Option<String>,
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// Replaces all fields.
    #[schema(value_type = Option<ContactFields>)]
    pub fields: Option<Map<String, Value>>,
    /// Replaces the contact's tags.
    pub tag_ids: Option<Vec<Uuid>>,
    /// `true` opts the contact out (now: its pending and queued sends in every campaign are
    /// skipped), `false` opts them back in (as `POST /contacts/{id}/opt-in`). Audited.
    pub opted_out: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"contacts": [{"phone": "5511987654321", "name": "João Silva"}, {"phone": "5521987654321", "name": "Maria", "fields": {"plano": "ouro"}}]}))]
pub struct BulkRequest {
    /// Up to 10,000 contacts, upserted by phone.
    pub contacts: Vec<ContactRequest>,
}

pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}
