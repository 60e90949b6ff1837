//! `userfaultfd` on `rustix`: open a descriptor, register the region for
//! missing-page and write-protect faults in SIGBUS mode, and the three
//! ioctls the transparent mode uses — `UFFDIO_COPY` (install a page,
//! write-protected or not) and `UFFDIO_WRITEPROTECT` (protect or
//! unprotect a run); `UFFDIO_ZEROPAGE` is here for `sys::uffd_probe`'s
//! measurement only (see `Region::fill_zeros` for why it is not used).
//! The copying mode's frame pool (`sys::frame_pool`) uses a descriptor of
//! its own, without SIGBUS mode, registered for write-protect faults only
//! (so nothing traps), for `UFFDIO_MOVE`.
//!
//! Debian's headers here are 6.1, and the `userfaultfd` crate needs
//! libclang, so the layouts and request numbers below are written from
//! `include/uapi/linux/userfaultfd.h` by hand (each checked on this
//! kernel: `../shared/KERNEL.md` §1).
//!
//! # Why SIGBUS mode
//!
//! With `UFFD_FEATURE_SIGBUS` the kernel sends no fault messages: a thread
//! that loads from a missing page or stores to a write-protected one gets a
//! SIGBUS, and serves the fault itself (`sys::sigbus`) with the same fault
//! service as the copying API, then returns to the instruction. Measured on
//! this machine (the figures, confirmed by `bench fault-path`'s raw
//! rows): 2.6 µs a round trip served this way, against 3.7 µs for a handler
//! thread on the same core and 46 µs on the other one (a sleeping thread's
//! wake-up costs 25–30 µs here). So the common fault never pays a wake-up,
//! faults of different threads are served in parallel as copying-API
//! faults are, and no thread polls.
//!
//! A kernel access to a missing page (a system call given a pointer into
//! the VM) is refused with `EFAULT` in this mode rather than waited for;
//! see the crate docs' contract.

use crate::error::VmError;
use rustix::ioctl::{Updater, opcode};
use rustix::mm::UserfaultfdFlags;
use std::os::fd::{AsFd, OwnedFd};

const UFFD_API: u64 = 0xAA;
/// `UFFD_USER_MODE_ONLY`: allowed without privilege (faults from kernel
/// code are refused instead of trapped, as SIGBUS mode does anyway).
const UFFD_USER_MODE_ONLY: u32 = 1;
const UFFD_FEATURE_SIGBUS: u64 = 1 << 7;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const UFFDIO_REGISTER_MODE_WP: u64 = 2;
const UFFDIO_COPY_MODE_WP: u64 = 2;
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1;
/// `UFFDIO_MOVE` (Linux 6.8): `_IOWR(0xAA, 0x05, struct uffdio_move)`.
const UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES: u64 = 1 << 1;
const UFFDIO_MOVE: rustix::ioctl::Opcode = opcode::read_write::<UffdioMove>(0xAA, 0x05);
/// `USERFAULTFD_IOC_NEW` on `/dev/userfaultfd`: `_IO(0xAA, 0x00)`.
const USERFAULTFD_IOC_NEW: rustix::ioctl::Opcode = opcode::none(0xAA, 0x00);

