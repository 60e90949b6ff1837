//! # vm-core
//!
//! The single address space of cedar-vm: one large range of virtual pages
//! whose resident pages live in a bounded real-memory budget and whose
//! other pages live on a [`runtable::Volume`] — or, in real-memory-only
//! (utility) mode, nowhere.
//!
//! Each room of the design is a file (guards: `(c)` constant, `(m)` the
//! monitor, `(a)` atomic, `(x)` the page latch, `(q)` its own lock):
//!
//! | module | owns | guarded by |
//! |---|---|---|
//! | `space` | construction, [`Vm`] and [`AddressSpace`], the worker's lifetime, the monitor's entry | (c) |
//! | `access` | the hot path: `read`/`write`, latching a page, the guards' constructors | (x) |
//! | `guard` | [`PageRef`] / [`PageMut`]: a latch held on one resident page | (x) |
//! | `fault` | the fault service: decisions under the monitor and transfers without it (the default), the seed's service under the monitor in the faulting thread or the worker, serving one fault (read-ahead, seek-ahead choice, bring-in), asynchronous read-ahead (started and finished by the faulting thread on `O_DIRECT` drives, else by the read-ahead thread) and write-behind | (m), (x) for pages in transit |
//! | `replace` | the clock, victim choice, free-behind (a sequential stream larger than memory evicts its own pages behind it), write-back in disk order, release batches | (m) |
//! | `ops` | Cedar's interval operations: allocate, free, swap_in, pin, kill, protect, advise, clean, sync, flush, state; the will-need thread's loop and `settle` | (m) |
//! | `will_need` | `WillNeed` without waiting: the queue of intervals the VM's will-need thread touches | (q) |
//! | `transparent` | plain loads and stores ([`VmConfig::transparent`]): the SIGBUS-served fault, write-protect dirty tracking, [`View`] / [`ViewMut`] and their registry, raw pointers and their contract | (x), the registry's lock |
//! | `views` | the registry of live views and guards (transparent mode) | its own lock |
//! | `reclaim` | transparent mode's reclaim list: copies of evicted pages in a quarter of the budget, faulted back without a transfer (no reference bits on plain loads) | (m) |
//! | `file` | [`VmFile`]: a growable file over an interval (`read_at`/`write_at`, `set_len`, `sync_data`, `std::io`) | through `access` and `ops` |
//! | [`persist`] | the persistent space: [`Vm::create`], [`Vm::open`], the space map in the volume, the durability contract | (m) |
//! | `mapped` | file mappings (shared, private) and maximum protections: where a page's contents come from and go to, asked by the fault path and the write-back | (m) |
//! | `files` | the mmap-style calls: [`AddressSpace::map_file`], `restrict`, `file_stats` | (m) |
//! | `vcopy` | virtual copy ([`AddressSpace::copy`]): destination pages linked to their source's place, read at their fault, materialized before that place is overwritten | (m) |
//! | `journal` | the persistent space's double-write journal: an image of a synced page before its first rewrite in place, replayed at open (no torn synced page) | (m) |
//! | `monitor` | the one lock's data: allocator, map entries, frames and clock hand, pins, counters, the sequential streams faulting lately, the volume; `MonitorGuard` | (m) |
//! | `state` | one atomic word per page: residency, latches, referenced/dirty/read-only/on-disk | (a) |
//! | `hit_counter` | resident hits, counted without contention | (a) |
//! | `padded` | `Padded`: a value alone on its cache lines | — |
//! | `page_map` | `PageMap`/`PageSet`: maps keyed by page number, with a hash for page numbers (one multiplication), not SipHash | — |
//! | [`typed`] | [`VmArray`]: typed access to an interval | — |
//! | `stats` | [`VmStats`] and the kernel's view of residency | — |
//! | `config`, `error`, `vocabulary` | [`VmConfig`], [`VmError`], [`VAddr`], [`Advice`], [`PageState`] | — |
//! | [`sys`] | the machine-dependent part: every `mmap`/`madvise`/`mincore`/futex call | — |
//! | [`simulate`] | the deterministic driver on the drives' virtual clock | — |
//! | [`campaign`] | the deterministic whole-VM fault campaign (seeded operations and drive faults against a model) | — |
//! | [`shm`] | shared segments between processes; BSD `mset`/`mclear`, robust mutex, counting semaphore, semaphore set, on futexes | the words themselves |
//!
//! No file imports a file that imports it (`tests/layout.rs` in the
//! workspace checks this): the crate root only declares modules and
//! re-exports, and a folder's `mod.rs` holds only what its files share.
//!
//! ```
//! use vm_core::{Backing, VAddr, Vm, VmConfig};
//!
//! let vm = Vm::new(VmConfig::new(1024, 64), Backing::RealMemoryOnly).unwrap();
//! let interval = vm.allocate(4).unwrap();
//! let at = vm.address_of(interval.page);
//! vm.write(VAddr(at.0 + 4090), b"crosses a page boundary").unwrap();
//! let mut back = [0u8; 23];
//! vm.read(VAddr(at.0 + 4090), &mut back).unwrap();
//! assert_eq!(&back, b"crosses a page boundary");
//! ```
//!
//! # Where this departs from the design card
//!
//! - The region is mapped read-write with `MAP_NORESERVE` rather than with
//!   no access (see `sys::region`'s module doc for why).
//! - A page-state word of zero means "absent, no disk copy"; whether the
//!   page is allocated at all is the monitor's allocation map, so
//!   allocating or freeing a huge interval costs no per-page work up front.
//! - **The monitor guards decisions, not transfers** (the default,
//!   [`MonitorScope::Decisions`]). The seed holds it for the whole fault,
//!   I/O included, "at the expense of some potential parallelism" that it
//!   expected to be slight on a one-processor Dorado with one disk.
//!   Measured on this project's 2-core machine (BENCHMARKS.md), a second
//!   faulting thread *lost* 35–41% of the fault throughput with the seed's
//!   scope and gained 6–14% with the monitor held only to choose the
//!   frame, the victims and the disk address and to change page states;
//!   one thread paid nothing for it. So a page in transit is latched
//!   ("being read", as Cedar's page states), its read and the release of
//!   clean victims' memory run without the monitor, several transfers are
//!   in flight at once, and a sequential stream's next cluster is read
//!   ahead — started on an `io_uring` by the faulting thread and moved in
//!   by the thread that reaches it (module `fault`'s `inline`), or, where
//!   that cannot be, by a read-ahead thread. The seed's behaviour stays as
//!   [`MonitorScope::HeldAcrossIo`], served by the faulting thread (the
//!   holder serves the pending queue in ticket order up to its own fault,
//!   so that the seek-ahead hint names the transfer that really comes
//!   next) or by one PageFault worker ([`FaultService`]); the seek-ahead
//!   experiments run in it.
//! - **Transparent mode** ([`VmConfig::transparent`], module `transparent`):
//!   the region is registered with `userfaultfd` for missing-page and
//!   write-protect faults in SIGBUS mode, and a thread that touches an
//!   absent page serves its own fault with the same service (chosen by
//!   measurement: a handler thread cost 1.7-9x a self-served round trip
//!   on this machine, depending on where the scheduler put it). The
//!   design card's "no access" reservation is thus replaced by
//!   userfaultfd's traps, not by `mprotect`. Plain loads set no
//!   reference bits, so a quarter of the budget becomes a reclaim list
//!   (module `reclaim`) — the VAX/VMS second chance.
//! - **Frames that move** ([`VmConfig::move_frames`], `sys::frame_pool`):
//!   in copying mode a run of pages is read into a small pool of committed
//!   frames and moved to its pages' addresses with `UFFDIO_MOVE` (Linux
//!   6.8), and an evicted run's memory is moved back into the pool rather
//!   than given back with `madvise`. The design card's frames are memory
//!   the VM owns; a region whose pages the kernel allocates, zeroes and
//!   charges at every page-in and frees at every eviction made the
//!   kernel's own work the largest cost of a scan (BENCHMARKS.md). A
//!   stream of fresh pages is zero-filled a run at a time from the same
//!   pool. Single pages keep the plain path (two `ioctl`s cost what a
//!   fault and an `madvise` cost). Where the kernel refuses the
//!   `userfaultfd` or the move, nothing else changes.
//! - **Contiguous frames** ([`VmConfig::huge_pool_chunks`]): the pool's
//!   memory comes in 2 MiB chunks each committed as one huge page (the
//!   pool only; the region never has huge pages), so a 1 MiB read lands in
//!   physically contiguous memory and is one request to the disk. Into
//!   256 scattered pages it was two, one after the other: more segments
//!   than a virtio request holds (BENCHMARKS.md).
//! - **Streams under `Normal` advice**: the seed reads page at a time
//!   unless advised. Here, in the default monitor scope, a fault with four
//!   resident pages before it reads a cluster, as a page cache finds a
//!   stream — an external sort's merge of 32 streams, which the kernel
//!   under `MADV_RANDOM` reads page at a time, went from 1.0x the kernel's
//!   time to 0.34x. The seed's scope keeps page at a time (the seek-ahead
//!   experiments reproduce the seed's).
//! - **Read-around into free memory** ([`VmConfig::read_around_free`]):
//!   while more than an eighth of real memory is free, a fault under
//!   `Normal` advice reads its absent neighbours with it (eight pages, one
//!   read) into frames nothing holds: a guess that evicts nothing. Memory
//!   emptied (a space opened again, a `DontNeed`) fills in an eighth of the
//!   reads; Zipf reads over four times the budget sent 9–11% fewer reads
//!   to the disk (BENCHMARKS.md, "Read-around into free memory").
//! - **The clock counts two uses** (module `replace`): the seed's clock
//!   gives a referenced page one more sweep; here a page used again while
//!   referenced gets two (GCLOCK with counts up to two, the bit set in the
//!   hit's own atomic update). Under skewed reads a page used often and
//!   one used once since the hand passed no longer go alike: the bench's
//!   Zipf reads at full size sent 3.8% fewer reads to the disk, and took
//!   0.86× the advised kernel's time against 0.90× (BENCHMARKS.md, "The
//!   clock counts two uses").
//! - **Write-behind**: the seed writes a dirty victim back when the clock
//!   takes it, in the faulting thread. Here the read-ahead thread is handed
//!   the dirty pages the clock will reach next and writes them while the
//!   program works (module `fault`'s `read_ahead`), as the kernel's flusher
//!   threads do; the eviction then finds them clean.
//! - **`WillNeed` without waiting**: the seed's `WillNeed` is `Touch`,
//!   which returns with the interval in. Here, with a volume, the advice
//!   is queued for a thread of the VM's own, which touches the interval
//!   while the program goes on, as the kernel reads for `MADV_WILLNEED`
//!   (module `will_need`; [`AddressSpace::settle`] waits for it). An
//!   external sort that advises its next run before sorting this one
//!   sorted its runs in 0.98–1.12 s against 1.29–1.45 s unadvised
//!   (BENCHMARKS.md, "The demo's second thread").
//! - **`Touch` without the monitor across its reads**: the seed's `Touch`
//!   reads under the monitor, like every fault. Here, on a drive read with
//!   `O_DIRECT`, each cluster is planned under it and read without it
//!   (started in the ring and waited for by the touching thread), so the
//!   program's other threads fault meanwhile: the demo's merge, whose
//!   second thread touches the runs ahead of it, took 1.52–1.60 s against
//!   1.80–1.86 s (BENCHMARKS.md, "The monitor let go for `touch`").
//! - [`simulate`] runs the same fault service step by step on the drives'
//!   virtual clock with simulated faulting processes (deterministic).
//!
//! Dependencies beyond the design card: `bytemuck` for [`VmArray`]'s and
//! the views' `Pod` bound (the project's rules name it for typed access);
//! `libc` for `sigaction` (the SIGBUS handler: `signal-hook` refuses SIGBUS,
//! and rustix's signal calls are not public API), `mincore` and
//! `process_madvise`.

