//! Starting a child `ax` host process: isolated mode (`ax __isolated-host`)
//! and debug sessions (`ax __debug-host`) both bind a Unix socket, start the
//! child with `--socket PATH`, and wait for it to connect back while watching
//! that it does not die first. The child's stdout and stderr are piped for the
//! caller to read.
//!
//! The socket's path is the caller's to choose inside its private directory
//! ([`ax_runtime::rundir`]); `bind` creates it exclusively (an existing path is an
//! error, never replaced). A connection is accepted only from the child just
//! started: same uid and same pid (`SO_PEERCRED`); any other is refused and
//! logged, and the wait goes on.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a child may take to connect back.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `binary subcommand --socket socket` and returns it with its
/// connection. On any failure the child (if started) is killed and reaped,
/// and the message says which step failed.
pub fn start_child_host(binary: &Path, subcommand: &str, socket: &Path) -> Result<(Child, UnixStream), String> {
    start_child_host_with(Command::new(binary), subcommand, socket)
}

/// [`start_child_host`] with a command the caller has prepared (environment,
/// working directory) from `Command::new(binary)`.
pub fn start_child_host_with(
    mut command: Command,
    subcommand: &str,
    socket: &Path,
) -> Result<(Child, UnixStream), String> {
    let binary = Path::new(command.get_program()).to_owned();
    let listener = UnixListener::bind(socket).map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    let mut process = command
        .arg(subcommand)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {} {subcommand}: {e}", binary.display()))?;
    let connected = wait_for_connection(&listener, socket, &mut process, subcommand);
    let _ = std::fs::remove_file(socket);
    match connected {
        Ok(stream) => Ok((process, stream)),
        Err(message) => {
            let _ = process.kill();
            let _ = process.wait();
            Err(message)
        }
    }
}

fn wait_for_connection(
    listener: &UnixListener,
    socket: &Path,
    process: &mut Child,
    subcommand: &str,
) -> Result<UnixStream, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => match ax_runtime::peer::check_unix_peer(&stream, Some(process.id())) {
                Ok(_) => {
                    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
                    return Ok(stream);
                }
                Err(why) => {
                    tracing::warn!("refused a connection on {}: {why}", socket.display());
                    eprintln!("ax: refused a connection on {}: {why}", socket.display());
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Ok(Some(status)) = process.try_wait() {
                    return Err(format!("`ax {subcommand}` exited before connecting ({status})"));
                }
                if Instant::now() > deadline {
                    return Err(format!("`ax {subcommand}` did not connect within {CONNECT_TIMEOUT:?}"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(format!("`ax {subcommand}` did not connect: {e}")),
        }
    }
}
