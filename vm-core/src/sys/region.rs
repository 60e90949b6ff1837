//! The machine-dependent part: the reserved address range that holds
//! resident pages, and the lazily committed array of page-state words.
//! The mapping calls of the address space live here (the `shm` segments'
//! shared mappings are in `shared_mapping`) (in the spirit of Mach's and 4.4BSD's `pmap`).
//!
//! # Why the range is mapped read-write, not "no access"
//!
//! The design card reserves the range with no access. We map it
//! `PROT_READ | PROT_WRITE` with `MAP_NORESERVE` instead: a page that was
//! never written, or was released with `MADV_DONTNEED`, costs no memory
//! either way, and read-write avoids one `mprotect` per install and per
//! release — which would also split the mapping into one kernel VMA per
//! resident page and hit `vm.max_map_count` at 65,530 pages. The safe API
//! never touches a page that is not resident (the page-state word says so
//! first), so nothing is lost. In transparent mode, where plain loads and
//! stores reach the range, it is registered with `userfaultfd` for
//! missing-page and write-protect faults (`sys::uffd`), which traps a
//! released page just as `PROT_NONE` would, and a clean one's first store
//! besides; every install is then a `UFFDIO_COPY` ([`Region::fill`]).
//!
//! A resident page sits at `base + page * P`. The region changes residency
//! only by [`Region::page_mut`] (install bytes into a page held exclusively)
//! and [`Region::release`] (give the memory back; the page reads as zeros
//! afterwards).

pub(crate) use super::frame_pool::RunUse;
use super::frame_pool::{FramePool, Lease, MIN_RUN};
use super::mapping::Mapping;
use super::uffd::Uffd;
use crate::error::VmError;
use rustix::mm::{Advice, MapFlags, MprotectFlags, ProtFlags};
use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The reserved range of the address space that holds resident pages.
#[derive(Debug)]
pub(crate) struct Region {
    mapping: Mapping,
    page_size: usize,
    pages: u64,
    /// A pidfd of this process for `process_madvise`, or `None` where the
    /// kernel refuses it (then each run of pages gets its own `madvise`).
    self_pidfd: OnceLock<Option<OwnedFd>>,
    /// Set once the kernel refused `process_madvise` on this process.
    batch_refused: AtomicBool,
    /// System calls that gave pages' memory back: `madvise`,
    /// `process_madvise`, and moves of runs into the pool.
    release_calls: AtomicU64,
    /// In transparent mode: the region's `userfaultfd` (SIGBUS mode) and
    /// its entry in the process's SIGBUS table.
    transparent: Option<Transparent>,
    /// In copying mode, where the kernel has `UFFDIO_MOVE`: the pool that
    /// runs of pages are read into and evicted to (`sys::frame_pool`).
    pool: Option<FramePool>,
}

/// The parts of a region in transparent mode.
#[derive(Debug)]
struct Transparent {
    uffd: Uffd,
    /// The slot of `sys::sigbus`'s table that names this region, once the
    /// address space has attached itself.
    slot: OnceLock<usize>,
}

/// A page-sized run of zeros to install from (the largest page size).
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// Why installing pages failed: the read that fills them, or the kernel's
/// refusal to map them.
#[derive(Debug)]
pub(crate) enum FillError<E> {
    /// The read failed; nothing was installed.
    Read(E),
    /// `UFFDIO_COPY` failed; what it had installed was released again.
    Install(VmError),
}

/// Most runs one `process_madvise` call takes (well under `IOV_MAX`).
const RELEASE_BATCH_MAX: usize = 64;

impl Region {
    /// Reserves `pages` pages of `page_size` bytes; with `transparent`,
    /// registered with a `userfaultfd` in SIGBUS mode for missing-page and
    /// write-protect faults, and left out of a child's memory at `fork`
    /// (`MADV_DONTFORK`: a child that touches the VM's memory gets a
    /// SIGSEGV, not a silent copy with zeros where pages were absent).
    pub(crate) fn reserve(
        pages: u64,
        page_size: usize,
        transparent: bool,
    ) -> Result<Region, VmError> {
        Self::reserve_at(None, pages, page_size, transparent, (0, false))
    }

