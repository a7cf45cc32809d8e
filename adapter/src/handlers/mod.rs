//! The request handlers, grouped by concern as ruff_server groups its own:
//! `lifecycle` (launch, attach, restart, configurationDone, continue / step /
//! pause), `breakpoints` (every kind, data breakpoints included), `stack`
//! (threads, stack, scopes, variables, setVariable, exceptionInfo),
//! `evaluate` (evaluate, the REPL's `.call` and `.history`, completions) and
//! `sources` (modules, loaded sources). Each is a method on `Session`, run by
//! `Session::handle` in request order; each file says what its handlers
//! read and write.

mod breakpoints;
mod evaluate;
mod lifecycle;
mod sources;
mod stack;
