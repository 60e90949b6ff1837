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
//! number needs: one multiplication by an odd constant (2^64 / φ), which
//! mixes every bit of the key into the product's high bits, then a
//! rotation that brings those high bits down to where the table takes its
//! bucket index (the low bits) while its 7-bit tag still comes from mixed
//! bits (the top ones).
//!
//! Measured against the alternatives (a scratch program: a map of
//! `budget` pages filled and emptied in batches of 256 as the monitor's
//! is, ns per page in and out; `bench/results/page-map-hash-2026-11-27.txt`):
//!
//! | keys | SipHash | mixed (this) | low bits kept as they are |
//! |---|---|---|---|
//! | a scan, 32,768 pages | 92–109 | 24–35 | 33–36 |
//! | a scan and random pages, 32,768 | 92–95 | 49–50 | 340–360 |
//! | a scan, 262,144 pages | 228–232 | 48–85 | 26–41 |
//! | a scan and random pages, 262,144 | 212–224 | 88–107 | 1,010–1,149 |
//! | runs 4,096 pages apart, 262,144 | 220–227 | 58–113 | 1,464–1,581 |
//!
//! Keeping the key's low bits as the bucket index (consecutive pages in
//! consecutive buckets, which a scan likes) was tried first and dropped
//! after a review: runs of consecutive keys fill runs of buckets, and keys
//! that share their low bits (strided, or random pages among a scan's)
//! pile up on the same buckets.
//!
//! Written by hand rather than taken from a crate (`rustc-hash` does the
//! same): it is these few lines.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by page number.
pub(crate) type PageMap<V> = HashMap<u64, V, BuildHasherDefault<PageHasher>>;

/// A set of page numbers.
pub(crate) type PageSet = HashSet<u64, BuildHasherDefault<PageHasher>>;

/// The hasher of [`PageMap`] and [`PageSet`] (see the module doc).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PageHasher(u64);

/// 2^64 divided by the golden ratio, odd.
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for PageHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(MIX).rotate_left(26)
    }

    fn write_u64(&mut self, key: u64) {
        // (One key a hash: the state is the key itself.)
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

    /// Keys a scan, a stride or random pages would bring spread over the
    /// buckets (the low bits) and over the tags (the top 7 bits): no bucket
    /// or tag takes more than twice its share. (Keeping the key's low bits
    /// as they are failed this: pages 4,096 apart all share the low 12.)
    #[test]
    fn consecutive_strided_and_random_pages_spread_over_buckets_and_tags() {
        let start = 1u64 << 30;
        let patterns: [(&str, Vec<u64>); 3] = [
            ("consecutive", (start..start + 8192).collect()),
            ("4,096 apart", (0..8192).map(|i| start + i * 4096).collect()),
            (
                "random",
                (0..8192u64)
                    .map(|i| (i ^ 0x5DEE_CE66).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 28)
                    .collect(),
            ),
        ];
        for (name, keys) in patterns {
            let mut buckets = vec![0u32; 1024];
            let mut tags = [0u32; 128];
            for &key in &keys {
                let h = hash(key);
                buckets[(h & 1023) as usize] += 1;
                tags[(h >> 57) as usize] += 1;
            }
            // 8,192 keys: 8 a bucket, 64 a tag.
            let (b, t) = (buckets.iter().max().unwrap(), tags.iter().max().unwrap());
            assert!(*b <= 16, "{name}: a bucket took {b} keys");
            assert!(*t <= 128, "{name}: a tag took {t} keys");
        }
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
