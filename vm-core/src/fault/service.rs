//! Serving one fault under the monitor: read-ahead under sequential
//! advice, the choice of the seek-ahead hint, and bringing a page into a
//! frame (zero-fill or page-in).

use super::Served;
use crate::error::VmError;
use crate::mapped::Source;
use crate::monitor::Monitor;
use crate::space::AddressSpace;
use crate::state::ExclusiveLatch;
use crate::state::{DIRTY, ON_DISK, READ_ONLY, REFERENCED, TAG_ABSENT, TAG_LOCKED, TAG_RESIDENT};
use crate::sys::region::FillError;
use crate::vocabulary::Advice;
use runtable::PageNumber;

/// The most pages one fault in an interval advised `Sequential` reads, in
/// one transfer per segment of consecutive disk pages (1 MiB of 4 KiB
/// pages; never more than a quarter of real memory).
pub(crate) const READ_AHEAD_PAGES: u64 = 256;
/// The window of a stream just starting (32 KiB of 4 KiB pages).
const READ_AHEAD_MIN: u64 = 8;

impl AddressSpace {
    /// Monitor held on entry and exit.
    ///
    /// Brings `page` in; `next` is the page of the fault that will be
    /// served next, if known (the seek-ahead target). With `overwrite`, the
    /// accessor will overwrite the whole page: it comes in without a read.
    pub(crate) fn serve(
        &self,
        monitor: &mut Monitor,
        page: u64,
        next: Option<u64>,
        overwrite: bool,
    ) -> Result<Served, VmError> {
        self.serve_as(monitor, page, next, overwrite, true)
    }

    /// Monitor held on entry and exit.
    ///
    /// [`AddressSpace::serve`]; without `stream`, `page` alone comes in
    /// (or with its cluster, where `serve` would read one: not here), even
    /// in an interval advised `Sequential` — for the will-need thread,
    /// whose advice may stop short of pages let go since.
    pub(crate) fn serve_as(
        &self,
        monitor: &mut Monitor,
        page: u64,
        next: Option<u64>,
        overwrite: bool,
        stream: bool,
    ) -> Result<Served, VmError> {
        let states = self.states();
        let word = states.load(page);
        match word.tag() {
            TAG_RESIDENT => return Ok(Served::Resident),
            TAG_LOCKED => return Ok(Served::Busy),
            _ => {}
        }
        let Some((start, allocation)) = monitor.allocation_of(page) else {
            return Err(VmError::AddressFault {
                addr: self.address_of(PageNumber(page)),
                page: PageNumber(page),
            });
        };
        // Read-ahead stays inside this interval.
        let interval_end = start + allocation.count;
        monitor.counters.faults += 1;
        // A virtual copy's page still reading its source's place (`vcopy`).
        if !monitor.links.is_empty() && monitor.links.place_of(page).is_some() {
            self.bring_in_linked(monitor, page)?;
            return Ok(Served::Resident);
        }
        let sequential = stream && allocation.advice == Advice::Sequential;
        // Under sequential advice the next transfer is the read-ahead.
        let next = if sequential {
            Some(page + 1).filter(|&p| p < self.virtual_pages)
        } else {
            next
        };
        if sequential && !overwrite {
            let read = self.read_cluster(monitor, page)?;
            if read > 0 {
                self.note_stream(monitor, page, read);
                // The next cluster goes to the read-ahead thread (if there
                // is one) while this one is used — if it is in this
                // interval.
                if page + read < interval_end {
                    self.plan_read_ahead(monitor, page + read);
                }
                return Ok(Served::Resident);
            }
        }
        // Fresh pages of a sequential interval: zeros for a run at once.
        if sequential && !self.region.is_transparent() {
            let zeros = self.zero_run(monitor, page, true)?;
            if zeros > 0 {
                self.note_stream(monitor, page, zeros);
                return Ok(Served::Resident);
            }
        }
        self.bring_in(monitor, page, next, overwrite)?;
        // (Not after an overwrite: a stream that overwrites whole pages
        // would have the next ones read, page by page, only to overwrite
        // them too.)
        if sequential && !overwrite {
            // Pages past the cluster (zero-fill, or on other disk pages):
            // read ahead page by page, keeping the page that faulted from
            // being replaced by its own read-ahead.
            let ahead = READ_AHEAD_PAGES.min(monitor.budget() / 4);
            *monitor.pins.entry(page).or_insert(0) += 1;
            let mut brought = 1;
            for next in page + 1..(page + 1 + ahead).min(interval_end) {
                // (A virtual copy's page still linked comes in only by its
                // own fault: `bring_in` would zero-fill it — review.)
                if states.load(next).tag() != TAG_ABSENT || monitor.links.place_of(next).is_some() {
                    break;
                }
                // Read-ahead is a guess: if it cannot get a frame or its
                // read fails, the page is simply left for a later fault.
                if self.bring_in(monitor, next, None, false).is_err() {
                    break;
                }
                monitor.counters.read_aheads += 1;
                brought += 1;
            }
            self.note_stream(monitor, page, brought);
            let pins = monitor.pins.get_mut(&page).expect("pinned above");
            *pins -= 1;
            if *pins == 0 {
                monitor.pins.remove(&page);
            }
        }
        Ok(Served::Resident)
    }