    /// As [`Region::reserve`], at address `at` if given (see
    /// [`Mapping::new_at`]: never over another mapping); outside
    /// transparent mode with a frame pool of `pool.0` pages (none if 0, or
    /// where the kernel has no `UFFDIO_MOVE`), with huge-page chunks if
    /// `pool.1` (see `frame_pool`).
    pub(crate) fn reserve_at(
        at: Option<usize>,
        pages: u64,
        page_size: usize,
        transparent: bool,
        (pool_pages, huge_chunks): (usize, bool),
    ) -> Result<Region, VmError> {
        let len = usize::try_from(pages)
            .ok()
            .and_then(|p| p.checked_mul(page_size))
            .ok_or(VmError::Config {
                field: "virtual_pages",
                reason: format!("{pages} pages of {page_size} bytes overflow the address space"),
            })?;
        let mapping = Mapping::new_at(at, len, "address-space region")?;
        let transparent = if transparent {
            // SAFETY: the range is the mapping just made; the advice changes
            // no contents.
            unsafe {
                rustix::mm::madvise(mapping.base.as_ptr().cast(), len, Advice::LinuxDontFork)
            }
            .map_err(|e| VmError::Map {
                what: "madvise(MADV_DONTFORK)",
                bytes: len,
                source: e.into(),
            })?;
            let uffd = Uffd::open()?;
            uffd.register(mapping.base.as_ptr(), len)?;
            Some(Transparent {
                uffd,
                slot: OnceLock::new(),
            })
        } else {
            None
        };
        // Copying mode needs no userfaultfd: where the kernel refuses one,
        // or the move, there is no pool and nothing else changes.
        // (Pages of the OS page size only: a move cut short inside a
        // larger page would leave it half moved.)
        let pool =
            (transparent.is_none() && pool_pages >= 2 && page_size == rustix::param::page_size())
                .then(|| {
                    FramePool::new(
                        mapping.base.as_ptr(),
                        len,
                        pool_pages,
                        page_size,
                        huge_chunks,
                    )
                    .ok()
                })
                .flatten();
        Ok(Region {
            mapping,
            page_size,
            pages,
            self_pidfd: OnceLock::new(),
            batch_refused: AtomicBool::new(false),
            release_calls: AtomicU64::new(0),
            transparent,
            pool,
        })
    }

    /// The frame pool's size in pages, its pages moved in, moved out and
    /// copied in, the moves the kernel refused, the huge-page chunks
    /// committed and the runs that waited for their read's pin (zeros
    /// without a pool).
    pub(crate) fn pool_counts(&self) -> [u64; 7] {
        self.pool.as_ref().map_or([0; 7], |p| {
            [
                p.slots() as u64,
                p.moved_in.load(Ordering::Relaxed),
                p.moved_out.load(Ordering::Relaxed),
                p.copied_in.load(Ordering::Relaxed),
                p.refused.load(Ordering::Relaxed),
                p.chunks_committed.load(Ordering::Relaxed),
                p.pin_waits.load(Ordering::Relaxed),
            ]
        })
    }

    /// The frame pool's size in pages (0 without one).
    pub(crate) fn pool_pages(&self) -> u64 {
        self.pool.as_ref().map_or(0, |p| p.slots() as u64)
    }

    /// System calls made so far to give pages' memory back (see
    /// `release_calls` in the stats).
    pub(crate) fn release_calls(&self) -> u64 {
        self.release_calls.load(Ordering::Relaxed)
    }

    /// Whether plain loads and stores reach the region (transparent mode).
    pub(crate) fn is_transparent(&self) -> bool {
        self.transparent.is_some()
    }

    /// Whether the kernel only lets the region's `userfaultfd` trap faults
    /// from user code (unprivileged): a system call given a pointer to an
    /// absent page fails with `EFAULT` either way in SIGBUS mode.
    pub(crate) fn user_mode_only(&self) -> bool {
        self.transparent
            .as_ref()
            .is_some_and(|t| t.uffd.user_mode_only)
    }

    /// Puts this region in the process's SIGBUS table, naming `space` (what
    /// `serve` is called with). Transparent mode only; once.
    pub(crate) fn attach_fault_handler(
        &self,
        space: *const (),
        serve: super::sigbus::Serve,
    ) -> Result<(), VmError> {
        let transparent = self.transparent.as_ref().expect("transparent mode");
        let slot = super::sigbus::attach(self.base() as usize, self.mapping.len, space, serve)?;
        transparent
            .slot
            .set(slot)
            .expect("a region is attached once");
        Ok(())
    }

