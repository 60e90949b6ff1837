//! The machine-dependent part of the benchmark runs: the kernel's own
//! fault paths, measured for comparison. Every `mmap`/`madvise` call of
//! this crate lives here.

/// Reference measurements of the kernel's own fault paths, for benchmark
/// runs that put the VM's figures beside them (same run, same machine).
pub mod kernel_reference {
    use rustix::mm::{Advice, MapFlags, ProtFlags};
    use std::time::Instant;
    use vm_core::VmError;

    const PAGE: usize = 4096;

    /// A private anonymous mapping, unmapped when dropped.
    struct AnonymousMapping {
        base: *mut u8,
        len: usize,
    }

    impl AnonymousMapping {
        fn new(len: usize) -> Result<AnonymousMapping, VmError> {
            // SAFETY: a fresh anonymous private mapping at an address the
            // kernel chooses; it aliases no Rust object.
            let ptr = unsafe {
                rustix::mm::mmap_anonymous(
                    std::ptr::null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE | MapFlags::NORESERVE,
                )
            }
            .map_err(|e| VmError::Map {
                what: "anonymous reference mapping",
                bytes: len,
                source: e.into(),
            })?;
            Ok(AnonymousMapping {
                base: ptr.cast(),
                len,
            })
        }
    }

    impl Drop for AnonymousMapping {
        fn drop(&mut self) {
            // SAFETY: our own mapping; no reference into it outlives `self`.
            let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.len) };
        }
    }

    fn median(mut samples: Vec<f64>) -> f64 {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    }

    /// Median time of the kernel's anonymous first-touch fault (a write to
    /// a never-touched private anonymous page), over `rounds` rounds of
    /// `pages` pages, nanoseconds.
    pub fn anonymous_first_touch_ns(pages: u64, rounds: usize) -> Result<f64, VmError> {
        let len = pages as usize * PAGE;
        let mapping = AnonymousMapping::new(len)?;
        let base = mapping.base;
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds.max(1) {
            let t = Instant::now();
            for p in 0..pages as usize {
                // SAFETY: `p * PAGE < len`, inside the mapping we own; no
                // Rust reference points into it.
                unsafe { base.add(p * PAGE).write_volatile(1) };
            }
            samples.push(t.elapsed().as_nanos() as f64 / pages as f64);
            // SAFETY: our own mapping; nothing references it.
            unsafe { rustix::mm::madvise(base.cast(), len, Advice::LinuxDontNeed) }.map_err(
                |e| VmError::Map {
                    what: "release (reference)",
                    bytes: len,
                    source: e.into(),
                },
            )?;
        }
        Ok(median(samples))
    }

    /// Median time of the kernel's page fault on a shared read-only `mmap`
    /// of `file` (its first `pages` pages in the page cache), with
    /// fault-around off (`MADV_RANDOM`), touching every page once per round
    /// in a scattered order; nanoseconds.
    pub fn file_mmap_fault_ns(
        file: &std::fs::File,
        pages: u64,
        rounds: usize,
    ) -> Result<f64, VmError> {
        let len = pages as usize * PAGE;
        // A page of the mapping past the end of the file would raise SIGBUS
        // when touched: refuse a file shorter than the pages asked for.
        let file_len = file.metadata().map_err(|source| VmError::Map {
            what: "file reference mapping (file size)",
            bytes: len,
            source,
        })?;
        if file_len.len() < len as u64 {
            return Err(VmError::Map {
                what: "file reference mapping",
                bytes: len,
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "the file holds {} bytes, fewer than the {len} to map",
                        file_len.len()
                    ),
                ),
            });
        }
        let map_error = |what: &'static str| {
            move |e: rustix::io::Errno| VmError::Map {
                what,
                bytes: len,
                source: e.into(),
            }
        };
        // SAFETY: a fresh shared read-only mapping of a file we hold open;
        // it aliases no Rust object, and we only read it through raw
        // pointers within `len`.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::SHARED,
                file,
                0,
            )
        }
        .map_err(map_error("file reference mapping"))?;
        let base = ptr.cast::<u8>();
        // SAFETY: our own mapping.
        unsafe { rustix::mm::madvise(ptr, len, Advice::Random) }
            .map_err(map_error("madvise random"))?;
        // A stride coprime with `pages` visits every page once, scattered.
        let gcd = |mut a: u64, mut b: u64| {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        let mut stride = (pages / 2 + 1).max(1);
        while gcd(stride, pages) != 1 {
            stride += 1;
        }
        let mut samples = Vec::with_capacity(rounds);
        let mut sink = 0u8;
        for _ in 0..rounds.max(1) {
            // SAFETY: our own mapping: drops the page-table entries only;
            // the page cache keeps the data.
            unsafe { rustix::mm::madvise(ptr, len, Advice::LinuxDontNeed) }
                .map_err(map_error("madvise dontneed"))?;
            let t = Instant::now();
            let mut p = 0u64;
            for _ in 0..pages {
                // SAFETY: `p < pages`, so the byte lies in the mapping.
                sink ^= unsafe { base.add(p as usize * PAGE).read_volatile() };
                p = (p + stride) % pages;
            }
            samples.push(t.elapsed().as_nanos() as f64 / pages as f64);
        }
        std::hint::black_box(sink);
        // SAFETY: unmapping our own mapping; no reference into it remains.
        unsafe { rustix::mm::munmap(ptr, len) }.map_err(map_error("munmap"))?;
        Ok(median(samples))
    }
}
