//! The counting global allocator (cargo feature `counting-allocator`, on by
//! default): the system allocator plus three atomic counters the host reads to
//! enforce memory budgets and report allocations per call.
//!
//! It never refuses an allocation: failing one in-process would abort the host.
//! A plugin that brings its own `#[global_allocator]` turns the feature off
//! (`default-features = false`); its calls then report no memory usage and
//! memory budgets are not enforced for it in-process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::Ordering;

use ax_abi::AllocCounters;

/// The counters of this plugin image.
pub(crate) static COUNTERS: AllocCounters = AllocCounters::new();

/// `System`, counted.
#[derive(Debug)]
pub struct CountingAllocator;

fn allocated(size: usize) {
    let size = size as u64;
    let before = COUNTERS.allocated.fetch_add(size, Ordering::Relaxed);
    let live = (before + size).wrapping_sub(COUNTERS.freed.load(Ordering::Relaxed));
    COUNTERS.peak_live.fetch_max(live, Ordering::Relaxed);
}

fn freed(size: usize) {
    COUNTERS.freed.fetch_add(size as u64, Ordering::Relaxed);
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

/// The counters, if this image counts its allocations.
pub(crate) fn counters() -> *const AllocCounters {
    if cfg!(feature = "counting-allocator") { &COUNTERS } else { std::ptr::null() }
}
