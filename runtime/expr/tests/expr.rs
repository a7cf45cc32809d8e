//! The language from the outside: every operator, precedence, short-circuit,
//! numbers across signedness, checked arithmetic, strings, JSON access,
//! compile errors with their columns (snapshots), hit conditions, logpoint
//! templates, the nesting limit, "evaluating a numeric condition does not
//! allocate", and a property test that no input makes the compiler panic.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ax_expr::{
    Env, EvalErrorKind, HitCondition, MAX_DEPTH, Value, compile, compile_condition, compile_template,
    parse_hit_condition,
};
use serde_json::json;

/// Counts this thread's allocations, so a test can check that a piece of
/// code makes none while other tests run on other threads.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: delegates to the system allocator; the counter is a const-initialised
// thread-local `Cell`, which neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// A probe hit as the runtime would present it: named bindings.
struct Hit<'a> {
    vars: Vec<(&'a str, Value<'a>)>,
}

impl Env for Hit<'_> {
    fn get(&self, slot: usize) -> Option<Value<'_>> {
        self.vars.get(slot).map(|(_, v)| v.clone())
    }
}

impl<'a> Hit<'a> {
    fn names(&self) -> Vec<&'a str> {
        self.vars.iter().map(|(n, _)| *n).collect()
    }
}

const USER: &str = r#"{"user": {"id": 42, "name": "Ada", "email": null, "tags": ["admin", "ops"]},
    "items": [10, 20.5, "x", true], "map": {"key": "v", "}": 1, "a b": 2}, "big": 18446744073709551615,
    "esc": "line\nnext"}"#;

fn hit() -> Hit<'static> {
    static JSON_INPUT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    let parsed = JSON_INPUT.get_or_init(|| serde_json::from_str(USER).unwrap());
    Hit {
        vars: vec![
            ("count", Value::Int(12)),
            ("words", Value::Int(2)),
            ("neg", Value::Int(-1)),
            ("max", Value::UInt(u64::MAX)),
            ("half", Value::Float(0.5)),
            ("name", Value::Str("word-count")),
            ("flag", Value::Bool(true)),
            ("nothing", Value::Null),
            ("input", Value::JsonText(USER)),
            ("parsed", Value::Json(parsed)),
            ("opaque", Value::Debug("Opaque { .. }")),
            ("gone", Value::Null),
        ],
    }
}

/// A hit where `gone` has no value at all.
struct Partial;

impl Env for Partial {
    fn get(&self, slot: usize) -> Option<Value<'_>> {
        if slot == 0 { Some(Value::Int(1)) } else { None }
    }
}

/// The value of `src` as JSON, or the error as text.
fn eval(src: &str) -> Result<serde_json::Value, String> {
    let hit = hit();
    let program = compile(src, &hit.names()).map_err(|e| format!("compile: {}", e.render()))?;
    program.eval(&hit).map(|v| v.to_json()).map_err(|e| format!("eval: {e}"))
}

