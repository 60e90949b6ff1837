//! The process's SIGBUS handler for transparent mode: the faulting thread
//! serves its own fault.
//!
//! A region in transparent mode is registered with a `userfaultfd` in
//! SIGBUS mode (`sys::uffd`): a load from a missing page or a store to a
//! write-protected one raises SIGBUS in the thread that made it. This
//! handler looks the address up in a fixed table of the process's
//! transparent regions (lock-free: atomics only) and calls that address
//! space's fault service — the same one the copying API uses — then
//! returns, and the instruction runs again. A SIGBUS at any other address
//! goes to the handler that was installed before, or, if that was the
//! default, kills the process as it would have.
//!
//! # What runs in the handler, and why that is sound here
//!
//! The fault service takes the monitor and page latches, allocates and
//! does I/O: not async-signal-safe in general. It is safe here because the
//! signal is synchronous — raised by a load or store of the thread itself
//! into VM memory — and the VM keeps two rules:
//!
//! - The VM's own code never touches a page of the region that is missing
//!   or write-protected, and never touches region memory while holding the
//!   monitor except on pages it has latched and made present (every install
//!   is a `UFFDIO_COPY` from a staging buffer; every store of the copying
//!   API unprotects its latched page first). So the handler never
//!   interrupts the VM itself.
//! - The caller's contract (crate docs): do not load or store VM memory
//!   inside a signal handler of your own, inside a global allocator, or
//!   while holding a page guard on the same page.
//!
//! SIGBUS stays blocked while the handler runs, so a fault inside the
//! service (a bug) kills the process instead of recursing. A panic inside
//! the service is caught and aborts with its message; an error (an I/O
//! error, an address outside every interval, a store into a read-only
//! interval) is printed with the address and aborts, as a load from an
//! unreadable `mmap`ped file raises a fatal SIGBUS.

use crate::error::VmError;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// A fault server: called with the address space it was attached with,
/// the faulting address, and whether the access was a store (`None` where
/// the machine does not say).
pub(crate) type Serve =
    fn(space: *const (), addr: usize, write: Option<bool>) -> Result<(), VmError>;

/// Transparent regions one process can hold at once.
const SLOTS: usize = 64;

struct Slot {
    base: AtomicUsize,
    len: AtomicUsize,
    /// Null when the slot is free; published last (Release) and read first
    /// (Acquire).
    space: AtomicPtr<()>,
    serve: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)] // an initialiser for the table
const FREE: Slot = Slot {
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    space: AtomicPtr::new(std::ptr::null_mut()),
    serve: AtomicUsize::new(0),
};

static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
/// Slots being filled (claimed before `space` is published).
static CLAIMED: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

static INSTALL: Once = Once::new();
/// The action that was installed before ours (written once, in `INSTALL`).
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());

/// Enters `[base, base + len)` in the table with its server; installs the
/// handler the first time. Returns the slot, for [`detach`].
pub(crate) fn attach(
    base: usize,
    len: usize,
    space: *const (),
    serve: Serve,
) -> Result<usize, VmError> {
    install()?;
    for (i, claimed) in CLAIMED.iter().enumerate() {
        if claimed
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            let slot = &TABLE[i];
            slot.base.store(base, Ordering::Relaxed);
            slot.len.store(len, Ordering::Relaxed);
            slot.serve.store(serve as usize, Ordering::Relaxed);
            slot.space.store(space.cast_mut(), Ordering::Release);
            return Ok(i);
        }
    }
    Err(VmError::TransparentUnavailable {
        reason: format!("this process already has {SLOTS} transparent address spaces"),
    })
}

/// Takes a region out of the table (before its memory is unmapped).
pub(crate) fn detach(slot: usize) {
    TABLE[slot]
        .space
        .store(std::ptr::null_mut(), Ordering::Release);
    CLAIMED[slot].store(0, Ordering::Release);
}

