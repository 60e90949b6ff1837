//! `FaultyDrive<D>`: wraps any drive and injects the failures a storage
//! system must survive.
//!
//! - **Bad pages** (persistent): any read or write touching one fails with
//!   [`DriveError::BadPage`] until it is removed from the plan.
//! - **Transient errors**: the Nth read, write, sync or operation of any
//!   kind (counted from when the rule is set) fails once, or fails from then
//!   on until the rule is cleared.
//! - **Torn write**: the Nth write puts only a prefix of its bytes on the
//!   inner drive and the drive then crashes.
//! - **Panic**: once armed, every read panics (a bug below the caller, to
//!   test that a panic in a drive is contained).
//! - **Crash point**: after N more writes, writes are dropped (they return
//!   `Ok`, as a write into a volatile cache that loses power would); reads
//!   see what reached the inner drive before the crash.
//! - **Unsynced writes**: with [`FaultHandle::track_unsynced`], the drive
//!   remembers what each page held at the last sync before it was written
//!   since; a test then puts a chosen subset of those pages back
//!   ([`FaultHandle::unsynced`]) — a power loss that kept some unsynced
//!   writes and lost others, in any order, which is what a drive's
//!   volatile cache may do.
//!
//! The plan lives behind a [`FaultHandle`] that the test keeps, so faults
//! can be set and cleared while the drive itself is owned by a channel.

use crate::{DiskPage, Drive, DriveError, DriveStats};
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Which operations a failure rule counts and fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Reads only.
    Read,
    /// Writes only.
    Write,
    /// Syncs only.
    Sync,
    /// Every operation.
    Any,
}

#[derive(Clone, Copy, Debug)]
struct FailRule {
    kind: OpKind,
    /// Index (within `kind`, counted from when the rule was set) of the
    /// first operation to fail.
    nth: u64,
    forever: bool,
    seen: u64,
}

#[derive(Clone, Copy, Debug)]
struct TearRule {
    nth_write: u64,
    keep_bytes: usize,
    seen: u64,
}

#[derive(Debug, Default)]
struct FaultPlan {
    bad_pages: BTreeSet<u64>,
    fail: Option<FailRule>,
    tear: Option<TearRule>,
    /// Writes still allowed before the crash, if a crash point is set.
    writes_before_crash: Option<u64>,
    crashed: bool,
    dropped_writes: u64,
    injected_failures: u64,
    panic_on_read: bool,
    /// With tracking on: each page written since the last sync, and what it
    /// held at that sync.
    unsynced: Option<std::collections::BTreeMap<u64, Vec<u8>>>,
}

impl FaultPlan {
    /// Whether the operation of `kind` that is happening now must fail.
    fn take_failure(&mut self, kind: OpKind) -> bool {
        let Some(rule) = self.fail.as_mut() else {
            return false;
        };
        if rule.kind != OpKind::Any && rule.kind != kind {
            return false;
        }
        let index = rule.seen;
        rule.seen += 1;
        let fails = if rule.forever {
            index >= rule.nth
        } else {
            index == rule.nth
        };
        if fails {
            self.injected_failures += 1;
        }
        fails
    }
}

/// The test's handle on a [`FaultyDrive`]'s plan.
#[derive(Clone, Debug, Default)]
pub struct FaultHandle {
    plan: Arc<Mutex<FaultPlan>>,
}

impl FaultHandle {
    /// Marks `page` bad: every transfer touching it fails.
    pub fn add_bad_page(&self, page: DiskPage) {
        self.plan.lock().bad_pages.insert(page.0);
    }

    /// Repairs `page`.
    pub fn remove_bad_page(&self, page: DiskPage) {
        self.plan.lock().bad_pages.remove(&page.0);
    }

    /// The bad pages, in order.
    pub fn bad_pages(&self) -> Vec<DiskPage> {
        self.plan
            .lock()
            .bad_pages
            .iter()
            .map(|&p| DiskPage(p))
            .collect()
    }

