//! The campaign's semaphore part: the 4.3BSD `mset` / `mclear` / `msleep` /
//! `mwakeup` state machine ([`crate::shm::msem`]) run by several real
//! threads that take turns under a seeded scheduler, on a futex word the
//! scheduler keeps the way the kernel keeps one — a sleeper is queued only
//! while the word holds the value it expects, and `wake(n)` wakes exactly
//! the first `n` queued sleepers, no more.
//!
//! Every operation on the word is a point where the scheduler may hand the
//! turn to another runnable thread, chosen from the seed, so a seed is one
//! interleaving and replays exactly. The run fails when every unfinished
//! thread is asleep (a lost wake-up: nobody is left to wake them) or when
//! two threads hold the semaphore at once.
//!
//! This is what found — and finds again when it is reverted — the review's
//! lost wake-up: `mclear` woke one sleeper, an `msleep`er, while an
//! `mset(wait)`er slept on with the word clear.

use crate::shm::msem::{mclear, mset, msleep, mwakeup};
use crate::sys::futex::FutexWord;
use disk_channel::rng::SplitMix64;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::VecDeque;

/// What a semaphore run did when it kept every rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SemaphoreRun {
    /// Times the turn passed from one thread to another.
    pub switches: u64,
    /// Times a thread held the semaphore.
    pub holds: u64,
    /// Times a thread went to sleep on the word.
    pub sleeps: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Runnable,
    Asleep,
    Done,
}

struct State {
    /// The thread whose turn it is.
    turn: usize,
    /// The futex word.
    value: u32,
    status: Vec<Status>,
    /// Sleepers on the word, in the order they went to sleep.
    queue: VecDeque<usize>,
    rng: SplitMix64,
    holders: u32,
    run: SemaphoreRun,
    /// Set once a rule broke: every thread abandons its program.
    failure: Option<String>,
    /// The last operations, oldest first.
    recent: VecDeque<String>,
}

struct Scheduler {
    state: Mutex<State>,
    turn_changed: Condvar,
}

/// Unwinds a thread whose run has failed (not a panic: no hook runs).
struct Abandon;

impl Scheduler {
    /// Waits for `me`'s turn; abandons the thread if the run has failed.
    fn enter(&self, me: usize) -> MutexGuard<'_, State> {
        let mut st = self.state.lock();
        while st.turn != me && st.failure.is_none() {
            self.turn_changed.wait(&mut st);
        }
        if st.failure.is_some() {
            drop(st);
            std::panic::resume_unwind(Box::new(Abandon));
        }
        st
    }

    /// Hands the turn to a runnable thread chosen from the seed (`me`
    /// included); with none runnable and some asleep, the run has lost a
    /// wake-up.
    fn pass(&self, mut st: MutexGuard<'_, State>, me: usize) {
        let runnable: Vec<usize> = (0..st.status.len())
            .filter(|&t| st.status[t] == Status::Runnable)
            .collect();
        if runnable.is_empty() {
            let asleep: Vec<usize> = (0..st.status.len())
                .filter(|&t| st.status[t] == Status::Asleep)
                .collect();
            if !asleep.is_empty() && st.failure.is_none() {
                st.failure = Some(format!(
                    "lost wake-up: thread(s) {asleep:?} asleep for good, the word at {}",
                    st.value
                ));
            }
        } else {
            let next = runnable[st.rng.below(runnable.len() as u64) as usize];
            if next != me {
                st.run.switches += 1;
            }
            st.turn = next;
        }
        drop(st);
        self.turn_changed.notify_all();
    }

    fn note(st: &mut State, me: usize, op: String) {
        if st.recent.len() == 32 {
            st.recent.pop_front();
        }
        st.recent.push_back(format!("t{me}: {op}"));
    }

    /// A change of the critical-section count (`+1` on taking the
    /// semaphore, `-1` before clearing it): a scheduling point too.
    fn hold(&self, me: usize, taking: bool) {
        let mut st = self.enter(me);
        if taking {
            st.holders += 1;
            st.run.holds += 1;
            if st.holders > 1 && st.failure.is_none() {
                st.failure = Some(format!("{} threads hold the semaphore at once", st.holders));
            }
        } else {
            st.holders -= 1;
        }
        Scheduler::note(&mut st, me, if taking { "holds" } else { "lets go" }.into());
        self.pass(st, me);
    }

    /// `me` is done: a scheduling point like any other (on its turn), so
    /// that when a thread leaves the runnable set is the seed's choice, not
    /// the OS's.
    fn finish(&self, me: usize) {
        let mut st = self.state.lock();
        while st.turn != me && st.failure.is_none() {
            self.turn_changed.wait(&mut st);
        }
        st.status[me] = Status::Done;
        self.pass(st, me);
    }
}

/// One thread's view of the simulated word.
struct Word<'s> {
    scheduler: &'s Scheduler,
    me: usize,
}

