//! `VmFile` against `std::fs::File` as the model: random `set_len`,
//! `write_at`, `read_at` and `sync_data` give the same bytes and lengths;
//! the file grows its interval in place; a persistent space brings it back.

use disk_channel::{DiskChannel, Drive, SimDrive};
use proptest::prelude::*;
use runtable::{FormatOptions, Volume};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use vm_core::{Vm, VmConfig, VmFile};

const PAGE: usize = 4096;

fn persistent_vm(budget: u64) -> (Vm, SimDrive) {
    let drive = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(2048 + 64)
        .unwrap();
    let media = drive.share_media();
    let channel = DiskChannel::new(vec![Box::new(drive) as Box<dyn Drive>]).unwrap();
    let volume = Volume::format(channel, &FormatOptions::new(PAGE, 2048)).unwrap();
    let pages = Vm::persistent_pages(&volume).unwrap();
    (
        Vm::create(volume, VmConfig::new(pages, budget)).unwrap(),
        media,
    )
}

#[derive(Clone, Debug)]
enum Op {
    SetLen(u64),
    Write(u64, Vec<u8>),
    Read(u64, usize),
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..70_000).prop_map(Op::SetLen),
        (0u64..70_000, prop::collection::vec(any::<u8>(), 0..9000))
            .prop_map(|(at, bytes)| Op::Write(at, bytes)),
        (0u64..75_000, 0usize..9000).prop_map(|(at, n)| Op::Read(at, n)),
        Just(Op::Sync),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn a_vm_file_behaves_as_a_file(ops in prop::collection::vec(op(), 1..40)) {
        let (vm, _media) = persistent_vm(6);
        // A small capacity: the file must grow its interval in place.
        let mut file = VmFile::create(&vm, 8192).unwrap();
        let model_file = tempfile::tempfile().unwrap();
        for op in &ops {
            match op {
                Op::SetLen(len) => {
                    file.set_len(*len).unwrap();
                    model_file.set_len(*len).unwrap();
                }
                Op::Write(at, bytes) => {
                    prop_assert_eq!(file.write_at(bytes, *at).unwrap(), bytes.len());
                    model_file.write_all_at(bytes, *at).unwrap();
                }
                Op::Read(at, n) => {
                    let mut got = vec![0u8; *n];
                    let mut want = vec![0u8; *n];
                    let got_n = file.read_at(&mut got, *at).unwrap();
                    let want_n = model_file.read_at(&mut want, *at).unwrap();
                    prop_assert_eq!(got_n, want_n, "read of {} at {}", n, at);
                    prop_assert!(got[..got_n] == want[..want_n], "bytes at {}", at);
                }
                Op::Sync => file.sync_data().unwrap(),
            }
            prop_assert_eq!(file.len(), model_file.metadata().unwrap().len());
        }
        // The whole file, byte for byte.
        let len = file.len() as usize;
        let mut got = vec![0u8; len];
        let mut want = vec![0u8; len];
        prop_assert_eq!(file.read_at(&mut got, 0).unwrap(), len);
        model_file.read_exact_at(&mut want, 0).unwrap();
        prop_assert!(got == want);
    }
}

/// `Read`, `Write` and `Seek` as `std::io` users expect, and the file back
/// after the persistent space is closed and reopened.
#[test]
fn a_vm_file_is_a_std_io_file_and_persists() {
    let (vm, media) = persistent_vm(8);
    let mut file = VmFile::create(&vm, 1 << 20).unwrap();
    file.write_all(b"hello, ").unwrap();
    file.write_all(b"persistent world").unwrap();
    file.seek(SeekFrom::Start(7)).unwrap();
    let mut word = [0u8; 10];
    file.read_exact(&mut word).unwrap();
    assert_eq!(&word, b"persistent");
    assert_eq!(file.seek(SeekFrom::End(-5)).unwrap(), 18);
    // Writing nothing, past the end too, changes nothing (as `pwrite`).
    assert_eq!(file.write_at(&[], 1 << 30).unwrap(), 0);
    assert_eq!(file.len(), 23);
    file.sync_data().unwrap();
    let interval = file.interval();
    vm.close().unwrap();
    let channel = DiskChannel::new(vec![Box::new(media.share_media()) as Box<dyn Drive>]).unwrap();
    let volume = Volume::open(channel).unwrap();
    let pages = Vm::persistent_pages(&volume).unwrap();
    let vm = Vm::open(volume, VmConfig::new(pages, 8)).unwrap();
    let mut file = VmFile::open(&vm, interval).unwrap();
    let mut all = String::new();
    file.read_to_string(&mut all).unwrap();
    assert_eq!(all, "hello, persistent world");
    // An interval that holds no file is refused.
    let other = vm.allocate(2).unwrap();
    assert!(VmFile::open(&vm, other).is_err());
}
