use arauto::templating::{parse, RenderContext};
use chrono::NaiveDate;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};

const TEMPLATE: &str = "{Oi|Olá|E aí} {{nome}}, {{saudacao}}! {Tudo bem|Como vai|Espero que esteja bem}? \
Sua indicação por {{quem_indicou|um amigo}} rendeu {{pedidos}} pedidos nesta {{dia_semana}}. \
Fale conosco pelo $contact_number ou responda esta mensagem, {{nome_completo}}.";

fn bench(c: &mut Criterion) {
    let template = parse(TEMPLATE).expect("bench template parses");
    let fields = match json!({"quem_indicou": "", "pedidos": 3, "cidade": "Recife", "plano": "ouro"}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let ctx = RenderContext {
        name: "João da Silva",
        phone: "5511987654321",
        fields: Some(&fields),
        local_time: NaiveDate::from_ymd_opt(2024, 6, 5)
            .and_then(|d| d.and_hms_opt(14, 30, 0))
            .expect("valid date"),
    };
    let mut out = String::with_capacity(512);
    let mut seed = 0u64;
    c.bench_function(&format!("render_into {} chars", TEMPLATE.chars().count()), |b| {
        b.iter(|| {
            out.clear();
            seed = seed.wrapping_add(1);
            template.render_into(black_box(&ctx), black_box(seed), &mut out);
            black_box(out.len())
        })
    });
    c.bench_function("render (new String)", |b| {
        b.iter(|| black_box(template.render(black_box(&ctx), black_box(42))))
    });
    c.bench_function("parse", |b| b.iter(|| black_box(parse(black_box(TEMPLATE)))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
