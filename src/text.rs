//! The one rule every text input obeys, wherever it comes from (JSON bodies, query strings,
//! CSV cells), and the length limits the OpenAPI document states.
//!
//! A text may hold any Unicode scalar value except:
//! - C0 control characters other than tab, line feed and carriage return (U+0000–U+001F):
//!   Postgres refuses NUL in `text` and `jsonb`, and WhatsApp shows none of the others;
//! - Unicode noncharacters (U+FDD0–U+FDEF and every U+xxFFFE/U+xxFFFF), which are not text.
//!
//! Lone surrogates cannot occur: a Rust `str` never holds one, and JSON that escapes one
//! (`"\ud800"`) is refused as malformed when it is parsed (400).
//!
//! Lengths are counted in characters (Unicode scalar values), as WhatsApp counts them.
//! [`MAX_TEXT`] is also the ceiling for any string in any JSON body; fields with a lower limit
//! ([`MAX_NAME`], [`MAX_NOTE`]) are checked by their domain validators, which use these
//! constants, and carry `#[schema(max_length = …)]` with the same number.

use serde_json::Value;
use unicode_normalization::{char::is_combining_mark, UnicodeNormalization};

use crate::error::FieldError;

/// `s` as compared without accents or case: compatibility-decomposed (NFKD), combining
/// marks dropped, lower case (`Número` → `numero`, `ＳÁＩＲ` → `sair`).
pub fn folded_chars(s: &str) -> impl Iterator<Item = char> + '_ {
    s.nfkd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase)
}

/// Message and template texts (WhatsApp's limit), and the ceiling for any string in a body:
/// 4,096 characters.
pub const MAX_TEXT: usize = 4096;
/// Names of tenants, users' tenants, instances, contacts, groups, tags, templates,
/// campaigns and holidays: 200 characters.
pub const MAX_NAME: usize = 200;
/// Descriptions, contact field values, query parameter values and CSV cells: 1,000
/// characters.
pub const MAX_NOTE: usize = 1000;
/// At most this many offending strings are reported for one request.
const MAX_REPORTED: usize = 50;

/// Why a text was refused; its `Display` is the message a client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// A character outside the rule, at this 1-based character position.
    #[error("must not contain the character U+{:04X} (at character {at})", *ch as u32)]
    Forbidden { ch: char, at: usize },
    /// More characters than the limit.
    #[error("must have at most {max} characters")]
    TooLong { max: usize },
}

