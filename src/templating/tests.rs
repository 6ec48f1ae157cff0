use std::collections::HashSet;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use serde_json::{json, Map, Value};

use crate::templating::{
    greeting, parse, seed_from_bytes, unknown_variables, variant_for, weekday_pt, Builtin, ParseErrorKind,
    RenderContext, SplitMix64, Template, MAX_NESTING,
};

/// 2024-06-03 is a Monday.
fn at(day_offset: u32, h: u32, m: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 6, 3 + day_offset)
        .unwrap()
        .and_hms_opt(h, m, 0)
        .unwrap()
}

fn fields() -> Map<String, Value> {
    match json!({
        "quem_indicou": "Carla",
        "Cidade": "São Paulo",
        "pedidos": 3,
        "saldo": 12.5,
        "vip": true,
        "nulo": null,
        "vazio": "",
        "branco": "   ",
        "lista": [1, 2],
        "nome": "campo nome",
    }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn ctx(f: &Map<String, Value>) -> RenderContext<'_> {
    RenderContext {
        name: "João da Silva",
        phone: "5511987654321",
        fields: Some(f),
        local_time: at(0, 9, 30),
    }
}

fn render(text: &str) -> String {
    let f = fields();
    parse(text).unwrap().render(&ctx(&f), 7)
}

fn render_seed(text: &str, seed: u64) -> String {
    let f = fields();
    parse(text).unwrap().render(&ctx(&f), seed)
}

fn err_kind(text: &str) -> (ParseErrorKind, usize) {
    let e = parse(text).unwrap_err();
    (e.kind, e.position)
}

// ---- built-in variables and aliases ----

#[test]
fn nome_is_the_first_word_of_the_contact_name() {
    assert_eq!(render("Oi {{nome}}!"), "Oi João!");
}

#[test]
fn nome_skips_leading_whitespace_and_splits_on_any_whitespace() {
    let f = fields();
    let mut c = ctx(&f);
    c.name = "  Maria\tClara ";
    assert_eq!(parse("{{nome}}").unwrap().render(&c, 0), "Maria");
}

#[test]
fn nome_completo_is_the_trimmed_full_name() {
    let f = fields();
    let mut c = ctx(&f);
    c.name = " João da Silva ";
    assert_eq!(parse("[{{nome_completo}}]").unwrap().render(&c, 0), "[João da Silva]");
}

#[test]
fn telefone_is_the_phone_as_stored() {
    assert_eq!(render("{{telefone}}"), "5511987654321");
}

#[test]
fn english_aliases_map_to_the_portuguese_built_ins() {
    assert_eq!(render("{{first_name}}"), "João");
    assert_eq!(render("{{name}}"), "João da Silva");
    assert_eq!(render("{{full_name}}"), "João da Silva");
    assert_eq!(render("{{contact_name}}"), "João da Silva");
    assert_eq!(render("{{phone}}"), "5511987654321");
    assert_eq!(render("{{contact_number}}"), "5511987654321");
    assert_eq!(render("{{greeting}}"), "Bom dia");
    assert_eq!(render("{{weekday}}"), "segunda-feira");
}

#[test]
fn the_accented_saudacao_is_accepted() {
    assert_eq!(render("{{saudação}}"), "Bom dia");
    assert_eq!(render("{{SAUDAÇÃO}}"), "Bom dia");
}

#[test]
fn built_in_names_ignore_case() {
    assert_eq!(
        render("{{Nome}} {{NOME_COMPLETO}} {{Telefone}}"),
        "João João da Silva 5511987654321"
    );
}

#[test]
fn a_built_in_wins_over_a_field_of_the_same_name() {
    assert_eq!(render("{{nome}}"), "João");
}

#[test]
fn whitespace_inside_the_braces_is_ignored() {
    assert_eq!(render("{{ nome }}|{{\tnome_completo\n}}"), "João|João da Silva");
}

#[test]
fn dollar_contact_name_is_the_full_name() {
    assert_eq!(render("Oi $contact_name, tudo bem?"), "Oi João da Silva, tudo bem?");
}

#[test]
fn dollar_contact_number_is_the_phone() {
    assert_eq!(render("Tel: $contact_number."), "Tel: 5511987654321.");
}

#[test]
fn any_other_dollar_is_literal_text() {
    assert_eq!(
        render("R$ 10, $5, $, $nome, $contact_names, $Contact_name"),
        "R$ 10, $5, $, $nome, $contact_names, $Contact_name"
    );
    assert_eq!(render("$contact_name$contact_number"), "João da Silva5511987654321");
}

// ---- greeting and weekday ----

#[test]
fn greeting_is_bom_dia_until_11_59() {
    assert_eq!(greeting(NaiveTime::from_hms_opt(0, 0, 0).unwrap()), "Bom dia");
    assert_eq!(greeting(NaiveTime::from_hms_opt(11, 59, 59).unwrap()), "Bom dia");
}

#[test]
fn greeting_is_boa_tarde_from_12_00_to_17_59() {
    assert_eq!(greeting(NaiveTime::from_hms_opt(12, 0, 0).unwrap()), "Boa tarde");
    assert_eq!(greeting(NaiveTime::from_hms_opt(17, 59, 59).unwrap()), "Boa tarde");
}

#[test]
fn greeting_is_boa_noite_from_18_00() {
    assert_eq!(greeting(NaiveTime::from_hms_opt(18, 0, 0).unwrap()), "Boa noite");
    assert_eq!(greeting(NaiveTime::from_hms_opt(23, 59, 59).unwrap()), "Boa noite");
}

#[test]
fn saudacao_uses_the_local_send_time() {
    let f = fields();
    let t = parse("{{saudacao}}").unwrap();
    let cases = [
        ((11, 59), "Bom dia"),
        ((12, 0), "Boa tarde"),
        ((17, 59), "Boa tarde"),
        ((18, 0), "Boa noite"),
    ];
    for ((h, m), want) in cases {
        let mut c = ctx(&f);
        c.local_time = at(0, h, m);
        assert_eq!(t.render(&c, 0), want, "{h}:{m}");
    }
}

#[test]
fn every_weekday_has_its_portuguese_name() {
    let want = [
        (Weekday::Mon, "segunda-feira"),
        (Weekday::Tue, "terça-feira"),
        (Weekday::Wed, "quarta-feira"),
        (Weekday::Thu, "quinta-feira"),
        (Weekday::Fri, "sexta-feira"),
        (Weekday::Sat, "sábado"),
        (Weekday::Sun, "domingo"),
    ];
    for (d, name) in want {
        assert_eq!(weekday_pt(d), name);
    }
}

#[test]
fn dia_semana_uses_the_local_send_date() {
    let f = fields();
    let t = parse("{{dia_semana}}").unwrap();
    let want = [
        "segunda-feira",
        "terça-feira",
        "quarta-feira",
        "quinta-feira",
        "sexta-feira",
        "sábado",
        "domingo",
    ];
    for (i, name) in want.iter().enumerate() {
        let mut c = ctx(&f);
        c.local_time = at(i as u32, 10, 0);
        assert_eq!(t.render(&c, 0), *name);
    }
}

// ---- contact fields ----

#[test]
fn a_string_field_renders_as_is() {
    assert_eq!(render("Indicado por {{quem_indicou}}"), "Indicado por Carla");
}

#[test]
fn number_and_bool_fields_render_in_their_json_form() {
    assert_eq!(render("{{pedidos}} {{saldo}} {{vip}}"), "3 12.5 true");
}

#[test]
fn field_keys_match_exactly_first_then_ignoring_case() {
    assert_eq!(
        render("{{Cidade}} {{cidade}} {{CIDADE}}"),
        "São Paulo São Paulo São Paulo"
    );
    let f = match json!({"Cor": "azul", "cor": "verde"}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let mut c = ctx(&f);
    c.fields = Some(&f);
    assert_eq!(parse("{{Cor}} {{cor}}").unwrap().render(&c, 0), "azul verde");
}

#[test]
fn a_missing_field_without_fallback_renders_nothing() {
    assert_eq!(render("[{{nao_existe}}]"), "[]");
}

#[test]
fn a_missing_field_uses_its_fallback() {
    assert_eq!(render("Oi {{apelido|amigo querido}}!"), "Oi amigo querido!");
}

#[test]
fn null_empty_blank_and_structured_fields_use_the_fallback() {
    assert_eq!(render("{{nulo|a}} {{vazio|b}} {{branco|c}} {{lista|d}}"), "a b c d");
}

#[test]
fn a_present_field_ignores_its_fallback() {
    assert_eq!(render("{{quem_indicou|ninguém}}"), "Carla");
}

#[test]
fn no_fields_at_all_counts_as_missing() {
    let empty = Map::new();
    let mut c = ctx(&empty);
    c.fields = None;
    assert_eq!(parse("{{quem_indicou|alguém}}").unwrap().render(&c, 0), "alguém");
}

#[test]
fn the_fallback_is_trimmed_and_may_hold_spaces_accents_and_pipes() {
    assert_eq!(render("{{x| você, ação | ok }}"), "você, ação | ok");
}

#[test]
fn an_empty_built_in_uses_its_fallback() {
    let f = fields();
    let mut c = ctx(&f);
    c.name = "   ";
    c.phone = "";
    let t = parse("{{nome|cliente}} {{nome_completo|cliente}} {{telefone|sem número}}").unwrap();
    assert_eq!(t.render(&c, 0), "cliente cliente sem número");
}

#[test]
fn unicode_variable_names_are_allowed() {
    let f = match json!({"indicação": "sim"}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let c = ctx(&f);
    assert_eq!(parse("{{indicação}}").unwrap().render(&c, 0), "sim");
}

// ---- spintax ----

#[test]
fn spintax_picks_one_alternative() {
    let out = render("{Oi|Olá|E aí}");
    assert!(["Oi", "Olá", "E aí"].contains(&out.as_str()), "{out}");
}

#[test]
fn the_same_seed_gives_the_same_output() {
    let text = "{Oi|Olá|E aí} {{nome}}, {tudo bem|como vai|beleza}?";
    let t = parse(text).unwrap();
    let f = fields();
    for seed in 0..200 {
        assert_eq!(t.render(&ctx(&f), seed), t.clone().render(&ctx(&f), seed));
        assert_eq!(t.render(&ctx(&f), seed), parse(text).unwrap().render(&ctx(&f), seed));
    }
}

#[test]
fn different_seeds_eventually_give_different_choices() {
    let first = render_seed("{a|b}", 0);
    assert!((1..64).any(|s| render_seed("{a|b}", s) != first));
}

#[test]
fn every_branch_is_reachable() {
    let seen: HashSet<String> = (0..500).map(|s| render_seed("{a|b|c|d|e}", s)).collect();
    assert_eq!(seen.len(), 5, "{seen:?}");
}

#[test]
fn choices_are_roughly_uniform() {
    let mut counts = [0usize; 3];
    for s in 0..3000 {
        match render_seed("{a|b|c}", s).as_str() {
            "a" => counts[0] += 1,
            "b" => counts[1] += 1,
            _ => counts[2] += 1,
        }
    }
    assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
}

#[test]
fn nested_spintax_reaches_every_leaf() {
    let seen: HashSet<String> = (0..500).map(|s| render_seed("{Oi|{Olá|E aí}}", s)).collect();
    let want: HashSet<String> = ["Oi", "Olá", "E aí"].iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, want);
}

#[test]
fn spintax_alternatives_may_contain_variables_with_fallbacks() {
    let seen: HashSet<String> = (0..200)
        .map(|s| render_seed("{Oi {{nome}}|{{saudacao}}, {{apelido|amigo}}}", s))
        .collect();
    let want: HashSet<String> = ["Oi João", "Bom dia, amigo"].iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, want);
}

#[test]
fn a_variable_may_sit_right_inside_a_group_brace() {
    let seen: HashSet<String> = (0..200).map(|s| render_seed("{{{nome}}|x}", s)).collect();
    let want: HashSet<String> = ["João", "x"].iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, want);
}

