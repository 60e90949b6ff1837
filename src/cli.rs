//! The `cedarvm` command.
//!
//! Exit status: 0 success; 1 failure (one line on standard error, never a
//! backtrace); 2 bad arguments. `scavenge` has its own: 0 clean, 1 repaired
//! or repairable, 2 unrecoverable (or the check could not run).

use crate::demo::{DemoOptions, demo};
use cedar_bench::seek_ahead::SeekAheadRequest;
use clap::{Args, Parser, Subcommand, ValueEnum};
use runtable::Layout;
use std::ffi::OsString;
use std::path::PathBuf;
use utility_mode::format::{FormatRequest, format};
use utility_mode::scan::{ScanMode, scan};
use utility_mode::scavenge::scavenge;
use utility_mode::{ToolError, UtilityVm, info, parse_size};
use vm_core::FaultService;
use vm_core::simulate::AccessPattern;

/// The sizes' syntax (`--help` of the top level and of every command that
/// takes sizes).
macro_rules! sizes {
    () => {
        "\
Sizes (--drive-size, --memory, --keys, ...) are whole numbers of bytes with
an optional binary unit: 4096, 64KiB, 32MiB, 1GiB (K, KB and KiB all mean
1024; M, MB, MiB 1024^2; G, GB, GiB 1024^3)."
    };
}

/// The exit statuses every command shares (printed by `--help`; the same
/// table is in the README, and a test runs every row), then the sizes'
/// syntax.
pub const EXIT_STATUSES: &str = concat!(
    "\
Exit status, every command:
  0    done (scavenge: the volume is clean; check: every seed kept every rule)
  1    scavenge: repaired, or repairable with --repair
  2    usage error: a bad argument or value, or a drive that holds data
       and no --force; nothing was done
  3    scavenge: unrecoverable as given (what is wrong is printed)
  4    failed: the work could not be done or did not check out (a busy,
       missing or unreadable drive, an I/O error, too little memory, a
       broken rule found by check, a demo whose output is wrong)
  130  interrupted by Ctrl-C; 143 by SIGTERM (what the run created is removed)

",
    sizes!()
);

/// What every command that takes sizes says under its options.
pub const SIZES: &str = sizes!();

/// cedar-vm: a Cedar/Pilot-style single-address-space virtual memory, its
/// disk tools and its benchmark runs.
#[derive(Parser, Debug)]
#[command(name = "cedarvm", version, about, after_help = EXIT_STATUSES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create (or overwrite, with --force) a volume on one or more drive files.
    #[command(after_help = SIZES)]
    Format(FormatArgs),
    /// Surface-scan drive files: write and read back patterns, list bad pages.
    /// Destroys the drives' contents.
    #[command(after_help = SIZES)]
    Scan(ScanArgs),
    /// Check a volume and, with --repair, repair it. Exit 0 clean, 1 repaired
    /// or repairable, 3 unrecoverable, 4 could not check.
    #[command(after_help = SIZES)]
    Scavenge(ScavengeArgs),
    /// Describe a volume.
    Info(InfoArgs),
    /// The main job: sort keys that live in the VM, out of core, and verify.
    #[command(after_help = SIZES)]
    Demo(DemoArgs),
    /// Benchmark runs.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The whole-VM fault campaign: seeded API calls and drive faults
    /// against a model, many seeds. Exit 0 if every seed keeps every rule.
    Check(CheckArgs),
}

/// `check` arguments.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Seeds to run, from --first-seed (at least 1; with --volumes, give
    /// --cases).
    #[arg(long, default_value_t = 1000, value_parser = at_least_one, conflicts_with = "volumes")]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Run this one seed (a replay).
    #[arg(long, conflicts_with_all = ["seeds", "first_seed"])]
    seed: Option<u64>,
    /// Operations per seed (at least 1). Not with --volumes (a case is one
    /// damage).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "volumes")]
    steps: u32,
    /// Serve every seed's faults this way (default: odd seeds use the
    /// worker, even ones the faulting thread). Not with --volumes.
    #[arg(long, value_enum, conflicts_with = "volumes")]
    fault_service: Option<ServiceArg>,
    /// Seconds after which a seed counts as hung (at least 1).
    #[arg(long, default_value_t = 60, value_parser = at_least_one)]
    hang_after: u64,
    /// Run the damaged-volume campaign of the tools instead of the VM's:
    /// random volumes, damaged one way each, held to what `info` and
    /// `scavenge` promise (utility_mode::damage).
    #[arg(long)]
    volumes: bool,
    /// Damaged-volume cases to run, from --first-seed (with --volumes; at
    /// least 1).
    #[arg(long, default_value_t = 1000, requires = "volumes", value_parser = at_least_one)]
    cases: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The benchmark runs.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Seek-ahead off and on for several numbers of concurrent faulters.
    SeekAhead(SeekAheadArgs),
    /// Where a fault's time goes, against same-run baselines.
    FaultPath(FaultPathArgs),
    /// Message throughput between two processes: the shared ring guarded
    /// by counting semaphores, against a pipe and a Unix socket.
    Ipc(IpcArgs),
    /// A persistent space as an embedded engine's file: VmFile random
    /// writes with a sync every 100 against pwrite + fdatasync, and the
    /// time to reopen a space.
    Persistent(PersistentArgs),
    /// The sending side of `bench ipc` (run by it, not by hand).
    #[command(hide = true)]
    IpcPeer(IpcPeerArgs),
    /// Data larger than memory: the VM against the kernel's mmap, each in a
    /// memory cgroup of the budget (fill, scan, random reads, external sort).
    OutOfCore(OutOfCoreArgs),
    /// One side of `bench out-of-core` (run by it, not by hand).
    #[command(hide = true)]
    OutOfCoreSide(OutOfCoreSideArgs),
}

