//! Giving memory the api no longer uses back to the system, so that an idle
//! api is small (BENCHMARKS.md, "Builds and memory").

use std::ffi::{c_int, c_void};

/// Purges the memory this thread's heap and mimalloc's arenas hold free.
///
/// The binaries allocate with mimalloc, which keeps freed pages for a later
/// purge that runs only when the freeing thread allocates again: a thread
/// that then idles (a blocking-pool thread after a password hash, the main
/// thread after start-up) would keep them resident for good. Microseconds;
/// call it after a burst, not per request.
pub fn give_back() {
    // SAFETY: mi_collect takes no pointers; it only walks mimalloc's own
    // heaps and is a no-op for memory mimalloc did not allocate.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Unmaps this executable's read-only pages (code and constants) from the
/// process; they stay in the page cache, and the next touch maps a page
/// again without reading the disk. Start-up runs much code that serving
/// never runs again (the OpenAPI document's builders, configuration,
/// connection set-up): after this, only what runs again is resident.
/// Writable segments (data, and the relocated read-only-after-relocation
/// part) are left alone: discarding them would lose their contents.
pub fn drop_start_up_pages() {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        _data: *mut c_void,
    ) -> c_int {
        // SAFETY: the C library hands a valid `dl_phdr_info` whose
        // `dlpi_phdr` points at `dlpi_phnum` program headers.
        let info = unsafe { &*info };
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        for i in 0..usize::from(info.dlpi_phnum) {
            // SAFETY: i < dlpi_phnum (see above).
            let header = unsafe { &*info.dlpi_phdr.add(i) };
            if header.p_type != libc::PT_LOAD || header.p_flags & libc::PF_W != 0 {
                continue;
            }
            let start = info.dlpi_addr as usize + header.p_vaddr as usize;
            let end = start + header.p_memsz as usize;
            // Whole pages inside the segment only: a page shared with a
            // writable neighbour keeps its contents.
            let (from, to) = (start.next_multiple_of(page), end / page * page);
            if to > from {
                // SAFETY: the range lies inside a read-only segment of
                // this executable, file-backed and never written; discarding
                // its pages only makes the next access read them again from
                // the page cache.
                unsafe { libc::madvise(from as *mut c_void, to - from, libc::MADV_DONTNEED) };
            }
        }
        // The first object listed is the executable itself; stop there.
        1
    }
    // SAFETY: `each` follows dl_iterate_phdr's callback contract and
    // ignores its data pointer.
    unsafe { libc::dl_iterate_phdr(Some(each), std::ptr::null_mut()) };
}