    /// Monitor held on entry and exit.
    ///
    /// Sequential read-ahead by runs: brings in `page` and the pages after
    /// it that are absent, allocated, on disk and on consecutive disk pages
    /// of the same drive — up to the read-ahead window — with **one**
    /// transfer straight into their frames (consecutive virtual pages sit
    /// at consecutive addresses of the region). Returns the pages read; 0, having
    /// changed nothing, when that would be a single page (the caller serves
    /// it page by page); a failed cluster read falls back the same way, so
    /// a bad page ahead never fails the fault on `page`.
    fn read_cluster(&self, monitor: &mut Monitor, page: u64) -> Result<u64, VmError> {
        let window = self.stream_window(monitor, page);
        self.free_behind(monitor, page, window);
        self.read_run(monitor, page, window)
    }

    /// Monitor held on entry and exit.
    ///
    /// The read-ahead window of the stream that reaches `page`. It adapts
    /// to the stream, as a page cache's read-ahead does: twice the pages
    /// this stream has read in order and still holds (the pages just before
    /// `page` that are not absent), at least `READ_AHEAD_MIN`. A stream
    /// that keeps its pages grows to the maximum; memory pressure that
    /// evicts what was read ahead keeps windows small, and so do many
    /// streams at once: `n` of them share a quarter of real memory (see
    /// `streams`) — so read-ahead does not evict itself.
    pub(crate) fn stream_window(&self, monitor: &Monitor, page: u64) -> u64 {
        let max = Self::run_max(monitor);
        let behind = self.resident_before(page, max);
        // Many streams at once share a quarter of real memory (see
        // `streams`): what a stream holds behind it does not say how many
        // others read ahead beside it.
        (2 * behind)
            .clamp(READ_AHEAD_MIN.min(max), max)
            .min(Self::stream_share(monitor))
    }

    /// Monitor held on entry and exit.
    ///
    /// Notes that a stream's fault at `page` brought in `count` pages from
    /// it (at least one: see `streams`). Where it follows no stream
    /// directly, the run of pages resident just before `page` is counted —
    /// what the stream left resident behind it, or what it read past
    /// without a fault — up to the horizon: a stream that read past more
    /// than that without a fault would be over by then anyway.
    pub(crate) fn note_stream(&self, monitor: &mut Monitor, page: u64, count: u64) {
        let horizon = Self::stream_horizon(monitor);
        let behind = || self.resident_before(page, horizon);
        monitor.streams.note(page, count, behind, horizon);
    }

    /// The run of pages just before `page` that are not absent, counted up
    /// to `limit`.
    fn resident_before(&self, page: u64, limit: u64) -> u64 {
        let states = self.states();
        let mut behind = 0u64;
        while behind < limit && behind < page && states.load(page - behind - 1).tag() != TAG_ABSENT
        {
            behind += 1;
        }
        behind
    }

