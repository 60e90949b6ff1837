//! The raw `userfaultfd` mechanisms without the VM, measured so that the
//! transparent mode's choices are made by measurement (`cedarvm bench
//! fault-path` reports them beside the VM's own transparent fault):
//!
//! - [`sigbus_round_trip_ns`]: the faulting thread serves itself from the
//!   SIGBUS handler (`UFFD_FEATURE_SIGBUS`) with one `UFFDIO_COPY` — the
//!   mechanism transparent mode uses, through the same handler table.
//! - [`handler_thread_round_trip_ns`]: a handler thread reads fault
//!   messages and answers each with `UFFDIO_COPY` (which wakes the
//!   faulting thread), spinning on the non-blocking descriptor or
//!   sleeping in `poll`.
//! - [`pager_round_trip_ns`]: the smallest pager of a file under a memory
//!   bound — SIGBUS, `pread` of the page from the page cache,
//!   `UFFDIO_COPY`, and the oldest page given back — the floor of the VM's
//!   transparent fault on the same file.
//! - [`zero_install_ns`]: installing a page of zeros write-protected, by a
//!   copy of zeros or by the zero page plus a write-protect.
//!
//! Each is the time per page over `pages` distinct pages, touched once each
//! by a load (so each touch is one fault), best of `rounds`.

