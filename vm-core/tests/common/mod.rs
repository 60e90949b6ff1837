//! Helpers shared by the VM's tests: volumes on simulated and file drives.
#![allow(dead_code)]

use disk_channel::{
    DiskChannel, Drive, FaultHandle, FaultyDrive, FileDrive, FileDriveOptions, SimDrive,
};
use runtable::{FormatOptions, Volume};
use vm_core::{Advice, Backing, FaultService, Interval, Vm, VmConfig};

/// The page size of every test VM.
pub const PAGE: usize = 4096;

/// A VM of `virtual_pages` over a simulated SSD volume, with `budget` pages
/// of real memory.
pub fn sim_vm(virtual_pages: u64, budget: u64) -> Vm {
    sim_vm_served_by(virtual_pages, budget, FaultService::default())
}

/// A VM over a simulated SSD volume as `config` says (its size, budget
/// and any other setting).
pub fn sim_vm_with(config: VmConfig) -> Vm {
    let volume = sim_volume(config.virtual_pages);
    Vm::new(config, Backing::Volume(volume)).unwrap()
}

/// A fresh volume of `pages` virtual pages on a simulated SSD.
fn sim_volume(pages: u64) -> Volume {
    let drive = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(pages + 1024)
        .unwrap();
    let channel = DiskChannel::new(vec![Box::new(drive) as Box<dyn Drive>]).unwrap();
    Volume::format(channel, &FormatOptions::new(PAGE, pages)).unwrap()
}

/// As [`sim_vm`], with faults served as `service` says.
pub fn sim_vm_served_by(virtual_pages: u64, budget: u64, service: FaultService) -> Vm {
    let drive = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(virtual_pages + 1024)
        .unwrap();
    vm_served_by(vec![Box::new(drive)], virtual_pages, budget, service)
}

/// A VM over a simulated SSD behind a fault injector.
pub fn faulty_vm(virtual_pages: u64, budget: u64) -> (Vm, FaultHandle) {
    let drive = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(virtual_pages + 1024)
        .unwrap();
    let faulty = FaultyDrive::new(drive);
    let handle = faulty.handle();
    (vm_on(vec![Box::new(faulty)], virtual_pages, budget), handle)
}

/// A VM over sparse files in `dir`.
pub fn file_vm(
    dir: &std::path::Path,
    drives: usize,
    virtual_pages: u64,
    budget: u64,
    service: FaultService,
) -> Vm {
    let drives: Vec<Box<dyn Drive>> = (0..drives)
        .map(|i| {
            let options = FileDriveOptions::create(PAGE, virtual_pages + 1024);
            Box::new(FileDrive::open(dir.join(format!("drive{i}")), &options).unwrap())
                as Box<dyn Drive>
        })
        .collect();
    vm_served_by(drives, virtual_pages, budget, service)
}

/// A VM over a fresh volume on `drives`.
pub fn vm_on(drives: Vec<Box<dyn Drive>>, virtual_pages: u64, budget: u64) -> Vm {
    vm_served_by(drives, virtual_pages, budget, FaultService::default())
}

/// A VM over a fresh volume on `drives`, faults served as `service` says.
pub fn vm_served_by(
    drives: Vec<Box<dyn Drive>>,
    virtual_pages: u64,
    budget: u64,
    service: FaultService,
) -> Vm {
    vm_scoped(
        drives,
        virtual_pages,
        budget,
        service,
        vm_core::MonitorScope::default(),
    )
}

/// A VM over `drives` whose faults are served by `service` with the
/// monitor held for `scope`.
#[allow(dead_code)] // not every test binary uses every helper
pub fn vm_scoped(
    drives: Vec<Box<dyn Drive>>,
    virtual_pages: u64,
    budget: u64,
    service: FaultService,
    scope: vm_core::MonitorScope,
) -> Vm {
    let channel = DiskChannel::new(drives).unwrap();
    let volume = Volume::format(channel, &FormatOptions::new(PAGE, virtual_pages)).unwrap();
    let config = VmConfig {
        fault_service: service,
        monitor_scope: scope,
        ..VmConfig::new(virtual_pages, budget)
    };
    let vm = Vm::new(config, Backing::Volume(volume)).unwrap();
    assert_eq!(vm.has_worker(), service == FaultService::Worker);
    vm
}

/// Writes `interval` with pattern `seed`, flushes it and drops it from
/// memory: every page absent, on disk.
pub fn write_out(vm: &Vm, interval: Interval, seed: u64) {
    let mut page = vec![0u8; PAGE];
    for p in interval.pages() {
        let addr = vm.address_of(p).0;
        for (i, b) in page.iter_mut().enumerate() {
            *b = pattern(seed, addr + i as u64);
        }
        vm.write(vm.address_of(p), &page).unwrap();
    }
    vm.flush().unwrap();
    vm.advise(interval, Advice::DontNeed).unwrap();
}

/// The deterministic byte at address `addr` of test pattern `seed`.
pub fn pattern(seed: u64, addr: u64) -> u8 {
    let x = addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
    (x >> 56) as u8 ^ (addr as u8)
}

/// A VM in transparent mode over a simulated SSD volume, or `None` (with
/// the reason printed) where the kernel refuses userfaultfd.
pub fn transparent_sim_vm(virtual_pages: u64, budget: u64) -> Option<Vm> {
    transparent_sim_vm_with(VmConfig::new(virtual_pages, budget))
}

/// As [`transparent_sim_vm`], from `config` (its size, budget, fault
/// service and scope; transparent mode is turned on here).
pub fn transparent_sim_vm_with(config: VmConfig) -> Option<Vm> {
    let volume = sim_volume(config.virtual_pages);
    match Vm::new(config.transparent(), vm_core::Backing::Volume(volume)) {
        Ok(vm) => Some(vm),
        Err(vm_core::VmError::TransparentUnavailable { reason }) => {
            println!("skipped: transparent mode unavailable here: {reason}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}
