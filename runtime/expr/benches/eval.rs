//! What a false conditional breakpoint costs per hit, and a logpoint line,
//! with ratios to plain Rust measured in the same run.
//!
//! - `condition/*`: `count > 10 && words < 3` with `count = 12, words = 7`
//!   (false, and both sides evaluated), against a plain closure doing the same
//!   comparison; through ax-expr, `evalexpr` 13 and `cel-interpreter` 0.10.
//!   Each is compiled once. For the two crates the context is built once
//!   too (their best case); the `*_per_hit` rows also store the two
//!   bindings into their context at each hit, which a debugger has to do
//!   since bindings change between hits. ax-expr reads them from the hit
//!   in place, through an `Env` shaped like the runtime's `ProbeHit`.
//!   `closure_tree_sketch` is the alternative design (boxed closures over
//!   `&dyn Env`) reduced to its best case, to compare with the tree walker.
//! - `logpoint/*`: a line with two placeholders rendered into a reused
//!   `String`, against `write!` with the same values: two integers, and an
//!   integer plus a field of a JSON text binding (`{input.user.id}`).
//!
//! `cargo bench -p ax-expr --bench eval` prints criterion's figures, then a
//! table of medians and ratios. Figures depend on the machine and its load:
//! compare ratios from one run, not absolute numbers across runs.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ax_expr::{Env, Value, compile_condition, compile_template};
use criterion::Criterion;
use evalexpr::{ContextWithMutableVariables, DefaultNumericTypes, HashMapContext, build_operator_tree};

/// A binding as the runtime's `ProbeHit::value` returns it.
#[derive(Clone, Copy)]
enum ProbeVar<'a> {
    I64(i64),
    U64(u64),
    Str(&'a str),
    Json(&'a str),
}

/// A probe hit: the values of the site's bindings, by slot.
struct Hit<'a> {
    vars: &'a [ProbeVar<'a>],
}

impl Env for Hit<'_> {
    #[inline]
    fn get(&self, slot: usize) -> Option<Value<'_>> {
        Some(match *self.vars.get(slot)? {
            ProbeVar::I64(v) => Value::Int(v),
            ProbeVar::U64(v) => Value::UInt(v),
            ProbeVar::Str(s) => Value::Str(s),
            ProbeVar::Json(s) => Value::JsonText(s),
        })
    }
}

/// The other design the brief allowed, sketched for comparison: the same
/// condition as a tree of boxed closures over `&dyn Env`, its leaves already
/// specialised to "integer binding vs integer literal" and without error
/// messages — a lower bound for a closure-compiled backend.
type Pred = Box<dyn Fn(&dyn Env) -> Result<bool, ()>>;

fn int_binding(slot: usize, test: impl Fn(i64) -> bool + 'static) -> Pred {
    Box::new(move |env| match env.get(slot) {
        Some(Value::Int(x)) => Ok(test(x)),
        _ => Err(()),
    })
}

fn and(l: Pred, r: Pred) -> Pred {
    Box::new(move |env| Ok(l(env)? && r(env)?))
}

const CONDITION: &str = "count > 10 && words < 3";
const INPUT: &str = r#"{"text":"a b c","user":{"name":"Ada","id":42}}"#;

