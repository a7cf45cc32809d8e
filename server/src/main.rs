//! `ax-lsp`: the Language Server that shows measured performance inline.
//!
//! Not implemented yet: it reads the profile file, which is planned work of its
//! own. Until then the binary says so and exits with status 2 instead of
//! pretending to speak LSP.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("error: ax-lsp is not implemented yet; the Language Server is planned work");
    ExitCode::from(2)
}