/// `bench out-of-core` arguments.
#[derive(Args, Debug)]
pub struct OutOfCoreArgs {
    /// Real-memory budget: the VM's cgroup limit is the budget + a quarter
    /// of it (the sort's run buffer) + 32 MiB; the kernel's, set again as
    /// each workload makes its data cold, is what its program holds then
    /// besides page cache (the run buffer included) + the page tables of
    /// the mapping it reads + 256 KiB + the budget, so its page cache holds
    /// the budget.
    /// The data set is 4× it, the sort 8× it. Below about 16 MiB the
    /// kernel's sides may be killed by their cgroup (reported).
    #[arg(long, default_value = "32MiB", value_parser = size)]
    memory: u64,
    /// Random reads per random workload.
    #[arg(long, default_value_t = 100_000)]
    reads: u64,
    /// Multiply the budget and the reads (8: the 256 MiB budget, 1 GiB data
    /// set and 800k reads of the measurements).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    scale: u64,
    /// Seconds a workload may run before it stops and reports the share
    /// done (the kernel without advice thrashes on random reads).
    #[arg(long, default_value_t = 30.0)]
    limit: f64,
    /// Seed of the data and the reads.
    #[arg(long, default_value_t = 1983)]
    seed: u64,
    /// Threads doing the random reads at once (the VM's faults in flight
    /// together; the kernel's; the device's own reads, same file).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Only these workloads (comma-separated: fill, scan, uniform, zipf,
    /// uniform-fit, sort, sort-unstable); fill runs whenever one of the data
    /// set's readers does.
    #[arg(long, value_delimiter = ',', value_parser = ["fill", "scan", "uniform", "zipf", "uniform-fit", "sort", "sort-unstable"])]
    workloads: Vec<String>,
    /// Only these sides (comma-separated: vm, vm-transparent,
    /// kernel-advised, kernel, vm-mapped — the data set a shared file
    /// mapping through `map_file` —, vm-no-move — the vm side without
    /// frame moves — and vm-no-huge — the vm side without the frame pool's
    /// huge-page chunks (2 MiB of the pool committed as one transparent
    /// huge page, so a 1 MiB read is contiguous; they need --memory 16MiB
    /// or more) — and vm-thread-read-ahead — the vm side with its
    /// read-ahead read by the read-ahead thread, not started and finished
    /// by the faulting thread — and vm-no-around — the vm side without
    /// read-around into free memory; the last five run only when named
    /// here).
    #[arg(long, value_delimiter = ',', value_parser = ["vm", "vm-transparent", "kernel-advised", "kernel", "vm-mapped", "vm-no-move", "vm-no-huge", "vm-thread-read-ahead", "vm-no-around"])]
    sides: Vec<String>,
    /// Run the sides this many times, each round in another order (a
    /// side's time can depend on what the side before it left in free
    /// memory); times are then medians, and ratios the medians of each
    /// round's own. A multiple of the sides' count (twice it for an odd
    /// count) puts each side in every place, and after every other side,
    /// equally often.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    rounds: u64,
    /// Directory for the files (default: a temporary one; it must be on a
    /// real disk for the figures to mean anything).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the chart here as SVG.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `bench out-of-core-side` arguments.
#[derive(Args, Debug)]
pub struct OutOfCoreSideArgs {
    #[arg(long)]
    side: String,
    #[arg(long)]
    memory: u64,
    #[arg(long)]
    reads: u64,
    #[arg(long)]
    limit_s: f64,
    #[arg(long)]
    seed: u64,
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Join this cgroup (its `cgroup.procs`) before anything else.
    #[arg(long)]
    cgroup_procs: Option<PathBuf>,
}

/// `bench ipc` arguments.
#[derive(Args, Debug)]
pub struct IpcArgs {
    /// Messages per transport (at least 1).
    #[arg(long, default_value_t = 1_000_000, value_parser = at_least_one)]
    messages: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `bench persistent` arguments.
#[derive(Args, Debug)]
pub struct PersistentArgs {
    /// Folder on the disk to measure (default: the current one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Size of the file written at random.
    #[arg(long, default_value = "256MiB", value_parser = size)]
    file_size: u64,
    /// Random 4 KiB writes per side.
    #[arg(long, default_value_t = 20_000)]
    writes: u64,
    /// Size of the space reopened.
    #[arg(long, default_value = "1GiB", value_parser = size)]
    space: u64,
    /// The VM's real memory.
    #[arg(long, default_value = "64MiB", value_parser = size)]
    memory: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `bench ipc-peer` arguments.
#[derive(Args, Debug)]
pub struct IpcPeerArgs {
    /// Messages to send.
    #[arg(long)]
    messages: u64,
    /// Send through the shared ring in this segment.
    #[arg(long)]
    ring: Option<PathBuf>,
    /// Send through standard output.
    #[arg(long)]
    pipe: bool,
    /// Send through the Unix socket at this path.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Write in 64 KiB batches instead of one write per message.
    #[arg(long)]
    batched: bool,
}

/// Drive choices for `bench seek-ahead`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DiskArg {
    /// Alto Diablo 31 (simulated).
    Diablo31,
    /// Alto Diablo 44 (simulated).
    Diablo44,
    /// Dorado Trident T-300 (simulated).
    TridentT300,
    /// A modern 7200 rpm disk (simulated).
    ModernHdd,
    /// A solid-state drive (simulated).
    Ssd,
    /// A real file drive, real threads, wall time.
    File,
}

impl DiskArg {
    fn name(self) -> &'static str {
        match self {
            DiskArg::Diablo31 => "diablo31",
            DiskArg::Diablo44 => "diablo44",
            DiskArg::TridentT300 => "trident-t300",
            DiskArg::ModernHdd => "modern-hdd",
            DiskArg::Ssd => "ssd",
            DiskArg::File => "file",
        }
    }
}

/// Workloads for `bench seek-ahead`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WorkloadArg {
    /// Uniformly random pages.
    Random,
    /// Each faulter scans its own share in order.
    Sequential,
    /// Zipf-distributed popularity (see --skew).
    Zipf,
}

