//! `ax-dap`: the Debug Adapter Protocol server for ax plugins.
//!
//! `ax-dap --stdio` (the default) serves one session over stdin/stdout;
//! `ax-dap --port N` serves one session over a TCP connection on 127.0.0.1:N,
//! accepting only a client that runs as the same user (its socket's owner,
//! found in `/proc/net/tcp{,6}`); `ax-dap --socket PATH` serves one session
//! over a Unix socket created at PATH with mode 0600, its peer's uid checked
//! (`SO_PEERCRED`). A client of another user is refused, logged on stderr,
//! and the server waits for the next;
//! `ax-dap --schema` prints the launch and attach attributes as editors'
//! debugger contributions declare them.
//! The plugin runs in a child `ax __debug-host` process under the runtime's
//! debug agent (`session.rs`), so a plugin that crashes ends the session with a
//! message, never the adapter.

mod codec;
mod handlers;
mod handles;
mod host;
mod protocol;
mod session;

use std::io::BufReader;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::ExitCode;

use protocol::Out;
use session::Session;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["--schema"] => {
            println!("{:#}", protocol::schema());
            ExitCode::SUCCESS
        }
        [] | ["--stdio"] => {
            let session = Session::new(Out::new(Box::new(std::io::stdout())));
            session.run(&mut BufReader::new(std::io::stdin()));
            ExitCode::SUCCESS
        }
        ["--port", port] => {
            let Ok(port) = port.parse::<u16>() else {
                eprintln!("error: --port {port:?}: expected a port number");
                return ExitCode::from(2);
            };
            let listener = match TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => listener,
                Err(e) => {
                    eprintln!("error: cannot listen on 127.0.0.1:{port}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let accepted = accept_own(|| {
                let (stream, address) = listener.accept()?;
                Ok((ax_runtime::peer::check_tcp_peer(&stream), address.to_string(), stream))
            });
            match accepted.and_then(|stream| Ok((stream.try_clone()?, stream))) {
                Ok((reader, writer)) => {
                    Session::new(Out::new(Box::new(writer))).run(&mut BufReader::new(reader));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: no client connected on 127.0.0.1:{port}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ["--socket", path] => serve_socket(Path::new(path)),
        other => {
            eprintln!(
                "error: unexpected arguments {other:?}; expected `--stdio`, `--port N`, `--socket PATH` or `--schema`"
            );
            ExitCode::from(2)
        }
    }
}

/// Accepts connections until one comes from our own user; each other one is
/// refused (closed unanswered) and logged.
fn accept_own<S>(mut accept: impl FnMut() -> std::io::Result<(Result<(), String>, String, S)>) -> std::io::Result<S> {
    loop {
        match accept()? {
            (Ok(()), _, stream) => return Ok(stream),
            (Err(why), from, _) => eprintln!("ax-dap: refused a connection from {from}: {why}"),
        }
    }
}

/// `--socket PATH`: one session over a Unix socket only our user can connect to.
fn serve_socket(path: &Path) -> ExitCode {
    // The socket is created 0600 (no moment with wider permissions): the umask
    // applies to bind, and nothing else runs yet.
    // SAFETY: umask has no preconditions; this thread is the only one.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = match bound {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!(
                "error: --socket {}: the path exists; expected a new path (remove a stale socket first)",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: --socket {}: cannot listen: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let accepted = accept_own(|| {
        let (stream, _) = listener.accept()?;
        let check = ax_runtime::peer::check_unix_peer(&stream, None).map(drop);
        Ok((check, path.display().to_string(), stream))
    });
    let _ = std::fs::remove_file(path);
    match accepted.and_then(|stream| Ok((stream.try_clone()?, stream))) {
        Ok((reader, writer)) => {
            Session::new(Out::new(Box::new(writer))).run(&mut BufReader::new(reader));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: no client connected on {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
