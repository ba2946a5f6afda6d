//! The `etl` binary: limits how much memory the C allocator keeps per thread, parses the
//! command line and hands over to `etl::cli`.

fn main() {
    limit_malloc_arenas();
    std::process::exit(etl::cli::main());
}

/// glibc's malloc gives threads that allocate at the same time arenas of their own (up to 8
/// per core) and keeps memory freed in an arena for that arena: the connectors' read-ahead
/// helpers, the attachment copiers and DuckDB's worker threads (one per core) can each hold
/// their own high-water mark, so the process's peak grows towards their sum, and more so the
/// more cores the machine has. Two arenas keep two threads from waiting on each other's
/// allocations while memory freed by one is reused by the others. On 2 cores at 25,000
/// accounts it took 2–21 MB off the first import's peak for no CPU time measured (see
/// BENCHMARKS.md, eighth session). `MALLOC_ARENA_MAX` or a `glibc.malloc.arena_max` tunable
/// set by the user is left to glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    use std::os::raw::c_int;
    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    /// glibc's `M_ARENA_MAX` (malloc.h).
    const M_ARENA_MAX: c_int = -8;
    let set_by_user = std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.arena_max"));
    if !set_by_user {
        // SAFETY: `mallopt` only sets one of malloc's parameters; it is called before the
        // process starts any thread. Its answer (0 when refused) needs no handling: the
        // allocator then works as before.
        unsafe {
            mallopt(M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
