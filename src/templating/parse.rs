//! Text → [`Template`]: a single pass, recursive descent over spintax groups.

use std::sync::Arc;

use serde::Serialize;

use crate::templating::builtins::Builtin;
use crate::templating::{Inner, Node, Span, Template, VarInfo};

/// The deepest spintax nesting accepted (`{a|{b|{c|d}}}` is depth 3).
pub const MAX_NESTING: usize = 32;

/// Why a template was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParseErrorKind {
    /// `{{` with no `}}` after it.
    UnclosedVariable,
    /// `{{}}`, `{{ }}`, `{{|fallback}}`.
    EmptyVariableName,
    /// A character other than a letter, digit or `_` in a variable name.
    InvalidVariableName,
    /// A `{` with no matching `}`.
    UnclosedBrace,
    /// A `}` with no matching `{`.
    UnmatchedClosingBrace,
    /// Spintax nested deeper than [`MAX_NESTING`].
    TooDeeplyNested,
}

/// A template that does not parse. `position` counts characters (not bytes)
/// from 0 and points at the offending `{{`, `{`, `}` or name character.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message} (at character {position})")]
pub struct ParseError {
    pub position: usize,
    pub message: String,
    pub kind: ParseErrorKind,
}

/// Parses a message text once; render the result as often as needed.
pub fn parse(text: &str) -> Result<Template, ParseError> {
    let mut p = Parser {
        src: text,
        pos: 0,
        lits: String::with_capacity(text.len()),
        vars: Vec::new(),
        groups: 0,
    };
    let (nodes, end) = p.seq(0)?;
    debug_assert!(matches!(end, End::Eof));
    Ok(Template {
        inner: Arc::new(Inner {
            source: text.into(),
            lits: p.lits.into_boxed_str(),
            nodes: nodes.into_boxed_slice(),
            vars: p.vars.into_boxed_slice(),
        }),
    })
}

/// What ended a sequence.
enum End {
    Eof,
    /// `|` inside a group (the parser is past it).
    Pipe,
    /// `}` inside a group (the parser is past it).
    Close,
}

struct Parser<'s> {
    src: &'s str,
    /// Byte offset; always on a char boundary (every syntax byte is ASCII).
    pos: usize,
    lits: String,
    vars: Vec<VarInfo>,
    groups: u64,
}

