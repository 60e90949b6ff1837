//! The frame pool (copying mode, `VmConfig::move_frames`): runs of pages
//! read into committed frames and moved to their addresses, evicted runs
//! moved back, with every byte right; and where the kernel will not move
//! a page (shared with a child after a `fork`), it is done the plain way.

mod common;
use common::*;
use disk_channel::SimDrive;
use disk_channel::rng::SplitMix64;
use runtable::{FormatOptions, Interval, Volume};
use vm_core::{Advice, Backing, VAddr, Vm, VmConfig};

const BUDGET: u64 = 64;
const PAGES: u64 = 8 * BUDGET;

fn vm(move_frames: bool) -> Vm {
    let drive = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(PAGES + 1024)
        .unwrap();
    let channel = disk_channel::DiskChannel::new(vec![Box::new(drive)]).unwrap();
    let volume = Volume::format(channel, &FormatOptions::new(PAGE, PAGES)).unwrap();
    let config = VmConfig {
        move_frames,
        ..VmConfig::new(PAGES, BUDGET)
    };
    Vm::new(config, Backing::Volume(volume)).unwrap()
}

/// Writes `seed`'s pattern over the whole interval, page by page.
fn write_all(vm: &Vm, interval: Interval, seed: u64) {
    let base = vm.address_of(interval.page).0;
    for page in 0..interval.count.0 {
        let at = page * PAGE as u64;
        let data: Vec<u8> = (at..at + PAGE as u64).map(|a| pattern(seed, a)).collect();
        vm.write(VAddr(base + at), &data).unwrap();
    }
}

/// Reads `len` bytes at offset `at` of the interval and checks each
/// against `seed`'s pattern.
fn read_and_check(vm: &Vm, interval: Interval, seed: u64, at: u64, len: usize, how: &str) {
    let mut buf = vec![0u8; len];
    vm.read(VAddr(vm.address_of(interval.page).0 + at), &mut buf)
        .unwrap();
    for (i, &b) in buf.iter().enumerate() {
        let addr = at + i as u64;
        assert_eq!(b, pattern(seed, addr), "byte {addr} {how}");
    }
}

/// Reads the interval in order under sequential advice (clustered
/// read-ahead: runs), then at random, checking every byte against `seed`.
fn read_all(vm: &Vm, interval: Interval, seed: u64) {
    let bytes = interval.count.0 * PAGE as u64;
    vm.advise(interval, Advice::Sequential).unwrap();
    for page in 0..interval.count.0 {
        read_and_check(vm, interval, seed, page * PAGE as u64, PAGE, "in order");
    }
    vm.advise(interval, Advice::Normal).unwrap();
    let mut rng = SplitMix64::new(seed);
    for _ in 0..500 {
        let at = rng.below(bytes - 1000);
        read_and_check(vm, interval, seed, at, 1000, "at random");
    }
}

#[test]
fn runs_move_through_the_pool_and_every_byte_survives() {
    for move_frames in [true, false] {
        let vm = vm(move_frames);
        let interval = vm.allocate(PAGES).unwrap();
        write_all(&vm, interval, 1);
        read_all(&vm, interval, 1);
        // Rewritten, and read again: pages that came through the pool go
        // back out through it.
        write_all(&vm, interval, 2);
        vm.flush().unwrap();
        read_all(&vm, interval, 2);
        vm.check_invariants();
        let kernel = vm.kernel_resident_pages().unwrap();
        assert!(
            kernel <= BUDGET,
            "the kernel holds {kernel} pages of the region"
        );
        let stats = vm.stats();
        assert!(stats.cluster_reads > 0, "no runs were read: {stats:?}");
        if !move_frames {
            assert_eq!(
                (
                    stats.frame_pool_pages,
                    stats.frames_moved_in,
                    stats.frames_moved_out
                ),
                (0, 0, 0),
                "moves without a pool"
            );
            continue;
        }
        if stats.frame_pool_pages == 0 {
            eprintln!(
                "skipped the pool's counts: the kernel refused a userfaultfd or UFFDIO_MOVE \
                 (Linux 6.8 and later, and root or vm.unprivileged_userfaultfd=1)"
            );
            continue;
        }
        // An eighth of the budget, at least 16 pages.
        assert_eq!(stats.frame_pool_pages, 16);
        assert!(
            stats.frames_moved_in > PAGES && stats.frames_moved_out > PAGES,
            "runs should come and go through the pool: {stats:?}"
        );
        assert_eq!(
            (stats.frames_copied_in, stats.frame_moves_refused),
            (0, 0),
            "nothing should be refused: {stats:?}"
        );
    }
}

