//! The `ax` command line, as a user runs it.

use ax_e2e::{ax, library, run};

#[test]
fn run_prints_the_result() {
    let out = run(ax().args(["run", "--no-build"]).arg(library("word-count")).args(["count", r#"{"text":"a b c"}"#]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "{\"total\":3,\"words\":3}\n");
}
