//! [`Padded`]: a value alone on its cache lines, for atomics that one
//! thread writes while others read their neighbours.

/// A value alone on its cache lines (two 64-byte lines: the adjacent-line
/// prefetcher moves them in pairs).
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