    /// Monitor held on entry and exit.
    ///
    /// The largest window of one stream while `n` streams are live (see
    /// `streams`): a quarter of real memory over `n`, at least
    /// `READ_AHEAD_MIN` (or `run_max`, if that is less).
    fn stream_share(monitor: &Monitor) -> u64 {
        let live = monitor.streams.live(Self::stream_horizon(monitor));
        let least = READ_AHEAD_MIN.min(Self::run_max(monitor));
        (monitor.budget() / (4 * live)).max(least)
    }

    /// Monitor held on entry and exit.
    ///
    /// Pages read, all streams together, after which a stream that has
    /// not faulted again is over: half of real memory (see `streams`).
    fn stream_horizon(monitor: &Monitor) -> u64 {
        monitor.budget() / 2
    }

    /// Monitor held on entry and exit.
    ///
    /// The most pages one cluster read brings in: 1 MiB of 4 KiB pages, and
    /// never more than a quarter of real memory.
    pub(crate) fn run_max(monitor: &Monitor) -> u64 {
        READ_AHEAD_PAGES.min(monitor.budget() / 4).max(1)
    }

    /// Monitor held on entry and exit.
    ///
    /// The run a cluster read at `page` would bring in: `page` and the
    /// pages after it that are absent, allocated, on disk and on
    /// consecutive disk pages of one drive, at most `window` of them — its
    /// first disk address and length, if that is at least two pages.
    pub(crate) fn run_at(
        &self,
        monitor: &Monitor,
        page: u64,
        window: u64,
    ) -> Result<Option<(runtable::DiskAddr, u64)>, VmError> {
        let states = self.states();
        let Some(volume) = monitor.volume.as_ref() else {
            return Ok(None);
        };
        let word = states.load(page);
        let Some((start, allocation)) = monitor.allocation_of(page) else {
            return Ok(None);
        };
        // A page's volume copy counts only where its source says it may be
        // read (a shared mapping's swap cache, once off, leaves stale ones).
        // A virtual copy's page still linked comes in only by its own fault
        // (`bring_in_linked`, from its place): a run read from its slot
        // would make it an ordinary page while its link stays (found by the
        // property test once runs were read under `Normal` advice: the
        // links then formed a loop).
        let copy = |p: u64| {
            (monitor.links.is_empty() || monitor.links.place_of(p).is_none())
                && match monitor.files.source_of(p) {
                    Source::Anonymous => true,
                    Source::File(file, _) => file.volume_copy_valid(),
                }
        };
        if word.tag() != TAG_ABSENT || !word.has(ON_DISK) || window < 2 || !copy(page) {
            return Ok(None);
        }
        // A run stays inside `page`'s own interval: read-ahead never
        // latches pages of a neighbour (whose `free` or `kill` would then
        // find them busy — found by review).
        let window = window.min(start + allocation.count - page);
        let first = volume.translate(PageNumber(page))?;
        let mut count = 1u64;
        while count < window && page + count < self.virtual_pages {
            let p = page + count;
            let word = states.load(p);
            let consecutive = volume
                .translate(PageNumber(p))
                .is_ok_and(|d| d.drive == first.drive && d.page.0 == first.page.0 + count);
            if word.tag() != TAG_ABSENT
                || !word.has(ON_DISK)
                || monitor.allocation_of(p).is_none()
                || !consecutive
                || !copy(p)
            {
                break;
            }
            count += 1;
        }
        Ok((count >= 2).then_some((first, count)))
    }

