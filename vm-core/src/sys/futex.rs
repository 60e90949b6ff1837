//! The futex layer: a 32-bit word other processes share, with the two
//! kernel calls — wait while the word holds a value, wake sleepers — and
//! the process id, cached. Shared (not process-private) futexes, so that
//! sleepers and wakers may be different processes.

use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A word with futex operations. The BSD primitives are written against
/// this trait so that the same state machine runs on a real shared word and
/// in a `loom` model.
pub trait FutexWord {
    /// Reads the word.
    fn load(&self) -> u32;
    /// Compare-and-swap.
    fn compare_exchange(&self, current: u32, new: u32) -> Result<u32, u32>;
    /// Swaps in `value`, returning the old value.
    fn swap(&self, value: u32) -> u32;
    /// Sleeps while the word holds `expected` (may return spuriously).
    fn wait(&self, expected: u32);
    /// Wakes up to `count` sleepers.
    fn wake(&self, count: u32);
}

impl FutexWord for AtomicU32 {
    fn load(&self) -> u32 {
        AtomicU32::load(self, Ordering::SeqCst)
    }
    fn compare_exchange(&self, current: u32, new: u32) -> Result<u32, u32> {
        AtomicU32::compare_exchange(self, current, new, Ordering::SeqCst, Ordering::SeqCst)
    }
    fn swap(&self, value: u32) -> u32 {
        AtomicU32::swap(self, value, Ordering::SeqCst)
    }
    fn wait(&self, expected: u32) {
        wait(self, expected, None);
    }
    fn wake(&self, count: u32) {
        wake(self, count);
    }
}

/// Sleeps while `word` holds `expected`, at most `timeout`. Returns early on
/// a wake-up, a signal, or when the word already differs.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let timespec = timeout.map(|t| rustix::time::Timespec {
        tv_sec: t.as_secs() as i64,
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    // EAGAIN (the word changed), EINTR and ETIMEDOUT all mean "look again".
    let _ = rustix::thread::futex::wait(
        word,
        rustix::thread::futex::Flags::empty(),
        expected,
        timespec.as_ref(),
    );
}

/// Wakes up to `count` sleepers on `word`.
pub fn wake(word: &AtomicU32, count: u32) {
    let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), count);
}

static PID: AtomicU32 = AtomicU32::new(0);
static ATFORK: Once = Once::new();

extern "C" fn forget_pid_in_child() {
    PID.store(0, Ordering::Relaxed);
}

/// This process's id, without a system call after the first. A child made
/// by `fork` forgets the parent's (a `pthread_atfork` handler).
pub fn current_pid() -> u32 {
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic, which
        // is async-signal-safe and valid in a freshly forked child.
        unsafe {
            libc::pthread_atfork(None, None, Some(forget_pid_in_child));
        }
    });
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    PID.store(pid, Ordering::Relaxed);
    pid
}

/// Whether process `pid` is alive: it exists and is not a zombie (a
/// process killed but not yet reaped still answers `kill(pid, 0)`).
pub fn process_alive(pid: u32) -> bool {
    let Some(raw) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    if let Err(e) = rustix::process::test_kill_process(raw) {
        return e != rustix::io::Errno::SRCH;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the command's closing ')'.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}
