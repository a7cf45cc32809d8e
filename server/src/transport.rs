//! The transport in front of tower-lsp-server: frames are read and checked
//! here, and only well-formed JSON-RPC messages reach tower-lsp-server.
//!
//! tower-lsp-server's own framed reader ends the stream at the first frame it
//! cannot decode (`Content-Length: 8` + `not json` and the server stopped
//! serving). So stdin is read on a thread of its own by `ax-framing`'s reader
//! (which resynchronises after a bad frame, caps header lines at 8 KiB and
//! bodies at 64 MiB); each body is checked with tower-lsp-server's own message
//! types; a good one is framed again into an in-memory pipe the server reads,
//! a bad one is answered here (-32700 parse error, or -32600 invalid request
//! with its id when it has one) and skipped. The server's output and these
//! answers meet at one writer, a whole frame at a time.
//!
//! **Invariant:** after any input, however malformed, the next well-formed
//! request is answered; tower-lsp-server never sees a frame it cannot decode.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::{Mutex, mpsc};
use tower_lsp_server::jsonrpc::{Request, Response};
use tower_lsp_server::{LspService, Server};

/// JSON-RPC's "parse error" and "invalid request" codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;

/// Whether `body` is a message tower-lsp-server can decode; if not, the
/// error response to send instead.
pub fn check(body: &[u8]) -> Result<(), Value> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => return Err(error(Value::Null, PARSE_ERROR, format!("the message is not JSON: {e}"))),
    };
    // The order tower-lsp-server tries them in (an untagged enum).
    if serde_json::from_value::<Response>(value.clone()).is_ok()
        || serde_json::from_value::<Request>(value.clone()).is_ok()
    {
        return Ok(());
    }
    let id = match value.get("id") {
        Some(id @ (Value::Number(_) | Value::String(_))) => id.clone(),
        _ => Value::Null,
    };
    Err(error(
        id,
        INVALID_REQUEST,
        "not a JSON-RPC 2.0 message: expected an object with \"jsonrpc\": \"2.0\" and a \"method\" string (a request or notification) or an \"id\" with a \"result\" or an \"error\" (a response)".to_owned(),
    ))
}

fn error(id: Value, code: i64, message: String) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

type Stdout = Arc<Mutex<tokio::io::Stdout>>;

async fn write_frame(out: &Stdout, body: &[u8]) {
    let mut out = out.lock().await;
    let header = format!("Content-Length: {}\r\n\r\n", body.len());
    let _ = out.write_all(header.as_bytes()).await;
    let _ = out.write_all(body).await;
    let _ = out.flush().await;
}

/// One frame of the server's own output (well-formed: tower-lsp-server wrote it).
async fn read_server_frame(from: &mut BufReader<DuplexStream>) -> Option<Vec<u8>> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if from.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok();
        }
    }
    let mut body = vec![0; length?];
    from.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// What the stdin thread hands on: a message for the server, or an answer for the client.
enum Checked {
    Forward(Vec<u8>),
    Answer(Value),
}

/// Serves LSP on stdin/stdout until the client says `exit` or stdin ends.
pub async fn serve_stdio() {
    let (service, socket) = LspService::new(crate::server::Backend::new);
    let (mut to_server, server_in) = tokio::io::duplex(1 << 16);
    let (server_out, from_server) = tokio::io::duplex(1 << 16);
    let stdout: Stdout = Arc::new(Mutex::new(tokio::io::stdout()));

    let (checked_tx, mut checked_rx) = mpsc::channel::<Checked>(64);
    // A plain thread: a blocked read of stdin must not hold the runtime up at exit.
    let _ = std::thread::Builder::new().name("ax-lsp-stdin".to_owned()).spawn(move || {
        let mut reader = ax_framing::Reader::new(std::io::BufReader::new(std::io::stdin()));
        loop {
            let checked = match reader.read() {
                Ok(None) => return,
                Ok(Some(body)) => match check(&body) {
                    Ok(()) => Checked::Forward(body),
                    Err(answer) => Checked::Answer(answer),
                },
                Err(bad) => Checked::Answer(error(Value::Null, PARSE_ERROR, format!("a malformed frame: {bad}"))),
            };
            if checked_tx.blocking_send(checked).is_err() {
                return;
            }
        }
    });

    let answers = stdout.clone();
    tokio::spawn(async move {
        while let Some(checked) = checked_rx.recv().await {
            match checked {
                Checked::Forward(body) => {
                    let header = format!("Content-Length: {}\r\n\r\n", body.len());
                    if to_server.write_all(header.as_bytes()).await.is_err()
                        || to_server.write_all(&body).await.is_err()
                    {
                        return;
                    }
                }
                Checked::Answer(answer) => write_frame(&answers, answer.to_string().as_bytes()).await,
            }
        }
        // stdin ended: so does the server's input (dropping `to_server`).
    });

    let output = stdout.clone();
    let forward_output = tokio::spawn(async move {
        let mut from_server = BufReader::new(from_server);
        while let Some(body) = read_server_frame(&mut from_server).await {
            write_frame(&output, &body).await;
        }
    });

    Server::new(server_in, server_out, socket).serve(service).await;
    // Everything the server wrote reaches stdout before the process ends.
    let _ = forward_output.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_messages_tower_lsp_server_decodes_pass() {
        assert_eq!(check(br#"{"jsonrpc":"2.0","id":1,"method":"shutdown"}"#), Ok(()));
        assert_eq!(check(br#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#), Ok(()));
        assert_eq!(check(br#"{"jsonrpc":"2.0","id":3,"result":null}"#), Ok(()));
        let not_json = check(b"not json").unwrap_err();
        assert_eq!((not_json["id"].clone(), not_json["error"]["code"].clone()), (Value::Null, json!(PARSE_ERROR)));
        let no_version = check(br#"{"id":7,"method":"x"}"#).unwrap_err();
        assert_eq!((no_version["id"].clone(), no_version["error"]["code"].clone()), (json!(7), json!(INVALID_REQUEST)));
        assert_eq!(check(b"[1,2]").unwrap_err()["id"], Value::Null);
    }
}
