//! An untouched huge address space costs almost nothing. Alone in its own
//! test binary: in a process with other VMs, the kernel may merge this
//! region's mapping with another VM's (same flags), and the smaps of the
//! merged mapping would count that VM's memory as this one's — which made
//! the test fail now and then when it ran among the semantics tests.

use runtable::PageNumber;
use vm_core::{Backing, Vm, VmConfig};

#[test]
fn an_untouched_huge_address_space_costs_almost_nothing() {
    // 2^32 pages of 4 KiB: 16 TiB of address space and a 32 GiB state array,
    // both reserved, neither committed.
    // Measured per mapping in /proc/self/smaps — the mappings that hold
    // the region (the kernel may merge the state array's mapping with it)
    // — in a process of its own (see the module doc).
    let vm = Vm::new(VmConfig::new(1 << 32, 1024), Backing::RealMemoryOnly).unwrap();
    let i = vm.allocate(1 << 10).unwrap();
    vm.write(vm.address_of(PageNumber(i.page.0 + 1000)), b"x")
        .unwrap();
    let region = vm.region_addresses();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let (mut overlaps, mut size_kb, mut rss_kb) = (false, 0u64, 0u64);
    for line in smaps.lines() {
        let head = line.split_whitespace().next().unwrap_or("");
        if let Some((start, end)) = head.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            overlaps = start < region.end && region.start < end;
            continue;
        }
        let mut words = line.split_whitespace();
        match (overlaps, words.next(), words.next()) {
            (true, Some("Size:"), Some(kb)) => size_kb += kb.parse::<u64>().unwrap(),
            (true, Some("Rss:"), Some(kb)) => rss_kb += kb.parse::<u64>().unwrap(),
            _ => {}
        }
    }
    assert!(
        size_kb >= (1 << 32) * 4,
        "the region's mappings hold {size_kb} kB"
    );
    // One page was written: a few pages of memory, not the 16 TiB reserved.
    assert!(
        rss_kb <= 64,
        "the region's mappings hold {rss_kb} kB of memory"
    );
}
