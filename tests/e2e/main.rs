//! End-to-end tests: real plugin libraries built from source, loaded by the
//! real runtime and driven through the real `ax` binary.

mod baseline;
mod budget;
mod cli;
mod concurrent;
mod dap;
mod debug;
mod debug_wire;
mod dev;
mod first_hour;
mod fuzz;
mod isolated;
mod lazy;
mod perf;
mod perf_ab;
mod profile;
mod reload;
mod runtime;
mod sandbox;
mod scaffold;
mod second_user;
mod telemetry;
