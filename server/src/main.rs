//! `ax-lsp --stdio`: the ax Language Server over standard input and output.
//!
//! A single-threaded tokio runtime: the work per request is small and
//! synchronous, and one thread starts fastest (the initialize round trip is
//! benchmarked against a 10 ms goal).

use std::process::ExitCode;

const USAGE: &str = "usage: ax-lsp --stdio\n\nThe ax Language Server: a plugin's measured performance (.ax/profile.json)\nand startup advice inline in the editor. Speaks LSP on stdin/stdout.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["--stdio"] => {}
        ["--version"] | ["-V"] => {
            println!("ax-lsp {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        ["--help"] | ["-h"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("error: unexpected arguments {other:?}; expected --stdio\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: ax-lsp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(ax_lsp::serve_stdio());
    ExitCode::SUCCESS
}
