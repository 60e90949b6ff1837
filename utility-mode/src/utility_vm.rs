//! The utility VM: vm-core in real-memory-only mode, with a budget the tool
//! chooses, and arrays of 64-bit words that live in its intervals. The
//! tools keep their working memory (the scavenger's page map, the scan's
//! bad-spot list, the demo's keys) here rather than in `Vec`s, so that
//! they run on the same VM as regular programs, as the seed asks.

use crate::error::ToolError;
use vm_core::{Backing, Vm, VmArray, VmConfig, VmError, VmStats};

/// Bytes per utility-VM page.
const PAGE: u64 = 4096;

/// A real-memory-only VM for a tool.
pub struct UtilityVm {
    vm: Vm,
}

impl UtilityVm {
    /// A VM of `budget_bytes` of real memory (rounded down to pages) and no
    /// backing storage.
    pub fn new(budget_bytes: u64) -> Result<UtilityVm, ToolError> {
        UtilityVm::check_budget(budget_bytes)?;
        let pages = budget_bytes / PAGE;
        let config = VmConfig::new(pages.max(1) * 16, pages);
        let vm = Vm::new(config, Backing::RealMemoryOnly).map_err(ToolError::Vm)?;
        Ok(UtilityVm { vm })
    }

    /// Refuses, in the user's words, a limit no utility VM fits under:
    /// less than a page. (A limit above what the machine has is not
    /// refused: a tool takes what its work needs, and that is checked.)
    pub fn check_limit(limit_bytes: u64) -> Result<(), ToolError> {
        if limit_bytes < PAGE {
            return Err(ToolError::Usage(format!(
                "--memory {} is less than one page ({} KiB)",
                crate::units::human_bytes(limit_bytes),
                PAGE / 1024
            )));
        }
        Ok(())
    }

    /// Refuses, in the user's words, a budget a utility VM cannot have:
    /// less than a page, or more than the machine has available.
    pub fn check_budget(budget_bytes: u64) -> Result<(), ToolError> {
        UtilityVm::check_limit(budget_bytes)?;
        // The frame table alone takes 12 bytes a page of the budget, made
        // at once: a budget beyond what the machine has is refused here,
        // not after gigabytes of tables.
        if let Some(available) = available_memory_bytes()
            && budget_bytes > available
        {
            return Err(ToolError::Usage(format!(
                "--memory {} is more than this machine has available ({:.1} GiB)",
                crate::units::human_bytes(budget_bytes),
                available as f64 / (1u64 << 30) as f64
            )));
        }
        Ok(())
    }

    /// The VM's counters.
    pub fn stats(&self) -> VmStats {
        self.vm.stats()
    }

    /// An array of `len` zeroed words in a fresh interval.
    pub fn array(&self, len: u64) -> Result<VmArray<'_, u64>, ToolError> {
        VmArray::new(&self.vm, len).map_err(|e| match e {
            VmError::CantAllocateReal {
                pages,
                allocated,
                budget,
            } => ToolError::NotEnoughRealMemory {
                needed_bytes: pages * PAGE,
                used_bytes: allocated * PAGE,
                budget_bytes: budget * PAGE,
            },
            e => ToolError::Vm(e),
        })
    }

    /// The VM itself.
    pub fn vm(&self) -> &Vm {
        &self.vm
    }
}

/// Sorts the records of `width` words in `array` by their first `key_words`
/// words, in place in the VM (heapsort: no extra memory, O(n log n)
/// accesses). The first error of the VM (none in a utility VM, which never
/// pages) stops the sort and is returned.
pub fn sort_records(array: &VmArray<'_, u64>, width: u64, key_words: u64) -> Result<(), ToolError> {
    if width == 0 || key_words > width || !array.len().is_multiple_of(width) {
        return Err(ToolError::Usage(format!(
            "records of {width} words keyed by {key_words} do not tile an array of {}",
            array.len()
        )));
    }
    let n = array.len() / width;
    let key = |r: u64| -> Result<Vec<u64>, VmError> {
        (0..key_words).map(|k| array.get(r * width + k)).collect()
    };
    let swap = |a: u64, b: u64| -> Result<(), VmError> {
        for k in 0..width {
            let (x, y) = (array.get(a * width + k)?, array.get(b * width + k)?);
            array.set(a * width + k, y)?;
            array.set(b * width + k, x)?;
        }
        Ok(())
    };
    let sift = |mut root: u64, end: u64| -> Result<(), VmError> {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return Ok(());
            }
            if child + 1 < end && key(child)? < key(child + 1)? {
                child += 1;
            }
            if key(root)? >= key(child)? {
                return Ok(());
            }
            swap(root, child)?;
            root = child;
        }
    };
    for start in (0..n / 2).rev() {
        sift(start, n).map_err(ToolError::Vm)?;
    }
    for end in (1..n).rev() {
        swap(0, end).map_err(ToolError::Vm)?;
        sift(0, end).map_err(ToolError::Vm)?;
    }
    Ok(())
}

/// `MemAvailable` of `/proc/meminfo`, bytes (`None` where it cannot be
/// read).
pub fn available_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
