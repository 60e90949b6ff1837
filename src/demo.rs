//! `demo`: the project's main job. Sorts many 64-bit keys that live in the
//! VM — an address space far larger than the real memory it may use — and
//! checks the result.
//!
//! 1. Fill an interval with pseudo-random keys (and remember their count,
//!    sum and xor), written in place through page guards
//!    (`page_mut_overwrite`: a page comes in without a read).
//! 2. Sort runs of a quarter of the real-memory budget each: read the run
//!    through the safe API, sort it, write it back.
//! 3. Merge the runs into a second interval (one page of each run in hand
//!    at a time), reading and writing through the safe API.
//! 4. Verify: the output is ordered and has the input's count, sum and
//!    xor, read in place through page guards (`page`).
//!
//! Everything moves through the VM's safe API — `read`/`write` at VM
//! addresses, or page guards where the keys can be made or looked at in
//! place (`memmove` was 9% of the demo's samples, `perf`) — so the faults,
//! write-backs and seek-aheads in the report are the VM's own.
//!
//! The sort has what it reads next brought in ahead of it (unless
//! `--no-prefetch`), so that the reads overlap its work instead of
//! stopping it — as the kernel's asynchronous read-ahead does for a
//! program on `mmap`:
//! - before sorting a run, it advises the next one `WillNeed`; the VM's
//!   will-need thread brings it in while the sort goes on;
//! - during the merge, a second thread of the demo's own keeps each run's
//!   next pages ahead of its cursor ([`Cursors::follow`]). Advising those
//!   steps `WillNeed` from the merging thread instead was slower: merge
//!   2.71–2.82 s against 2.10–2.53 s, four rounds (not explained).
//!
//! The VM serves the threads' faults at once, their reads in flight
//! together. (The check reads one sequential stream, which the VM's own
//! read-ahead keeps ahead of it; a second thread touching the next chunk
//! there made it slower, 0.66–0.79 s against 0.38–0.46.) Measured in
//! BENCHMARKS.md ("The demo's second thread";
//! `bench/results/demo-prefetch-2026-11-27.txt`).
//!
//! Why the program asks at all: the VM reads ahead by itself for one
//! stream ([`vm_core`]'s read-ahead under `Sequential` advice); for many
//! streams at once it keeps each one's window small and reads no second
//! window ahead (measured slower: the streams' windows pushed out each
//! other's pages), so there the program, which knows where each of its
//! cursors is, asks for what it will read next, as a program asks the
//! kernel with `MADV_WILLNEED`.

use disk_channel::rng::SplitMix64;
use disk_channel::{CachePolicy, DiskChannel, FileDrive, FileDriveOptions};
use runtable::{FormatOptions, Volume};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;
use utility_mode::ToolError;
use utility_mode::progress::progress;
use vm_core::{Advice, Backing, FaultService, VAddr, Vm, VmConfig, VmStats};

const PAGE: u64 = 4096;
const KEYS_PER_PAGE: u64 = PAGE / 8;

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoOptions {
    /// Bytes of keys to sort (a multiple of 4 KiB).
    pub key_bytes: u64,
    /// The VM's real-memory budget in bytes.
    pub memory_bytes: u64,
    /// Keep the volume in this file (created; an existing file is refused
    /// unless `force`); `None` uses a temporary one, removed afterwards.
    pub volume: Option<PathBuf>,
    /// Overwrite the file at `volume`.
    pub force: bool,
    /// Seed of the keys.
    pub seed: u64,
    /// Who serves faults.
    pub fault_service: FaultService,
    /// How the volume's drive uses the page cache (default `Direct`: the
    /// budget is the memory the process really holds).
    pub cache: CachePolicy,
    /// Sort as a plain program would: the VM in transparent mode, the keys
    /// one `&mut [u64]` (a view of the interval), sorted by one
    /// `sort_unstable` — no hand-written external sort.
    pub transparent: bool,
    /// Have what the sort reads next brought in ahead of it (see the
    /// module doc). On by default.
    #[serde(default = "on")]
    pub prefetch: bool,
}

fn on() -> bool {
    true
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions {
            key_bytes: 256 << 20,
            memory_bytes: 32 << 20,
            volume: None,
            force: false,
            seed: 1983,
            fault_service: FaultService::default(),
            cache: CachePolicy::default(),
            transparent: false,
            prefetch: true,
        }
    }
}

