//! The campaign's crash-and-restart part: a persistent space
//! ([`Vm::create`]) on a simulated drive that crashes — its writes dropped
//! from a seeded point on, or one torn and the rest dropped — and is then
//! reopened from what reached the medium ([`Vm::open`]), over and over in
//! one seed. Against a model of the space as of its last completed
//! `flush`/`sync` and of every version each page has had since, after
//! every restart:
//!
//! - the space's shape (intervals, protection) is the last synced one, or
//!   the one a flush that the crash interrupted was making — never a mix;
//! - every page reads as it was at the last sync or as some later write
//!   left it, whole — a torn write included (the journal's images repair
//!   a synced page whose rewrite in place was torn);
//! - nothing fails to reopen.

use crate::config::VmConfig;
use crate::error::VmError;
use crate::space::Vm;
use disk_channel::rng::SplitMix64;
use disk_channel::{DiskChannel, Drive, FaultHandle, FaultyDrive, SimDrive};
use runtable::{FormatOptions, Interval, PageNumber, Volume};
use std::collections::{BTreeMap, BTreeSet};

const PAGE: usize = 4096;
const VOLUME_PAGES: u64 = 600;

/// What a restart run did when it kept every rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartRun {
    /// Crashes (and reopens) survived.
    pub restarts: u64,
    /// Completed flushes and syncs.
    pub syncs: u64,
    /// Pages whose contents were checked after a restart.
    pub pages_checked: u64,
    /// Journal images written over all rounds.
    pub journal_images: u64,
    /// Journal checkpoints over all rounds.
    pub journal_checkpoints: u64,
}

/// The space as the model sees it: interval start → (the interval's
/// identity, pages, read-only flags, contents).
type Shape = BTreeMap<u64, (u64, u64, Vec<bool>, Vec<u8>)>;

struct Model {
    /// The space as it is now.
    now: Shape,
    /// As of the last completed flush (every page durable).
    durable: Shape,
    /// The shapes a reopen may find: the last one a completed flush or
    /// sync committed, and any a flush or sync into the crashing drive
    /// was committing.
    shapes: Vec<Shape>,
    /// Every version each page of each interval (by identity) has had
    /// since the last flush (a hash of its bytes): a page of an interval
    /// freed and then reallocated to another is not the other's.
    later: BTreeMap<(u64, u64), BTreeSet<u64>>,
    /// The next interval identity.
    next_id: u64,
    /// Syncs an eighth as often (odd seeds): more rewrites between two
    /// maps, so that the journal fills and checkpoints.
    rare_syncs: bool,
}

fn hash(bytes: &[u8]) -> u64 {
    u64::from(crc32c::crc32c(bytes)) << 32 | bytes.len() as u64
}

impl Model {
    fn record(&mut self, start: u64) {
        if let Some((id, count, _, bytes)) = self.now.get(&start) {
            for k in 0..*count {
                let page = &bytes[k as usize * PAGE..(k as usize + 1) * PAGE];
                self.later
                    .entry((*id, start + k))
                    .or_default()
                    .insert(hash(page));
            }
        }
    }

    fn synced(&mut self) {
        self.durable = self.now.clone();
        self.shapes = vec![self.now.clone()];
        self.later.clear();
    }
}

fn shape_of(shape: &Shape) -> Vec<(u64, u64, Vec<bool>)> {
    shape
        .iter()
        .map(|(&s, (_, c, ro, _))| (s, *c, ro.clone()))
        .collect()
}

