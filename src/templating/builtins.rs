//! Built-in variables, their aliases, and the greeting / weekday helpers.

use chrono::{NaiveTime, Timelike, Weekday};
use serde::Serialize;

/// A variable whose value comes from the contact or the send time rather than
/// from the contact's `fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// `{{nome}}`: the first whitespace-separated word of the contact name.
    FirstName,
    /// `{{nome_completo}}`: the full contact name, surrounding whitespace trimmed.
    FullName,
    /// `{{telefone}}`: the phone exactly as stored.
    Phone,
    /// `{{saudacao}}`: "Bom dia" / "Boa tarde" / "Boa noite" at the local send time.
    Greeting,
    /// `{{dia_semana}}`: the local weekday in Portuguese, lower case, full form.
    Weekday,
}

/// Every accepted spelling, matched case-insensitively. The first spelling of
/// each built-in is its canonical (Portuguese) name.
const ALIASES: &[(&str, Builtin)] = &[
    ("nome", Builtin::FirstName),
    ("first_name", Builtin::FirstName),
    ("nome_completo", Builtin::FullName),
    ("name", Builtin::FullName),
    ("full_name", Builtin::FullName),
    ("contact_name", Builtin::FullName),
    ("telefone", Builtin::Phone),
    ("phone", Builtin::Phone),
    ("contact_number", Builtin::Phone),
    ("saudacao", Builtin::Greeting),
    ("saudação", Builtin::Greeting),
    ("greeting", Builtin::Greeting),
    ("dia_semana", Builtin::Weekday),
    ("weekday", Builtin::Weekday),
];

impl Builtin {
    /// The built-in named `name` (any accepted alias, case-insensitive), if any.
    pub fn from_name(name: &str) -> Option<Builtin> {
        ALIASES
            .iter()
            .find(|(alias, _)| eq_ignore_case(alias, name))
            .map(|&(_, b)| b)
    }

    /// The canonical Portuguese name (`nome`, `nome_completo`, `telefone`,
    /// `saudacao`, `dia_semana`).
    pub fn canonical_name(self) -> &'static str {
        match self {
            Builtin::FirstName => "nome",
            Builtin::FullName => "nome_completo",
            Builtin::Phone => "telefone",
            Builtin::Greeting => "saudacao",
            Builtin::Weekday => "dia_semana",
        }
    }

    /// Every accepted name of every built-in (for help texts and editors).
    pub fn all_names() -> impl Iterator<Item = (&'static str, Builtin)> {
        ALIASES.iter().copied()
    }
}

/// Unicode-aware case-insensitive comparison that never allocates.
pub(crate) fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// The greeting for a local time: "Bom dia" before 12:00, "Boa tarde" from
/// 12:00 to 17:59, "Boa noite" from 18:00 (so 00:00–11:59 is "Bom dia").
pub fn greeting(t: NaiveTime) -> &'static str {
    match t.hour() {
        0..=11 => "Bom dia",
        12..=17 => "Boa tarde",
        _ => "Boa noite",
    }
}

/// The weekday in Portuguese, lower case, full form (`segunda-feira` … `domingo`).
pub fn weekday_pt(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "segunda-feira",
        Weekday::Tue => "terça-feira",
        Weekday::Wed => "quarta-feira",
        Weekday::Thu => "quinta-feira",
        Weekday::Fri => "sexta-feira",
        Weekday::Sat => "sábado",
        Weekday::Sun => "domingo",
    }
}