/// What the demo measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoReport {
    /// Keys sorted.
    pub keys: u64,
    /// Bytes of keys.
    pub key_bytes: u64,
    /// The real-memory budget.
    pub memory_bytes: u64,
    /// Sorted runs merged.
    pub runs: u64,
    /// Wall time of the whole job, seconds.
    pub elapsed_s: f64,
    /// Wall time of each phase, seconds.
    pub phases: Phases,
    /// Whether the output checked out (always true in a returned report).
    pub verified: bool,
    /// The VM's counters at the end.
    pub stats: VmStats,
    /// The seed of the keys (SplitMix64), so that the input can be made
    /// again to check the output independently.
    pub seed: u64,
    /// The interval holding the sorted output: its first page and page
    /// count (the input is the interval before it).
    pub output_pages: (u64, u64),
    /// Pages of the VM's region the kernel held at the end (`mincore`):
    /// the real-memory bound as the kernel sees it.
    pub kernel_resident_pages: u64,
    /// The process's peak resident set (`VmHWM`), bytes: the VM's frames
    /// plus everything else the process holds.
    pub peak_rss_bytes: u64,
    /// The volume file, when it was kept (`--volume`); a temporary volume
    /// is removed before the report is printed.
    pub volume: Option<PathBuf>,
    /// The drive's page-cache policy in force (`direct`, or `drop-behind`
    /// where the file system refuses `O_DIRECT`, or `buffered`).
    pub cache: CachePolicy,
    /// Whether the keys were sorted in transparent mode (one
    /// `sort_unstable` on a view; no runs, no merge).
    #[serde(default)]
    pub transparent: bool,
    /// Whether what the sort read next was brought in ahead of it
    /// (not in transparent mode).
    #[serde(default)]
    pub prefetch: bool,
    /// Pages advised `WillNeed` (those already resident, and any whose
    /// read failed, included), in all, of the next run before each run but
    /// the last was sorted.
    #[serde(default)]
    pub prefetched_run_pages: u64,
    /// Pages asked for ahead of the merge's cursors (0 where the budget is
    /// too small for a step: see `merge_step_pages`).
    #[serde(default)]
    pub prefetched_merge_pages: u64,
    /// Who served the faults (`--fault-service`).
    #[serde(default)]
    pub fault_service: FaultService,
}

/// Wall time of the demo's phases, seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// Filling the input with keys.
    pub fill_s: f64,
    /// Sorting runs of a quarter of the budget in place.
    pub sort_runs_s: f64,
    /// Merging the runs into the output.
    pub merge_s: f64,
    /// Checking the output.
    pub verify_s: f64,
}

/// The process's peak resident set in bytes (`VmHWM`), 0 where `/proc`
/// does not say.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A key's contribution to the multiset hash that checks the output is a
/// permutation of the input: the SplitMix64 finalizer, summed (a sum of
/// well-mixed values; a dropped, duplicated or changed key changes it).
fn mix(key: u64) -> u64 {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The most pages of a run the merge's second thread brings in at once;
/// it steps a run when the run's cursor comes within one step of what is
/// in, so it keeps one to two steps ahead of each cursor. The step is
/// smaller where the budget is: all runs' two steps at most a third of
/// it ([`merge_step_pages`]). (Measured, 32 runs in a 32 MiB budget, two
/// rounds each, merge time and the whole demo's reads: no second thread
/// 2.72–3.13 s, 1,620 reads; steps of 48 pages 2.23–2.35 s, 2,018 reads;
/// of 16, kept 32 ahead, 2.38–2.89 s, 4,660 reads; 128 ahead pushed out
/// the pages the merge was about to use, 3.0–3.3 s. Fewer, larger reads
/// also matter when the drive limits requests: in three rounds of a slow
/// spell of this machine's disk, steps of 16 made the merge 4.3–5.0 s
/// against 3.1–3.4 s with none.)
const MERGE_STEP_PAGES: u64 = 48;

/// The merge's step for `runs` runs in a budget of `budget_pages`: at
/// most [`MERGE_STEP_PAGES`], and all runs' two steps at most a third of
/// the budget. 0: no second thread (a budget too small for one page).
fn merge_step_pages(budget_pages: u64, runs: u64) -> u64 {
    MERGE_STEP_PAGES.min(budget_pages / (6 * runs.max(1)))
}

/// `interval`'s pages holding keys `first..first + count` (`first` a
/// multiple of a page's keys, as every run and chunk of the demo starts
/// on a page).
fn keys_interval(interval: runtable::Interval, first: u64, count: u64) -> runtable::Interval {
    debug_assert_eq!(first % KEYS_PER_PAGE, 0, "key {first} starts no page");
    runtable::Interval {
        page: runtable::PageNumber(interval.page.0 + first / KEYS_PER_PAGE),
        count: runtable::PageCount(count.div_ceil(KEYS_PER_PAGE)),
    }
}

/// What the merging thread shares with the thread that brings each run's
/// pages in ahead of its cursor (the follower).
struct Cursors {
    /// The next key each run's cursor reads (stored by the merge).
    at: Vec<AtomicU64>,
    /// The key each run is brought in up to (stored by the follower).
    ahead: Vec<AtomicU64>,
    /// Where each run ends.
    ends: Vec<u64>,
    /// Keys in a step ([`merge_step_pages`]).
    step_keys: u64,
    /// Set when the merge is over, however it ended.
    over: AtomicBool,
}

impl Cursors {
    /// Runs starting at keys `starts` (their cursors there), ending at
    /// `ends`, stepped by `step_pages`.
    fn new(starts: &[u64], ends: Vec<u64>, step_pages: u64) -> Cursors {
        Cursors {
            at: starts.iter().map(|&k| AtomicU64::new(k)).collect(),
            ahead: starts.iter().map(|&k| AtomicU64::new(k)).collect(),
            ends,
            step_keys: step_pages * KEYS_PER_PAGE,
            over: AtomicBool::new(false),
        }
    }

    /// Whether run `r` is not all in and its cursor is within a step of
    /// what is.
    fn wants(&self, r: usize) -> bool {
        let ahead = self.ahead[r].load(Ordering::Relaxed);
        ahead < self.ends[r] && ahead < self.at[r].load(Ordering::Relaxed) + self.step_keys
    }

    /// Brings in a step of every run that [`Cursors::wants`] one (pages of
    /// `input`, counted in `count`); whether there was one.
    fn sweep(&self, vm: &Vm, input: runtable::Interval, count: &AtomicU64) -> bool {
        let mut busy = false;
        for r in 0..self.ends.len() {
            if self.wants(r) {
                let from = self.ahead[r]
                    .load(Ordering::Relaxed)
                    .max(self.at[r].load(Ordering::Relaxed));
                let to = (from + self.step_keys).min(self.ends[r]);
                // (A failed touch is left to the merge's own read, which
                // meets the error and reports it.)
                let pages = keys_interval(input, from, to - from);
                let _ = vm.touch(pages);
                count.fetch_add(pages.count.0, Ordering::Relaxed);
                self.ahead[r].store(to, Ordering::Relaxed);
                busy = true;
            }
        }
        busy
    }

    /// The follower's loop: sweeps until the merge is over, parked while
    /// no run wants a step (the merge unparks it when one does: a wake-up
    /// given before the park is kept, so none is lost).
    fn follow(&self, vm: &Vm, input: runtable::Interval, count: &AtomicU64) {
        while !self.over.load(Ordering::Acquire) {
            if !self.sweep(vm, input, count) {
                std::thread::park();
            }
        }
    }
}

/// Ends the follower's loop when dropped: at the merge's end, its error
/// return or its panic (a follower left running would keep the scope, and
/// the demo, waiting forever).
struct MergeOver<'a> {
    cursors: &'a Cursors,
    follower: Option<std::thread::Thread>,
}

