//! The counting global allocator (cargo feature `counting-allocator`, on by
//! default): the system allocator plus three counters per thread, which the
//! host reads (for the thread running a call) to enforce memory budgets and
//! report allocations per call.
//!
//! The counters are thread-local and written only by their own thread, with
//! relaxed loads and stores (plain moves, no locked read-modify-write): the
//! first version, with global atomic counters, tripled the cost of a small
//! allocation (`benches/budget.rs`). The host reads a thread's counters from the
//! watchdog thread through the pointer `alloc_counters` returns on that thread.
//! Memory a call's helper threads allocate is therefore not counted, as CPU
//! time is not.
//!
//! It never refuses an allocation: failing one in-process would abort the host.
//! A plugin that brings its own `#[global_allocator]` turns the feature off
//! (`default-features = false`); its calls then report no memory usage and
//! memory budgets are not enforced for it in-process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::Ordering;

use ax_abi::AllocCounters;

thread_local! {
    /// This thread's counters. Const-initialised and without `Drop`, so using
    /// them inside the allocator neither allocates nor registers a destructor.
    static COUNTERS: AllocCounters = const { AllocCounters::new() };
}

/// `System`, counted.
#[derive(Debug)]
pub struct CountingAllocator;

fn allocated(size: usize) {
    let _ = COUNTERS.try_with(|c| {
        // Single writer: this thread. Readers on other threads see each store whole.
        let total = c.allocated.load(Ordering::Relaxed).wrapping_add(size as u64);
        c.allocated.store(total, Ordering::Relaxed);
        let live = total.wrapping_sub(c.freed.load(Ordering::Relaxed));
        if live > c.peak_live.load(Ordering::Relaxed) && live < u64::MAX / 2 {
            c.peak_live.store(live, Ordering::Relaxed);
        }
    });
}

fn freed(size: usize) {
    let _ = COUNTERS.try_with(|c| {
        c.freed.store(c.freed.load(Ordering::Relaxed).wrapping_add(size as u64), Ordering::Relaxed);
    });
}

// SAFETY: every method forwards to `System` unchanged and only updates counters.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            allocated(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            allocated(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) };
        freed(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            freed(layout.size());
            allocated(new_size);
        }
        new
    }
}

#[cfg(feature = "counting-allocator")]
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The calling thread's counters, if this image counts its allocations. The
/// pointer is valid while the thread lives.
pub(crate) fn counters() -> *const AllocCounters {
    if cfg!(feature = "counting-allocator") {
        COUNTERS.try_with(|c| c as *const AllocCounters).unwrap_or(std::ptr::null())
    } else {
        std::ptr::null()
    }
}
