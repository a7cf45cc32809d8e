//! The query cache the host offers plugins (`ax_plugin::cache`): bytes to
//! bytes, bounded by entries and by bytes, evicting with quick_cache's
//! CLOCK-Pro (hot/cold, scan resistant: better than LRU for caches that see
//! one-off keys), with a time to live checked on every get.
//!
//! quick_cache was chosen by measurement (see `benches/cache.rs` and the BRIEF):
//! it gets well above 10 M lookups/s on one thread; moka was 8–17× slower.
//! One weight bounds both limits: an entry weighs its bytes, but never less
//! than `max_bytes / max_entries`, so at most `max_entries` fit. quick_cache is
//! sharded and each shard enforces its share of the bounds, so a cache may
//! start evicting slightly before it is full; it never exceeds them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};

/// Limits of one plugin's cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    pub max_entries: u64,
    pub max_bytes: u64,
    /// Time to live of entries stored without one; `None`: until evicted.
    pub default_ttl: Option<Duration>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { max_entries: 10_000, max_bytes: 64 << 20, default_ttl: None }
    }
}

impl CacheConfig {
    /// The manifest's `[cache]`.
    pub fn from_manifest(section: &ax_manifest::CacheSection) -> CacheConfig {
        CacheConfig {
            max_entries: section.max_entries,
            max_bytes: section.max_bytes.0,
            default_ttl: section.default_ttl.map(|d| d.0),
        }
    }
}

/// Counters of a cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries pushed out to make room (expired entries are not evictions).
    pub evictions: u64,
    pub expired: u64,
    pub entries: u64,
    /// Bytes of keys and values held.
    pub bytes: u64,
}

impl CacheStats {
    /// Hits over lookups; 0 before any lookup.
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 { 0.0 } else { self.hits as f64 / lookups as f64 }
    }
}

#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    /// Nanoseconds after the cache's epoch; `u64::MAX`: never.
    expires: u64,
    bytes: u64,
}

#[derive(Clone)]
struct EntryWeighter {
    floor: u64,
}

impl Weighter<Box<[u8]>, Entry> for EntryWeighter {
    fn weight(&self, _key: &Box<[u8]>, entry: &Entry) -> u64 {
        entry.bytes.max(self.floor).max(1)
    }
}

/// Counts evictions and keeps the byte count true when entries are pushed out.
#[derive(Clone, Default)]
struct CountEvictions {
    evictions: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl Lifecycle<Box<[u8]>, Entry> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: Box<[u8]>, entry: Entry) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_sub(entry.bytes, Ordering::Relaxed);
    }
}

/// Monotonic nanoseconds from a coarse clock: a few nanoseconds to read
/// (`CLOCK_MONOTONIC_COARSE`, vDSO), a few milliseconds of resolution. Reading
/// `Instant::now()` on every get took most of a get's time; TTLs are honoured to
/// within the clock's resolution (about 4 ms on Linux).
#[cfg(target_os = "linux")]
fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(not(target_os = "linux"))]
fn coarse_now_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

/// A counter striped over cache lines, so that threads counting at once do
/// not fight over one line (one shared counter halved two-thread throughput).
#[derive(Default)]
struct Striped([crossbeam_utils::CachePadded<AtomicU64>; 8]);

impl Striped {
    fn add(&self, n: u64) {
        thread_local! {
            static STRIPE: usize = {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed)
            };
        }
        let stripe = STRIPE.try_with(|s| *s).unwrap_or(0) % 8;
        self.0[stripe].fetch_add(n, Ordering::Relaxed);
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// One plugin's cache. Shared by every instance of the plugin, so a hot reload
/// keeps it warm.
pub struct QueryCache {
    cache: Cache<Box<[u8]>, Entry, EntryWeighter, DefaultHashBuilder, CountEvictions>,
    config: CacheConfig,
    hits: Striped,
    misses: Striped,
    expired: AtomicU64,
    counts: CountEvictions,
}

impl std::fmt::Debug for QueryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCache").field("config", &self.config).field("stats", &self.stats()).finish()
    }
}

impl QueryCache {
    pub fn new(config: CacheConfig) -> QueryCache {
        let max_entries = config.max_entries.max(1);
        let floor = config.max_bytes / max_entries;
        let counts = CountEvictions::default();
        QueryCache {
            cache: Cache::with(
                max_entries as usize,
                config.max_bytes.max(1),
                EntryWeighter { floor },
                DefaultHashBuilder::default(),
                counts.clone(),
            ),
            config,
            hits: Striped::default(),
            misses: Striped::default(),
            expired: AtomicU64::new(0),
            counts,
        }
    }

