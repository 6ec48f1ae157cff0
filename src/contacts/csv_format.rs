//! How a spreadsheet wrote a contacts CSV file: its text encoding, its delimiter and what its
//! columns mean. Pure; [`super::import`] streams the file through it.
//!
//! - **Encoding.** A byte-order mark decides (UTF-8; a UTF-16 one is refused). Otherwise a
//!   `charset` declared in `Content-Type` is honoured (any ASCII-compatible WHATWG label:
//!   `utf-8`, `windows-1252`, `latin1`/`iso-8859-1`, which WHATWG maps to Windows-1252, …). With
//!   neither, each row is read as UTF-8 and, when its bytes are not valid UTF-8, as
//!   Windows-1252 (what Excel in Portuguese writes): a file saved either way imports, row by
//!   row, without buffering it.
//! - **Delimiter.** The most frequent of `,` `;` and tab outside quotes on the header line
//!   (ties in that order; `,` when there is none, as for a one-column file).
//! - **Columns.** Headers are compared case- and accent-insensitively: `phone`, `telefone`,
//!   `tel`, `fone`, `celular`, `cel`, `whatsapp`, `numero`/`número`, `mobile` (and
//!   `telefone_celular`, `numero_celular`, `numero_whatsapp`, `numero_telefone`,
//!   `numero_de_telefone`) give the phone; `name`, `nome`, `nome_completo`, `full_name` the
//!   name (the first such column wins; a later one becomes a field). Every other column
//!   becomes a contact field keyed by its normalised header (`Quem indicou` →
//!   `quem_indicou`); a column whose header normalises to nothing is ignored.

use std::borrow::Cow;

use csv_async::ByteRecord;
use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};
use serde::{ser::SerializeMap, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::domain::{is_field_key, ContactRequest};
use crate::error::FieldError;
use crate::text::{self, MAX_NOTE};

const PHONE_HEADERS: &[&str] = &[
    "phone",
    "telefone",
    "tel",
    "fone",
    "celular",
    "cel",
    "whatsapp",
    "numero",
    "mobile",
    "telefone_celular",
    "numero_celular",
    "numero_whatsapp",
    "numero_telefone",
    "numero_de_telefone",
];
const NAME_HEADERS: &[&str] = &["name", "nome", "nome_completo", "full_name"];
/// Longest field key, in bytes (as [`is_field_key`] allows).
const MAX_KEY_BYTES: usize = 64;

/// How the file was read, as the import result reports it:
/// `{"encoding": "windows-1252", "delimiter": ";", "columns": {"telefone": "phone", "nome": "name", "Quem indicou": "fields.quem_indicou"}}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CsvFormat {
    /// The encoding the rows were read in (WHATWG name, lower case): `utf-8`, or
    /// `windows-1252` when it was declared or when any row needed it (no charset declared).
    pub encoding: String,
    /// `,`, `;` or a tab.
    pub delimiter: String,
    /// Each header, as written, to what it became: `phone`, `name`, `fields.<key>` or
    /// `ignored`; in the file's order.
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub columns: ColumnMap,
}

/// Header → meaning, serialised as a JSON object in the file's column order.
#[derive(Debug, Clone, Default)]
pub struct ColumnMap(Vec<(String, String)>);

impl Serialize for ColumnMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (header, target) in &self.0 {
            map.serialize_entry(header, target)?;
        }
        map.end()
    }
}

/// The text encoding rows are decoded from.
#[derive(Debug, Clone, Copy)]
pub struct Charset {
    encoding: &'static Encoding,
    /// No charset declared: a row that is not UTF-8 is read as Windows-1252.
    fallback: bool,
}