#[test]
fn empty_alternatives_are_allowed() {
    let seen: HashSet<String> = (0..200).map(|s| render_seed("a{|!}", s)).collect();
    let want: HashSet<String> = ["a", "a!"].iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, want);
}

#[test]
fn separate_groups_choose_independently() {
    let seen: HashSet<String> = (0..500).map(|s| render_seed("{a|b}{a|b}", s)).collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[test]
fn braces_without_a_pipe_are_literal_text() {
    assert_eq!(render("Código {ABC-1}"), "Código {ABC-1}");
    assert_eq!(render("{{{nome}}}"), "{João}");
}

#[test]
fn a_pipe_outside_any_group_is_literal() {
    assert_eq!(render("a | b"), "a | b");
}

#[test]
fn escapes_give_literal_special_characters() {
    assert_eq!(render(r"\{a\|b\} \$contact_name \\ \n"), r"{a|b} $contact_name \ \n");
    assert_eq!(render(r"{x\|y|x\|y}"), "x|y");
    assert_eq!(render(r"fim\"), r"fim\");
}

#[test]
fn a_template_without_spintax_ignores_the_seed() {
    let t = parse("Oi {{nome}}").unwrap();
    assert!(!t.has_spintax());
    assert!(parse("{a|b}").unwrap().has_spintax());
    assert!(parse("{x {a|b}}").unwrap().has_spintax());
    let f = fields();
    assert_eq!(t.render(&ctx(&f), 1), t.render(&ctx(&f), 2));
}

// ---- parse errors ----

#[test]
fn an_unclosed_variable_reports_the_position_of_its_opening_braces() {
    let e = parse("Olá {{nome, tudo bem?").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::UnclosedVariable);
    assert_eq!(e.position, 4);
    assert!(e.to_string().contains("at character 4"), "{e}");
}

#[test]
fn a_variable_closed_by_a_single_brace_is_reported_as_unclosed() {
    assert_eq!(err_kind("Oi {{nome} e {{x}}"), (ParseErrorKind::UnclosedVariable, 3));
}

#[test]
fn error_positions_count_characters_not_bytes() {
    // "ação 😀 " is 7 characters but 12 bytes.
    assert_eq!(err_kind("ação 😀 {{nome"), (ParseErrorKind::UnclosedVariable, 7));
    assert_eq!(err_kind("ç {a|b"), (ParseErrorKind::UnclosedBrace, 2));
    assert_eq!(err_kind("é {{ nó me }}"), (ParseErrorKind::InvalidVariableName, 7));
}

#[test]
fn an_empty_variable_name_is_an_error() {
    assert_eq!(err_kind("a {{}}"), (ParseErrorKind::EmptyVariableName, 2));
    assert_eq!(err_kind("{{  }}"), (ParseErrorKind::EmptyVariableName, 0));
    assert_eq!(err_kind("{{|x}}"), (ParseErrorKind::EmptyVariableName, 0));
}

#[test]
fn a_malformed_variable_name_is_an_error_at_the_bad_character() {
    assert_eq!(err_kind("{{nome completo}}"), (ParseErrorKind::InvalidVariableName, 6));
    assert_eq!(err_kind("{{a-b}}"), (ParseErrorKind::InvalidVariableName, 3));
}

#[test]
fn an_unclosed_spintax_group_is_an_error_at_its_brace() {
    assert_eq!(err_kind("Oi {a|b"), (ParseErrorKind::UnclosedBrace, 3));
    assert_eq!(err_kind("{a|{b|c}"), (ParseErrorKind::UnclosedBrace, 0));
    assert_eq!(err_kind("texto {"), (ParseErrorKind::UnclosedBrace, 6));
}

#[test]
fn a_stray_closing_brace_is_an_error() {
    assert_eq!(err_kind("a|b}"), (ParseErrorKind::UnmatchedClosingBrace, 3));
    assert_eq!(err_kind("{a|b}}"), (ParseErrorKind::UnmatchedClosingBrace, 5));
}

#[test]
fn nesting_is_limited() {
    let ok = format!("{}x{}", "{a|".repeat(MAX_NESTING), "}".repeat(MAX_NESTING));
    assert!(parse(&ok).is_ok());
    let deep = format!("{}x{}", "{a|".repeat(MAX_NESTING + 1), "}".repeat(MAX_NESTING + 1));
    assert_eq!(err_kind(&deep), (ParseErrorKind::TooDeeplyNested, 3 * MAX_NESTING));
    // Even absurd depth fails cleanly instead of overflowing the stack.
    assert!(parse(&"{".repeat(1_000_000)).is_err());
}

#[test]
fn parse_errors_serialise_for_the_api() {
    let e = parse("{{").unwrap_err();
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["position"], 0);
    assert_eq!(v["kind"], "unclosed_variable");
}

// ---- variables() and unknown_variables ----

#[test]
fn variables_lists_every_occurrence_with_fallback_and_built_in() {
    let t = parse("{{nome}} {a {{x|y}}|$contact_number} {{Cidade}} {{nome}}").unwrap();
    let vars: Vec<_> = t.variables().map(|v| (v.name, v.fallback, v.builtin)).collect();
    assert_eq!(
        vars,
        vec![
            ("nome", None, Some(Builtin::FirstName)),
            ("x", Some("y"), None),
            ("contact_number", None, Some(Builtin::Phone)),
            ("Cidade", None, None),
            ("nome", None, Some(Builtin::FirstName)),
        ]
    );
    let v = t.variables().nth(1).unwrap();
    assert!(v.has_fallback() && !v.is_builtin());
}

#[test]
fn unknown_variables_are_reported_once_in_order() {
    let t = parse("{{b}} {{nome}} {{a}} {{b}} {{c|x}} {{cidade}} {{d|}}").unwrap();
    let known = |k: &str| k.eq_ignore_ascii_case("Cidade");
    assert_eq!(unknown_variables(&t, &known), vec!["b", "a"]);
}

#[test]
fn a_template_with_only_built_ins_and_fallbacks_has_no_unknown_variables() {
    let t = parse("{{saudacao}} $contact_name {{x|y}} {{weekday}}").unwrap();
    assert!(unknown_variables(&t, &|_| false).is_empty());
}

// ---- rotation, seeds, sharing ----

#[test]
fn variants_rotate_round_robin_in_send_order() {
    let got: Vec<usize> = (0..7).map(|i| variant_for(i, 3)).collect();
    assert_eq!(got, vec![0, 1, 2, 0, 1, 2, 0]);
    assert!((0..10).all(|i| variant_for(i, 1) == 0));
    assert_eq!(variant_for(u64::MAX, 5), (u64::MAX % 5) as usize);
    assert_eq!(variant_for(3, 0), 0);
}

#[test]
fn seed_from_bytes_is_stable_and_spreads() {
    assert_eq!(seed_from_bytes(b"abc"), seed_from_bytes(b"abc"));
    assert_ne!(seed_from_bytes(b"abc"), seed_from_bytes(b"abd"));
    // Pinned: changing this value would change every existing preview.
    assert_eq!(seed_from_bytes(b"campanha-1:contato-42"), 2_383_039_543_254_993_758);
}

#[test]
fn spintax_choices_are_pinned_across_versions() {
    // Previews are stored/shown before sending: the pick function must never change.
    let got: String = (0..16).map(|s| render_seed("{0|1|2|3}", s)).collect();
    assert_eq!(got, PINNED_CHOICES);
}

const PINNED_CHOICES: &str = "1201023001013100";

#[test]
fn templates_are_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Template>();
    let t = parse("{a|b}").unwrap();
    let t2 = t.clone();
    assert!(std::sync::Arc::ptr_eq(&t.inner, &t2.inner));
}