fn main() {
    let out_dir = target_dir().join("criterion");
    let mut c = Criterion::default()
        .output_directory(&out_dir)
        .sample_size(40)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();

    let vars = [ProbeVar::I64(12), ProbeVar::I64(7), ProbeVar::Json(INPUT), ProbeVar::Str("x"), ProbeVar::U64(1)];
    let hit = Hit { vars: &vars };
    let names = ["count", "words", "input", "name", "total"];
    {
        let mut group = c.benchmark_group("condition");

        let plain = |count: i64, words: i64| count > 10 && words < 3;
        group.bench_function("plain_closure", |b| b.iter(|| plain(black_box(12), black_box(7))));

        let program = compile_condition(CONDITION, &names).unwrap();
        assert!(!program.eval_bool(&hit).unwrap());
        group.bench_function("ax_expr", |b| b.iter(|| program.eval_bool(black_box(&hit)).unwrap()));

        let sketch = and(int_binding(0, |count| count > 10), int_binding(1, |words| words < 3));
        assert_eq!(sketch(&hit), Ok(false));
        group.bench_function("closure_tree_sketch", |b| b.iter(|| sketch(black_box(&hit)).unwrap()));

        let tree = build_operator_tree::<DefaultNumericTypes>(CONDITION).unwrap();
        let mut context = HashMapContext::<DefaultNumericTypes>::new();
        context.set_value("count".into(), evalexpr::Value::from_int(12)).unwrap();
        context.set_value("words".into(), evalexpr::Value::from_int(7)).unwrap();
        assert!(!tree.eval_boolean_with_context(&context).unwrap());
        group.bench_function("evalexpr", |b| b.iter(|| tree.eval_boolean_with_context(black_box(&context)).unwrap()));
        group.bench_function("evalexpr_per_hit", |b| {
            b.iter(|| {
                context.set_value("count".into(), evalexpr::Value::from_int(black_box(12))).unwrap();
                context.set_value("words".into(), evalexpr::Value::from_int(black_box(7))).unwrap();
                tree.eval_boolean_with_context(&context).unwrap()
            })
        });

        let cel = cel_interpreter::Program::compile(CONDITION).unwrap();
        let mut context = cel_interpreter::Context::default();
        context.add_variable_from_value("count", 12i64);
        context.add_variable_from_value("words", 7i64);
        assert_eq!(cel.execute(&context).unwrap(), cel_interpreter::Value::Bool(false));
        group.bench_function("cel_interpreter", |b| b.iter(|| cel.execute(black_box(&context)).unwrap()));
        group.bench_function("cel_interpreter_per_hit", |b| {
            b.iter(|| {
                context.add_variable_from_value("count", black_box(12i64));
                context.add_variable_from_value("words", black_box(7i64));
                cel.execute(&context).unwrap()
            })
        });
        group.finish();
    }
    {
        let mut group = c.benchmark_group("logpoint");
        let mut line = String::with_capacity(128);

        group.bench_function("plain_write", |b| {
            b.iter(|| {
                line.clear();
                write!(line, "count is {}, words {}", black_box(12), black_box(7)).unwrap();
                black_box(line.len())
            })
        });
        let template = compile_template("count is {count}, words {words}", &names).unwrap();
        assert_eq!(template.render(&hit), "count is 12, words 7");
        group.bench_function("ax_expr", |b| {
            b.iter(|| {
                line.clear();
                template.render_into(black_box(&hit), &mut line);
                black_box(line.len())
            })
        });

        let template = compile_template("count is {count}, user {input.user.id}", &names).unwrap();
        assert_eq!(template.render(&hit), "count is 12, user 42");
        group.bench_function("ax_expr_json_field", |b| {
            b.iter(|| {
                line.clear();
                template.render_into(black_box(&hit), &mut line);
                black_box(line.len())
            })
        });
        group.finish();
    }

    c.final_summary();
    // `--test` runs each benchmark once and measures nothing: the estimates
    // on disk would be an earlier run's.
    if !std::env::args().any(|arg| arg == "--test") {
        print_ratios(&out_dir);
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// The median of a finished benchmark, in nanoseconds, from criterion's estimates.
fn median_ns(out_dir: &Path, group: &str, id: &str) -> Option<f64> {
    let text = std::fs::read_to_string(out_dir.join(group).join(id).join("new/estimates.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn print_ratios(out_dir: &Path) {
    let rows = [
        ("condition", "plain_closure", "plain_closure"),
        ("condition", "ax_expr", "plain_closure"),
        ("condition", "closure_tree_sketch", "plain_closure"),
        ("condition", "evalexpr", "plain_closure"),
        ("condition", "evalexpr_per_hit", "plain_closure"),
        ("condition", "cel_interpreter", "plain_closure"),
        ("condition", "cel_interpreter_per_hit", "plain_closure"),
        ("logpoint", "plain_write", "plain_write"),
        ("logpoint", "ax_expr", "plain_write"),
        ("logpoint", "ax_expr_json_field", "plain_write"),
    ];
    println!("\n{:<36} {:>12} {:>28}", "benchmark (median)", "time", "ratio to baseline");
    for (group, id, baseline) in rows {
        let (Some(t), Some(base)) = (median_ns(out_dir, group, id), median_ns(out_dir, group, baseline)) else {
            continue;
        };
        println!("{:<36} {:>9.2} ns {:>14.1}x {group}/{baseline}", format!("{group}/{id}"), t, t / base);
    }
    println!("(medians of this run; the machine's load moves absolute figures, ratios less so)");
}
