//! What a whole program's process did to the memory its processes share between two of
//! its steps, read from the kernel's page tables rather than assumed.
//!
//! A process of a program that maps memory shared with others (a `multiprocessing.Lock`,
//! anonymous shared memory kept across a fork) may change it with no system call (an
//! uncontended acquire is one atomic store): what it does there between two steps falls
//! in the first of them, which is taken as touching everything until known otherwise.
//! Before the step is let go the process's pages are marked unreferenced
//! (`/proc/PID/clear_refs`); once it is stopped again, `/proc/PID/smaps` says whether it
//! referenced (read or wrote) a page of a shared mapping since. If it did not, the step
//! touched only what its call did, and the partial-order reduction may reorder it with
//! others'. Any doubt (a file that cannot be read or written, a process gone) keeps
//! "everything".

use crate::schedule::Access;

/// Marks every page of task `tid`'s process unreferenced; false when the kernel refused.
///
/// Clearing the referenced bits (`1`) leaves the processor's cached translations alone,
/// and an access through one of those sets no bit again: the soft-dirty clear that
/// follows (`4`) flushes them, so every later access is seen.
pub(super) fn forget_references(tid: u32) -> bool {
    let path = format!("/proc/{tid}/clear_refs");
    std::fs::write(&path, b"1").is_ok() && std::fs::write(&path, b"4").is_ok()
}

/// True unless task `tid`'s process is known to have referenced no page of a shared
/// mapping since [`forget_references`].
pub(super) fn touched_shared(tid: u32) -> bool {
    let Ok(smaps) = std::fs::read_to_string(format!("/proc/{tid}/smaps")) else {
        return true;
    };
    let touched = shared_mappings(&smaps).any(|(_, referenced)| referenced);
    touched
}

/// Each mapping of `smaps` whose flags say shared (`sh`): where it starts, and whether
/// it has referenced pages (true when that cannot be read).
fn shared_mappings(smaps: &str) -> impl Iterator<Item = (u64, bool)> + '_ {
    let mut start = 0u64;
    let mut ours = false;
    let mut referenced = false;
    smaps.lines().filter_map(move |line| {
        if let Some(kb) = line.strip_prefix("Referenced:") {
            referenced = kb
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .is_none_or(|kb| kb > 0);
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            let shared = flags.split_whitespace().any(|f| f == "sh");
            let seen = referenced;
            referenced = false;
            return (shared && !ours).then_some((start, seen));
        } else if let Some((range, rest)) = line.split_once(' ') {
            if let Some((from, _)) = range.split_once('-') {
                if let Ok(at) = u64::from_str_radix(from, 16) {
                    start = at;
                    // The trial's clock, which only the harness writes: no buyer's
                    // state (every reading of the clock shim maps it).
                    ours = rest
                        .trim_end()
                        .ends_with(&format!("/{}", crate::harness::clock::FILE_NAME));
                }
            }
        }
        None
    })
}

/// What a step touched: its call's own `own`, or everything when its process touched
/// shared memory before its next step.
pub(super) fn executed(tid: u32, own: Access) -> Access {
    if touched_shared(tid) {
        Access::EVERYTHING
    } else {
        own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_referenced_shared_mapping_counts() {
        let map = |flags: &str, kb: u32| {
            format!(
                "7f00-7f01 rw-s 0 00:01 5 /dev/shm/sem.x\nRss: 4 kB\nReferenced: {kb} kB\n\
                 VmFlags: {flags}\n"
            )
        };
        let any = |s: &str| shared_mappings(s).any(|(_, r)| r);
        assert!(any(&map("rd wr sh mr mw me ms", 4)));
        assert!(!any(&map("rd wr sh mr mw me ms", 0)));
        assert!(!any(&map("rd wr mr mw me ac", 4)));
        let clock = "7f02-7f03 r--s 0 00:01 6 /dev/shm/oversell-1-x/clock.bin\nReferenced: 4 kB\n\
                     VmFlags: rd sh mr me ms\n";
        assert!(!any(clock), "the trial's clock is the harness's own");
        let both = map("rd wr mr mw me ac", 4) + &map("rd wr sh mr mw me ms", 0);
        assert!(!any(&both));
        assert_eq!(
            shared_mappings(&both).collect::<Vec<_>>(),
            vec![(0x7f00, false)]
        );
    }

    #[test]
    fn a_process_that_reads_its_shared_page_is_seen_to_touch_it() {
        // This test's own process: a shared anonymous page, touched and then not.
        // SAFETY: a fresh anonymous mapping of one page, unmapped below, read only
        // through the pointer mmap returned.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        let me = std::process::id();
        // SAFETY: the page is mapped, writable and one page long.
        unsafe { std::ptr::write_volatile(page as *mut u8, 1) };
        if !forget_references(me) {
            eprintln!("skipped: /proc/self/clear_refs cannot be written here");
            // SAFETY: the mapping made above, one page long.
            unsafe { libc::munmap(page, 4096) };
            return;
        }
        // Other tests' threads may touch mappings of their own: look at this one only.
        let this_page = || {
            let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
            let found = shared_mappings(&smaps)
                .find(|&(at, _)| at == page as u64)
                .map(|(_, referenced)| referenced);
            found
        };
        assert_eq!(this_page(), Some(false), "no reference yet");
        // SAFETY: as above.
        let v = unsafe { std::ptr::read_volatile(page as *const u8) };
        assert_eq!(v, 1);
        assert_eq!(this_page(), Some(true), "the read is seen");
        // SAFETY: the mapping made above, one page long.
        unsafe { libc::munmap(page, 4096) };
    }
}
