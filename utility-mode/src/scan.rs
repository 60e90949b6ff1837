//! Surface scan: write patterns over data pages and read them back; a page
//! that fails or comes back different is bad. The scan destroys what the
//! pages held: it is for drives about to be formatted.
//!
//! Each tested page gets two patterns that both carry the page's own number
//! (so a misdirected write shows) and are complements of each other (so a
//! stuck bit shows). The bad-page list lives in the utility VM.

use crate::error::ToolError;
use crate::progress::progress;
use crate::utility_vm::UtilityVm;
use disk_channel::{DiskChannel, DiskPage, DriveError, DriveId};
use runtable::DiskAddr;
use serde::{Deserialize, Serialize};
use vm_core::VmError;

/// How much of each drive to test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScanMode {
    /// A deterministic sample: every 61st page, and the first and last.
    #[serde(alias = "Quick")]
    Quick,
    /// Every page.
    #[serde(alias = "Full")]
    Full,
}

/// What a scan found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    /// The mode.
    pub mode: ScanMode,
    /// Pages tested.
    pub pages_tested: u64,
    /// The bad pages, in drive and page order.
    pub bad: Vec<DiskAddr>,
}

/// Most bad pages one scan records.
pub const BAD_PAGES_MAX: u64 = 65_536;

/// The utility VM memory a scan needs: its bad-page list (two words an
/// entry) and a page.
pub const SCAN_MEMORY_BYTES: u64 = 2 * BAD_PAGES_MAX * 8 + 4096;

fn fill(buf: &mut [u8], page: u64, invert: bool) {
    for (i, chunk) in buf.chunks_exact_mut(8).enumerate() {
        let word = page.rotate_left(17) ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        chunk.copy_from_slice(&(if invert { !word } else { word }).to_le_bytes());
    }
}

/// Whether `bytes`, read from byte `offset` of a file, are what a scan
/// leaves behind: at some page size a volume may have, each page of them
/// either zeros (not tested) or the second pattern of its own page number
/// (tested). A drive that was scanned and nothing else is not taken for
/// one holding data (`drives::holds_data`).
///
/// `file_len` is the length of the whole file: a page size is a candidate
/// only if the file holds whole pages of it (a scan leaves whole pages; a
/// short file is data). The bytes start at a page's start, in whole
/// multiples of the least page size (a few bytes are data); the last page
/// may be cut short: a caller that looks at the first 64 KiB of a drive of
/// 1 MiB pages judges by the start of its first page, and only by what it
/// is given. (A volume formatted after a scan and never written holds the
/// same patterns in its data pages; its label and header are what tell it
/// apart.)
pub fn is_scan_leftover(bytes: &[u8], offset: u64, file_len: u64) -> bool {
    let unit = runtable::layout::PAGE_SIZE_MIN;
    if bytes.is_empty()
        || !bytes.len().is_multiple_of(unit)
        || offset.saturating_add(bytes.len() as u64) > file_len
        || bytes.iter().all(|&b| b == 0)
    {
        return false;
    }
    let mut page_size = unit;
    while page_size <= runtable::layout::PAGE_SIZE_MAX {
        if offset.is_multiple_of(page_size as u64) && file_len.is_multiple_of(page_size as u64) {
            let mut pattern = vec![0u8; page_size];
            let first = offset / page_size as u64;
            let all = bytes.chunks(page_size).enumerate().all(|(k, chunk)| {
                if chunk.iter().all(|&b| b == 0) {
                    return true;
                }
                fill(&mut pattern, first + k as u64, true);
                chunk == &pattern[..chunk.len()]
            });
            if all {
                return true;
            }
        }
        page_size *= 2;
    }
    false
}

/// Whether a drive error marks the page bad (as opposed to a mistake of
/// ours, which is returned).
fn is_media_error(e: &DriveError) -> bool {
    matches!(
        e,
        DriveError::BadPage { .. } | DriveError::Io { .. } | DriveError::Injected { .. }
    )
}