fn is_special(b: u8) -> bool {
    matches!(b, b'{' | b'}' | b'|' | b'$' | b'\\')
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Parser<'_> {
    fn error(&self, byte_pos: usize, kind: ParseErrorKind, message: String) -> ParseError {
        let position = self.src.get(..byte_pos).map_or(0, |s| s.chars().count());
        ParseError {
            position,
            message,
            kind,
        }
    }

    fn bytes(&self) -> &[u8] {
        self.src.as_bytes()
    }

    fn push_text(&mut self, seq: &mut Vec<Node>, s: &str) {
        if s.is_empty() {
            return;
        }
        let start = self.lits.len();
        self.lits.push_str(s);
        let end = self.lits.len();
        if let Some(Node::Text(span)) = seq.last_mut() {
            if span.end == start {
                span.end = end;
                return;
            }
        }
        seq.push(Node::Text(Span { start, end }));
    }

    /// Parses nodes until end of text or, at `depth > 0`, an unescaped `|` / `}`.
    fn seq(&mut self, depth: usize) -> Result<(Vec<Node>, End), ParseError> {
        let mut seq = Vec::new();
        let src = self.src;
        while self.pos < src.len() {
            let b = self.bytes()[self.pos];
            match b {
                b'\\' => {
                    let next = self.bytes().get(self.pos + 1).copied();
                    match next {
                        Some(n) if is_special(n) => {
                            self.push_text(&mut seq, &src[self.pos + 1..self.pos + 2]);
                            self.pos += 2;
                        }
                        _ => {
                            self.push_text(&mut seq, "\\");
                            self.pos += 1;
                        }
                    }
                }
                b'{' => {
                    let bytes = self.bytes();
                    let var_opener = bytes.get(self.pos + 1) == Some(&b'{') && bytes.get(self.pos + 2) != Some(&b'{');
                    if var_opener {
                        self.variable(&mut seq)?;
                    } else {
                        self.group(&mut seq, depth)?;
                    }
                }
                b'}' => {
                    if depth == 0 {
                        return Err(self.error(
                            self.pos,
                            ParseErrorKind::UnmatchedClosingBrace,
                            "`}` without a matching `{` (write `\\}` for a literal brace)".into(),
                        ));
                    }
                    self.pos += 1;
                    return Ok((seq, End::Close));
                }
                b'|' => {
                    if depth > 0 {
                        self.pos += 1;
                        return Ok((seq, End::Pipe));
                    }
                    self.push_text(&mut seq, "|");
                    self.pos += 1;
                }
                b'$' => self.dollar(&mut seq),
                _ => {
                    let rest = &self.bytes()[self.pos..];
                    let run = rest.iter().position(|&c| is_special(c)).unwrap_or(rest.len());
                    // `run` stops at an ASCII byte or the end: a char boundary.
                    self.push_text(&mut seq, &src[self.pos..self.pos + run]);
                    self.pos += run;
                }
            }
        }
        Ok((seq, End::Eof))
    }

    /// At `{{`: a variable up to the first `}}`.
    fn variable(&mut self, seq: &mut Vec<Node>) -> Result<(), ParseError> {
        let src = self.src;
        let open = self.pos;
        let body_start = open + 2;
        let Some(rel_close) = src[body_start..].find("}}") else {
            return Err(self.error(
                open,
                ParseErrorKind::UnclosedVariable,
                "`{{` without a closing `}}`".into(),
            ));
        };
        let body_end = body_start + rel_close;
        let body = &src[body_start..body_end];
        let (name_part, fallback) = match body.find('|') {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        if name_part.contains(['{', '}']) {
            // `{{nome} … }}` or `{{nome … {{x}}`: the first `{{` was never closed.
            return Err(self.error(
                open,
                ParseErrorKind::UnclosedVariable,
                "`{{` without a closing `}}`".into(),
            ));
        }
        let name = name_part.trim();
        if name.is_empty() {
            return Err(self.error(
                open,
                ParseErrorKind::EmptyVariableName,
                "empty variable name in `{{ }}`".into(),
            ));
        }
        let name_offset = body_start + (name_part.len() - name_part.trim_start().len());
        if let Some((i, c)) = name.char_indices().find(|&(_, c)| !is_name_char(c)) {
            return Err(self.error(
                name_offset + i,
                ParseErrorKind::InvalidVariableName,
                format!("invalid character {c:?} in variable name {name:?} (use letters, digits and `_`)"),
            ));
        }
        let fallback = fallback.map(|f| {
            let f = f.trim();
            let start = self.lits.len();
            self.lits.push_str(f);
            Span {
                start,
                end: self.lits.len(),
            }
        });
        self.vars.push(VarInfo {
            name: name.into(),
            builtin: Builtin::from_name(name),
            fallback,
        });
        seq.push(Node::Var(self.vars.len() - 1));
        self.pos = body_end + 2;
        Ok(())
    }

    /// At a single `{`: a spintax group, or literal braces when it has no `|`.
    fn group(&mut self, seq: &mut Vec<Node>, depth: usize) -> Result<(), ParseError> {
        let open = self.pos;
        if depth >= MAX_NESTING {
            return Err(self.error(
                open,
                ParseErrorKind::TooDeeplyNested,
                format!("braces nested deeper than {MAX_NESTING} levels"),
            ));
        }
        self.pos += 1;
        let mut alts: Vec<Box<[Node]>> = Vec::new();
        loop {
            let (nodes, end) = self.seq(depth + 1)?;
            match end {
                End::Pipe => alts.push(nodes.into_boxed_slice()),
                End::Close => {
                    alts.push(nodes.into_boxed_slice());
                    break;
                }
                End::Eof => {
                    return Err(self.error(
                        open,
                        ParseErrorKind::UnclosedBrace,
                        "`{` without a matching `}` (write `\\{` for a literal brace)".into(),
                    ));
                }
            }
        }
        if alts.len() == 1 {
            // `{text}`: literal braces around the (still live) content.
            self.push_text(seq, "{");
            for alt in alts {
                seq.extend(alt.into_vec());
            }
            self.push_text(seq, "}");
        } else {
            let group = self.groups;
            self.groups += 1;
            seq.push(Node::Spin {
                group,
                alts: alts.into_boxed_slice(),
            });
        }
        Ok(())
    }

    /// At `$`: `$contact_name` / `$contact_number`, or a literal `$`.
    fn dollar(&mut self, seq: &mut Vec<Node>) {
        let src = self.src;
        let rest = &src[self.pos + 1..];
        let ident_len = rest
            .char_indices()
            .find(|&(_, c)| !is_name_char(c))
            .map_or(rest.len(), |(i, _)| i);
        let ident = &rest[..ident_len];
        if let ident @ ("contact_name" | "contact_number") = ident {
            self.vars.push(VarInfo {
                name: ident.into(),
                builtin: Builtin::from_name(ident),
                fallback: None,
            });
            seq.push(Node::Var(self.vars.len() - 1));
            self.pos += 1 + ident_len;
        } else {
            self.push_text(seq, "$");
            self.pos += 1;
        }
    }
}