/// Whether `c` is refused in any text (see the module documentation).
pub fn is_forbidden(c: char) -> bool {
    let n = c as u32;
    (n < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE
}

/// Checks `s` against the rule and a limit of `max` characters.
pub fn check(s: &str, max: usize) -> Result<(), TextError> {
    let mut count = 0;
    for c in s.chars() {
        count += 1;
        if is_forbidden(c) {
            return Err(TextError::Forbidden { ch: c, at: count });
        }
        if count > max {
            return Err(TextError::TooLong { max });
        }
    }
    Ok(())
}

/// Every string (and object key) in a parsed JSON body that breaks the rule or exceeds
/// [`MAX_TEXT`], named by its JSON path (`messages[1].text`, `fields.nota`; `body` for the
/// root), at most 50 of them, in document order.
pub fn check_json(value: &Value) -> Vec<FieldError> {
    let mut errors = vec![];
    walk(value, &mut String::new(), &mut errors);
    errors
}

fn walk(value: &Value, path: &mut String, errors: &mut Vec<FieldError>) {
    if errors.len() >= MAX_REPORTED {
        return;
    }
    match value {
        Value::String(s) => {
            if let Err(e) = check(s, MAX_TEXT) {
                let field = if path.is_empty() { "body" } else { path.as_str() };
                errors.push(FieldError::new(field, e.to_string()));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                match check(key, MAX_TEXT) {
                    Ok(()) => path.push_str(key),
                    Err(e) => {
                        path.push_str(&key.escape_debug().to_string());
                        if errors.len() < MAX_REPORTED {
                            errors.push(FieldError::new(path.clone(), format!("the key {e}")));
                        }
                    }
                }
                walk(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Every query parameter whose name or value breaks the rule, or whose value exceeds
/// [`MAX_NOTE`], named by the parameter (`q`).
pub fn check_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<FieldError> {
    pairs
        .into_iter()
        .filter_map(|(name, value)| {
            let message = match check(name, MAX_NOTE) {
                Err(e) => format!("the name {e}"),
                Ok(()) => check(value, MAX_NOTE).err()?.to_string(),
            };
            Some(FieldError::new(name.escape_debug().to_string(), message))
        })
        .take(MAX_REPORTED)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tabs_newlines_accents_and_emoji_are_text() {
        assert_eq!(check("Olá,\tJoão!\r\nVeja 🎉 a oferta", MAX_TEXT), Ok(()));
    }

    #[test]
    fn nul_and_other_controls_are_refused_with_their_position() {
        assert_eq!(
            check("J\u{0}oão", MAX_NAME),
            Err(TextError::Forbidden { ch: '\0', at: 2 })
        );
        assert!(check("a\u{1b}[31m", MAX_NAME).is_err());
        assert!(check("x\u{7}", MAX_NAME).is_err());
        assert_eq!(
            TextError::Forbidden { ch: '\0', at: 2 }.to_string(),
            "must not contain the character U+0000 (at character 2)"
        );
    }

    #[test]
    fn noncharacters_are_refused() {
        for c in ['\u{FFFE}', '\u{FFFF}', '\u{FDD0}', '\u{1FFFF}', '\u{10FFFE}'] {
            assert!(is_forbidden(c), "{c:?}");
        }
        for c in ['\u{FFFD}', '\u{FEFF}', '\u{FDCF}', '\u{1F600}', 'ç'] {
            assert!(!is_forbidden(c), "{c:?}");
        }
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        assert_eq!(check(&"é".repeat(200), MAX_NAME), Ok(()));
        assert_eq!(
            check(&"é".repeat(201), MAX_NAME),
            Err(TextError::TooLong { max: MAX_NAME })
        );
    }

    #[test]
    fn every_offending_string_in_a_body_is_named_by_its_path() {
        let body = json!({
            "name": "ok",
            "messages": [{"text": "fine"}, {"text": "bad\u{0}"}],
            "fields": {"nota": "x".repeat(MAX_TEXT + 1)},
            "tags": ["a", "\u{1}"],
        });
        let mut fields: Vec<String> = check_json(&body).into_iter().map(|e| e.field).collect();
        fields.sort();
        assert_eq!(fields, ["fields.nota", "messages[1].text", "tags[1]"]);
        assert_eq!(check_json(&json!("\u{0}"))[0].field, "body");
        assert!(check_json(&json!({"a": [1, true, null, {"b": "ok"}]})).is_empty());
    }

    #[test]
    fn a_bad_key_is_named_too() {
        let e = check_json(&json!({"fields": {"a\u{0}": "x"}}));
        assert_eq!(e[0].field, "fields.a\\0");
    }

    #[test]
    fn query_parameters_are_named() {
        let e = check_query([("q", "Jo\u{0}"), ("page", "1"), ("phone", &*"9".repeat(MAX_NOTE + 1))]);
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["q", "phone"]);
    }

    #[test]
    fn the_openapi_document_states_the_same_limits() {
        use utoipa::OpenApi;
        let doc = serde_json::to_value(crate::api::openapi::ApiDoc::openapi()).unwrap();
        let max = |schema: &str, prop: &str| {
            doc["components"]["schemas"][schema]["properties"][prop]["maxLength"]
                .as_u64()
                .unwrap_or_else(|| panic!("{schema}.{prop} has no maxLength")) as usize
        };
        for (schema, prop, limit) in [
            ("MessageSpec", "text", MAX_TEXT),
            ("Message", "text", MAX_TEXT),
            ("TemplateRequest", "text", MAX_TEXT),
            ("TemplateRequest", "name", MAX_NAME),
            ("CampaignRequest", "name", MAX_NAME),
            ("ContactRequest", "name", MAX_NAME),
            ("GroupRequest", "name", MAX_NAME),
            ("TagRequest", "name", MAX_NAME),
            ("HolidayRequest", "name", MAX_NAME),
            ("CreateInstanceRequest", "name", MAX_NAME),
            ("SignupRequest", "tenant_name", MAX_NAME),
        ] {
            assert_eq!(max(schema, prop), limit, "{schema}.{prop}");
        }
    }
}
