//! Fault service with the monitor held for decisions only
//! ([`MonitorScope::Decisions`](crate::MonitorScope)).
//!
//! A fault is served in two steps. **Under the monitor** (sub-microsecond
//! work): check the page's state and allocation, choose a frame — taking it
//! from clean victims chosen by the clock, whose frames change hands at
//! once — latch the page exclusively (the "being read" state: its word is
//! locked, and every other accessor of the page waits on the word, not on
//! the monitor) and look up its disk address. **Without the monitor**:
//! give back the victims' memory (`madvise`), read the page into its frame
//! straight from the drive, and hand the latch to the accessor. Faults on
//! other pages, in other threads, go through both steps meanwhile, so
//! their transfers are in flight together — on one file drive as well as
//! across drives (a file drive's transfers need no lock:
//! `disk_channel::ParallelIo`).
//!
//! The real-memory bound holds at every instant: a fault that took a
//! victim's frame gives back the victim's memory before its own read
//! commits any, and frames beyond the one it needed return to the free list
//! only after that (counted meanwhile as frames in transit).
//!
//! A fault that fails part way — the read fails, or the drive panics —
//! leaves the VM as it was (the [`Transit`] guard, on every path): the
//! page is absent again, its frame free; victims not yet given back are
//! resident again. The VM is not poisoned: no structure was half-changed
//! under the monitor.
//!
//! A mapped file's read-around is decided here too and read without the
//! monitor in the same way, its pages latched as one fault's page is
//! (`around`). What stays under the monitor in this mode: write-back of
//! dirty victims (and the remapping of a bad spot that it may need), and
//! sequential read-ahead (the seed's path; one stream reads one cluster at
//! a time anyway).

use super::Served;
use super::around::Around;
use super::queue::{FaultOutcome, Latch, Latched};
use crate::error::VmError;
use crate::mapped::{MappedFile, Source};
use crate::monitor::Monitor;
use crate::space::AddressSpace;
use crate::state::{
    DIRTY, ExclusiveLatch, ON_DISK, READ_ONLY, REFERENCED, TAG_ABSENT, TAG_LOCKED, TAG_RESIDENT,
    WRITABLE,
};
use crate::sys::region::FillError;
use crate::vocabulary::Advice;
use runtable::{DiskAddr, PageNumber};
use std::sync::atomic::Ordering;

/// Pages a fault on a mapped file's page reads around it at most under
/// `Normal` advice while read-around pays (see `around`), for a budget of
/// `budget` pages: a sixteenth of the budget, at least 511 (or a quarter
/// of the budget, if that is less) and at most 1,023; one for a budget of
/// under four pages. With 4 KiB pages: a quarter of the budget below 8
/// MiB, 511 pages from 8 to 32 MiB, a sixteenth from 32 to 64 MiB, 1,023
/// (4 MiB less a page) from 64 MiB up. (The kernel here reads around a
/// mapped file's fault in 8 MiB windows — this disk's `read_ahead_kb` — as
/// several requests at once from large folios.) A span of 512 pages or
/// more is longer than the frame pool leases, so a larger window reads the
/// fault's own run of absent pages, in pieces.
///
/// Measured, `bench out-of-core --sides vm-mapped,kernel --workloads
/// uniform-fit`, one thread, alternating runs:
/// - 128 pages read forward from the fault, stopping at the first resident
///   page: 1.38–2.08× the kernel's time at budgets of 32, 64 and 128 MiB;
///   511 centred and read past resident pages, 1.00–1.26× (medians
///   1.09–1.12×), 1,023 the same (1.01–1.17×), both as one read.
/// - With the read in pieces kept in flight, each committed while the ones
///   before it are read (`MappedFile::read_pages_in_pieces`): 511 pages
///   1.05–1.31× at 128 MiB, 1,023 0.93–1.07× and 2,047 0.91–1.03×; at 64
///   MiB 511 1.00–1.25×, 1,023 0.92–1.06×; at 32 MiB (a 24 MiB working
///   set) 511 1.03–1.12×, 1,023 1.03–1.16×. Larger windows pay once the
///   device has pieces enough to keep it busy, and cost where the set is
///   small enough that a window reads mostly pages already in.
///
/// Earlier trials, still true: handing all but the faulting page to the
/// read-ahead thread did no better. Below a budget of about 16 MiB the
/// frame pool (an eighth of the budget) is shorter than the window (a
/// quarter): a span longer than the pool reads only the fault's own run.
fn read_around_pages(budget: u64) -> u64 {
    (budget / 16).clamp(511.min(budget / 4), 1023).max(1)
}

