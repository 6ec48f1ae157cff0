//! [`Template`] + recipient → text, appended to the caller's buffer.

use std::fmt::Write as _;

use chrono::{Datelike, NaiveDateTime};
use serde_json::{Map, Value};

use crate::templating::builtins::{eq_ignore_case, greeting, weekday_pt, Builtin};
use crate::templating::rng::pick;
use crate::templating::{Inner, Node, Template, VarInfo};

/// Everything a template reads about one recipient and one send.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The contact name as stored (`nome` is its first word).
    pub name: &'a str,
    /// The phone as stored.
    pub phone: &'a str,
    /// The contact's custom fields (a JSON object), if any.
    pub fields: Option<&'a Map<String, Value>>,
    /// The local send time in the campaign's zone (greeting, weekday).
    pub local_time: NaiveDateTime,
}

impl Template {
    /// Appends the text for `ctx` to `out` (which is not cleared). The same
    /// `seed` always picks the same spintax alternatives: derive it from the
    /// recipient (e.g. [`crate::templating::seed_from_bytes`]) so a preview
    /// equals the real send. Allocates nothing beyond growing `out`.
    pub fn render_into(&self, ctx: &RenderContext<'_>, seed: u64, out: &mut String) {
        let inner = &*self.inner;
        render_nodes(inner, &inner.nodes, ctx, seed, out);
    }

    /// The text for `ctx` as a new `String`; see [`Template::render_into`].
    pub fn render(&self, ctx: &RenderContext<'_>, seed: u64) -> String {
        let mut out = String::with_capacity(self.inner.lits.len() + ctx.name.len() + 32);
        self.render_into(ctx, seed, &mut out);
        out
    }
}

fn render_nodes(inner: &Inner, nodes: &[Node], ctx: &RenderContext<'_>, seed: u64, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(span) => out.push_str(&inner.lits[span.start..span.end]),
            Node::Var(i) => {
                if let Some(var) = inner.vars.get(*i) {
                    render_var(inner, var, ctx, out);
                }
            }
            Node::Spin { group, alts } => {
                if let Some(alt) = alts.get(pick(seed, *group, alts.len())) {
                    render_nodes(inner, alt, ctx, seed, out);
                }
            }
        }
    }
}

fn render_var(inner: &Inner, var: &VarInfo, ctx: &RenderContext<'_>, out: &mut String) {
    let start = out.len();
    write_value(var, ctx, out);
    if out[start..].trim().is_empty() {
        out.truncate(start);
        if let Some(f) = var.fallback {
            out.push_str(&inner.lits[f.start..f.end]);
        }
    }
}

/// Writes the raw value (possibly nothing) of `var`.
fn write_value(var: &VarInfo, ctx: &RenderContext<'_>, out: &mut String) {
    match var.builtin {
        Some(Builtin::FirstName) => out.push_str(ctx.name.split_whitespace().next().unwrap_or("")),
        Some(Builtin::FullName) => out.push_str(ctx.name.trim()),
        Some(Builtin::Phone) => out.push_str(ctx.phone),
        Some(Builtin::Greeting) => out.push_str(greeting(ctx.local_time.time())),
        Some(Builtin::Weekday) => out.push_str(weekday_pt(ctx.local_time.weekday())),
        None => match ctx.fields.and_then(|f| lookup_field(f, &var.name)) {
            Some(Value::String(s)) => out.push_str(s),
            // Writing to a String cannot fail.
            Some(Value::Number(n)) => {
                let _ = write!(out, "{n}");
            }
            Some(Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
            Some(Value::Null | Value::Array(_) | Value::Object(_)) | None => {}
        },
    }
}

/// The exact key, else the first key equal to `name` ignoring case.
fn lookup_field<'m>(fields: &'m Map<String, Value>, name: &str) -> Option<&'m Value> {
    fields
        .get(name)
        .or_else(|| fields.iter().find(|(k, _)| eq_ignore_case(k, name)).map(|(_, v)| v))
}