#[test]
fn after_a_fork_pages_the_kernel_will_not_move_are_released_and_stay_right() {
    let vm = vm(true);
    if vm.stats().frame_pool_pages == 0 {
        eprintln!("skipped: the kernel refused a userfaultfd or UFFDIO_MOVE");
        return;
    }
    let interval = vm.allocate(PAGES).unwrap();
    write_all(&vm, interval, 3);
    read_all(&vm, interval, 3);
    // A child shares every committed page, the pool's included, until the
    // parent writes it: the kernel refuses to move the region's pages that
    // are evicted unwritten (EBUSY), and they are given back instead. (The
    // pool's own pages are written by the read before they move, which
    // makes them the parent's alone again.)
    // SAFETY: the child calls only `_exit`, which is async-signal-safe.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: ends the child at once, running nothing of the parent's.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just made.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let before = vm.stats();
    read_all(&vm, interval, 3);
    write_all(&vm, interval, 4);
    read_all(&vm, interval, 4);
    vm.check_invariants();
    let stats = vm.stats();
    assert!(
        stats.frame_moves_refused > before.frame_moves_refused,
        "pages shared with the child should have been refused: {stats:?}"
    );
    // And once given back, moves resume.
    assert!(stats.frames_moved_in > before.frames_moved_in, "{stats:?}");
}

#[test]
fn a_stream_of_fresh_pages_is_zero_filled_a_run_at_a_time() {
    for move_frames in [true, false] {
        for advice in [Advice::Normal, Advice::Sequential] {
            let vm = vm(move_frames);
            // Fresh pages written in order, the first 3/4 of the interval
            // (more than the budget); the last quarter never written.
            let interval = vm.allocate(4 * BUDGET).unwrap();
            vm.advise(interval, advice).unwrap();
            let written = 3 * BUDGET;
            for page in 0..written {
                let mut guard = vm
                    .page_mut_overwrite(runtable::PageNumber(interval.page.0 + page))
                    .unwrap();
                let at = page * PAGE as u64;
                for (i, b) in guard.iter_mut().enumerate() {
                    *b = pattern(5, at + i as u64);
                }
            }
            let stats = vm.stats();
            // Every page written was fresh; runs may zero-fill past the
            // last one written, never past the interval.
            assert!(
                (written..=interval.count.0).contains(&stats.zero_fills),
                "{stats:?}"
            );
            assert!(
                stats.faults * 4 <= written,
                "{advice:?}: {} faults for {written} fresh pages written in order: {stats:?}",
                stats.faults
            );
            // Every page reads as written, or as zeros where it never was
            // (the run zero-filled past the last write included).
            let base = vm.address_of(interval.page).0;
            let mut buf = vec![0u8; PAGE];
            for page in 0..interval.count.0 {
                let at = page * PAGE as u64;
                vm.read(VAddr(base + at), &mut buf).unwrap();
                for (i, &b) in buf.iter().enumerate() {
                    let want = if page < written {
                        pattern(5, at + i as u64)
                    } else {
                        0
                    };
                    assert_eq!(b, want, "{advice:?}: byte {} of page {page}", i);
                }
            }
            vm.check_invariants();
        }
    }
}

#[test]
fn dirty_pages_are_written_behind_before_the_clock_reaches_them() {
    let vm = vm(true);
    let interval = vm.allocate(PAGES).unwrap();
    // Written in order, then rewritten: each round evicts the last one's
    // pages, which the read-ahead thread writes behind.
    for seed in [6, 7] {
        write_all(&vm, interval, seed);
    }
    let stats = vm.stats();
    assert!(
        stats.cleaned_ahead > 0,
        "no page was written behind: {stats:?}"
    );
    // Whatever was written behind or at eviction, the pages read back as
    // last written, and again after a flush.
    read_all(&vm, interval, 7);
    vm.flush().unwrap();
    read_all(&vm, interval, 7);
    vm.check_invariants();
}

/// Rounds of writing past the budget (the read-ahead thread writes behind)
/// each ended at once by `kill` and `free`: every cleaning's shared latches
/// end (a latch left behind fails them with `PageBusy`), and one still in
/// flight is waited for. (That wait is not forced here: the simulated
/// drive's writes end too fast for `free` to meet one reliably.)
#[test]
fn free_and_kill_after_writing_behind_find_no_latch_left() {
    let vm = vm(true);
    let mut written_behind = 0;
    for round in 0..40u64 {
        let interval = vm.allocate(PAGES / 2).unwrap();
        write_all(&vm, interval, round);
        if round % 2 == 0 {
            vm.kill(interval).unwrap();
        }
        vm.free(interval).unwrap();
        written_behind = vm.stats().cleaned_ahead;
    }
    assert!(written_behind > 0, "nothing was written behind");
    vm.check_invariants();
}

/// Of the pairs of neighbouring pages from `ptr` (`count` pages) that are
/// both present, how many are physical neighbours too, and how many pairs
/// there were (`/proc/self/pagemap`); `None` where the kernel hides
/// physical frame numbers (not root).
fn physical_neighbours(ptr: *const u8, count: usize) -> Option<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open("/proc/self/pagemap").ok()?;
    let mut entries = vec![0u8; 8 * count];
    file.read_exact_at(&mut entries, (ptr as u64 / PAGE as u64) * 8)
        .ok()?;
    let frames: Vec<Option<u64>> = entries
        .chunks_exact(8)
        .map(|e| {
            let e = u64::from_le_bytes(e.try_into().unwrap());
            // Bit 63: present; bits 0-54: the frame (0 when hidden).
            (e >> 63 == 1).then_some(e & ((1 << 55) - 1))
        })
        .collect();
    if frames.iter().flatten().all(|&f| f == 0) {
        return None;
    }
    let pairs = frames.windows(2).filter_map(|w| Some((w[0]?, w[1]?)));
    let (mut neighbours, mut all) = (0, 0);
    for (a, b) in pairs {
        all += 1;
        neighbours += u64::from(b == a + 1);
    }
    Some((neighbours, all))
}