    /// Fails the `nth` (0-based, counted from now) operation of `kind` once.
    pub fn fail_once(&self, kind: OpKind, nth: u64) {
        self.plan.lock().fail = Some(FailRule {
            kind,
            nth,
            forever: false,
            seen: 0,
        });
    }

    /// Fails every operation of `kind` from the `nth` (counted from now) on.
    pub fn fail_from(&self, kind: OpKind, nth: u64) {
        self.plan.lock().fail = Some(FailRule {
            kind,
            nth,
            forever: true,
            seen: 0,
        });
    }

    /// Removes the transient-failure rule.
    pub fn clear_failures(&self) {
        self.plan.lock().fail = None;
    }

    /// The `nth` write from now keeps only its first `keep_bytes` bytes, and
    /// the drive crashes right after it.
    pub fn tear_write(&self, nth: u64, keep_bytes: usize) {
        self.plan.lock().tear = Some(TearRule {
            nth_write: nth,
            keep_bytes,
            seen: 0,
        });
    }

    /// Lets `writes` more writes through, then crashes: later writes are
    /// dropped.
    pub fn crash_after_writes(&self, writes: u64) {
        let mut plan = self.plan.lock();
        plan.writes_before_crash = Some(writes);
        plan.crashed = writes == 0;
    }

    /// Starts remembering, for every page written from now until a sync,
    /// what it held before (see [`FaultHandle::unsynced`]).
    pub fn track_unsynced(&self) {
        self.plan.lock().unsynced = Some(Default::default());
    }