    fn now(&self) -> u64 {
        coarse_now_ns()
    }

    /// The value under `key`, unless absent or expired.
    pub fn get(&self, key: &[u8]) -> Option<Arc<[u8]>> {
        match self.cache.get(key) {
            Some(entry) if entry.expires == u64::MAX || entry.expires > self.now() => {
                self.hits.add(1);
                Some(entry.value)
            }
            Some(_) => {
                if let Some((_, gone)) = self.cache.remove(key) {
                    self.counts.bytes.fetch_sub(gone.bytes, Ordering::Relaxed);
                }
                self.expired.fetch_add(1, Ordering::Relaxed);
                self.misses.add(1);
                None
            }
            None => {
                self.misses.add(1);
                None
            }
        }
    }

    /// Stores `value` under `key` for `ttl` (`None`: the default TTL).
    pub fn put(&self, key: &[u8], value: &[u8], ttl: Option<Duration>) {
        let ttl = ttl.or(self.config.default_ttl);
        let expires = ttl.map_or(u64::MAX, |t| self.now().saturating_add(t.as_nanos().min(u64::MAX as u128) as u64));
        let bytes = (key.len() + value.len()) as u64;
        if let Some((_, old)) = self.cache.remove(key) {
            self.counts.bytes.fetch_sub(old.bytes, Ordering::Relaxed);
        }
        self.counts.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.cache.insert(key.into(), Entry { value: value.into(), expires, bytes });
    }

    /// The counters, and what the cache holds now.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.sum(),
            misses: self.misses.sum(),
            evictions: self.counts.evictions.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            entries: self.cache.len() as u64,
            bytes: self.counts.bytes.load(Ordering::Relaxed),
        }
    }

    /// The limits.
    pub fn config(&self) -> CacheConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_rate_two_thirds_after_two_hits_and_a_miss() {
        let cache = QueryCache::new(CacheConfig::default());
        cache.put(b"k", b"v", None);
        assert_eq!(cache.get(b"k").as_deref(), Some(&b"v"[..]));
        assert_eq!(cache.get(b"k").as_deref(), Some(&b"v"[..]));
        assert_eq!(cache.get(b"other"), None);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (2, 1));
        assert!((stats.hit_rate() - 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn ttl_is_honoured() {
        let cache =
            QueryCache::new(CacheConfig { default_ttl: Some(Duration::from_millis(30)), ..CacheConfig::default() });
        cache.put(b"short", b"1", None);
        cache.put(b"long", b"2", Some(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(cache.get(b"short"), None, "expired with the default TTL");
        assert_eq!(cache.get(b"long").as_deref(), Some(&b"2"[..]));
        assert_eq!(cache.stats().expired, 1);
        assert_eq!(cache.stats().entries, 1);
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let by_entries = QueryCache::new(CacheConfig { max_entries: 100, max_bytes: 1 << 30, default_ttl: None });
        for i in 0u32..1000 {
            by_entries.put(&i.to_le_bytes(), b"x", None);
        }
        let stats = by_entries.stats();
        assert!(stats.entries <= 100, "{stats:?}");
        assert!(stats.evictions >= 900, "{stats:?}");

        let by_bytes = QueryCache::new(CacheConfig { max_entries: 1_000_000, max_bytes: 64 << 10, default_ttl: None });
        for i in 0u32..1000 {
            by_bytes.put(&i.to_le_bytes(), &[7u8; 1024], None);
        }
        assert!(by_bytes.cache.weight() <= 64 << 10);
        assert!(by_bytes.stats().bytes <= 64 << 10, "{:?}", by_bytes.stats());
        assert!(by_bytes.stats().entries <= 64, "{:?}", by_bytes.stats());
    }

    #[test]
    fn hot_keys_survive_a_scan_of_cold_ones() {
        let cache = QueryCache::new(CacheConfig { max_entries: 100, max_bytes: 1 << 30, default_ttl: None });
        for i in 0u32..50 {
            cache.put(&i.to_le_bytes(), b"hot", None);
        }
        for _ in 0..3 {
            for i in 0u32..50 {
                assert!(cache.get(&i.to_le_bytes()).is_some());
            }
        }
        for i in 1000u32..1500 {
            cache.put(&i.to_le_bytes(), b"cold", None);
        }
        let survivors = (0u32..50).filter(|i| cache.get(&i.to_le_bytes()).is_some()).count();
        assert!(survivors >= 45, "only {survivors} hot keys survived a scan (LRU would keep none)");
    }
}