impl Word<'_> {
    fn op<R: std::fmt::Debug>(&self, what: &str, f: impl FnOnce(&mut u32) -> R) -> R {
        let mut st = self.scheduler.enter(self.me);
        let r = f(&mut st.value);
        let value = st.value;
        Scheduler::note(&mut st, self.me, format!("{what} -> {r:?} (word {value})"));
        self.scheduler.pass(st, self.me);
        r
    }
}

impl FutexWord for Word<'_> {
    fn load(&self) -> u32 {
        self.op("load", |v| *v)
    }

    fn compare_exchange(&self, current: u32, new: u32) -> Result<u32, u32> {
        self.op(&format!("cas {current}->{new}"), |v| {
            if *v == current {
                *v = new;
                Ok(current)
            } else {
                Err(*v)
            }
        })
    }

    fn swap(&self, value: u32) -> u32 {
        self.op(&format!("swap {value}"), |v| std::mem::replace(v, value))
    }

    fn wait(&self, expected: u32) {
        let s = self.scheduler;
        let mut st = s.enter(self.me);
        if st.value != expected {
            Scheduler::note(&mut st, self.me, format!("wait {expected}: word moved"));
            s.pass(st, self.me);
            return;
        }
        st.status[self.me] = Status::Asleep;
        st.queue.push_back(self.me);
        st.run.sleeps += 1;
        Scheduler::note(&mut st, self.me, format!("sleeps on {expected}"));
        s.pass(st, self.me);
        // Asleep until a wake makes this thread runnable and the scheduler
        // gives it the turn.
        let mut st = s.state.lock();
        while !(st.turn == self.me && st.status[self.me] == Status::Runnable)
            && st.failure.is_none()
        {
            s.turn_changed.wait(&mut st);
        }
        if st.failure.is_some() {
            drop(st);
            std::panic::resume_unwind(Box::new(Abandon));
        }
    }

    fn wake(&self, count: u32) {
        let mut st = self.scheduler.enter(self.me);
        let mut woken = Vec::new();
        while woken.len() < count as usize
            && let Some(t) = st.queue.pop_front()
        {
            st.status[t] = Status::Runnable;
            woken.push(t);
        }
        Scheduler::note(&mut st, self.me, format!("wake {count}: woke {woken:?}"));
        self.scheduler.pass(st, self.me);
    }
}

/// One thread's program: `ops` operations chosen from `seed` — take the
/// semaphore and let it go (waiting if need be, or only if free), sleep
/// until it is clear, wake a sleeper.
fn program(word: &Word<'_>, seed: u64, ops: usize) {
    let mut rng = SplitMix64::new(seed);
    for _ in 0..ops {
        match rng.below(20) {
            0..10 => {
                mset(word, true);
                word.scheduler.hold(word.me, true);
                word.scheduler.hold(word.me, false);
                mclear(word);
            }
            10..14 => {
                if mset(word, false) {
                    word.scheduler.hold(word.me, true);
                    word.scheduler.hold(word.me, false);
                    mclear(word);
                }
            }
            14..19 => msleep(word),
            _ => mwakeup(word),
        }
    }
}

/// Runs `threads` threads of `ops` operations each under the schedule of
/// `seed`. `Err` names the broken rule and the last operations.
pub fn run_semaphores(seed: u64, threads: usize, ops: usize) -> Result<SemaphoreRun, String> {
    let threads = threads.max(1);
    let scheduler = Scheduler {
        state: Mutex::new(State {
            turn: 0,
            value: crate::shm::msem::CLEAR,
            status: vec![Status::Runnable; threads],
            queue: VecDeque::new(),
            rng: SplitMix64::new(seed ^ 0x5E3A_F0E5),
            holders: 0,
            run: SemaphoreRun::default(),
            failure: None,
            recent: VecDeque::new(),
        }),
        turn_changed: Condvar::new(),
    };
    std::thread::scope(|scope| {
        for me in 0..threads {
            let scheduler = &scheduler;
            scope.spawn(move || {
                let word = Word { scheduler, me };
                let program_seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ me as u64;
                // An abandoned thread unwinds with `Abandon`; anything else
                // is a real panic and goes on up.
                if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    program(&word, program_seed, ops)
                })) && !payload.is::<Abandon>()
                {
                    std::panic::resume_unwind(payload);
                }
                scheduler.finish(me);
            });
        }
    });
    let st = scheduler.state.into_inner();
    match st.failure {
        None => Ok(st.run),
        Some(failure) => Err(format!(
            "{failure}; last operations: {}",
            st.recent.into_iter().collect::<Vec<_>>().join("; ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_end_with_every_thread_done() {
        for seed in 0..50 {
            let run = run_semaphores(seed, 3, 12).unwrap();
            assert!(run.holds > 0 && run.switches > 0, "{run:?}");
        }
    }

    /// A seed is one interleaving: the same counts every time, whatever
    /// the OS scheduler does with the threads.
    #[test]
    fn a_seed_replays_its_schedule() {
        for seed in 0..20 {
            let first = run_semaphores(seed, 3, 12).unwrap();
            for _ in 0..5 {
                assert_eq!(run_semaphores(seed, 3, 12).unwrap(), first, "seed {seed}");
            }
        }
    }
}
