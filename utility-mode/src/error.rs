//! The tools' errors: one line each, naming the file, drive or budget.

use disk_channel::DriveError;
use runtable::VolumeError;
use std::path::PathBuf;
use vm_core::VmError;

/// What stopped a tool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The tool's working memory does not fit its real-memory budget.
    #[error(
        "not enough real memory: the tool asked for {} with {} of its {} budget in use \
         (give --memory {} or more)",
        crate::units::human_bytes(*needed_bytes),
        crate::units::human_bytes(*used_bytes),
        crate::units::human_bytes(*budget_bytes),
        // What is in use and what is asked for, in whole 4 KiB pages (the
        // utility VM's): enough, not a round figure above it.
        crate::units::human_bytes((used_bytes + needed_bytes).div_ceil(4096).max(1) * 4096)
    )]
    NotEnoughRealMemory {
        /// Bytes asked for.
        needed_bytes: u64,
        /// Bytes already in use.
        used_bytes: u64,
        /// The budget.
        budget_bytes: u64,
    },
    /// The VM (a tool's utility VM, or the demo's and the benchmarks')
    /// refused an operation; its message says what and where.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// The volume is unusable.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// A drive failed.
    #[error(transparent)]
    Drive(#[from] DriveError),
    /// Formatting would overwrite a volume.
    #[error("{path}: already holds a cedar-vm volume; use --force to overwrite it")]
    ExistingVolume {
        /// The drive file.
        path: PathBuf,
    },
    /// The tool would overwrite a file that holds data but no volume.
    #[error(
        "{path}: a file of {bytes} bytes that holds data, not a cedar-vm volume; use --force to overwrite it"
    )]
    ExistingData {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// The request makes no sense.
    #[error("{0}")]
    Usage(String),
    /// A run failed for a reason its message gives whole (a benchmark's
    /// child process, say).
    #[error("{0}")]
    Failed(String),
    /// A run's own check failed (the demo's sort, a scan's bookkeeping).
    #[error("check failed: {0}")]
    Check(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
