//! The mmap-style calls of the address space (4.4BSD's `mmap` and Mach's
//! `vm_map` brought into the single address space): mapping a file, shared
//! or private ([`AddressSpace::map_file`]), lowering an interval's maximum
//! protection ([`AddressSpace::restrict`]), and the counters of each mapped
//! file ([`AddressSpace::file_stats`]). Where pages come from and go to is
//! `mapped`'s table, which the fault path and the write-back ask.

use crate::error::VmError;
use crate::mapped::{MapFile, MappedFile, Protection, Sharing};
use crate::monitor::Monitor;
use crate::space::AddressSpace;
use crate::state::{DIRTY, READ_ONLY, REFERENCED, TAG_ABSENT, TAG_RESIDENT, WRITABLE};
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
}

impl AddressSpace {
    /// Maps `how.pages` pages of `file` from byte `how.offset` into a new
    /// interval, [`Sharing::Shared`] (faults read the file; changed pages
    /// go back to it on eviction, `clean`, `flush` — which also syncs it —
    /// and `free`) or [`Sharing::Private`] (copy-on-write: faults read the
    /// file until a page is changed and written back, to the volume, after
    /// which it comes from the volume; nothing reaches the file). Pages past
    /// the file's end read as zeros; a shared mapping writes past the end
    /// only if `how.allow_grow`. See `mapped` for the whole contract.
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
        let refuse = |reason: &str| VmError::Config {
            field: "map_file",
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
        monitor
            .files
            .insert(start, how.pages, mapped, how.offset / self.page_size as u64);
        if how.max_protection == Protection::Read {
            let why = match how.sharing {
                Sharing::Shared => "mapped shared with maximum protection read",
                Sharing::Private => "mapped private with maximum protection read",
            };
            monitor.files.restrict(start, end, why);
        }
        if how.protection == Protection::Read {
            let states = self.states();
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
            })
            .collect()
    }
}

/// What a call that would page, discard or write-protect through the
/// fault path says of wired memory.
fn wired_refusal(interval: Interval, what: &str) -> VmError {
    VmError::Config {
        field: "interval",
        reason: format!(
            "{interval:?} holds wired memory (map_memory), which is never paged: {what}"
        ),
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
        let refuse = |reason: String| VmError::Config {
            field: "map_memory",
            reason,
        };
        if pages == 0 || !offset.is_multiple_of(self.page_size as u64) {
            return Err(refuse(format!(
                "{pages} pages from byte {offset}: at least one page, from a multiple of the \
                 page size {}",
                self.page_size
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
        // SAFETY: the pages are wired (mapped by `map_fd`).
        if let Err(e) = unsafe { self.region.protect_fd(start, end - start, writable) } {
            return Some(Err(e));
        }
        let states = self.states();
        for page in start..end {
            if writable {
                states.clear_flags(page, READ_ONLY);
                states.set_flags(page, DIRTY | WRITABLE);
            } else {
                states.set_flags(page, READ_ONLY);
                states.clear_flags(page, WRITABLE);
            }
        }
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
