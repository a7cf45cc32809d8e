//! `ax-dap`: the Debug Adapter Protocol server for ax plugins.
//!
//! Not implemented yet: the debug agent and the adapter are the subject of their
//! own issue. Until then the binary says so and exits with status 2 instead of
//! pretending to speak DAP.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("error: ax-dap is not implemented yet; the Debug Adapter Protocol server is planned work");
    ExitCode::from(2)
}