/// `bench seek-ahead` arguments.
#[derive(Args, Debug)]
pub struct SeekAheadArgs {
    /// The drive.
    #[arg(long, value_enum, default_value = "diablo44")]
    disk: DiskArg,
    /// The access pattern.
    #[arg(long, value_enum, default_value = "random")]
    workload: WorkloadArg,
    /// Zipf skew.
    #[arg(long, default_value_t = 0.99)]
    skew: f64,
    /// Concurrent faulters to try (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    faulters: Vec<usize>,
    /// Pages the workload touches (spread over the whole simulated drive).
    #[arg(long, default_value = "2MiB", value_parser = size)]
    working_set: u64,
    /// Real-memory budget.
    #[arg(long, default_value = "256KiB", value_parser = size)]
    memory: u64,
    /// Accesses per faulter.
    #[arg(long, default_value_t = 2000)]
    accesses: u64,
    /// Think time between accesses, microseconds. With think time a
    /// faulter's next fault arrives after the server has started the other
    /// faulter's transfer, so with two faulters there is rarely a second
    /// fault queued to seek ahead to.
    #[arg(long, default_value_t = 0)]
    think_us: u64,
    /// Fraction of accesses that write.
    #[arg(long, default_value_t = 0.0)]
    writes: f64,
    /// Software gap per request on simulated drives, microseconds (default:
    /// the preset's).
    #[arg(long)]
    gap_us: Option<u64>,
    /// Directory for `--disk file` (only with it; default: a temporary
    /// one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seed.
    #[arg(long, default_value_t = 1983)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also draw mean fault service time against faulters into this SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// `bench fault-path` arguments.
#[derive(Args, Debug)]
pub struct FaultPathArgs {
    /// Working set on the file.
    #[arg(long, default_value = "64MiB", value_parser = size)]
    working_set: u64,
    /// Real-memory budget.
    #[arg(long, default_value = "4MiB", value_parser = size)]
    memory: u64,
    /// Thread counts for the throughput runs (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Vec<u16>,
    /// Directory for the files (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The utility VM's memory for a scan: what it needs, or less if the user
/// says so (then a scan that finds many bad pages says how much to give).
/// The `--page-size` of `format` and `scan`: a power of two of at least
/// 4 KiB and at most 1 MiB.
fn checked_page_size(page_size: u64) -> Result<usize, ToolError> {
    let valid = page_size.is_power_of_two()
        && (runtable::layout::PAGE_SIZE_MIN as u64..=runtable::layout::PAGE_SIZE_MAX as u64)
            .contains(&page_size);
    if !valid {
        return Err(ToolError::Usage(format!(
            "--page-size {page_size} is not a power of two from 4 KiB to 1 MiB"
        )));
    }
    Ok(page_size as usize)
}

/// A limit under a page is refused as given.
fn scan_memory(limit: Option<u64>) -> Result<u64, ToolError> {
    let need = utility_mode::scan::SCAN_MEMORY_BYTES;
    match limit {
        None => Ok(need),
        Some(limit) => {
            UtilityVm::check_limit(limit)?;
            Ok(limit.min(need))
        }
    }
}

fn size(text: &str) -> Result<u64, String> {
    parse_size(text)
}

/// Drive files and the tool's working memory.
#[derive(Args, Debug)]
pub struct DriveArgs {
    /// A drive file of the volume, in drive order (repeat for several).
    #[arg(long = "drive", short = 'd', required = true)]
    pub drives: Vec<PathBuf>,
    /// Real memory for the tool's utility VM, at most (default: what the
    /// work needs — 1 MiB for a scan's bad-page list, 32 bytes a run for
    /// the scavenger's page map; never more than that is taken).
    #[arg(long, value_parser = size)]
    pub memory: Option<u64>,
}

/// `format` arguments.
#[derive(Args, Debug)]
pub struct FormatArgs {
    #[command(flatten)]
    drives: DriveArgs,
    /// Size of each drive file.
    #[arg(long, value_parser = size)]
    drive_size: u64,
    /// Size of the virtual address space the volume backs (default: as much
    /// as the drives hold).
    #[arg(long, value_parser = size)]
    virtual_size: Option<u64>,
    /// Page size.
    #[arg(long, default_value = "4KiB", value_parser = size)]
    page_size: u64,
    /// Stripe across the drives in units of this many pages, at least 1
    /// (default: concatenate).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    stripe: Option<u32>,
    /// Spare pages per drive for remapping bad spots.
    #[arg(long, default_value_t = 16)]
    spares: u32,
    /// Allocate every block now instead of leaving the files sparse.
    #[arg(long)]
    preallocate: bool,
    /// Overwrite an existing volume.
    #[arg(long)]
    force: bool,
    /// Scan the surface first and keep bad pages out of the layout.
    #[arg(long, value_enum)]
    scan: Option<ScanArg>,
    /// Print what was done and the new volume as JSON
    /// (`{"formatted": …, "volume": …}`, the latter as `info --json`).
    #[arg(long)]
    json: bool,
}

/// Scan depth on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScanArg {
    /// A sample of the pages.
    Quick,
    /// Every page.
    Full,
}

impl From<ScanArg> for ScanMode {
    fn from(a: ScanArg) -> ScanMode {
        match a {
            ScanArg::Quick => ScanMode::Quick,
            ScanArg::Full => ScanMode::Full,
        }
    }
}

/// `scan` arguments.
#[derive(Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    drives: DriveArgs,
    /// Test every page instead of a sample.
    #[arg(long)]
    full: bool,
    /// Page size to scan in, for drives that hold no volume.
    #[arg(long, default_value = "4KiB", value_parser = size)]
    page_size: u64,
    /// Scan even a drive that holds a volume or other data (destroying
    /// it). Never a drive another process has open: the lock is always
    /// taken.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `scavenge` arguments.
#[derive(Args, Debug)]
pub struct ScavengeArgs {
    #[command(flatten)]
    drives: DriveArgs,
    /// Write the repairs (without it, only report).
    #[arg(long)]
    repair: bool,
    /// With --repair, also rewrite the label of a drive (other than drive 0)
    /// whose label page holds no label at all: only for a file you know is
    /// that drive of this volume — any file given would be made one.
    #[arg(long, requires = "repair")]
    force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `info` arguments.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A drive file of the volume, in drive order (repeat for several).
    #[arg(long = "drive", short = 'd', required = true)]
    drives: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `demo` arguments.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Bytes of 64-bit keys to sort.
    #[arg(long, default_value = "256MiB", value_parser = size)]
    keys: u64,
    /// The VM's real-memory budget.
    #[arg(long, default_value = "32MiB", value_parser = size)]
    memory: u64,
    /// Keep the volume in this file instead of a temporary one.
    #[arg(long)]
    volume: Option<PathBuf>,
    /// Overwrite the file given with --volume.
    #[arg(long, requires = "volume")]
    force: bool,
    /// Who serves faults.
    #[arg(long, value_enum, default_value = "thread")]
    fault_service: ServiceArg,
    /// How the volume's drive uses the kernel's page cache: direct
    /// (O_DIRECT, the default: the budget is what the process holds),
    /// drop-behind, or buffered (the backing file may fill the page cache,
    /// outside the budget).
    #[arg(long, value_enum, default_value = "direct")]
    cache: CacheArg,
    /// Sort as a plain program would: the VM in transparent mode
    /// (userfaultfd), the keys one `&mut [u64]` sorted by `sort_unstable`.
    /// Its volume is allocated up front: an I/O error inside a fault is
    /// fatal in transparent mode (as with mmap).
    #[arg(long)]
    transparent: bool,
    /// Bring nothing in ahead of the sort: no WillNeed advice for the next
    /// run, no second thread asking for the merge's next pages (the VM's
    /// own read-ahead and write-behind go on). No effect with
    /// --transparent.
    #[arg(long)]
    no_prefetch: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// A page-cache policy on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CacheArg {
    /// O_DIRECT (drop-behind where the file system refuses it).
    Direct,
    /// Buffered, each transfer's pages dropped from the cache after it.
    DropBehind,
    /// Buffered through the page cache.
    Buffered,
}

impl From<CacheArg> for disk_channel::CachePolicy {
    fn from(a: CacheArg) -> disk_channel::CachePolicy {
        match a {
            CacheArg::Direct => disk_channel::CachePolicy::Direct,
            CacheArg::DropBehind => disk_channel::CachePolicy::DropBehind,
            CacheArg::Buffered => disk_channel::CachePolicy::Buffered,
        }
    }
}

/// Fault service on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ServiceArg {
    /// The faulting thread serves its own fault.
    Thread,
    /// One PageFault worker thread serves every fault.
    Worker,
}

