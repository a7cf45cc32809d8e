//! The README's Rust examples compile in a crate made by `ax new`, as a new
//! plugin author would paste them: a whole plugin (one with
//! `export_plugin!`) replaces `src/lib.rs`, anything else is added to it.

use ax_e2e::{ax, cargo, run, workspace_root};

/// The ```rust blocks of README.md.
fn readme_rust_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.trim() == "```rust" => current = Some(String::new()),
            Some(_) if line.trim() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn readme_examples_build_in_a_new_plugin() {
    let blocks = readme_rust_blocks();
    assert!(blocks.iter().any(|b| b.contains("ax_plugin::cache::")), "the README shows the cache: {blocks:#?}");
    let dir = tempfile::tempdir().unwrap();
    // Its own crate name: other tests share the target directory.
    assert_eq!(run(ax().current_dir(dir.path()).args(["new", "readme-examples"])).code, Some(0));
    let lib_rs = dir.path().join("readme-examples/src/lib.rs");
    let scaffold = std::fs::read_to_string(&lib_rs).unwrap();
    for block in &blocks {
        let whole = block.contains("export_plugin!") || block.contains("export_concurrent_plugin!");
        let source = if whole { block.clone() } else { format!("{scaffold}\n{block}") };
        std::fs::write(&lib_rs, source).unwrap();
        let out = run(cargo()
            .current_dir(dir.path().join("readme-examples"))
            .env("CARGO_TARGET_DIR", workspace_root().join("target/e2e-new"))
            .args(["build", "--quiet"]));
        assert_eq!(out.code, Some(0), "this README example does not build in a new plugin:\n{block}\n{}", out.stderr);
    }
}
