//! Seek-ahead on the deterministic driver: four simulated faulting
//! processes on a `diablo44` volume, with the VM's own fault service.

mod common;
use common::*;
use disk_channel::{DiskChannel, SimDrive, SimModel};
use runtable::{FormatOptions, Volume};
use vm_core::simulate::{AccessPattern, Report, Workload};
use vm_core::{Advice, Backing, VAddr, Vm, VmConfig};

const PAGES: u64 = 1000;
const BUDGET: u64 = 64;

fn run(seek_ahead: bool, gap_ns: u64, write_fraction: f64) -> Report {
    let model = SimModel::diablo44().with_software_gap_ns(gap_ns);
    let drive = SimDrive::new(model, PAGE).unwrap();
    let channel = DiskChannel::new(vec![Box::new(drive)]).unwrap();
    let volume = Volume::format(channel, &FormatOptions::new(PAGE, PAGES)).unwrap();
    let config = VmConfig {
        seek_ahead,
        // The seed's experiment: the monitor held across I/O, faults
        // queued behind it naming the next transfer.
        monitor_scope: vm_core::MonitorScope::HeldAcrossIo,
        ..VmConfig::new(PAGES, BUDGET)
    };
    let vm = Vm::new(config, Backing::Volume(volume)).unwrap();
    let interval = vm.allocate(PAGES).unwrap();
    for page in interval.pages() {
        vm.write(vm.address_of(page), &page.0.to_le_bytes())
            .unwrap();
    }
    vm.flush().unwrap();
    vm.advise(interval, Advice::DontNeed).unwrap();
    let workload = Workload {
        processes: 4,
        accesses_per_process: 400,
        think_ns: 1_000_000,
        pattern: AccessPattern::Random,
        write_fraction,
        seed: 44,
        stride: 1,
    };
    let report = vm.simulate(interval, &workload).unwrap();
    // The data is still right after the run.
    let mut word = [0u8; 8];
    for page in interval.pages().step_by(37) {
        vm.read(VAddr(vm.address_of(page).0), &mut word).unwrap();
        assert_eq!(u64::from_le_bytes(word), page.0);
    }
    report
}

#[test]
fn seek_ahead_on_random_reads_saves_what_the_disk_model_predicts() {
    // The model's figure is Σ min(seek, gap) over the hints the drive used;
    // rotation adds or takes a little per request, which averages out over
    // random pages.
    for gap_ns in [2_000_000, 10_000_000] {
        let off = run(false, gap_ns, 0.0);
        let on = run(true, gap_ns, 0.0);
        assert_eq!((off.seek_aheads_issued, off.model_saving_ns), (0, 0));
        assert!(
            on.seek_aheads_used * 10 >= on.seek_aheads_issued * 9,
            "{on:?}"
        );
        assert!(on.seek_aheads_issued * 10 >= on.faults * 9, "{on:?}");
        assert_eq!((on.faults, on.page_ins), (off.faults, off.page_ins));
        assert!(on.virtual_ns < off.virtual_ns);
        let saved = (off.virtual_ns - on.virtual_ns) as f64;
        let predicted = on.model_saving_ns as f64;
        let ratio = saved / predicted;
        assert!(
            (0.9..=1.1).contains(&ratio),
            "gap {gap_ns}: saved {saved} vs model {predicted}"
        );
    }
}

#[test]
fn seek_ahead_with_write_backs_saves_what_the_disk_model_predicts() {
    // Dirty victims are written in disk order, each hinting at the next.
    // When a page-in takes the last free frame, the next fault's victims are
    // chosen before the read, so the read hints at the first write-back and
    // the last write-back at the next fault: every hint names the transfer
    // that really comes next.
    let off = run(false, 10_000_000, 0.3);
    let on = run(true, 10_000_000, 0.3);
    println!("off {off:?}\non  {on:?}");
    assert!(
        on.page_outs > 0 && on.virtual_ns < off.virtual_ns,
        "{off:?} {on:?}"
    );
    assert_eq!(on.seek_aheads_used, on.seek_aheads_issued, "{on:?}");
    let ratio = (off.virtual_ns - on.virtual_ns) as f64 / on.model_saving_ns as f64;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "saving {ratio} of the model's"
    );
}

#[test]
fn the_same_run_twice_gives_identical_figures() {
    assert_eq!(run(true, 2_000_000, 0.2), run(true, 2_000_000, 0.2));
}
