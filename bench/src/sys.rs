//! The machine-dependent part of the benchmark runs: the kernel's own
//! fault paths, measured for comparison, and the kernel's `mmap` of a file
//! as the other side of `bench out-of-core`. Every `mmap`/`madvise` call of
//! this crate lives here.

/// A shared read-write `mmap` of a whole file: the kernel's paging, for
/// `bench out-of-core` to run its workloads through beside the VM's.
/// Access is by copies in and out, so no Rust reference ever points into
/// the mapping.
pub struct FileMapping {
    memory: Memory,
}

/// How the kernel is advised about a [`FileMapping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappingAdvice {
    /// No advice: the kernel's defaults (fault-around, read-around).
    Normal,
    /// `MADV_SEQUENTIAL`.
    Sequential,
    /// `MADV_RANDOM`.
    Random,
}

impl FileMapping {
    /// Maps the first `len` bytes of `file` shared, read-write, after
    /// allocating them on disk (`fallocate`), so that no store into the
    /// mapping can meet a hole on a full disk.
    pub fn new(file: &std::fs::File, len: usize) -> std::io::Result<FileMapping> {
        if len == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an empty mapping",
            ));
        }
        rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len as u64)?;
        // SAFETY: a fresh shared mapping of a file we hold open whose first
        // `len` bytes are allocated (a page past its end, or a hole on a
        // full disk, would raise SIGBUS); it aliases no Rust object. The
        // files mapped are the benchmark's own temporary files, which
        // nothing else truncates.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                file,
                0,
            )
        }?;
        Ok(FileMapping {
            memory: Memory {
                base: ptr.cast(),
                len,
            },
        })
    }

    /// Advises the kernel about the whole mapping.
    pub fn advise(&self, advice: MappingAdvice) -> std::io::Result<()> {
        let advice = match advice {
            MappingAdvice::Normal => rustix::mm::Advice::Normal,
            MappingAdvice::Sequential => rustix::mm::Advice::Sequential,
            MappingAdvice::Random => rustix::mm::Advice::Random,
        };
        // SAFETY: our own mapping; advice changes no contents.
        unsafe { rustix::mm::madvise(self.base.cast(), self.len, advice) }?;
        Ok(())
    }

    /// Writes the mapping's changed pages to the file and waits (`msync`).
    pub fn sync(&self) -> std::io::Result<()> {
        // SAFETY: our own mapping.
        unsafe { rustix::mm::msync(self.base.cast(), self.len, rustix::mm::MsyncFlags::SYNC) }?;
        Ok(())
    }

    /// Drops the mapping's pages from this process (`MADV_DONTNEED`): they
    /// fault in again from the file (or the page cache) on next touch.
    pub fn drop_pages(&self) -> std::io::Result<()> {
        // SAFETY: our own shared file mapping: the file keeps the data.
        unsafe {
            rustix::mm::madvise(
                self.base.cast(),
                self.len,
                rustix::mm::Advice::LinuxDontNeed,
            )
        }?;
        Ok(())
    }
}

/// Bytes at a raw address that the workloads read and write by plain
/// loads and stores: the kernel's file mapping ([`FileMapping`] derefs to
/// one) or an interval of a transparent VM ([`Memory::of_vm`]), whose
/// faults are the VM's, served in the thread that makes them.
pub struct Memory {
    base: *mut u8,
    len: usize,
}

// SAFETY: plain memory (a mapping owned by its `FileMapping`, or the VM's,
// which serves faults in any thread); moving it to another thread moves
// nothing else.
unsafe impl Send for Memory {}
// SAFETY: what threads sharing it can do through `&self` without `unsafe`
// is copy bytes out (`read`), which do not race with each other; copying
// bytes in and borrowing them are `unsafe`, with the contract that no
// other thread reads or writes those bytes meanwhile.
unsafe impl Sync for Memory {}

impl Memory {
    /// The `len` bytes of `vm` from `at` (allocated, transparent mode).
    pub fn of_vm(
        vm: &vm_core::Vm,
        at: vm_core::VAddr,
        len: usize,
    ) -> Result<Memory, vm_core::VmError> {
        Ok(Memory {
            base: vm.transparent_ptr(at)?,
            len,
        })
    }

    fn check(&self, offset: u64, len: usize) {
        assert!(
            offset
                .checked_add(len as u64)
                .is_some_and(|end| end <= self.len as u64),
            "{len} bytes at {offset} lie outside {} bytes of memory",
            self.len
        );
    }

    /// Copies `buf.len()` bytes at `offset` into `buf` (plain loads).
    pub fn read(&self, offset: u64, buf: &mut [u8]) {
        self.check(offset, buf.len());
        // SAFETY: in bounds (checked) of a live mapping or allocated
        // interval; `buf` is ours and not in it; loads of a transparent
        // VM's absent pages are faulted in by the VM.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.base.add(offset as usize),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
    }

