//! The mmap-style calls of the address space (4.4BSD's `mmap` and Mach's
//! `vm_map` brought into the single address space): mapping a file, shared
//! or private ([`AddressSpace::map_file`]), lowering an interval's maximum
//! protection ([`AddressSpace::restrict`]), the counters of each mapped
//! file ([`AddressSpace::file_stats`]), wired memory
//! ([`AddressSpace::map_memory`]) and virtual copy
//! ([`AddressSpace::copy`]). Where pages come from and go to is `mapped`'s
//! table and `vcopy`'s links, which the fault path and the write-back ask.

use crate::error::VmError;
use crate::journal;
use crate::mapped::{MapFile, MappedFile, Protection, Sharing, Source};
use crate::monitor::Monitor;
use crate::space::AddressSpace;
use crate::state::{DIRTY, ON_DISK, READ_ONLY, REFERENCED, TAG_ABSENT, TAG_RESIDENT, WRITABLE};
use crate::sys::region::FillError;
use crate::vcopy::Place;
use runtable::{Interval, PageNumber};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The counters of one mapped file ([`AddressSpace::file_stats`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStats {
    /// The file, as named when it was mapped.
    pub name: std::path::PathBuf,
    /// The interval it is mapped at (one entry per part, if part of the
    /// mapping was freed).
    pub interval: Interval,
    /// Whether the mapping is shared.
    pub shared: bool,
    /// Pages read from the file (for the whole file mapping).
    pub page_ins: u64,
    /// Pages written to the file (for the whole file mapping).
    pub page_outs: u64,
    /// Reads made in pieces kept in flight, each committed while the ones
    /// before it were read (a read-around of an `O_DIRECT` file into
    /// memory not committed yet; `disk_channel::read_in_pieces`).
    pub reads_in_pieces: u64,
}

impl AddressSpace {
    /// Maps `how.pages` pages of `file` from byte `how.offset` into a new
    /// interval, [`Sharing::Shared`] (faults read the file; changed pages
    /// go back to it on eviction, `clean`, `flush` — which also syncs it —
    /// and `free`) or [`Sharing::Private`] (copy-on-write: faults read the
    /// file until a page is changed and written back, to the volume, after
    /// which it comes from the volume; nothing reaches the file). Pages past
    /// the file's end read as zeros; a shared mapping writes past the end
    /// only if `how.allow_grow`, and without it its pages wholly past the
    /// end are read-only (maximum read). See `mapped` for the whole
    /// contract.
    ///
    /// The interval has protection `how.protection` and maximum
    /// `how.max_protection`: [`AddressSpace::make_read_write`] fails above
    /// it. A file open read-only may be mapped shared only with maximum
    /// protection read.
    ///
    /// Needs a volume (evicted pages of private mappings live there), and a
    /// space that is not persistent (a mapping is this process's: the
    /// space map does not record it).
    pub fn map_file(&self, file: std::fs::File, how: &MapFile) -> Result<Interval, VmError> {
        self.check_poisoned()?;
        let mapped = Arc::new(MappedFile::new(file, how, self.page_size)?);
        let refuse = |reason: &str| VmError::BadArgument {
            call: "map_file",
            reason: format!("{}: {reason}", how.name.display()),
        };
        if how.pages == 0 {
            return Err(refuse("a mapping needs at least one page"));
        }
        let mut monitor = self.lock_monitor();
        if monitor.volume.is_none() {
            return Err(refuse(
                "a real-memory-only VM cannot map files (evicted pages need the volume)",
            ));
        }
        if monitor.map.is_some() {
            return Err(refuse(
                "a persistent space does not record file mappings; map files in an \
                 anonymous space (Vm::new)",
            ));
        }
        // Allocated and mapped under one hold of the monitor: no fault sees
        // the interval before its pages know their file.
        let start = monitor
            .allocate(how.pages)
            .ok_or(VmError::CantAllocateVirtual { pages: how.pages })?;
        let (end, interval) = (start + how.pages, Interval::new(start, how.pages));
        // A shared mapping that may not grow its file: the pages wholly
        // past the file's end as mapped have maximum protection read. A
        // write there would never reach the file (an embedder's trial:
        // accepted, then read back as zeros after an eviction).
        let in_file = mapped
            .len_at_map
            .div_ceil(self.page_size as u64)
            .saturating_sub(how.offset / self.page_size as u64);
        let past_end = (how.sharing == Sharing::Shared && !how.allow_grow && in_file < how.pages)
            .then(|| {
                let why = format!(
                    "past the end of {} ({} bytes) when mapped: a shared mapping writes there \
                     only with MapFile::allow_grow",
                    how.name.display(),
                    mapped.len_at_map
                );
                (start + in_file, why)
            });
        monitor
            .files
            .insert(start, how.pages, mapped, how.offset / self.page_size as u64);
        let states = self.states();
        if how.max_protection == Protection::Read {
            let why = match how.sharing {
                Sharing::Shared => "mapped shared with maximum protection read",
                Sharing::Private => "mapped private with maximum protection read",
            };
            monitor.files.restrict(start, end, why);
        } else if let Some((from, why)) = past_end {
            monitor.files.restrict(from, end, &why);
            for page in from..end {
                states.set_flags(page, READ_ONLY);
            }
        }
        if how.protection == Protection::Read {
            for page in start..end {
                states.set_flags(page, READ_ONLY);
            }
        }
        Ok(interval)
    }

    /// Lowers the maximum protection of `interval` to read (Mach's
    /// `vm_protect` with `set_maximum`): it becomes read-only now, and
    /// [`AddressSpace::make_read_write`] fails on it from then on. It cannot
    /// be raised again.
    pub fn restrict(&self, interval: Interval) -> Result<(), VmError> {
        // Read-only first: if that fails (a live view in transparent mode),
        // the maximum stays as it was (never below the current protection).
        self.make_read_only(interval)?;
        let mut monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        monitor
            .files
            .restrict(interval.page.0, interval.end().0, "lowered by restrict");
        Ok(())
    }

    /// Writes the changed pages of every shared file mapping back to their
    /// files and syncs them (what `flush` does for them, without the
    /// volume). Dropping the VM does this, best effort.
    pub fn write_back_mappings(&self) -> Result<(), VmError> {
        self.check_poisoned()?;
        let mut monitor = self.lock_monitor();
        if !monitor.files.has_shared() {
            return Ok(());
        }
        let mut pages: Vec<u64> = monitor
            .frame_of
            .keys()
            .copied()
            .filter(|&p| monitor.files.shared_target(p).is_some())
            .collect();
        pages.sort_unstable();
        self.write_back_pages(&mut monitor, &pages)?;
        for file in monitor.files.shared_files() {
            file.sync()?;
        }
        Ok(())
    }

    /// The maximum protection of the page at `page`.
    pub fn max_protection(&self, page: runtable::PageNumber) -> Protection {
        match self.lock_monitor().files.max_is_read(page.0) {
            true => Protection::Read,
            false => Protection::ReadWrite,
        }
    }

    /// The counters of every file mapped now, by interval.
    pub fn file_stats(&self) -> Vec<FileStats> {
        let monitor = self.lock_monitor();
        monitor
            .files
            .entries()
            .map(|(interval, file)| FileStats {
                name: file.name.clone(),
                interval,
                shared: file.sharing == Sharing::Shared,
                page_ins: file.page_ins.load(Ordering::Relaxed),
                page_outs: file.page_outs.load(Ordering::Relaxed),
                reads_in_pieces: file.reads_in_pieces.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// What a call that would page, discard or write-protect through the
/// fault path says of wired memory.
fn wired_refusal(interval: Interval, what: &str) -> VmError {
    VmError::BadArgument {
        call: "interval",
        reason: format!("{interval} holds wired memory (map_memory), which is never paged: {what}"),
    }
}

impl AddressSpace {
    /// **Wired memory**: maps `pages` pages of the memory object `fd` —
    /// a device file, a DMA buffer's descriptor (dma-buf, udmabuf), a
    /// `memfd` or a POSIX shared memory object — from byte `offset` (a
    /// multiple of the page size) into a new interval, `MAP_SHARED`.
    /// The pages are resident from the start and never paged, written back
    /// or counted against the real-memory budget: they are the object's
    /// memory, which the kernel manages (a shared memory object shared
    /// with another process, which maps it too, is shared memory between
    /// the two — the seed's `MAP_SHARED | MAP_ANON` — and goes when the
    /// last mapping and descriptor go). The copying API, views and plain
    /// loads and stores reach it; `protection` is its current and maximum
    /// protection (`restrict` may lower it; `make_read_write` raises it back
    /// to the maximum). `free` of the whole interval unmaps it; `kill`,
    /// `DontNeed`, `make_unchanged` and a `free` of part of it are refused.
    ///
    /// No unsafe contract is asked of the caller: the VM maps the object
    /// itself, and what else maps it is the object's business. A persistent
    /// space refuses it (its map would not know it).
    pub fn map_memory(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        offset: u64,
        pages: u64,
        protection: Protection,
    ) -> Result<Interval, VmError> {
        self.check_poisoned()?;
        let refuse = |reason: String| VmError::BadArgument {
            call: "map_memory",
            reason,
        };
        if pages == 0 || !offset.is_multiple_of(self.page_size as u64) {
            return Err(refuse(format!(
                "{pages} pages from byte {offset}: at least one page, from a multiple of the \
                 page size {}",
                self.page_size
            )));
        }
        // A memory object that is a file (a memfd, a /dev/shm file) must
        // hold every page mapped: a page past its end is a SIGBUS on
        // access (review). A device's size is the driver's business.
        let stat = rustix::fs::fstat(fd).map_err(|e| refuse(format!("fstat: {e}")))?;
        let regular =
            rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile;
        let end = offset.saturating_add(pages.saturating_mul(self.page_size as u64));
        if regular && end > stat.st_size as u64 {
            return Err(refuse(format!(
                "the object holds {} bytes, fewer than the {end} mapped (pages past its end \
                 would fault with SIGBUS)",
                stat.st_size
            )));
        }
        let mut monitor = self.lock_monitor();
        if monitor.map.is_some() {
            return Err(refuse(
                "a persistent space does not record wired memory; map it in an anonymous \
                 space (Vm::new)"
                    .into(),
            ));
        }
        let start = monitor
            .allocate(pages)
            .ok_or(VmError::CantAllocateVirtual { pages })?;
        let writable = protection == Protection::ReadWrite;
        // SAFETY: the interval was just allocated under the monitor, which
        // this thread holds: its pages are absent, unlatched, without views,
        // and nothing else can reach them before this returns.
        if let Err(e) = unsafe { self.region.map_fd(start, pages, fd, offset, writable) } {
            // A failed MAP_FIXED may have unmapped the range already: the
            // region's own memory goes back there (best effort) before the
            // pages are free again.
            // SAFETY: as above: nothing refers to these pages.
            let _ = unsafe { self.region.unmap_fd(start, pages) };
            monitor.deallocate(start, pages);
            return Err(e);
        }
        let states = self.states();
        // Resident without a frame (the clock never comes to them), and, in
        // transparent mode, writable without a fault (no userfaultfd sees
        // them; `WRITABLE` implies changed, which nothing writes back).
        let flags = match writable {
            true => REFERENCED | DIRTY | WRITABLE,
            false => REFERENCED | READ_ONLY,
        };
        for page in start..start + pages {
            states.latch_absent(page).release(TAG_RESIDENT, flags, 0);
        }
        monitor.files.insert_wired(start, pages, writable);
        if !writable {
            monitor
                .files
                .restrict(start, start + pages, "wired memory mapped read-only");
        }
        Ok(Interval::new(start, pages))
    }

    /// Monitor held on entry and exit.
    ///
    /// `interval` (all of one wired mapping) unmapped and freed: its pages
    /// absent again, over the region's own memory.
    pub(crate) fn free_wired(
        &self,
        monitor: &mut Monitor,
        interval: Interval,
    ) -> Result<(), VmError> {
        let states = self.states();
        let (start, end) = (interval.page.0, interval.end().0);
        let mut latches = Vec::new();
        for page in start..end {
            match states.try_latch_resident(page) {
                Ok(latch) => latches.push(latch),
                Err(_) => {
                    return Err(VmError::PageBusy {
                        page: PageNumber(page),
                    });
                }
            }
        }
        if let Some(page) = (start..end).find(|p| monitor.pins.contains_key(p)) {
            return Err(VmError::Pinned {
                page: PageNumber(page),
            });
        }
        // SAFETY: every page is latched exclusively here (no access, no
        // guard), and the interval is being freed.
        unsafe { self.region.unmap_fd(start, interval.count.0) }?;
        for latch in latches {
            latch.release(TAG_ABSENT, 0, !0);
        }
        for page in start..end {
            states.reset_absent(page);
        }
        monitor.deallocate(start, interval.count.0);
        monitor.links.unlink_range(start, end);
        monitor.files.remove_wired(start);
        monitor.files.remove(start, end);
        Ok(())
    }

    /// Monitor held on entry and exit.
    ///
    /// A protection change on `interval`: `Some` if it touches wired
    /// memory — done (inside one wired mapping: `mprotect`, and the page
    /// words), or refused (partly wired) — `None` otherwise.
    pub(crate) fn protect_wired(
        &self,
        monitor: &Monitor,
        interval: Interval,
        writable: bool,
    ) -> Option<Result<(), VmError>> {
        let (start, end) = (interval.page.0, interval.end().0);
        if !monitor.files.any_wired(start, end) {
            return None;
        }
        let Some(_) = monitor.files.wired_around(start, end) else {
            return Some(Err(wired_refusal(
                interval,
                "change the protection of the wired mapping, or of the rest, alone",
            )));
        };
        // Every page latched first: a writer holding one (a `page_mut`
        // guard, a `write` under way) must not meet a read-only mapping in
        // the middle of its store (review: SIGSEGV). Busy: nothing changes.
        let states = self.states();
        let mut latches = Vec::new();
        for page in start..end {
            match states.try_latch_resident(page) {
                Ok(latch) => latches.push(latch),
                Err(_) => {
                    return Some(Err(VmError::PageBusy {
                        page: PageNumber(page),
                    }));
                }
            }
        }
        // SAFETY: the pages are wired (mapped by `map_fd`), and latched
        // exclusively here: no access is under way.
        if let Err(e) = unsafe { self.region.protect_fd(start, end - start, writable) } {
            return Some(Err(e));
        }
        for page in start..end {
            if writable {
                states.clear_flags(page, READ_ONLY);
                states.set_flags(page, DIRTY | WRITABLE);
            } else {
                states.set_flags(page, READ_ONLY);
                states.clear_flags(page, WRITABLE);
            }
        }
        drop(latches);
        Some(Ok(()))
    }

    /// Monitor held on entry and exit.
    ///
    /// An error if `interval` holds wired memory, for a call (`what`) that
    /// would page or discard it.
    pub(crate) fn check_not_wired(
        &self,
        monitor: &Monitor,
        interval: Interval,
        what: &str,
    ) -> Result<(), VmError> {
        match monitor.files.any_wired(interval.page.0, interval.end().0) {
            true => Err(wired_refusal(interval, what)),
            false => Ok(()),
        }
    }
}

impl AddressSpace {
    /// **Virtual copy** (Mach's `vm_copy`): after it, `destination` reads
    /// as `source` did at the moment of the copy, and writes to either are
    /// invisible to the other — without copying the pages that neither
    /// side writes (see `vcopy`). Both intervals are allocated, of the same
    /// size and disjoint; `destination` is anonymous (no file mapping, no
    /// wired memory) and its contents are replaced; `source` is not wired
    /// memory. Needs a volume (a copy's pages live in slots), in a space
    /// that is not persistent (its map would not record the links). A
    /// write to `source` made by another thread while the copy runs may be
    /// in the copy or not.
    ///
    /// The copy first writes `source`'s changed pages back (as `clean`).
    pub fn copy(&self, source: Interval, destination: Interval) -> Result<(), VmError> {
        self.check_poisoned()?;
        let refuse = |reason: &str| VmError::BadArgument {
            call: "copy",
            reason: format!("{source} to {destination}: {reason}"),
        };
        if source.count != destination.count {
            return Err(refuse("the intervals differ in size"));
        }
        self.end_of(source)?;
        self.end_of(destination)?;
        let (s, d) = (source.page.0, destination.page.0);
        let n = source.count.0;
        if s < d + n && d < s + n {
            return Err(refuse("the intervals overlap"));
        }
        let check = |monitor: &Monitor| -> Result<(), VmError> {
            self.check_allocated(monitor, source)?;
            self.check_allocated(monitor, destination)?;
            if monitor.volume.is_none() {
                return Err(refuse("a copy's pages need a volume"));
            }
            if monitor.map.is_some() {
                return Err(refuse(
                    "a persistent space does not record copies; copy in an anonymous space",
                ));
            }
            if monitor.files.any_wired(s, s + n) || monitor.files.any_wired(d, d + n) {
                return Err(refuse("wired memory is not copied"));
            }
            if (d..d + n).any(|p| matches!(monitor.files.source_of(p), Source::File(..))) {
                return Err(refuse("the destination is a file mapping"));
            }
            if let Some((part, why)) = monitor.files.read_only_max_in(d, d + n) {
                return Err(VmError::AboveMaximumProtection {
                    interval: part,
                    why,
                });
            }
            Ok(())
        };
        check(&self.lock_monitor())?;
        // Every source page's contents at their place.
        self.clean(source)?;
        // The destination's old contents go (its links too), and the links
        // are made in the same hold of the monitor: no access to the
        // destination comes in between (review).
        let mut monitor = self.discarded(destination, check)?;
        let states = self.states();
        for k in 0..n {
            let (from, to) = (s + k, d + k);
            let word = states.load(from);
            let place = match monitor.links.place_of(from) {
                // A copy of a page still linked: the same place.
                Some(place) => Some(place.clone()),
                None => match monitor.files.source_of(from) {
                    Source::File(file, at) if !word.has(ON_DISK) || !file.volume_copy_valid() => {
                        Some(Place::File(file, at))
                    }
                    _ if word.has(ON_DISK) => Some(Place::Slot(from)),
                    // Never written (or killed): zeros, as the destination
                    // reads already.
                    _ => None,
                },
            };
            if let Some(place) = place {
                monitor.links.link(to, place);
            }
        }
        Ok(())
    }

    /// Monitor held on entry and exit.
    ///
    /// Brings in `page`, a destination still linked (see `vcopy`): read
    /// from its place into a frame (a whole-page overwrite too), clean and
    /// still linked. All under the monitor, so no write-back of
    /// the place runs meanwhile. On an error the page stays absent and
    /// linked.
    pub(crate) fn bring_in_linked(&self, monitor: &mut Monitor, page: u64) -> Result<(), VmError> {
        if monitor.links.place_of(page).is_none() {
            return Ok(());
        }
        if monitor.free_frames.is_empty() {
            self.evict_batch(monitor, page)?;
        }
        // The eviction may have written back the very slot this page reads
        // — materializing it first: then it is an ordinary page with its
        // copy in its own slot (found by the property test).
        let place = monitor
            .links
            .place_of(page)
            .cloned()
            .unwrap_or(Place::Slot(page));
        let states = self.states();
        let latch = states.latch_absent(page);
        monitor.forget_copies(page, page + 1);
        // Read even for a whole-page overwrite: the page is published clean
        // and linked, and a reader may share-latch it before the overwriter
        // takes it (review: it read zeros).
        let filled = {
            match &place {
                Place::Slot(from) => {
                    let volume = monitor.volume.as_ref().expect("links imply a volume");
                    // SAFETY: `latch` holds the page, absent, exclusively.
                    unsafe {
                        self.region
                            .fill(page, 1, |bytes| journal::read_page(volume, *from, bytes))
                    }
                    .map_err(|e| match e {
                        FillError::Read(e) | FillError::Install(e) => e,
                    })
                }
                // SAFETY: as above.
                Place::File(file, at) => unsafe {
                    self.region
                        .fill(page, 1, |bytes| file.read_pages(*at, bytes))
                }
                .map_err(|e| match e {
                    FillError::Read(e) | FillError::Install(e) => e,
                }),
            }
        };
        filled?;
        monitor.install_frame(page);
        // Clean, and still linked: evicted unchanged it is dropped and
        // read from its place again; changed, its write-back puts it in its
        // own slot and ends the link (`materialize_slots`). Reading a copy
        // copies nothing.
        latch.release(TAG_RESIDENT, REFERENCED, DIRTY);
        monitor.counters.page_ins += 1;
        Ok(())
    }

    /// Monitor held on entry and exit.
    ///
    /// Before the slots of `pages` are overwritten: every destination still
    /// linked to one of them is materialized — the slot's bytes copied to
    /// the destination's own slot, which then holds its copy (see
    /// `vcopy`) — and the pages' own links end (their slots will hold
    /// them; their frames hold them meanwhile). An error leaves the rest
    /// linked (and the caller must not write).
    pub(crate) fn materialize_slots(
        &self,
        monitor: &mut Monitor,
        pages: impl Iterator<Item = u64>,
    ) -> Result<(), VmError> {
        if monitor.links.is_empty() {
            return Ok(());
        }
        for page in pages {
            // Its own link ends first: its slot is about to hold it (a page
            // of a copy, changed since it came in; latched, its frame holds
            // its bytes). Ended after, two pages each linked to the other's
            // slot (a page copied over one that read it, then a copy of
            // that one back over the first) had each materialization reach
            // the other again, until the loop check poisoned the VM (found
            // by the property test in `tests/vcopy.rs`).
            monitor.links.unlink(page);
            self.materialize_dependents(monitor, page, 0)?;
        }
        Ok(())
    }

    /// Monitor held on entry and exit.
    ///
    /// The destinations linked to the slot of `page` materialized (`page`'s
    /// own link, if any, untouched).
    ///
    /// `depth`: how many materializations this one is nested in. A chain
    /// is at most as long as there are links; deeper means the links form
    /// a loop — a broken invariant (one was found, and fixed, in `run_at`):
    /// the VM is poisoned and the write-back fails, rather than recursing
    /// until the stack overflows.
    fn materialize_dependents(
        &self,
        monitor: &mut Monitor,
        page: u64,
        depth: usize,
    ) -> Result<(), VmError> {
        if depth > monitor.links.len() {
            self.poisoned
                .store(true, std::sync::atomic::Ordering::Release);
            return Err(VmError::Poisoned);
        }
        // A page linked to its own slot (a copy of a copy of it) is not its
        // own dependent. (Longer loops — pages each linked to the next one's
        // slot, the last to the first's — are broken where they can be
        // entered: a page written back ends its own link before its slot's
        // copies are materialized, in `materialize_slots`.)
        let mut dests = monitor.links.linked_to_slot(page);
        dests.retain(|&d| d != page);
        if dests.is_empty() {
            return Ok(());
        }
        let volume = monitor.volume.as_ref().expect("links imply a volume");
        let mut bytes = vec![0u8; self.page_size];
        journal::read_page(volume, page, &mut bytes)?;
        self.materialize(monitor, &dests, &bytes, depth)
    }

    /// Monitor held on entry and exit.
    ///
    /// `materialize_slots` for the page `at` of a shared mapping's `file`,
    /// about to be written back.
    pub(crate) fn materialize_file_page(
        &self,
        monitor: &mut Monitor,
        file: &std::sync::Arc<MappedFile>,
        at: u64,
    ) -> Result<(), VmError> {
        if monitor.links.is_empty() {
            return Ok(());
        }
        let dests = monitor.links.linked_to_file(file, at);
        if dests.is_empty() {
            return Ok(());
        }
        let mut bytes = vec![0u8; self.page_size];
        file.read_pages(at, &mut bytes)?;
        self.materialize(monitor, &dests, &bytes, 0)
    }

    /// Monitor held on entry and exit.
    ///
    /// Writes `bytes` to the slots of the linked destination pages `dests`,
    /// which then hold their copies; those changed in memory are only
    /// unlinked (their write-backs will fill their slots).
    fn materialize(
        &self,
        monitor: &mut Monitor,
        dests: &[u64],
        bytes: &[u8],
        depth: usize,
    ) -> Result<(), VmError> {
        let states = self.states();
        for &dest in dests {
            // A destination changed in memory (resident and dirty) needs no
            // copy in its slot: its frame holds what it reads, and its own
            // write-back will put that there (and materialize its slot's
            // copies first); only the link ends. (Materialized, its slot was
            // written twice; and a bad spot there, moved to a spare by the
            // first write, left a write-back batch that holds `dest` aiming
            // at the old address — review.)
            let word = states.load(dest);
            if word.tag() == TAG_RESIDENT && word.has(DIRTY) {
                monitor.links.unlink(dest);
                monitor.forget_copies(dest, dest + 1);
                continue;
            }
            // Copies reading `dest`'s own slot (a copy of it made while it
            // was materialized before) get theirs before it is written;
            // `dest` stays linked until its slot holds its copy (an error
            // on the way loses nothing — review).
            self.materialize_dependents(monitor, dest, depth + 1)?;
            let volume = monitor.volume.as_mut().expect("links imply a volume");
            // A bad spot under `dest`'s slot moves it to a spare (the run
            // table committed with the next flush, as a write-back's).
            if journal::write_or_remap(volume, PageNumber(dest), bytes)? {
                monitor.counters.remaps += 1;
                monitor.volume_needs_commit = true;
            }
            // Linked pages come in only under the monitor (held here); a
            // resident one holds what its slot now does.
            states.set_flags(dest, ON_DISK);
            monitor.links.unlink(dest);
            monitor.forget_copies(dest, dest + 1);
            monitor.links.materialized += 1;
            monitor.counters.page_outs += 1;
        }
        Ok(())
    }
}