    /// Makes `count` pages from `page` hold what `read` puts in them: read
    /// straight into the region, or — in transparent mode, where a store
    /// to a missing page would fault — into this thread's staging buffer,
    /// then installed write-protected with `UFFDIO_COPY` (all of them or
    /// none visible to plain loads until the read is complete). On an
    /// error nothing of the range is left committed.
    ///
    /// # Safety
    /// The caller holds the exclusive latch of every one of those pages,
    /// which are absent (no memory).
    pub(crate) unsafe fn fill<E>(
        &self,
        page: u64,
        count: u64,
        read: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<(), FillError<E>> {
        // (No pool in transparent mode: `read` comes straight back.)
        // SAFETY: the caller holds the pages exclusively; absent.
        let read = match unsafe { self.through_pool(page, count, RunUse::Read, read) } {
            Ok(done) => return done.map_err(FillError::Read),
            Err(read) => read,
        };
        // SAFETY: as the caller promises.
        unsafe { self.fill_unpooled(page, count, read) }
    }

    /// [`Region::fill`] without the frame pool (the caller found no run
    /// there).
    ///
    /// # Safety
    /// As for [`Region::fill`].
    pub(crate) unsafe fn fill_unpooled<E>(
        &self,
        page: u64,
        count: u64,
        read: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<(), FillError<E>> {
        let Some(transparent) = &self.transparent else {
            // SAFETY: the caller holds the pages exclusively.
            let bytes = unsafe { self.pages_mut(page, count) };
            return read(bytes).map_err(|e| {
                // A partial read may have committed memory: give it back.
                // SAFETY: as above.
                let _ = unsafe { self.release(page, count) };
                FillError::Read(e)
            });
        };
        let len = count as usize * self.page_size;
        let staged = super::staging::with_staging(len, |buffer| {
            read(buffer).map_err(FillError::Read)?;
            // SAFETY: in bounds; the caller holds the pages exclusively.
            unsafe { self.install(&transparent.uffd, page, buffer, true) }
                .map_err(FillError::Install)
        });
        staged.unwrap_or_else(|e| Err(FillError::Install(e)))
    }

    /// Makes `count` pages from `page` resident zeros: outside transparent
    /// mode nothing to do (released memory reads as zeros) but for a run
    /// taken from the frame pool; in it,
    /// installed write-protected by `UFFDIO_COPY` from a run of zeros, in
    /// one step. (`UFFDIO_ZEROPAGE` and then `UFFDIO_WRITEPROTECT` measured
    /// faster — 457 against 760 ns a page, `bench fault-path` — but between
    /// the two calls another thread's store is an ordinary copy-on-write
    /// of the zero page that no fault reports, and it would be lost: found
    /// by review.)
    ///
    /// # Safety
    /// As for [`Region::fill`].
    pub(crate) unsafe fn fill_zeros(&self, page: u64, count: u64) -> Result<(), VmError> {
        let Some(transparent) = &self.transparent else {
            // A run through the pool (the kernel would otherwise fault,
            // allocate, zero and charge each page at its first store);
            // without one there is nothing to do.
            // SAFETY: as the caller promises.
            let _ = unsafe {
                self.through_pool(page, count, RunUse::Zeros, |bytes| {
                    bytes.fill(0);
                    Ok::<(), std::convert::Infallible>(())
                })
            };
            return Ok(());
        };
        let chunk = ZEROS.len() / self.page_size;
        let mut at = page;
        while at < page + count {
            let n = (page + count - at).min(chunk as u64);
            let src = &ZEROS[..n as usize * self.page_size];
            // SAFETY: in bounds; the caller holds the pages exclusively.
            if let Err(e) = unsafe { self.install(&transparent.uffd, at, src, true) } {
                // Nothing of the range stays present.
                // SAFETY: the caller holds the pages exclusively.
                let _ = unsafe { self.release(page, count) };
                return Err(e);
            }
            at += n;
        }
        Ok(())
    }

    /// One page of zeros for a thread about to store to it (transparent
    /// mode; nothing to do otherwise): installed writable (`UFFDIO_COPY`
    /// of zeros), so the store needs neither an unprotect nor the kernel's
    /// copy-on-write of the zero page. The caller marks it writable and
    /// dirty.
    ///
    /// # Safety
    /// As for [`Region::fill`].
    pub(crate) unsafe fn fill_zeros_writable(&self, page: u64) -> Result<(), VmError> {
        let Some(transparent) = &self.transparent else {
            return Ok(());
        };
        // SAFETY: the caller holds the page exclusively.
        unsafe { self.install(&transparent.uffd, page, &ZEROS[..self.page_size], false) }
    }

    /// `UFFDIO_COPY` of `src` to the pages from `page`, write-protected if
    /// `protect`. A page present already (the state words say absent, so
    /// a release the kernel refused left it in place) is an error, not
    /// written through: other threads' plain loads and stores reach a
    /// present page. On an error, what was installed is released again.
    ///
    /// # Safety
    /// The caller holds the exclusive latch of every page of the range.
    unsafe fn install(
        &self,
        uffd: &Uffd,
        page: u64,
        src: &[u8],
        protect: bool,
    ) -> Result<(), VmError> {
        let count = (src.len() / self.page_size) as u64;
        assert!(page.checked_add(count).is_some_and(|end| end <= self.pages));
        // SAFETY: in bounds (asserted); the caller holds the pages.
        let copied = unsafe { uffd.copy(self.page_ptr(page), src, protect) };
        let failure = match copied {
            Ok(done) if done == src.len() => return Ok(()),
            Ok(done) => VmError::Map {
                what: "install (UFFDIO_COPY): a page the VM holds absent is present",
                bytes: src.len() - done,
                source: std::io::Error::from_raw_os_error(libc::EEXIST),
            },
            Err(e) => VmError::Map {
                what: "install (UFFDIO_COPY)",
                bytes: src.len(),
                source: e.into(),
            },
        };
        // SAFETY: the caller holds the pages exclusively.
        let _ = unsafe { self.release(page, count) };
        Err(failure)
    }

    /// Write-protects (`protect`) or unprotects `count` pages from `page`
    /// in transparent mode (a no-op otherwise). Changes no contents; the
    /// caller keeps the page-state words' `WRITABLE` in step.
    pub(crate) fn set_write_protect(
        &self,
        page: u64,
        count: u64,
        protect: bool,
    ) -> Result<(), VmError> {
        let Some(transparent) = &self.transparent else {
            return Ok(());
        };
        assert!(page.checked_add(count).is_some_and(|end| end <= self.pages));
        transparent
            .uffd
            .write_protect(
                self.page_ptr(page),
                count as usize * self.page_size,
                protect,
            )
            .map_err(|e| VmError::Map {
                what: if protect {
                    "write-protect (UFFDIO_WRITEPROTECT)"
                } else {
                    "unprotect (UFFDIO_WRITEPROTECT)"
                },
                bytes: count as usize * self.page_size,
                source: e.into(),
            })
    }

    /// Address of the region's first byte.
    pub(crate) fn base(&self) -> *mut u8 {
        self.mapping.base.as_ptr()
    }

    /// Wired memory: maps `count` pages of `fd` from byte `offset` over
    /// the region's pages from `page`, shared (`MAP_SHARED | MAP_FIXED`),
    /// writable or not. The pages are then that object's memory: the
    /// kernel pages them as its own (a device's, or a shared memory
    /// object's), the VM never does, and no userfaultfd sees them.
    ///
    /// # Safety
    /// Nothing refers to those pages' bytes: they belong to an interval
    /// just allocated (absent, unlatched, no view), which nothing else can
    /// reach until this returns.
    pub(crate) unsafe fn map_fd(
        &self,
        page: u64,
        count: u64,
        fd: std::os::fd::BorrowedFd<'_>,
        offset: u64,
        writable: bool,
    ) -> Result<(), VmError> {
        assert!(page.checked_add(count).is_some_and(|end| end <= self.pages));
        let len = count as usize * self.page_size;
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: the range lies inside the region (asserted), which this
        // value owns; replacing it is what MAP_FIXED does, and the caller
        // guarantees nothing refers to its bytes.
        unsafe {
            rustix::mm::mmap(
                self.page_ptr(page).cast(),
                len,
                prot,
                MapFlags::SHARED | MapFlags::FIXED,
                fd,
                offset,
            )
        }
        .map(drop)
        .map_err(|e| VmError::Map {
            what: "mmap(MAP_SHARED | MAP_FIXED) of wired memory",
            bytes: len,
            source: e.into(),
        })
    }

    /// Changes the protection of wired pages (see [`Region::map_fd`]).
    ///
    /// # Safety
    /// The pages were mapped by `map_fd` (so no userfaultfd covers them).
    pub(crate) unsafe fn protect_fd(
        &self,
        page: u64,
        count: u64,
        writable: bool,
    ) -> Result<(), VmError> {
        assert!(page.checked_add(count).is_some_and(|end| end <= self.pages));
        let len = count as usize * self.page_size;
        let prot = if writable {
            MprotectFlags::READ | MprotectFlags::WRITE
        } else {
            MprotectFlags::READ
        };
        // SAFETY: the range lies inside the region (asserted); changing its
        // protection changes no contents.
        unsafe { rustix::mm::mprotect(self.page_ptr(page).cast(), len, prot) }.map_err(|e| {
            VmError::Map {
                what: "mprotect of wired memory",
                bytes: len,
                source: e.into(),
            }
        })
    }

    /// Puts the region's own memory back over wired pages (see
    /// [`Region::map_fd`]): private, anonymous, no reserve, no huge pages
    /// and, in transparent mode, not inherited by a fork and registered
    /// with the region's userfaultfd — as `reserve` made it. The pages read
    /// as zeros then (absent pages of the region).
    ///
    /// # Safety
    /// Nothing refers to those pages' bytes any more (the interval is being
    /// freed: no latch, no view).
    pub(crate) unsafe fn unmap_fd(&self, page: u64, count: u64) -> Result<(), VmError> {
        assert!(page.checked_add(count).is_some_and(|end| end <= self.pages));
        let len = count as usize * self.page_size;
        let at = self.page_ptr(page);
        let map_error = |what: &'static str, e: rustix::io::Errno| VmError::Map {
            what,
            bytes: len,
            source: e.into(),
        };
        // SAFETY: the range lies inside the region (asserted), which this
        // value owns; the caller guarantees nothing refers to its bytes.
        unsafe {
            rustix::mm::mmap_anonymous(
                at.cast(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED,
            )
        }
        .map_err(|e| map_error("mmap(MAP_FIXED) restoring the region", e))?;
        // SAFETY: the range is the region's own memory again; advice
        // changes no contents.
        unsafe { rustix::mm::madvise(at.cast(), len, Advice::LinuxNoHugepage) }
            .map_err(|e| map_error("madvise(MADV_NOHUGEPAGE)", e))?;
        if let Some(transparent) = &self.transparent {
            // SAFETY: as above.
            unsafe { rustix::mm::madvise(at.cast(), len, Advice::LinuxDontFork) }
                .map_err(|e| map_error("madvise(MADV_DONTFORK)", e))?;
            transparent.uffd.register(at, len)?;
        }
        if let Some(pool) = &self.pool {
            pool.register_again(at, len);
        }
        Ok(())
    }

    fn page_ptr(&self, page: u64) -> *mut u8 {
        assert!(page < self.pages, "page {page} outside the region");
        // SAFETY: page < pages, so the offset stays inside the mapping.
        unsafe { self.base().add(page as usize * self.page_size) }
    }

    /// The bytes of `page`.
    ///
    /// # Safety
    /// The caller holds a latch on `page` (shared or exclusive) for as long
    /// as the slice lives, so no one writes or releases the page meanwhile.
    pub(crate) unsafe fn page(&self, page: u64) -> &[u8] {
        // SAFETY: in bounds (page_ptr asserts); the caller's latch excludes
        // writers and release for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.page_ptr(page), self.page_size) }
    }

    /// The bytes of `page`, to write.
    ///
    /// # Safety
    /// The caller holds the exclusive latch on `page` for as long as the
    /// slice lives, so this is the only reference to those bytes.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn page_mut(&self, page: u64) -> &mut [u8] {
        // SAFETY: in bounds; the exclusive latch makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.page_ptr(page), self.page_size) }
    }

    /// The bytes of `count` consecutive pages from `page`, to read (one
    /// transfer can write them all out).
    ///
    /// # Safety
    /// The caller holds a latch (shared or exclusive) on every one of those
    /// pages for as long as the slice lives.
    pub(crate) unsafe fn pages(&self, page: u64, count: u64) -> &[u8] {
        assert!(count > 0 && page.checked_add(count).is_some_and(|end| end <= self.pages));
        // SAFETY: in bounds (asserted); the caller's latches exclude writers
        // and release for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.page_ptr(page), count as usize * self.page_size) }
    }

    /// The bytes of `count` consecutive pages from `page` (consecutive in
    /// the region, so one transfer can fill them all).
    ///
    /// # Safety
    /// The caller holds the exclusive latch of every one of those pages for
    /// as long as the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn pages_mut(&self, page: u64, count: u64) -> &mut [u8] {
        assert!(count > 0 && page.checked_add(count).is_some_and(|end| end <= self.pages));
        // SAFETY: in bounds (asserted); the caller's latches make this the
        // only access to those bytes.
        unsafe {
            std::slice::from_raw_parts_mut(self.page_ptr(page), count as usize * self.page_size)
        }
    }

