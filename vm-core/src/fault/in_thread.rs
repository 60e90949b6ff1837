//! Fault service by the faulting thread (the default): the monitor holder
//! serves the pending queue in ticket order up to its own fault.

use super::Served;
use super::queue::{FaultOutcome, Latch};
use crate::space::AddressSpace;
use std::sync::atomic::Ordering;

impl AddressSpace {
    /// Fault service in the faulting thread. The fault takes a ticket in
    /// the pending queue; whoever holds the monitor serves the queue in
    /// ticket order up to and including its own fault (faults of threads
    /// still waiting for the monitor are served for them, and they find
    /// their page resident). So the service order is the queue order, and
    /// the seek-ahead hint — the next fault in the queue — names the very
    /// transfer that comes next. A failure of someone else's fault is left
    /// for that thread, which retries and meets it itself. Monitor not held on
    /// entry or exit.
    pub(super) fn serve_in_order(&self, page: u64, latch: Latch) -> FaultOutcome {
        let ticket = {
            let mut pending = self.pending.lock();
            let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
            pending.push_back((ticket, page, latch.overwrites()));
            ticket
        };
        let mut monitor = self.lock_monitor();
        // A panic while this thread waited for the monitor poisoned the VM.
        self.check_poisoned()?;
        let mut own = None;
        loop {
            let (head_ticket, head, overwrite, next) = {
                let mut pending = self.pending.lock();
                match pending.front() {
                    Some(&(t, p, overwrite)) if t <= ticket => {
                        pending.pop_front();
                        // The next transfer: the next queued fault on
                        // another page (one on this page costs none).
                        let next = pending.iter().map(|&(_, n, _)| n).find(|&n| n != p);
                        (t, p, overwrite, next)
                    }
                    _ => break,
                }
            };
            let served = self.serve(&mut monitor, head, next, overwrite);
            if head_ticket == ticket {
                own = Some(served);
                break;
            }
        }
        // No result of its own: another holder served this fault already.
        let served = own.unwrap_or(Ok(Served::Resident))?;
        Ok(self.latch_after(served, page, latch))
    }
}
