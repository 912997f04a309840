//! Giving memory back to the system after a burst. The agent runs for days; a thousand
//! tunnelled connections at once make its heap grow by tens of megabytes, and glibc's
//! allocator keeps the freed pages that sit between live allocations (it only trims the top of
//! its heaps by itself), so without this an idle agent would stay at its peak.

/// Returns free heap pages to the system (glibc); a no-op elsewhere, where allocators return
/// memory by themselves.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes no pointers and only rearranges the allocator's free lists;
    // it is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