impl Charset {
    /// From the `charset` parameter of `Content-Type`, if any: an unknown label, or an
    /// encoding that is not ASCII-compatible (UTF-16), is refused with a message for a 415.
    pub fn declared(label: Option<&str>) -> Result<Self, String> {
        let Some(label) = label else {
            return Ok(Self {
                encoding: UTF_8,
                fallback: true,
            });
        };
        match Encoding::for_label(label.trim().as_bytes()) {
            Some(e) if e.is_ascii_compatible() && e.output_encoding() == e => Ok(Self {
                encoding: e,
                fallback: false,
            }),
            _ => Err(format!(
                "charset {label:?} is not supported: send UTF-8 or Windows-1252 (Latin-1)"
            )),
        }
    }

    /// A byte-order mark at the start of the file overrides the declaration; returns the
    /// charset and how many bytes the mark takes.
    pub fn with_bom(self, head: &[u8]) -> Result<(Self, usize), String> {
        match Encoding::for_bom(head) {
            Some((e, len)) if e == UTF_8 => Ok((
                Self {
                    encoding: UTF_8,
                    fallback: false,
                },
                len,
            )),
            Some((e, _)) => Err(format!(
                "{} files are not supported: save the sheet as CSV UTF-8 or CSV (Windows-1252)",
                e.name()
            )),
            None => Ok((self, 0)),
        }
    }

    /// The record's cells as text. `Err` when a declared UTF-8 row is not valid UTF-8; with
    /// no declaration such a row is read as Windows-1252 and `fell_back` is set.
    pub fn decode<'r>(&self, record: &'r ByteRecord, fell_back: &mut bool) -> Result<Vec<Cow<'r, str>>, String> {
        if self.encoding == UTF_8 {
            let utf8: Result<Vec<_>, _> = record
                .iter()
                .map(|c| std::str::from_utf8(c).map(Cow::Borrowed))
                .collect();
            match utf8 {
                Ok(cells) => return Ok(cells),
                Err(_) if !self.fallback => {
                    return Err("is not valid UTF-8 (the file was declared UTF-8)".into());
                }
                Err(_) => *fell_back = true,
            }
        }
        let encoding = if self.encoding == UTF_8 {
            WINDOWS_1252
        } else {
            self.encoding
        };
        Ok(record
            .iter()
            .map(|c| encoding.decode_without_bom_handling(c).0)
            .collect())
    }

    /// The name reported in [`CsvFormat::encoding`].
    pub fn report(&self, fell_back: bool) -> String {
        let used = if fell_back { WINDOWS_1252 } else { self.encoding };
        used.name().to_ascii_lowercase()
    }
}

/// The delimiter of a file whose header line is `line` (see the module documentation).
pub fn sniff_delimiter(line: &[u8]) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(c) = counts.iter_mut().find(|(d, _)| *d == b) {
                c.1 += 1;
            }
        }
    }
    // `max_by_key` keeps the last of equal maxima: scan in reverse so ties go to `,` first.
    counts
        .iter()
        .rev()
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| *n > 0)
        .map_or(b',', |(d, _)| *d)
}

/// A header as a field key: accents and case dropped, every run of other characters one `_`
/// (`Número do WhatsApp` → `numero_do_whatsapp`), `_` before a leading digit, at most 64
/// bytes. Empty when nothing is left.
pub fn normalize_header(raw: &str) -> String {
    let mut key = String::with_capacity(raw.len());
    for c in crate::text::folded_chars(raw) {
        if c.is_alphanumeric() {
            let prefix = key.is_empty() && c.is_numeric();
            if key.len() + usize::from(prefix) + c.len_utf8() > MAX_KEY_BYTES {
                break;
            }
            if prefix {
                key.push('_');
            }
            key.push(c);
        } else if !key.is_empty() && !key.ends_with('_') {
            key.push('_');
        }
    }
    key.trim_end_matches('_').to_owned()
}

/// Where each kind of column is, read from the header row.
#[derive(Debug)]
pub struct Columns {
    phone: usize,
    name: Option<usize>,
    fields: Vec<(usize, String)>,
    headers: Vec<String>,
    report: ColumnMap,
}

