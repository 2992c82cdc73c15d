//! The `signet` binary: a thin shell over [`signet::cli`].

/// mimalloc: per-thread free lists without glibc's arena locks, which the
/// request path (many small header and buffer allocations on every worker)
/// otherwise contends on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    signet::cli::main()
}