    /// Gives back the memory of `count` pages from `page`; they read as
    /// zeros afterwards.
    ///
    /// # Safety
    /// The caller holds the exclusive latch of every page in the range, so
    /// no reference into those bytes exists (a `&[u8]` of a page whose
    /// memory is released would see its contents change under it).
    pub(crate) unsafe fn release(&self, page: u64, count: u64) -> Result<(), VmError> {
        assert!(page.checked_add(count).is_some_and(|end| end <= self.pages));
        // SAFETY: as below.
        let moved = unsafe { self.move_out(page, count) };
        let (page, count) = (page + moved, count - moved);
        if count == 0 {
            return Ok(());
        }
        self.release_calls.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the range lies inside our mapping and the caller holds the
        // pages exclusively, so no Rust reference into them exists.
        unsafe {
            rustix::mm::madvise(
                self.page_ptr(page).cast(),
                count as usize * self.page_size,
                Advice::LinuxDontNeed,
            )
        }
        .map_err(|e| VmError::Map {
            what: "release (madvise DONTNEED)",
            bytes: count as usize * self.page_size,
            source: e.into(),
        })
    }
}

impl Region {
    /// Copying mode, a run long enough and a free run of the frame pool:
    /// `write` fills committed slots, which are then moved to the pages
    /// (`Ok`, with `write`'s result; on its error nothing of the range is
    /// committed). Otherwise `write` is handed back, not called. `used`
    /// says which slots may take it (see `FramePool::lease_for_read`).
    ///
    /// # Safety
    /// As for [`Region::fill`].
    unsafe fn through_pool<E, W: FnOnce(&mut [u8]) -> Result<(), E>>(
        &self,
        page: u64,
        count: u64,
        used: RunUse,
        write: W,
    ) -> Result<Result<(), E>, W> {
        // SAFETY: as the caller promises.
        match unsafe { self.read_into_pool(page, count, used, write) } {
            Ok(Ok(run)) => {
                // SAFETY: as the caller promises: still held, still absent.
                // (Not patient: the caller may hold the monitor.)
                unsafe { self.move_in_run(run, false) };
                Ok(Ok(()))
            }
            Ok(Err(e)) => Ok(Err(e)),
            Err(write) => Err(write),
        }
    }