#[repr(C)]
#[derive(Default)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioCopy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioZeropage {
    range: UffdioRange,
    mode: u64,
    zeropage: i64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioWriteprotect {
    range: UffdioRange,
    mode: u64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioMove {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    moved: i64,
}

const UFFDIO_API: rustix::ioctl::Opcode = opcode::read_write::<UffdioApi>(0xAA, 0x3F);
const UFFDIO_REGISTER: rustix::ioctl::Opcode = opcode::read_write::<UffdioRegister>(0xAA, 0x00);
const UFFDIO_COPY: rustix::ioctl::Opcode = opcode::read_write::<UffdioCopy>(0xAA, 0x03);
const UFFDIO_ZEROPAGE: rustix::ioctl::Opcode = opcode::read_write::<UffdioZeropage>(0xAA, 0x04);
const UFFDIO_WRITEPROTECT: rustix::ioctl::Opcode =
    opcode::read_write::<UffdioWriteprotect>(0xAA, 0x06);

/// The environment variable that makes opening a `userfaultfd` fail as if
/// the kernel refused it (to test the error an unprivileged user sees):
/// set to anything but empty or `0`.
pub const REFUSE_ENV: &str = "CEDAR_VM_REFUSE_USERFAULTFD";

/// A `userfaultfd` in SIGBUS mode with one range registered for missing
/// and write-protect faults.
#[derive(Debug)]
pub(crate) struct Uffd {
    pub(crate) fd: OwnedFd,
    /// Whether the kernel only let us trap user-mode faults.
    pub(crate) user_mode_only: bool,
}

impl Uffd {
    /// Opens a descriptor in SIGBUS mode: `userfaultfd(2)`, then the same
    /// with `UFFD_USER_MODE_ONLY` (allowed unprivileged), then
    /// `/dev/userfaultfd`. The error says what was tried and how to enable
    /// it.
    pub(crate) fn open() -> Result<Uffd, VmError> {
        Self::open_with(true)
    }

    /// As [`Uffd::open`]; without `sigbus`, faults are messages read from
    /// the descriptor (the handler-thread alternative, measured by
    /// `sys::uffd_probe`).
    pub(crate) fn open_with(sigbus: bool) -> Result<Uffd, VmError> {
        let refused = |reason: String| VmError::TransparentUnavailable { reason };
        if std::env::var_os(REFUSE_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
            return Err(refused(format!(
                "userfaultfd refused on purpose ({REFUSE_ENV} is set; unset it, or leave \
                 transparent mode off: the copying API needs no userfaultfd)"
            )));
        }
        let flags = UserfaultfdFlags::CLOEXEC | UserfaultfdFlags::NONBLOCK;
        // SAFETY: creating the descriptor has no effect on memory by itself.
        let (fd, user_mode_only) = match unsafe { rustix::mm::userfaultfd(flags) } {
            Ok(fd) => (fd, false),
            Err(first) => {
                let user_only = flags | UserfaultfdFlags::from_bits_retain(UFFD_USER_MODE_ONLY);
                // SAFETY: as above.
                match unsafe { rustix::mm::userfaultfd(user_only) } {
                    Ok(fd) => (fd, true),
                    Err(second) => match Self::open_device() {
                        Ok(fd) => (fd, false),
                        Err(third) => {
                            return Err(refused(format!(
                                "userfaultfd(2) gave {first}, with UFFD_USER_MODE_ONLY {second}, \
                                 and /dev/userfaultfd {third}; run as root, or set the sysctl \
                                 vm.unprivileged_userfaultfd=1, or give this user read-write \
                                 access to /dev/userfaultfd (the copying API needs none of this)"
                            )));
                        }
                    },
                }
            }
        };
        let mut api = UffdioApi {
            api: UFFD_API,
            features: if sigbus { UFFD_FEATURE_SIGBUS } else { 0 },
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API takes a `struct uffdio_api`, laid out above.
        unsafe { rustix::ioctl::ioctl(&fd, Updater::<UFFDIO_API, _>::new(&mut api)) }.map_err(
            |e| {
                refused(format!(
                    "UFFDIO_API with UFFD_FEATURE_SIGBUS was refused: {e}"
                ))
            },
        )?;
        Ok(Uffd { fd, user_mode_only })
    }

    fn open_device() -> std::io::Result<OwnedFd> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let device = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/userfaultfd")?;
        // SAFETY: USERFAULTFD_IOC_NEW takes the new descriptor's open flags
        // as its integer argument and returns a new descriptor (rustix's
        // ioctl patterns drop an ioctl's return value, so this one is made
        // through libc).
        let raw = unsafe {
            libc::ioctl(
                device.as_raw_fd(),
                USERFAULTFD_IOC_NEW as _,
                libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor the kernel just created for us and
        // nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    }

    /// Registers `[start, start + len)` for missing-page and write-protect
    /// faults.
    pub(crate) fn register(&self, start: *mut u8, len: usize) -> Result<(), VmError> {
        let mut register = UffdioRegister {
            range: UffdioRange {
                start: start as u64,
                len: len as u64,
            },
            mode: UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER takes a `struct uffdio_register`; the
        // range is the caller's own mapping.
        unsafe { rustix::ioctl::ioctl(&self.fd, Updater::<UFFDIO_REGISTER, _>::new(&mut register)) }
            .map_err(|e| VmError::TransparentUnavailable {
                reason: format!(
                    "UFFDIO_REGISTER (missing and write-protect) of {len} bytes was refused: {e}"
                ),
            })
    }

    /// Registers `[start, start + len)` for write-protect faults only: the
    /// range stays ordinary anonymous memory (a missing page is zero-filled
    /// by the kernel, as without a `userfaultfd`, and nothing is ever
    /// write-protected), but `UFFDIO_MOVE` may now move pages into it
    /// (`sys::frame_pool`).
    pub(crate) fn register_for_moves(&self, start: *mut u8, len: usize) -> rustix::io::Result<()> {
        let mut register = UffdioRegister {
            range: UffdioRange {
                start: start as u64,
                len: len as u64,
            },
            mode: UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER takes a `struct uffdio_register`; the
        // range is the caller's own mapping.
        unsafe { rustix::ioctl::ioctl(&self.fd, Updater::<UFFDIO_REGISTER, _>::new(&mut register)) }
    }

    /// Moves the pages of `len` bytes at `src` to `dst` (`UFFDIO_MOVE`):
    /// the page-table entries change hands, nothing is copied, allocated
    /// or zeroed, and `src` is left missing. Returns the bytes moved (a
    /// prefix of the range) and, if it stopped early, why: `EEXIST` for a
    /// destination page present already, `ENOENT` for a source page
    /// missing (unless `allow_src_holes`: then it is passed over, its
    /// destination left missing), `EBUSY` for one shared (after a `fork`)
    /// or pinned.
    ///
    /// # Safety
    /// Both ranges are page-aligned anonymous private memory of this
    /// process, `dst` registered on this descriptor, and no Rust reference
    /// into either exists (the caller holds both exclusively).
    pub(crate) unsafe fn move_pages(
        &self,
        dst: *mut u8,
        src: *mut u8,
        len: usize,
        allow_src_holes: bool,
    ) -> (usize, rustix::io::Result<()>) {
        let mut done = 0usize;
        let mut again = 0;
        while done < len {
            let mut mv = UffdioMove {
                dst: dst as u64 + done as u64,
                src: src as u64 + done as u64,
                len: (len - done) as u64,
                mode: if allow_src_holes {
                    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
                } else {
                    0
                },
                moved: 0,
            };
            // SAFETY: UFFDIO_MOVE takes a `struct uffdio_move`; the ranges
            // are as the caller promises.
            let result =
                unsafe { rustix::ioctl::ioctl(&self.fd, Updater::<UFFDIO_MOVE, _>::new(&mut mv)) };
            if mv.moved > 0 {
                done += mv.moved as usize;
            }
            match result {
                Ok(()) => {}
                // A page lock or a split raced with it: go on from where it
                // stopped, a few times.
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) if again < 8 => again += 1,
                Err(e) => return (done, Err(e)),
            }
        }
        (done, Ok(()))
    }

    /// Installs `src` at `dst` (both page-aligned, `src.len()` a multiple
    /// of the OS page), write-protected if `protect`, waking any thread
    /// waiting on those pages (none in SIGBUS mode). A page already present there (`EEXIST`)
    /// ends the copy early: the number of bytes installed is returned.
    ///
    /// # Safety
    /// `dst..dst + src.len()` lies in the registered range, and the caller
    /// holds those pages exclusively (no one else installs them).
    pub(crate) unsafe fn copy(
        &self,
        dst: *mut u8,
        src: &[u8],
        protect: bool,
    ) -> rustix::io::Result<usize> {
        let mut done = 0usize;
        while done < src.len() {
            let mut copy = UffdioCopy {
                dst: dst as u64 + done as u64,
                src: src[done..].as_ptr() as u64,
                len: (src.len() - done) as u64,
                mode: if protect { UFFDIO_COPY_MODE_WP } else { 0 },
                copy: 0,
            };
            // SAFETY: UFFDIO_COPY takes a `struct uffdio_copy`; `src` is
            // readable for `len` bytes; the destination is registered and
            // held by the caller.
            let result = unsafe {
                rustix::ioctl::ioctl(&self.fd, Updater::<UFFDIO_COPY, _>::new(&mut copy))
            };
            if copy.copy > 0 {
                done += copy.copy as usize;
            }
            match result {
                Ok(()) => {}
                // Interrupted or the mapping changing under it: go on from
                // where it stopped.
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::EXIST) => return Ok(done),
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Maps the shared zero page at `len` bytes from `dst`: reads see
    /// zeros, and no memory is used until a store (which, unless the page
    /// is write-protected, is not a fault we see).
    ///
    /// # Safety
    /// As for [`Uffd::copy`].
    pub(crate) unsafe fn zeropage(&self, dst: *mut u8, len: usize) -> rustix::io::Result<()> {
        let mut zero = UffdioZeropage {
            range: UffdioRange {
                start: dst as u64,
                len: len as u64,
            },
            mode: 0,
            zeropage: 0,
        };
        // SAFETY: UFFDIO_ZEROPAGE takes a `struct uffdio_zeropage`; the
        // range is registered and held by the caller.
        unsafe { rustix::ioctl::ioctl(&self.fd, Updater::<UFFDIO_ZEROPAGE, _>::new(&mut zero)) }
    }

    /// Maps the zero page at `len` bytes from `dst` and write-protects it
    /// (the alternative to a copy of zeros; see `sys::uffd_probe`).
    ///
    /// # Safety
    /// As for [`Uffd::copy`].
    pub(crate) unsafe fn zeropage_protected(
        &self,
        dst: *mut u8,
        len: usize,
    ) -> rustix::io::Result<()> {
        // SAFETY: as the caller promises.
        unsafe { self.zeropage(dst, len) }?;
        self.write_protect(dst, len, true)
    }

    /// Write-protects (`protect`) or unprotects `len` bytes from `start`;
    /// unprotecting wakes a thread waiting on them (none in SIGBUS mode).
    pub(crate) fn write_protect(
        &self,
        start: *mut u8,
        len: usize,
        protect: bool,
    ) -> rustix::io::Result<()> {
        let mut wp = UffdioWriteprotect {
            range: UffdioRange {
                start: start as u64,
                len: len as u64,
            },
            mode: if protect {
                UFFDIO_WRITEPROTECT_MODE_WP
            } else {
                0
            },
        };
        // SAFETY: UFFDIO_WRITEPROTECT takes a `struct uffdio_writeprotect`;
        // it changes page-table protection only, never contents.
        unsafe {
            rustix::ioctl::ioctl(
                self.fd.as_fd(),
                Updater::<UFFDIO_WRITEPROTECT, _>::new(&mut wp),
            )
        }
    }
}
