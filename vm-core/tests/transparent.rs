//! Transparent mode: plain loads and stores through views, paged by the VM
//! through userfaultfd (run here as root; skipped with a printed reason
//! where the kernel refuses).

mod common;

use common::PAGE;
use disk_channel::{DiskChannel, Drive, SimDrive};
use runtable::{FormatOptions, Volume};
use vm_core::{Backing, Vm, VmConfig, VmError};

/// A transparent VM over a simulated SSD, or `None` (with the reason
/// printed) where the kernel refuses userfaultfd.
fn transparent_vm(virtual_pages: u64, budget: u64) -> Option<Vm> {
    let drive = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(virtual_pages + 1024)
        .unwrap();
    let channel = DiskChannel::new(vec![Box::new(drive) as Box<dyn Drive>]).unwrap();
    let volume = Volume::format(channel, &FormatOptions::new(PAGE, virtual_pages)).unwrap();
    match Vm::new(
        VmConfig::new(virtual_pages, budget).transparent(),
        Backing::Volume(volume),
    ) {
        Ok(vm) => Some(vm),
        Err(VmError::TransparentUnavailable { reason }) => {
            println!("skipped: transparent mode unavailable here: {reason}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn stores_through_a_view_survive_eviction() {
    let Some(vm) = transparent_vm(1024, 16) else {
        return;
    };
    let interval = vm.allocate(256).unwrap();
    {
        let mut view = vm.view_mut::<u64>(interval).unwrap();
        for (i, x) in view.iter_mut().enumerate() {
            *x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    let view = vm.view::<u64>(interval).unwrap();
    for (i, x) in view.iter().enumerate() {
        assert_eq!(*x, (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), "element {i}");
    }
    let stats = vm.stats();
    assert!(stats.page_outs >= 256 - 16, "{stats:?}");
}
