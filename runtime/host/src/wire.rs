//! The wire of a child host: one JSON object per line, `{"id": N, ...body}`.
//! Isolated mode (`ax-isolate`) and debug sessions (`debug_host`) both speak it.

use std::io::Write;

use serde::{Deserialize, Serialize};

/// One message: its request id (0 for a notification) and its body, flattened.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub id: u64,
    #[serde(flatten)]
    pub body: T,
}

/// Writes `body` as one line with its id.
pub fn send<T: Serialize>(stream: &mut impl Write, id: u64, body: T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(&Envelope { id, body }).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}