/// Runs `restarts` crash-and-restart rounds of `ops` operations each under
/// the schedule of `seed`. `Err` names the broken rule.
pub fn run_restarts(seed: u64, restarts: u64, ops: u64) -> Result<RestartRun, String> {
    let mut rng = SplitMix64::new(seed ^ 0x0DDB_A11C_0FFE);
    let drive = SimDrive::preset("ssd", PAGE)
        .and_then(|d| d.with_page_count(VOLUME_PAGES + 64))
        .map_err(|e| e.to_string())?;
    let media = drive.share_media();
    let faulty = FaultyDrive::new(drive);
    let mut handle = faulty.handle();
    let channel =
        DiskChannel::new(vec![Box::new(faulty) as Box<dyn Drive>]).map_err(|e| e.to_string())?;
    let volume = Volume::format(channel, &FormatOptions::new(PAGE, VOLUME_PAGES))
        .map_err(|e| e.to_string())?;
    let pages = Vm::persistent_pages(&volume).ok_or("volume too small")?;
    // Six frames (eviction batches of one page), or forty (batches of two,
    // and `clean`s of many pages: journal records of several images, and
    // checkpoints in the middle of a batch).
    let budget = if seed % 4 < 2 { 6 } else { 40 };
    let config = VmConfig::new(pages, budget);
    let mut vm = Vm::create(volume, config.clone()).map_err(|e| e.to_string())?;
    let mut model = Model {
        now: Shape::new(),
        durable: Shape::new(),
        shapes: vec![Shape::new()],
        later: BTreeMap::new(),
        next_id: 0,
        rare_syncs: seed % 2 == 1,
    };
    handle.track_unsynced();
    let mut run = RestartRun::default();
    let mut torn;
    for round in 0..restarts {
        // The crash point of this round: somewhere in its writes.
        let crash_at = rng.below(ops * 2);
        torn = false;
        match rng.below(4) {
            0 => {
                handle.tear_write(crash_at, rng.below(PAGE as u64 * 2) as usize);
                torn = true;
            }
            // The power goes at a sync: it never completes (the window
            // between a map's write and its sync, which a crash counted in
            // writes cannot reach).
            1 => handle.fail_once(disk_channel::OpKind::Sync, rng.below(8)),
            _ => handle.crash_after_writes(crash_at),
        }
        for _ in 0..ops {
            let crashed_before = handle.crashed();
            let died = step(&vm, &mut rng, &mut model, &mut run, crashed_before, &handle)
                .map_err(|e| format!("round {round}: {e}"))?;
            if died {
                break;
            }
        }
        // The process dies: nothing more reaches the medium; half the time
        // the power goes too and a seeded half of the writes since the
        // last completed sync are lost, in any order.
        handle.crash_after_writes(0);
        let stats = vm.stats();
        run.journal_images += stats.journal_images;
        run.journal_checkpoints += stats.journal_checkpoints;
        drop(vm);
        if rng.below(2) == 0 {
            let mut drive = media.share_media();
            for (page, before) in handle.unsynced() {
                if rng.below(2) == 0 {
                    drive
                        .write(page, &before, None)
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        let faulty = FaultyDrive::new(media.share_media());
        handle = faulty.handle();
        handle.track_unsynced();
        let channel = DiskChannel::new(vec![Box::new(faulty) as Box<dyn Drive>])
            .map_err(|e| e.to_string())?;
        let volume = Volume::open(channel).map_err(|e| format!("round {round}: {e}"))?;
        vm = Vm::open(volume, config.clone()).map_err(|e| format!("round {round}: reopen: {e}"))?;
        run.restarts += 1;
        check(&vm, &mut model, &mut run, torn).map_err(|e| format!("round {round}: {e}"))?;
    }
    Ok(run)
}

/// One operation; `crashed` says whether the drive had already crashed
/// (a flush then makes nothing durable). `Ok(true)`: the power went in the
/// middle of it (a sync that never completed): the round ends.
fn step(
    vm: &Vm,
    rng: &mut SplitMix64,
    model: &mut Model,
    run: &mut RestartRun,
    crashed: bool,
    handle: &FaultHandle,
) -> Result<bool, String> {
    let starts: Vec<u64> = model.now.keys().copied().collect();
    let pick = |rng: &mut SplitMix64| starts[rng.below(starts.len() as u64) as usize];
    match rng.below(10) {
        0 | 1 if starts.len() < 6 => {
            let count = 1 + rng.below(6);
            if let Ok(i) = vm.allocate(count) {
                model.next_id += 1;
                model.now.insert(
                    i.page.0,
                    (
                        model.next_id,
                        count,
                        vec![false; count as usize],
                        vec![0; count as usize * PAGE],
                    ),
                );
                model.record(i.page.0);
            }
        }
        2 if !starts.is_empty() => {
            let start = pick(rng);
            let (_, count, ..) = model.now[&start];
            vm.free(Interval::new(start, count))
                .map_err(|e| format!("free: {e}"))?;
            model.now.remove(&start);
        }
        3 if !starts.is_empty() => {
            let start = pick(rng);
            let (_, count, ro, _) = &model.now[&start];
            let k = rng.below(*count);
            let protect = rng.below(2) == 0;
            let page = Interval::new(start + k, 1);
            if protect {
                vm.make_read_only(page).map_err(|e| e.to_string())?;
            } else {
                vm.make_read_write(page).map_err(|e| e.to_string())?;
            }
            let _ = ro;
            if let Some((_, _, ro, _)) = model.now.get_mut(&start) {
                ro[k as usize] = protect;
            }
        }
        4 | 5 if !model.rare_syncs || rng.below(8) == 0 => {
            let flushed = if !starts.is_empty() && rng.below(2) == 0 {
                // A sync of one interval makes the whole shape durable, and
                // that interval's pages; other pages stay as they were.
                let start = pick(rng);
                let (_, count, ..) = model.now[&start];
                vm.sync(Interval::new(start, count)).map(|()| Some(start))
            } else {
                vm.flush().map(|()| None)
            };
            match flushed {
                Ok(_) if crashed || handle.crashed() => {
                    // It "succeeded" into a dead drive: what it was making
                    // durable may or may not have landed.
                    model.shapes.push(model.now.clone());
                }
                Ok(None) => {
                    run.syncs += 1;
                    model.synced();
                }
                Ok(Some(_)) => {
                    // The shape is durable; other intervals' pages keep
                    // their unsynced versions (and `later` keeps them).
                    run.syncs += 1;
                    model.shapes = vec![model.now.clone()];
                }
                Err(VmError::Sync(_)) if handle.injected_failures() > 0 => {
                    // The power went at this sync: its shape may or may
                    // not have landed.
                    model.shapes.push(model.now.clone());
                    return Ok(true);
                }
                Err(e) => return Err(format!("flush: {e}")),
            }
        }
        // Odd seeds: write an interval's changed pages back in place (no
        // sync, no map): rewrites of synced pages that the journal images.
        6 if model.rare_syncs && !starts.is_empty() => {
            let start = pick(rng);
            let (_, count, ..) = model.now[&start];
            match vm.clean(Interval::new(start, count)) {
                Ok(()) => {}
                // The power went at a journal's sync: the round ends.
                Err(VmError::Sync(_)) if handle.injected_failures() > 0 => return Ok(true),
                Err(e) => return Err(format!("clean: {e}")),
            }
        }
        _ if !starts.is_empty() => {
            let start = pick(rng);
            let (_, count, ro, _) = model.now[&start].clone();
            let k = rng.below(count) as usize;
            let fill = rng.next_u64() as u8;
            let bytes = vec![fill; PAGE];
            let addr = vm.address_of(PageNumber(start + k as u64));
            match vm.write(addr, &bytes) {
                Ok(()) if !ro[k] => {
                    if let Some((_, _, _, now)) = model.now.get_mut(&start) {
                        now[k * PAGE..(k + 1) * PAGE].copy_from_slice(&bytes);
                    }
                    model.record(start);
                }
                Err(VmError::WriteProtect { .. }) if ro[k] => {}
                other => return Err(format!("write of a page read-only {}: {other:?}", ro[k])),
            }
        }
        _ => {}
    }
    Ok(false)
}

/// After a restart: the shape, protection and every page against the model.
fn check(vm: &Vm, model: &mut Model, run: &mut RestartRun, torn: bool) -> Result<(), String> {
    let found: Vec<(u64, u64, Vec<bool>)> = vm
        .intervals()
        .iter()
        .map(|(i, _)| {
            let ro = i.pages().map(|p| vm.state(p).read_only).collect();
            (i.page.0, i.count.0, ro)
        })
        .collect();
    // Intervals split by protection in the model are one allocation: compare
    // page sets and flags, not entries.
    let flat = |shape: &[(u64, u64, Vec<bool>)]| -> Vec<(u64, bool)> {
        shape
            .iter()
            .flat_map(|(s, c, ro)| (0..*c).map(move |k| (s + k, ro[k as usize])))
            .collect()
    };
    let found_flat = flat(&found);
    let Some(base) = model
        .shapes
        .iter()
        .find(|shape| flat(&shape_of(shape)) == found_flat)
    else {
        return Err(format!(
            "the reopened shape {found_flat:?} is neither the synced one nor the one being synced"
        ));
    };
    let base: Shape = (*base).clone();
    let mut mixed = 0;
    for (&start, (id, count, _, durable_bytes)) in &base {
        for k in 0..*count {
            let page = start + k;
            let mut back = vec![0u8; PAGE];
            vm.read(vm.address_of(PageNumber(page)), &mut back)
                .map_err(|e| format!("reading {page} back: {e}"))?;
            let h = hash(&back);
            // Its version in the shape that came back, in the last fully
            // synced space (a `sync` of another interval left this page as
            // it was there), or any it had since.
            // (Of this interval: the page under another identity is not
            // this interval's page.)
            let version_in = |shape: &Shape| {
                shape
                    .range(..=page)
                    .next_back()
                    .and_then(|(&s, (other, c, _, bytes))| {
                        (page < s + c && other == id).then(|| {
                            let k = (page - s) as usize;
                            hash(&bytes[k * PAGE..(k + 1) * PAGE])
                        })
                    })
            };
            let was = hash(&durable_bytes[k as usize * PAGE..(k as usize + 1) * PAGE]);
            let known = Some(h) == version_in(&model.durable)
                || model
                    .shapes
                    .iter()
                    .any(|shape| Some(h) == version_in(shape));
            let later = model
                .later
                .get(&(*id, page))
                .is_some_and(|v| v.contains(&h));
            if h != was && !known && !later {
                mixed += 1;
            }
            run.pages_checked += 1;
        }
    }
    if mixed > 0 {
        return Err(format!(
            "{mixed} pages hold neither their synced nor a later version (torn write: {torn})"
        ));
    }
    // The model goes on from what the space holds now.
    let mut now = Shape::new();
    for (start, count, ro) in found {
        let mut bytes = vec![0u8; count as usize * PAGE];
        vm.read(vm.address_of(PageNumber(start)), &mut bytes)
            .map_err(|e| format!("reading {start} back: {e}"))?;
        model.next_id += 1;
        now.insert(start, (model.next_id, count, ro, bytes));
    }
    model.now = now;
    model.synced();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persistent_space_survives_its_crashes() {
        // Enough seeds that torn rewrites of synced pages happen: without
        // the journal's replay, seeds 75 and 95 among these leave a torn
        // page neither synced nor later.
        // (Checkpoints are rare here: a round ends at its crash, and few
        // pages are rewritten between two maps; the journal's checkpoint in
        // the middle of a batch has a test of its own in tests/persistent.)
        let (mut images, mut checked, mut quiet) = (0, 0, 0);
        for seed in 0..300 {
            let run = run_restarts(seed, 6, 30).unwrap();
            assert_eq!(run.restarts, 6);
            images += run.journal_images;
            checked += run.pages_checked;
            // A seed that syncs rarely may reopen an empty space each time.
            quiet += u64::from(run.pages_checked == 0);
        }
        assert!(images > 100, "only {images} journal images");
        assert!(
            checked > 10_000 && quiet < 30,
            "{checked} pages checked, {quiet} seeds none"
        );
    }
}