    /// Monitor held on entry and exit.
    ///
    /// `Normal` advice: streams are found as a page cache finds them. A
    /// fault whose `min_run` previous pages are resident, the one next to
    /// it referenced (a stream going up), reads a cluster from `page` up;
    /// one whose `min_run` next pages are (a stream going down: a
    /// partition's right-hand scan) reads a cluster ending at `page`. The window is twice the stream's resident
    /// run, 8 pages at least, at most `run_max` and the stream's share of
    /// memory (`stream_share`) — the sequential window's rule
    /// (`stream_window`), so streams under memory pressure, or many at
    /// once, keep small windows. (A stream going up is noted as one; one
    /// going down is not.) Returns whether `page` came in; with nothing read, the
    /// caller serves it alone.
    ///
    /// Transparent mode asks for 2 pages (a program reached by plain loads
    /// does not call `advise`). The copying API asks for 4, in the default
    /// monitor scope: a reader at random with a quarter of its data
    /// resident finds 2 resident pages before its fault by chance once in
    /// 16 faults, 4 once in 256 — while a merge's streams, each in order
    /// and all at once, are found after their fourth page, which `Random`
    /// advice to the kernel cannot do and its read-around (8 MiB windows
    /// here) does at a cost that thrashes (measured: `bench out-of-core`,
    /// sort). The seed's scope keeps Cedar's page at a time under `Normal`
    /// (the seek-ahead experiments reproduce the seed's).
    pub(crate) fn read_stream(
        &self,
        monitor: &mut Monitor,
        page: u64,
        min_run: u64,
    ) -> Result<bool, VmError> {
        let states = self.states();
        let resident = |p: u64| states.load(p).tag() != TAG_ABSENT;
        // The neighbour on a stream's side was used (or read for the
        // stream): referenced. Pages a fault read around it into free
        // memory come in unreferenced, and a block of them is no stream.
        // (A stream whose last page the clock passed between its use and
        // this fault is missed once: this page then comes in alone, and
        // is referenced for the next. Transparent mode: plain loads set
        // no reference bit.)
        let transparent = self.region.is_transparent();
        let used = |p: u64| {
            let word = states.load(p);
            word.tag() != TAG_ABSENT && (transparent || word.has(REFERENCED))
        };
        // Most faults at random have neither neighbour resident: done
        // before the interval is looked up.
        let before = page > 0 && used(page - 1);
        let after = page + 1 < self.virtual_pages && used(page + 1);
        if !before && !after {
            return Ok(false);
        }
        let Some((start, allocation)) = monitor.allocation_of(page) else {
            return Ok(false);
        };
        let end = start + allocation.count;
        let max = Self::run_max(monitor);
        let mut behind = 0u64;
        while behind < max && page - behind > start && resident(page - behind - 1) {
            behind += 1;
        }
        let mut ahead = 0u64;
        while ahead < max && page + ahead + 1 < end && resident(page + ahead + 1) {
            ahead += 1;
        }
        // (Its streams share memory with the others: see `streams`.)
        let shared = Self::stream_share(monitor);
        let window = |run: u64| (2 * run).clamp(READ_AHEAD_MIN.min(max), max).min(shared);
        let read = if behind >= min_run {
            let read = self.read_run(monitor, page, window(behind))?;
            if read > 0 {
                self.note_stream(monitor, page, read);
            }
            read
        } else if ahead >= min_run {
            // The absent pages just below `page`, down to the window.
            let first = self.absent_below(page, start, window(ahead).saturating_sub(1));
            self.read_run(monitor, first, page - first + 1)?
        } else {
            0
        };
        Ok(read > 0 && states.load(page).tag() == TAG_RESIDENT)
    }

    /// The lowest page of the run just below `page` — at most `most`
    /// pages, none below `start` — whose pages are all absent with a disk
    /// copy; `page` itself if there is none. Monitor held (absent words
    /// change only under it).
    pub(crate) fn absent_below(&self, page: u64, start: u64, most: u64) -> u64 {
        let states = self.states();
        let mut first = page;
        while page - first < most && first > start && {
            let below = states.load(first - 1);
            below.tag() == TAG_ABSENT && below.has(ON_DISK)
        } {
            first -= 1;
        }
        first
    }

