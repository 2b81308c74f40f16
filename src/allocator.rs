//! Giving freed memory back to the operating system.
//!
//! The binary's global allocator is mimalloc (`src/main.rs`). It returns freed memory to the
//! system lazily, when the thread that freed it next allocates: a hashing worker that has just
//! dropped its ~19 MiB Argon2 buffer after a burst of sign-ups may not allocate again for hours,
//! so the memory would stay resident. `bench/memory.sh` measured the release binary after 40
//! concurrent sign-ups: 88 MB resident 15 s later without this call, 25 MB with it (the same as
//! with `MIMALLOC_PURGE_DELAY=0 MIMALLOC_ARENA_EAGER_COMMIT=0`).

/// Asks the allocator to return to the system, now, what this thread has freed.
#[allow(unsafe_code)]
pub fn return_freed_memory() {
    // SAFETY: `mi_collect` takes no pointer and has no precondition: it walks mimalloc's own
    // state for the calling thread (and the shared segments) and releases what is unused. It may
    // be called from any thread at any time; when mimalloc is not the global allocator (the
    // library's tests) it finds nothing to release.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
