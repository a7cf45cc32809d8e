//! Last words for a process that a plugin is about to take down.
//!
//! In-process, a segfault, an abort or a stack overflow in plugin code ends
//! the host: nothing can be recovered. [`install_crash_reporter`] makes the
//! process say so, once, on stderr — which signal, and that isolated mode
//! contains such crashes — before dying of the signal as it would have (exit
//! status and core-dump behaviour unchanged). The previous handlers (Rust's
//! stack-overflow reporter among them) still run after ours.
//!
//! In a child host (isolated mode, a debug session: [`install_child_crash_reporter`])
//! the plugin already runs apart, so the advice would be wrong: the child says
//! only which signal and where, on one line starting with
//! [`CHILD_CRASH_PREFIX`], and the parent folds that line into its own report.
//!
//! The handler does only async-signal-safe work: `write(2)` of static bytes,
//! and of where the crashing thread was in plugin code (its innermost span and
//! last probe, read without allocating or locking; see `bridge::crash_context`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

const SIGNALS: [(libc::c_int, &str); 5] = [
    (libc::SIGSEGV, "SIGSEGV (segmentation fault)"),
    (libc::SIGBUS, "SIGBUS (bus error)"),
    (libc::SIGILL, "SIGILL (illegal instruction)"),
    (libc::SIGFPE, "SIGFPE (arithmetic error)"),
    (libc::SIGABRT, "SIGABRT (abort)"),
];

const PREFIX: &str = "error: the process is crashing with ";
const SUFFIX: &str = "; a plugin running in-process cannot survive this (run it isolated: --isolate, or isolation = \"process\" in ax-plugin.toml)\n";

/// How a child host's last words start; the parent recognises them by it.
pub const CHILD_CRASH_PREFIX: &str = "the plugin's process is crashing with ";

static REPORTED: AtomicBool = AtomicBool::new(false);
static IN_CHILD: AtomicBool = AtomicBool::new(false);
static PREVIOUS: OnceLock<Vec<(libc::c_int, libc::sigaction)>> = OnceLock::new();

/// Installs the reporter of a child host (`ax __isolated-host`, `ax __debug-host`):
/// which signal and where, without the advice to isolate the plugin. Idempotent.
pub fn install_child_crash_reporter() {
    IN_CHILD.store(true, Ordering::SeqCst);
    install_crash_reporter();
}

/// Installs the reporter for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT. Idempotent.
pub fn install_crash_reporter() {
    PREVIOUS.get_or_init(|| {
        SIGNALS
            .iter()
            .filter_map(|&(signal, _)| {
                // SAFETY: zeroed sigaction structs are valid; the handler is async-signal-safe.
                unsafe {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = handler as *const () as usize;
                    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                    libc::sigemptyset(&mut action.sa_mask);
                    let mut previous: libc::sigaction = std::mem::zeroed();
                    (libc::sigaction(signal, &action, &mut previous) == 0).then_some((signal, previous))
                }
            })
            .collect()
    });
}

fn write_stderr(bytes: &[u8]) {
    // SAFETY: write(2) is async-signal-safe; the buffer is valid.
    let _ = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    if !REPORTED.swap(true, Ordering::SeqCst) {
        let name = SIGNALS.iter().find(|(s, _)| *s == signal).map_or("a fatal signal", |(_, n)| n);
        let in_child = IN_CHILD.load(Ordering::SeqCst);
        write_stderr(if in_child { CHILD_CRASH_PREFIX } else { PREFIX }.as_bytes());
        write_stderr(name.as_bytes());
        crate::bridge::crash_context(&mut write_stderr);
        write_stderr(if in_child { b"\n" } else { SUFFIX.as_bytes() });
    }
    let previous = PREVIOUS.get().and_then(|all| all.iter().find(|(s, _)| *s == signal)).map(|(_, a)| *a);
    match previous {
        Some(action) if action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN => {
            if action.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: a handler installed with SA_SIGINFO has this signature.
                let previous: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(action.sa_sigaction) };
                previous(signal, info, context);
            } else {
                // SAFETY: a plain handler has this signature.
                let previous: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(action.sa_sigaction) };
                previous(signal);
            }
        }
        _ => {
            // Die of the signal: restore the default action; returning re-raises
            // a fault, and abort() raises SIGABRT again by itself.
            // SAFETY: signal() with SIG_DFL is async-signal-safe.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
            if matches!(signal, libc::SIGFPE | libc::SIGILL) {
                // SAFETY: raise is async-signal-safe.
                unsafe { libc::raise(signal) };
            }
        }
    }
}