    /// The first half of [`Region::fill`] through the frame pool: `read`
    /// fills a run of committed slots, which [`Region::move_in_run`] later
    /// moves to the pages (so that another thread can do the move while
    /// this one starts the next read). `used` says which slots may take it
    /// (`RunUse::ReadReady`: none whose commit the read would wait for).
    /// `Err(read)`, not called, where there is no pool run for it
    /// (transparent mode has no pool): then [`Region::fill_unpooled`].
    ///
    /// # Safety
    /// The pages moved in are held exclusively, and absent, from before
    /// the move until after it (the read itself touches only the pool):
    /// all of the run's with [`Region::move_in_run`], the parts' with
    /// [`Region::move_in_run_parts`].
    pub(crate) unsafe fn read_into_pool<E, W: FnOnce(&mut [u8]) -> Result<(), E>>(
        &self,
        page: u64,
        count: u64,
        used: RunUse,
        read: W,
    ) -> Result<Result<PooledRun<'_>, E>, W> {
        let Some(mut run) = self.lease_pool_run(page, count, used) else {
            return Err(read);
        };
        // (On an error the run's drop frees its slots.)
        // SAFETY: leased from this region just above.
        Ok(unsafe { self.read_pooled(&mut run, read) }.map(|()| run))
    }

    /// [`Region::read_into_pool`] in two steps: a run of the pool for the
    /// `count` pages from `page`, leased now (`None` where there is none),
    /// and read into later by [`Region::read_pooled`] — so that a caller
    /// can lease under the monitor and read without it.
    pub(crate) fn lease_pool_run(
        &self,
        page: u64,
        count: u64,
        used: RunUse,
    ) -> Option<PooledRun<'_>> {
        let pool = self.pool.as_ref().filter(|_| count >= MIN_RUN)?;
        let lease = pool.lease_for_read(count as usize, used)?;
        assert!(page.checked_add(count).is_some_and(|end| end <= self.pages));
        Some(PooledRun { lease, page })
    }

    /// `read` fills the slots of a run leased by
    /// [`Region::lease_pool_run`] (they touch only the pool: no page of the
    /// region).
    ///
    /// # Safety
    /// `run` was leased from this region (its pool's slots are what the
    /// slice covers).
    pub(crate) unsafe fn read_pooled<E>(
        &self,
        run: &mut PooledRun<'_>,
        read: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let pool = self.pool.as_ref().expect("a pooled run implies a pool");
        // SAFETY: the lease is this pool's, and held until `move_in` or its
        // drop, after the slice is gone: `run` is borrowed exclusively for
        // the call, so neither happens meanwhile, nor another slice of it.
        read(unsafe { pool.lease_bytes(&run.lease) })
    }

    /// The second half: moves a run read into the pool to its pages;
    /// `patient` if the caller holds no lock others wait on (the monitor):
    /// then a page still pinned by the read is waited for, briefly, before
    /// it is copied (see `FramePool::wait_for_unpin`).
    ///
    /// # Safety
    /// The caller still holds the run's pages exclusively, and they are
    /// absent (as for [`Region::fill`]).
    pub(crate) unsafe fn move_in_run(&self, run: PooledRun<'_>, patient: bool) {
        let pool = self.pool.as_ref().expect("a pooled run implies a pool");
        // SAFETY: in bounds (asserted when the run was leased); the caller
        // holds the pages exclusively and they are absent.
        unsafe { pool.move_in(run.lease, self.page_ptr(run.page), patient) };
    }

    /// [`Region::move_in_run`] for parts of the run only: `parts` are
    /// (offset, length) in pages from its first page, in order and apart;
    /// what was read for the pages between them is dropped (they may be
    /// resident, or held by others: they are not touched). Patient (see
    /// [`Region::move_in_run`]): its caller holds no lock.
    ///
    /// # Safety
    /// The caller holds the pages of every part exclusively, and they are
    /// absent.
    pub(crate) unsafe fn move_in_run_parts(&self, run: PooledRun<'_>, parts: &[(usize, usize)]) {
        let pool = self.pool.as_ref().expect("a pooled run implies a pool");
        // SAFETY: in bounds (asserted when the run was leased); the caller
        // holds the parts' pages exclusively and they are absent.
        unsafe { pool.move_in_parts(run.lease, self.page_ptr(run.page), parts, true) };
    }

    /// Readies the frame pool for a run of `count` pages read next (see
    /// [`FramePool::prepare`]); nothing without a pool.
    pub(crate) fn prepare_pool(&self, count: u64) {
        if let Some(pool) = &self.pool {
            pool.prepare(count as usize);
        }
    }

    /// Moves a run's memory into the frame pool, where there is one and
    /// the run is long enough; returns the pages moved, from the first.
    ///
    /// # Safety
    /// As for [`Region::release`].
    unsafe fn move_out(&self, page: u64, count: u64) -> u64 {
        match &self.pool {
            Some(pool) if count >= MIN_RUN => {
                // SAFETY: in bounds (the caller asserted); the caller holds
                // the pages exclusively.
                let moved = unsafe { pool.move_out(self.page_ptr(page), count as usize) as u64 };
                if moved > 0 {
                    self.release_calls.fetch_add(1, Ordering::Relaxed);
                }
                moved
            }
            _ => 0,
        }
    }
}

