//! The mmap-style calls of the address space (4.4BSD's `mmap` and Mach's
//! `vm_map` brought into the single address space): mapping a file, shared
//! or private ([`AddressSpace::map_file`]), lowering an interval's maximum
//! protection ([`AddressSpace::restrict`]), and the counters of each mapped
//! file ([`AddressSpace::file_stats`]). Where pages come from and go to is
//! `mapped`'s table, which the fault path and the write-back ask.

use crate::error::VmError;
use crate::mapped::{MapFile, MappedFile, Protection, Sharing};
use crate::space::AddressSpace;
use crate::state::READ_ONLY;
use runtable::Interval;
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
