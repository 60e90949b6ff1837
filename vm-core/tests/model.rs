//! Property test: random operation sequences against a plain `Vec<u8>`
//! model of the address space, with a tiny real-memory budget so that
//! nearly every access faults and replaces. Every read is compared with
//! the model — including after an error, where the model records exactly
//! what the failed call did — and every page is read back at the end,
//! after unpinning; the kernel's own count of resident pages (`mincore`)
//! stays within the budget after every step.

mod common;
use common::*;
use proptest::prelude::*;
use runtable::Interval;
use vm_core::{Advice, FaultService, VAddr};

const PAGES: u64 = 48;
const BUDGET: u64 = 4;

#[derive(Clone, Debug)]
enum Op {
    Allocate(u64),
    Free(usize),
    Write {
        slot: usize,
        offset: u64,
        len: usize,
        seed: u8,
    },
    Read {
        slot: usize,
        offset: u64,
        len: usize,
    },
    Kill(usize),
    Flush,
    Pin(usize),
    Unpin(usize),
    Advise(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    op_sized(12, 9000)
}

/// Operations on intervals of up to `max_pages` pages, reads and writes of
/// up to `max_len` bytes.
fn op_sized(max_pages: u64, max_len: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u64..max_pages).prop_map(Op::Allocate),
        (0usize..8).prop_map(Op::Free),
        (0usize..8, 0u64..50_000_000, 1usize..max_len, any::<u8>()).prop_map(
            |(slot, offset, len, seed)| Op::Write {
                slot,
                offset,
                len,
                seed
            }
        ),
        (0usize..8, 0u64..50_000_000, 1usize..max_len).prop_map(|(slot, offset, len)| Op::Read {
            slot,
            offset,
            len
        }),
        (0usize..8).prop_map(Op::Kill),
        Just(Op::Flush),
        (0usize..8).prop_map(Op::Pin),
        (0usize..8).prop_map(Op::Unpin),
        (0usize..8, 0u8..5).prop_map(|(slot, a)| Op::Advise(slot, a)),
    ]
}

/// Clamps `[offset, offset+len)` into an interval of `count` pages.
fn clamp(count: u64, offset: u64, len: usize) -> (u64, usize) {
    let size = count * PAGE as u64;
    let offset = offset % size;
    (offset, len.min((size - offset) as usize))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_a_byte_vector(ops in prop::collection::vec(op(), 1..60)) {
        check_against_model(ops, FaultService::InFaultingThread)?;
    }

    #[test]
    fn random_operations_match_a_byte_vector_with_the_worker(ops in prop::collection::vec(op(), 1..60)) {
        check_against_model(ops, FaultService::Worker)?;
    }
}

/// Pages and budget of the clustered runs: a quarter of 32 pages is an
/// 8-page cluster, and eviction takes 2 victims a batch.
const CLUSTER_PAGES: u64 = 256;
const CLUSTER_BUDGET: u64 = 32;

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Transfers by runs (issue 11) against the model: intervals and
    /// transfers several clusters long, so that sequential advice reads
    /// clusters (and, in the default scope, reads them ahead in the
    /// background), replacement writes runs and `swap_in` reads them — on
    /// two drives striped in units of 4 pages (runs break at every unit)
    /// and on three small drives concatenated (runs break where a drive
    /// ends), in both monitor scopes.
    #[test]
    fn clustered_transfers_match_a_byte_vector(
        ops in prop::collection::vec(op_sized(48, 80_000), 1..40),
        striped in any::<bool>(),
        seed_scope in any::<bool>(),
    ) {
        let scope = if seed_scope {
            vm_core::MonitorScope::HeldAcrossIo
        } else {
            vm_core::MonitorScope::Decisions
        };
        let sim = |pages: u64| -> Box<dyn disk_channel::Drive> {
            Box::new(
                disk_channel::SimDrive::preset("ssd", PAGE)
                    .unwrap()
                    .with_page_count(pages)
                    .unwrap(),
            )
        };
        let (drives, layout) = if striped {
            (
                vec![sim(CLUSTER_PAGES), sim(CLUSTER_PAGES)],
                runtable::Layout::Stripe { unit: 4 },
            )
        } else {
            (
                vec![sim(120), sim(120), sim(120)],
                runtable::Layout::Concatenate,
            )
        };
        let channel = disk_channel::DiskChannel::new(drives).unwrap();
        let options = runtable::FormatOptions {
            layout,
            ..runtable::FormatOptions::new(PAGE, CLUSTER_PAGES)
        };
        let volume = runtable::Volume::format(channel, &options).unwrap();
        let config = vm_core::VmConfig {
            monitor_scope: scope,
            ..vm_core::VmConfig::new(CLUSTER_PAGES, CLUSTER_BUDGET)
        };
        let vm = vm_core::Vm::new(config, vm_core::Backing::Volume(volume)).unwrap();
        // Every case starts with a sequence that forms runs both ways: 64
        // pages written through 32 (replacement writes runs), then read in
        // order under sequential advice (read-ahead reads clusters).
        let whole = 64 * PAGE;
        let mut all = vec![
            Op::Allocate(64),
            Op::Write { slot: 0, offset: 0, len: whole, seed: 7 },
            Op::Advise(0, 1),
            Op::Read { slot: 0, offset: 0, len: whole },
        ];
        all.extend(ops);
        run_against_model(&vm, all, CLUSTER_PAGES, CLUSTER_BUDGET)?;
        let stats = vm.stats();
        prop_assert!(stats.cluster_reads > 0 && stats.cluster_writes > 0, "{:?}", stats);
    }
}