    /// Monitor held on entry and exit.
    ///
    /// Brings in `page` and the pages after it that are absent, allocated,
    /// on disk and on consecutive disk pages of the same drive — at most
    /// `window` pages — with one transfer straight into their frames (see
    /// `read_cluster`); returns the pages read. 0, having changed nothing,
    /// when that would be a single page or the cluster read fails.
    pub(crate) fn read_run(
        &self,
        monitor: &mut Monitor,
        page: u64,
        window: u64,
    ) -> Result<u64, VmError> {
        let Some((first, count)) = self.run_at(monitor, page, window)? else {
            return self.read_file_run(monitor, page, window);
        };
        let Some(latches) = self.latch_run(monitor, page, count) else {
            return Ok(0);
        };
        let count = latches.len() as u64;
        let volume = monitor.volume.as_ref().expect("checked above");
        // The next transfer of a sequential scan starts where this cluster
        // ends (a queued fault on the next page would be inside it).
        let hint = Some(page + count)
            .filter(|&n| self.seek_ahead && n < self.virtual_pages)
            .and_then(|n| volume.translate(PageNumber(n)).ok())
            .filter(|d| d.drive == first.drive)
            .map(|d| d.page);
        // SAFETY: `latches` hold every page of the cluster, absent,
        // exclusively.
        let read = unsafe {
            self.region.fill(page, count, |bytes| {
                volume.channel().read(first.drive, first.page, bytes, hint)
            })
        };
        if read.is_err() {
            // Nothing stays committed; the latches put the pages back as
            // absent; the caller reads `page` alone.
            return Ok(0);
        }
        monitor.counters.page_ins += count;
        monitor.counters.read_aheads += count - 1;
        monitor.counters.cluster_reads += 1;
        monitor.counters.seek_ahead_hints += u64::from(hint.is_some());
        for latch in latches {
            monitor.install_frame(latch.page());
            latch.release(TAG_RESIDENT, REFERENCED, DIRTY);
        }
        Ok(count)
    }

    /// Monitor held on entry and exit.
    ///
    /// A stream of fresh pages (copying mode): a fault on a page with no
    /// copy anywhere (no disk copy, no file, no virtual copy's source)
    /// whose two previous pages are resident, under `Normal` advice (or,
    /// `sequential`, in an interval advised so) zero-fills a run of such
    /// pages from it at once — the window of `stream_window`, twice the
    /// stream's resident run, 8 pages at least and at most `run_max` and the
    /// stream's share (`stream_share`) — as one
    /// install of zeros (from the frame pool: one `memset` and one move,
    /// where a page at a time costs the kernel's fault, allocation, zeroing
    /// and charge each). Returns the pages made resident; 0, having changed
    /// nothing, when that would be fewer than two.
    pub(crate) fn zero_run(
        &self,
        monitor: &mut Monitor,
        page: u64,
        sequential: bool,
    ) -> Result<u64, VmError> {
        let states = self.states();
        let Some((start, allocation)) = monitor.allocation_of(page) else {
            return Ok(0);
        };
        if !sequential
            && (page < start + 2
                || states.load(page - 1).tag() == TAG_ABSENT
                || states.load(page - 2).tag() == TAG_ABSENT)
        {
            return Ok(0);
        }
        let window = self
            .stream_window(monitor, page)
            .min(start + allocation.count - page);
        let fresh = |p: u64| {
            let word = states.load(p);
            word.tag() == TAG_ABSENT
                && !word.has(ON_DISK)
                && matches!(monitor.files.source_of(p), Source::Anonymous)
                && monitor.links.place_of(p).is_none()
        };
        let count = (page..page + window).take_while(|&p| fresh(p)).count() as u64;
        if count < 2 {
            return Ok(0);
        }
        let Some(latches) = self.latch_run(monitor, page, count) else {
            return Ok(0);
        };
        let count = latches.len() as u64;
        // SAFETY: `latches` hold every page of the run, absent, exclusively.
        if unsafe { self.region.fill_zeros(page, count) }.is_err() {
            // Nothing stays committed; the latches put the pages back as
            // absent; the caller serves `page` alone.
            return Ok(0);
        }
        monitor.counters.zero_fills += count;
        for latch in latches {
            monitor.install_frame(latch.page());
            // The pages ahead are a guess: unreferenced until touched, so
            // the clock takes them first if the stream stops.
            let referenced = if latch.page() == page { REFERENCED } else { 0 };
            latch.release(TAG_RESIDENT, referenced, DIRTY | REFERENCED);
        }
        Ok(count)
    }

