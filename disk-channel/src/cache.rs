//! [`CachePolicy`]: how a file drive uses the kernel's page cache.

/// How a file drive uses the kernel's page cache; see the `file` module's
/// doc (`FileDrive`). In JSON, as the tools print it and as `--cache`
/// takes it: `"direct"`, `"drop-behind"`, `"buffered"` (the variants'
/// own names, which reports used before, are still read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CachePolicy {
    /// `O_DIRECT`: transfers bypass the page cache (falls back to
    /// `DropBehind` where the file system refuses it).
    #[default]
    #[serde(alias = "Direct")]
    Direct,
    /// Buffered transfers, each followed by `posix_fadvise(DONTNEED)`.
    #[serde(alias = "DropBehind")]
    DropBehind,
    /// Buffered transfers through the page cache.
    #[serde(alias = "Buffered")]
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
