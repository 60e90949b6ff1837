//! The `mset` / `mclear` / `msleep` / `mwakeup` state machine under `loom`:
//! every interleaving of two threads, with the futex emulated by a
//! mutex and condition variable (sleep only while the word still holds the
//! expected value — the kernel's check — and wake all sleepers). Loom
//! reports a lost wake-up as a deadlock, and the critical-section counter
//! catches a breach of mutual exclusion.

use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use vm_core::shm::FutexWord;
use vm_core::shm::msem::{mclear, mset, msleep};

struct LoomWord {
    value: AtomicU32,
    lock: Mutex<()>,
    sleepers: Condvar,
}

impl LoomWord {
    fn new() -> LoomWord {
        LoomWord {
            value: AtomicU32::new(0),
            lock: Mutex::new(()),
            sleepers: Condvar::new(),
        }
    }
}

impl FutexWord for LoomWord {
    fn load(&self) -> u32 {
        self.value.load(Ordering::SeqCst)
    }
    fn compare_exchange(&self, current: u32, new: u32) -> Result<u32, u32> {
        self.value
            .compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)
    }
    fn swap(&self, value: u32) -> u32 {
        self.value.swap(value, Ordering::SeqCst)
    }
    fn wait(&self, expected: u32) {
        let guard = self.lock.lock().unwrap();
        if self.value.load(Ordering::SeqCst) == expected {
            drop(self.sleepers.wait(guard).unwrap());
        }
    }
    fn wake(&self, _count: u32) {
        let _guard = self.lock.lock().unwrap();
        self.sleepers.notify_all();
    }
}

/// One pass through the critical section: take, check nobody else is
/// inside, leave, clear.
fn critical_section(sem: &LoomWord, inside: &AtomicUsize) {
    assert!(mset(sem, true));
    assert_eq!(
        inside.fetch_add(1, Ordering::SeqCst),
        0,
        "two holders at once"
    );
    inside.fetch_sub(1, Ordering::SeqCst);
    mclear(sem);
}

/// `spawned` threads and, if `main_too`, the model's own thread contend.
fn contend(spawned: usize, main_too: bool) {
    let sem = Arc::new(LoomWord::new());
    let inside = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..spawned)
        .map(|_| {
            let (sem, inside) = (Arc::clone(&sem), Arc::clone(&inside));
            thread::spawn(move || critical_section(&sem, &inside))
        })
        .collect();
    if main_too {
        critical_section(&sem, &inside);
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(sem.load(), 0, "the semaphore ends clear");
}

#[test]
fn mset_and_mclear_exclude_and_lose_no_wakeup() {
    loom::model(|| contend(1, true));
}

#[test]
fn msleep_returns_once_the_semaphore_is_cleared() {
    loom::model(|| {
        let sem = Arc::new(LoomWord::new());
        assert!(mset(&*sem, false));
        let sleeper = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || {
                // Sleep until clear; a spurious return re-checks.
                while sem.load() != 0 {
                    msleep(&*sem);
                }
            })
        };
        mclear(&*sem);
        sleeper.join().unwrap();
    });
}

#[test]
fn a_failed_try_mset_leaves_the_holder_undisturbed() {
    loom::model(|| {
        let sem = Arc::new(LoomWord::new());
        assert!(mset(&*sem, false));
        let other = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || mset(&*sem, false))
        };
        assert!(!other.join().unwrap());
        assert_eq!(sem.load(), 1, "no waiter was recorded");
        mclear(&*sem);
    });
}

#[test]
fn three_contenders_with_bounded_preemption() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| contend(2, true));
}

/// The buggy model run by `a_clear_that_forgets_the_wakeup_is_caught` in
/// a child process (loom aborts the process when it finds the deadlock);
/// a no-op in an ordinary run.
#[test]
fn buggy_clear_model() {
    if std::env::var_os("CEDAR_LOOM_BUGGY").is_none() {
        return;
    }
    loom::model(|| {
        let sem = Arc::new(LoomWord::new());
        assert!(mset(&*sem, true));
        let waiter = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || {
                assert!(mset(&*sem, true));
                mclear(&*sem);
            })
        };
        // The bug: clear without looking for a recorded waiter.
        sem.swap(0);
        waiter.join().unwrap();
    });
}

/// The model is not vacuous: a clear that forgets to wake the sleeper it
/// recorded is caught as a deadlock (the sleeper never wakes).
#[test]
fn a_clear_that_forgets_the_wakeup_is_caught() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "buggy_clear_model", "--nocapture"])
        .env("CEDAR_LOOM_BUGGY", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "loom missed the lost wake-up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("deadlock"), "{stderr}");
}