    /// Monitor held on entry and exit.
    ///
    /// Frames and exclusive latches for the `count` absent pages from
    /// `page`, evicting as needed (with fewer frames to be had, a shorter
    /// run): the latches, or `None` if that would be fewer than two pages.
    fn latch_run(
        &self,
        monitor: &mut Monitor,
        page: u64,
        count: u64,
    ) -> Option<Vec<ExclusiveLatch<'_>>> {
        let states = self.states();
        while (monitor.free_frames.len() as u64) < count {
            if self.evict_batch(monitor, page).is_err() {
                break;
            }
        }
        let count = count.min(monitor.free_frames.len() as u64);
        if count < 2 {
            return None;
        }
        let latches = (page..page + count)
            .map(|p| states.latch_absent(p))
            .collect();
        monitor.forget_copies(page, page + count);
        Some(latches)
    }

    /// Monitor held on entry and exit.
    ///
    /// The run a read of a mapped file's pages at `page` would bring in:
    /// `page` and the pages after it in its mapping that are absent and
    /// come from the file (see `mapped`), at most `window` — the file, its
    /// first file page and the length, if that is at least two pages.
    pub(crate) fn file_run_at(
        &self,
        monitor: &Monitor,
        page: u64,
        window: u64,
    ) -> Option<(std::sync::Arc<crate::mapped::MappedFile>, u64, u64)> {
        let (file, at) = self.absent_from_file(monitor, page)?;
        let mut count = 1u64;
        while count < window
            && monitor.files.continues(page + count - 1)
            && self.absent_from_file(monitor, page + count).is_some()
        {
            count += 1;
        }
        (count >= 2).then_some((file, at, count))
    }

    /// Monitor held on entry and exit.
    ///
    /// The file and file page `page` would be read from, if it is absent
    /// and its contents are its mapped file's (not a copy in the volume).
    pub(super) fn absent_from_file(
        &self,
        monitor: &Monitor,
        page: u64,
    ) -> Option<(std::sync::Arc<crate::mapped::MappedFile>, u64)> {
        let word = self.states().load(page);
        match monitor.files.source_of(page) {
            Source::File(file, at) if reads_from_file(word, || file.volume_copy_valid()) => {
                Some((file, at))
            }
            _ => None,
        }
    }

    /// Monitor held on entry and exit.
    ///
    /// `read_run` for a mapped file's pages: `page` and the pages after it
    /// in its mapping that are absent and come from the file (see
    /// `mapped`) — at most `window` — read with one `pread` straight into
    /// their frames. 0, having changed nothing, when that would be a single
    /// page or the read fails (the caller reads `page` alone, and meets the
    /// error itself).
    pub(crate) fn read_file_run(
        &self,
        monitor: &mut Monitor,
        page: u64,
        window: u64,
    ) -> Result<u64, VmError> {
        let Some((file, at, count)) = self.file_run_at(monitor, page, window) else {
            return Ok(0);
        };
        let Some(latches) = self.latch_run(monitor, page, count) else {
            return Ok(0);
        };
        let count = latches.len() as u64;
        // SAFETY: `latches` hold every page of the run, absent, exclusively.
        let read = unsafe {
            self.region
                .fill(page, count, |bytes| file.read_pages(at, bytes))
        };
        if read.is_err() {
            return Ok(0);
        }
        monitor.counters.read_aheads += count - 1;
        monitor.counters.cluster_reads += 1;
        for latch in latches {
            monitor.install_frame(latch.page());
            // Whatever copy the volume held is stale (the cache was off).
            latch.release(TAG_RESIDENT, REFERENCED, DIRTY | ON_DISK);
        }
        Ok(count)
    }

    /// Monitor held on entry and exit.
    ///
    /// Puts absent, allocated `page` into a frame: zero-fill or page-in,
    /// with seek-ahead toward `next`; with `overwrite`, no read even if the
    /// page has a disk copy (the accessor overwrites all of it, and
    /// `latch_after` refuses it to a writer if it is read-only). On an
    /// error the page is absent again
    /// (its latch guard restores it, its memory is given back) and every
    /// victim chosen for the next eviction is resident again: the VM is as
    /// usable as before.
    fn bring_in(
        &self,
        monitor: &mut Monitor,
        page: u64,
        next: Option<u64>,
        overwrite: bool,
    ) -> Result<(), VmError> {
        let states = self.states();
        if monitor.free_frames.is_empty() {
            self.evict_batch(monitor, page)?;
        }
        // If this page takes the last free frame, the next fault would start
        // with write-backs, and a hint at its page would be wasted: choose
        // the next eviction's victims now, hint this read at the first
        // write-back, and write them back right after it (the last hinting
        // at `next`).
        let next_victims = if monitor.free_frames.len() == 1 && monitor.volume.is_some() {
            self.select_victims(monitor, page).ok()
        } else {
            None
        };
        let latch = states.latch_absent(page);
        monitor.forget_copies(page, page + 1);
        let read_only = latch.was().has(READ_ONLY);
        let on_disk = latch.was().has(ON_DISK);
        // A mapped file's page with no copy in the volume comes from the
        // file (see `mapped`).
        let file = match monitor.files.source_of(page) {
            Source::File(file, at) if !on_disk || !file.volume_copy_valid() => Some((file, at)),
            _ => None,
        };
        let on_disk = on_disk && file.is_none();
        if overwrite && (on_disk || file.is_some()) && !read_only {
            // The read this saves: released memory reads as zeros, and the
            // accessor overwrites all of it (in transparent mode, zeros
            // installed: the page must be present for its writer).
            // SAFETY: `latch` holds the page, absent, exclusively.
            unsafe { self.region.fill_zeros(page, 1) }?;
            monitor.counters.overwrites += 1;
        } else if on_disk {
            let volume = monitor
                .volume
                .as_ref()
                .expect("pages on disk imply a volume");
            let disk = volume.translate(PageNumber(page))?;
            let target = match next_victims
                .as_deref()
                .and_then(|v| self.first_write_back(monitor, v))
            {
                Some(write_back) => Some(write_back),
                None => next.and_then(|next| volume.translate(PageNumber(next)).ok()),
            };
            let hint = target
                .filter(|t| self.seek_ahead && t.drive == disk.drive)
                .map(|t| t.page);
            // SAFETY: `latch` holds the exclusive latch on `page`, absent.
            // On an error nothing stays committed (the page stays on disk,
            // so its next fault reads it again).
            let read = unsafe {
                self.region.fill(page, 1, |bytes| {
                    volume.channel().read(disk.drive, disk.page, bytes, hint)
                })
            };
            match read {
                Ok(()) => {}
                Err(FillError::Read(source)) => {
                    return Err(VmError::Io {
                        page: PageNumber(page),
                        disk,
                        source,
                    });
                }
                Err(FillError::Install(e)) => return Err(e),
            }
            monitor.counters.seek_ahead_hints += u64::from(hint.is_some());
            monitor.counters.page_ins += 1;
        } else if let Some((file, at)) = file {
            // SAFETY: `latch` holds the exclusive latch on `page`, absent.
            unsafe {
                self.region
                    .fill(page, 1, |bytes| file.read_pages(at, bytes))
            }
            .map_err(|e| match e {
                FillError::Read(e) | FillError::Install(e) => e,
            })?;
        } else {
            // The page's memory was released (or never touched), so it
            // already reads as zeros: no I/O and no copy (in transparent
            // mode, zeros installed write-protected).
            // SAFETY: `latch` holds the page, absent, exclusively.
            unsafe { self.region.fill_zeros(page, 1) }?;
            monitor.counters.zero_fills += 1;
        }
        monitor.install_frame(page);
        latch.release(TAG_RESIDENT, REFERENCED, DIRTY);
        if let Some(victims) = next_victims {
            // A failed write-back leaves the victims resident and dirty; the
            // next fault that needs a frame meets the error itself.
            let _ = self.write_back_and_release(monitor, victims, next, page);
        }
        Ok(())
    }
}

/// Whether a mapped file's page whose state is `word` comes from the file
/// at its fault: absent, with no copy in the volume to read instead
/// (`copy_valid`: the mapping's swap cache holds the file's bytes).
pub(super) fn reads_from_file(word: crate::state::Word, copy_valid: impl FnOnce() -> bool) -> bool {
    word.tag() == TAG_ABSENT && (!word.has(ON_DISK) || !copy_valid())
}