impl From<ServiceArg> for FaultService {
    fn from(a: ServiceArg) -> FaultService {
        match a {
            ServiceArg::Thread => FaultService::InFaultingThread,
            ServiceArg::Worker => FaultService::Worker,
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("reports serialize")
}

fn run_command(command: Command) -> Result<i32, ToolError> {
    match command {
        Command::Format(a) => {
            let page_size = checked_page_size(a.page_size)?;
            let drive_pages = a.drive_size / a.page_size;
            if drive_pages == 0 {
                return Err(ToolError::Usage(format!(
                    "--drive-size {} holds no whole page of {}",
                    utility_mode::human_bytes(a.drive_size),
                    utility_mode::human_bytes(a.page_size)
                )));
            }
            if a.drive_size % a.page_size != 0 {
                eprintln!(
                    "note: --drive-size {} is not a whole number of {} pages: each drive \
                     gets {drive_pages} pages ({})",
                    utility_mode::human_bytes(a.drive_size),
                    utility_mode::human_bytes(a.page_size),
                    utility_mode::human_bytes(drive_pages * a.page_size)
                );
            }
            // Without --virtual-size, as much as the drives hold.
            let virtual_pages = match a.virtual_size {
                Some(bytes) if bytes < a.page_size || bytes % a.page_size != 0 => {
                    return Err(ToolError::Usage(format!(
                        "--virtual-size {} is not a whole number of pages of {}",
                        utility_mode::human_bytes(bytes),
                        utility_mode::human_bytes(a.page_size)
                    )));
                }
                bytes => bytes.map(|bytes| bytes / a.page_size),
            };
            if let (Some(unit), 1) = (a.stripe, a.drives.drives.len()) {
                eprintln!(
                    "note: --stripe {unit} with one drive stripes nothing: the volume's \
                     pages lie in order on it, as with no --stripe"
                );
            }
            let request = FormatRequest {
                drives: a.drives.drives.clone(),
                page_size,
                drive_pages,
                virtual_pages,
                layout: a
                    .stripe
                    .map_or(Layout::Concatenate, |unit| Layout::Stripe { unit }),
                spare_pages: a.spares,
                preallocate: a.preallocate,
                force: a.force,
                scan: a.scan.map(ScanMode::from),
            };
            let uvm = UtilityVm::new(scan_memory(a.drives.memory)?)?;
            // The drive files this run creates go again if it is
            // interrupted (format removes them itself if it fails).
            let created = request.files_to_create();
            for path in &created {
                crate::signals::remove_on_signal(path.clone());
            }
            let formatted = format(&request, &uvm);
            crate::signals::keep_on_signal(&created);
            let report = formatted.map_err(|e| match e {
                // Say what to change, in the command's own words.
                ToolError::Volume(runtable::VolumeError::NotEnoughDisk {
                    virtual_pages,
                    data_pages,
                }) => ToolError::Usage(format!(
                    "--virtual-size {} is more than the drives hold ({} in data pages, \
                     after labels, headers and spares): give a smaller --virtual-size, \
                     leave it out to use all of it, or larger (--drive-size) or more drives",
                    utility_mode::human_bytes(virtual_pages * page_size as u64),
                    utility_mode::human_bytes(data_pages * page_size as u64),
                )),
                // The file system's limit on a file's size (EFBIG), or any
                // file's (a length past `i64::MAX`, which `set_len` refuses
                // as an invalid argument).
                ToolError::Drive(disk_channel::DriveError::File {
                    path,
                    source,
                    action,
                }) if source.raw_os_error() == Some(rustix::io::Errno::FBIG.raw_os_error())
                    || (action == "set length"
                        && source.kind() == std::io::ErrorKind::InvalidInput) =>
                {
                    ToolError::Usage(format!(
                        "{}: --drive-size {} is more than this file system lets a file be",
                        path.display(),
                        utility_mode::human_bytes(drive_pages * page_size as u64),
                    ))
                }
                ToolError::Volume(runtable::VolumeError::BadGeometry { reason }) => {
                    ToolError::Usage(format!(
                        "the drives cannot hold the volume's own structures ({reason}): \
                         give a larger --drive-size or fewer --spares"
                    ))
                }
                e => e,
            })?;
            let info = info::info(&request.drives)?;
            if a.json {
                #[derive(serde::Serialize)]
                struct Formatted<'a> {
                    formatted: &'a utility_mode::format::FormatReport,
                    volume: &'a utility_mode::info::VolumeInfo,
                }
                println!(
                    "{}",
                    json(&Formatted {
                        formatted: &report,
                        volume: &info,
                    })
                );
                return Ok(0);
            }
            let plural = |n: usize, what: &str| match n {
                1 => format!("1 {what}"),
                n => format!("{n} {what}s"),
            };
            if let Some(scan) = &report.scan {
                println!(
                    "scanned: {} tested ({}), {} bad",
                    plural(scan.pages_tested as usize, "page"),
                    match scan.mode {
                        ScanMode::Quick => "quick: a sample",
                        ScanMode::Full => "full: every page",
                    },
                    scan.bad.len()
                );
            }
            println!(
                "formatted: {}, {} kept out",
                plural(report.runs, "run"),
                plural(report.bad_spots, "bad spot")
            );
            print!("{}", info.table());
            Ok(0)
        }
        Command::Scan(a) => {
            checked_page_size(a.page_size)?;
            let uvm = UtilityVm::new(scan_memory(a.drives.memory)?)?;
            let notices = utility_mode::drives::check_overwrite(&a.drives.drives, a.force)?;
            let channel =
                utility_mode::drives::open_channel(&a.drives.drives, a.page_size as usize)?;
            // Said once nothing refused the scan (it writes every page):
            // the drives opened and locked.
            channel.lock_all().map_err(ToolError::from)?;
            utility_mode::drives::announce(&notices);
            let mode = if a.full {
                ScanMode::Full
            } else {
                ScanMode::Quick
            };
            let report = scan(&channel, mode, &uvm)?;
            if a.json {
                println!("{}", json(&report));
            } else {
                println!(
                    "{} pages tested, {} bad",
                    report.pages_tested,
                    report.bad.len()
                );
                for bad in &report.bad {
                    println!("bad  {bad}");
                }
            }
            Ok(0)
        }
        Command::Scavenge(a) => {
            if let Some(limit) = a.drives.memory {
                UtilityVm::check_limit(limit)?;
            }
            let report = scavenge(
                &a.drives.drives,
                &utility_mode::scavenge::ScavengeOptions {
                    repair: a.repair,
                    force: a.force,
                    memory: a.drives.memory,
                },
            )?;
            if a.json {
                println!("{}", json(&report));
            } else {
                print!("{}", report.table());
            }
            Ok(report.status.exit_code())
        }
        Command::Info(a) => {
            let report = info::info(&a.drives).map_err(|e| match e {
                // Not the volume's doing (in use, not openable, not a
                // drive at all): the scavenger could not help.
                e @ ToolError::Volume(runtable::VolumeError::Drive(
                    disk_channel::DriveError::InUse { .. }
                    | disk_channel::DriveError::File { .. }
                    | disk_channel::DriveError::Config { .. },
                )) => e,
                // Say where to go next: to the scavenger if the drives
                // hold something of a volume (a label, a header), else to
                // `format`.
                ToolError::Volume(e) => {
                    let volume_like = !utility_mode::drives::page_size_candidates(&a.drives)
                        .is_empty()
                        || a.drives
                            .first()
                            .is_some_and(|p| utility_mode::drives::find_header(p, true).is_some());
                    let blank = a
                        .drives
                        .iter()
                        .all(|p| utility_mode::drives::holds_data(p).is_none());
                    ToolError::Failed(if volume_like {
                        format!(
                            "{e} (`cedarvm scavenge` with the same drives says what is wrong \
                             and whether --repair can put it right)"
                        )
                    } else if blank {
                        format!(
                            "{e}: the drives are blank (or only scanned): `cedarvm format` \
                             makes a volume on them"
                        )
                    } else {
                        format!("{e}: the drives hold no label or header of a volume")
                    })
                }
                e => e,
            })?;
            if a.json {
                println!("{}", json(&report));
            } else {
                print!("{}", report.table());
            }
            Ok(0)
        }
        Command::Bench(BenchCommand::SeekAhead(a)) => {
            let pattern = match a.workload {
                WorkloadArg::Random => AccessPattern::Random,
                WorkloadArg::Sequential => AccessPattern::Sequential,
                WorkloadArg::Zipf => AccessPattern::Zipf { s: a.skew },
            };
            let request = SeekAheadRequest {
                disk: a.disk.name().into(),
                pattern,
                faulters: a.faulters,
                working_set_pages: a.working_set / 4096,
                memory_pages: a.memory / 4096,
                accesses: a.accesses,
                think_ns: a.think_us * 1000,
                write_fraction: a.writes,
                gap_ns: a.gap_us.map(|us| us * 1000),
                dir: a.dir,
                seed: a.seed,
            };
            if request.memory_pages == 0 || request.working_set_pages == 0 {
                return Err(ToolError::Usage(
                    "--memory and --working-set must be at least 4 KiB".into(),
                ));
            }
            // (Said, not ignored; a user trial.)
            if let Some(dir) = &request.dir {
                if request.disk != "file" {
                    return Err(ToolError::Usage(format!(
                        "--dir {} is for --disk file; the simulated drives ({}) keep \
                         their pages in memory",
                        dir.display(),
                        request.disk
                    )));
                }
                if !dir.is_dir() {
                    return Err(ToolError::Usage(format!(
                        "--dir {}: not a directory",
                        dir.display()
                    )));
                }
            }
            let report = cedar_bench::seek_ahead::seek_ahead(&request)?;
            if let Some(path) = &a.plot {
                report.plot(path)?;
            }
            if a.json {
                println!("{}", json(&report));
            } else {
                print!("{}", report.table());
            }
            Ok(0)
        }
        Command::Bench(BenchCommand::Persistent(a)) => {
            let dir = match a.dir {
                Some(dir) => dir,
                None => std::env::current_dir().map_err(|source| ToolError::File {
                    path: PathBuf::from("."),
                    source,
                })?,
            };
            if a.file_size < 4096 || a.space < 4096 || a.writes == 0 {
                return Err(ToolError::Usage(
                    "--file-size and --space must be at least 4 KiB, --writes at least 1".into(),
                ));
            }
            if !dir.is_dir() {
                return Err(ToolError::Usage(format!(
                    "--dir {}: not a directory",
                    dir.display()
                )));
            }
            // The run's files go to a folder of its own (a user's files of
            // the same names are never touched), removed at the end or if
            // the run is interrupted.
            let run_dir = tempfile::Builder::new()
                .prefix("cedarvm-persistent-")
                .tempdir_in(&dir)
                .map_err(|source| ToolError::File {
                    path: dir.clone(),
                    source,
                })?;
            crate::signals::remove_on_signal(run_dir.path().to_path_buf());
            let report = cedar_bench::persistent::persistent(
                run_dir.path(),
                a.file_size,
                a.writes,
                a.space,
                a.memory,
            );
            crate::signals::keep_on_signal(&[run_dir.path().to_path_buf()]);
            drop(run_dir);
            let report = report?;
            if a.json {
                println!("{}", json(&report));
            } else {
                print!("{}", report.table());
            }
            Ok(0)
        }
        Command::Bench(BenchCommand::Ipc(a)) => {
            let program = std::env::current_exe().map_err(|source| ToolError::File {
                path: PathBuf::from("cedarvm"),
                source,
            })?;
            let report = cedar_bench::ipc::ipc(&program, a.messages.max(1))?;
            if a.json {
                println!("{}", json(&report));
            } else {
                print!("{}", report.table());
            }
            Ok(0)
        }
        Command::Bench(BenchCommand::IpcPeer(a)) => {
            let transport = match (a.ring, a.pipe, a.socket) {
                (Some(path), false, None) => cedar_bench::ipc::IpcTransport::Ring(path),
                (None, true, None) => cedar_bench::ipc::IpcTransport::Pipe(a.batched),
                (None, false, Some(path)) => {
                    cedar_bench::ipc::IpcTransport::Socket(path, a.batched)
                }
                _ => {
                    return Err(ToolError::Usage(
                        "give exactly one of --ring, --pipe, --socket".into(),
                    ));
                }
            };
            cedar_bench::ipc::ipc_peer(&transport, a.messages)?;
            Ok(0)
        }
        Command::Bench(BenchCommand::OutOfCore(a)) => {
            let memory = a.memory * a.scale / 4096 * 4096;
            if memory < 1 << 20 {
                return Err(ToolError::Usage("--memory must be at least 1 MiB".into()));
            }
            if !a.limit.is_finite() || a.limit <= 0.0 {
                return Err(ToolError::Usage(
                    "--limit must be a positive number of seconds".into(),
                ));
            }
            if a.reads == 0 {
                return Err(ToolError::Usage("--reads must be at least 1".into()));
            }
            let program = std::env::current_exe().map_err(|source| ToolError::File {
                path: PathBuf::from("cedarvm"),
                source,
            })?;
            let options = cedar_bench::out_of_core::OutOfCoreOptions {
                memory_bytes: memory,
                reads: a.reads * a.scale,
                limit_s: a.limit,
                seed: a.seed,
                dir: a.dir.clone(),
                workloads: a.workloads.clone(),
                threads: usize::from(a.threads),
                sides: a.sides.clone(),
                rounds: a.rounds as usize,
            };
            // Find out now, not after the run, whether the chart can be
            // written.
            if let Some(path) = &a.svg {
                std::fs::write(path, b"").map_err(|source| ToolError::File {
                    path: path.clone(),
                    source,
                })?;
            }
            let report = cedar_bench::out_of_core::out_of_core(
                &program,
                &options,
                &crate::signals::undo_on_signal,
                &crate::signals::interrupted,
            )?;
            if let Some(path) = &a.svg {
                std::fs::write(path, report.svg()).map_err(|source| ToolError::File {
                    path: path.clone(),
                    source,
                })?;
            }
            if a.json {
                println!("{}", json(&report));
            } else {
                print!("{}", report.table());
            }
            Ok(0)
        }
        Command::Bench(BenchCommand::OutOfCoreSide(a)) => {
            if let Some(procs) = &a.cgroup_procs {
                cedar_bench::cgroup::MemoryCgroup::join(procs).map_err(|source| {
                    ToolError::File {
                        path: procs.clone(),
                        source,
                    }
                })?;
            }
            let side = cedar_bench::out_of_core::Side::parse(&a.side)
                .ok_or_else(|| ToolError::Usage(format!("no side named {}", a.side)))?;
            let options = cedar_bench::out_of_core::OutOfCoreOptions {
                memory_bytes: a.memory,
                reads: a.reads,
                limit_s: a.limit_s,
                seed: a.seed,
                dir: Some(a.dir.clone()),
                workloads: a
                    .workloads
                    .iter()
                    .filter(|w| !w.is_empty())
                    .cloned()
                    .collect(),
                threads: a.threads,
                sides: Vec::new(),
                rounds: 1,
            };
            let limit = match (&a.cgroup_procs, side) {
                (Some(procs), cedar_bench::out_of_core::Side::Kernel)
                | (Some(procs), cedar_bench::out_of_core::Side::KernelAdvised) => Some(
                    cedar_bench::out_of_core::limit_kernel_side(procs, &options).map_err(
                        |source| ToolError::File {
                            path: procs.clone(),
                            source,
                        },
                    )?,
                ),
                _ => None,
            };
            let mut report = cedar_bench::out_of_core::run_side(
                side,
                &options,
                &a.dir,
                a.cgroup_procs.as_deref(),
            )?;
            // The highest of its limits: the one set here, and those it set
            // as its workloads began.
            report.limit_bytes = report.limit_bytes.max(limit);
            println!("{}", json(&report));
            Ok(0)
        }
        Command::Bench(BenchCommand::FaultPath(a)) => {
            let pages = a.working_set / 4096;
            let memory = a.memory / 4096;
            if memory == 0 {
                return Err(ToolError::Usage(
                    "--memory must be at least one 4 KiB page".into(),
                ));
            }
            if pages < 2 * memory {
                return Err(ToolError::Usage(
                    "--working-set must be at least twice --memory".into(),
                ));
            }
            let mut threads: Vec<usize> = a.threads.iter().map(|&t| usize::from(t)).collect();
            threads.sort_unstable();
            threads.dedup();
            let report =
                cedar_bench::fault_path::fault_path(pages, memory, &threads, a.dir.as_deref())?;
            if a.json {
                println!("{}", json(&report));
            } else {
                print!("{}", report.table());
            }
            Ok(0)
        }
        Command::Check(a) if a.volumes => {
            let report = crate::check::check_volumes(
                a.seed.unwrap_or(a.first_seed),
                if a.seed.is_some() { 1 } else { a.cases },
                a.hang_after.max(1),
            )?;
            if a.json {
                println!("{}", json(&report));
            } else {
                print!("{}", report.table());
            }
            Ok(if report.failures.is_empty() { 0 } else { 4 })
        }
        Command::Check(a) => {
            let request = crate::check::CheckRequest {
                first_seed: a.seed.unwrap_or(a.first_seed),
                seeds: if a.seed.is_some() { 1 } else { a.seeds },
                steps: a.steps,
                service: a.fault_service.map(Into::into),
                hang_after_s: a.hang_after.max(1),
            };
            let report = crate::check::check(&request);
            if a.json {
                println!("{}", json(&report));
            } else {
                print!("{}", report.table());
            }
            Ok(if report.failures.is_empty() { 0 } else { 4 })
        }
        Command::Demo(a) => {
            let options = DemoOptions {
                key_bytes: a.keys,
                memory_bytes: a.memory,
                volume: a.volume,
                force: a.force,
                fault_service: a.fault_service.into(),
                cache: a.cache.into(),
                transparent: a.transparent,
                prefetch: !a.no_prefetch,
                ..DemoOptions::default()
            };
            let report = demo(&options)?;
            if a.json {
                println!("{}", json(&report));
            } else {
                print!("{}", report.table());
            }
            Ok(0)
        }
    }
}

/// Runs `cedarvm` with `args` (the program name first) and returns the
/// process exit status.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let json = wants_json(&args);
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and succeed; mistakes exit 2.
            let _ = e.print();
            let code = e.exit_code();
            if json && code != 0 {
                // The message up to the usage: its lines joined (a list of
                // missing arguments is on the lines after the first).
                let text = e.to_string();
                let message: Vec<&str> = text
                    .lines()
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect();
                let message = message.join(" ");
                print_json_error(message.strip_prefix("error: ").unwrap_or(&message), code);
            }
            return code;
        }
    };
    match run_command(cli.command) {
        Ok(code) => code,
        Err(e) => {
            // Interrupted, the signal thread reports (by its exit status).
            crate::signals::wait_if_interrupted();
            eprintln!("cedarvm: error: {e}");
            let code = match e {
                // A bad value, as clap's own, or a request refused without
                // --force: exit 2, whatever the command; nothing was done.
                ToolError::Usage(_)
                | ToolError::ExistingVolume { .. }
                | ToolError::ExistingData { .. } => 2,
                // The work could not be done (see `EXIT_STATUSES`).
                _ => 4,
            };
            if json {
                print_json_error(&e.to_string(), code);
            }
            code
        }
    }
}

/// Whether `--json` was asked for (before a `--`, after which nothing is
/// an option): then a failure is also said on standard output as JSON,
/// where a script reading the report looks, as well as on standard error.
fn wants_json(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// A failure, as JSON on standard output: `{"error": …, "exit_status": …}`.
fn print_json_error(message: &str, exit_status: i32) {
    println!(
        "{}",
        json(&serde_json::json!({ "error": message, "exit_status": exit_status }))
    );
}

/// A count that must be at least 1, said so when it is not.
fn at_least_one(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}")),
    }
}
