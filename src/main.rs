//! The `killbill-auth` binary: the command line lives in the library (`killbill_auth::cli`).

use std::process::ExitCode;

/// mimalloc instead of the system allocator: a validation allocates a few dozen small blocks
/// (hyper, axum, the answer), and glibc's malloc and free were about a tenth of its CPU time.
/// `examples/bare.rs` uses it too, so the benchmark compares handlers, not allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    killbill_auth::allocator::purge_promptly();
    killbill_auth::cli::run()
}
