//! The VM's counters ([`VmStats`]) and the outside view of the real-memory
//! bound (`kernel_resident_pages`).

use crate::error::VmError;
use crate::space::AddressSpace;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

/// The VM's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmStats {
    /// Faults served (accesses that found the page absent).
    pub faults: u64,
    /// Accesses that found the page resident.
    pub hits: u64,
    /// Pages served with zeros, no I/O (a fault zero-fills its page, or a
    /// run of a stream of fresh pages: see `zero_run`).
    pub zero_fills: u64,
    /// Pages read from the backing store.
    pub page_ins: u64,
    /// Pages written to the backing store by eviction and by write-behind
    /// (`cleaned_ahead`); `clean`, `flush` and `sync` write-backs are in
    /// the drives' counts (`disk_pages_written`), not here.
    pub page_outs: u64,
    /// Pages brought in ahead of a sequential fault.
    pub read_aheads: u64,
    /// Pages replaced.
    pub evictions: u64,
    /// Transfers that carried a seek-ahead hint (from the drives).
    pub seek_aheads_issued: u64,
    /// Hints the next transfer used (from the drives).
    pub seek_aheads_used: u64,
    /// Pages resident now.
    pub resident_pages: u64,
    /// Most pages ever resident at once.
    pub resident_high_water: u64,
    /// The real-memory budget in pages.
    pub real_memory_pages: u64,
    /// Pages allocated.
    pub allocated_pages: u64,
    /// Total time the monitor was held, nanoseconds.
    pub monitor_held_ns: u64,
    /// Write-backs during replacement that failed even after a remap (the
    /// page stayed resident and changed).
    pub write_back_failures: u64,
    /// Pages moved to a spare disk page after a failed write.
    pub remaps: u64,
    /// Faults on pages with a disk copy served without reading it, because
    /// the access overwrote the whole page (a `write` covering it, or
    /// `page_mut_overwrite`).
    pub overwrites: u64,
    /// Sequential read-aheads done as one transfer of several consecutive
    /// pages.
    pub cluster_reads: u64,
    /// Of those, the clusters read by the read-ahead thread, planned ahead
    /// of a sequential stream (the default monitor scope).
    #[serde(default)]
    pub async_read_aheads: u64,
    /// Write-backs during replacement done as one transfer of several
    /// consecutive pages.
    pub cluster_writes: u64,
    /// Read transfers the drives served (one transfer may move many pages).
    pub disk_reads: u64,
    /// Pages those read transfers moved.
    pub disk_pages_read: u64,
    /// Write transfers the drives served.
    pub disk_writes: u64,
    /// Pages those write transfers moved.
    pub disk_pages_written: u64,
    /// Transparent mode: faults served from the reclaim list (a copy kept
    /// at eviction) instead of the drive.
    #[serde(default)]
    pub reclaims: u64,
    /// Transparent mode: the part of the real-memory budget set aside for
    /// the reclaim list (the frames are the rest).
    #[serde(default)]
    pub reclaim_pages: u64,
    /// A persistent space: images of synced pages written to its journal
    /// before their first rewrite in place since a map commit (see
    /// [`crate::persist`]'s durability contract).
    #[serde(default)]
    pub journal_images: u64,
    /// A persistent space: times its journal was full and the drives were
    /// synced to start it anew.
    #[serde(default)]
    pub journal_checkpoints: u64,
    /// Pages read from the files mapped now (not in `page_ins`, which
    /// counts the volume's); per file in `AddressSpace::file_stats`.
    #[serde(default)]
    pub file_page_ins: u64,
    /// Pages written to the files mapped now (not in `page_outs`).
    #[serde(default)]
    pub file_page_outs: u64,
    /// Virtual copies: destination pages linked to their source's place.
    #[serde(default)]
    pub copy_links: u64,
    /// Of those, the ones copied to their own slot because the place was
    /// about to be overwritten (the others were read at their fault, or
    /// never).
    #[serde(default)]
    pub copies_materialized: u64,
    /// The frame pool's size in pages (0: none; see
    /// [`VmConfig::move_frames`](crate::VmConfig::move_frames)): memory
    /// beyond the budget, in passage between transfers and pages.
    #[serde(default)]
    pub frame_pool_pages: u64,
    /// Pages moved from the pool to their addresses: runs read into it,
    /// and runs of zeros.
    #[serde(default)]
    pub frames_moved_in: u64,
    /// Evicted pages whose memory moved into the pool (not given back).
    #[serde(default)]
    pub frames_moved_out: u64,
    /// Pages the kernel would not move in, copied from the pool instead.
    #[serde(default)]
    pub frames_copied_in: u64,
    /// Moves the kernel refused (a page shared with a child after a
    /// `fork`, or pinned): done the plain way instead.
    #[serde(default)]
    pub frame_moves_refused: u64,
    /// The frame pool's 2 MiB chunks committed at once as one huge page
    /// (see [`VmConfig::huge_pool_chunks`](crate::VmConfig::huge_pool_chunks)).
    #[serde(default)]
    pub frame_pool_huge_chunks: u64,
    /// Runs read into the frame pool whose move found a page still pinned
    /// by the read (the kernel unpins a direct read's pages after waking
    /// the reader) and waited for it, up to 5 ms, rather than copy every
    /// page of the run into fresh memory at once; what stays pinned longer
    /// is copied (`frames_copied_in`).
    #[serde(default)]
    pub frame_pin_waits: u64,
    /// Dirty pages written behind by the read-ahead thread before the
    /// clock reached them (so their eviction had no write to wait for).
    #[serde(default)]
    pub cleaned_ahead: u64,
    /// System calls that gave pages' memory back as they left real memory
    /// (evicted, dropped by `DontNeed`, killed or freed): `madvise`,
    /// `process_madvise` (up to 64 runs each) and moves of runs into the
    /// frame pool. (A `process_madvise` the kernel refuses is not counted;
    /// the `madvise` calls made instead are.)
    #[serde(default)]
    pub release_calls: u64,
    /// Clean pages a sequential stream evicted behind itself, in an
    /// interval advised `Sequential` larger than real memory (see
    /// [`Advice::Sequential`](crate::Advice::Sequential)); counted in
    /// `evictions` too.
    #[serde(default)]
    pub freed_behind: u64,
    /// Cluster reads a thread started itself on a ring (see
    /// [`VmConfig::inline_read_ahead`](crate::VmConfig::inline_read_ahead)):
    /// a sequential stream's read-ahead, started by the faulting thread and
    /// counted in `async_read_aheads` too; and, on a drive read with
    /// `O_DIRECT`, the clusters of `touch`, `pin` and the will-need thread,
    /// each waited for by the thread that asked.
    #[serde(default)]
    pub inline_reads: u64,
    /// Of `inline_reads`, those nobody met: finished (or, after a failed
    /// read, undone) by the read-ahead thread 20–40 ms after their
    /// completion was first seen (the program stopped reading the stream),
    /// or at close. The others were finished by a thread that met them.
    #[serde(default)]
    pub inline_reads_unmet: u64,
    /// The most of `inline_reads` in flight at once (started and not yet
    /// finished): a sequential stream keeps as many clusters in flight as
    /// the frame pool holds less two, from two to six (see
    /// [`Advice::Sequential`](crate::Advice::Sequential)); `touch` and the
    /// will-need thread up to two more.
    #[serde(default)]
    pub inline_reads_in_flight_high: u64,
    /// Pages advised `WillNeed` and queued for the will-need thread (see
    /// [`Advice::WillNeed`](crate::Advice::WillNeed)); advice brought in at
    /// once (no thread) is not counted.
    #[serde(default)]
    pub will_need_queued_pages: u64,
    /// Pages advised `WillNeed` whose advice was dropped: the pages
    /// waiting would have passed three quarters of real memory. `settle`
    /// does not wait for them.
    #[serde(default)]
    pub will_need_dropped_pages: u64,
    /// Faults that read their neighbours with them into free memory
    /// ([`VmConfig::read_around_free`](crate::VmConfig::read_around_free));
    /// each is one of `cluster_reads` and `inline_reads`, its pages past
    /// the one asked for counted in `read_aheads`.
    #[serde(default)]
    pub free_read_arounds: u64,
}
impl AddressSpace {
    /// The VM's counters.
    pub fn stats(&self) -> VmStats {
        let monitor = self.lock_monitor();
        let drives = monitor
            .volume
            .as_ref()
            .map(|v| v.channel().total_stats())
            .unwrap_or_default();
        let [
            frame_pool_pages,
            frames_moved_in,
            frames_moved_out,
            frames_copied_in,
            frame_moves_refused,
            frame_pool_huge_chunks,
            frame_pin_waits,
        ] = self.region.pool_counts();
        let (will_need_queued_pages, will_need_dropped_pages) =
            self.will_need.as_ref().map_or((0, 0), |q| q.counts());
        VmStats {
            cleaned_ahead: self
                .read_ahead
                .as_ref()
                .map_or(0, |r| r.cleaned.load(Ordering::Relaxed)),
            frame_moves_refused,
            frame_pool_huge_chunks,
            frame_pin_waits,
            inline_reads: self.inline_reads(),
            inline_reads_unmet: self.inline_reads_unmet(),
            inline_reads_in_flight_high: self.inline_reads_in_flight_high(),
            will_need_queued_pages,
            will_need_dropped_pages,
            frame_pool_pages,
            release_calls: self.region.release_calls(),
            frames_moved_in,
            frames_moved_out,
            frames_copied_in,
            faults: monitor.counters.faults,
            hits: self.hits.total(),
            zero_fills: monitor.counters.zero_fills,
            page_ins: monitor.counters.page_ins,
            // Pages written behind are pages written out too.
            page_outs: monitor.counters.page_outs
                + self
                    .read_ahead
                    .as_ref()
                    .map_or(0, |r| r.cleaned.load(Ordering::Relaxed)),
            read_aheads: monitor.counters.read_aheads,
            evictions: monitor.counters.evictions,
            seek_aheads_issued: drives.seek_aheads_issued,
            seek_aheads_used: drives.seek_aheads_used,
            resident_pages: monitor.resident(),
            resident_high_water: monitor.counters.resident_high_water,
            real_memory_pages: monitor.budget()
                + monitor.reclaim.as_ref().map_or(0, |r| r.capacity()),
            allocated_pages: monitor.allocated_pages,
            monitor_held_ns: self.monitor_held_ns.load(Ordering::Relaxed),
            write_back_failures: monitor.counters.write_back_failures,
            remaps: monitor.counters.remaps,
            overwrites: monitor.counters.overwrites,
            cluster_reads: monitor.counters.cluster_reads,
            async_read_aheads: monitor.counters.async_read_aheads,
            cluster_writes: monitor.counters.cluster_writes,
            freed_behind: monitor.counters.freed_behind,
            free_read_arounds: monitor.counters.free_read_arounds,
            disk_reads: drives.reads,
            disk_pages_read: drives.pages_read,
            disk_writes: drives.writes,
            disk_pages_written: drives.pages_written,
            reclaims: monitor.counters.reclaims,
            reclaim_pages: monitor.reclaim.as_ref().map_or(0, |r| r.capacity()),
            journal_images: monitor.journal.as_ref().map_or(0, |j| j.images_written),
            journal_checkpoints: monitor.journal.as_ref().map_or(0, |j| j.checkpoints),
            file_page_ins: monitor
                .files
                .files()
                .map(|f| f.page_ins.load(Ordering::Relaxed))
                .sum(),
            copy_links: monitor.links.made,
            copies_materialized: monitor.links.materialized,
            file_page_outs: monitor
                .files
                .files()
                .map(|f| f.page_outs.load(Ordering::Relaxed))
                .sum(),
        }
    }

    /// Pages of the address space the kernel holds in memory now, counted
    /// with `mincore` — the outside view of the real-memory bound (it can
    /// exceed the budget only while an eviction batch is being released).
    pub fn kernel_resident_pages(&self) -> Result<u64, VmError> {
        self.region.kernel_resident_pages()
    }
}
