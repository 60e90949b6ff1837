//! A binary search tree whose links are addresses in a persistent space:
//! the first run stores words in it and exits; every later run finds the
//! tree where it was, walks it by the addresses stored in the space, and
//! prints the words in order — then adds the words given on its command
//! line.
//!
//! ```sh
//! cargo run --example persistent_tree -- /tmp/tree.vol Cedar Pilot Mesa Alto
//! cargo run --example persistent_tree -- /tmp/tree.vol Dorado
//! ```
//!
//! A node is 48 bytes in the space: left and right child addresses (0 for
//! none), the word's length and up to 32 bytes of it. Page 0 of the first
//! interval holds the root's address and the next free node's address.

use cedar_vm::prelude::*;

const NODE: u64 = 48;

fn read_u64(vm: &Vm, at: u64) -> u64 {
    let mut bytes = [0u8; 8];
    vm.read(VAddr(at), &mut bytes).expect("read");
    u64::from_le_bytes(bytes)
}

fn write_u64(vm: &Vm, at: u64, value: u64) {
    vm.write(VAddr(at), &value.to_le_bytes()).expect("write");
}

fn word_at(vm: &Vm, node: u64) -> String {
    let len = read_u64(vm, node + 16).min(32) as usize;
    let mut bytes = vec![0u8; len];
    vm.read(VAddr(node + 24), &mut bytes).expect("read");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Inserts `word` under the root stored at `root_slot`.
fn insert(vm: &Vm, root_slot: u64, free_slot: u64, word: &str) {
    let mut link = root_slot;
    loop {
        let node = read_u64(vm, link);
        if node == 0 {
            break;
        }
        let here = word_at(vm, node);
        if word == here {
            return;
        }
        link = if word.as_bytes() < here.as_bytes() {
            node
        } else {
            node + 8
        };
    }
    let node = read_u64(vm, free_slot);
    let bytes = &word.as_bytes()[..word.len().min(32)];
    write_u64(vm, node, 0);
    write_u64(vm, node + 8, 0);
    write_u64(vm, node + 16, bytes.len() as u64);
    vm.write(VAddr(node + 24), bytes).expect("write");
    write_u64(vm, link, node);
    write_u64(vm, free_slot, node + NODE);
}

fn walk(vm: &Vm, node: u64, out: &mut Vec<String>) {
    if node == 0 {
        return;
    }
    walk(vm, read_u64(vm, node), out);
    out.push(word_at(vm, node));
    walk(vm, read_u64(vm, node + 8), out);
}

fn main() -> Result<(), VmError> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "persistent_tree.vol".into());
    let files = SpaceFiles {
        real_memory_bytes: 256 << 10,
        ..SpaceFiles::new(&path)
    };
    let (vm, nodes) = if std::path::Path::new(&path).exists() {
        let vm = Vm::open_files(&files)?;
        let nodes = vm.intervals()[0].0;
        println!("reopened {path}: the tree is where it was");
        (vm, nodes)
    } else {
        let vm = Vm::create_files(&files, 16 << 20)?;
        let nodes = vm.allocate(1024)?;
        let base = vm.address_of(nodes.page).0;
        // Nodes start on page 1; page 0 holds the root and the next node.
        write_u64(&vm, base + 8, base + 4096);
        println!("made {path}: a new persistent space");
        (vm, nodes)
    };
    let base = vm.address_of(nodes.page).0;
    for word in args {
        insert(&vm, base, base + 8, &word);
    }
    let mut words = Vec::new();
    walk(&vm, read_u64(&vm, base), &mut words);
    println!("{} words, in order: {}", words.len(), words.join(" "));
    // Everything written is on disk when close returns.
    vm.close()
}
