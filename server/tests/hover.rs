//! Snapshots of what a user reads on hover, over a profile taken for real by
//! `ax run --profile` on word-count (committed in `fixtures/`, so the figures
//! are stable) and word-count's source as it is in the repository. Review a
//! changed snapshot like code: it is what the editor shows.

use std::path::{Path, PathBuf};

use ax_lsp::analysis::hover;
use ax_lsp::plugin::PluginCrate;

/// A copy of word-count (manifest, source) with the fixture profile in `.ax/`,
/// the profile written after the source, as `ax run --profile` would.
fn word_count(dir: &Path) -> (PluginCrate, PathBuf, String) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace");
    let crate_dir = dir.join("word-count");
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();
    std::fs::create_dir_all(crate_dir.join(".ax")).unwrap();
    for file in ["ax-plugin.toml", "src/lib.rs"] {
        std::fs::copy(repo.join("examples/word-count").join(file), crate_dir.join(file)).unwrap();
    }
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/word-count-profile.json");
    std::fs::copy(profile, crate_dir.join(".ax/profile.json")).unwrap();
    let source = crate_dir.join("src/lib.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    (PluginCrate::read(&crate_dir), source, text)
}

fn line_of(text: &str, needle: &str) -> u32 {
    text.lines().position(|l| l.contains(needle)).expect("the line is in word-count") as u32
}

fn snapshot(name: &str, markdown: &str) {
    insta::with_settings!({ filters => vec![(r"\(\d+ (s|min|h|days) ago\)", "(… ago)")] }, {
        insta::assert_snapshot!(name, markdown);
    });
}

#[test]
fn hover_on_a_profiled_function_shows_its_table_histogram_budget_and_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let (plugin, source, text) = word_count(dir.path());
    let markdown = hover(&plugin, &source, &text, line_of(&text, "fn count_words")).expect("count_words is profiled");
    snapshot("count_words", &markdown);
}

#[test]
fn hover_on_a_probe_shows_its_hits() {
    let dir = tempfile::tempdir().unwrap();
    let (plugin, source, text) = word_count(dir.path());
    let markdown = hover(&plugin, &source, &text, line_of(&text, "probe!(")).expect("the probe was hit");
    snapshot("probe", &markdown);
}

#[test]
fn hover_after_an_edit_says_where_the_function_was_profiled() {
    let dir = tempfile::tempdir().unwrap();
    let (plugin, source, text) = word_count(dir.path());
    // Two lines inserted above: the function moved since profiling.
    let edited =
        text.replacen("#[instrument(skip_all)]", "// a new comment\n// and another\n#[instrument(skip_all)]", 1);
    let markdown = hover(&plugin, &source, &edited, line_of(&edited, "fn count_words")).expect("still found by name");
    assert!(markdown.contains("The source changed since profiling"), "{markdown}");
    snapshot("count_words_moved", &markdown);
}