impl Drop for MergeOver<'_> {
    fn drop(&mut self) {
        self.cursors.over.store(true, Ordering::Release);
        if let Some(follower) = &self.follower {
            follower.unpark();
        }
    }
}

/// Reads the keys at `at` into `keys`. The VM holds keys little-endian
/// (a kept volume reads the same on every machine); they are read
/// straight into `keys`' memory, no buffer of bytes between.
fn read_keys(vm: &Vm, at: VAddr, keys: &mut [u64]) -> Result<(), ToolError> {
    vm.read(at, bytemuck::cast_slice_mut(keys))
        .map_err(ToolError::Vm)?;
    for key in keys.iter_mut() {
        *key = u64::from_le(*key);
    }
    Ok(())
}

/// The keys of a page (held by a guard), little-endian.
fn page_keys(page: &[u8]) -> impl Iterator<Item = u64> + '_ {
    page.chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// Writes `keys` at `at`, little-endian, straight from `keys`' memory:
/// `keys` is left in that order (the same values on a little-endian
/// machine), so a caller refills it before using it again.
fn write_keys(vm: &Vm, at: VAddr, keys: &mut [u64]) -> Result<(), ToolError> {
    for key in keys.iter_mut() {
        *key = key.to_le();
    }
    vm.write(at, bytemuck::cast_slice(keys))
        .map_err(ToolError::Vm)
}