    /// The pages written since the last sync, each with what it held at
    /// that sync (in page order).
    pub fn unsynced(&self) -> Vec<(DiskPage, Vec<u8>)> {
        self.plan
            .lock()
            .unsynced
            .as_ref()
            .map(|pages| {
                pages
                    .iter()
                    .map(|(&page, bytes)| (DiskPage(page), bytes.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the crash point has been reached.
    pub fn crashed(&self) -> bool {
        self.plan.lock().crashed
    }

    /// Writes dropped since the crash.
    pub fn dropped_writes(&self) -> u64 {
        self.plan.lock().dropped_writes
    }

    /// Arms (or disarms) a panic in every read from now on.
    pub fn panic_on_reads(&self, armed: bool) {
        self.plan.lock().panic_on_read = armed;
    }

    /// Whether reads are armed to panic.
    pub fn panics_armed(&self) -> bool {
        self.plan.lock().panic_on_read
    }

    /// Failures injected so far (bad pages not counted).
    pub fn injected_failures(&self) -> u64 {
        self.plan.lock().injected_failures
    }

    /// Clears every rule and the crash: the drive works again (bad pages
    /// stay bad).
    pub fn heal(&self) {
        let mut plan = self.plan.lock();
        plan.fail = None;
        plan.tear = None;
        plan.writes_before_crash = None;
        plan.crashed = false;
    }
}

/// A drive that fails on purpose; see the module doc.
pub struct FaultyDrive<D> {
    inner: D,
    handle: FaultHandle,
}

impl<D: Drive> FaultyDrive<D> {
    /// With tracking on, saves what the pages of a write of `bytes` from
    /// `page` hold now, for those not yet written since the last sync.
    fn remember_unsynced(&mut self, page: DiskPage, bytes: usize) -> Result<(), DriveError> {
        let page_size = self.inner.page_size();
        let pages = bytes.div_ceil(page_size) as u64;
        for k in 0..pages {
            let at = page.0 + k;
            let new = self
                .handle
                .plan
                .lock()
                .unsynced
                .as_ref()
                .is_some_and(|saved| !saved.contains_key(&at));
            if new {
                let mut old = vec![0u8; page_size];
                self.inner.read(DiskPage(at), &mut old, None)?;
                if let Some(saved) = self.handle.plan.lock().unsynced.as_mut() {
                    saved.insert(at, old);
                }
            }
        }
        Ok(())
    }

    /// Wraps `inner` with an empty plan.
    pub fn new(inner: D) -> FaultyDrive<D> {
        FaultyDrive {
            inner,
            handle: FaultHandle::default(),
        }
    }

    /// The handle that sets and clears faults.
    pub fn handle(&self) -> FaultHandle {
        self.handle.clone()
    }

    /// The wrapped drive.
    pub fn into_inner(self) -> D {
        self.inner
    }

    fn check_bad(&self, plan: &FaultPlan, page: DiskPage, len: usize) -> Result<(), DriveError> {
        let count = (len / self.inner.page_size().max(1)) as u64;
        match plan
            .bad_pages
            .range(page.0..page.0.saturating_add(count))
            .next()
        {
            Some(&bad) => Err(DriveError::BadPage {
                drive: self.inner.name().to_string(),
                page: DiskPage(bad),
            }),
            None => Ok(()),
        }
    }

    fn injected(&self, page: DiskPage, op: &'static str) -> DriveError {
        DriveError::Injected {
            drive: self.inner.name().to_string(),
            page,
            op,
        }
    }
}

impl<D: Drive> Drive for FaultyDrive<D> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn page_size(&self) -> usize {
        self.inner.page_size()
    }

    fn cache_policy(&self) -> Option<crate::cache::CachePolicy> {
        self.inner.cache_policy()
    }

    fn page_count(&self) -> u64 {
        self.inner.page_count()
    }

    fn read(
        &mut self,
        page: DiskPage,
        buf: &mut [u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        let panics = {
            let mut plan = self.handle.plan.lock();
            self.check_bad(&plan, page, buf.len())?;
            if plan.take_failure(OpKind::Read) {
                return Err(self.injected(page, "read"));
            }
            plan.panic_on_read
        };
        // Outside the plan's lock.
        if panics {
            panic!("the armed drive panics");
        }
        self.inner.read(page, buf, seek_ahead)
    }

    fn write(
        &mut self,
        page: DiskPage,
        data: &[u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        let mut keep = data.len();
        {
            let mut plan = self.handle.plan.lock();
            self.check_bad(&plan, page, data.len())?;
            if plan.take_failure(OpKind::Write) {
                return Err(self.injected(page, "write"));
            }
            if plan.crashed {
                plan.dropped_writes += 1;
                return Ok(());
            }
            if let Some(left) = plan.writes_before_crash.as_mut() {
                if *left == 0 {
                    plan.crashed = true;
                    plan.dropped_writes += 1;
                    return Ok(());
                }
                *left -= 1;
            }
            if let Some(tear) = plan.tear.as_mut() {
                if tear.seen == tear.nth_write {
                    keep = tear.keep_bytes.min(data.len());
                    plan.tear = None;
                    plan.crashed = true;
                } else {
                    tear.seen += 1;
                }
            }
        }
        self.remember_unsynced(page, data.len())?;
        if keep == data.len() {
            return self.inner.write(page, data, seek_ahead);
        }
        // A torn write: the whole pages of the prefix land; a partial page
        // lands as its prefix over what the page held before.
        let page_size = self.inner.page_size();
        let whole = keep / page_size;
        if whole > 0 {
            self.inner.write(page, &data[..whole * page_size], None)?;
        }
        let rest = keep % page_size;
        if rest > 0 {
            let target = page.offset(whole as u64);
            let mut old = vec![0u8; page_size];
            self.inner.read(target, &mut old, None)?;
            old[..rest].copy_from_slice(&data[whole * page_size..keep]);
            self.inner.write(target, &old, None)?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), DriveError> {
        {
            let mut plan = self.handle.plan.lock();
            if plan.take_failure(OpKind::Sync) {
                return Err(self.injected(DiskPage(0), "sync"));
            }
            if plan.crashed {
                return Ok(());
            }
        }
        self.inner.sync()?;
        if let Some(pages) = self.handle.plan.lock().unsynced.as_mut() {
            pages.clear();
        }
        Ok(())
    }

    fn stats(&self) -> DriveStats {
        self.inner.stats()
    }

    fn lock_exclusive(&self) -> Result<(), DriveError> {
        self.inner.lock_exclusive()
    }

    fn virtual_time_ns(&self) -> Option<u64> {
        self.inner.virtual_time_ns()
    }

    fn idle_until(&mut self, time_ns: u64) {
        self.inner.idle_until(time_ns)
    }
}
