//! `cedarvm bench persistent`: what an embedded storage engine pays for a
//! persistent space, against the file system in the same run and on the
//! same disk.
//!
//! - **Random 4 KiB writes, a sync every 100**: a [`VmFile`] (`write_at`,
//!   `sync_data`) against a plain file (`pwrite`, `fdatasync`), both of the
//!   same size, the same offsets. The file is written once first, so both
//!   sides overwrite (the VM's first write of a page on disk would read
//!   nothing — a whole-page overwrite is never read first).
//! - **Reopen**: `Vm::open_files` of a space of `space` bytes whose pages
//!   have all been written (the map read and applied), against opening
//!   the plain file and reading its first page.

use serde::{Deserialize, Serialize};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;
use utility_mode::ToolError;
use vm_core::{SpaceFiles, Vm, VmFile};

/// What `bench persistent` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersistentReport {
    /// Bytes of the file written at random.
    pub file_bytes: u64,
    /// Random 4 KiB writes made per side.
    pub writes: u64,
    /// Writes between two syncs.
    pub writes_per_sync: u64,
    /// The VM's real memory, bytes.
    pub real_memory_bytes: u64,
    /// Microseconds per write (syncs included), `VmFile`.
    pub vm_file_us_per_write: f64,
    /// Of which in `sync_data`, per write.
    pub vm_file_sync_us_per_write: f64,
    /// Microseconds per write (syncs included), `pwrite` + `fdatasync`
    /// (baseline, same run, same disk).
    pub file_us_per_write: f64,
    /// Of which in `fdatasync`, per write.
    pub file_sync_us_per_write: f64,
    /// Bytes of the space reopened.
    pub space_bytes: u64,
    /// Milliseconds to reopen it (`Vm::open_files`).
    pub reopen_ms: f64,
    /// Milliseconds to open the plain file and read its first page
    /// (baseline).
    pub file_open_ms: f64,
}

