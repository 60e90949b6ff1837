//! The utility VM: vm-core in real-memory-only mode, with a budget the tool
//! chooses, and arrays of 64-bit words that live in its intervals. The
//! tools keep their working memory (the scavenger's page map, the scan's
//! bad-spot list, the demo's keys) here rather than in `Vec`s, so that
//! they run on the same VM as regular programs, as the seed asks.

use crate::ToolError;
use runtable::Interval;
use vm_core::{Backing, VAddr, Vm, VmConfig, VmError, VmStats};

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
        let pages = budget_bytes / PAGE;
        let config = VmConfig::new(pages.max(1) * 16, pages);
        let vm = Vm::new(config, Backing::RealMemoryOnly).map_err(ToolError::Vm)?;
        Ok(UtilityVm { vm })
    }

    /// The VM's counters.
    pub fn stats(&self) -> VmStats {
        self.vm.stats()
    }

    /// An array of `len` zeroed words in a fresh interval.
    pub fn array(&self, len: u64) -> Result<VmArray<'_>, ToolError> {
        let pages = (len * 8).div_ceil(PAGE).max(1);
        let interval = self.vm.allocate(pages).map_err(|e| match e {
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
        })?;
        Ok(VmArray {
            vm: &self.vm,
            base: self.vm.address_of(interval.page).0,
            interval,
            len,
        })
    }

    /// The VM itself.
    pub fn vm(&self) -> &Vm {
        &self.vm
    }
}

/// A fixed-length array of `u64` living in a utility-VM interval; freed
/// when dropped.
pub struct VmArray<'a> {
    vm: &'a Vm,
    interval: Interval,
    base: u64,
    len: u64,
}

impl VmArray<'_> {
    /// Number of words.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the array has no words.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Word `i`.
    pub fn get(&self, i: u64) -> u64 {
        assert!(i < self.len, "index {i} out of {}", self.len);
        let mut word = [0u8; 8];
        self.vm
            .read(VAddr(self.base + i * 8), &mut word)
            .expect("a utility VM interval is resident and allocated");
        u64::from_le_bytes(word)
    }

    /// Sets word `i`.
    pub fn set(&self, i: u64, value: u64) {
        assert!(i < self.len, "index {i} out of {}", self.len);
        self.vm
            .write(VAddr(self.base + i * 8), &value.to_le_bytes())
            .expect("a utility VM interval is resident and allocated");
    }

    /// Reads words `[start, start + out.len())` in one call.
    pub fn read_slice(&self, start: u64, out: &mut [u64]) {
        assert!(start + out.len() as u64 <= self.len);
        let mut bytes = vec![0u8; out.len() * 8];
        self.vm
            .read(VAddr(self.base + start * 8), &mut bytes)
            .expect("a utility VM interval is resident and allocated");
        for (word, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
    }

    /// Writes `words` at `start` in one call.
    pub fn write_slice(&self, start: u64, words: &[u64]) {
        assert!(start + words.len() as u64 <= self.len);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        self.vm
            .write(VAddr(self.base + start * 8), &bytes)
            .expect("a utility VM interval is resident and allocated");
    }

    /// Sorts records of `width` words by their first `key_words` words, in
    /// place in the VM (heapsort: no extra memory, O(n log n) accesses).
    pub fn sort_records(&self, width: u64, key_words: u64) {
        assert!(width > 0 && key_words <= width && self.len.is_multiple_of(width));
        let n = self.len / width;
        let key =
            |r: u64| -> Vec<u64> { (0..key_words).map(|k| self.get(r * width + k)).collect() };
        let swap = |a: u64, b: u64| {
            for k in 0..width {
                let (x, y) = (self.get(a * width + k), self.get(b * width + k));
                self.set(a * width + k, y);
                self.set(b * width + k, x);
            }
        };
        let sift = |mut root: u64, end: u64| loop {
            let mut child = 2 * root + 1;
            if child >= end {
                break;
            }
            if child + 1 < end && key(child) < key(child + 1) {
                child += 1;
            }
            if key(root) >= key(child) {
                break;
            }
            swap(root, child);
            root = child;
        };
        for start in (0..n / 2).rev() {
            sift(start, n);
        }
        for end in (1..n).rev() {
            swap(0, end);
            sift(0, end);
        }
    }
}

impl Drop for VmArray<'_> {
    fn drop(&mut self) {
        // The interval was allocated by this array; freeing cannot fail.
        let _ = self.vm.free(self.interval);
    }
}