/// Pages a fault reads around itself into free memory
/// ([`VmConfig::read_around_free`](crate::VmConfig::read_around_free)):
/// 32 KiB, which this disk reads in about the time it reads 4 KiB.
const FREE_AROUND_PAGES: u64 = 8;

/// Free frames past which a fault reads around itself, for a budget of
/// `budget` pages: an eighth of it — more than an eviction batch frees (a
/// sixteenth at most), so the frames the clock frees for the faults to
/// come are not taken for guesses.
fn free_around_floor(budget: u64) -> u64 {
    budget / 8
}

thread_local! {
    /// The space (its key) and page this thread last planned a read-around
    /// into free memory for (see `plan_free_around`).
    static LAST_AROUND: std::cell::Cell<Option<(usize, u64)>> = const { std::cell::Cell::new(None) };
}

/// What the monitor holder decided about a fault.
enum Plan<'a> {
    /// Nothing to carry out: the page is resident (perhaps brought in by
    /// the seed's path, under the monitor), or latched by someone else.
    Now(Served),
    /// A page to bring in without the monitor.
    Transit(Transit<'a>),
    /// A mapped file's pages read around the page, without the monitor.
    Around(Around<'a>),
}

/// Where a page is read from.
enum ReadFrom {
    /// Its copy in the volume.
    Disk(DiskAddr),
    /// A mapped file's page (see `mapped`).
    File(std::sync::Arc<MappedFile>, u64),
}

/// A fault decided under the monitor and carried out without it. Dropped
/// before it is finished (an error or a panic), it undoes what the
/// decision did.
struct Transit<'a> {
    space: &'a AddressSpace,
    /// The faulting page, latched exclusively since it was absent, with a
    /// frame of its own already.
    latch: Option<ExclusiveLatch<'a>>,
    /// Where to read the page from; `None` for a zero-fill, an overwrite
    /// or a reclaim.
    read: Option<ReadFrom>,
    /// The reclaim list's slot holding the page's copy, taken for this
    /// fault (transparent mode).
    from_slot: Option<u32>,
    /// Whether the page comes in without a read for an accessor that
    /// overwrites it all (decided under the monitor, protection included).
    overwrite_unread: bool,
    /// Clean victims whose frames this fault took, latched exclusively,
    /// their memory not yet given back.
    victims: Vec<ExclusiveLatch<'a>>,
    /// The victims' memory has been given back (they can only become
    /// absent now).
    victims_released: bool,
    /// Frames taken from victims beyond the one the page took.
    spare_frames: Vec<u32>,
}

impl AddressSpace {
    /// Fault service in the faulting thread with the monitor held for the
    /// decisions only (see the module doc). Monitor not held on entry or
    /// exit.
    pub(super) fn serve_decided(&self, page: u64, latch: Latch) -> FaultOutcome {
        // A read-around whose read failed is undone, and the page is then
        // served alone (and meets the error itself).
        let mut around = true;
        loop {
            let transit = {
                let mut monitor = self.lock_monitor();
                // A panic while this thread waited for the monitor poisoned the VM.
                self.check_poisoned()?;
                monitor.gave_up_on_transit = false;
                match self.decide(&mut monitor, page, latch.overwrites(), around) {
                    Ok(Plan::Now(served)) => return Ok(self.latch_after(served, page, latch)),
                    Ok(Plan::Transit(transit)) => transit,
                    Ok(Plan::Around(planned)) => {
                        drop(monitor);
                        match planned.carry_out(latch) {
                            Some(latched) => return Ok(latched),
                            None => {
                                around = false;
                                continue;
                            }
                        }
                    }
                    // Every frame the clock could take is latched by a transfer
                    // in flight: let go of the monitor and try again.
                    Err(VmError::FramesBusy { .. }) if monitor.gave_up_on_transit => {
                        return Ok(Latched::Retry);
                    }
                    Err(e) => return Err(e),
                }
            };
            return transit.carry_out(latch);
        }
    }

