//! The PageFault worker (the seed's one synchronous thread that serves every
//! fault): its loop. The handoff it reads from is [`super::queue`].

use crate::error::VmError;
use crate::space::AddressSpace;
use std::panic::AssertUnwindSafe;

impl AddressSpace {
    /// The PageFault worker's loop: take the head of the queue, serve it
    /// under the monitor with the next queued fault as the seek-ahead hint,
    /// take the accessor's latch, hand the outcome back, wake the faulting
    /// thread. Runs on the worker thread until the queue stops; monitor not
    /// held on entry or exit.
    pub(crate) fn run_worker(&self) {
        let queue = self.worker_queue.as_ref().expect("the worker has a queue");
        queue.register_worker();
        while let Some(ticket) = queue.next() {
            // A panic while serving (a drive that panics, a broken
            // invariant) must not leave the faulting thread parked forever:
            // it is caught, the VM is marked poisoned, and this and every
            // later fault get `VmError::Poisoned`. The latch guards and the
            // monitor's guard unwind normally, so nothing stays locked.
            let outcome = self.check_poisoned().and_then(|()| {
                std::panic::catch_unwind(AssertUnwindSafe(|| {
                    let mut monitor = self.lock_monitor();
                    let next = queue.peek_page_other_than(ticket.page);
                    self.serve(&mut monitor, ticket.page, next, ticket.latch.overwrites())
                        .map(|served| self.latch_after(served, ticket.page, ticket.latch))
                }))
                .unwrap_or(Err(VmError::Poisoned))
            });
            ticket.complete(outcome);
        }
    }
}