/// With `VmConfig::huge_pool_chunks` (the default), runs are read into
/// 2 MiB chunks committed at once as one huge page, so that a run's pages
/// are physically contiguous (one request to the device per run): what the
/// kernel's page table says after a read in order, every byte checked.
/// The read is under `Normal` advice (a stream found by its faults, runs
/// evicted by the clock): under `Sequential`, free-behind recycles the
/// stream's own first runs — its windows still growing, too short for a
/// chunk, read into small pages — through the pool for the whole scan,
/// and 82–87% of neighbouring pages were neighbours in 3 runs of 8 (99%+
/// in the others).
#[test]
fn runs_read_into_huge_chunks_are_physically_contiguous() {
    // A pool of 512 pages or more needs a budget of 4,096.
    const BIG: u64 = 4096;
    const DATA: u64 = 2 * BIG;
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    for huge in [true, false] {
        let drive = SimDrive::preset("ssd", PAGE)
            .unwrap()
            .with_page_count(DATA + 1024)
            .unwrap();
        let channel = disk_channel::DiskChannel::new(vec![Box::new(drive)]).unwrap();
        let volume = Volume::format(channel, &FormatOptions::new(PAGE, DATA)).unwrap();
        let config = VmConfig {
            huge_pool_chunks: huge,
            ..VmConfig::new(DATA, BIG)
        };
        let vm = Vm::new(config, Backing::Volume(volume)).unwrap();
        if vm.stats().frame_pool_pages == 0 {
            eprintln!("skipped: the kernel refused a userfaultfd or UFFDIO_MOVE");
            return;
        }
        let interval = vm.allocate(DATA).unwrap();
        let word =
            |page: u64, i: usize| (page << 32 | i as u64) ^ 0x5EED_F00D_u64.wrapping_mul(page + 1);
        for page in 0..DATA {
            let mut guard = vm
                .page_mut_overwrite(runtable::PageNumber(interval.page.0 + page))
                .unwrap();
            for (i, w) in guard.chunks_exact_mut(8).enumerate() {
                w.copy_from_slice(&word(page, i).to_le_bytes());
            }
        }
        vm.flush().unwrap();
        vm.advise(interval, Advice::DontNeed).unwrap();
        vm.advise(interval, Advice::Normal).unwrap();
        let (mut neighbours, mut pairs) = (0, 0);
        let mut hidden = false;
        for page in 0..DATA {
            let guard = vm
                .page(runtable::PageNumber(interval.page.0 + page))
                .unwrap();
            for (i, w) in guard.chunks_exact(8).enumerate() {
                assert_eq!(
                    u64::from_le_bytes(w.try_into().unwrap()),
                    word(page, i),
                    "page {page}, word {i} (huge chunks {huge})"
                );
            }
            // A run's first page: the run (or what of it has come in) as
            // the kernel maps it — once the stream's window has grown to a
            // full cluster and the pool has given out what the fill left
            // in it (zero runs take no chunk: those frames are small pages
            // from anywhere).
            if page % 256 == 0 && page >= BIG / 4 && page + 256 <= DATA {
                match physical_neighbours(guard.as_ptr(), 256) {
                    Some((n, all)) => {
                        neighbours += n;
                        pairs += all;
                    }
                    None => hidden = true,
                }
            }
        }
        vm.check_invariants();
        let stats = vm.stats();
        eprintln!(
            "huge chunks {huge}: {neighbours} of {pairs} neighbouring pages physically \
             neighbours; {} chunks committed; {} pages copied in, {} moves refused, {} runs \
             waited for their read's pin",
            stats.frame_pool_huge_chunks,
            stats.frames_copied_in,
            stats.frame_moves_refused,
            stats.frame_pin_waits
        );
        if !huge {
            assert_eq!(stats.frame_pool_huge_chunks, 0, "{stats:?}");
            continue;
        }
        if !thp.contains("[always]") && !thp.contains("[madvise]") {
            eprintln!("skipped: transparent huge pages are off ({thp}), so are the chunks");
            assert_eq!(stats.frame_pool_huge_chunks, 0, "{stats:?}");
            continue;
        }
        assert!(stats.frame_pool_huge_chunks > 0, "{stats:?}");
        if hidden {
            eprintln!("skipped the frames' check: /proc/self/pagemap hides them (not root)");
        } else {
            assert!(pairs > 0, "no run was seen resident");
            assert!(
                // 94-99.7% here; small pages from anywhere: 0.3-75%.
                neighbours * 20 >= pairs * 17,
                "{neighbours} of {pairs} neighbouring pages are physical neighbours"
            );
        }
    }
}