fn install() -> Result<(), VmError> {
    let mut failed = None;
    INSTALL.call_once(|| {
        // The action in place now is kept first (so that a SIGBUS that is
        // not ours, arriving the moment ours is installed, finds it).
        let previous: &'static mut libc::sigaction =
            // SAFETY: a zeroed `sigaction` is a valid value to fill in;
            // leaked so the handler can read it for ever.
            Box::leak(Box::new(unsafe { std::mem::zeroed() }));
        // SAFETY: reads the current action into `previous`.
        if unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), previous) } != 0 {
            failed = Some(std::io::Error::last_os_error());
            return;
        }
        PREVIOUS.store(previous, Ordering::Release);
        // SAFETY: a zeroed `sigaction` is a valid value to fill in.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_sigbus as *const () as usize;
        // No SA_NODEFER: SIGBUS stays blocked while we serve, so a fault
        // inside the service kills rather than recurses. No SA_ONSTACK:
        // the service needs the thread's own stack, not the small
        // alternate one.
        action.sa_flags = libc::SA_SIGINFO;
        // SAFETY: `sa_mask` is ours to initialise.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: installs a handler with the signature SA_SIGINFO asks
        // for.
        if unsafe { libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) } != 0 {
            failed = Some(std::io::Error::last_os_error());
            PREVIOUS.store(std::ptr::null_mut(), Ordering::Release);
        }
    });
    match failed {
        Some(e) => Err(VmError::TransparentUnavailable {
            reason: format!("installing the SIGBUS handler failed: {e}"),
        }),
        None if PREVIOUS.load(Ordering::Acquire).is_null() => {
            Err(VmError::TransparentUnavailable {
                reason: "installing the SIGBUS handler failed earlier".into(),
            })
        }
        None => Ok(()),
    }
}

/// Whether the fault that raised this signal was a store: the x86-64 page
/// fault's error code (bit 1), which the kernel puts in the signal frame.
#[cfg(target_arch = "x86_64")]
fn was_write(context: *mut libc::c_void) -> Option<bool> {
    if context.is_null() {
        return None;
    }
    // SAFETY: for an SA_SIGINFO handler the third argument is the
    // interrupted `ucontext_t`.
    let gregs = unsafe { &(*context.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    const PAGE_FAULT: i64 = 14;
    if gregs[libc::REG_TRAPNO as usize] != PAGE_FAULT {
        return None;
    }
    Some(gregs[libc::REG_ERR as usize] & 2 != 0)
}

#[cfg(not(target_arch = "x86_64"))]
fn was_write(_context: *mut libc::c_void) -> Option<bool> {
    None
}

extern "C" fn on_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // Only a fault's SIGBUS is ours: `userfaultfd` raises it with
    // BUS_ADRERR. One sent by a process, or a memory error (BUS_MCEERR_*),
    // at an address that happens to be ours is passed on.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    if unsafe { (*info).si_code } != libc::BUS_ADRERR {
        chain(signal, info, context);
        return;
    }
    // SAFETY: as above.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &TABLE {
        let space = slot.space.load(Ordering::Acquire);
        if space.is_null() {
            continue;
        }
        let base = slot.base.load(Ordering::Relaxed);
        if addr < base || addr - base >= slot.len.load(Ordering::Relaxed) {
            continue;
        }
        // SAFETY: errno is this thread's; saved and restored around the
        // service so the interrupted code sees it unchanged.
        let errno = unsafe { *libc::__errno_location() };
        // SAFETY: `serve` was stored from a `Serve` in `attach`.
        let serve: Serve =
            unsafe { std::mem::transmute::<usize, Serve>(slot.serve.load(Ordering::Relaxed)) };
        let write = was_write(context);
        let served = std::panic::catch_unwind(|| serve(space, addr, write));
        match served {
            Ok(Ok(())) => {}
            Ok(Err(e)) => fatal(&format!(
                "cedar-vm: a {} at {addr:#x} in a transparent address space could not be served: {e}\n",
                match write {
                    Some(true) => "store",
                    Some(false) => "load",
                    None => "load or store",
                }
            )),
            Err(_) => fatal(&format!(
                "cedar-vm: the fault service panicked serving {addr:#x}\n"
            )),
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
        return;
    }
    chain(signal, info, context);
}

/// Passes a SIGBUS that is not ours to the handler installed before, or
/// dies of it as the default action would.
fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let previous = PREVIOUS.load(Ordering::Acquire);
    if !previous.is_null() {
        // SAFETY: written once before our handler could run, never freed.
        let previous = unsafe { &*previous };
        let handler = previous.sa_sigaction;
        if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
            if previous.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: an SA_SIGINFO handler has this signature.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(handler) };
                f(signal, info, context);
            } else {
                // SAFETY: a plain handler has this signature.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
                f(signal);
            }
            return;
        }
    }
    // The default action: restore it and raise the signal again (pending
    // until this handler returns, since SIGBUS is blocked in it).
    // SAFETY: restoring the default disposition and raising a signal.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
        libc::raise(libc::SIGBUS);
    }
}

/// Writes `message` to standard error and aborts (from a signal handler:
/// `write(2)` and `abort(3)` only).
fn fatal(message: &str) -> ! {
    // SAFETY: writes a valid buffer to descriptor 2.
    unsafe { libc::write(2, message.as_ptr().cast(), message.len()) };
    std::process::abort()
}