#[test]
fn render_into_appends_to_the_callers_buffer() {
    let f = fields();
    let t = parse("{{nome}}").unwrap();
    let mut out = String::from("> ");
    t.render_into(&ctx(&f), 0, &mut out);
    assert_eq!(out, "> João");
}

#[test]
fn a_template_round_trips_through_serde_as_its_source() {
    let t = parse("Oi {{nome}}").unwrap();
    let s = serde_json::to_string(&t).unwrap();
    assert_eq!(s, "\"Oi {{nome}}\"");
    let back: Template = serde_json::from_str(&s).unwrap();
    assert_eq!(back, t);
    assert!(serde_json::from_str::<Template>("\"{{\"").is_err());
    assert_eq!("{{x}}".parse::<Template>().unwrap().source(), "{{x}}");
}

#[test]
fn plain_text_with_accents_and_emoji_renders_unchanged() {
    let s = "Promoção de verão ☀️ — 50% off! Ação válida até sábado. 🇧🇷";
    assert_eq!(render(s), s);
    assert_eq!(render(""), "");
}

// ---- property-style ----

const PIECES: &[&str] = &[
    "{",
    "}",
    "|",
    "{{",
    "}}",
    "$",
    "\\",
    "$contact_name",
    "$contact_number",
    "nome",
    "x",
    " ",
    "ção",
    "😀",
    "{{nome}}",
    "{{x|fb}}",
    "{{saudacao}}",
    "{{dia_semana}}",
    "{{pedidos}}",
    "{a|b}",
    "é",
    "\n",
];

