//! Giving memory back to the system after a burst of traffic.
//!
//! Each milter session may hold a message up to `max_message_mib` and each milter
//! packet up to 1 MB while it is read; after a burst those buffers are freed, but glibc's
//! allocator keeps freed memory for reuse: in up to eight arenas per core (one per
//! thread that allocated), and, since its mmap threshold grows to the largest block
//! freed, with large buffers carved from those arenas instead of mapped on their own.
//! The daemon then holds hundreds of MB it no longer uses. So, at start: at most two
//! arenas, a fixed mmap threshold (128 KiB: every buffer larger than that is its own
//! mapping, returned to the system the moment it is freed) and a fixed trim threshold;
//! and every [`TRIM_EVERY`] `malloc_trim(0)` returns the free pages inside the arenas (after
//! the store's idle handles drop their page caches). The hashing slots free their argon2
//! memory themselves a second after their last check (`login::hashers`).
//! Other C libraries: nothing to do.

use std::time::Duration;

/// How often free memory is handed back (`malloc_trim`).
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Tunes the allocator; call before the listeners start.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; any value is accepted or refused.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
    }
}

/// Returns the free memory of every arena to the system.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim walks the allocator's own free lists under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
