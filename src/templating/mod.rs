//! Message templates, personalised per recipient.
//!
//! A message text is parsed once ([`parse`]) into a [`Template`], checked at
//! creation ([`unknown_variables`]), then rendered per recipient
//! ([`Template::render_into`]) with a per-recipient `seed`, so that a preview
//! and the actual send of the same recipient produce the same text.
//!
//! # Syntax
//!
//! | form | meaning |
//! | --- | --- |
//! | `{{nome}}`, `{{ nome }}` | a variable; whitespace inside the braces is ignored |
//! | `{{quem_indicou\|amigo}}` | a variable with a fallback, used when the value is missing, empty or blank |
//! | `{{quem_indicou\|}}` | an empty fallback: "optional, render nothing when missing" |
//! | `$contact_name`, `$contact_number` | legacy forms of the full name and the phone |
//! | `{Oi\|Olá\|E aí}` | spintax: one alternative, chosen from the seed; nesting allowed |
//! | `{texto}` | braces without a `\|` at their level are literal text (`{` and `}` kept) |
//! | `\{` `\}` `\|` `\$` `\\` | escapes for a literal `{`, `}`, `\|`, `$`, `\` |
//!
//! Variable names are letters (Unicode), digits and `_`. Built-in names are
//! matched case-insensitively:
//!
//! | built-in | aliases | value |
//! | --- | --- | --- |
//! | `nome` | `first_name` | first whitespace-separated word of the contact name |
//! | `nome_completo` | `name`, `full_name`, `contact_name` | the contact name, trimmed |
//! | `telefone` | `phone`, `contact_number` | the phone as stored |
//! | `saudacao` | `saudação`, `greeting` | "Bom dia" (< 12:00), "Boa tarde" (12:00–17:59), "Boa noite" (≥ 18:00) |
//! | `dia_semana` | `weekday` | `segunda-feira` … `domingo` at the local send time |
//!
//! Any other name reads the contact's `fields` object: the exact key first,
//! then a case-insensitive match. Strings render as they are, numbers and
//! booleans in their JSON form; `null`, arrays, objects, a missing key, an
//! empty or whitespace-only value count as missing. A built-in name always
//! wins over a field of the same name.
//!
//! A missing value renders its fallback, or nothing when there is none.
//!
//! # Errors (at parse time, position in characters from 0)
//!
//! `{{` without a closing `}}`, an empty or malformed variable name, a `{`
//! without its `}`, a `}` without its `{`, spintax nested deeper than
//! [`MAX_NESTING`]. Inside `{{ … }}` there are no escapes; the fallback runs
//! from the first `|` to the first `}}`.
//!
//! `$` followed by anything but exactly `contact_name` / `contact_number`
//! (ending at a character that is not a letter, digit or `_`) is literal.

mod builtins;
mod parse;
mod render;
mod rng;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::templating::builtins::{greeting, weekday_pt, Builtin};
pub use crate::templating::parse::{parse, ParseError, ParseErrorKind, MAX_NESTING};
pub use crate::templating::render::RenderContext;
pub use crate::templating::rng::{seed_from_bytes, SplitMix64};

/// A parsed message template. Cloning is an `Arc` increment; it is `Send + Sync`.
#[derive(Clone)]
pub struct Template {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The text as written, kept for storage and display.
    pub(crate) source: Box<str>,
    /// Every literal piece and fallback, unescaped; nodes point into it.
    pub(crate) lits: Box<str>,
    pub(crate) nodes: Box<[Node]>,
    /// Every variable occurrence, in text order (all spintax branches).
    pub(crate) vars: Box<[VarInfo]>,
}

/// A byte range into [`Inner::lits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

#[derive(Debug)]
pub(crate) enum Node {
    Text(Span),
    /// Index into [`Inner::vars`].
    Var(usize),
    /// A spintax group with at least two alternatives.
    Spin {
        group: u64,
        alts: Box<[Box<[Node]>]>,
    },
}

#[derive(Debug)]
pub(crate) struct VarInfo {
    pub(crate) name: Box<str>,
    pub(crate) builtin: Option<Builtin>,
    pub(crate) fallback: Option<Span>,
}

/// One variable occurrence in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VarRef<'a> {
    /// The name as written (trimmed), e.g. `Nome`, `quem_indicou`, `contact_name`.
    pub name: &'a str,
    /// The fallback text, if the variable has one (possibly empty).
    pub fallback: Option<&'a str>,
    /// The built-in it names, if any.
    pub builtin: Option<Builtin>,
}

impl VarRef<'_> {
    pub fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }

    pub fn is_builtin(&self) -> bool {
        self.builtin.is_some()
    }
}

impl Template {
    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Every variable occurrence in text order, including those inside every
    /// spintax alternative; a variable used twice appears twice.
    pub fn variables(&self) -> impl Iterator<Item = VarRef<'_>> + '_ {
        let lits = &*self.inner.lits;
        self.inner.vars.iter().map(move |v| VarRef {
            name: &v.name,
            fallback: v.fallback.map(|s| &lits[s.start..s.end]),
            builtin: v.builtin,
        })
    }

    /// Whether the text depends on the seed (contains spintax).
    pub fn has_spintax(&self) -> bool {
        // Literal `{…}` groups are flattened into their parent at parse time,
        // so any spintax group has an outermost one among the top-level nodes.
        self.inner.nodes.iter().any(|n| matches!(n, Node::Spin { .. }))
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.inner.source == other.inner.source
    }
}

impl Eq for Template {}

impl std::str::FromStr for Template {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// Serialised as its source text.
impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.source())
    }
}

/// Deserialised from source text, which must parse.
impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The names (deduplicated, in order of first appearance) of the variables
/// that have no fallback, are not built-in and for which `known_field_keys`
/// answers `false`. A template for which this is non-empty should be rejected
/// at creation: those variables would render as nothing.
///
/// `known_field_keys` gets the name as written; since rendering also matches
/// field keys case-insensitively, a predicate that does the same is accurate.
pub fn unknown_variables<'a>(t: &'a Template, known_field_keys: &dyn Fn(&str) -> bool) -> Vec<&'a str> {
    let mut out: Vec<&'a str> = Vec::new();
    for v in t.variables() {
        if v.fallback.is_none() && v.builtin.is_none() && !out.contains(&v.name) && !known_field_keys(v.name) {
            out.push(v.name);
        }
    }
    out
}

/// Which of `variant_count` message variants the send number `send_index`
/// (0-based, in send order) uses: round robin, `0, 1, …, n-1, 0, 1, …`.
/// A `variant_count` of 0 gives 0.
pub fn variant_for(send_index: u64, variant_count: usize) -> usize {
    if variant_count == 0 {
        return 0;
    }
    // The remainder is < variant_count, so it fits in usize.
    (send_index % variant_count as u64) as usize
}
