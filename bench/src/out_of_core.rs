//! `cedarvm bench out-of-core`: the VM against the kernel's own paging on
//! data larger than memory.
//!
//! Each side runs in a child process of its own, inside a memory cgroup:
//! the VM (drives `O_DIRECT`, so its data occupies exactly the budget) in
//! one of the budget + the sort's run buffer (a quarter of the budget) +
//! 32 MiB for the rest that is not data (the program, the VM's tables);
//! the kernel's shared `mmap` of a file — once with the best
//! advice for each workload (`MADV_SEQUENTIAL` for scans and sorted runs,
//! `MADV_RANDOM` for random reads and the merge) and once with none — in
//! one whose limit the child sets once it has joined: what it holds then
//! (the program), plus the sort's run buffer, plus the page tables of its
//! mappings and 1 MiB for the program's growth, plus the budget; and sets
//! again as each workload makes its mapping cold ([`Fence`]): what it
//! holds then besides page cache, plus that mapping's page tables and 256
//! KiB, plus the budget. So the kernel's page cache gets the budget for
//! data, as the VM's frames do; the report gives each side's page cache
//! at the end of each workload, and its reads from the device. (A cgroup
//! of the bare budget left the kernel too little for its own program at
//! small budgets, and the OOM killer ended the run; one of the budget + 32
//! MiB gave its page cache twice the VM's memory at the default size; the
//! limit set once gave it a tenth more than the budget.) Every side runs
//! the same workloads with the same code through a `Store`:
//!
//! | workload | what |
//! |---|---|
//! | fill | write a data set of 4× the budget (`u64` words), then flush |
//! | scan | read all of it in order, cold, and check the sum |
//! | scan-start, scan-rest | the scan's first quarter (a budget's worth, read into memory that starts empty) and the rest (memory full, pages replaced): reported beside it, not run apart |
//! | uniform | random 8-byte reads, cold, each checked against its value |
//! | zipf | the same with page popularity Zipf(0.99) |
//! | sort | external sort of 8× the budget: sorted runs of a quarter of the budget, then a k-way merge; the output is checked (order, count, sum, xor) |
//! | uniform-fit | uniform random reads over a working set of 3/4 of the budget (it fits) |
//! | sort-unstable | the same keys sorted in place by one `sort_unstable` on a plain `&mut [u64]` (the kernel's mapping; the VM in transparent mode, on a view); checked |
//!
//! Asked for (`--sides`), a fifth side, `vm-mapped`, runs the data set's
//! workloads on a shared `map_file` of a file of its own (opened
//! `O_DIRECT`), against the kernel's shared `mmap` of a file: the
//! comparison of the VM's file mappings with the kernel's.
//!
//! The VM runs twice: through the copying API (`vm`), and in transparent
//! mode (`vm-transparent`) by plain loads and stores through a pointer, as
//! a program reaches the kernel's mapping, advised as the kernel-advised
//! side is (`Sequential` for scans, `Random` for random reads).
//!
//! "Cold" means: the VM's pages are dropped from real memory
//! (`Advice::DontNeed`) and its drives bypass the page cache; the kernel's
//! mapping is synced, dropped (`MADV_DONTNEED`) and its file dropped from
//! the page cache (`POSIX_FADV_DONTNEED`). A workload that runs past the
//! time limit stops and reports how far it got (the kernel without advice
//! thrashes on random reads: each fault reads around the page by the
//! device's whole read-ahead window).
//!
//! The report gives each side's time per workload, each side's peak memory
//! as its cgroup saw it, and the VM's statistics; table, JSON and SVG.
//!
//! With `--rounds N` the sides run N times, each round in another order
//! (each side in every place and after every other side equally often:
//! [`round_order`]); the report then gives medians, and each ratio as the
//! median of the rounds' own (see [`OutOfCoreReport::rounds`] for why).

use crate::cgroup::MemoryCgroup;
use crate::sys::{FileMapping, MappingAdvice, Memory};
use disk_channel::rng::SplitMix64;
use disk_channel::{CachePolicy, DiskChannel, FileDrive, FileDriveOptions};
use runtable::{FormatOptions, Interval, PageNumber, Volume};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use utility_mode::ToolError;
use utility_mode::progress::progress;
use vm_core::{Advice, Backing, VAddr, Vm, VmConfig, VmStats};

const PAGE: u64 = 4096;
const WORDS: u64 = PAGE / 8;
/// The workloads in the order they run and are reported.
const WORKLOADS: [&str; 7] = [
    "fill",
    "scan",
    "uniform",
    "zipf",
    "uniform-fit",
    "sort",
    "sort-unstable",
];
/// The scan's two parts, reported beside it: the time its reader took
/// over the first quarter of the data set (a budget's worth of pages,
/// begun with the data out of memory: the VM commits fresh memory for it,
/// the kernel's page cache grows) and over the rest. Where the two sides
/// differ is where the time goes. (Read-ahead on either side has already
/// read past the quarter when the reader gets there; and the kernel's
/// cgroup holds a little more than the budget, so its page cache is still
/// growing early in the rest.) Each part's median over rounds is taken on
/// its own, so the medians need not add up to the scan's.
const SCAN_PARTS: [&str; 2] = ["scan-start", "scan-rest"];
/// What the VM's cgroup allows beyond the budget and the sort's run
/// buffer: the program, its tables, its heap and stacks.
pub const SLACK_BYTES: u64 = 32 << 20;

/// Which side of the comparison a child process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// The VM, drives opened `O_DIRECT`, reached through the copying API.
    Vm,
    /// The same VM in transparent mode, reached by plain loads and stores
    /// (as a program reaches the kernel's `mmap`), advised as the
    /// kernel-advised side is.
    VmTransparent,
    /// The kernel's `mmap`, advised for each workload.
    KernelAdvised,
    /// The kernel's `mmap`, no advice.
    Kernel,
    /// The VM with the data set a shared file mapping (`map_file`) of a
    /// file of its own, opened `O_DIRECT` (so that the page cache holds none
    /// of it outside the budget), reached through the copying API; the
    /// sort's areas anonymous. Run when asked for (`--sides`).
    VmMapped,
    /// The `vm` side without frame moves (`VmConfig::move_frames` off:
    /// every transfer into fresh memory, every eviction given back with
    /// `madvise`): the same run's baseline for the frame pool. Run when
    /// asked for (`--sides`).
    VmNoMove,
    /// The `vm` side without the frame pool's huge-page chunks
    /// (`VmConfig::huge_pool_chunks` off: the pool's memory committed a
    /// page at a time): the same run's baseline for them. Run when asked
    /// for (`--sides`).
    VmNoHuge,
    /// The `vm` side with its read-ahead done by the read-ahead thread
    /// (`VmConfig::inline_read_ahead` off): the same run's baseline for
    /// read-ahead started and finished by the faulting thread. Run when
    /// asked for (`--sides`).
    VmThreadReadAhead,
    /// The `vm` side without read-around into free memory
    /// (`VmConfig::read_around_free` off: a fault reads its own page
    /// alone however much memory is free): the same run's baseline for
    /// it. Run when asked for (`--sides`).
    VmNoAround,
}

impl Side {
    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Side::Vm => "vm",
            Side::VmTransparent => "vm-transparent",
            Side::KernelAdvised => "kernel-advised",
            Side::Kernel => "kernel",
            Side::VmMapped => "vm-mapped",
            Side::VmNoMove => "vm-no-move",
            Side::VmNoHuge => "vm-no-huge",
            Side::VmThreadReadAhead => "vm-thread-read-ahead",
            Side::VmNoAround => "vm-no-around",
        }
    }

    /// Every side.
    pub const ALL: [Side; 9] = [
        Side::Vm,
        Side::VmTransparent,
        Side::KernelAdvised,
        Side::Kernel,
        Side::VmMapped,
        Side::VmNoMove,
        Side::VmNoHuge,
        Side::VmThreadReadAhead,
        Side::VmNoAround,
    ];

    /// The side named `name`.
    pub fn parse(name: &str) -> Option<Side> {
        Side::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The sizes and limits of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutOfCoreOptions {
    /// The real-memory budget, bytes (see the module doc for the cgroup
    /// limits).
    pub memory_bytes: u64,
    /// Random reads per random workload.
    pub reads: u64,
    /// Seconds a workload may run before it stops and reports progress.
    pub limit_s: f64,
    /// Seed of the data and the read sequences.
    pub seed: u64,
    /// Directory for the files (default: a temporary one).
    pub dir: Option<PathBuf>,
    /// The workloads to run (empty: all); `fill` runs whenever one of the
    /// data set's readers does.
    #[serde(default)]
    pub workloads: Vec<String>,
    /// Threads doing the random reads at once (each its own sequence).
    #[serde(default = "one")]
    pub threads: usize,
    /// The sides to run, by name (empty: vm, vm-transparent,
    /// kernel-advised, kernel).
    #[serde(default)]
    pub sides: Vec<String>,
    /// How many times the sides run, each round in its own order (see
    /// [`round_order`] and [`OutOfCoreReport::rounds`]).
    #[serde(default = "one")]
    pub rounds: usize,
}

fn one() -> usize {
    1
}

impl OutOfCoreOptions {
    /// The data set of the scan and random workloads: 4× the budget.
    pub fn data_bytes(&self) -> u64 {
        4 * self.memory_bytes
    }
    /// The keys the sort sorts: 8× the budget.
    pub fn sort_bytes(&self) -> u64 {
        8 * self.memory_bytes
    }
}

/// One workload's outcome on one side.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Its name (see the module doc).
    pub name: String,
    /// Wall time, seconds (up to the stop, if it did not finish).
    pub seconds: f64,
    /// Whether it ran to the end (and its result was checked).
    pub finished: bool,
    /// How much of it was done (1 when finished).
    pub fraction_done: f64,
    /// The reads it sent to the device: a VM side's disk reads; a kernel
    /// side's major faults, which are its reads only under `MADV_RANDOM`
    /// (one 4 KiB read each; without advice each reads around its page,
    /// and in order, read-ahead started at minor faults is not counted).
    /// `None` where not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_reads: Option<u64>,
    /// The page cache charged to the side's cgroup when it ended, bytes:
    /// a kernel side's data; about nothing on a VM side, whose drives
    /// bypass the cache. `None` outside a cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_bytes: Option<u64>,
    /// The most memory charged to the side's cgroup during it, bytes (a
    /// kernel side's: since its limit was set for it; on cgroup v2, whose
    /// peak cannot be started over this way, the side's whole run's).
    /// `None` outside a cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_bytes: Option<u64>,
}

impl Workload {
    /// The time it took, or would have taken at the rate it went.
    pub fn projected_s(&self) -> f64 {
        self.seconds / self.fraction_done.max(1e-9)
    }
}

/// What one side reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SideReport {
    /// The side.
    pub side: Side,
    /// Its workloads, in order.
    pub workloads: Vec<Workload>,
    /// The VM's statistics at the end (the VM side only).
    pub vm_stats: Option<VmStats>,
    /// Its drive's page-cache policy (the VM side only).
    pub cache: Option<CachePolicy>,
    /// The peak memory its cgroup was charged, bytes (`None` without one).
    pub peak_bytes: Option<u64>,
    /// The cgroup limit it ran under, bytes.
    pub limit_bytes: Option<u64>,
    /// Why the side did not finish, if it did not (the kernel's side can be
    /// killed by its cgroup's OOM killer at small budgets: read-around
    /// brings in more than the limit holds faster than it can reclaim).
    #[serde(default)]
    pub failure: Option<String>,
}

impl SideReport {
    /// A side that ran nothing, and why.
    fn failed(side: Side, why: String) -> SideReport {
        SideReport {
            side,
            workloads: Vec::new(),
            vm_stats: None,
            cache: None,
            peak_bytes: None,
            limit_bytes: None,
            failure: Some(why),
        }
    }
}