/// A run read into the frame pool, not yet moved to its pages (see
/// [`Region::read_into_pool`]); dropped unmoved, its slots are free again.
pub(crate) struct PooledRun<'a> {
    lease: Lease<'a>,
    page: u64,
}

impl Drop for Region {
    fn drop(&mut self) {
        if let Some(slot) = self.transparent.as_ref().and_then(|t| t.slot.get()) {
            super::sigbus::detach(*slot);
        }
    }
}

impl Region {
    /// Gives back the memory of `count` pages from `page`; where the kernel
    /// refuses, zeros them instead: either way they read as zeros
    /// afterwards. In transparent mode a refused release leaves the pages
    /// as they are (other threads' plain loads and stores reach them, so
    /// they are not written through); their next fault then fails with an
    /// error instead of installing over them. The kernel refuses
    /// `MADV_DONTNEED` on locked memory: do not `mlock` the region.
    ///
    /// # Safety
    /// As for [`Region::release`].
    pub(crate) unsafe fn release_or_zero(&self, page: u64, count: u64) {
        // SAFETY: the caller holds the pages exclusively.
        if unsafe { self.release(page, count) }.is_ok() || self.is_transparent() {
            return;
        }
        // SAFETY: the caller holds the pages exclusively.
        unsafe { self.pages_mut(page, count) }.fill(0);
    }

