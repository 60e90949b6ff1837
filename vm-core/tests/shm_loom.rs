//! The `mset` / `mclear` / `msleep` / `mwakeup` state machine under `loom`:
//! every interleaving of two (or, bounded, three) threads, with the futex
//! emulated as the kernel does it: a sleeper is queued only while the word
//! still holds the expected value (checked under the futex's lock), and
//! `wake(n)` wakes exactly the first `n` queued sleepers — no more. Loom
//! reports a lost wake-up as a deadlock, and the critical-section counter
//! catches a breach of mutual exclusion.

use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use vm_core::shm::FutexWord;
use vm_core::shm::msem::{mclear, mset, msleep};

/// The futex's queue: sleepers waiting, in arrival order, and those a
/// `wake` has chosen but that have not run yet.
#[derive(Default)]
struct Queue {
    waiting: Vec<u64>,
    woken: Vec<u64>,
    next_id: u64,
}

struct LoomWord {
    value: AtomicU32,
    queue: Mutex<Queue>,
    sleepers: Condvar,
}

impl LoomWord {
    fn new() -> LoomWord {
        LoomWord {
            value: AtomicU32::new(0),
            queue: Mutex::new(Queue::default()),
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
        let mut queue = self.queue.lock().unwrap();
        if self.value.load(Ordering::SeqCst) != expected {
            return;
        }
        let id = queue.next_id;
        queue.next_id += 1;
        queue.waiting.push(id);
        while !queue.woken.contains(&id) {
            queue = self.sleepers.wait(queue).unwrap();
        }
        queue.woken.retain(|&w| w != id);
    }
    fn wake(&self, count: u32) {
        let mut queue = self.queue.lock().unwrap();
        let n = (count as usize).min(queue.waiting.len());
        let chosen: Vec<u64> = queue.waiting.drain(..n).collect();
        queue.woken.extend(chosen);
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

/// The scenario of the lost wake-up: A holds the semaphore; C `msleep`s on
/// it; B `mset(wait)`s and sleeps behind C; A `mclear`s. `clear` is the
/// clear under test.
fn sleeper_then_setter(clear: fn(&LoomWord)) {
    let sem = Arc::new(LoomWord::new());
    assert!(mset(&*sem, false));
    let sleeper = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            while sem.load() != 0 {
                msleep(&*sem);
            }
        })
    };
    let setter = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            assert!(mset(&*sem, true));
            mclear(&*sem);
        })
    };
    clear(&sem);
    sleeper.join().unwrap();
    setter.join().unwrap();
    assert_eq!(sem.load(), 0, "the semaphore ends clear");
}

/// Regression (review of the first round): `mclear` woke one sleeper, but
/// `msleep` and `mset(wait)` sleep on the same value. C `msleep`s (word 2);
/// B `mset(true)`s, finds it set and sleeps behind C; the holder `mclear`s
/// and wakes one — C, who returns without taking the semaphore — and B
/// sleeps forever with the word at 0. The earlier model's `wake` ignored
/// its count and woke everyone, so it could not see this; with the exact
/// futex above, the old `mclear` (`wake(1)`, run by
/// `a_single_wake_clear_is_caught`) deadlocks, and the fixed one does not.
#[test]
fn mclear_wakes_the_setter_behind_a_sleeper() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| sleeper_then_setter(mclear::<LoomWord>));
}

/// The old `mclear`, run in a child process by
/// `a_single_wake_clear_is_caught` (loom aborts the process when it finds
/// the deadlock); a no-op in an ordinary run.
#[test]
fn single_wake_clear_model() {
    if std::env::var_os("CEDAR_LOOM_SINGLE_WAKE").is_none() {
        return;
    }
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        sleeper_then_setter(|sem| {
            if sem.swap(0) == 2 {
                sem.wake(1);
            }
        })
    });
}

/// The exact futex makes the model catch the first round's bug.
#[test]
fn a_single_wake_clear_is_caught() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "single_wake_clear_model", "--nocapture"])
        .env("CEDAR_LOOM_SINGLE_WAKE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "loom missed the lost wake-up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("deadlock"), "{stderr}");
}