/// Runs the demo.
pub fn demo(options: &DemoOptions) -> Result<DemoReport, ToolError> {
    let started = Instant::now();
    if options.key_bytes == 0 || !options.key_bytes.is_multiple_of(PAGE) {
        return Err(ToolError::Usage(format!(
            "--keys {} is not a positive multiple of 4 KiB",
            utility_mode::human_bytes(options.key_bytes)
        )));
    }
    if !options.memory_bytes.is_multiple_of(PAGE) {
        return Err(ToolError::Usage(format!(
            "--memory {} is not a multiple of 4 KiB (the VM's pages)",
            utility_mode::human_bytes(options.memory_bytes)
        )));
    }
    if options.memory_bytes < 16 * PAGE {
        return Err(ToolError::Usage(format!(
            "--memory {} is below the demo's 64 KiB minimum",
            utility_mode::human_bytes(options.memory_bytes)
        )));
    }
    if let Some(available) = utility_mode::available_memory_bytes()
        && options.memory_bytes > available
    {
        return Err(ToolError::Usage(format!(
            "--memory {} is more than this machine has available ({:.1} GiB)",
            utility_mode::human_bytes(options.memory_bytes),
            available as f64 / (1u64 << 30) as f64
        )));
    }
    let key_pages = options.key_bytes / PAGE;
    let keys = options.key_bytes / 8;
    let temp = tempfile::tempdir().map_err(|source| ToolError::File {
        path: std::env::temp_dir(),
        source,
    })?;
    crate::signals::remove_on_signal(temp.path().to_path_buf());
    let path = match &options.volume {
        Some(path) => {
            // What cannot be a volume file is said first, `--force` or not
            // (a folder was told to add --force, then refused with it); a
            // link to nothing is refused here too, as `format` refuses it.
            utility_mode::drives::check_writable(std::slice::from_ref(path), 0, None)?;
            if path.exists() && !options.force {
                return Err(ToolError::Usage(format!(
                    "{}: exists; the demo formats its volume afresh (add --force to overwrite it)",
                    path.display()
                )));
            }
            // A volume file this run creates goes again if the run is
            // interrupted (one that was there before, overwritten with
            // --force, stays, as after any failure).
            if !path.exists() {
                crate::signals::remove_on_signal(path.clone());
            } else {
                // Said as `format --force` says it.
                let notices =
                    utility_mode::drives::check_overwrite(std::slice::from_ref(path), true)?;
                utility_mode::drives::announce(&notices);
            }
            path.clone()
        }
        None => temp.path().join("demo.vol"),
    };
    let virtual_pages = 2 * key_pages;
    // The volume is written through (the keys, then the sorted output):
    // a file system without room for it is said now, not met part way.
    check_room(&path, (virtual_pages + 1024) * PAGE, options.key_bytes)?;
    // In transparent mode a transfer that fails in a fault cannot be
    // returned to the load or store that made it (it is fatal, as a failed
    // read of an `mmap`ped file is): the volume's blocks are allocated up
    // front, so a full disk fails here, cleanly.
    let drive = FileDrive::open(
        &path,
        &FileDriveOptions {
            preallocate: options.transparent,
            ..FileDriveOptions::create(PAGE as usize, virtual_pages + 1024)
                .with_cache(options.cache)
        },
    )?;
    let cache = drive.cache_policy();
    let volume = Volume::format(
        DiskChannel::new(vec![Box::new(drive)])?,
        &FormatOptions::new(PAGE as usize, virtual_pages),
    )?;
    let config = VmConfig {
        fault_service: options.fault_service,
        transparent: options.transparent,
        // Never more frames than the address space has pages: a budget
        // beyond the work would only make a larger frame table.
        // (Transparent mode needs a few pages however small the work.)
        ..VmConfig::new(
            virtual_pages,
            (options.memory_bytes / PAGE)
                .min(virtual_pages)
                .max(if options.transparent {
                    vm_core::TRANSPARENT_MIN_PAGES
                } else {
                    1
                }),
        )
    };
    let vm = Vm::new(config, Backing::Volume(volume)).map_err(ToolError::Vm)?;
    let input = vm.allocate(key_pages).map_err(ToolError::Vm)?;
    if options.transparent {
        let phases = transparent_sort(&vm, input, options.seed)?;
        return finish(
            vm,
            options,
            Finished {
                started,
                path,
                cache,
                keys,
                runs: 1,
                phases,
                output: input,
                prefetched: [0, 0],
            },
        );
    }
    let output = vm.allocate(key_pages).map_err(ToolError::Vm)?;
    let (in_base, out_base) = (vm.address_of(input.page).0, vm.address_of(output.page).0);
    let mut phase_s = [0.0; 4];
    // Pages asked for ahead of the sorting thread (see the module doc):
    // of the next run while one is sorted, and ahead of the merge.
    let (mut prefetched_runs, prefetched_merge) = (0u64, AtomicU64::new(0));

    // 1. Fill. (Each phase has a bar of its own, named, counting keys.)
    let bar = progress(keys, "demo: fill");
    let t = Instant::now();
    let mut rng = SplitMix64::new(options.seed);
    let (mut sum, mut xor) = (0u64, 0u64);
    let chunk_keys =
        (options.memory_bytes / 8 / 4).min(keys).max(KEYS_PER_PAGE) / KEYS_PER_PAGE * KEYS_PER_PAGE;
    // Written in place, a page guard at a time: each page is overwritten
    // whole (it comes in without a read), nothing to copy.
    for (i, page) in input.pages().enumerate() {
        let mut held = vm.page_mut_overwrite(page).map_err(ToolError::Vm)?;
        for slot in held.chunks_exact_mut(8) {
            let key = rng.next_u64();
            sum = sum.wrapping_add(mix(key));
            xor ^= key;
            slot.copy_from_slice(&key.to_le_bytes());
        }
        drop(held);
        if (i as u64 + 1).is_multiple_of(chunk_keys / KEYS_PER_PAGE) {
            bar.inc(chunk_keys);
        }
    }
    // The one buffer of keys in the process's own memory: a chunk (a
    // quarter of the budget) sorted as a run.
    let mut chunk: Vec<u64> = Vec::with_capacity(chunk_keys as usize);
    phase_s[0] = t.elapsed().as_secs_f64();
    bar.finish_and_clear();

    // 2. Sort runs of `chunk_keys` keys in place. Each run is read in
    // order: sequential advice lets a fault read ahead by runs of pages.
    vm.advise(input, Advice::Sequential)
        .map_err(ToolError::Vm)?;
    let bar = progress(keys, "demo: sort runs");
    let t = Instant::now();
    let runs = keys.div_ceil(chunk_keys);
    for r in 0..runs {
        let (start, n) = (r * chunk_keys, chunk_keys.min(keys - r * chunk_keys));
        chunk.resize(n as usize, 0);
        read_keys(&vm, VAddr(in_base + start * 8), &mut chunk)?;
        // The next run comes in while this one is sorted.
        let next = (options.prefetch && r + 1 < runs).then(|| {
            let first = (r + 1) * chunk_keys;
            keys_interval(input, first, chunk_keys.min(keys - first))
        });
        if let Some(next) = next {
            // Queued for the VM's will-need thread, not waited for (an
            // error is left to the next run's own read).
            let _ = vm.advise(next, Advice::WillNeed);
            prefetched_runs += next.count.0;
        }
        chunk.sort_unstable();
        write_keys(&vm, VAddr(in_base + start * 8), &mut chunk)?;
        bar.inc(n);
    }
    phase_s[1] = t.elapsed().as_secs_f64();
    bar.finish_and_clear();

    // 3. Merge: one page of each run in hand. Each run is read in order;
    // the input stays advised sequential, and each run's read-ahead window
    // adapts to what it keeps resident (32 runs share real memory).
    let bar = progress(keys, "demo: merge");
    let t = Instant::now();
    struct Cursor {
        next: u64,
        end: u64,
        page: Vec<u64>,
        at: usize,
    }
    let refill = |c: &mut Cursor| -> Result<(), ToolError> {
        let n = KEYS_PER_PAGE.min(c.end - c.next);
        c.page.resize(n as usize, 0);
        read_keys(&vm, VAddr(in_base + c.next * 8), &mut c.page)?;
        c.next += n;
        c.at = 0;
        Ok(())
    };
    let mut cursors = Vec::with_capacity(runs as usize);
    let mut heap = BinaryHeap::with_capacity(runs as usize);
    for r in 0..runs {
        let mut c = Cursor {
            next: r * chunk_keys,
            end: (r * chunk_keys + chunk_keys).min(keys),
            page: Vec::new(),
            at: 0,
        };
        refill(&mut c)?;
        heap.push(Reverse((c.page[0], r as usize)));
        cursors.push(c);
    }
    let mut out: Vec<u64> = Vec::with_capacity(8 * 1024);
    let mut written = 0u64;
    // Each run's next pages come in ahead of its cursor, by a second
    // thread: the first step of every run before the merge starts, the
    // rest while it runs.
    let step_pages = if options.prefetch {
        merge_step_pages(vm.stats().real_memory_pages, runs)
    } else {
        0
    };
    let starts: Vec<u64> = cursors.iter().map(|c| c.next).collect();
    let shared = Cursors::new(&starts, cursors.iter().map(|c| c.end).collect(), step_pages);
    std::thread::scope(|scope| -> Result<(), ToolError> {
        let follower = (step_pages > 0)
            .then(|| {
                shared.sweep(&vm, input, &prefetched_merge);
                std::thread::Builder::new()
                    .name("demo-merge-ahead".into())
                    .spawn_scoped(scope, || shared.follow(&vm, input, &prefetched_merge))
                    .ok()
            })
            .flatten();
        let over = MergeOver {
            cursors: &shared,
            follower: follower.as_ref().map(|h| h.thread().clone()),
        };
        let merged = (|| -> Result<(), ToolError> {
            // The smallest head is replaced in place (one sift down), not
            // popped and pushed (a sift to the bottom and up, then another
            // up): 0.74× per run (0.70–1.32) for 32 runs of 2^20 keys in
            // memory, ten runs of a scratch driver on this machine.
            while let Some(mut top) = heap.peek_mut() {
                let Reverse((key, r)) = *top;
                out.push(key);
                if out.len() == out.capacity() {
                    write_keys(&vm, VAddr(out_base + written * 8), &mut out)?;
                    written += out.len() as u64;
                    bar.inc(out.len() as u64);
                    out.clear();
                }
                let c = &mut cursors[r];
                c.at += 1;
                if c.at == c.page.len() && c.next < c.end {
                    refill(c)?;
                    shared.at[r].store(c.next, Ordering::Relaxed);
                    if let Some(follower) = &over.follower
                        && shared.wants(r)
                    {
                        follower.unpark();
                    }
                }
                if c.at < c.page.len() {
                    *top = Reverse((c.page[c.at], r));
                } else {
                    PeekMut::pop(top);
                }
            }
            Ok(())
        })();
        // The follower stops (as it does if the merge panics), and a
        // panic of its own is raised — unless the merge failed.
        drop(over);
        if let Some(Err(panic)) = follower.map(|h| h.join())
            && merged.is_ok()
        {
            std::panic::resume_unwind(panic);
        }
        merged
    })?;
    write_keys(&vm, VAddr(out_base + written * 8), &mut out)?;
    written += out.len() as u64;
    phase_s[2] = t.elapsed().as_secs_f64();
    bar.finish_and_clear();

    // 4. Verify (the output is read in order).
    vm.advise(output, Advice::Sequential)
        .map_err(ToolError::Vm)?;
    let bar = progress(keys, "demo: verify");
    let t = Instant::now();
    // Read in place, a page guard at a time: nothing to copy, the keys are
    // looked at where the VM holds them.
    let (mut check_sum, mut check_xor, mut previous, mut count) = (0u64, 0u64, 0u64, 0u64);
    for page in output.pages() {
        let held = vm.page(page).map_err(ToolError::Vm)?;
        for key in page_keys(&held) {
            if key < previous {
                return Err(ToolError::Check(format!(
                    "output out of order at key {count}"
                )));
            }
            previous = key;
            check_sum = check_sum.wrapping_add(mix(key));
            check_xor ^= key;
            count += 1;
        }
        if count.is_multiple_of(chunk_keys) {
            bar.inc(chunk_keys);
        }
    }
    if (count, written, check_sum, check_xor) != (keys, keys, sum, xor) {
        return Err(ToolError::Check(
            "the output is not a permutation of the input".into(),
        ));
    }
    phase_s[3] = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    finish(
        vm,
        options,
        Finished {
            started,
            path,
            cache,
            keys,
            runs,
            phases: Phases {
                fill_s: phase_s[0],
                sort_runs_s: phase_s[1],
                merge_s: phase_s[2],
                verify_s: phase_s[3],
            },
            output,
            prefetched: [prefetched_runs, prefetched_merge.into_inner()],
        },
    )
}