mod access;
pub mod campaign;
mod config;
mod error;
mod fault;
mod file;
mod files;
mod guard;
mod hit_counter;
mod journal;
mod mapped;
mod monitor;
mod ops;
mod padded;
mod page_map;
pub mod persist;
mod reclaim;
mod replace;
pub mod shm;
pub mod simulate;
mod space;
mod state;
mod stats;
pub mod sys;
mod transparent;
pub mod typed;
mod vcopy;
mod views;
mod vocabulary;
mod will_need;

/// The `bytemuck` whose `Pod` this crate's typed access ([`VmArray`],
/// [`View`]) asks for: implement `Pod` and `Zeroable` for your own types
/// through it (`unsafe impl cedar_vm::prelude::Pod for T {}`), with no
/// dependency of your own that could be another version. (Its derive
/// macros name `::bytemuck`: they need the crate as your own dependency.)
pub use bytemuck;
pub use config::{FaultService, MonitorScope, TRANSPARENT_MIN_PAGES, VmConfig};
pub use error::VmError;
pub use file::VmFile;
pub use files::FileStats;
pub use guard::{PageMut, PageRef};
pub use mapped::{MapFile, Protection, Sharing};
pub use persist::SpaceFiles;
pub use space::{AddressSpace, Backing, Vm};
pub use stats::VmStats;
pub use transparent::{View, ViewMut};
pub use typed::VmArray;
pub use vocabulary::{Advice, DataState, PageState, VAddr};

/// The run table's vocabulary and the volume, re-exported so that code
/// using the VM names them from this crate (the drives that make a volume
/// come from `disk_channel`; the facade's `cedar_vm::prelude` has both).
pub use runtable::{DiskAddr, Interval, PageCount, PageNumber, Volume};