/// What `bench out-of-core` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutOfCoreReport {
    /// The run's options.
    pub options: OutOfCoreOptions,
    /// Each side, in the order asked for. With several rounds, each side's
    /// medians over them (see [`OutOfCoreReport::rounds`]).
    pub sides: Vec<SideReport>,
    /// Why there was no cgroup, if there was none.
    pub cgroup_note: Option<String>,
    /// Every round, when there were several (`--rounds`); empty for one.
    ///
    /// Why rounds, and why in changing orders: a side's time can depend on
    /// the side that ran before it, through what that side's process left
    /// in the machine's free memory. On this project's virtual machine the
    /// kernel reports free 2 MiB blocks to its host, which takes them back;
    /// memory a process has just freed comes back fast, memory the host
    /// took back costs a fault on the host for every 4 KiB page first
    /// touched, and the VM's frame pool commits 2 MiB blocks. In one set of
    /// six runs each way the VM's 4× scan took a median 0.486 s run first
    /// and 0.418 s run after the advised kernel's side (the kernel's 0.393
    /// and 0.377 s); in later sets of 16–20 runs the order moved the ratio
    /// by 2–3% either way (BENCHMARKS.md). So the sides are run in orders
    /// that put each in every place and after every other side equally
    /// often ([`round_order`]), and the times reported are medians.
    #[serde(default)]
    pub rounds: Vec<Round>,
}

/// One round of a run of several (`--rounds`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// The sides in the order they ran.
    pub order: Vec<Side>,
    /// What each reported, in the order they ran.
    pub sides: Vec<SideReport>,
}

/// The order of the sides in round `round` (from 0): a Williams design.
/// Over [`rounds_to_balance`] rounds every side runs in every place
/// equally often, *and* right after every other side equally often — what
/// a side's time depends on is the side before it (see
/// [`OutOfCoreReport::rounds`]), which a plain rotation does not balance
/// (rotating `a b c d`, `b` always follows `a` but across the rounds'
/// boundaries). Round `r` of the first `n` (n sides) is the sequence
/// `0, 1, n−1, 2, n−2, …` shifted by `r` (mod n), its numbers naming the
/// sides so that round 0 is `sides` as given; with an odd `n`, rounds
/// `n..2n` are the first `n` reversed.
pub fn round_order(sides: &[Side], round: usize) -> Vec<Side> {
    let n = sides.len();
    if n == 0 {
        return Vec::new();
    }
    let round = round % rounds_to_balance(n);
    let (shift, reversed) = (round % n, round >= n);
    // The design's first row, 0, 1, n−1, 2, n−2, …; its numbers then name
    // the sides so that round 0 is `sides` as given (a renaming keeps the
    // balance).
    let first: Vec<usize> = (0..n)
        .map(|k| {
            if k % 2 == 1 {
                k.div_ceil(2)
            } else {
                (n - k / 2) % n
            }
        })
        .collect();
    let mut side_of = vec![sides[0]; n];
    for (k, &label) in first.iter().enumerate() {
        side_of[label] = sides[k];
    }
    let mut order: Vec<Side> = first
        .iter()
        .map(|&label| side_of[(label + shift) % n])
        .collect();
    if reversed {
        order.reverse();
    }
    order
}