impl Columns {
    /// Maps the header cells; a header breaking the text rule, or two columns that would
    /// become the same field, is a 422 naming `header[i]`; no phone column, one naming
    /// `header`.
    pub fn from_header(cells: &[Cow<str>]) -> Result<Self, FieldError> {
        let mut phone = None;
        let mut name = None;
        let mut fields: Vec<(usize, String)> = vec![];
        let mut headers = Vec::with_capacity(cells.len());
        let mut report = ColumnMap::default();
        for (i, raw) in cells.iter().enumerate() {
            let at = |m: String| FieldError::new(format!("header[{i}]"), m);
            let header = raw.trim().trim_start_matches('\u{feff}').to_owned();
            text::check(&header, MAX_NOTE).map_err(|e| at(e.to_string()))?;
            let key = normalize_header(&header);
            let target = if PHONE_HEADERS.contains(&key.as_str()) && phone.is_none() {
                phone = Some(i);
                "phone".to_owned()
            } else if NAME_HEADERS.contains(&key.as_str()) && name.is_none() {
                name = Some(i);
                "name".to_owned()
            } else if key.is_empty() {
                "ignored".to_owned()
            } else if let Some((j, _)) = fields.iter().find(|(_, k)| *k == key) {
                return Err(at(format!(
                    "column {header:?} would be the same field {key:?} as column {}",
                    j + 1
                )));
            } else {
                debug_assert!(is_field_key(&key), "{key}");
                fields.push((i, key.clone()));
                format!("fields.{key}")
            };
            if !header.is_empty() && !report.0.iter().any(|(h, _)| *h == header) {
                report.0.push((header.clone(), target));
            }
            headers.push(header);
        }
        let phone = phone.ok_or_else(|| {
            FieldError::new(
                "header",
                "the first line must name a phone column (phone, telefone, celular, whatsapp, número, fone)",
            )
        })?;
        Ok(Self {
            phone,
            name,
            fields,
            headers,
            report,
        })
    }

    /// What the columns became, for [`CsvFormat::columns`].
    pub fn report(&self) -> ColumnMap {
        self.report.clone()
    }