    /// Monitor held on entry and exit.
    ///
    /// Read-around into free memory: with more than
    /// [`free_around_floor`] frames free, plans the read of `page` and its
    /// absent neighbours — [`FREE_AROUND_PAGES`] at most, half of them
    /// before it where they are absent, on disk and on consecutive disk
    /// pages of its drive, as the kernel's read-around centres its window —
    /// for this thread to start and wait for without the monitor
    /// (`plan_touch_run`: a drive read with `O_DIRECT`, the ring usable).
    /// Whether it planned one covering `page`; if not, nothing changed.
    ///
    /// Why only into free memory: a guess that evicts a page costs a read
    /// when that page is wanted again (the kernel's read-around without
    /// advice thrashes at random for that reason, and `MADV_RANDOM` turns
    /// it off). Frames nothing holds cost nothing to fill, and a read of
    /// eight pages costs about what a read of one does. So a space whose
    /// memory was emptied fills in an eighth of the reads, with pages as
    /// likely to be wanted as any (more, where the program's data has
    /// locality), and, once memory is seven eighths full, its faults read
    /// their own page alone, as before.
    ///
    /// Measured (`bench out-of-core --sides vm,vm-no-around,kernel-advised`,
    /// balanced rounds; `bench/results/free-read-around-2026-11-28-c.txt`):
    /// at the default size (32 MiB, six rounds) Zipf sent 19,884 reads to
    /// the device against 21,941 without (the advised kernel 23,996) and
    /// took 0.90× the time (0.84× the advised kernel's); uniform 75,675
    /// against 76,595 reads, 0.95× the time. At the full size (256
    /// MiB, 800,000 reads, three rounds) Zipf 134,273 reads against
    /// 150,721, 0.89× the time (0.91× the advised kernel's). A read-around
    /// costs more than a page read alone — eight fresh pages committed and
    /// moved in, against one: 79–97 µs against 52–75 in a scratch program —
    /// but fills eight frames. A simulation had put the gain at 10.6% of
    /// Zipf's reads (5.9% with the popular pages placed at random, no
    /// locality; 1.2% for uniform reads); reading around always, evicting
    /// for it, lost.
    ///
    /// Not while another read is planned or in flight (a stream's, a
    /// `touch`'s, another thread's read-around): those have most counts of
    /// their own (`stream_reads_max`, `TOUCH_PLANNED_MAX`) that a guess
    /// must not use up — a `touch` refused would read under the monitor.
    /// And not twice running for one page in one thread: a read-around
    /// that failed leaves its page absent, and the accessor's next fault
    /// on it reads the page alone and meets the error itself (a read that
    /// kept failing would otherwise be planned again forever — and a bad
    /// neighbour would make a good page unreachable).
    fn plan_free_around(&self, monitor: &mut Monitor, page: u64) -> bool {
        let free = monitor.free_frames.len() as u64;
        if free < free_around_floor(monitor.budget()) + FREE_AROUND_PAGES {
            return false;
        }
        let this = (self.space_key(), page);
        if LAST_AROUND.get() == Some(this)
            || self.read_ahead.as_ref().is_none_or(|q| q.pending().0 > 0)
        {
            LAST_AROUND.set(None);
            return false;
        }
        let Some((start, _)) = monitor.allocation_of(page) else {
            return false;
        };
        let first = self.absent_below(page, start, FREE_AROUND_PAGES / 2);
        // The run from `first` must reach `page` (its pages may not be on
        // consecutive disk pages); else it starts at `page`.
        let first = match self.run_at(monitor, first, FREE_AROUND_PAGES) {
            Ok(Some((_, count))) if first + count > page => first,
            _ => page,
        };
        let planned = self.plan_touch_run(monitor, first, FREE_AROUND_PAGES, true);
        if planned {
            LAST_AROUND.set(Some(this));
        }
        planned
    }

