//! Transparent huge pages for the large arrays read at random rows.
//!
//! Ranking and rescoring read a few thousand rows scattered over the
//! embedding matrix (256 MB at a million products × 64) and the packed
//! signal rows (64 MB): with 4 KiB pages every row is its own page, more
//! pages than the TLB holds, so each read pays a page walk (two-dimensional
//! under a hypervisor). Backed by 2 MiB pages, the whole matrix needs 128
//! TLB entries. Where Linux offers transparent huge pages only on request
//! (`enabled = madvise`, the common default), [`huge_pages`] asks for them;
//! elsewhere it does nothing.

/// Asks the kernel to back the 2 MiB-aligned part of `data` with huge
/// pages (`MADV_HUGEPAGE`) and to collapse the pages already touched now
/// (`MADV_COLLAPSE`, Linux 6.1+; on older kernels khugepaged does it in the
/// background). For a buffer already filled; it costs a copy of the pages
/// (a build or a load, not a request). Returns whether the collapse
/// succeeded. Contents never change; a refusal (no THP, no free huge
/// pages) is harmless.
pub(crate) fn huge_pages<T>(data: &[T]) -> bool {
    advise(data, true)
}

/// Asks for huge pages on a buffer about to be filled (a `Vec`'s spare
/// capacity): its first touches then fault in 2 MiB pages, with no copy.
pub(crate) fn huge_pages_before_fill<T>(spare: &[std::mem::MaybeUninit<T>]) {
    advise(spare, false);
}

fn advise<T>(data: &[T], collapse: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        /// The Linux UAPI value (include/uapi/asm-generic/mman-common.h).
        const MADV_COLLAPSE: libc::c_int = 25;
        const HUGE: usize = 2 << 20;
        let start = data.as_ptr() as usize;
        let end = start + std::mem::size_of_val(data);
        let (from, to) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if to <= from {
            return false;
        }
        let (ptr, len) = (from as *mut libc::c_void, to - from);
        // SAFETY: [from, to) lies inside `data`'s allocation, which is
        // mapped for as long as the borrow lasts; both advices change how
        // the pages are backed, never their contents, and take no pointer
        // they write through.
        #[allow(unsafe_code)]
        unsafe {
            libc::madvise(ptr, len, libc::MADV_HUGEPAGE);
            collapse && libc::madvise(ptr, len, MADV_COLLAPSE) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (data, collapse);
        false
    }
}