#[test]
fn rendering_never_panics_on_any_parseable_template() {
    let mut rng = SplitMix64::new(42);
    let f = fields();
    let mut parsed = 0;
    let mut out = String::new();
    for _ in 0..20_000 {
        let len = rng.below(12);
        let text: String = (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        match parse(&text) {
            Ok(t) => {
                parsed += 1;
                for _ in 0..4 {
                    let mut c = ctx(&f);
                    c.local_time = at(rng.below(7) as u32, rng.below(24) as u32, rng.below(60) as u32);
                    if rng.below(4) == 0 {
                        c.fields = None;
                        c.name = "";
                    }
                    out.clear();
                    let seed = rng.next_u64();
                    t.render_into(&c, seed, &mut out);
                    assert_eq!(out, t.render(&c, seed), "{text:?}");
                }
                let _ = t.variables().count();
                let _ = unknown_variables(&t, &|_| false);
            }
            Err(e) => {
                // Positions always point inside the text.
                assert!(e.position < text.chars().count().max(1), "{text:?} {e:?}");
            }
        }
    }
    assert!(parsed > 2_000, "only {parsed} parsed");
}

#[test]
fn parsing_never_panics_on_random_bytes_turned_text() {
    let mut rng = SplitMix64::new(7);
    let alphabet: Vec<char> = "{}|$\\ ab_çé😀\t".chars().collect();
    for _ in 0..20_000 {
        let len = rng.below(24);
        let text: String = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
        if let Ok(t) = parse(&text) {
            let f = fields();
            let _ = t.render(&ctx(&f), rng.next_u64());
        }
    }
}

#[test]
fn text_without_syntax_renders_to_itself() {
    let mut rng = SplitMix64::new(9);
    let alphabet: Vec<char> = "abc çãõ😀\n!.,-".chars().collect();
    for _ in 0..2_000 {
        let len = rng.below(40);
        let text: String = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
        assert_eq!(render_seed(&text, rng.next_u64()), text);
    }
}