    /// One row as a contact request. A cell breaking the text rule (or over 1,000 characters)
    /// makes the row invalid, named by its column's header.
    pub fn contact(&self, cells: &[Cow<str>]) -> Result<ContactRequest, Vec<FieldError>> {
        let errors: Vec<FieldError> = cells
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let e = text::check(c, MAX_NOTE).err()?;
                let column = self.headers.get(i).filter(|h| !h.is_empty()).cloned();
                Some(FieldError::new(
                    column.unwrap_or_else(|| format!("column {}", i + 1)),
                    e.to_string(),
                ))
            })
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        let cell = |i: usize| cells.get(i).map_or("", |c| c.trim());
        let fields: Map<String, Value> = self
            .fields
            .iter()
            .filter(|(i, _)| !cell(*i).is_empty())
            .map(|(i, key)| (key.clone(), Value::String(cell(*i).to_owned())))
            .collect();
        Ok(ContactRequest {
            phone: cell(self.phone).to_owned(),
            name: self.name.map(|i| cell(i).to_owned()),
            fields: Some(fields),
            tag_ids: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(v: &[&'static str]) -> Vec<Cow<'static, str>> {
        v.iter().map(|s| Cow::Borrowed(*s)).collect()
    }

    #[test]
    fn portuguese_headers_map_whatever_their_case_and_accents() {
        let c = Columns::from_header(&cells(&["\u{feff}Número", "NOME", "Quem indicou", "Cidade/UF", ""])).unwrap();
        assert_eq!(
            serde_json::to_value(c.report()).unwrap(),
            serde_json::json!({"Número": "phone", "NOME": "name", "Quem indicou": "fields.quem_indicou", "Cidade/UF": "fields.cidade_uf"})
        );
        for h in ["telefone", "Celular", "WhatsApp", "fone", "numero", "Telefone Celular"] {
            assert_eq!(Columns::from_header(&cells(&[h])).unwrap().phone, 0, "{h}");
        }
    }

    #[test]
    fn a_second_phone_column_becomes_a_field_and_clashing_fields_are_refused() {
        let c = Columns::from_header(&cells(&["telefone", "celular"])).unwrap();
        assert_eq!(c.fields, [(1, "celular".to_owned())]);
        let e = Columns::from_header(&cells(&["phone", "Cidade", "cidade"])).unwrap_err();
        assert_eq!(e.field, "header[2]");
        assert_eq!(Columns::from_header(&cells(&["nome"])).unwrap_err().field, "header");
        assert_eq!(
            Columns::from_header(&cells(&["phone", "a\u{0}"])).unwrap_err().field,
            "header[1]"
        );
    }

    #[test]
    fn headers_normalise_to_field_keys() {
        assert_eq!(normalize_header("  Data de Nascimento "), "data_de_nascimento");
        assert_eq!(normalize_header("Observação (interna)"), "observacao_interna");
        assert_eq!(normalize_header("2º contato"), "_2o_contato");
        assert_eq!(normalize_header("#"), "");
        assert!(is_field_key(&normalize_header(&"x".repeat(100))));
        assert!(is_field_key(&normalize_header(&format!("1{}", "é".repeat(100)))));
    }

    #[test]
    fn the_delimiter_is_the_most_frequent_outside_quotes() {
        assert_eq!(sniff_delimiter(b"telefone;nome;cidade\r\n"), b';');
        assert_eq!(sniff_delimiter(b"phone\tname\n"), b'\t');
        assert_eq!(sniff_delimiter(b"phone,name\n"), b',');
        assert_eq!(sniff_delimiter(b"\"a;b;c\",nome\n"), b',');
        assert_eq!(sniff_delimiter(b"phone\n"), b',');
        assert_eq!(sniff_delimiter(b"a,b;c\n"), b',');
    }

    #[test]
    fn rows_are_utf8_or_else_windows_1252_unless_a_charset_was_declared() {
        let latin = ByteRecord::from(vec![&b"Jo\xe3o"[..]]);
        let utf8 = ByteRecord::from(vec!["João"]);
        let guess = Charset::declared(None).unwrap();
        let mut fell_back = false;
        assert_eq!(guess.decode(&utf8, &mut fell_back).unwrap()[0], "João");
        assert!(!fell_back);
        assert_eq!(guess.decode(&latin, &mut fell_back).unwrap()[0], "João");
        assert!(fell_back);
        assert_eq!(guess.report(true), "windows-1252");
        let declared = Charset::declared(Some("utf-8")).unwrap();
        assert!(declared.decode(&latin, &mut false).is_err());
        let cp1252 = Charset::declared(Some("ISO-8859-1")).unwrap();
        assert_eq!(cp1252.decode(&latin, &mut false).unwrap()[0], "João");
        assert_eq!(cp1252.report(false), "windows-1252");
        assert!(Charset::declared(Some("utf-16le")).is_err());
        assert!(Charset::declared(Some("klingon")).is_err());
    }

    #[test]
    fn a_byte_order_mark_decides_the_encoding() {
        let declared = Charset::declared(Some("windows-1252")).unwrap();
        let (c, len) = declared.with_bom(b"\xef\xbb\xbftelefone").unwrap();
        assert_eq!((c.report(false).as_str(), len), ("utf-8", 3));
        assert!(declared.with_bom(b"\xff\xfet\0").is_err());
        assert_eq!(declared.with_bom(b"telefone").unwrap().1, 0);
    }

    #[test]
    fn a_cell_with_nul_makes_its_row_invalid_naming_the_column() {
        let c = Columns::from_header(&cells(&["telefone", "nome"])).unwrap();
        let e = c.contact(&cells(&["11987654321", "A\u{0}na"])).unwrap_err();
        assert_eq!(e[0].field, "nome");
        let ok = c.contact(&cells(&["11987654321", " Ana "])).unwrap();
        assert_eq!(ok.name.as_deref(), Some("Ana"));
    }
}
