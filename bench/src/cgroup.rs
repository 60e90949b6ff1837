//! A memory cgroup of a given limit for one child process of a benchmark
//! run, and its peak usage (what the kernel charged to it: anonymous memory
//! and the page cache its files brought in). Version 1 (`memory`
//! controller at `/sys/fs/cgroup/memory`) or version 2, whichever the
//! machine has; needs root.

use std::path::{Path, PathBuf};

/// One cgroup, removed when dropped (after its process has exited).
#[derive(Debug)]
pub struct MemoryCgroup {
    path: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    /// Creates the cgroup `name` limited to `limit` bytes, or says why it
    /// cannot be made here.
    pub fn create(name: &str, limit: u64) -> Result<MemoryCgroup, String> {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let v2_root = Path::new("/sys/fs/cgroup");
        let (path, v2) = if v1.join("memory.limit_in_bytes").exists() {
            (v1.join(name), false)
        } else if std::fs::read_to_string(v2_root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
        {
            (v2_root.join(name), true)
        } else {
            return Err("no memory cgroup controller (v1 or v2) on this machine".into());
        };
        std::fs::create_dir(&path)
            .map_err(|e| format!("cannot create {} ({e}); runs need root", path.display()))?;
        let cgroup = MemoryCgroup { path, v2 };
        let limit_file = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::write(cgroup.path.join(limit_file), limit.to_string())
            .map_err(|e| format!("cannot set {limit_file} of {}: {e}", cgroup.path.display()))?;
        Ok(cgroup)
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The file a process writes its pid to in order to join.
    pub fn procs(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// Moves the calling process into the cgroup whose `cgroup.procs` is
    /// `procs` (a child does this first thing, before it allocates).
    pub fn join(procs: &Path) -> std::io::Result<()> {
        std::fs::write(procs, std::process::id().to_string())
    }

    /// Memory charged now to the cgroup whose `cgroup.procs` is `procs`
    /// (for a process inside it), bytes.
    pub fn usage_at(procs: &Path) -> std::io::Result<u64> {
        number_at(procs, "memory.usage_in_bytes", "memory.current")
    }

    /// The page cache charged now to the cgroup whose `cgroup.procs` is
    /// `procs`, bytes: v1's `total_cache` in `memory.stat` (`cache` where
    /// the hierarchy's total is missing), v2's `file`.
    pub fn cache_at(procs: &Path) -> std::io::Result<u64> {
        let dir = procs.parent().unwrap_or(Path::new("/"));
        let text = std::fs::read_to_string(dir.join("memory.stat"))?;
        let field = |name: &str| {
            text.lines().find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.trim().parse::<u64>().ok())?
            })
        };
        field("total_cache")
            .or_else(|| field("cache"))
            .or_else(|| field("file"))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "no page cache figure in {}",
                        dir.join("memory.stat").display()
                    ),
                )
            })
    }

    /// Sets the limit of the cgroup whose `cgroup.procs` is `procs`.
    pub fn set_limit_at(procs: &Path, limit: u64) -> std::io::Result<()> {
        let dir = procs.parent().unwrap_or(Path::new("/"));
        let v1 = dir.join("memory.limit_in_bytes");
        let file = if v1.exists() {
            v1
        } else {
            dir.join("memory.max")
        };
        std::fs::write(file, limit.to_string())
    }

    /// Starts the cgroup's peak (`peak`) over from its usage now, where the
    /// controller allows it (v1's `memory.max_usage_in_bytes`; best effort):
    /// a side that lowers its limit once set up reports the peak under that
    /// limit, not its setup's.
    pub fn reset_peak_at(procs: &Path) {
        let dir = procs.parent().unwrap_or(Path::new("/"));
        let _ = std::fs::write(dir.join("memory.max_usage_in_bytes"), "0");
    }

    /// The most memory charged to the cgroup whose `cgroup.procs` is
    /// `procs` since it was made or its peak was last reset, bytes.
    pub fn peak_at(procs: &Path) -> std::io::Result<u64> {
        number_at(procs, "memory.max_usage_in_bytes", "memory.peak")
    }

    /// The cgroup's limit now, bytes (the child may have lowered it).
    pub fn limit(&self) -> std::io::Result<u64> {
        let file = if self.v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        number_in(&self.path.join(file))
    }

    /// The most memory charged to the cgroup since it was made or its peak
    /// was last reset (see [`MemoryCgroup::peak_at`]), bytes.
    pub fn peak(&self) -> std::io::Result<u64> {
        Self::peak_at(&self.procs())
    }
}

/// The number in the file `v1` (a version 1 controller's) or, where
/// there is none, `v2` of the cgroup whose `cgroup.procs` is `procs`.
fn number_at(procs: &Path, v1: &str, v2: &str) -> std::io::Result<u64> {
    let dir = procs.parent().unwrap_or(Path::new("/"));
    let v1 = dir.join(v1);
    if v1.exists() {
        number_in(&v1)
    } else {
        number_in(&dir.join(v2))
    }
}

/// The number a cgroup file holds.
fn number_in(file: &Path) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(file)?;
    text.trim().parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", file.display()),
        )
    })
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Fails only while a process is still in it; the run has waited
        // for its child.
        let _ = std::fs::remove_dir(&self.path);
    }
}