fn check_against_model(ops: Vec<Op>, service: FaultService) -> Result<(), TestCaseError> {
    let vm = sim_vm_served_by(PAGES, BUDGET, service);
    run_against_model(&vm, ops, PAGES, BUDGET)
}

fn run_against_model(
    vm: &vm_core::Vm,
    ops: Vec<Op>,
    pages: u64,
    budget: u64,
) -> Result<(), TestCaseError> {
    {
        let mut model = vec![0u8; (pages as usize) * PAGE];
        let mut live: Vec<(Interval, u32)> = Vec::new(); // interval, pins
        for op in ops {
            match op {
                Op::Allocate(count) => {
                    if let Ok(i) = vm.allocate(count) {
                        let start = i.page.0 as usize * PAGE;
                        prop_assert!(
                            model[start..start + count as usize * PAGE]
                                .iter()
                                .all(|&b| b == 0)
                        );
                        live.push((i, 0));
                    }
                }
                Op::Free(slot) if !live.is_empty() => {
                    let (i, _) = live.remove(slot % live.len());
                    vm.free(i).unwrap();
                    let start = i.page.0 as usize * PAGE;
                    model[start..start + i.count.0 as usize * PAGE].fill(0);
                }
                Op::Write {
                    slot,
                    offset,
                    len,
                    seed,
                } if !live.is_empty() => {
                    let (i, _) = live[slot % live.len()];
                    let (offset, len) = clamp(i.count.0, offset, len);
                    let addr = vm.address_of(i.page).0 + offset;
                    let data: Vec<u8> = (0..len).map(|k| seed.wrapping_add(k as u8)).collect();
                    match vm.write(VAddr(addr), &data) {
                        Ok(()) => model[addr as usize..addr as usize + len].copy_from_slice(&data),
                        Err(vm_core::VmError::AllPinned { page, .. }) => {
                            // The pages before the one that could not get a
                            // frame were written; nothing from it on.
                            let stop = (page.0 * PAGE as u64).max(addr);
                            let landed = (stop - addr) as usize;
                            prop_assert!(landed < len, "the failing page lies in the write");
                            model[addr as usize..addr as usize + landed]
                                .copy_from_slice(&data[..landed]);
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                Op::Read { slot, offset, len } if !live.is_empty() => {
                    let (i, _) = live[slot % live.len()];
                    let (offset, len) = clamp(i.count.0, offset, len);
                    let addr = vm.address_of(i.page).0 + offset;
                    let mut back = vec![0u8; len];
                    match vm.read(VAddr(addr), &mut back) {
                        Ok(()) => {
                            prop_assert_eq!(&back[..], &model[addr as usize..addr as usize + len])
                        }
                        Err(vm_core::VmError::AllPinned { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                Op::Kill(slot) if !live.is_empty() => {
                    let (i, pins) = live[slot % live.len()];
                    match vm.kill(i) {
                        Ok(()) => {
                            prop_assert_eq!(pins, 0, "kill of a pinned interval succeeded");
                            let start = i.page.0 as usize * PAGE;
                            model[start..start + i.count.0 as usize * PAGE].fill(0);
                        }
                        Err(vm_core::VmError::Pinned { .. }) => prop_assert!(pins > 0),
                        Err(e) => panic!("{e}"),
                    }
                }
                Op::Flush => vm.flush().unwrap(),
                Op::Pin(slot) if !live.is_empty() => {
                    let n = live.len();
                    let (i, pins) = &mut live[slot % n];
                    if i.count.0 <= 2 && vm.pin(*i).is_ok() {
                        *pins += 1;
                    }
                }
                Op::Unpin(slot) if !live.is_empty() => {
                    let n = live.len();
                    let (i, pins) = &mut live[slot % n];
                    if *pins > 0 {
                        vm.unpin(*i).unwrap();
                        *pins -= 1;
                    }
                }
                Op::Advise(slot, a) if !live.is_empty() => {
                    let (i, _) = live[slot % live.len()];
                    let advice = [
                        Advice::Normal,
                        Advice::Sequential,
                        Advice::Random,
                        Advice::DontNeed,
                        // Queued for the will-need thread: it works beside
                        // every later operation (and changes no byte).
                        Advice::WillNeed,
                    ][a as usize];
                    vm.advise(i, advice).unwrap();
                }
                _ => {}
            }
            vm.check_invariants();
            let kernel = vm.kernel_resident_pages().unwrap();
            prop_assert!(kernel <= budget, "the kernel holds {} pages", kernel);
        }
        // Everything reads back after pressure, a final flush, and with no
        // pins left: every read succeeds and equals the model.
        vm.flush().unwrap();
        for (i, pins) in &live {
            for _ in 0..*pins {
                vm.unpin(*i).unwrap();
            }
        }
        for (i, _) in &live {
            let start = vm.address_of(i.page).0 as usize;
            let mut back = vec![0u8; i.count.0 as usize * PAGE];
            vm.read(VAddr(start as u64), &mut back).unwrap();
            prop_assert_eq!(&back[..], &model[start..start + back.len()]);
        }
    }
    Ok(())
}
