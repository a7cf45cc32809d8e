//! The host's query cache, for plugins: bytes to bytes, shared by every
//! instance of the plugin (so it stays warm across hot reloads), bounded and
//! with a time to live, configured in the manifest's `[cache]`.
//!
//! ```ignore
//! if let Some(hit) = ax_plugin::cache::get(key) { return Ok(decode(&hit)) }
//! let value = expensive(key);
//! ax_plugin::cache::put_for(key, &value, Duration::from_secs(60));
//! ```
//!
//! Outside a host (no instance created yet) every get misses and puts are dropped.

use std::time::Duration;

use ax_abi::{AxBytes, AxStr};

/// The value cached under `key`, if present and not expired.
pub fn get(key: &[u8]) -> Option<Vec<u8>> {
    let host = crate::bridge::host()?;
    let mut out = AxBytes::empty();
    // SAFETY: key and out are valid for the call; the host fills out on a hit.
    let hit = unsafe { (host.cache_get)(host.ctx, AxStr::new(key), &mut out) } == 1;
    crate::bridge::check_abort(host);
    // The host allocated the bytes; dropping `out` hands them back to it.
    hit.then(|| out.as_slice().to_vec())
}

/// Caches `value` under `key` with the cache's default time to live.
pub fn put(key: &[u8], value: &[u8]) {
    put_ttl(key, value, 0);
}

/// Caches `value` under `key` for `ttl`.
pub fn put_for(key: &[u8], value: &[u8], ttl: Duration) {
    put_ttl(key, value, (ttl.as_millis().min(u64::MAX as u128 - 1) as u64).max(1));
}

/// Caches `value` under `key` until it is evicted.
pub fn put_forever(key: &[u8], value: &[u8]) {
    put_ttl(key, value, u64::MAX);
}

fn put_ttl(key: &[u8], value: &[u8], ttl_ms: u64) {
    let Some(host) = crate::bridge::host() else { return };
    // SAFETY: key and value are valid for the call.
    unsafe { (host.cache_put)(host.ctx, AxStr::new(key), AxStr::new(value), ttl_ms) };
    crate::bridge::check_abort(host);
}