use super::mapping::Mapping;
use super::uffd::Uffd;
use crate::error::VmError;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Bytes to install, a page of them (at most 64 KiB: these probes use
/// the OS page).
static SOURCE: [u8; 1 << 16] = [0x5A; 1 << 16];

/// The OS page size.
fn os_page() -> usize {
    rustix::param::page_size()
}

/// A registered mapping of `pages` OS pages and its descriptor.
struct Probe {
    mapping: Mapping,
    uffd: Uffd,
}

impl Probe {
    fn new(pages: usize, sigbus: bool) -> Result<Probe, VmError> {
        if os_page() > SOURCE.len() {
            return Err(VmError::Config {
                field: "page_size",
                reason: format!("the probes take OS pages up to 64 KiB, not {}", os_page()),
            });
        }
        let mapping = Mapping::new(pages * os_page(), "userfaultfd probe")?;
        let uffd = Uffd::open_with(sigbus)?;
        uffd.register(mapping.base.as_ptr(), mapping.len)?;
        Ok(Probe { mapping, uffd })
    }

    fn page(&self, i: usize) -> *mut u8 {
        // SAFETY: callers pass i < pages, inside the mapping.
        unsafe { self.mapping.base.as_ptr().add(i * os_page()) }
    }

    /// Makes every page missing again.
    fn release(&self) -> Result<(), VmError> {
        // SAFETY: our own mapping; no reference into it exists.
        unsafe {
            rustix::mm::madvise(
                self.mapping.base.as_ptr().cast(),
                self.mapping.len,
                rustix::mm::Advice::LinuxDontNeed,
            )
        }
        .map_err(|e| VmError::Map {
            what: "probe release",
            bytes: self.mapping.len,
            source: e.into(),
        })
    }

    /// Loads one byte of every page, timed, best of `rounds`.
    fn touch_all(&self, pages: usize, rounds: usize) -> Result<f64, VmError> {
        let mut best = f64::MAX;
        for _ in 0..rounds {
            self.release()?;
            let t = Instant::now();
            for i in 0..pages {
                // SAFETY: a load from our own mapping; the fault it raises
                // is served by the probe's handler before it completes.
                let byte = unsafe { std::ptr::read_volatile(self.page(i)) };
                if byte != 0x5A {
                    return Err(VmError::Map {
                        what: "probe: a page installed with the wrong bytes",
                        bytes: os_page(),
                        source: std::io::Error::from(std::io::ErrorKind::InvalidData),
                    });
                }
            }
            best = best.min(t.elapsed().as_nanos() as f64 / pages as f64);
        }
        Ok(best)
    }
}

fn serve_sigbus(probe: *const (), addr: usize, _write: Option<bool>) -> Result<(), VmError> {
    // SAFETY: attached from a `Probe` that outlives the attachment.
    let probe = unsafe { &*probe.cast::<Probe>() };
    let page = (addr & !(os_page() - 1)) as *mut u8;
    // SAFETY: the page lies in the probe's registered mapping and only
    // this fault installs it.
    unsafe { probe.uffd.copy(page, &SOURCE[..os_page()], true) }.map_err(|e| VmError::Map {
        what: "probe UFFDIO_COPY",
        bytes: os_page(),
        source: e.into(),
    })?;
    Ok(())
}

/// Nanoseconds per fault served by the faulting thread itself from the
/// SIGBUS handler with one `UFFDIO_COPY`.
pub fn sigbus_round_trip_ns(pages: usize, rounds: usize) -> Result<f64, VmError> {
    /// Takes the probe out of the SIGBUS table however the run ends.
    struct Attached(usize);
    impl Drop for Attached {
        fn drop(&mut self) {
            super::sigbus::detach(self.0);
        }
    }
    let probe = Probe::new(pages, true)?;
    let _attached = Attached(super::sigbus::attach(
        probe.mapping.base.as_ptr() as usize,
        probe.mapping.len,
        (&raw const probe).cast(),
        serve_sigbus,
    )?);
    probe.touch_all(pages, rounds)
}

/// A raw pager: a region whose pages are the pages of `file`.
struct Pager {
    region: super::region::Region,
    file: std::fs::File,
}

fn serve_from_file(pager: *const (), addr: usize, _write: Option<bool>) -> Result<(), VmError> {
    // SAFETY: attached from a `Pager` that outlives the attachment.
    let pager = unsafe { &*pager.cast::<Pager>() };
    let page = ((addr - pager.region.base() as usize) / os_page()) as u64;
    // SAFETY: only this fault installs the page, which is missing (it
    // faulted), and nothing else references it.
    unsafe {
        pager.region.fill(page, 1, |bytes| {
            std::os::unix::fs::FileExt::read_exact_at(&pager.file, bytes, page * os_page() as u64)
        })
    }
    .map_err(|e| match e {
        super::region::FillError::Read(source) => VmError::Map {
            what: "pager probe pread",
            bytes: os_page(),
            source,
        },
        super::region::FillError::Install(e) => e,
    })
}

/// Nanoseconds per fault of the smallest pager that serves a file's
/// pages through `userfaultfd` under a memory bound, with the VM's own
/// mechanisms and none of its decisions: the faulting thread serves itself
/// from the SIGBUS handler with a `pread` of the page from `file` (in the
/// page cache) into its staging buffer and one `UFFDIO_COPY`; past the
/// first `resident` faults the oldest pages are given back 64 at a time
/// (one `process_madvise`, as the VM releases an eviction batch). The pages
/// of `file` are touched once each in a scattered order, so each touch is
/// one fault. The floor the VM's transparent fault is measured against.
pub fn pager_round_trip_ns(
    file: &std::fs::File,
    pages: usize,
    resident: usize,
    rounds: usize,
) -> Result<f64, VmError> {
    const BATCH: usize = 64;
    let pager = Pager {
        region: super::region::Region::reserve(pages as u64, os_page(), true)?,
        file: file.try_clone().map_err(|source| VmError::Map {
            what: "pager probe file",
            bytes: 0,
            source,
        })?,
    };
    pager
        .region
        .attach_fault_handler((&raw const pager).cast(), serve_from_file)?;
    let resident = resident.max(BATCH);
    // A scattered order: page i·m mod n, m odd and coprime with n.
    let mut spread = (pages / 3) | 1;
    while gcd(spread, pages) != 1 {
        spread += 2;
    }
    let order = |i: usize| ((i * spread) % pages) as u64;
    let mut best = f64::MAX;
    for _ in 0..rounds {
        // SAFETY: nothing references the region's pages between rounds.
        unsafe { pager.region.release_runs(&[(0, pages as u64)]) };
        let t = Instant::now();
        let mut released = 0;
        for i in 0..pages {
            // SAFETY: a load from the region; the fault is served by
            // `serve_from_file` before it completes.
            black_box(unsafe {
                std::ptr::read_volatile(pager.region.base().add(order(i) as usize * os_page()))
            });
            if i + 1 - released >= resident + BATCH {
                let runs: Vec<(u64, u64)> = (released..released + BATCH)
                    .map(|k| (order(k), 1))
                    .collect();
                // SAFETY: the pages were touched already and nothing
                // references them.
                unsafe { pager.region.release_runs(&runs) };
                released += BATCH;
            }
        }
        best = best.min(t.elapsed().as_nanos() as f64 / pages as f64);
    }
    Ok(best)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `struct uffd_msg`'s page-fault form.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct UffdMsg {
    event: u8,
    _reserved: [u8; 7],
    flags: u64,
    address: u64,
    _thread: u64,
}
const UFFD_EVENT_PAGEFAULT: u8 = 0x12;

/// Nanoseconds per fault served by a handler thread that reads the fault
/// message and answers with `UFFDIO_COPY`: spinning on the non-blocking
/// descriptor (`spin`) or sleeping in `poll` until a message comes.
pub fn handler_thread_round_trip_ns(
    pages: usize,
    rounds: usize,
    spin: bool,
) -> Result<f64, VmError> {
    let probe = Probe::new(pages, false)?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handler = scope.spawn(|| -> Result<(), VmError> {
            let mut failure: Option<VmError> = None;
            let mut msg = UffdMsg::default();
            while !stop.load(Ordering::Relaxed) {
                if !spin {
                    let mut fds = [rustix::event::PollFd::new(
                        &probe.uffd.fd,
                        rustix::event::PollFlags::IN,
                    )];
                    let timeout = rustix::event::Timespec {
                        tv_sec: 0,
                        tv_nsec: 10_000_000,
                    };
                    let _ = rustix::event::poll(&mut fds, Some(&timeout));
                }
                // SAFETY: reads one `uffd_msg` (32 bytes) into `msg`.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(
                        (&raw mut msg).cast::<u8>(),
                        size_of::<UffdMsg>(),
                    )
                };
                match rustix::io::read(&probe.uffd.fd, bytes) {
                    Ok(n) if n == size_of::<UffdMsg>() && msg.event == UFFD_EVENT_PAGEFAULT => {
                        let page = (msg.address & !(os_page() as u64 - 1)) as *mut u8;
                        // SAFETY: the faulting page lies in the registered
                        // mapping; only this thread installs pages. The
                        // copy wakes the faulting thread.
                        if let Err(e) = unsafe { probe.uffd.copy(page, &SOURCE[..os_page()], true) }
                        {
                            // Keep serving (a faulting thread left waiting
                            // would hang the run); report at the end.
                            failure.get_or_insert(VmError::Map {
                                what: "probe UFFDIO_COPY",
                                bytes: os_page(),
                                source: e.into(),
                            });
                            // SAFETY: as above; the zero page ends the
                            // fault (the touch then reports wrong bytes).
                            let _ = unsafe { probe.uffd.zeropage(page, os_page()) };
                        }
                    }
                    Ok(_) | Err(rustix::io::Errno::AGAIN) => std::hint::spin_loop(),
                    Err(e) => {
                        failure.get_or_insert(VmError::Map {
                            what: "probe read of a fault message",
                            bytes: size_of::<UffdMsg>(),
                            source: e.into(),
                        });
                    }
                }
            }
            failure.map_or(Ok(()), Err)
        });
        let result = probe.touch_all(pages, rounds);
        stop.store(true, Ordering::Relaxed);
        let handled = handler.join().expect("the probe's handler panicked");
        handled.and(result)
    })
}

/// Nanoseconds per page to install a page of zeros write-protected on a
/// missing page: by `UFFDIO_COPY` of zeros (`copy`), or by
/// `UFFDIO_ZEROPAGE` and `UFFDIO_WRITEPROTECT`.
pub fn zero_install_ns(pages: usize, rounds: usize, copy: bool) -> Result<f64, VmError> {
    let probe = Probe::new(pages, true)?;
    let zeros = vec![0u8; os_page()];
    let mut best = f64::MAX;
    for _ in 0..rounds {
        probe.release()?;
        let t = Instant::now();
        for i in 0..pages {
            // SAFETY: each page of the registered mapping is installed once
            // per round, by this thread only.
            let installed = unsafe {
                if copy {
                    probe.uffd.copy(probe.page(i), &zeros, true).map(drop)
                } else {
                    probe.uffd.zeropage_protected(probe.page(i), os_page())
                }
            };
            installed.map_err(|e| VmError::Map {
                what: "probe zero install",
                bytes: os_page(),
                source: e.into(),
            })?;
        }
        best = best.min(t.elapsed().as_nanos() as f64 / pages as f64);
    }
    Ok(best)
}