    /// Copies `data` to `offset` (plain stores).
    ///
    /// # Safety
    /// No other thread reads or writes those bytes meanwhile.
    pub unsafe fn write(&self, offset: u64, data: &[u8]) {
        self.check(offset, data.len());
        // SAFETY: in bounds; `data` is not in the memory; exclusive by the
        // caller's promise.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(offset as usize), data.len())
        };
    }

    /// The `len` bytes at `offset`, to read.
    ///
    /// # Safety
    /// No one writes those bytes while the slice lives.
    pub unsafe fn bytes(&self, offset: u64, len: usize) -> &[u8] {
        self.check(offset, len);
        // SAFETY: in bounds; no writer by the caller's promise.
        unsafe { std::slice::from_raw_parts(self.base.add(offset as usize), len) }
    }

    /// The `len` bytes at `offset`, to write.
    ///
    /// # Safety
    /// No other reference into those bytes exists while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn bytes_mut(&self, offset: u64, len: usize) -> &mut [u8] {
        self.check(offset, len);
        // SAFETY: in bounds; exclusive by the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(offset as usize), len) }
    }

    /// `count` words from byte `offset`, as a slice to sort in place.
    ///
    /// # Safety
    /// As for [`Memory::bytes_mut`].
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn words_mut(&self, offset: u64, count: usize) -> &mut [u64] {
        assert!(offset.is_multiple_of(8), "words at an unaligned offset");
        // SAFETY: as the caller promises; aligned (a page-aligned base and
        // `offset` a multiple of 8); any bit pattern is a `u64`.
        let bytes = unsafe { self.bytes_mut(offset, count * 8) };
        // SAFETY: the bytes just checked, exclusive, aligned for `u64`.
        unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), count) }
    }
}

impl std::ops::Deref for FileMapping {
    type Target = Memory;
    fn deref(&self) -> &Memory {
        &self.memory
    }
}

impl Drop for FileMapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping; no reference into it exists.
        let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.len) };
    }
}

/// A private anonymous mapping, unmapped when dropped.
struct AnonymousMapping {
    base: *mut u8,
    len: usize,
}

