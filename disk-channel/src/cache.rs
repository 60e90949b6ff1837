//! [`CachePolicy`]: how a file drive uses the kernel's page cache.

/// How a file drive uses the kernel's page cache; see the `file` module's
/// doc (`FileDrive`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CachePolicy {
    /// `O_DIRECT`: transfers bypass the page cache (falls back to
    /// `DropBehind` where the file system refuses it).
    #[default]
    Direct,
    /// Buffered transfers, each followed by `posix_fadvise(DONTNEED)`.
    DropBehind,
    /// Buffered transfers through the page cache.
    Buffered,
}

impl CachePolicy {
    /// The policy's name as the tools print it.
    pub fn name(self) -> &'static str {
        match self {
            CachePolicy::Direct => "direct",
            CachePolicy::DropBehind => "drop-behind",
            CachePolicy::Buffered => "buffered",
        }
    }
}