    /// Monitor held on entry and exit.
    ///
    /// The decisions of a fault on `page`: its frame (evicting clean
    /// victims whose frames it takes, or writing dirty ones back here), its
    /// latch and its disk address; or, for a mapped file's page and with
    /// `around`, a read-around.
    fn decide<'a>(
        &'a self,
        monitor: &mut Monitor,
        page: u64,
        overwrite: bool,
        around: bool,
    ) -> Result<Plan<'a>, VmError> {
        let states = self.states();
        let word = states.load(page);
        match word.tag() {
            TAG_RESIDENT => return Ok(Plan::Now(Served::Resident)),
            TAG_LOCKED => {
                // Being read ahead, perhaps: keep the next cluster coming
                // while this thread waits for its page.
                self.plan_past_in_flight(monitor, page);
                return Ok(Plan::Now(Served::Busy));
            }
            _ => {}
        }
        let Some((_, allocation)) = monitor.allocation_of(page) else {
            return Err(VmError::AddressFault {
                addr: self.address_of(PageNumber(page)),
                page: PageNumber(page),
            });
        };
        // A virtual copy's page still reading its source's place: brought
        // in under the monitor (see `vcopy`).
        if !monitor.links.is_empty() && monitor.links.place_of(page).is_some() {
            monitor.counters.faults += 1;
            self.bring_in_linked(monitor, page)?;
            return Ok(Plan::Now(Served::Resident));
        }
        if allocation.advice == Advice::Sequential {
            return Ok(Plan::Now(self.serve(monitor, page, None, overwrite)?));
        }
        // A stream found under `Normal` advice (see `read_stream`).
        let min_run = if self.region.is_transparent() { 2 } else { 4 };
        if allocation.advice == Advice::Normal
            && !overwrite
            && word.has(ON_DISK)
            && self.read_stream(monitor, page, min_run)?
        {
            monitor.counters.faults += 1;
            return Ok(Plan::Now(Served::Resident));
        }
        // Its neighbours with it, into memory nothing holds (see
        // `plan_free_around`): read by this thread once it lets go of the
        // monitor; the page is then met latched, and its reader finishes
        // the read (`help_inline_read`).
        if allocation.advice == Advice::Normal
            && !overwrite
            && word.has(ON_DISK)
            && self.read_around_free
            && !self.region.is_transparent()
            && self.plan_free_around(monitor, page)
        {
            monitor.counters.faults += 1;
            monitor.counters.free_read_arounds += 1;
            return Ok(Plan::Now(Served::Busy));
        }
        monitor.counters.faults += 1;
        // Where its contents are: the volume, a mapped file, or nowhere
        // (zeros). An absent word changes only under the monitor: `word`
        // holds.
        let file = match monitor.files.source_of(page) {
            Source::File(file, at) if !word.has(ON_DISK) || !file.volume_copy_valid() => {
                Some((file, at))
            }
            _ => None,
        };
        // A mapped file's page under `Normal` advice: read around it while
        // that pays (see `mapped`), as the kernel's page cache does; read
        // without the monitor (`around`). (Not in transparent mode: plain
        // loads set no reference bit, so read-around could not learn
        // whether it pays.) At most a quarter of real memory.
        if let Some((mapped, _)) = &file
            && around
            && allocation.advice == Advice::Normal
            && !overwrite
            && !self.region.is_transparent()
            && mapped.read_around()
            // (Last in the chain: a planned read-around dropped with the
            // monitor held would deadlock, its drop taking the monitor.)
            && let Some(planned) = self.plan_read_around(
                monitor,
                page,
                read_around_pages(monitor.budget()),
            )
        {
            return Ok(Plan::Around(planned));
        }
        let has_copy = word.has(ON_DISK) || file.is_some();
        // A stream of fresh pages (copying mode): zeros for a run of them
        // at once (`zero_run`).
        if !has_copy
            && allocation.advice == Advice::Normal
            && !self.region.is_transparent()
            && self.zero_run(monitor, page, false)? > 0
        {
            return Ok(Plan::Now(Served::Resident));
        }
        let overwrite_unread = overwrite && has_copy && !word.has(READ_ONLY);
        // A copy on the reclaim list is what a read would give.
        // (Overwritten whole, the page needs no copy: forgotten.)
        let from_slot = match monitor.reclaim.as_mut() {
            Some(reclaim) if overwrite => {
                reclaim.forget(page);
                None
            }
            Some(reclaim) => reclaim.take(page),
            None => None,
        };
        let read = if !has_copy || overwrite_unread || from_slot.is_some() {
            None
        } else if let Some((file, at)) = file {
            Some(ReadFrom::File(file, at))
        } else {
            let volume = monitor
                .volume
                .as_ref()
                .expect("pages on disk imply a volume");
            Some(ReadFrom::Disk(volume.translate(PageNumber(page))?))
        };
        let mut victims = Vec::new();
        let mut spare_frames = Vec::new();
        if monitor.free_frames.is_empty() {
            let chosen = self.select_victims(monitor, page)?;
            // Dirty victims, and clean ones the swap cache keeps a copy of,
            // are written here.
            let to_write = |v: &ExclusiveLatch<'_>| {
                v.has_now(DIRTY) || (!v.has_now(ON_DISK) && monitor.files.caches(v.page()))
            };
            if chosen.iter().any(to_write) {
                // Dirty victims are written back here, under the monitor (a
                // failure may remap the run table); a batch that fails
                // entirely lets the clock try others.
                if self
                    .write_back_and_release(monitor, chosen, None, page)
                    .is_err()
                {
                    self.evict_batch(monitor, page)?;
                }
            } else {
                self.keep_copies(monitor, chosen.iter());
                for victim in &chosen {
                    spare_frames.push(monitor.take_frame(victim.page()));
                }
                monitor.counters.evictions += chosen.len() as u64;
                victims = chosen;
            }
        }
        let latch = states.latch_absent(page);
        self.in_transit.fetch_add(1, Ordering::AcqRel);
        match spare_frames.pop() {
            Some(frame) => monitor.assign_frame(page, frame),
            None => monitor.install_frame(page),
        }
        monitor.frames_in_transit += spare_frames.len() as u64;
        if from_slot.is_some() {
            monitor.counters.reclaims += 1;
        } else if let Some(ReadFrom::Disk(_)) = read {
            monitor.counters.page_ins += 1;
        } else if read.is_some() {
            // A file's page: counted by the file, once read.
        } else if overwrite_unread {
            monitor.counters.overwrites += 1;
        } else {
            monitor.counters.zero_fills += 1;
        }
        Ok(Plan::Transit(Transit {
            space: self,
            latch: Some(latch),
            read,
            from_slot,
            overwrite_unread,
            victims,
            victims_released: false,
            spare_frames,
        }))
    }
}