    /// Pages of the region the kernel holds in memory now (`mincore`): what
    /// the resident-set bound looks like from outside.
    pub(crate) fn kernel_resident_pages(&self) -> Result<u64, VmError> {
        let os_page = rustix::param::page_size();
        let len = self.pages as usize * self.page_size;
        let mut total = 0u64;
        // In chunks, so the vector stays small for a huge region.
        let chunk = 1usize << 30;
        let mut vec = vec![0u8; chunk / os_page];
        let mut offset = 0;
        while offset < len {
            let this = chunk.min(len - offset);
            // SAFETY: `offset..offset + this` lies inside our mapping, which
            // is page-aligned; `vec` has one byte per OS page of the range.
            let r =
                unsafe { libc::mincore(self.base().add(offset).cast(), this, vec.as_mut_ptr()) };
            if r != 0 {
                return Err(VmError::Map {
                    what: "mincore",
                    bytes: this,
                    source: std::io::Error::last_os_error(),
                });
            }
            total += vec[..this.div_ceil(os_page)]
                .iter()
                .filter(|&&b| b & 1 != 0)
                .count() as u64;
            offset += this;
        }
        Ok(total * os_page as u64 / self.page_size as u64)
    }

    /// Gives back the memory of every run `(page, count)` in `runs`, with one
    /// `process_madvise(MADV_DONTNEED)` call per 64 runs where the kernel
    /// allows it on this process (Linux 6.13 and later) — one system call
    /// and one TLB shootdown for a whole eviction batch — and one `madvise`
    /// per run where it does not; a run the kernel will not release is
    /// zeroed instead (`release_or_zero`).
    ///
    /// # Safety
    /// As for [`Region::release`]: the caller holds the exclusive latch of
    /// every page of every run.
    pub(crate) unsafe fn release_runs(&self, runs: &[(u64, u64)]) {
        for &(page, count) in runs {
            assert!(page.checked_add(count).is_some_and(|end| end <= self.pages));
        }
        // Runs long enough go into the frame pool; what does not fit there
        // is given back.
        let rest: Vec<(u64, u64)>;
        let runs = if self.pool.is_some() {
            rest = runs
                .iter()
                .filter_map(|&(page, count)| {
                    // SAFETY: in bounds (asserted); the caller holds the
                    // pages exclusively.
                    let moved = unsafe { self.move_out(page, count) };
                    (moved < count).then_some((page + moved, count - moved))
                })
                .collect();
            &rest[..]
        } else {
            runs
        };
        let pidfd = self.self_pidfd.get_or_init(|| {
            rustix::process::pidfd_open(
                rustix::process::getpid(),
                rustix::process::PidfdFlags::empty(),
            )
            .ok()
        });
        if let Some(pidfd) = pidfd
            .as_ref()
            .filter(|_| !self.batch_refused.load(Ordering::Relaxed))
        {
            let mut done = 0;
            while done < runs.len() {
                let chunk = &runs[done..(done + RELEASE_BATCH_MAX).min(runs.len())];
                let iovecs: Vec<libc::iovec> = chunk
                    .iter()
                    .map(|&(page, count)| libc::iovec {
                        iov_base: self.page_ptr(page).cast(),
                        iov_len: count as usize * self.page_size,
                    })
                    .collect();
                let want: usize = iovecs.iter().map(|v| v.iov_len).sum();
                // SAFETY: `iovecs` points into our own mapping (bounds
                // asserted above) and lives across the call; the caller holds
                // the pages exclusively, so no Rust reference into them
                // exists; the pidfd is this process's.
                let advised = unsafe {
                    libc::syscall(
                        libc::SYS_process_madvise,
                        std::os::fd::AsRawFd::as_raw_fd(pidfd),
                        iovecs.as_ptr(),
                        iovecs.len(),
                        libc::MADV_DONTNEED,
                        0u32,
                    )
                };
                if advised >= 0 && advised as usize == want {
                    self.release_calls.fetch_add(1, Ordering::Relaxed);
                } else {
                    // Refused (an older kernel) or partial: the plain call
                    // does the chunk, and is used from now on if refused.
                    if advised < 0 {
                        self.batch_refused.store(true, Ordering::Relaxed);
                    }
                    for &(page, count) in chunk {
                        // SAFETY: the caller holds these pages exclusively.
                        unsafe { self.release_or_zero(page, count) };
                    }
                }
                done += chunk.len();
            }
            return;
        }
        for &(page, count) in runs {
            // SAFETY: the caller holds these pages exclusively.
            unsafe { self.release_or_zero(page, count) };
        }
    }
}