fn truth(src: &str) -> bool {
    let hit = hit();
    let program = compile_condition(src, &hit.names()).unwrap_or_else(|e| panic!("{}", e.render()));
    program.eval_bool(&hit).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn eval_err(src: &str) -> String {
    match eval(src) {
        Ok(v) => panic!("{src} evaluated to {v}"),
        Err(e) => e,
    }
}

fn compile_err(src: &str) -> String {
    let hit = hit();
    match compile(src, &hit.names()) {
        Ok(_) => panic!("{src} compiled"),
        Err(e) => e.render(),
    }
}

#[test]
fn literals() {
    assert_eq!(eval("42").unwrap(), json!(42));
    assert_eq!(eval("0x_ff").unwrap(), json!(255));
    assert_eq!(eval("1_000").unwrap(), json!(1000));
    assert_eq!(eval("2.5").unwrap(), json!(2.5));
    assert_eq!(eval("1e3").unwrap(), json!(1000.0));
    assert_eq!(eval(r#""a\tb\u{e9}\\""#).unwrap(), json!("a\tbé\\"));
    assert_eq!(eval("'single'").unwrap(), json!("single"));
    assert_eq!(eval("true").unwrap(), json!(true));
    assert_eq!(eval("false").unwrap(), json!(false));
    assert_eq!(eval("null").unwrap(), json!(null));
    assert_eq!(eval("18446744073709551615").unwrap(), json!(u64::MAX));
    assert_eq!(eval("-9223372036854775808").unwrap(), json!(i64::MIN));
}

#[test]
fn every_operator() {
    let cases = [
        ("count == 12", true),
        ("count != 12", false),
        ("count < 13", true),
        ("count <= 12", true),
        ("count > 12", false),
        ("count >= 12", true),
        ("flag && count > 1", true),
        ("flag && count > 100", false),
        ("!flag || words == 2", true),
        ("!flag || words == 3", false),
        ("!flag", false),
        ("!!flag", true),
        ("count + 3 == 15", true),
        ("count - 13 == -1", true),
        ("count * 2 == 24", true),
        ("count / 5 == 2", true),
        ("count % 5 == 2", true),
        ("-count == -12", true),
        ("-(-count) == 12", true),
        ("half * 4 == 2", true),
        ("count / 8.0 == 1.5", true),
        ("name == \"word-count\"", true),
        ("name != \"other\"", true),
        ("name < \"x\"", true),
        ("flag == true", true),
        ("nothing == null", true),
        ("count == null", false),
        ("count != null", true),
        ("(count > 10) == (words < 3)", true),
    ];
    for (src, expected) in cases {
        assert_eq!(truth(src), expected, "{src}");
    }
}

#[test]
fn precedence() {
    assert_eq!(eval("1 + 2 * 3").unwrap(), json!(7));
    assert_eq!(eval("(1 + 2) * 3").unwrap(), json!(9));
    assert_eq!(eval("10 - 4 - 3").unwrap(), json!(3));
    assert_eq!(eval("100 / 10 / 5").unwrap(), json!(2));
    assert_eq!(eval("7 - 2 % 3").unwrap(), json!(5));
    assert_eq!(eval("-2 * 3").unwrap(), json!(-6));
    assert_eq!(eval("-count * 2").unwrap(), json!(-24));
    assert!(truth("1 + 1 == 2 && 2 * 2 == 4"));
    // `&&` binds tighter than `||`.
    assert!(truth("true || false && false"));
    assert!(!truth("(true || false) && false"));
    // `!` binds tighter than `==`, as in Rust.
    assert!(truth("!flag == false"));
    assert!(truth("count > 5 + 5"));
    assert_eq!(eval("input.items[1] * 2").unwrap(), json!(41.0));
    assert_eq!(eval("-input.user.id").unwrap(), json!(-42));
}

#[test]
fn short_circuit_skips_the_other_side() {
    assert!(!truth("false && input.missing.field"));
    assert!(!truth("false && gone.x == 1"));
    assert!(truth("true || input.missing.field"));
    assert!(truth("true || 1 / 0 == 1"));
    assert!(eval_err("true && input.missing == 1").contains("no field `missing`"));
    assert!(eval_err("false || 1 / 0 == 1").contains("division by zero"));
}

#[test]
fn integers_compare_across_signedness_and_with_floats() {
    assert!(truth("max > neg"));
    assert!(truth("neg < max"));
    assert!(truth("max == 18446744073709551615"));
    assert!(truth("max > 9223372036854775807"));
    assert!(truth("neg == -1"));
    assert!(truth("neg < 0.5"));
    assert!(truth("half < 1 && half > 0"));
    assert!(truth("count == 12.0"));
    assert!(truth("count < 12.5"));
    assert!(truth("max > 1e19"));
    assert!(truth("max < 1e20"));
    assert!(truth("input.big == max"));
    // 2^53 + 1 is not a float; it is still greater than the float 2^53.
    assert!(truth("9007199254740993 > 9007199254740992.0"));
}

#[test]
fn arithmetic_is_checked() {
    assert!(eval_err("max + 1").contains("integer overflow"));
    assert!(eval_err("max * 2").contains("`max * 2`: integer overflow"));
    assert!(eval_err("-max").contains("integer overflow"));
    assert!(eval_err("count / 0").contains("`count / 0`: division by zero"));
    assert!(eval_err("count % (words - 2)").contains("division by zero"));
    assert!(eval_err("half / 0").contains("division by zero"));
    assert!(eval_err("1e308 * 10.0").contains("overflow"));
    // Exact across the two ranges: no spurious overflow.
    assert_eq!(eval("max - 18446744073709551615 - 1").unwrap(), json!(-1));
    assert_eq!(eval("-9223372036854775807 - 1").unwrap(), json!(i64::MIN));
    assert_eq!(eval("9223372036854775807 + 1").unwrap(), json!(9_223_372_036_854_775_808u64));
    assert_eq!(eval("-7 / 2").unwrap(), json!(-3));
    assert_eq!(eval("-7 % 2").unwrap(), json!(-1));
}

#[test]
fn string_methods() {
    assert!(truth(r#"name.contains("count")"#));
    assert!(!truth(r#"name.contains("xyz")"#));
    assert!(truth(r#"name.starts_with("word")"#));
    assert!(truth(r#"name.ends_with("-count")"#));
    assert!(!truth(r#"name.ends_with("word")"#));
    assert!(truth("name.len() == 10"));
    assert!(truth(r#""é".len() == 2"#));
    assert!(truth(r#"input.user.name.starts_with("A")"#));
    assert!(truth(r#"input.esc.contains("\n")"#));
    assert!(truth(r#"input.user.tags.contains("ops")"#));
    assert!(!truth(r#"input.user.tags.contains("dev")"#));
    assert!(truth("input.items.contains(10)"));
    assert!(truth("input.items.contains(20.5)"));
    assert!(truth(r#"input.map.contains("a b")"#));
    assert!(truth(r#"parsed.user.tags.contains("admin")"#));
    assert!(truth(r#"parsed.map.contains("key")"#));
    assert!(truth("input.items.len() == 4 && input.map.len() == 3 && parsed.items.len() == 4"));
    assert!(eval_err("count.len()").contains("expected a string, an array or an object, found an integer"));
    assert!(eval_err("name.contains(count)").contains("expected a string argument, found an integer"));
    assert!(eval_err(r#"input.user.id.starts_with("4")"#).contains("expected a string, found an integer"));
}

#[test]
fn json_access() {
    for doc in ["input", "parsed"] {
        let at = |path: &str| eval(&format!("{doc}{path}"));
        assert_eq!(at(".user.id").unwrap(), json!(42), "{doc}");
        assert_eq!(at(".user.name").unwrap(), json!("Ada"));
        assert_eq!(at(".user.email").unwrap(), json!(null));
        assert_eq!(at(".user.tags[1]").unwrap(), json!("ops"));
        assert_eq!(at(".items[0]").unwrap(), json!(10));
        assert_eq!(at(r#".map["key"]"#).unwrap(), json!("v"));
        assert_eq!(at(r#".map["}"]"#).unwrap(), json!(1));
        assert_eq!(at(r#"["map"]["a b"]"#).unwrap(), json!(2));
        assert_eq!(at(".esc").unwrap(), json!("line\nnext"));
        assert_eq!(at(".user.tags").unwrap(), json!(["admin", "ops"]));
        assert_eq!(at(".big").unwrap(), json!(u64::MAX));

        let missing = at(".user.nmae").unwrap_err();
        assert!(missing.contains(&format!("`{doc}.user.nmae`: no field `nmae`")), "{missing}");
        for field in ["`id`", "`name`", "`email`", "`tags`"] {
            assert!(missing.contains(field), "{missing}");
        }
        let range = at(".user.tags[5]").unwrap_err();
        assert!(range.contains("index 5 is out of range for an array of length 2"), "{range}");
        let wrong = at(".user.id.value").unwrap_err();
        assert!(wrong.contains(&format!("`{doc}.user.id.value`: expected an object, found an integer")), "{wrong}");
        let not_array = at(".user[0]").unwrap_err();
        assert!(not_array.contains("expected an array, found an object"), "{not_array}");
        let bad_index = at(".items[flag]").unwrap_err();
        assert!(bad_index.contains("expected an integer index or a string key, found a boolean"), "{bad_index}");
        let compare = at(".user.name > 3").unwrap_err();
        assert!(compare.contains("`>` cannot be applied to a string and an integer"), "{compare}");
    }
    assert!(truth("input.user.id == 42 && input.user.email == null"));
    assert!(truth("input.user == parsed.user"));
    assert!(truth("input.user.tags != parsed.items"));
}

#[test]
fn runtime_type_errors_name_the_part_and_the_types() {
    assert_eq!(eval_err("name + 1"), "eval: `name + 1`: `+` cannot be applied to a string and an integer");
    assert_eq!(
        eval_err("!count"),
        "eval: `count`: expected a boolean (conditions are not truthy or falsy), found an integer"
    );
    assert_eq!(
        eval_err("count && flag"),
        "eval: `count`: expected a boolean (conditions are not truthy or falsy), found an integer"
    );
    assert_eq!(eval_err("name == count"), "eval: `name == count`: `==` cannot be applied to a string and an integer");
    assert_eq!(eval_err("name < 10"), "eval: `name < 10`: `<` cannot be applied to a string and an integer");
    assert_eq!(eval_err("10 < name"), "eval: `10 < name`: `<` cannot be applied to an integer and a string");
    assert_eq!(eval_err("gone.x > 1"), "eval: `gone.x`: expected an object, found null");
    assert!(truth("10 < count && 12 >= count && 12 == count && 3 != count && \"word-count\" == name"));
    assert_eq!(eval_err("-name"), "eval: `-name`: expected a number, found a string");
    assert!(eval_err("opaque == 1").contains("a Debug rendering (its type is not Serialize)"));
    assert!(!truth("opaque == null"));
    let hit = Partial;
    let program = compile_condition("x > 0 && gone > 1", &["x", "gone"]).unwrap();
    assert_eq!(program.eval_bool(&hit).unwrap_err().to_string(), "`gone`: this variable has no value here");
    assert_eq!(program.eval_bool(&hit).unwrap_err().kind, EvalErrorKind::Unbound);
}

#[test]
fn malformed_json_text_is_an_error_naming_the_path() {
    let deep = "[".repeat(100_000);
    let env = [Value::JsonText(r#"{"a": 1, "b": }"#), Value::JsonText(&deep), Value::JsonText("[1, 2")];
    let names = ["bad", "deep", "open"];
    let err = |src: &str| compile(src, &names).unwrap().eval(&env[..]).unwrap_err().to_string();
    assert_eq!(err("bad.b"), "`bad.b`: invalid JSON text: expected a value at byte 14");
    assert_eq!(err("deep[0]"), "`deep[0]`: invalid JSON text: unexpected end at byte 100000");
    assert_eq!(err("open.len()"), "`open.len()`: invalid JSON text: unexpected end at byte 5");
    // A field is looked up through the whole object (the last duplicate
    // wins, as in serde_json), so damage anywhere in it is reported.
    assert_eq!(err("bad.a"), "`bad.a`: invalid JSON text: expected a value at byte 14");
}

#[test]
fn json_values_are_an_environment_too() {
    let values = [json!(3), json!({"user": {"id": 7}}), json!("text")];
    let program = compile_condition("a == 3 && b.user.id == 7 && c.len() == 4", &["a", "b", "c"]).unwrap();
    assert!(program.eval_bool(&values[..]).unwrap());
}

#[test]
fn compiled_forms_can_move_to_the_plugin_thread() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<ax_expr::Program>();
    send_sync::<ax_expr::Template>();
    send_sync::<HitCondition>();
    send_sync::<ax_expr::CompileError>();
    send_sync::<ax_expr::EvalError>();
}

#[test]
fn a_condition_must_be_boolean() {
    let hit = hit();
    let names = hit.names();
    let program = compile_condition("input.user.id", &names).unwrap();
    let err = program.eval_bool(&hit).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`input.user.id`: expected a boolean (conditions are not truthy or falsy), found an integer"
    );
    let err = compile_condition("count + 1", &names).unwrap_err();
    assert_eq!(err.column, 1);
    assert!(err.message.contains("a condition must be a boolean, but this is a number"));
    assert!(compile_condition(r#""yes""#, &names).is_err());
    // A plain expression may be anything.
    assert_eq!(compile("count + 1", &names).unwrap().eval(&hit).unwrap(), Value::Int(13));
}

#[test]
fn values_borrow_from_the_hit_and_the_program() {
    let hit = hit();
    let names = hit.names();
    let program = compile("input.user.name", &names).unwrap();
    assert_eq!(program.eval(&hit).unwrap(), Value::Str("Ada"));
    let program = compile("input.user.tags", &names).unwrap();
    assert_eq!(program.eval(&hit).unwrap(), Value::JsonText(r#"["admin", "ops"]"#));
    let program = compile("\"lit\"", &names).unwrap();
    assert_eq!(program.eval(&hit).unwrap(), Value::Str("lit"));
    let program = compile("max", &names).unwrap();
    assert_eq!(program.eval(&hit).unwrap(), Value::UInt(u64::MAX));
    assert_eq!(Value::Float(f64::NAN).to_json(), json!("NaN"));
    assert_eq!(Value::JsonText("{\"a\": [1]}").to_json(), json!({"a": [1]}));
}

#[test]
fn a_numeric_condition_evaluates_without_allocating() {
    let hit = hit();
    let names = hit.names();
    let program = compile_condition("count > 10 && words < 3 || max < neg || half > 1.5", &names).unwrap();
    let json_path = compile_condition("input.user.id == 42 && parsed.items[0] < 11", &names).unwrap();
    let env = [Value::Int(12), Value::Int(2)];
    let pair = compile_condition("count > 10 && words < 3", &["count", "words"]).unwrap();
    let before = allocations();
    let mut stops = 0;
    for _ in 0..1000 {
        stops += usize::from(pair.eval_bool(&env[..]).unwrap());
        stops += usize::from(program.eval_bool(&hit).unwrap());
        stops += usize::from(json_path.eval_bool(&hit).unwrap());
    }
    assert_eq!(allocations() - before, 0);
    assert_eq!(stops, 3000);
}

#[test]
fn compile_errors_point_at_a_column() {
    let inputs = [
        "count > > 3",
        "count >",
        "",
        "(count > 3",
        "count > 3)",
        "cuont > 3",
        "!5",
        r#""a" - 1"#,
        r#""x" < 3"#,
        r#""a" == 1"#,
        "5.len()",
        "name.size()",
        "name.contains()",
        "count = 3",
        "count & words",
        "1 < count < 3",
        r#""unterminated"#,
        r#""bad \q escape""#,
        "items[",
        "input.",
        "count 3",
        "18446744073709551616",
        "input.items[-1]",
        "-18446744073709551615",
        "1 && flag",
        "count > 3 # comment",
    ];
    let mut rendered = String::new();
    for src in inputs {
        rendered.push_str(&compile_err(src));
        rendered.push_str("\n\n");
    }
    insta::assert_snapshot!("compile_errors", rendered);

    // The example of the brief, exactly.
    let err = compile("count > > 3", &["count"]).unwrap_err();
    assert_eq!(err.column, 9);
    assert_eq!(err.render(), "count > > 3\n        ^ expected an expression after `>`");
}

#[test]
fn unknown_variables_list_what_is_available() {
    let err = compile("cuont > 3", &["count", "words"]).unwrap_err();
    assert_eq!(err.column, 1);
    assert_eq!(err.message, "unknown variable `cuont` (did you mean `count`?); available: `count`, `words`");
    let err = compile("x", &[] as &[&str]).unwrap_err();
    assert_eq!(err.message, "unknown variable `x`; no variables are available here");
    // The first of repeated names wins, as `ProbeHit::position` does.
    let program = compile("a", &["a", "a"]).unwrap();
    assert_eq!(program.eval(&[Value::Int(1), Value::Int(2)][..]).unwrap(), Value::Int(1));
}

#[test]
fn nesting_and_length_are_bounded() {
    let ok = format!("{}1{}", "(".repeat(MAX_DEPTH - 1), ")".repeat(MAX_DEPTH - 1));
    assert_eq!(compile(&ok, &[] as &[&str]).unwrap().eval(&()).unwrap(), Value::Int(1));
    let deep = format!("{}1{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    let err = compile(&deep, &[] as &[&str]).unwrap_err();
    assert!(err.message.contains("nested more than 64 levels"), "{}", err.message);
    // Unary chains, long operator chains and long access chains too; none of
    // them reaches the evaluator.
    for src in ["!".repeat(2000) + "true", vec!["1"; 2000].join(" + "), "input".to_owned() + &".a".repeat(2000)] {
        let err = compile(&src, &["input"]).unwrap_err();
        assert!(err.message.contains("nested more than") || err.message.contains("longer than"), "{}", err.message);
    }
    let long = "1 + ".repeat(2000) + "1";
    assert!(compile(&long, &[] as &[&str]).unwrap_err().message.contains("longer than 4096 bytes"));
    // A pathological input, far past both limits, is an error, not a stack overflow.
    let hostile = "(".repeat(1_000_000);
    assert!(compile(&hostile, &[] as &[&str]).is_err());
    assert!(compile_template(&"{(".repeat(100_000), &[] as &[&str]).is_err());
}

#[test]
fn hit_conditions() {
    let stops = |src: &str| -> Vec<u64> {
        let c = parse_hit_condition(src).unwrap_or_else(|e| panic!("{}", e.render()));
        (1..=10).filter(|&n| c.should_stop(n)).collect()
    };
    assert_eq!(stops(">= 8"), [8, 9, 10]);
    assert_eq!(stops("> 8"), [9, 10]);
    assert_eq!(stops("== 5"), [5]);
    assert_eq!(stops("=5"), [5]);
    assert_eq!(stops("< 3"), [1, 2]);
    assert_eq!(stops("<= 2"), [1, 2]);
    assert_eq!(stops("% 3"), [3, 6, 9]);
    // A bare number means "from the Nth hit on", as in CodeLLDB.
    assert_eq!(stops("9"), [9, 10]);
    assert_eq!(stops("  >=   9  "), [9, 10]);
    assert_eq!(parse_hit_condition("% 2"), Ok(HitCondition::Every(2)));

    let err = |src: &str| parse_hit_condition(src).unwrap_err().render();
    insta::assert_snapshot!(
        "hit_condition_errors",
        ["", ">=", "% 0", "== 0", "< 1", ">= x", "5 times", "!= 3", "99999999999999999999"].map(err).join("\n\n")
    );
}

#[test]
fn templates() {
    let hit = hit();
    let names = hit.names();
    let render = |src: &str| compile_template(src, &names).unwrap_or_else(|e| panic!("{}", e.render())).render(&hit);
    assert_eq!(render("count is {count}, user {input.user.id}"), "count is 12, user 42");
    assert_eq!(render("{{literal}} {name} }}{{"), "{literal} word-count }{");
    assert_eq!(render("{half} {max} {neg} {flag} {nothing}"), "0.5 18446744073709551615 -1 true null");
    assert_eq!(render("{count / 8.0} {2.0}"), "1.5 2.0");
    assert_eq!(
        render("tags {input.user.tags} map {parsed.map}"),
        r#"tags ["admin", "ops"] map {"a b":2,"key":"v","}":1}"#
    );
    assert_eq!(render(r#"{input.map["}"]} é {opaque}"#), "1 é Opaque { .. }");
    assert_eq!(render("no placeholders"), "no placeholders");
    assert_eq!(render(""), "");
    // A failing placeholder renders in place; the line still renders.
    assert_eq!(
        render("id {input.user.nope} count {count / 0} ok {words}"),
        "id <error: `input.user.nope`: no field `nope` (the object has fields `id`, `name`, `email`, `tags`)> count <error: `count / 0`: division by zero> ok 2"
    );

    // Rendering reuses the caller's buffer.
    let template = compile_template("{count} {words}", &names).unwrap();
    let mut line = String::with_capacity(64);
    let before = allocations();
    for _ in 0..100 {
        line.clear();
        template.render_into(&hit, &mut line);
    }
    assert_eq!(allocations() - before, 0);
    assert_eq!(line, "12 2");

    let err = |src: &str| compile_template(src, &names).unwrap_err().render();
    insta::assert_snapshot!(
        "template_errors",
        ["count is {count", "count is {cuont}", "a } b", "{}", "x {count > > 1} y", r#"{name == "}"#]
            .map(err)
            .join("\n\n")
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const ALPHABET: &str = "(?s).{0,64}|[a-z0-9_ .\\[\\](){}!=<>&|+*/%\"'\\\\-]{0,80}";

    proptest! {
        #[test]
        fn compiling_arbitrary_text_never_panics(src in ALPHABET) {
            let names = ["count", "input", "a"];
            if let Ok(program) = compile(&src, &names) {
                let env = [Value::Int(3), Value::JsonText("{\"a\": [1, {\"b\": \"c\"}]}"), Value::Str("s")];
                let _ = program.eval(&env[..]);
                let _ = program.eval_bool(&env[..]);
            }
            if let Err(e) = compile_condition(&src, &names) {
                prop_assert!(e.column >= 1 && e.column <= src.chars().count() + 1);
                let _ = e.render();
            }
            if let Ok(t) = compile_template(&src, &names) {
                let _ = t.render(&[Value::Null, Value::JsonText("[1"), Value::Int(0)][..]);
            }
            let _ = parse_hit_condition(&src);
        }

        #[test]
        fn integer_comparisons_agree_with_rust(a in any::<i64>(), b in any::<u64>()) {
            let program = compile_condition("a < b", &["a", "b"]).unwrap();
            let env = [Value::Int(a), Value::UInt(b)];
            prop_assert_eq!(program.eval_bool(&env[..]).unwrap(), i128::from(a) < i128::from(b));
        }
    }
}

/// A hit with the two before it: `x` was 3, then 5, and is 8 now.
struct WithHistory;

impl Env for WithHistory {
    fn get(&self, slot: usize) -> Option<Value<'_>> {
        (slot == 0).then_some(Value::Int(8))
    }

    fn earlier(&self, slot: usize, back: usize) -> Option<Value<'_>> {
        match (slot, back) {
            (0, 1) => Some(Value::Int(5)),
            (0, 2) => Some(Value::JsonText("3")),
            _ => None,
        }
    }

    fn kept(&self) -> usize {
        2
    }
}

#[test]
fn prev_and_history_read_earlier_hits() {
    let run = |src: &str| compile(src, &["x"]).unwrap().eval(&WithHistory).map(|v| v.to_json()).unwrap();
    assert_eq!(run("prev(x)"), json!(5));
    assert_eq!(run("prev(prev(x))"), json!(3));
    assert_eq!(run("prev(prev(prev(x)))"), json!(null), "a hit not kept is null");
    assert_eq!(run("x - prev(x)"), json!(3));
    assert_eq!(run("history(x)"), json!([5, 3]));
    assert_eq!(run("history(x * 2)[1]"), json!(6));
    assert_eq!(run("history(x).len()"), json!(2));
    assert_eq!(run("history(x).contains(5)"), json!(true));
    assert_eq!(run("prev(history(x))"), json!([3]), "history as of the previous hit");
    let condition = compile_condition("x != prev(x)", &["x"]).unwrap();
    assert!(condition.reads_earlier_hits());
    assert!(condition.eval_bool(&WithHistory).unwrap());
    assert!(!compile("x + 1", &["x"]).unwrap().reads_earlier_hits());
    // No history kept: prev is null, history empty.
    let hit = hit();
    assert_eq!(compile("prev(count)", &hit.names()).unwrap().eval(&hit).unwrap().to_json(), json!(null));
    assert_eq!(compile("history(count)", &hit.names()).unwrap().eval(&hit).unwrap().to_json(), json!([]));
    let template = compile_template("{prev(x)} -> {x}", &["x"]).unwrap();
    assert!(template.reads_earlier_hits());
    assert_eq!(template.render(&WithHistory), "5 -> 8");
}

#[test]
fn unknown_functions_and_wrong_arity_are_compile_errors() {
    assert!(compile_err("prevv(count)").contains("unknown function `prevv`; functions are `prev(x)`"));
    assert!(compile_err("prev(count, words)").contains("`prev` takes 1 argument, found 2"));
    assert!(compile_err("history()").contains("`history` takes 1 argument, found 0"));
    assert!(compile_err("prev(nope)").contains("unknown variable `nope`"));
}