impl AnonymousMapping {
    fn new(len: usize) -> Result<AnonymousMapping, vm_core::VmError> {
        // SAFETY: a fresh anonymous private mapping at an address the
        // kernel chooses; it aliases no Rust object.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
            )
        }
        .map_err(|e| vm_core::VmError::Map {
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

/// Reference measurements of the kernel's own fault paths, for benchmark
/// runs that put the VM's figures beside them (same run, same machine).
pub mod kernel_reference {
    use super::AnonymousMapping;
    use rustix::mm::{Advice, MapFlags, ProtFlags};
    use std::time::Instant;
    use vm_core::VmError;

    const PAGE: usize = 4096;

    /// A shared read-only `mmap` of a file's first pages, advised
    /// `MADV_RANDOM`, unmapped when dropped (on every path).
    struct ReadMapping {
        ptr: *mut std::ffi::c_void,
        len: usize,
    }

    impl ReadMapping {
        /// Maps the first `pages` pages of `file`, which must hold them (a
        /// page of the mapping past the end of the file would raise SIGBUS
        /// when touched).
        fn new(file: &std::fs::File, pages: u64) -> Result<ReadMapping, VmError> {
            let len = pages as usize * PAGE;
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
            // SAFETY: a fresh shared read-only mapping of a file we hold
            // open and checked to be long enough; it aliases no Rust object,
            // and it is only read through raw pointers within `len`.
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
            .map_err(|e| VmError::Map {
                what: "file reference mapping",
                bytes: len,
                source: e.into(),
            })?;
            let mapping = ReadMapping { ptr, len };
            // SAFETY: our own mapping; advice changes no contents.
            unsafe { rustix::mm::madvise(ptr, len, Advice::Random) }.map_err(|e| VmError::Map {
                what: "madvise random",
                bytes: len,
                source: e.into(),
            })?;
            Ok(mapping)
        }

        /// Drops the page-table entries (`MADV_DONTNEED`); the page cache
        /// keeps the data, so the next touch of each page faults again.
        fn drop_pages(&self) -> Result<(), VmError> {
            // SAFETY: our own shared file mapping: the file keeps the data.
            unsafe { rustix::mm::madvise(self.ptr, self.len, Advice::LinuxDontNeed) }.map_err(|e| {
                VmError::Map {
                    what: "madvise dontneed",
                    bytes: self.len,
                    source: e.into(),
                }
            })
        }
    }

    impl Drop for ReadMapping {
        fn drop(&mut self) {
            // SAFETY: our own mapping; the threads that read it are joined
            // and no reference into it remains.
            let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
        }
    }

    /// The minor page faults this process has taken (`/proc/self/stat`,
    /// field 10): what the kernel counts, so that a figure "per fault" is
    /// per fault, whatever fault-around maps at each.
    pub fn minor_faults() -> u64 {
        std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| {
                // Fields after the command name (which may hold spaces):
                // state is field 3, minflt field 10.
                let rest = stat.rsplit(')').next()?.to_string();
                rest.split_whitespace().nth(7)?.parse().ok()
            })
            .unwrap_or(0)
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

    /// The kernel's page fault on a shared read-only `mmap` of `file` (its
    /// first `pages` pages in the page cache, `MADV_RANDOM`), touching
    /// every page once per round in a scattered order: the median time per
    /// fault the kernel counted (nanoseconds), and the pages each fault
    /// mapped. (`MADV_RANDOM` turns off read-around, not fault-around: a
    /// fault maps up to `fault_around_bytes`, 64 KiB by default, of pages
    /// already cached — so counting touches instead of faults, as this
    /// bench once did, made the kernel's fault look 16× cheaper.)
    pub fn file_mmap_fault_ns(
        file: &std::fs::File,
        pages: u64,
        rounds: usize,
    ) -> Result<(f64, f64), VmError> {
        let mapping = ReadMapping::new(file, pages)?;
        let base = mapping.ptr.cast::<u8>();
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
        let mut per_fault = Vec::with_capacity(rounds);
        let mut sink = 0u8;
        for _ in 0..rounds.max(1) {
            mapping.drop_pages()?;
            let faults_before = minor_faults();
            let t = Instant::now();
            let mut p = 0u64;
            for _ in 0..pages {
                // SAFETY: `p < pages`, so the byte lies in the mapping.
                sink ^= unsafe { base.add(p as usize * PAGE).read_volatile() };
                p = (p + stride) % pages;
            }
            let elapsed = t.elapsed().as_nanos() as f64;
            let faults = minor_faults().saturating_sub(faults_before).max(1) as f64;
            samples.push(elapsed / faults);
            per_fault.push(pages as f64 / faults);
        }
        std::hint::black_box(sink);
        Ok((median(samples), median(per_fault)))
    }

    /// The kernel's page-fault throughput on a shared read-only `mmap` of
    /// `file` (its first `pages` pages in the page cache, `MADV_RANDOM`)
    /// with `threads` threads faulting at once, each on its own share of
    /// the pages: the median over `rounds` of faults per second, faults as
    /// the kernel counts them (each maps up to 64 KiB: fault-around).
    pub fn file_mmap_fault_rate(
        file: &std::fs::File,
        pages: u64,
        threads: usize,
        rounds: usize,
    ) -> Result<f64, VmError> {
        let mapping = ReadMapping::new(file, pages)?;
        let base = mapping.ptr as usize;
        let threads = threads.max(1) as u64;
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds.max(1) {
            mapping.drop_pages()?;
            let faults_before = minor_faults();
            let t = Instant::now();
            std::thread::scope(|s| {
                for k in 0..threads {
                    s.spawn(move || {
                        let mut sink = 0u8;
                        let mut p = k;
                        while p < pages {
                            // SAFETY: `p < pages`: the byte lies in the
                            // mapping, which outlives the scope.
                            sink ^= unsafe {
                                ((base + p as usize * PAGE) as *const u8).read_volatile()
                            };
                            p += threads;
                        }
                        std::hint::black_box(sink);
                    });
                }
            });
            let elapsed = t.elapsed().as_secs_f64();
            let faults = minor_faults().saturating_sub(faults_before).max(1);
            samples.push(faults as f64 / elapsed);
        }

        Ok(median(samples))
    }

    /// The system calls of a page-cache-hot fault without the VM, as a
    /// ceiling for its thread scaling: each of `threads` threads reads
    /// random 4 KiB pages of `file` (`pages` pages, in the page cache) with
    /// `pread` into 64 page-aligned buffers of its own anonymous memory in
    /// turn, giving all 64 back with `madvise(DONTNEED)` after each round —
    /// so every read first takes the kernel's anonymous-page fault, as a
    /// read into a released frame does. The median over `rounds` of reads
    /// per second, all threads together.
    pub fn pread_into_released_rate(
        file: &std::fs::File,
        pages: u64,
        threads: usize,
        reads: u64,
        rounds: usize,
    ) -> Result<f64, VmError> {
        use std::os::unix::fs::FileExt;
        const SLOTS: usize = 64;
        let threads = threads.max(1);
        let mut samples = Vec::with_capacity(rounds);
        for round in 0..rounds.max(1) {
            let mappings: Vec<AnonymousMapping> = (0..threads)
                .map(|_| AnonymousMapping::new(SLOTS * PAGE))
                .collect::<Result<_, _>>()?;
            let t = Instant::now();
            let failed = std::thread::scope(|s| {
                let workers: Vec<_> = mappings
                    .iter()
                    .enumerate()
                    .map(|(k, mapping)| {
                        let base = mapping.base as usize;
                        s.spawn(move || -> std::io::Result<()> {
                            let mut x = (round * 1000 + k) as u64 * 0x9E37_79B9 + 1;
                            for i in 0..reads {
                                x = x
                                    .wrapping_mul(6_364_136_223_846_793_005)
                                    .wrapping_add(1_442_695_040_888_963_407);
                                let slot = i as usize % SLOTS;
                                // SAFETY: slot `slot` of this thread's own
                                // mapping, which outlives the scope; no
                                // other reference to it exists.
                                let buf = unsafe {
                                    std::slice::from_raw_parts_mut(
                                        (base + slot * PAGE) as *mut u8,
                                        PAGE,
                                    )
                                };
                                file.read_exact_at(buf, (x >> 33) % pages * PAGE as u64)?;
                                if slot == SLOTS - 1 {
                                    // SAFETY: this thread's own mapping; the
                                    // slice above is dead.
                                    unsafe {
                                        rustix::mm::madvise(
                                            base as *mut _,
                                            SLOTS * PAGE,
                                            Advice::LinuxDontNeed,
                                        )
                                    }?;
                                }
                            }
                            Ok(())
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| w.join().expect("reference reader panicked"))
                    .find_map(Result::err)
            });
            if let Some(source) = failed {
                return Err(VmError::Map {
                    what: "pread into released memory (reference)",
                    bytes: PAGE,
                    source,
                });
            }
            samples.push((reads * threads as u64) as f64 / t.elapsed().as_secs_f64());
        }
        Ok(median(samples))
    }
}

/// Buffers for the device's own direct reads (`bench out-of-core`'s
/// sequential-read baseline): `count` of `each` bytes, one after another in
/// an anonymous mapping aligned to 2 MiB and advised `MADV_HUGEPAGE`,
/// committed when made, so that a 1 MiB read into one is one request to a
/// disk that takes fewer than 256 segments a request (this machine's takes
/// 254), as the VM's
/// reads into its frame pool's 2 MiB chunks are. Where the kernel gives no
/// huge page they are small pages, and the baseline is slower.
pub struct HugeBuffers {
    mapping: AnonymousMapping,
    /// Where the buffers start in the mapping: its base rounded up to 2 MiB.
    start: usize,
    count: usize,
    each: usize,
}

impl HugeBuffers {
    const HUGE: usize = 2 << 20;

    /// The buffers, touched (committed) once each page.
    pub fn new(count: usize, each: usize) -> Result<HugeBuffers, vm_core::VmError> {
        let bytes = count * each;
        let mapping = AnonymousMapping::new(bytes.next_multiple_of(Self::HUGE) + Self::HUGE)?;
        // (Rounded up by hand: `align_offset` may decline.)
        let base = mapping.base as usize;
        let start = base.next_multiple_of(Self::HUGE) - base;
        let mut buffers = HugeBuffers {
            mapping,
            start,
            count,
            each,
        };
        // Best effort: without huge pages the buffers still work.
        // SAFETY: the range lies inside our own mapping (`start` < 2 MiB,
        // the mapping 2 MiB longer than the rounded-up buffers); advice
        // changes no contents.
        let _ = unsafe {
            rustix::mm::madvise(
                buffers.mapping.base.add(start).cast(),
                bytes.next_multiple_of(Self::HUGE),
                rustix::mm::Advice::LinuxHugepage,
            )
        };
        // Committed now, not in the timed reads.
        buffers.all().fill(0);
        Ok(buffers)
    }

    /// All the buffers' bytes.
    fn all(&mut self) -> &mut [u8] {
        // SAFETY: `start` < 2 MiB and `start + count·each` <= the mapping's
        // length (see `new`): inside our own live mapping, readable and
        // writable; the slice borrows `self` mutably, so no other reference
        // into the mapping exists while it lives, and the mapping outlives
        // it.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.mapping.base.add(self.start),
                self.count * self.each,
            )
        }
    }

    /// The buffers, each `each` bytes, for one thread each.
    pub fn buffers(&mut self) -> std::slice::ChunksExactMut<'_, u8> {
        let each = self.each;
        self.all().chunks_exact_mut(each)
    }
}
