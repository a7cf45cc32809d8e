//! `ax-dap`: the Debug Adapter Protocol server for ax plugins.
//!
//! `ax-dap --stdio` (the default) serves one session over stdin/stdout;
//! `ax-dap --port N` serves one session over a TCP connection on 127.0.0.1:N;
//! `ax-dap --schema` prints the launch and attach attributes as editors'
//! debugger contributions declare them.
//! The plugin runs in a child `ax __debug-host` process under the runtime's
//! debug agent (`session.rs`), so a plugin that crashes ends the session with a
//! message, never the adapter.

mod codec;
mod handles;
mod host;
mod protocol;
mod session;

use std::io::BufReader;
use std::net::TcpListener;
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
            match listener.accept().and_then(|(stream, _)| Ok((stream.try_clone()?, stream))) {
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
        other => {
            eprintln!("error: unexpected arguments {other:?}; expected `--stdio`, `--port N` or `--schema`");
            ExitCode::from(2)
        }
    }
}
