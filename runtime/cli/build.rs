//! Packs the sources of the SDK (`sdk/`) and the ABI crate (`runtime/abi/`),
//! and the workspace manifest they inherit from, into the `ax` binary, so that
//! an installed `ax new` does not depend on the checkout it was built from
//! (`src/sdk_data.rs` writes them out). Generates `$OUT_DIR/embedded_sdk.rs`:
//! `FILES` (path relative to the checkout, contents) and `DIGEST` (a hash of
//! all of them, naming the data directory they are written to).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("../..");
    let mut files = vec![PathBuf::from("Cargo.toml")];
    for dir in ["sdk", "runtime/abi"] {
        collect(&root, Path::new(dir), &mut files);
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed=build.rs");
    files.sort();

    // FNV-1a over every path and its contents: a new SDK gets a new directory.
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    let mut code = String::from("/// The packed files: path relative to the checkout, contents.\n");
    code.push_str("pub(crate) const FILES: &[(&str, &str)] = &[\n");
    for file in &files {
        let absolute = root.join(file).canonicalize().expect("a packed file exists");
        let contents = std::fs::read(&absolute).expect("a packed file is readable");
        let relative = file.to_str().expect("UTF-8 paths in the checkout");
        for byte in relative.bytes().chain([0]).chain(contents.iter().copied()).chain([0]) {
            digest = (digest ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        let _ = writeln!(code, "    ({relative:?}, include_str!({:?})),", absolute.display().to_string());
    }
    code.push_str("];\n");
    let _ = writeln!(code, "/// A hash of the packed files.\npub(crate) const DIGEST: &str = \"{digest:016x}\";");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_sdk.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}

/// Every file under `root/dir` (relative to `root`), `target` directories left out.
fn collect(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let path = dir.join(&name);
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                collect(root, &path, files);
            }
        } else if kind.is_file() {
            files.push(path);
        }
    }
}
