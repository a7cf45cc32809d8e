//! A closed stdout or stderr ends `ax` quietly, as it ends other command-line
//! tools (`ax run … 2>&1 | head -2`).
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with EPIPE instead
//! of killing the process; `println!`/`eprintln!` then panic. ax does not put
//! SIGPIPE back to its default (a write to a child's socket would then kill the
//! host): the panic hook recognises a failed print to a closed pipe (wherever
//! it happened, on whatever thread) and calls [`exit_on_closed_pipe`], and
//! explicit writes call it on `BrokenPipe`. Either way ax exits with status
//! 141 (128 + SIGPIPE, what a shell reports for `cat` in the same place),
//! prints nothing (there is nowhere to print) and blames no plugin.

/// The exit status after a write to a closed pipe.
pub(crate) const CLOSED_PIPE_STATUS: i32 = 141;

/// Ends the process: the reader of stdout or stderr has gone.
pub(crate) fn exit_on_closed_pipe() -> ! {
    std::process::exit(CLOSED_PIPE_STATUS)
}

/// Whether a panic message is std's for a print to a closed pipe
/// (`failed printing to stderr: Broken pipe (os error 32)`).
pub(crate) fn is_closed_pipe_panic(message: &str) -> bool {
    let broken_pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
    message.starts_with("failed printing to std")
        && (message.contains("os error 32") || message.ends_with(&broken_pipe.to_string()))
}

/// Exits quietly if `result` failed because the pipe is closed; otherwise ignores it
/// (a full disk is not worth stopping the calls for).
pub(crate) fn check(result: std::io::Result<()>) {
    if let Err(e) = result
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        exit_on_closed_pipe();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_std_print_panics() {
        assert!(is_closed_pipe_panic("failed printing to stderr: Broken pipe (os error 32)"));
        assert!(is_closed_pipe_panic("failed printing to stdout: Broken pipe (os error 32)"));
        assert!(!is_closed_pipe_panic("failed printing to stdout: No space left on device (os error 28)"));
        assert!(!is_closed_pipe_panic("index out of bounds"));
    }
}