impl Transit<'_> {
    /// Monitor not held on entry or exit (taken for a moment to return
    /// spare frames).
    ///
    /// Gives back the victims' memory, reads the page, and hands the latch
    /// the accessor asked for.
    fn carry_out(mut self, intent: Latch) -> FaultOutcome {
        let space = self.space;
        let states = space.states();
        if !self.victims.is_empty() {
            space.release_latched(self.victims.iter());
            self.victims_released = true;
            // Clean victims: their disk copy (or, without one, zeros) is
            // their contents. (A `make_changed` that came after the clock
            // chose them finds them gone, with the same contents.)
            for victim in self.victims.drain(..) {
                victim.release(TAG_ABSENT, 0, DIRTY | REFERENCED);
            }
        }
        if !self.spare_frames.is_empty() {
            let mut monitor = space.lock_monitor();
            monitor.frames_in_transit -= self.spare_frames.len() as u64;
            monitor.free_frames.append(&mut self.spare_frames);
        }
        let page = self.latch.as_ref().expect("held until handed over").page();
        // The flags a page installed writable for a store carries.
        let mut writable = 0;
        if let Some(ReadFrom::Disk(disk)) = self.read {
            let channel = space
                .channel
                .as_ref()
                .expect("pages on disk imply a volume");
            // SAFETY: `self.latch` holds `page`, absent, exclusively.
            // On an error `self` drops and undoes the fault.
            unsafe {
                space.region.fill(page, 1, |bytes| {
                    channel.read(disk.drive, disk.page, bytes, None)
                })
            }
            .map_err(|e| match e {
                FillError::Read(source) => VmError::Io {
                    page: PageNumber(page),
                    disk,
                    source,
                },
                FillError::Install(e) => e,
            })?;
        } else if let Some(ReadFrom::File(file, at)) = &self.read {
            // SAFETY: as above.
            unsafe {
                space
                    .region
                    .fill(page, 1, |bytes| file.read_pages(*at, bytes))
            }
            .map_err(|e| match e {
                FillError::Read(e) | FillError::Install(e) => e,
            })?;
        } else if let Some(slot) = self.from_slot {
            let slots = space
                .reclaim_slots
                .as_ref()
                .expect("a slot implies the list");
            // SAFETY: as above; the slot was taken for this fault, so no one
            // writes it until it is given back below.
            unsafe {
                space.region.fill(page, 1, |bytes| {
                    bytes.copy_from_slice(slots.slot(slot));
                    Ok::<(), VmError>(())
                })
            }
            .map_err(|e| match e {
                FillError::Read(e) | FillError::Install(e) => e,
            })?;
            self.from_slot = None;
            let mut monitor = space.lock_monitor();
            let reclaim = monitor.reclaim.as_mut().expect("a slot implies the list");
            reclaim.give_back(slot);
        } else if space.region.is_transparent()
            && intent != Latch::Shared
            && !states.load(page).has(READ_ONLY)
        {
            // A store is coming (transparent mode): zeros it can take.
            // SAFETY: as above.
            unsafe { space.region.fill_zeros_writable(page) }?;
            writable = DIRTY | WRITABLE;
        } else {
            // SAFETY: as above.
            unsafe { space.region.fill_zeros(page, 1) }?;
        }
        let latch = self.latch.take().expect("held until handed over");
        // Handed over below: no longer a transfer in flight.
        space.in_transit.fetch_sub(1, Ordering::AcqRel);
        Ok(match intent {
            Latch::Shared => Latched::Taken(latch.release_to_shared(REFERENCED, DIRTY)),
            // Protection was decided under the monitor for a page that
            // comes in unread; one that was read is refused to an overwriter
            // as the seed's path refuses it (`latch_after`).
            Latch::Overwrite if !self.overwrite_unread && states.load(page).has(READ_ONLY) => {
                space.refuse_store(latch);
                Latched::WriteProtected
            }
            Latch::Exclusive | Latch::Overwrite => {
                Latched::Taken(latch.keep_as_resident(REFERENCED | writable, DIRTY & !writable))
            }
        })
    }
}

