//! Query cache throughput: gets per second at 90 % hits over 100 000 keys with
//! 64-byte values, on one thread and on two, against a `Mutex<HashMap>` in the
//! same run; and the cost of a get from inside a plugin (through the ABI, value
//! copied into the plugin). Goal: ≥ 10 M gets/s on one thread, TTL honoured
//! (every get checks the entry's expiry).
//!
//! `cargo bench -p ax-e2e --bench cache`. Figures depend on the machine and its load.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ax_e2e::release_library;
use ax_runtime::{CacheConfig, Host, QueryCache};
use serde_json::json;

const KEYS: u64 = 100_000;
/// Keys looked up range over KEYS * 10 / 9: 90 % of them are present.
const SPACE: u64 = KEYS * 10 / 9;

fn key(i: u64) -> [u8; 8] {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % SPACE).to_le_bytes()
}

/// Gets per second over `threads` threads doing `per_thread` gets each (one
/// thread: this one, no spawn).
fn throughput(threads: u64, per_thread: u64, get: impl Fn(&[u8]) -> bool + Sync) -> f64 {
    if threads == 1 {
        let start = Instant::now();
        let hits: u64 = (0..per_thread).map(|i| u64::from(get(&key(i)))).sum();
        black_box(hits);
        return per_thread as f64 / start.elapsed().as_secs_f64();
    }
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let get = &get;
            s.spawn(move || {
                let mut hits = 0u64;
                for i in 0..per_thread {
                    hits += u64::from(get(&key(i + t * per_thread)));
                }
                black_box(hits)
            });
        }
    });
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let per_thread = if smoke { 200_000 } else { 5_000_000 };
    let cache = Arc::new(QueryCache::new(CacheConfig {
        max_entries: KEYS * 2,
        max_bytes: 1 << 30,
        default_ttl: Some(Duration::from_secs(3600)),
    }));
    let map: Mutex<HashMap<[u8; 8], Arc<[u8]>>> = Mutex::new(HashMap::new());
    for i in 0..KEYS {
        cache.put(&i.to_le_bytes(), &[7u8; 64], None);
        map.lock().unwrap().insert(i.to_le_bytes(), Arc::from(&[7u8; 64][..]));
    }
    let raw: quick_cache::sync::Cache<Box<[u8]>, Arc<[u8]>> = quick_cache::sync::Cache::new((KEYS * 2) as usize);
    for i in 0..KEYS {
        raw.insert(i.to_le_bytes().to_vec().into_boxed_slice(), Arc::from(&[7u8; 64][..]));
    }
    let ours = |k: &[u8]| cache.get(k).is_some();
    let bare = |k: &[u8]| raw.get(k).is_some();
    let baseline = |k: &[u8]| map.lock().unwrap().get(k).cloned().is_some();
    // Warm both up (page faults, frequency) before measuring.
    throughput(1, per_thread / 4, ours);
    throughput(1, per_thread / 4, baseline);
    println!("query cache, 100k keys, 64-byte values, 90 % hits:");
    for threads in [1, 2] {
        let ours = throughput(threads, per_thread, ours);
        let bare = throughput(threads, per_thread, bare);
        let base = throughput(threads, per_thread, baseline);
        println!(
            "  {threads} thread(s): QueryCache {:>6.1} M gets/s   bare quick_cache {:>6.1}   Mutex<HashMap> {:>6.1}",
            ours / 1e6,
            bare / 1e6,
            base / 1e6,
        );
    }
    let stats = cache.stats();
    println!("  hit rate {:.1} %, entries {}, evictions {}", stats.hit_rate() * 100.0, stats.entries, stats.evictions);

    let host = Host::new().unwrap();
    host.configure_cache("bench", CacheConfig { max_entries: KEYS * 2, max_bytes: 1 << 30, default_ttl: None });
    let plugin = host.load_library(release_library("fixture-bench-plugin"), "bench", "{}").unwrap();
    plugin.call("cache_fill", &json!({ "n": KEYS })).unwrap();
    let n = if smoke { 100_000 } else { 2_000_000 };
    let out = plugin.call("cache_get", &json!({ "n": n, "keys": KEYS })).unwrap();
    let ns = out["nanos"].as_f64().unwrap() / n as f64;
    let stats = plugin.cache_stats();
    println!(
        "  from inside a plugin (ABI + copy): {ns:.1} ns per get = {:.1} M gets/s; hit rate {:.1} %",
        1e3 / ns,
        stats.hit_rate() * 100.0
    );
}