impl PersistentReport {
    /// The report as a table.
    pub fn table(&self) -> String {
        format!(
            "random 4 KiB writes, sync every {}: {} writes over {}\n\
             VmFile write_at + sync_data      {:>9.1} µs/write ({:.1} in sync_data)\n\
             pwrite + fdatasync (baseline)    {:>9.1} µs/write ({:.1} in fdatasync)   VM/file {:.2}×\n\
             reopen a {} space               {:>9.1} ms\n\
             open a file + read a page        {:>9.3} ms\n",
            self.writes_per_sync,
            self.writes,
            utility_mode::human_bytes(self.file_bytes),
            self.vm_file_us_per_write,
            self.vm_file_sync_us_per_write,
            self.file_us_per_write,
            self.file_sync_us_per_write,
            self.vm_file_us_per_write / self.file_us_per_write,
            utility_mode::human_bytes(self.space_bytes),
            self.reopen_ms,
            self.file_open_ms,
        )
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ToolError + '_ {
    move |source| ToolError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs the benchmark in `dir` (on the disk to measure).
pub fn persistent(
    dir: &Path,
    file_bytes: u64,
    writes: u64,
    space_bytes: u64,
    real_memory_bytes: u64,
) -> Result<PersistentReport, ToolError> {
    const PAGE: u64 = 4096;
    const PER_SYNC: u64 = 100;
    let pages = file_bytes / PAGE;
    let mut rng = disk_channel::rng::SplitMix64::new(2026);
    let offsets: Vec<u64> = (0..writes).map(|_| rng.below(pages) * PAGE).collect();
    let block: Vec<u8> = (0..PAGE).map(|n| n as u8).collect();

    // The plain file: written once, then the random overwrites.
    let plain = dir.join("plain.dat");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&plain)
        .map_err(io(&plain))?;
    for page in 0..pages {
        file.write_all_at(&block, page * PAGE).map_err(io(&plain))?;
    }
    file.sync_all().map_err(io(&plain))?;
    let started = Instant::now();
    let mut in_sync = std::time::Duration::ZERO;
    for (k, &at) in offsets.iter().enumerate() {
        file.write_all_at(&block, at).map_err(io(&plain))?;
        if k as u64 % PER_SYNC == PER_SYNC - 1 {
            let sync = Instant::now();
            file.sync_data().map_err(io(&plain))?;
            in_sync += sync.elapsed();
        }
    }
    let file_sync_us = in_sync.as_secs_f64() * 1e6 / writes as f64;
    file.sync_data().map_err(io(&plain))?;
    let file_us = started.elapsed().as_secs_f64() * 1e6 / writes as f64;

    // The VmFile in a persistent space on a drive file in the same folder.
    let files = SpaceFiles {
        real_memory_bytes,
        ..SpaceFiles::new(dir.join("space.vol"))
    };
    let vm = Vm::create_files(&files, file_bytes + 2 * PAGE).map_err(ToolError::Vm)?;
    let mut vm_file = VmFile::create(&vm, file_bytes).map_err(ToolError::Vm)?;
    for page in 0..pages {
        vm_file
            .write_at(&block, page * PAGE)
            .map_err(ToolError::Vm)?;
    }
    vm_file.sync_data().map_err(ToolError::Vm)?;
    let started = Instant::now();
    let mut in_sync = std::time::Duration::ZERO;
    for (k, &at) in offsets.iter().enumerate() {
        vm_file.write_at(&block, at).map_err(ToolError::Vm)?;
        if k as u64 % PER_SYNC == PER_SYNC - 1 {
            let sync = Instant::now();
            vm_file.sync_data().map_err(ToolError::Vm)?;
            in_sync += sync.elapsed();
        }
    }
    vm_file.sync_data().map_err(ToolError::Vm)?;
    let vm_us = started.elapsed().as_secs_f64() * 1e6 / writes as f64;
    let vm_sync_us = in_sync.as_secs_f64() * 1e6 / writes as f64;
    vm.close().map_err(ToolError::Vm)?;
    std::fs::remove_file(dir.join("space.vol")).map_err(io(dir))?;

    // Reopen: a space whose every page was written.
    let files = SpaceFiles {
        real_memory_bytes,
        ..SpaceFiles::new(dir.join("big.vol"))
    };
    let vm = Vm::create_files(&files, space_bytes).map_err(ToolError::Vm)?;
    let interval = vm.allocate(vm.virtual_pages()).map_err(ToolError::Vm)?;
    let chunk = vec![7u8; 1 << 20];
    let base = vm.address_of(interval.page).0;
    let mut at = 0;
    while at < vm.virtual_pages() * PAGE {
        let n = (chunk.len() as u64).min(vm.virtual_pages() * PAGE - at) as usize;
        vm.write(vm_core::VAddr(base + at), &chunk[..n])
            .map_err(ToolError::Vm)?;
        at += n as u64;
    }
    vm.close().map_err(ToolError::Vm)?;
    let started = Instant::now();
    let vm = Vm::open_files(&files).map_err(ToolError::Vm)?;
    let reopen_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut first = [0u8; 8];
    vm.read(vm_core::VAddr(base), &mut first)
        .map_err(ToolError::Vm)?;
    if first != [7u8; 8] {
        return Err(ToolError::Check(
            "the reopened space lost its contents".into(),
        ));
    }
    drop(vm);
    let started = Instant::now();
    let again = std::fs::File::open(&plain).map_err(io(&plain))?;
    let mut page = vec![0u8; PAGE as usize];
    again.read_exact_at(&mut page, 0).map_err(io(&plain))?;
    let file_open_ms = started.elapsed().as_secs_f64() * 1e3;
    std::fs::remove_file(dir.join("big.vol")).map_err(io(dir))?;
    std::fs::remove_file(&plain).map_err(io(&plain))?;
    Ok(PersistentReport {
        file_bytes,
        writes,
        writes_per_sync: PER_SYNC,
        real_memory_bytes,
        vm_file_us_per_write: vm_us,
        vm_file_sync_us_per_write: vm_sync_us,
        file_us_per_write: file_us,
        file_sync_us_per_write: file_sync_us,
        space_bytes,
        reopen_ms,
        file_open_ms,
    })
}