impl Drop for Transit<'_> {
    /// Undoes an unfinished fault, under the monitor: the page leaves its
    /// frame and is absent again (its memory given back), victims whose
    /// memory was not given back yet are resident again, spare frames are
    /// free.
    fn drop(&mut self) {
        if self.latch.is_none()
            && self.victims.is_empty()
            && self.spare_frames.is_empty()
            && self.from_slot.is_none()
        {
            return;
        }
        let space = self.space;
        let mut monitor = space.lock_monitor();
        if let Some(latch) = self.latch.take() {
            let page = latch.page();
            // SAFETY: `latch` holds `page` exclusively.
            unsafe { space.region.release_or_zero(page, 1) };
            monitor.remove_frame(page);
            if let Some(slot) = self.from_slot.take() {
                monitor
                    .reclaim
                    .as_mut()
                    .expect("a slot implies the list")
                    .give_back(slot);
                monitor.counters.reclaims -= 1;
            } else if let Some(ReadFrom::Disk(_)) = self.read {
                monitor.counters.page_ins -= 1;
            } else if self.read.is_some() {
                // A file's page: not counted (its read failed).
            } else if self.overwrite_unread {
                monitor.counters.overwrites -= 1;
            } else {
                monitor.counters.zero_fills -= 1;
            }
            // Absent again, as it was.
            drop(latch);
            space.in_transit.fetch_sub(1, Ordering::AcqRel);
        }
        monitor.frames_in_transit -= self.spare_frames.len() as u64;
        monitor.free_frames.append(&mut self.spare_frames);
        if self.victims_released {
            // Their memory is gone (a panic while they were being made
            // absent): absent they become, and their frames stay free.
            for victim in self.victims.drain(..) {
                victim.release(TAG_ABSENT, 0, DIRTY | REFERENCED);
            }
        }
        for victim in self.victims.drain(..) {
            // Resident again: a copy kept at its eviction is not its own.
            if let Some(reclaim) = monitor.reclaim.as_mut() {
                reclaim.forget(victim.page());
            }
            let frame = monitor
                .free_frames
                .pop()
                .expect("the victims' frames are free again");
            monitor.assign_frame(victim.page(), frame);
            monitor.counters.evictions -= 1;
            // Resident again, as it was.
            drop(victim);
        }
    }
}
