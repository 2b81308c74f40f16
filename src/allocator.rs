//! Giving freed memory back to the operating system.
//!
//! The binary's global allocator is mimalloc (`src/main.rs`). It returns freed memory to the
//! system lazily: a second after it was freed at the earliest (`purge_delay`), and only when the
//! thread that freed it next allocates. A hashing worker that has just dropped its ~19 MiB
//! Argon2 buffer after a burst of sign-ups may not allocate again for hours, so the memory would
//! stay resident. Two measures, both measured with `bench/memory.sh` (release binary, 40
//! concurrent sign-ups with the default Argon2 settings):
//! - [`return_freed_memory`] after a worker drops its buffer: 88 MB resident 15 s after the burst
//!   without it, 50 MB with it;
//! - arenas committed as they are used (`MIMALLOC_ARENA_EAGER_COMMIT=0`, compiled in by
//!   `.cargo/config.toml`, since mimalloc reads it before `main`) and freed memory purged at
//!   once ([`purge_promptly`], `MIMALLOC_PURGE_DELAY=0`): 26 MB resident 15 s after the burst
//!   instead of 45 MB; see BENCHMARKS.md ("Memory") for the figures.
//!   Purging at once costs a `madvise` per freed span; the validation hot path allocates and
//!   frees small blocks that stay within pages mimalloc keeps, so it is not affected (the
//!   benchmark's warm validation rows, measured with and without).

use std::ffi::c_int;

/// mimalloc's option numbers (`mi_option_e` in mimalloc 3's `mimalloc.h`, which
/// libmimalloc-sys builds by default; the crate names only the older options). The unit test
/// below checks them against the options' documented defaults.
const PURGE_DELAY: c_int = 15;
#[cfg(test)]
const ARENA_EAGER_COMMIT: c_int = 4;

/// Asks the allocator to return to the system, now, what this thread has freed.
#[allow(unsafe_code)]
pub fn return_freed_memory() {
    // SAFETY: `mi_collect` takes no pointer and has no precondition: it walks mimalloc's own
    // state for the calling thread (and the shared segments) and releases what is unused. It may
    // be called from any thread at any time; when mimalloc is not the global allocator (the
    // library's tests) it finds nothing to release.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Has freed memory go back to the system at once rather than a second later: the binary
/// calls this first thing. An operator's own `MIMALLOC_PURGE_DELAY` wins.
#[allow(unsafe_code)]
pub fn purge_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` takes an option number and a value, no pointer; it ignores
        // numbers out of range and may be called at any time from any thread (it stores the
        // value in mimalloc's option table, read at each later use).
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers name the options we mean: the purge delay's default is mimalloc 3's
    /// (1000 ms), and arenas are committed as used (0), as `.cargo/config.toml` compiles it. A
    /// mimalloc upgrade that renumbers them, or a build without that setting, fails here.
    #[test]
    #[allow(unsafe_code)]
    fn the_option_numbers_are_mimallocs_and_arenas_commit_as_used() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some()
            || std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_some()
        {
            return;
        }
        // SAFETY: `mi_option_get` reads mimalloc's option table; no pointer, no precondition.
        let (delay, eager) = unsafe {
            (
                libmimalloc_sys::mi_option_get(PURGE_DELAY),
                libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT),
            )
        };
        assert_eq!((delay, eager), (1000, 0));
    }
}