/// Scans every drive of `channel`.
pub fn scan(
    channel: &DiskChannel,
    mode: ScanMode,
    uvm: &UtilityVm,
) -> Result<ScanReport, ToolError> {
    // A scan writes patterns over every page it tests: never while another
    // process has the volume open (`--force` does not change that).
    channel.lock_all()?;
    let page_size = channel.page_size();
    let bad = uvm.array(2 * BAD_PAGES_MAX)?;
    let mut bad_count = 0u64;
    let mut tested = 0u64;
    let total: u64 = (0..channel.drive_count())
        .map(|d| channel.page_count(DriveId(d as u16)).unwrap_or(0))
        .sum();
    let bar = progress(total, "scan");
    let (mut out, mut back) = (vec![0u8; page_size], vec![0u8; page_size]);
    for d in 0..channel.drive_count() {
        let drive = DriveId(d as u16);
        let pages = channel.page_count(drive)?;
        for page in 0..pages {
            bar.inc(1);
            let sampled = mode == ScanMode::Full || page % 61 == 0 || page + 1 == pages;
            if !sampled {
                continue;
            }
            tested += 1;
            let mut good = true;
            for invert in [false, true] {
                fill(&mut out, page, invert);
                let result = channel
                    .write(drive, DiskPage(page), &out, None)
                    .and_then(|()| channel.read(drive, DiskPage(page), &mut back, None));
                match result {
                    Ok(()) if back == out => {}
                    Ok(()) => good = false,
                    Err(e) if is_media_error(&e) => good = false,
                    Err(e) => return Err(e.into()),
                }
                if !good {
                    break;
                }
            }
            if !good {
                if bad_count == BAD_PAGES_MAX {
                    return Err(ToolError::Check(format!(
                        "more than {BAD_PAGES_MAX} bad pages: this drive is not usable"
                    )));
                }
                bad.set(2 * bad_count, u64::from(drive.0))?;
                bad.set(2 * bad_count + 1, page)?;
                bad_count += 1;
            }
        }
        channel.sync(drive)?;
    }
    bar.finish_and_clear();
    let bad = (0..bad_count)
        .map(|i| Ok(DiskAddr::new(bad.get(2 * i)? as u16, bad.get(2 * i + 1)?)))
        .collect::<Result<_, VmError>>()?;
    Ok(ScanReport {
        mode,
        pages_tested: tested,
        bad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scans_leftover_is_recognised_and_a_changed_byte_is_data() {
        // Pages 0 and 3 tested, 1 and 2 not (zeros), at 4 KiB.
        let mut bytes = vec![0u8; 4 * 4096];
        fill(&mut bytes[..4096], 0, true);
        fill(&mut bytes[3 * 4096..], 3, true);
        let len = bytes.len() as u64;
        assert!(is_scan_leftover(&bytes, 0, len));
        // The same pages read from the file's second page on are not.
        assert!(!is_scan_leftover(&bytes, 4096, len + 4096));
        // The first pattern (a scan cut short) is not what a scan leaves.
        let mut first = vec![0u8; 4096];
        fill(&mut first, 0, false);
        assert!(!is_scan_leftover(&first, 0, 4096));
        bytes[3 * 4096 + 100] ^= 1;
        assert!(!is_scan_leftover(&bytes, 0, len));
        assert!(
            !is_scan_leftover(&[0u8; 4096], 0, 4096),
            "zeros are no leftover"
        );
        // A part of a page is data, whatever it holds.
        let mut part = vec![0u8; 4096];
        fill(&mut part, 0, true);
        assert!(!is_scan_leftover(&part[..8], 0, 8));
    }

    #[test]
    fn the_start_of_a_large_pages_leftover_is_recognised() {
        // What `holds_data` reads of a drive scanned at 1 MiB pages: the
        // first 64 KiB of page 0, and of page 5 (the first data of a file
        // whose pages 0-4 were not tested).
        let mut page = vec![0u8; 1 << 20];
        fill(&mut page, 0, true);
        assert!(is_scan_leftover(&page[..64 * 1024], 0, 8 << 20));
        fill(&mut page, 5, true);
        assert!(is_scan_leftover(&page[..64 * 1024], 5 << 20, 8 << 20));
        // Page 5's pattern where page 4's would be is not what a scan left.
        assert!(!is_scan_leftover(&page[..64 * 1024], 4 << 20, 8 << 20));
        // Nor is its start in a file shorter than 1 MiB pages fit (review:
        // a short file that happens to start so is data).
        assert!(!is_scan_leftover(
            &page[..64 * 1024],
            5 << 20,
            (5 << 20) + (64 << 10)
        ));
        // Nor is the start with one byte changed.
        let mut head = page[..64 * 1024].to_vec();
        head[60_000] ^= 0x40;
        assert!(!is_scan_leftover(&head, 5 << 20, 8 << 20));
    }
}
