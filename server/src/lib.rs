//! `ax-lsp`, the ax Language Server, as a library: the binary is `serve` over
//! stdio; the benchmarks call the analysis functions directly.
//!
//! The plugin's measured performance (the profile file `.ax/profile.json`,
//! `ax-profile`) is shown where the code is: inlay hints on profiled
//! functions, hovers with the full table, diagnostics for budgets and hot
//! spots, code lenses, quick fixes; and for `ax-plugin.toml` (`ax-manifest`)
//! schema errors with ranges, startup recommendations, completion and hover of
//! keys. Only this crate knows LSP.

pub mod analysis;
pub mod format;
pub mod manifest;
pub mod manifest_doc;
pub mod plugin;
pub mod scan;
pub mod server;
pub mod settings;
pub mod transport;

pub use transport::serve_stdio;