/// Commits the memory of `bytes` now (`MADV_POPULATE_WRITE`, Linux 5.14),
/// as the first store to each page would, and leaves what it holds as it
/// was: for memory about to be read into by direct I/O, which would
/// otherwise commit it while the read waits (`disk_channel::read_in_pieces`
/// calls this on a piece while the ones before it are read). For private
/// anonymous memory only (the region in copying mode, a staging buffer):
/// on a shared file mapping it would mark pages dirty. Best effort: where
/// the kernel refuses, the read commits the memory as before. The whole
/// pages within `bytes` only.
pub(crate) fn populate(bytes: &mut [u8]) {
    let os_page = rustix::param::page_size();
    let start = (bytes.as_mut_ptr() as usize).next_multiple_of(os_page);
    let end = (bytes.as_mut_ptr() as usize + bytes.len()) / os_page * os_page;
    if end <= start {
        return;
    }
    // SAFETY: `[start, end)` lies within `bytes`, which the caller holds
    // mutably; populating writes no byte of it (a present page is left
    // alone, a missing one becomes a page of zeros, which a missing page of
    // private anonymous memory reads as already), so nothing the caller
    // sees changes and no other reference exists to be invalidated.
    let _ = unsafe {
        rustix::mm::madvise(
            start as *mut std::ffi::c_void,
            end - start,
            Advice::LinuxPopulateWrite,
        )
    };
}

/// The reclaim list's slots (`reclaim`): `count` page-sized buffers in
/// one anonymous mapping, outside the region (so plain loads never reach
/// them and no fault is served on them).
#[derive(Debug)]
pub(crate) struct Slots {
    mapping: Mapping,
    page_size: usize,
    count: u32,
}

impl Slots {
    pub(crate) fn new(count: u32, page_size: usize) -> Result<Slots, VmError> {
        Ok(Slots {
            mapping: Mapping::new((count as usize).max(1) * page_size, "reclaim slots")?,
            page_size,
            count,
        })
    }

    /// Slot `slot`'s bytes.
    ///
    /// # Safety
    /// The caller owns the slot (took it from the list, or reserved it)
    /// for as long as the slice lives: no one writes it meanwhile.
    pub(crate) unsafe fn slot(&self, slot: u32) -> &[u8] {
        assert!(slot < self.count);
        // SAFETY: in bounds (asserted); the caller owns the slot.
        unsafe {
            std::slice::from_raw_parts(
                self.mapping
                    .base
                    .as_ptr()
                    .add(slot as usize * self.page_size),
                self.page_size,
            )
        }
    }

    /// Slot `slot`'s bytes, to fill.
    ///
    /// # Safety
    /// The caller owns the slot exclusively for as long as the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slot_mut(&self, slot: u32) -> &mut [u8] {
        assert!(slot < self.count);
        // SAFETY: in bounds (asserted); the caller owns the slot.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.mapping
                    .base
                    .as_ptr()
                    .add(slot as usize * self.page_size),
                self.page_size,
            )
        }
    }
}

/// The page-state words: one `AtomicU64` per virtual page in an anonymous
/// mapping, so untouched words cost nothing and all start at zero.
#[derive(Debug)]
pub(crate) struct StateArray {
    mapping: Mapping,
    len: usize,
}

impl StateArray {
    /// `len` zeroed words.
    pub(crate) fn new(len: u64) -> Result<StateArray, VmError> {
        let len = usize::try_from(len).map_err(|_| VmError::Config {
            field: "virtual_pages",
            reason: "too many pages for this machine".into(),
        })?;
        let bytes = len.checked_mul(8).ok_or(VmError::Config {
            field: "virtual_pages",
            reason: "too many pages for this machine".into(),
        })?;
        Ok(StateArray {
            mapping: Mapping::new(bytes.max(8), "page-state array")?,
            len,
        })
    }

    /// The words.
    pub(crate) fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping holds `len` zero-initialised, 8-byte aligned
        // (page-aligned base) words, valid for the mapping's lifetime which
        // `&self` bounds; `AtomicU64` has the layout of `u64` and every bit
        // pattern is valid; all access is atomic.
        unsafe {
            std::slice::from_raw_parts(self.mapping.base.as_ptr().cast::<AtomicU64>(), self.len)
        }
    }
}