/// The rounds after which [`round_order`] has put every one of `n` sides
/// in every place, and after every other side, equally often: `n` for an
/// even `n`, `2n` for an odd one (1 for none or one).
pub fn rounds_to_balance(n: usize) -> usize {
    match n {
        0 | 1 => 1,
        _ if n.is_multiple_of(2) => n,
        _ => 2 * n,
    }
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` for none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// `side`'s time for `workload` among `sides` (projected, where it
/// stopped at the time limit).
fn time_of(sides: &[SideReport], side: Side, workload: &str) -> Option<f64> {
    sides
        .iter()
        .find(|s| s.side == side)?
        .workloads
        .iter()
        .find(|w| w.name == workload)
        .map(Workload::projected_s)
}

/// Each of `sides`' reports over `rounds` ([`median_side`]), in the order
/// of `sides`.
pub fn medians_of(sides: &[Side], rounds: &[Round]) -> Vec<SideReport> {
    sides
        .iter()
        .map(|&side| {
            let runs: Vec<&SideReport> = rounds
                .iter()
                .filter_map(|r| r.sides.iter().find(|s| s.side == side))
                .collect();
            median_side(side, &runs)
        })
        .collect()
}

/// `side`'s report over several rounds (`reports`, one a round, in round
/// order): each workload's median time — of the times projected where a
/// round stopped it at the time limit, so that the median is of what the
/// table shows — finished only if it finished in every round it ran in;
/// the highest peak (the bound must hold in every run) and the highest
/// limit (a kernel side's differs a little from round to round); the first
/// round's statistics and cache policy; and, if the side failed in any
/// round (a kernel side killed by its cgroup, say), which rounds: its
/// medians are then of the others.
pub fn median_side(side: Side, reports: &[&SideReport]) -> SideReport {
    // Every workload any round reported (a side's own, such as the
    // device's, too), in the order they ran.
    let mut names: Vec<&str> = Vec::new();
    for w in reports.iter().flat_map(|r| &r.workloads) {
        if !names.contains(&w.name.as_str()) {
            names.push(&w.name);
        }
    }
    let mut workloads: Vec<Workload> = Vec::new();
    for name in names {
        let runs: Vec<&Workload> = reports
            .iter()
            .flat_map(|r| r.workloads.iter().filter(|w| w.name == name))
            .collect();
        if runs.is_empty() {
            continue;
        }
        let of = |f: fn(&Workload) -> f64| {
            median(&runs.iter().map(|w| f(w)).collect::<Vec<_>>()).unwrap_or(0.0)
        };
        let finished = runs.iter().all(|w| w.finished);
        // (Finished everywhere: the median of the times. Else the median
        // projection, as a time up to a share done below one.)
        let fraction_done = if finished {
            1.0
        } else {
            of(|w| w.fraction_done).min(0.99)
        };
        // (The counts' medians over the rounds that have them.)
        let counted = |f: fn(&Workload) -> Option<u64>| {
            let values: Vec<f64> = runs.iter().filter_map(|w| f(w)).map(|v| v as f64).collect();
            median(&values).map(|m| m.round() as u64)
        };
        workloads.push(Workload {
            name: name.to_string(),
            seconds: of(Workload::projected_s) * fraction_done,
            finished,
            fraction_done,
            device_reads: counted(|w| w.device_reads),
            cache_bytes: counted(|w| w.cache_bytes),
            peak_bytes: runs.iter().filter_map(|w| w.peak_bytes).max(),
        });
    }
    let first = reports.first();
    SideReport {
        side,
        workloads,
        vm_stats: first.and_then(|r| r.vm_stats),
        cache: first.and_then(|r| r.cache),
        peak_bytes: reports.iter().filter_map(|r| r.peak_bytes).max(),
        limit_bytes: reports.iter().filter_map(|r| r.limit_bytes).max(),
        failure: {
            let failed: Vec<String> = reports
                .iter()
                .enumerate()
                .filter(|(_, r)| r.failure.is_some())
                .map(|(at, _)| (at + 1).to_string())
                .collect();
            reports
                .iter()
                .find_map(|r| r.failure.as_ref())
                .map(|first| match reports.len() {
                    1 => first.clone(),
                    n if failed.len() == n => format!("{first} (in every round)"),
                    n => format!(
                        "{first} (in round {} of {n}; its times are the other rounds')",
                        failed.join(", ")
                    ),
                })
        },
    }
}

/// The memory a workload runs through: the VM's address space or the
/// kernel's mapping. Offsets are bytes from the start of the area.
trait Store: Sync {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), String>;
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), String>;
    /// Calls `f` with page `page`'s bytes (a guard on the VM: no copy).
    fn scan_page(&self, page: u64, f: &mut dyn FnMut(&[u8])) -> Result<(), String>;
    /// Lets `f` write all of page `page`.
    fn fill_page(&self, page: u64, f: &mut dyn FnMut(&mut [u8])) -> Result<(), String>;
    /// Writes everything changed to the backing store.
    fn flush(&self) -> Result<(), String>;
    /// Makes the area cold (see the module doc).
    fn cool(&self) -> Result<(), String>;
    /// Advice for what comes next.
    fn expect(&self, pattern: Pattern) -> Result<(), String>;
    /// The reads sent to the device so far (see
    /// [`Workload::device_reads`]); `None` where not counted.
    fn device_reads(&self) -> Option<u64> {
        None
    }
    /// Whether the store gives plain slices ([`Store::sort_words`]); the
    /// copying API does not.
    fn has_slices(&self) -> bool {
        false
    }
    /// Sorts `count` words from byte `offset` in place with one
    /// `sort_unstable` on a plain `&mut [u64]` (stores with slices only).
    fn sort_words(&self, _offset: u64, _count: u64) -> Result<(), String> {
        Err("this store gives no plain slice to sort".into())
    }
}

struct VmStore<'a> {
    vm: &'a Vm,
    interval: Interval,
}

impl Store for VmStore<'_> {
    fn device_reads(&self) -> Option<u64> {
        Some(self.vm.stats().disk_reads)
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        let at = self.vm.address_of(self.interval.page).0 + offset;
        self.vm.read(VAddr(at), buf).map_err(|e| e.to_string())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), String> {
        let at = self.vm.address_of(self.interval.page).0 + offset;
        self.vm.write(VAddr(at), data).map_err(|e| e.to_string())
    }
    fn scan_page(&self, page: u64, f: &mut dyn FnMut(&[u8])) -> Result<(), String> {
        let guard = self
            .vm
            .page(PageNumber(self.interval.page.0 + page))
            .map_err(|e| e.to_string())?;
        f(&guard);
        Ok(())
    }
    fn fill_page(&self, page: u64, f: &mut dyn FnMut(&mut [u8])) -> Result<(), String> {
        let mut guard = self
            .vm
            .page_mut_overwrite(PageNumber(self.interval.page.0 + page))
            .map_err(|e| e.to_string())?;
        f(&mut guard);
        Ok(())
    }
    fn flush(&self) -> Result<(), String> {
        self.vm.flush().map_err(|e| e.to_string())
    }
    fn cool(&self) -> Result<(), String> {
        self.vm
            .advise(self.interval, Advice::DontNeed)
            .map_err(|e| e.to_string())
    }
    fn expect(&self, pattern: Pattern) -> Result<(), String> {
        let advice = match pattern {
            Pattern::InOrder => Advice::Sequential,
            Pattern::Random | Pattern::Unsaid => Advice::Normal,
        };
        self.vm
            .advise(self.interval, advice)
            .map_err(|e| e.to_string())
    }
}

struct MapStore {
    file: std::fs::File,
    map: FileMapping,
    advised: bool,
    /// The side's cgroup limit, set again whenever the store is made cold
    /// (`None` outside a cgroup).
    fence: Option<Fence>,
}

/// A kernel side's cgroup limit, set each time a workload makes its store
/// cold, so that its page cache gets the budget for data, as the VM's
/// frames do: what the process holds then besides page cache (the
/// program, the sort's run buffer, its tables), the budget, the page
/// tables of the store's own mapping (which `MADV_DONTNEED` may have
/// freed, and the workload fills again), and [`FENCE_GROWTH`]. (The limit
/// set when the side joined its cgroup, [`limit_kernel_side`], must allow
/// every mapping's page tables, and a random workload reads cached data
/// before any of the sort's are made: they gave its page cache a tenth
/// more than the budget at the default size.)
struct Fence {
    procs: PathBuf,
    budget: u64,
    tables: u64,
    /// The highest limit set by the side's fences, and the highest peak
    /// each reset (shared by the side's stores).
    highest: std::sync::Arc<[std::sync::atomic::AtomicU64; 2]>,
}

/// What a workload allocates after its store is made cold: the readers'
/// stacks, the merge's cursors, the kernel's own tables of the page
/// cache. (The Zipf table is made before.)
const FENCE_GROWTH: u64 = 256 << 10;

impl Fence {
    fn set(&self) -> Result<(), String> {
        let said = |e: std::io::Error| format!("{}: {e}", self.procs.display());
        let usage = MemoryCgroup::usage_at(&self.procs).map_err(said)?;
        let cache = MemoryCgroup::cache_at(&self.procs).map_err(said)?;
        let limit = usage.saturating_sub(cache) + self.budget + self.tables + FENCE_GROWTH;
        MemoryCgroup::set_limit_at(&self.procs, limit).map_err(said)?;
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.highest[0].fetch_max(limit, relaxed);
        // The peak from here on is the one that must be within this limit;
        // the one before, within the limit before, is kept.
        let before = MemoryCgroup::peak_at(&self.procs).map_err(said)?;
        self.highest[1].fetch_max(before, relaxed);
        MemoryCgroup::reset_peak_at(&self.procs);
        Ok(())
    }
}

/// The process's major faults so far.
fn major_faults() -> Option<u64> {
    major_faults_in("/proc/self/stat")
}

/// The major faults in a `stat` file of `/proc` (its field 12).
fn major_faults_in(stat: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(stat).ok()?;
    // After the command's name, which may hold spaces: its closing
    // parenthesis is the last.
    let fields = &stat[stat.rfind(')')? + 1..];
    fields.split_whitespace().nth(9)?.parse().ok()
}

impl Store for MapStore {
    fn device_reads(&self) -> Option<u64> {
        major_faults()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        self.map.read(offset, buf);
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), String> {
        // SAFETY: the workloads write from one thread only, and never while
        // other threads read (only the random reads use threads).
        unsafe { self.map.write(offset, data) };
        Ok(())
    }
    fn scan_page(&self, page: u64, f: &mut dyn FnMut(&[u8])) -> Result<(), String> {
        let mut buf = [0u8; PAGE as usize];
        self.map.read(page * PAGE, &mut buf);
        f(&buf);
        Ok(())
    }
    fn fill_page(&self, page: u64, f: &mut dyn FnMut(&mut [u8])) -> Result<(), String> {
        let mut buf = [0u8; PAGE as usize];
        f(&mut buf);
        // SAFETY: as for `write`.
        unsafe { self.map.write(page * PAGE, &buf) };
        Ok(())
    }
    fn flush(&self) -> Result<(), String> {
        self.map.sync().map_err(|e| e.to_string())
    }
    fn cool(&self) -> Result<(), String> {
        self.map.sync().map_err(|e| e.to_string())?;
        self.map.drop_pages().map_err(|e| e.to_string())?;
        rustix::fs::fadvise(&self.file, 0, None, rustix::fs::Advice::DontNeed)
            .map_err(|e| e.to_string())?;
        match &self.fence {
            Some(fence) => fence.set(),
            None => Ok(()),
        }
    }
    fn expect(&self, pattern: Pattern) -> Result<(), String> {
        let advice = match (self.advised, pattern) {
            (false, _) | (true, Pattern::Unsaid) => MappingAdvice::Normal,
            (true, Pattern::InOrder) => MappingAdvice::Sequential,
            (true, Pattern::Random) => MappingAdvice::Random,
        };
        self.map.advise(advice).map_err(|e| e.to_string())
    }
    fn has_slices(&self) -> bool {
        true
    }
    fn sort_words(&self, offset: u64, count: u64) -> Result<(), String> {
        // SAFETY: the sort runs alone, in one thread.
        unsafe { self.map.words_mut(offset, count as usize) }.sort_unstable();
        Ok(())
    }
}

/// The VM in transparent mode, reached by plain loads and stores through
/// a pointer (`Memory`), as the kernel's mapping is; sorts on a view;
/// flushed and cooled as the copying API's store is.
struct TransparentStore<'a> {
    vm: VmStore<'a>,
    memory: Memory,
}

impl Store for TransparentStore<'_> {
    fn device_reads(&self) -> Option<u64> {
        self.vm.device_reads()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        self.memory.read(offset, buf);
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), String> {
        // SAFETY: the workloads write from one thread only, and never while
        // other threads read (only the random reads use threads).
        unsafe { self.memory.write(offset, data) };
        Ok(())
    }
    fn scan_page(&self, page: u64, f: &mut dyn FnMut(&[u8])) -> Result<(), String> {
        // SAFETY: nothing writes while the scan reads.
        f(unsafe { self.memory.bytes(page * PAGE, PAGE as usize) });
        Ok(())
    }
    fn fill_page(&self, page: u64, f: &mut dyn FnMut(&mut [u8])) -> Result<(), String> {
        // SAFETY: the fill runs alone, in one thread.
        f(unsafe { self.memory.bytes_mut(page * PAGE, PAGE as usize) });
        Ok(())
    }
    fn flush(&self) -> Result<(), String> {
        self.vm.flush()
    }
    fn cool(&self) -> Result<(), String> {
        self.vm.cool()
    }
    fn expect(&self, pattern: Pattern) -> Result<(), String> {
        let advice = match pattern {
            Pattern::InOrder => Advice::Sequential,
            Pattern::Random => Advice::Random,
            Pattern::Unsaid => Advice::Normal,
        };
        self.vm
            .vm
            .advise(self.vm.interval, advice)
            .map_err(|e| e.to_string())
    }
    fn has_slices(&self) -> bool {
        true
    }
    fn sort_words(&self, offset: u64, count: u64) -> Result<(), String> {
        // The keys' pages, as one exclusive view (the safe API).
        let pages = Interval::new(self.vm.interval.page.0 + offset / PAGE, count * 8 / PAGE);
        let mut view = self
            .vm
            .vm
            .view_mut::<u64>(pages)
            .map_err(|e| e.to_string())?;
        view.sort_unstable();
        Ok(())
    }
}

/// The `vm-mapped` side: the data set a shared `map_file` of a file of its
/// own, opened `O_DIRECT` where the file system allows it (else with the
/// page cache, said in the report's cache field), the sort's areas
/// anonymous, all through the copying API.
fn run_mapped_side(
    options: &OutOfCoreOptions,
    dir: &Path,
    cgroup: Option<&Path>,
) -> Result<SideReport, ToolError> {
    use std::os::unix::fs::OpenOptionsExt;
    let check = ToolError::Check;
    let data_bytes = options.data_bytes();
    let sort_bytes = options.sort_bytes();
    let data_path = dir.join("out-of-core-mapped.bin");
    let file_error = |source| ToolError::File {
        path: data_path.clone(),
        source,
    };
    let open = |direct: bool| {
        let mut how = std::fs::OpenOptions::new();
        how.read(true).write(true).create(true).truncate(true);
        if direct {
            how.custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32);
        }
        how.open(&data_path)
    };
    let (file, cache) = match open(true) {
        Ok(file) => (file, CachePolicy::Direct),
        Err(_) => (open(false).map_err(file_error)?, CachePolicy::Buffered),
    };
    file.set_len(data_bytes).map_err(file_error)?;
    // The volume: the sort's areas, and a little for the mapping's rule
    // that a VM mapping files has one.
    let pages = (data_bytes + 2 * sort_bytes) / PAGE;
    let vol_path = dir.join("out-of-core-vm-mapped.vol");
    let drive = FileDrive::open(
        &vol_path,
        &FileDriveOptions::create(PAGE as usize, pages + pages / 64 + 1024),
    )?;
    let volume = Volume::format(
        DiskChannel::new(vec![Box::new(drive)])?,
        &FormatOptions::new(PAGE as usize, pages),
    )?;
    let vm = Vm::new(
        VmConfig::new(pages, options.memory_bytes / PAGE),
        Backing::Volume(volume),
    )?;
    let how = vm_core::MapFile::new(&data_path, data_bytes / PAGE, vm_core::Sharing::Shared);
    let data_interval = vm.map_file(file, &how)?;
    let sort_interval = vm.allocate(2 * sort_bytes / PAGE)?;
    let data = VmStore {
        vm: &vm,
        interval: data_interval,
    };
    let sort_area = VmStore {
        vm: &vm,
        interval: sort_interval,
    };
    let workloads = workloads(&data, &sort_area, options, None, cgroup).map_err(check)?;
    let stats = vm.stats();
    drop(vm);
    let _ = std::fs::remove_file(&vol_path);
    let _ = std::fs::remove_file(&data_path);
    Ok(SideReport {
        side: Side::VmMapped,
        workloads,
        vm_stats: Some(stats),
        cache: Some(cache),
        peak_bytes: None,
        limit_bytes: None,
        failure: None,
    })
}

/// What a workload tells its store about the accesses to come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pattern {
    /// In order (`Sequential` / `MADV_SEQUENTIAL`, advised sides).
    InOrder,
    /// At random (`Random` / `MADV_RANDOM` on the kernel's advised side;
    /// `Normal` on the copying API, where it means one page at a time, and
    /// `Random` in transparent mode).
    Random,
    /// Nothing said: a program's own code, as `sort_unstable` is (`Normal`
    /// / `MADV_NORMAL` on every side).
    Unsaid,
}

/// The value of word `index` of the data set.
fn value(seed: u64, index: u64) -> u64 {
    let mut x = index ^ seed.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Stops a workload that runs past the limit, and measures it.
struct Clock {
    started: Instant,
    limit_s: f64,
}

impl Clock {
    fn start(limit_s: f64) -> Clock {
        Clock {
            started: Instant::now(),
            limit_s,
        }
    }
    fn over(&self) -> bool {
        self.started.elapsed().as_secs_f64() > self.limit_s
    }
    fn result(&self, name: &str, done: u64, total: u64) -> Workload {
        Workload {
            name: name.to_string(),
            seconds: self.started.elapsed().as_secs_f64(),
            finished: done == total,
            fraction_done: done as f64 / total.max(1) as f64,
            ..Workload::default()
        }
    }
}

fn fill(store: &dyn Store, pages: u64, seed: u64, limit_s: f64) -> Result<(Workload, u64), String> {
    let clock = Clock::start(limit_s);
    let mut sum = 0u64;
    for page in 0..pages {
        store.fill_page(page, &mut |bytes| {
            for (w, chunk) in bytes.chunks_exact_mut(8).enumerate() {
                let v = value(seed, page * WORDS + w as u64);
                sum = sum.wrapping_add(v);
                chunk.copy_from_slice(&v.to_le_bytes());
            }
        })?;
    }
    store.flush()?;
    Ok((clock.result("fill", pages, pages), sum))
}

/// The scan, and its two parts (see [`SCAN_PARTS`]): the reader's time
/// over the first quarter of the data set and over the rest. (Only the
/// whole scan where it stopped before the end of the quarter.)
fn scan(store: &dyn Store, pages: u64, sum: u64, limit_s: f64) -> Result<Vec<Workload>, String> {
    store.cool()?;
    store.expect(Pattern::InOrder)?;
    let clock = Clock::start(limit_s);
    let quarter = pages / 4;
    let mut quarter_s = None;
    let mut seen = 0u64;
    let mut done = 0;
    while done < pages && !clock.over() {
        store.scan_page(done, &mut |bytes| {
            for chunk in bytes.chunks_exact(8) {
                seen = seen.wrapping_add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
            }
        })?;
        done += 1;
        if done == quarter {
            quarter_s = Some(clock.started.elapsed().as_secs_f64());
        }
    }
    if done == pages && seen != sum {
        return Err(format!("scan: sum {seen:#x}, written {sum:#x}"));
    }
    let whole = clock.result("scan", done, pages);
    let mut out = vec![whole.clone()];
    if let Some(quarter_s) = quarter_s {
        let [start, rest] = SCAN_PARTS;
        out.push(Workload {
            name: start.into(),
            seconds: quarter_s,
            finished: true,
            fraction_done: 1.0,
            ..Workload::default()
        });
        out.push(Workload {
            name: rest.into(),
            seconds: whole.seconds - quarter_s,
            finished: whole.finished,
            fraction_done: (done - quarter) as f64 / (pages - quarter) as f64,
            ..Workload::default()
        });
    }
    Ok(out)
}

/// Zipf(0.99) over `n` ranks: the cumulative distribution.
fn zipf_cdf(n: u64) -> Vec<f64> {
    let mut cdf = Vec::with_capacity(n as usize);
    let mut total = 0.0;
    for rank in 1..=n {
        total += 1.0 / (rank as f64).powf(0.99);
        cdf.push(total);
    }
    for c in &mut cdf {
        *c /= total;
    }
    cdf
}

fn random_reads(
    store: &dyn Store,
    name: &str,
    pages: u64,
    options: &OutOfCoreOptions,
) -> Result<Workload, String> {
    // (The table first: a kernel side's limit, set as the store is made
    // cold, counts it with the program.)
    let zipf = (name == "zipf").then(|| zipf_cdf(pages));
    store.cool()?;
    store.expect(Pattern::Random)?;
    // Popular pages scattered over the data set: rank r is page r·m mod n
    // for an odd m coprime with n.
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut spread = (pages / 3) | 1;
    while gcd(spread, pages) != 1 {
        spread += 2;
    }
    let salt = name.len() as u64;
    reads_in_threads(name, options, salt, |rng| {
        let page = match &zipf {
            None => rng.below(pages),
            Some(cdf) => {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let rank = cdf.partition_point(|&c| c < u) as u64;
                (rank.min(pages - 1) * spread) % pages
            }
        };
        let word = page * WORDS + rng.below(WORDS);
        let mut bytes = [0u8; 8];
        store.read(word * 8, &mut bytes)?;
        if u64::from_le_bytes(bytes) != value(options.seed, word) {
            return Err(format!("{name}: word {word} read wrong"));
        }
        Ok(())
    })
}

/// `options.reads` calls of `read` shared among `options.threads` threads
/// at once, each with its own generator (seeded from the run's seed, `salt`
/// and the thread), until done or past the time limit: the workload
/// `name`, timed. A thread's buffers are `read`'s own business (it is
/// called from every thread: `Fn + Sync`).
fn reads_in_threads(
    name: &str,
    options: &OutOfCoreOptions,
    salt: u64,
    read: impl Fn(&mut SplitMix64) -> Result<(), String> + Sync,
) -> Result<Workload, String> {
    let clock = Clock::start(options.limit_s);
    let threads = options.threads.max(1) as u64;
    let outcomes: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (read, clock) = (&read, &clock);
                s.spawn(move || -> Result<u64, String> {
                    let share = options.reads / threads + u64::from(t < options.reads % threads);
                    let mut rng = SplitMix64::new(options.seed ^ salt ^ (t << 32));
                    let mut done = 0;
                    while done < share {
                        if done % 256 == 0 && clock.over() {
                            break;
                        }
                        read(&mut rng)?;
                        done += 1;
                    }
                    Ok(done)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(format!("{name}: a reader panicked")))
            })
            .collect()
    });
    let mut done = 0;
    for outcome in outcomes {
        done += outcome?;
    }
    Ok(clock.result(name, done, options.reads))
}

/// The device alone, as the fill's baseline: `bytes` written in order in
/// 1 MiB transfers, `O_DIRECT`, to a scratch file in `dir`, then
/// `fdatasync`; the file is removed.
fn device_write(dir: &Path, bytes: u64, options: &OutOfCoreOptions) -> Result<Workload, String> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let path = dir.join("out-of-core-device.bin");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    const CHUNK: usize = 1 << 20;
    let mut storage = vec![0x5Au8; CHUNK + PAGE as usize];
    let at = storage.as_ptr().align_offset(PAGE as usize);
    let chunk = &mut storage[at..at + CHUNK];
    let clock = Clock::start(options.limit_s);
    let total = bytes.div_ceil(CHUNK as u64);
    let mut done = 0;
    let result = (|| -> std::io::Result<()> {
        while done < total && !clock.over() {
            file.write_all_at(chunk, done * CHUNK as u64)?;
            done += 1;
        }
        file.sync_data()
    })();
    let workload = clock.result("device-write", done, total);
    drop(file);
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| format!("device write: {e}"))?;
    Ok(workload)
}

/// The VM's drive file at `path`, opened for the device's own reads
/// (`O_DIRECT`, past the page cache).
fn open_direct(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Requests of the device's own sequential read ([`device_read`]): 1 MiB
/// of 4 KiB pages, as the VM's read-ahead clusters.
const DEVICE_READ_PAGES: u64 = 256;
/// Of those, in flight at once (one thread each): as many as the VM's scan
/// keeps at budgets of 64 MiB and more.
const DEVICE_READS_IN_FLIGHT: usize = 4;

/// The device alone, as the scan's baseline: the data set's pages read from
/// the VM's drive file (`on_disk`: each page's index in the data set and its
/// disk page) in order, `O_DIRECT`, in requests of up to 1 MiB of pages
/// consecutive on disk, four in flight, into memory advised huge
/// ([`HugeBuffers`](crate::sys::HugeBuffers)). The first word of every
/// request is checked against the data set's.
fn device_read(
    path: &Path,
    on_disk: &[(u64, u64)],
    options: &OutOfCoreOptions,
) -> Result<Workload, String> {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let file = open_direct(path)?;
    // The requests: runs of pages consecutive both in the data set and on
    // disk, cut at 1 MiB.
    let mut requests: Vec<(u64, u64, u64)> = Vec::new();
    for &(index, disk) in on_disk {
        match requests.last_mut() {
            Some((first, at, count))
                if *first + *count == index
                    && *at + *count == disk
                    && *count < DEVICE_READ_PAGES =>
            {
                *count += 1
            }
            _ => requests.push((index, disk, 1)),
        }
    }
    let mut buffers =
        crate::sys::HugeBuffers::new(DEVICE_READS_IN_FLIGHT, (DEVICE_READ_PAGES * PAGE) as usize)
            .map_err(|e| format!("device read buffers: {e}"))?;
    let total = on_disk.len() as u64;
    let (next, done) = (AtomicUsize::new(0), AtomicU64::new(0));
    let buffers: Vec<&mut [u8]> = buffers.buffers().collect();
    let clock = Clock::start(options.limit_s);
    let outcomes: Vec<Result<(), String>> = std::thread::scope(|s| {
        let readers: Vec<_> = buffers
            .into_iter()
            .map(|buffer| {
                let (file, requests, next, done, clock) = (&file, &requests, &next, &done, &clock);
                s.spawn(move || -> Result<(), String> {
                    while !clock.over() {
                        let Some(&(first, at, count)) =
                            requests.get(next.fetch_add(1, Ordering::Relaxed))
                        else {
                            break;
                        };
                        let bytes = &mut buffer[..(count * PAGE) as usize];
                        file.read_exact_at(bytes, at * PAGE).map_err(|e| {
                            format!("device read of pages {at}..{}: {e}", at + count)
                        })?;
                        let word = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
                        if word != value(options.seed, first * WORDS) {
                            return Err(format!(
                                "device read: disk page {at} holds the wrong word"
                            ));
                        }
                        done.fetch_add(count, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        readers
            .into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| Err("device read: a reader panicked".into()))
            })
            .collect()
    });
    for outcome in outcomes {
        outcome?;
    }
    Ok(clock.result("device-read", done.into_inner(), total))
}

/// The device alone, as the random reads' baseline: `options.reads` reads
/// of 4 KiB at random pages of the data set, `O_DIRECT` from the VM's
/// drive file (`disk_pages`: the data set's pages on it), by as many
/// threads as the random reads use.
fn device_reads(
    path: &Path,
    disk_pages: &[u64],
    options: &OutOfCoreOptions,
) -> Result<Workload, String> {
    use std::os::unix::fs::FileExt;
    let file = open_direct(path)?;
    reads_in_threads("device", options, 0xD15C, |rng| {
        // A page-aligned buffer for direct reads.
        let mut storage = [0u8; 2 * PAGE as usize];
        let at = storage.as_ptr().align_offset(PAGE as usize);
        let buf = &mut storage[at..at + PAGE as usize];
        let page = disk_pages[rng.below(disk_pages.len() as u64) as usize];
        file.read_exact_at(buf, page * PAGE)
            .map_err(|e| format!("device read of page {page}: {e}"))
    })
}

/// External sort of the `keys` words at the start of `store` into the
/// `keys` words after them: sorted runs of `run_words`, then a k-way merge
/// with one page of each run in hand. Checked: order, count, sum, xor.
fn sort(
    store: &dyn Store,
    keys: u64,
    buffer: &mut [u64],
    options: &OutOfCoreOptions,
) -> Result<(Workload, Mark), String> {
    let run_words = buffer.len() as u64;
    // The keys (not timed), then cold.
    let pages = keys / WORDS;
    let seed = options.seed.wrapping_add(1);
    store.expect(Pattern::InOrder)?;
    let (_, sum) = fill(store, pages, seed, f64::INFINITY)?;
    store.cool()?;
    // (Counted from here: the keys' fill is not the sort's.)
    let mark = Mark::now(store);
    let mut in_xor = 0u64;
    for w in 0..keys {
        in_xor ^= value(seed, w);
    }
    let clock = Clock::start(options.limit_s);
    let runs = keys.div_ceil(run_words);
    let total_steps = runs + keys;
    // The buffer of words is read and written as bytes: the run's memory
    // is a quarter of the budget, once.
    for run in 0..runs {
        if clock.over() {
            return Ok((clock.result("sort", run, total_steps), mark));
        }
        let start = run * run_words;
        let len = run_words.min(keys - start) as usize;
        let words = &mut buffer[..len];
        store.read(start * 8, bytemuck::cast_slice_mut(words))?;
        // Little-endian on the store; native here (the same on x86-64).
        for w in words.iter_mut() {
            *w = u64::from_le(*w);
        }
        words.sort_unstable();
        for w in words.iter_mut() {
            *w = w.to_le();
        }
        store.write(start * 8, bytemuck::cast_slice(words))?;
    }
    // The merge reads every run at once: in order within each, at random
    // across them.
    store.expect(Pattern::Random)?;
    struct Cursor {
        next: u64,
        end: u64,
        page: Vec<u64>,
        at: usize,
    }
    let refill = |c: &mut Cursor| -> Result<(), String> {
        let count = WORDS.min(c.end - c.next);
        let mut bytes = vec![0u8; (count * 8) as usize];
        store.read(c.next * 8, &mut bytes)?;
        c.page = bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        c.at = 0;
        c.next += count;
        Ok(())
    };
    let mut cursors = Vec::with_capacity(runs as usize);
    let mut heap = BinaryHeap::with_capacity(runs as usize);
    for run in 0..runs {
        let mut c = Cursor {
            next: run * run_words,
            end: ((run + 1) * run_words).min(keys),
            page: Vec::new(),
            at: 0,
        };
        refill(&mut c)?;
        heap.push(Reverse((c.page[0], run as usize)));
        cursors.push(c);
    }
    let mut out = Vec::with_capacity(PAGE as usize);
    let mut written = 0u64;
    let (mut out_sum, mut out_xor, mut last) = (0u64, 0u64, 0u64);
    while let Some(Reverse((key, run))) = heap.pop() {
        if key < last {
            return Err(format!("sort: output out of order at key {written}"));
        }
        last = key;
        out_sum = out_sum.wrapping_add(key);
        out_xor ^= key;
        out.extend_from_slice(&key.to_le_bytes());
        if out.len() == PAGE as usize {
            store.write((keys + written) * 8 - (PAGE - 8), &out)?;
            out.clear();
            if clock.over() {
                return Ok((clock.result("sort", runs + written + 1, total_steps), mark));
            }
        }
        written += 1;
        let c = &mut cursors[run];
        c.at += 1;
        if c.at == c.page.len() && c.next < c.end {
            refill(c)?;
        }
        if c.at < c.page.len() {
            heap.push(Reverse((c.page[c.at], run)));
        }
    }
    if !out.is_empty() {
        store.write((keys + written) * 8 - out.len() as u64, &out)?;
    }
    store.flush()?;
    if written != keys || out_sum != sum {
        return Err(format!(
            "sort: {written} keys out of {keys}, sum {out_sum:#x} against {sum:#x}"
        ));
    }
    // The xor of the output must match the input's too.
    if in_xor != out_xor {
        return Err("sort: the output's xor differs from the input's".into());
    }
    Ok((clock.result("sort", total_steps, total_steps), mark))
}

/// `keys` words sorted in place by one `sort_unstable` on a plain slice
/// of the store (a program's own sort on memory larger than the budget);
/// `None` where the store gives no slice. The keys are written and made
/// cold first (not timed); the output is checked (order, sum, xor; not
/// timed).
fn sort_in_place(
    store: &dyn Store,
    keys: u64,
    options: &OutOfCoreOptions,
) -> Result<Option<(Workload, Mark)>, String> {
    if !store.has_slices() {
        return Ok(None);
    }
    let pages = keys / WORDS;
    let seed = options.seed.wrapping_add(2);
    // Written in order (advised so), cold, then no advice: the sort's own
    // access pattern is what the pager sees.
    store.expect(Pattern::InOrder)?;
    let (_, sum) = fill(store, pages, seed, f64::INFINITY)?;
    store.cool()?;
    let mark = Mark::now(store);
    let mut in_xor = 0u64;
    for w in 0..keys {
        in_xor ^= value(seed, w);
    }
    store.expect(Pattern::Unsaid)?;
    let clock = Clock::start(f64::INFINITY);
    store.sort_words(0, keys)?;
    let sorted = clock.result("sort-unstable", 1, 1);
    let (mut out_sum, mut out_xor, mut last) = (0u64, 0u64, 0u64);
    for page in 0..pages {
        let mut bad = false;
        store.scan_page(page, &mut |bytes| {
            for chunk in bytes.chunks_exact(8) {
                let key = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                bad |= key < last;
                last = key;
                out_sum = out_sum.wrapping_add(key);
                out_xor ^= key;
            }
        })?;
        if bad {
            return Err(format!("sort-unstable: output out of order in page {page}"));
        }
    }
    if (out_sum, out_xor) != (sum, in_xor) {
        return Err("sort-unstable: the output is not a permutation of the input".into());
    }
    Ok(Some((sorted, mark)))
}

/// A store's device reads when a workload began, to note on it what it
/// sent to the device and the page cache at its end.
struct Mark(Option<u64>);

impl Mark {
    fn now(store: &dyn Store) -> Mark {
        Mark(store.device_reads())
    }

    fn note(self, store: &dyn Store, cgroup: Option<&Path>, workload: &mut Workload) {
        workload.device_reads = self
            .0
            .zip(store.device_reads())
            .map(|(before, after)| after.saturating_sub(before));
        workload.cache_bytes = cgroup.and_then(|procs| MemoryCgroup::cache_at(procs).ok());
        workload.peak_bytes = cgroup.and_then(|procs| MemoryCgroup::peak_at(procs).ok());
    }
}

/// The workloads, in order, on `data` (the data set) and `sort_area` (the
/// sort's input and output).
fn workloads(
    data: &dyn Store,
    sort_area: &dyn Store,
    options: &OutOfCoreOptions,
    device: Option<&dyn Fn() -> Result<Workload, String>>,
    cgroup: Option<&Path>,
) -> Result<Vec<Workload>, String> {
    let pages = options.data_bytes() / PAGE;
    // The sort's run buffer, a quarter of the budget, is held (and
    // written, so that the kernel charges it) from the start: every
    // workload runs with the same memory left for data.
    let keys = options.sort_bytes() / 8;
    let run_words = (options.memory_bytes / 4 / 8).clamp(WORDS, keys);
    let mut run_buffer = vec![1u64; run_words as usize];
    let wanted =
        |name: &str| options.workloads.is_empty() || options.workloads.iter().any(|w| w == name);
    let mut out = Vec::new();
    // The data set, if anything reads it.
    if ["fill", "scan", "uniform", "zipf", "uniform-fit"]
        .iter()
        .any(|w| wanted(w))
    {
        data.expect(Pattern::InOrder)?;
        let mark = Mark::now(data);
        let (mut filled, sum) = fill(data, pages, options.seed, options.limit_s)?;
        mark.note(data, cgroup, &mut filled);
        out.push(filled);
        if wanted("scan") {
            let mark = Mark::now(data);
            let mut scanned = scan(data, pages, sum, options.limit_s)?;
            mark.note(data, cgroup, &mut scanned[0]);
            out.extend(scanned);
        }
        if wanted("uniform")
            && let Some(device) = device
        {
            // The device's own reads first, so that whatever the layers
            // below cache from them helps the reads through the VM, not the
            // baseline.
            out.push(device()?);
        }
        for name in ["uniform", "zipf"] {
            if wanted(name) {
                let mark = Mark::now(data);
                let mut read = random_reads(data, name, pages, options)?;
                mark.note(data, cgroup, &mut read);
                out.push(read);
            }
        }
        if wanted("uniform-fit") {
            // A working set that fits the budget: uniform reads over its
            // first three quarters' worth of pages.
            let fit = (options.memory_bytes / PAGE * 3 / 4).clamp(1, pages);
            let mark = Mark::now(data);
            let mut read = random_reads(data, "uniform-fit", fit, options)?;
            mark.note(data, cgroup, &mut read);
            out.push(read);
        }
        data.cool()?;
    }
    if wanted("sort") {
        let (mut sorted, mark) = sort(sort_area, keys, &mut run_buffer, options)?;
        mark.note(sort_area, cgroup, &mut sorted);
        out.push(sorted);
    }
    if wanted("sort-unstable")
        && let Some((mut sorted, mark)) = sort_in_place(sort_area, keys, options)?
    {
        mark.note(sort_area, cgroup, &mut sorted);
        out.push(sorted);
    }
    Ok(out)
}

/// The kernel side's cgroup limit, set from inside it: what the process
/// holds now, the sort's run buffer and the budget (see the module doc).
/// Returns the limit.
pub fn limit_kernel_side(procs: &Path, options: &OutOfCoreOptions) -> std::io::Result<u64> {
    let now = MemoryCgroup::usage_at(procs)?;
    // The page tables of the mappings (8 bytes per 4 KiB page, charged to
    // the cgroup as they fill) and 1 MiB for the program's own growth
    // (stacks, the Zipf table): without them a small run was killed.
    let mapped = options.data_bytes() + 2 * options.sort_bytes();
    let page_tables = mapped / 512;
    let limit = now + options.memory_bytes / 4 + options.memory_bytes + page_tables + (1 << 20);
    MemoryCgroup::set_limit_at(procs, limit)?;
    // Its peak from here on: a setup that used more before the limit fell
    // (seen once under a loaded test run: a peak above the limit) is not
    // the workloads'.
    MemoryCgroup::reset_peak_at(procs);
    Ok(limit)
}

/// One side, run in this process (a child of [`out_of_core`], already in
/// its cgroup): prints nothing; returns the report.
pub fn run_side(
    side: Side,
    options: &OutOfCoreOptions,
    dir: &Path,
    cgroup: Option<&Path>,
) -> Result<SideReport, ToolError> {
    let check = ToolError::Check;
    let data_bytes = options.data_bytes();
    let sort_bytes = options.sort_bytes();
    match side {
        Side::VmMapped => run_mapped_side(options, dir, cgroup),
        Side::Vm
        | Side::VmTransparent
        | Side::VmNoMove
        | Side::VmNoHuge
        | Side::VmThreadReadAhead
        | Side::VmNoAround => {
            let transparent = side == Side::VmTransparent;
            let pages = (data_bytes + 2 * sort_bytes) / PAGE;
            let path = dir.join(format!("out-of-core-{}.vol", side.name()));
            let drive = FileDrive::open(
                &path,
                &FileDriveOptions::create(PAGE as usize, pages + pages / 64 + 1024),
            )?;
            let cache = drive.cache_policy();
            let volume = Volume::format(
                DiskChannel::new(vec![Box::new(drive)])?,
                &FormatOptions::new(PAGE as usize, pages),
            )?;
            let config = VmConfig {
                transparent,
                move_frames: side != Side::VmNoMove,
                huge_pool_chunks: side != Side::VmNoHuge,
                inline_read_ahead: side != Side::VmThreadReadAhead,
                read_around_free: side != Side::VmNoAround,
                ..VmConfig::new(pages, options.memory_bytes / PAGE)
            };
            let vm = match Vm::new(config, Backing::Volume(volume)) {
                Ok(vm) => vm,
                Err(vm_core::VmError::TransparentUnavailable { reason }) => {
                    let _ = std::fs::remove_file(&path);
                    return Ok(SideReport::failed(
                        side,
                        format!("transparent mode unavailable: {reason}"),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            let data_interval = vm.allocate(data_bytes / PAGE)?;
            let sort_interval = vm.allocate(2 * sort_bytes / PAGE)?;
            // The device's own reads on the same file, same run: the data
            // set's pages on it (their index in the data set, their disk
            // page).
            // (The bench's volume has one drive.)
            let on_disk = || -> Vec<(u64, u64)> {
                data_interval
                    .pages()
                    .filter_map(|p| Some((p.0 - data_interval.page.0, vm.disk_address(p)?)))
                    .filter(|(_, d)| d.drive == disk_channel::DriveId(0))
                    .map(|(i, d)| (i, d.page.0))
                    .collect()
            };
            let disk_pages: Vec<u64> = on_disk().iter().map(|&(_, d)| d).collect();
            let device = || device_reads(&path, &disk_pages, options);
            let workloads = if transparent {
                let store = |interval: Interval| -> Result<TransparentStore<'_>, ToolError> {
                    Ok(TransparentStore {
                        vm: VmStore { vm: &vm, interval },
                        memory: Memory::of_vm(
                            &vm,
                            vm.address_of(interval.page),
                            (interval.count.0 * PAGE) as usize,
                        )?,
                    })
                };
                let (data, sort_area) = (store(data_interval)?, store(sort_interval)?);
                workloads(&data, &sort_area, options, None, cgroup).map_err(check)?
            } else {
                let data = VmStore {
                    vm: &vm,
                    interval: data_interval,
                };
                let sort_area = VmStore {
                    vm: &vm,
                    interval: sort_interval,
                };
                let mut workloads =
                    workloads(&data, &sort_area, options, Some(&device), cgroup).map_err(check)?;
                if workloads.iter().any(|w| w.name == "fill") {
                    // The device's own sequential write of as many bytes,
                    // same file system, same run: the fill's baseline.
                    workloads
                        .push(device_write(dir, options.data_bytes(), options).map_err(check)?);
                }
                if workloads.iter().any(|w| w.name == "scan") {
                    // The device's own sequential read of the data set, same
                    // file, same run: the scan's baseline.
                    // (Where the pages are now: a bad spot may have moved
                    // one since they were allocated.)
                    workloads.push(device_read(&path, &on_disk(), options).map_err(check)?);
                }
                workloads
            };
            let stats = vm.stats();
            drop(vm);
            let _ = std::fs::remove_file(&path);
            Ok(SideReport {
                side,
                workloads,
                vm_stats: Some(stats),
                cache: Some(cache),
                peak_bytes: None,
                limit_bytes: None,
                failure: None,
            })
        }
        Side::Kernel | Side::KernelAdvised => {
            let highest = std::sync::Arc::new([
                std::sync::atomic::AtomicU64::new(0),
                std::sync::atomic::AtomicU64::new(0),
            ]);
            let map = |name: &str, len: u64| -> Result<MapStore, ToolError> {
                let path = dir.join(name);
                let file_error = |source| ToolError::File {
                    path: path.clone(),
                    source,
                };
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(file_error)?;
                file.set_len(len).map_err(file_error)?;
                let mapping = FileMapping::new(&file, len as usize).map_err(file_error)?;
                Ok(MapStore {
                    file,
                    map: mapping,
                    advised: side == Side::KernelAdvised,
                    fence: cgroup.map(|procs| Fence {
                        procs: procs.to_path_buf(),
                        budget: options.memory_bytes,
                        tables: len / 512,
                        highest: highest.clone(),
                    }),
                })
            };
            let data = map("out-of-core-data.bin", data_bytes)?;
            let sort_area = map("out-of-core-sort.bin", 2 * sort_bytes)?;
            let workloads = workloads(&data, &sort_area, options, None, cgroup).map_err(check)?;
            drop((data, sort_area));
            let _ = std::fs::remove_file(dir.join("out-of-core-data.bin"));
            let _ = std::fs::remove_file(dir.join("out-of-core-sort.bin"));
            // (The highest limit its fences set, and the highest peak they
            // started over; the caller adds the limit set when it joined
            // its cgroup, and the peak since the last fence.)
            let [limit, peak] = highest
                .each_ref()
                .map(|h| h.load(std::sync::atomic::Ordering::Relaxed));
            Ok(SideReport {
                side,
                workloads,
                vm_stats: None,
                cache: None,
                peak_bytes: (peak > 0).then_some(peak),
                limit_bytes: (limit > 0).then_some(limit),
                failure: None,
            })
        }
    }
}

/// What an interrupted run must undo (the program's signal handler does it,
/// in this order: processes, then directories, then cgroups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Kill this child process.
    Kill(u32),
    /// Remove this directory and everything in it.
    RemoveDir(PathBuf),
    /// Remove this cgroup (once its processes are gone).
    RemoveCgroup(PathBuf),
    /// This child has been waited for: no longer kill it (its process id
    /// may belong to another process by then).
    Reaped(u32),
}

/// Removes the files in `dir` (the run's own folder): what a side left
/// there — a kernel side killed by its cgroup leaves its data files, and
/// their dirty pages would be written back while the next side runs.
fn remove_files_in(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Runs `bench out-of-core`: each side in a child process (`program`, the
/// `cedarvm` binary, as `bench out-of-core-side`) inside its memory cgroup.
/// The sides' files go to a folder of the run's own (in `options.dir`, or
/// the temporary folder), removed at the end, or by `on_interrupt`'s
/// cleanup: files of the user's that happen to have the sides' names are
/// never touched. `interrupted` says whether the run was interrupted: no
/// side starts after that.
pub fn out_of_core(
    program: &Path,
    options: &OutOfCoreOptions,
    on_interrupt: &dyn Fn(Cleanup),
    interrupted: &dyn Fn() -> bool,
) -> Result<OutOfCoreReport, ToolError> {
    let parent = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    if !parent.is_dir() {
        return Err(ToolError::Usage(format!(
            "--dir {}: not a directory",
            parent.display()
        )));
    }
    let temp = tempfile::Builder::new()
        .prefix("cedarvm-out-of-core-")
        .tempdir_in(&parent)
        .map_err(|source| ToolError::File {
            path: parent.clone(),
            source,
        })?;
    let dir = temp.path();
    on_interrupt(Cleanup::RemoveDir(temp.path().to_path_buf()));
    let sides: Vec<Side> = if options.sides.is_empty() {
        vec![
            Side::Vm,
            Side::VmTransparent,
            Side::KernelAdvised,
            Side::Kernel,
        ]
    } else {
        options
            .sides
            .iter()
            .map(|name| {
                Side::parse(name).ok_or_else(|| ToolError::Usage(format!("no side {name}")))
            })
            .collect::<Result<_, _>>()?
    };
    let rounds = options.rounds.max(1);
    let bar = progress((sides.len() * rounds) as u64, "out-of-core");
    let mut all_rounds: Vec<Round> = Vec::new();
    let mut cgroup_note = None;
    for round in 0..rounds {
        let order = round_order(&sides, round);
        let mut reports = Vec::new();
        for &side in &order {
            if interrupted() {
                return Err(ToolError::Failed("interrupted".into()));
            }
            // The kernel's child lowers its limit once it is in (see the
            // module doc).
            let limit = options.memory_bytes + options.memory_bytes / 4 + SLACK_BYTES;
            let name = format!(
                "cedarvm-out-of-core-{}-{}-{}",
                std::process::id(),
                round + 1,
                side.name()
            );
            let cgroup = match MemoryCgroup::create(&name, limit) {
                Ok(cgroup) => Some(cgroup),
                Err(reason) => {
                    cgroup_note = Some(reason);
                    None
                }
            };
            let mut command = std::process::Command::new(program);
            command
                .args(["bench", "out-of-core-side", "--side", side.name()])
                .args(["--memory", &options.memory_bytes.to_string()])
                .args(["--reads", &options.reads.to_string()])
                .args(["--limit-s", &options.limit_s.to_string()])
                .args(["--seed", &options.seed.to_string()])
                .args(["--workloads", &options.workloads.join(",")])
                .args(["--threads", &options.threads.to_string()])
                .arg("--dir")
                .arg(dir)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if let Some(cgroup) = &cgroup {
                command.arg("--cgroup-procs").arg(cgroup.procs());
            }
            let child = command.spawn().map_err(|source| ToolError::File {
                path: program.to_path_buf(),
                source,
            })?;
            // Interrupted, the child is killed first, then what it used goes.
            on_interrupt(Cleanup::Kill(child.id()));
            if let Some(cgroup) = &cgroup {
                on_interrupt(Cleanup::RemoveCgroup(cgroup.dir().to_path_buf()));
            }
            let pid = child.id();
            let output = child.wait_with_output().map_err(|source| ToolError::File {
                path: program.to_path_buf(),
                source,
            })?;
            on_interrupt(Cleanup::Reaped(pid));
            remove_files_in(dir);
            use std::os::unix::process::ExitStatusExt;
            let killed = output.status.signal() == Some(9) && cgroup.is_some();
            // The kernel's sides may be killed by their cgroup (reported as
            // such); any other failure, or the VM's side killed, fails the run.
            let tolerated = killed && matches!(side, Side::Kernel | Side::KernelAdvised);
            if !output.status.success() && !tolerated {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let mut reason = stderr
                    .trim()
                    .trim_start_matches("cedarvm: error: ")
                    .to_string();
                if killed && reason.is_empty() {
                    reason = "killed by its memory cgroup's OOM killer: is --dir on a memory file \
                              system (tmpfs, /dev/shm)? Files there are charged to the side's memory; \
                              give a folder on a disk"
                        .into();
                }
                return Err(ToolError::Failed(format!(
                    "the {} side of the run failed ({}): {reason}",
                    side.name(),
                    output.status
                )));
            }
            let mut report: SideReport = if killed {
                SideReport::failed(side, "killed by its cgroup's OOM killer".into())
            } else {
                serde_json::from_slice(&output.stdout).map_err(|e| {
                    ToolError::Check(format!("the {} side's report: {e}", side.name()))
                })?
            };
            if let Some(cgroup) = &cgroup {
                // The peak since the side's last limit was set, and the
                // peaks before it (a kernel side sets its limit as each
                // workload begins: its own report has them); the highest
                // limit it ran under (its own report's), or the cgroup's
                // now.
                let workloads = report.workloads.iter().filter_map(|w| w.peak_bytes);
                report.peak_bytes = cgroup
                    .peak()
                    .ok()
                    .into_iter()
                    .chain(report.peak_bytes)
                    .chain(workloads)
                    .max();
                report.limit_bytes = report.limit_bytes.or(cgroup.limit().ok()).or(Some(limit));
            }
            reports.push(report);
            bar.inc(1);
        }
        all_rounds.push(Round {
            order,
            sides: reports,
        });
    }
    bar.finish_and_clear();
    let (reports, rounds) = match all_rounds.len() {
        1 => (
            all_rounds.pop().map(|r| r.sides).unwrap_or_default(),
            Vec::new(),
        ),
        _ => (medians_of(&sides, &all_rounds), all_rounds),
    };
    Ok(OutOfCoreReport {
        options: options.clone(),
        sides: reports,
        cgroup_note,
        rounds,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

impl OutOfCoreReport {
    fn side(&self, side: Side) -> Option<&SideReport> {
        self.sides.iter().find(|s| s.side == side)
    }

    fn seconds(&self, side: Side, workload: &str) -> Option<&Workload> {
        self.side(side)?
            .workloads
            .iter()
            .find(|w| w.name == workload)
    }

    /// Side `a`'s time over side `b`'s for `workload` (projected, where a
    /// workload stopped early): with several rounds, the median of each
    /// round's own ratio, then the lowest and the highest; with one, that
    /// ratio three times. `None` where either did not run it.
    pub fn ratio(&self, a: Side, b: Side, workload: &str) -> Option<(f64, f64, f64)> {
        self.ratio_to_faster(a, &[b], workload)
    }

    /// As [`OutOfCoreReport::ratio`], over the faster of the sides `bs`
    /// that ran it in each round (the best kernel side of each round).
    pub fn ratio_to_faster(&self, a: Side, bs: &[Side], workload: &str) -> Option<(f64, f64, f64)> {
        self.per_round(|sides| {
            let time = |side: Side| time_of(sides, side, workload);
            let faster = bs.iter().filter_map(|&b| time(b)).reduce(f64::min)?;
            Some(time(a)? / faster)
        })
    }

    /// Workload `a`'s time over workload `b`'s on the same side (the fill
    /// against the device's own write, say): with several rounds, the
    /// median of each round's own ratio.
    pub fn ratio_within(&self, side: Side, a: &str, b: &str) -> Option<f64> {
        self.per_round(|sides| Some(time_of(sides, side, a)? / time_of(sides, side, b)?))
            .map(|(median, ..)| median)
    }

    /// `of` over each round's reports — the median, the lowest and the
    /// highest — or, with one round, over its reports (three times).
    fn per_round(&self, of: impl Fn(&[SideReport]) -> Option<f64>) -> Option<(f64, f64, f64)> {
        if self.rounds.is_empty() {
            return of(&self.sides).map(|r| (r, r, r));
        }
        let values: Vec<f64> = self.rounds.iter().filter_map(|r| of(&r.sides)).collect();
        let low = values.iter().copied().reduce(f64::min)?;
        let high = values.iter().copied().reduce(f64::max)?;
        Some((median(&values)?, low, high))
    }

    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let o = &self.options;
        let sorts = self
            .sides
            .iter()
            .flat_map(|s| &s.workloads)
            .any(|w| w.name.starts_with("sort"));
        let mut t = format!(
            "budget {:.0} MiB, data set {:.0} MiB,{} {} random reads by {} thread(s)\n",
            mib(o.memory_bytes),
            mib(o.data_bytes()),
            if sorts {
                format!(" sort {:.0} MiB,", mib(o.sort_bytes()))
            } else {
                String::new()
            },
            o.reads,
            o.threads
        );
        if let Some(note) = &self.cgroup_note {
            t.push_str(&format!("no cgroup: {note}; peak memory not measured\n"));
        }
        if self.rounds.len() > 1 {
            t.push_str(&format!(
                "{} rounds, the sides' order changed each round (each side in every place and \
                 after every other side equally often over {} rounds): times are each side's \
                 medians, ratios the medians of each round's own ratio; the VM's statistics are \
                 its first round's\n",
                self.rounds.len(),
                rounds_to_balance(self.rounds.first().map_or(0, |r| r.order.len()))
            ));
            let balance = rounds_to_balance(self.rounds.first().map_or(0, |r| r.order.len()));
            if !self.rounds.len().is_multiple_of(balance) {
                t.push_str(&format!(
                    "(not balanced: {} rounds are not a multiple of {balance}, so some sides ran \
                     in some places, or after some sides, more often than others)\n",
                    self.rounds.len()
                ));
            }
            for s in &self.sides {
                if let Some(failure) = &s.failure {
                    t.push_str(&format!("{}: {failure}\n", s.side.name()));
                }
            }
        }
        // The VM's own sides' table, unless only the file-mapping side ran
        // beside the kernel's (its section below says it all).
        let main_table = self.side(Side::Vm).is_some()
            || self.side(Side::VmTransparent).is_some()
            || self.side(Side::VmMapped).is_none();
        if main_table {
            t.push_str(&format!(
                "\n{:<13} {:>9} {:>11} {:>10} {:>9} {:>10} {:>10} {:>9} {:>10}\n",
                "workload",
                "vm s",
                "vm-transp s",
                "advised s",
                "kernel s",
                "vm/adv",
                "transp/adv",
                "transp/vm",
                "vm/kernel"
            ));
        }
        let failed = |side: Side| self.side(side).is_some_and(|s| s.failure.is_some());
        let cell_of = |w: Option<&Workload>, failed: bool| match w {
            Some(w) if w.finished => format!("{:.2}", w.seconds),
            Some(w) => format!("~{:.0}*", w.projected_s()),
            None if failed => "failed".into(),
            None => "-".into(),
        };
        let cell = |w: Option<&Workload>| cell_of(w, false);
        let ratio = |a: Side, b: Side, name: &str| match self.ratio(a, b, name) {
            // Against a thrashing kernel the ratio is tiny: say how tiny
            // (1/N), not "0.00×".
            Some((r, ..)) if r < 0.01 => format!("1/{:.0}", 1.0 / r),
            Some((r, ..)) => format!("{r:.2}×"),
            None => "-".into(),
        };
        if main_table {
            for name in WORKLOADS {
                let ran = self
                    .sides
                    .iter()
                    .any(|s| s.workloads.iter().any(|w| w.name == name));
                let selected = self.options.workloads.is_empty()
                    || self.options.workloads.iter().any(|w| w == name);
                if !ran && !selected {
                    continue;
                }
                let vm = self.seconds(Side::Vm, name);
                let transparent = self.seconds(Side::VmTransparent, name);
                let advised = self.seconds(Side::KernelAdvised, name);
                let plain = self.seconds(Side::Kernel, name);
                t.push_str(&format!(
                    "{:<13} {:>9} {:>11} {:>10} {:>9} {:>10} {:>10} {:>9} {:>10}\n",
                    name,
                    cell_of(vm, failed(Side::Vm)),
                    cell_of(transparent, failed(Side::VmTransparent)),
                    cell_of(advised, failed(Side::KernelAdvised)),
                    cell_of(plain, failed(Side::Kernel)),
                    ratio(Side::Vm, Side::KernelAdvised, name),
                    ratio(Side::VmTransparent, Side::KernelAdvised, name),
                    ratio(Side::VmTransparent, Side::Vm, name),
                    ratio(Side::Vm, Side::Kernel, name)
                ));
            }
        }
        if self.side(Side::VmMapped).is_some() {
            // Columns only for the kernel's sides that ran.
            let kernels: Vec<(Side, &str, &str)> = [
                (Side::KernelAdvised, "advised s", "mapped/adv"),
                (Side::Kernel, "kernel s", "mapped/ker"),
            ]
            .into_iter()
            .filter(|&(side, ..)| self.side(side).is_some())
            .collect();
            let mut head = format!("\n{:<13} {:>9}", "file mapping", "mapped s");
            for &(_, seconds, _) in &kernels {
                head.push_str(&format!(" {seconds:>10}"));
            }
            for &(_, _, ratio_name) in &kernels {
                head.push_str(&format!(" {ratio_name:>10}"));
            }
            t.push_str(&head);
            t.push('\n');
            for name in ["fill", "scan", "uniform", "zipf", "uniform-fit"] {
                let mapped = self.seconds(Side::VmMapped, name);
                if mapped.is_none() {
                    continue;
                }
                let mut row = format!(
                    "{:<13} {:>9}",
                    name,
                    cell_of(mapped, failed(Side::VmMapped))
                );
                for &(side, ..) in &kernels {
                    row.push_str(&format!(
                        " {:>10}",
                        cell_of(self.seconds(side, name), failed(side))
                    ));
                }
                for &(side, ..) in &kernels {
                    row.push_str(&format!(" {:>10}", ratio(Side::VmMapped, side, name)));
                }
                t.push_str(&row);
                t.push('\n');
            }
            let cache = self
                .side(Side::VmMapped)
                .and_then(|s| s.cache)
                .map_or("?", |c| c.name());
            t.push_str(&format!(
                "mapped: the VM's map_file of the data set's file (shared; page cache: {cache}), \
                 read through the copying API without advice, so it reads around faults while \
                 that pays — compare it with the kernel without advice.\n  kernel: the kernel's \
                 shared mmap of the same file. uniform-fit: random reads over a working set of \
                 3/4 of the budget.\n"
            ));
        }
        // The vm side against itself with a part of the frame pool off.
        let variants = [
            (
                Side::VmNoMove,
                "frame moves",
                "vm/no-move",
                "vm-no-move: the vm side with VmConfig::move_frames off (each transfer into fresh \
                 memory, each eviction given back by madvise)",
            ),
            (
                Side::VmNoHuge,
                "huge chunks",
                "vm/no-huge",
                "vm-no-huge: the vm side with VmConfig::huge_pool_chunks off (the frame pool's \
                 memory committed a page at a time)",
            ),
            (
                Side::VmThreadReadAhead,
                "read-ahead",
                "vm/thread",
                "vm-thread-read-ahead: the vm side with VmConfig::inline_read_ahead off (the \
                 read-ahead thread reads the clusters and its finisher moves them in)",
            ),
            (
                Side::VmNoAround,
                "read-around",
                "vm/no-around",
                "vm-no-around: the vm side with VmConfig::read_around_free off (a fault reads \
                 its own page alone, however much memory is free)",
            ),
        ];
        for (variant, title, ratio_name, note) in variants {
            if self.side(variant).is_none() {
                continue;
            }
            let column = format!("{} s", variant.name());
            t.push_str(&format!(
                "\n{title:<13} {:>9} {column:>12} {ratio_name:>11}\n",
                "vm s"
            ));
            for name in WORKLOADS {
                let plain = self.seconds(variant, name);
                if plain.is_none() {
                    continue;
                }
                let vm = self.seconds(Side::Vm, name);
                t.push_str(&format!(
                    "{:<13} {:>9} {:>12} {:>11}\n",
                    name,
                    cell_of(vm, failed(Side::Vm)),
                    cell_of(plain, failed(variant)),
                    ratio(Side::Vm, variant, name)
                ));
            }
            t.push_str(note);
            t.push_str(&format!(
                "\n  {ratio_name} under 1x: the vm side was faster; times of a tenth of a \
                 second vary by tens of percent from run to run (repeat, or use --scale)"
            ));
            if let Some(s) = self.side(Side::Vm).and_then(|s| s.vm_stats.as_ref()) {
                t.push_str(&format!(
                    "\n  vm (all its workloads): moved {} pages from its frame pool to their \
                     addresses and {} evicted pages into it; committed 2 MiB chunks as huge \
                     pages {} times",
                    s.frames_moved_in, s.frames_moved_out, s.frame_pool_huge_chunks
                ));
                if variant == Side::VmNoHuge && s.frame_pool_huge_chunks == 0 {
                    t.push_str(&format!(
                        "\n  (no chunk was committed, so both sides ran the same code: {})",
                        if s.frame_pool_pages < 512 {
                            "the pool is smaller than a chunk — a budget of 16 MiB or more has \
                             chunks"
                        } else {
                            "the kernel gives no huge pages here, or no run needed one"
                        }
                    ));
                }
            }
            t.push('\n');
        }
        // The kernel's sides: the VM is set against the faster of them.
        let kernels = [Side::KernelAdvised, Side::Kernel];
        if main_table && self.rounds.len() > 1 {
            // How far the rounds' own ratios spread; and the VM against
            // the faster kernel side of each round.
            let mut line = |title: &str, cell: &dyn Fn(&str) -> Option<String>| {
                let cells: Vec<String> = WORKLOADS.iter().filter_map(|&name| cell(name)).collect();
                if !cells.is_empty() {
                    t.push_str(&format!("{title}: {}\n", cells.join(", ")));
                }
            };
            line("vm/adv, lowest–highest of the rounds", &|name| {
                let (_, low, high) = self.ratio(Side::Vm, Side::KernelAdvised, name)?;
                Some(format!("{name} {low:.2}–{high:.2}×"))
            });
            line(
                "vm / the faster kernel side of each round, median (lowest–highest)",
                &|name| {
                    let (median, low, high) = (name != "fill")
                        .then(|| self.ratio_to_faster(Side::Vm, &kernels, name))??;
                    Some(format!("{name} {median:.2}× ({low:.2}–{high:.2})"))
                },
            );
        }
        if main_table {
            // The scan in its two parts, against the faster kernel side.
            let parts: Vec<String> = SCAN_PARTS
                .iter()
                .filter_map(|&name| {
                    let vm = self.seconds(Side::Vm, name)?.projected_s();
                    let (median, low, high) = self.ratio_to_faster(Side::Vm, &kernels, name)?;
                    let spread = if self.rounds.len() > 1 {
                        format!(" ({low:.2}–{high:.2})")
                    } else {
                        String::new()
                    };
                    Some(format!("{name} vm {vm:.3} s, {median:.2}×{spread}"))
                })
                .collect();
            if !parts.is_empty() {
                t.push_str(&format!(
                    "scan in parts, vm / the faster kernel side{}: {} (start: the reader's time \
                     over the first quarter, a budget's worth begun with memory empty; rest: over \
                     the other three quarters)\n",
                    if self.rounds.len() > 1 {
                        " of each round, median (lowest–highest)"
                    } else {
                        ""
                    },
                    parts.join("; ")
                ));
            }
            t.push_str(
                "vm: the copying API; vm-transp: the same VM in transparent mode, plain loads and stores \
                 (sort-unstable: one sort_unstable on a view; the copying API has no slice to give it)\n",
            );
        }
        // The VM's sequential work against the device's own, same run.
        let baselines = [
            (
                "fill",
                "device-write",
                "the device's own sequential write (O_DIRECT, 1 MiB, same run)".to_string(),
            ),
            (
                "scan",
                "device-read",
                format!(
                    "the device's own sequential read (O_DIRECT, 1 MiB requests, \
                     {DEVICE_READS_IN_FLIGHT} in flight, same file, same run)"
                ),
            ),
        ];
        for (work, device, what) in baselines {
            if let (Some(through), Some(alone)) =
                (self.seconds(Side::Vm, work), self.seconds(Side::Vm, device))
            {
                let rate = |w: &Workload| o.data_bytes() as f64 * w.fraction_done / w.seconds / 1e6;
                t.push_str(&format!(
                    "{work} through the VM: {:.0} MB/s; {what}: {:.0} MB/s ({:.0}%)\n",
                    rate(through),
                    rate(alone),
                    100.0
                        * self
                            .ratio_within(Side::Vm, device, work)
                            .unwrap_or(f64::NAN)
                ));
            }
        }
        if let Some(device) = self.seconds(Side::Vm, "device") {
            let per_read = |w: &Workload| w.seconds * 1e6 / (w.fraction_done * o.reads as f64);
            let iops = o.reads as f64 * device.fraction_done / device.seconds;
            t.push_str(&format!(
                "device    {:>12}   (the same reads' pages, O_DIRECT pread, {} thread(s): {:.0} µs a read, {:.0} reads/s)\n",
                cell(Some(device)),
                o.threads,
                per_read(device),
                iops
            ));
            if let Some(uniform) = self.seconds(Side::Vm, "uniform") {
                t.push_str(&format!(
                    "uniform through the VM: {:.0} µs a read, {:.0} reads/s ({:.2}× the device's time)\n",
                    per_read(uniform),
                    o.reads as f64 * uniform.fraction_done / uniform.seconds,
                    self.ratio_within(Side::Vm, "uniform", "device")
                        .unwrap_or(f64::NAN)
                ));
            }
        }
        // Where the random reads' time goes: each side's reads from the
        // device, and the page cache the kernel sides held for data.
        for name in ["uniform", "zipf", "uniform-fit"] {
            let of = |f: &dyn Fn(&SideReport, &Workload) -> Option<String>| -> Vec<String> {
                self.sides
                    .iter()
                    .filter_map(|s| f(s, s.workloads.iter().find(|w| w.name == name)?))
                    .collect()
            };
            let reads = of(&|s, w| Some(format!("{} {}", s.side.name(), w.device_reads?)));
            let caches = of(&|s, w| {
                let kernel = matches!(s.side, Side::Kernel | Side::KernelAdvised);
                let cache = w.cache_bytes.filter(|_| kernel)?;
                Some(format!("{} {:.1} MiB", s.side.name(), mib(cache)))
            });
            if reads.is_empty() {
                continue;
            }
            t.push_str(&format!(
                "{name}: reads sent to the device (a kernel side's major faults, its reads under MADV_RANDOM): {}",
                reads.join(", ")
            ));
            if !caches.is_empty() {
                t.push_str(&format!(
                    "; page cache at its end: {} (budget {:.0} MiB)",
                    caches.join(", "),
                    mib(o.memory_bytes)
                ));
            }
            t.push('\n');
        }
        if self
            .sides
            .iter()
            .flat_map(|s| &s.workloads)
            .any(|w| !w.finished)
        {
            t.push_str(&format!(
                "* stopped at the {:.0} s limit; projected from the share done\n",
                o.limit_s
            ));
        }
        t.push_str(
            "ratios (x/y): the first side's time over the second's; under 1x the first was \
             faster\n",
        );
        let shortest = self
            .sides
            .iter()
            .flat_map(|s| &s.workloads)
            .filter(|w| !w.name.starts_with("device"))
            .map(|w| w.seconds)
            .fold(f64::INFINITY, f64::min);
        if shortest < 0.05 {
            t.push_str(
                "  (times under a twentieth of a second vary by tens of percent from run to run \
                 on a shared machine: repeat, or use --scale)\n",
            );
        }
        t.push_str("\nside             cgroup limit   peak memory\n");
        for s in &self.sides {
            let limit = s
                .limit_bytes
                .map_or("-".into(), |b| format!("{:.1} MiB", mib(b)));
            let peak = s
                .peak_bytes
                .map_or("-".into(), |b| format!("{:.1} MiB", mib(b)));
            let failure = s.failure.as_deref().unwrap_or("");
            let line = format!(
                "{:<16} {:>12} {:>13}  {failure}",
                s.side.name(),
                limit,
                peak
            );
            t.push_str(line.trim_end());
            t.push('\n');
        }
        if self.cgroup_note.is_none() {
            t.push_str(
                "  a VM side's limit: the budget, a quarter of it (the sort's run buffer) and \
                 32 MiB; its peak adds to the budget's pages the frame pool (up to 8 MiB), the \
                 program and its buffers. A kernel side's limit: the budget and what its program \
                 holds besides, set again as each workload makes its data cold (the highest shown).\n",
            );
        }
        if let Some(stats) = self.side(Side::Vm).and_then(|s| s.vm_stats.as_ref()) {
            t.push_str(&format!(
                "\nvm: {} faults, {} page-ins in {} reads ({} clustered, {} of those read ahead, {} read around a fault into free memory; {} read in the ring and met by the thread that started them, at most {} in flight at once), {} page-outs in {} writes, drive {}\n",
                stats.faults,
                stats.page_ins,
                stats.disk_reads,
                stats.cluster_reads,
                stats.async_read_aheads,
                stats.free_read_arounds,
                stats.inline_reads - stats.inline_reads_unmet,
                stats.inline_reads_in_flight_high,
                stats.page_outs,
                stats.disk_writes,
                self.side(Side::Vm)
                    .and_then(|s| s.cache)
                    .map_or("-".to_string(), |c| c.name().to_string())
            ));
        }
        t
    }

    /// The report as an SVG bar chart: per workload, each side's time as a
    /// share of the slowest side's (labelled in seconds).
    pub fn svg(&self) -> String {
        let names = WORKLOADS;
        let sides = [
            (Side::Vm, "#2b6cb0"),
            (Side::VmTransparent, "#805ad5"),
            (Side::KernelAdvised, "#38a169"),
            (Side::Kernel, "#c05621"),
        ];
        let (w, h, left, top, group) = (940.0, 400.0, 60.0, 40.0, 150.0);
        let plot_h = 240.0;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
             <text x=\"{left}\" y=\"20\" font-size=\"14\">out-of-core: time per workload, share of the slowest side (budget {:.0} MiB)</text>\n",
            mib(self.options.memory_bytes)
        );
        for (g, name) in names.iter().enumerate() {
            let x0 = left + g as f64 * group;
            let worst = sides
                .iter()
                .filter_map(|(side, _)| self.seconds(*side, name))
                .map(Workload::projected_s)
                .fold(0.0, f64::max);
            for (k, (side, color)) in sides.iter().enumerate() {
                let Some(wl) = self.seconds(*side, name) else {
                    continue;
                };
                let share = if worst > 0.0 {
                    wl.projected_s() / worst
                } else {
                    0.0
                };
                let bar_h = share * plot_h;
                let x = x0 + k as f64 * 36.0;
                let y = top + plot_h - bar_h;
                let label = if wl.finished {
                    format!("{:.2}s", wl.seconds)
                } else {
                    format!("~{:.0}s*", wl.projected_s())
                };
                s.push_str(&format!(
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"30\" height=\"{bar_h:.1}\" fill=\"{color}\"/>\n\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\n",
                    x + 15.0,
                    y - 4.0
                ));
            }
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{name}</text>\n",
                x0 + 70.0,
                top + plot_h + 16.0
            ));
        }
        for (k, (side, color)) in sides.iter().enumerate() {
            let y = top + plot_h + 40.0 + k as f64 * 16.0;
            s.push_str(&format!(
                "<rect x=\"{left}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
                y - 10.0,
                left + 18.0,
                y,
                side.name()
            ));
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel side's device reads are its major faults: a read of a
    /// page of a file mapping, dropped from the page cache, is one, in the
    /// process's count and in the reading thread's (other tests' threads
    /// add to the process's, not to this thread's).
    #[test]
    fn a_read_of_a_cold_mapped_page_counts_as_a_major_fault() {
        // (On the crate's own disk: a tmpfs file never leaves memory.)
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        // (`f_type`'s integer type differs between targets.)
        #[allow(clippy::unnecessary_cast)]
        let tmpfs = rustix::fs::statfs(dir.path()).is_ok_and(|s| s.f_type as i64 == TMPFS_MAGIC);
        if tmpfs {
            println!(
                "skipped: {} is on tmpfs, whose pages never leave memory",
                dir.path().display()
            );
            return;
        }
        let path = dir.path().join("cold.bin");
        std::fs::write(&path, vec![7u8; 16 * PAGE as usize]).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        file.sync_all().unwrap();
        let store = MapStore {
            map: FileMapping::new(&file, 16 * PAGE as usize).unwrap(),
            file,
            advised: true,
            fence: None,
        };
        store.cool().unwrap();
        store.expect(Pattern::Random).unwrap();
        let thread = || major_faults_in("/proc/thread-self/stat").expect("a stat file");
        let before = (store.device_reads().expect("/proc/self/stat"), thread());
        let mut byte = [0u8; 1];
        store.read(5 * PAGE, &mut byte).unwrap();
        let after = (store.device_reads().unwrap(), thread());
        assert_eq!(byte, [7]);
        assert!(
            after.0 > before.0,
            "process: {before:?} major faults before, {after:?} after"
        );
        assert_eq!(
            after.1,
            before.1 + 1,
            "thread: {before:?} before, {after:?} after"
        );
    }

    fn side(side: Side, scans: f64, peak: Option<u64>, failure: Option<&str>) -> SideReport {
        SideReport {
            side,
            workloads: vec![
                Workload {
                    name: "fill".into(),
                    seconds: 1.0,
                    finished: true,
                    fraction_done: 1.0,
                    ..Workload::default()
                },
                Workload {
                    name: "scan".into(),
                    seconds: scans,
                    finished: failure.is_none(),
                    fraction_done: if failure.is_none() { 1.0 } else { 0.5 },
                    ..Workload::default()
                },
            ],
            vm_stats: None,
            cache: None,
            peak_bytes: peak,
            limit_bytes: Some(100),
            failure: failure.map(String::from),
        }
    }

    #[test]
    fn every_side_runs_in_every_place_and_after_every_other_equally_often() {
        let all = Side::ALL;
        for n in 1..=all.len() {
            let sides = &all[..n];
            let rounds = rounds_to_balance(n);
            let orders: Vec<Vec<Side>> = (0..rounds).map(|r| round_order(sides, r)).collect();
            assert_eq!(orders[0], sides, "the first round is the order asked for");
            for order in &orders {
                let mut sorted = order.clone();
                sorted.sort_by_key(|s| s.name());
                let mut expected = sides.to_vec();
                expected.sort_by_key(|s| s.name());
                assert_eq!(sorted, expected, "{n} sides: every side once a round");
            }
            // Every side in every place equally often.
            for place in 0..n {
                for &side in sides {
                    let times = orders.iter().filter(|o| o[place] == side).count();
                    assert_eq!(times, rounds / n, "{n} sides: {side:?} in place {place}");
                }
            }
            // Every side right after every other equally often.
            for &a in sides {
                for &b in sides.iter().filter(|&&b| b != a) {
                    let times = orders
                        .iter()
                        .flat_map(|o| o.windows(2))
                        .filter(|w| w[0] == a && w[1] == b)
                        .count();
                    assert_eq!(times, rounds / n, "{n} sides: {b:?} after {a:?}");
                }
            }
            assert_eq!(round_order(sides, rounds + 1), orders[1 % rounds]);
        }
        assert!(round_order(&[], 3).is_empty());
    }

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[0.7]), Some(0.7));
    }

    #[test]
    fn a_side_over_rounds_takes_medians_the_highest_peak_and_its_failures() {
        // A round killed by its cgroup reports no workloads.
        let mut killed = side(Side::Kernel, 0.0, Some(30), Some("killed"));
        killed.workloads.clear();
        let rounds = [
            side(Side::Kernel, 0.5, Some(10), None),
            killed,
            side(Side::Kernel, 0.4, None, None),
            side(Side::Kernel, 0.2, Some(20), None),
        ];
        let refs: Vec<&SideReport> = rounds.iter().collect();
        let m = median_side(Side::Kernel, &refs);
        let names: Vec<&str> = m.workloads.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["fill", "scan"]);
        assert_eq!(
            m.workloads[1].seconds, 0.4,
            "the median of the three that ran"
        );
        assert!(m.workloads[1].finished);
        assert_eq!(m.peak_bytes, Some(30));
        assert_eq!(
            m.failure.as_deref(),
            Some("killed (in round 2 of 4; its times are the other rounds')")
        );
    }

    #[test]
    fn a_workload_stopped_in_some_rounds_reports_the_median_projection() {
        // Scans of 1 s (finished), 1 s for a quarter (projected 4 s), 1.5 s
        // for half (projected 3 s), 2 s (finished): the median projection
        // is 2.5 s; the median of the times over the median share done
        // would be 1.25 / 0.99.
        let scan = |seconds: f64, fraction_done: f64| {
            let mut s = side(Side::Kernel, seconds, None, None);
            s.workloads[1].fraction_done = fraction_done;
            s.workloads[1].finished = fraction_done == 1.0;
            s
        };
        let rounds = [
            scan(1.0, 1.0),
            scan(1.0, 0.25),
            scan(1.5, 0.5),
            scan(2.0, 1.0),
        ];
        let refs: Vec<&SideReport> = rounds.iter().collect();
        let m = median_side(Side::Kernel, &refs);
        let w = &m.workloads[1];
        assert!(!w.finished);
        assert!(w.fraction_done < 1.0, "{w:?}");
        assert!((w.projected_s() - 2.5).abs() < 1e-9, "{w:?}");
        let all_finished = [scan(1.0, 1.0), scan(3.0, 1.0), scan(2.0, 1.0)];
        let refs: Vec<&SideReport> = all_finished.iter().collect();
        let w = median_side(Side::Kernel, &refs).workloads[1].clone();
        assert_eq!((w.seconds, w.fraction_done, w.finished), (2.0, 1.0, true));
    }

    #[test]
    fn ratios_over_rounds_are_the_median_of_each_rounds_own() {
        // Each round's own ratio is 2, 0.5 and 4 (median 2); the ratio of
        // the sides' median times would be 0.4 / 0.5 = 0.8.
        let round = |vm: f64, kernel: f64, order: Vec<Side>| Round {
            order,
            sides: vec![
                side(Side::Vm, vm, None, None),
                side(Side::KernelAdvised, kernel, None, None),
            ],
        };
        let rounds = vec![
            round(1.0, 0.5, vec![Side::Vm, Side::KernelAdvised]),
            round(0.3, 0.6, vec![Side::KernelAdvised, Side::Vm]),
            round(0.4, 0.1, vec![Side::Vm, Side::KernelAdvised]),
        ];
        let sides = medians_of(&[Side::Vm, Side::KernelAdvised], &rounds);
        let report = OutOfCoreReport {
            options: OutOfCoreOptions {
                memory_bytes: 1 << 20,
                reads: 1,
                limit_s: 1.0,
                seed: 1,
                dir: None,
                workloads: vec!["scan".into()],
                threads: 1,
                sides: Vec::new(),
                rounds: 3,
            },
            sides,
            cgroup_note: None,
            rounds,
        };
        let (median, low, high) = report.ratio(Side::Vm, Side::KernelAdvised, "scan").unwrap();
        assert_eq!((median, low, high), (2.0, 0.5, 4.0));
        assert_eq!(report.sides[0].workloads[1].seconds, 0.4);
        assert_eq!(report.sides[1].workloads[1].seconds, 0.5);
        let table = report.table();
        assert!(table.contains("3 rounds"), "{table}");
        assert!(table.contains("not balanced: 3 rounds"), "{table}");
        let mut two = report.clone();
        two.rounds.pop();
        assert!(
            !two.table().contains("not balanced"),
            "two rounds of two sides balance"
        );
        assert!(table.contains("scan 0.50–4.00×"), "{table}");
        assert!(table.contains("2.00×"), "{table}");
        assert!(report.ratio(Side::Vm, Side::Kernel, "scan").is_none());
        // Against the faster of two kernel sides, each round: with a plain
        // kernel side faster in the second round only (0.15 against 0.6),
        // the rounds' ratios are 2, 2 and 4.
        let mut report = report;
        for (round, kernel) in report.rounds.iter_mut().zip([0.9, 0.15, 0.2]) {
            round.sides.push(side(Side::Kernel, kernel, None, None));
        }
        let faster = report.ratio_to_faster(Side::Vm, &[Side::KernelAdvised, Side::Kernel], "scan");
        assert_eq!(faster, Some((2.0, 2.0, 4.0)));
    }
}