/// Refuses a volume file at `path` whose file system has less than
/// `bytes` free (counting the blocks a file already there holds, which an
/// overwrite reuses); `key_bytes` for the message. Where the file system
/// does not say, goes on.
fn check_room(path: &std::path::Path, bytes: u64, key_bytes: u64) -> Result<(), ToolError> {
    use std::os::unix::fs::MetadataExt;
    let folder = match path.parent() {
        Some(f) if !f.as_os_str().is_empty() => f.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(free) = utility_mode::drives::free_bytes(&folder) else {
        return Ok(());
    };
    let free = free + std::fs::metadata(path).map_or(0, |m| m.blocks() * 512);
    let human = utility_mode::drives::space_bytes;
    if free < bytes {
        return Err(ToolError::Usage(format!(
            "--keys {} needs a volume of {} (the keys and their sorted copy), and the file \
             system of {} has {} free (--volume PATH puts the volume elsewhere)",
            utility_mode::human_bytes(key_bytes),
            human(bytes),
            folder.display(),
            human(free)
        )));
    }
    Ok(())
}

/// What a finished sort hands to the report.
struct Finished {
    started: Instant,
    path: PathBuf,
    cache: CachePolicy,
    keys: u64,
    runs: u64,
    phases: Phases,
    output: runtable::Interval,
    /// Pages asked for ahead: of the runs, of the merge.
    prefetched: [u64; 2],
}

/// The report of a verified sort: the VM's counters, what the kernel
/// holds of it, the volume kept or not.
fn finish(vm: Vm, options: &DemoOptions, done: Finished) -> Result<DemoReport, ToolError> {
    let stats = vm.stats();
    let kernel_resident_pages = vm.kernel_resident_pages().map_err(ToolError::Vm)?;
    let volume = if options.volume.is_some() {
        vm.flush().map_err(ToolError::Vm)?;
        // The run's result from here on: kept even if interrupted.
        crate::signals::keep_on_signal(std::slice::from_ref(&done.path));
        Some(done.path)
    } else {
        None
    };
    drop(vm);
    Ok(DemoReport {
        keys: done.keys,
        key_bytes: options.key_bytes,
        memory_bytes: options.memory_bytes,
        runs: done.runs,
        elapsed_s: done.started.elapsed().as_secs_f64(),
        phases: done.phases,
        verified: true,
        stats,
        seed: options.seed,
        output_pages: (done.output.page.0, done.output.count.0),
        kernel_resident_pages,
        peak_rss_bytes: peak_rss_bytes(),
        volume,
        cache: done.cache,
        transparent: options.transparent,
        prefetch: options.prefetch && !options.transparent,
        prefetched_run_pages: done.prefetched[0],
        prefetched_merge_pages: done.prefetched[1],
        fault_service: options.fault_service,
    })
}

/// The transparent demo: the keys written through a view, sorted by one
/// `sort_unstable` on `&mut [u64]`, checked through a shared view. The
/// sort's phase is reported as `sort_runs_s` (one run), merge as zero.
fn transparent_sort(vm: &Vm, keys: runtable::Interval, seed: u64) -> Result<Phases, ToolError> {
    let mut view = vm.view_mut::<u64>(keys).map_err(ToolError::Vm)?;
    let count = view.len() as u64;
    let bar = progress(count, "demo: fill");
    let t = Instant::now();
    let mut rng = SplitMix64::new(seed);
    let (mut sum, mut xor) = (0u64, 0u64);
    for (i, slot) in view.iter_mut().enumerate() {
        let key = rng.next_u64();
        sum = sum.wrapping_add(mix(key));
        xor ^= key;
        *slot = key;
        if i % 65_536 == 65_535 {
            bar.inc(65_536);
        }
    }
    let fill_s = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let bar = progress(1, "demo: sort_unstable");
    let t = Instant::now();
    view.sort_unstable();
    let sort_s = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    drop(view);
    let view = vm.view::<u64>(keys).map_err(ToolError::Vm)?;
    let bar = progress(count, "demo: verify");
    let t = Instant::now();
    let (mut check_sum, mut check_xor) = (0u64, 0u64);
    for (i, &key) in view.iter().enumerate() {
        if i > 0 && key < view[i - 1] {
            return Err(ToolError::Check(format!("output out of order at key {i}")));
        }
        check_sum = check_sum.wrapping_add(mix(key));
        check_xor ^= key;
        if i % 65_536 == 65_535 {
            bar.inc(65_536);
        }
    }
    bar.finish_and_clear();
    if (check_sum, check_xor) != (sum, xor) {
        return Err(ToolError::Check(
            "the output is not a permutation of the input".into(),
        ));
    }
    Ok(Phases {
        fill_s,
        sort_runs_s: sort_s,
        merge_s: 0.0,
        verify_s: t.elapsed().as_secs_f64(),
    })
}

impl DemoReport {
    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let s = &self.stats;
        let rows = [
            (
                "sorted",
                if self.transparent {
                    format!(
                        "{} keys ({}) by one sort_unstable on a &mut [u64] in the VM \
                         (transparent mode), verified",
                        self.keys,
                        utility_mode::human_bytes(self.key_bytes),
                    )
                } else {
                    format!(
                        "{} keys ({}) in {} run{} and a {}-way merge, verified",
                        self.keys,
                        utility_mode::human_bytes(self.key_bytes),
                        self.runs,
                        if self.runs == 1 { "" } else { "s" },
                        self.runs,
                    )
                },
            ),
            (
                "proved",
                format!(
                    "{}; the output is in order and has the input's count, sum and xor{}",
                    if self.key_bytes > self.memory_bytes {
                        format!(
                            "{} of keys, {:.0}x the {} real-memory budget, sorted in a VM that \
                             never held more than its budget (high water below)",
                            utility_mode::human_bytes(self.key_bytes),
                            self.key_bytes as f64 / self.memory_bytes as f64,
                            utility_mode::human_bytes(self.memory_bytes),
                        )
                    } else {
                        // Nothing was out of core: said, not claimed.
                        format!(
                            "{} of keys sorted within the {} real-memory budget: they fit, \
                             so nothing had to leave memory (give --keys larger than --memory \
                             to sort out of core)",
                            utility_mode::human_bytes(self.key_bytes),
                            utility_mode::human_bytes(self.memory_bytes),
                        )
                    },
                    if self.cache == CachePolicy::Buffered {
                        "; the budget bounds the VM's own pages only: with --cache buffered \
                         the kernel's page cache held the volume besides, outside it"
                    } else {
                        ""
                    }
                ),
            ),
            (
                "elapsed",
                if self.transparent {
                    format!(
                        "{:.2} s (fill {:.2}, sort_unstable {:.2}, verify {:.2})",
                        self.elapsed_s,
                        self.phases.fill_s,
                        self.phases.sort_runs_s + self.phases.merge_s,
                        self.phases.verify_s
                    )
                } else {
                    format!(
                        "{:.2} s (fill {:.2}, sort runs {:.2}, merge {:.2}, verify {:.2})",
                        self.elapsed_s,
                        self.phases.fill_s,
                        self.phases.sort_runs_s,
                        self.phases.merge_s,
                        self.phases.verify_s
                    )
                },
            ),
            (
                "prefetch",
                if self.transparent {
                    "none (transparent mode: one sort_unstable, the kernel's faults)".to_string()
                } else if self.prefetch {
                    let runs = if self.runs > 1 {
                        format!(
                            "the next run advised WillNeed before each run but the last was \
                             sorted ({} times, {} pages in all; {} queued for the will-need \
                             thread, {} dropped at its limit)",
                            self.runs - 1,
                            self.prefetched_run_pages,
                            s.will_need_queued_pages,
                            s.will_need_dropped_pages
                        )
                    } else {
                        "no next run to advise (one run)".to_string()
                    };
                    let merge = if self.prefetched_merge_pages > 0 {
                        format!(
                            "a second thread asked for {} page{} ahead of the merge's cursors",
                            self.prefetched_merge_pages,
                            if self.prefetched_merge_pages == 1 {
                                ""
                            } else {
                                "s"
                            }
                        )
                    } else {
                        "none ahead of the merge (a budget under 6 pages a run leaves no room)"
                            .to_string()
                    };
                    format!("{runs}; {merge} (--no-prefetch: neither)")
                } else {
                    "none (--no-prefetch): no WillNeed advice, no second thread; the VM's own \
                     read-ahead and write-behind go on"
                        .to_string()
                },
            ),
            (
                "faults",
                format!(
                    "{} (pages of {}; one fault brings in a run of them), served {}; {} \
                     fresh pages zero-filled, {} overwritten whole without a read; {} reads \
                     and writes found their page resident",
                    s.faults,
                    utility_mode::human_bytes(PAGE),
                    match self.fault_service {
                        FaultService::InFaultingThread => "by the faulting thread",
                        FaultService::Worker => {
                            "by the PageFault worker (the seed's service: one thread, the \
                             monitor held across each transfer)"
                        }
                    },
                    s.zero_fills,
                    s.overwrites,
                    s.hits
                ),
            ),
            (
                "page-ins",
                format!("{} ({} I/O to the volume)", s.page_ins, self.cache.name()),
            ),
            (
                "page-outs",
                format!(
                    "{} ({} of them written behind, before the clock reached them)",
                    s.page_outs, s.cleaned_ahead
                ),
            ),
            (
                "frame pool",
                if s.frame_pool_pages == 0 && self.transparent {
                    "none (transparent mode installs pages by copying, not by moving frames)"
                        .to_string()
                } else if s.frame_pool_pages == 0 {
                    "none (the kernel refused UFFDIO_MOVE)".to_string()
                } else {
                    format!(
                        "{} pages; {} pages moved in from it (read into it, or zeroed \
                         there), {} evicted into it; {}",
                        s.frame_pool_pages,
                        s.frames_moved_in,
                        s.frames_moved_out,
                        if s.frame_pool_pages < 512 {
                            // Said with the real memory the VM has, which
                            // is less than the budget asked for when the
                            // keys are few (never more frames than pages).
                            format!(
                                "too small for 2 MiB huge-page chunks (the pool is an eighth \
                                 of the VM's real memory, 16 pages at least, and that real \
                                 memory is {}{}; 16 MiB or more of it has them)",
                                utility_mode::human_bytes(s.real_memory_pages * PAGE),
                                if s.real_memory_pages * PAGE < self.memory_bytes {
                                    ": the budget capped at the address space, twice the keys"
                                } else {
                                    ""
                                }
                            )
                        } else if s.frame_pool_huge_chunks == 0 {
                            "no 2 MiB chunk committed as a huge page (none needed, or the \
                             kernel gives none: transparent huge pages off)"
                                .to_string()
                        } else {
                            format!(
                                "its 2 MiB chunks committed as huge pages {} times",
                                s.frame_pool_huge_chunks
                            )
                        }
                    )
                },
            ),
            (
                "seek-aheads",
                if s.seek_aheads_issued == 0 && self.cache == CachePolicy::Direct {
                    "none: a direct-I/O drive takes no hint (Cedar's seek-ahead, for drives \
                     with an arm, is measured on simulated ones: cedarvm bench seek-ahead)"
                        .to_string()
                } else {
                    format!(
                        "{} issued, {} used",
                        s.seek_aheads_issued, s.seek_aheads_used
                    )
                },
            ),
            (
                "resident",
                format!(
                    "high water {} of the {} budget{}; process peak RSS {:.1} MiB (the \
                     budget's pages, {}the program and its buffers)",
                    utility_mode::human_bytes(s.resident_high_water * PAGE),
                    utility_mode::human_bytes(self.memory_bytes),
                    if s.reclaim_pages > 0 {
                        format!(
                            " ({} of it the reclaim list: {} faults served from it)",
                            utility_mode::human_bytes(s.reclaim_pages * PAGE),
                            s.reclaims
                        )
                    } else {
                        String::new()
                    },
                    self.peak_rss_bytes as f64 / (1 << 20) as f64,
                    if s.frame_pool_pages > 0 {
                        "the frame pool, "
                    } else {
                        ""
                    }
                ),
            ),
        ];
        rows.iter().map(|(k, v)| format!("{k:<12} {v}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VM in real memory only, with `pages` allocated as the merge's
    /// input: runs of `run_pages` pages each.
    fn input(pages: u64) -> (Vm, runtable::Interval) {
        let vm = Vm::new(VmConfig::new(256, 256), Backing::RealMemoryOnly).unwrap();
        let interval = vm.allocate(pages).unwrap();
        (vm, interval)
    }

    /// Runs of 8 pages stepped by 2: a sweep brings one step of every run
    /// wanting one, and nothing more until a cursor comes within a step of
    /// what is in; a run is never asked for past its end.
    #[test]
    fn the_follower_keeps_each_run_one_to_two_steps_ahead() {
        let (vm, input) = input(16);
        let page = KEYS_PER_PAGE;
        let shared = Cursors::new(&[0, 8 * page], vec![8 * page, 16 * page], 2);
        let count = AtomicU64::new(0);
        let ahead = |r: usize| shared.ahead[r].load(Ordering::Relaxed) / page;
        assert!(shared.sweep(&vm, input, &count));
        assert_eq!((ahead(0), ahead(1)), (2, 10));
        assert!(!shared.sweep(&vm, input, &count), "both a step ahead");
        // Run 0's cursor a page on: within a step of what is in.
        shared.at[0].store(page, Ordering::Relaxed);
        assert!(shared.sweep(&vm, input, &count));
        assert_eq!((ahead(0), ahead(1)), (4, 10));
        // Run 1's cursor past what is in (the follower fell behind): the
        // step starts at the cursor, not behind it.
        shared.at[1].store(13 * page, Ordering::Relaxed);
        assert!(shared.sweep(&vm, input, &count));
        assert_eq!(ahead(1), 15);
        shared.at[1].store(15 * page, Ordering::Relaxed);
        assert!(shared.sweep(&vm, input, &count));
        assert_eq!(ahead(1), 16, "not past the run's end");
        shared.at[1].store(16 * page, Ordering::Relaxed);
        assert!(!shared.wants(1), "a run all in wants nothing");
        assert_eq!(count.load(Ordering::Relaxed), 2 + 2 + 2 + 2 + 1);
        // What was asked for is in.
        assert_eq!(vm.stats().resident_pages, 2 + 2 + 2 + 2 + 1);
    }

    /// A merge that panics with the follower parked still ends: the guard
    /// stops the follower, the scope returns and the panic comes out. (A
    /// hang is what this checks; the minute's wait is its detector, not a
    /// timing the test depends on.)
    #[test]
    fn a_panicking_merge_stops_its_follower() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (vm, input) = input(16);
            let shared = Cursors::new(&[0, 8 * KEYS_PER_PAGE], vec![8 * KEYS_PER_PAGE; 2], 2);
            let count = AtomicU64::new(0);
            let merge = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                std::thread::scope(|scope| {
                    let follower = scope.spawn(|| shared.follow(&vm, input, &count));
                    let _over = MergeOver {
                        cursors: &shared,
                        follower: Some(follower.thread().clone()),
                    };
                    // The follower's first sweep asks for run 0's first
                    // step (run 1 is empty); then it parks.
                    while count.load(Ordering::Relaxed) < 2 {
                        std::thread::yield_now();
                    }
                    panic!("the merge fails");
                })
            }));
            let _ = done.send(merge.is_err());
        });
        let panicked = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the merge's scope ended");
        assert!(panicked, "the merge's panic came out");
    }
}
