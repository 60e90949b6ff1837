//! Maps keyed by page number, hashed for pages.
//!
//! The monitor's map from a resident page to its frame (`frame_of`) is
//! looked up, filled and emptied once for every page that comes in or goes
//! out — 256 times for each 1 MiB cluster a scan reads and each batch the
//! clock evicts — with the monitor held. With the standard library's
//! hasher (SipHash, keyed against collision attacks) that took 14.6% of a
//! scan's samples (`perf record`, `bench out-of-core --scale 4 --workloads
//! scan`: `remove_frame` 7.4%, `hash_one` 5.1%, `insert` 2.1%). There is
//! no attacker to keep out here — a program choosing its page numbers to
//! collide only slows itself — so [`PageHasher`] does no more than a page
//! number needs:
//!
//! - the low 57 bits of the hash are the page number itself, so a run of
//!   consecutive pages fills consecutive buckets (the table's index is the
//!   hash's low bits): a cluster's 256 inserts touch a few cache lines,
//!   where a mixed hash scatters them over the table;
//! - the top 7 bits, which the table keeps beside each bucket to tell keys
//!   apart without comparing them, come from a multiplication by an odd
//!   constant (2^64 / φ), which mixes every bit of the page number into
//!   them.
//!
//! Written by hand rather than taken from a crate: it is these few lines,
//! and the low bits must stay the key's own (the hashers of `rustc-hash`
//! and `ahash` mix them).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by page number.
pub(crate) type PageMap<V> = HashMap<u64, V, BuildHasherDefault<PageHasher>>;

/// A set of page numbers.
pub(crate) type PageSet = HashSet<u64, BuildHasherDefault<PageHasher>>;

/// The hasher of [`PageMap`] and [`PageSet`] (see the module doc).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PageHasher(u64);

/// The bits of the hash that are the key's own.
const OWN_BITS: u32 = 57;

impl Hasher for PageHasher {
    fn finish(&self) -> u64 {
        let own = self.0 & ((1 << OWN_BITS) - 1);
        let mixed = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) & !((1 << OWN_BITS) - 1);
        own | mixed
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = self.0.rotate_left(5) ^ key;
    }

    /// Any other key (none is used): its bytes folded in, eight at a time.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(key: u64) -> u64 {
        BuildHasherDefault::<PageHasher>::default().hash_one(key)
    }

    /// Consecutive pages hash to consecutive low bits, and their top 7
    /// bits (the table's tags) spread over all 128 values.
    #[test]
    fn low_bits_are_the_page_and_the_top_bits_are_mixed() {
        let start = 1 << 40;
        let mut tags = [0u32; 128];
        for key in start..start + 128 * 64 {
            let h = hash(key);
            assert_eq!(h & 0xFFFF, key & 0xFFFF);
            tags[(h >> OWN_BITS) as usize] += 1;
        }
        // 8,192 keys over 128 tags: each tag about 64 times.
        let (min, max) = (tags.iter().min().unwrap(), tags.iter().max().unwrap());
        assert!(*min >= 32 && *max <= 96, "tags from {min} to {max}");
    }

    #[test]
    fn a_page_map_finds_what_it_holds() {
        let mut map = PageMap::default();
        for key in (0..10_000u64).map(|k| k * 7919) {
            map.insert(key, key as u32);
        }
        for key in (0..10_000u64).map(|k| k * 7919) {
            assert_eq!(map.get(&key), Some(&(key as u32)));
            assert_eq!(map.get(&(key + 1)), None);
        }
        let set: PageSet = (0..100).collect();
        assert!(set.contains(&99) && !set.contains(&100));
    }
}
