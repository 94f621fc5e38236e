//! A global allocator for the fuzz builds that makes any allocation over [`ALLOC_LIMIT`]
//! fail. Rust's allocation-error handler then prints the size and aborts, which libFuzzer
//! records as a crash: without sanitizers its own `-malloc_limit_mb` is not enforced, and
//! `-rss_limit_mb` (a once-a-second look at RSS) misses short-lived peaks. Fallible
//! reservations (`try_reserve`) just get their error.

use std::alloc::{GlobalAlloc, Layout, System};

/// No single allocation may be larger, whatever the input: the largest the code asks for
/// by design is the delta window of a signature with `rsync::MAX_BLOCK_LEN`-byte blocks
/// (128 MiB).
pub const ALLOC_LIMIT: usize = 160 << 20;

struct Limited;

// SAFETY: forwards to the system allocator; only refuses sizes over the limit (a null
// return is how an allocator reports failure).
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() > ALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.size() > ALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > ALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Limited = Limited;
