//! A global allocator that counts live bytes, for the memory-per-idle-subscriber figure.
//!
//! It forwards every call to [`System`] and keeps two relaxed atomic counters. It counts the
//! bytes *requested* (the allocator's own rounding and metadata are not included), so it
//! measures what the hub asks for, independent of which allocator the binary uses (the hub's
//! binary uses mimalloc).
#![allow(unsafe_code)] // `GlobalAlloc` is an unsafe trait; see the Safety comment below.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// Install in a bench or test binary with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// Safety: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the only additions are relaxed atomic counter updates, which neither
// allocate, nor unwind, nor touch the memory handed out. Each method's own safety requirements
// (valid layout, pointer from this allocator) are therefore exactly `System`'s, passed through.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // Safety: same contract as ours, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // Safety: same contract as ours, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // Safety: `ptr` came from `System` through us, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // Safety: `ptr` came from `System` through us, with this layout; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Bytes currently allocated through [`CountingAlloc`] (requested sizes).
pub fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Allocation calls so far (alloc, alloc_zeroed and realloc).
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}
