//! `cedarvm bench ipc`: message throughput between two processes through
//! a shared ring of the `shm` module against pipes and Unix sockets.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use utility_mode::ToolError;
use utility_mode::progress::progress;

/// What `bench ipc` reports: message throughput between two processes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IpcReport {
    /// Messages sent per transport.
    pub messages: u64,
    /// Messages received with the right sequence number, over all five
    /// transports (a run that loses, repeats or reorders one fails
    /// instead).
    pub messages_checked: u64,
    /// Bytes per message.
    pub message_bytes: usize,
    /// Messages per second through the shared ring guarded by counting
    /// semaphores.
    pub ring_per_s: f64,
    /// Messages per second through a pipe, one `write` per message
    /// (baseline, same run).
    pub pipe_per_s: f64,
    /// Messages per second through a Unix stream socket, one `write` per
    /// message (baseline, same run).
    pub socket_per_s: f64,
    /// Messages per second through a pipe written in 64 KiB batches (the
    /// receiver sees a message only when its batch is written).
    pub pipe_batched_per_s: f64,
    /// Messages per second through a Unix socket written in 64 KiB batches.
    pub socket_batched_per_s: f64,
}

/// Message size of `bench ipc`.
pub const IPC_MESSAGE_BYTES: usize = 64;
const IPC_SLOTS: usize = 256;
const IPC_EMPTY: usize = 0;
const IPC_FULL: usize = 8;
const IPC_GO: usize = 16;
const IPC_RING: usize = 64;

/// Which transport an `ipc-peer` process sends through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpcTransport {
    /// The shared ring in the segment at this path.
    Ring(PathBuf),
    /// Standard output (a pipe to the parent); waits for a byte on
    /// standard input first. `true`: write in 64 KiB batches.
    Pipe(bool),
    /// A Unix socket at this path; `true`: write in 64 KiB batches.
    Socket(PathBuf, bool),
}

/// Writes `messages` messages to `out`, in batches or one `write` each.
fn send_stream(out: impl std::io::Write, messages: u64, batched: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(if batched { 64 * 1024 } else { 0 }, out);
    let mut message = [0u8; IPC_MESSAGE_BYTES];
    for i in 0..messages {
        message[..8].copy_from_slice(&i.to_le_bytes());
        out.write_all(&message)?;
    }
    out.flush()
}

/// Reads `messages` messages from `from`, checking that message `i`
/// carries sequence number `i` (none lost, none repeated, none out of
/// order); returns the seconds taken and the messages checked.
fn receive_stream(mut from: impl std::io::Read, messages: u64) -> Result<(f64, u64), ToolError> {
    let mut buf = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let total = messages as usize * IPC_MESSAGE_BYTES;
    let (mut received, mut next) = (0usize, 0u64);
    // Bytes of a message split across two reads.
    let mut partial: Vec<u8> = Vec::with_capacity(IPC_MESSAGE_BYTES);
    while received < total {
        let n = from
            .read(&mut buf[..(total - received).min(64 * 1024)])
            .map_err(|source| ToolError::File {
                path: PathBuf::from("ipc stream"),
                source,
            })?;
        if n == 0 {
            return Err(ToolError::Check(format!(
                "the stream closed after {next} of {messages} messages"
            )));
        }
        received += n;
        let mut bytes = &buf[..n];
        while !bytes.is_empty() {
            let take = (IPC_MESSAGE_BYTES - partial.len()).min(bytes.len());
            partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if partial.len() == IPC_MESSAGE_BYTES {
                let sequence = u64::from_le_bytes(partial[..8].try_into().expect("8 bytes"));
                if sequence != next {
                    return Err(ToolError::Check(format!(
                        "stream message {next} arrived as {sequence}"
                    )));
                }
                next += 1;
                partial.clear();
            }
        }
    }
    Ok((started.elapsed().as_secs_f64(), next))
}

/// Waits for a peer and fails unless it exited successfully.
fn reap(mut child: std::process::Child, program: &Path) -> Result<(), ToolError> {
    let status = child.wait().map_err(|source| ToolError::File {
        path: program.to_path_buf(),
        source,
    })?;
    if !status.success() {
        return Err(ToolError::Check(format!("the ipc peer failed: {status}")));
    }
    Ok(())
}

/// The sending side of `bench ipc`, run as a child process.
pub fn ipc_peer(transport: &IpcTransport, messages: u64) -> Result<(), ToolError> {
    use std::io::Read;
    let io = |source: std::io::Error| ToolError::File {
        path: PathBuf::from("ipc peer"),
        source,
    };
    match transport {
        IpcTransport::Ring(path) => {
            let segment =
                vm_core::shm::Segment::open(path).map_err(|e| ToolError::Check(e.to_string()))?;
            let shm = |e: vm_core::shm::ShmError| ToolError::Check(e.to_string());
            let empty = vm_core::shm::Semaphore::at(&segment, IPC_EMPTY).map_err(shm)?;
            let full = vm_core::shm::Semaphore::at(&segment, IPC_FULL).map_err(shm)?;
            let go = segment.word(IPC_GO).map_err(shm)?;
            while go.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                std::hint::spin_loop();
            }
            for i in 0..messages {
                empty.p();
                let slot = IPC_RING + (i as usize % IPC_SLOTS) * IPC_MESSAGE_BYTES;
                for w in 0..IPC_MESSAGE_BYTES / 4 {
                    segment
                        .word(slot + w * 4)
                        .map_err(shm)?
                        .store(i as u32 ^ w as u32, std::sync::atomic::Ordering::Relaxed);
                }
                full.v();
            }
        }
        IpcTransport::Pipe(batched) => {
            let mut go = [0u8; 1];
            std::io::stdin().read_exact(&mut go).map_err(io)?;
            // Standard output itself is line-buffered; write to its file
            // descriptor directly so that "one write per message" is one.
            let fd = std::os::fd::AsFd::as_fd(&std::io::stdout())
                .try_clone_to_owned()
                .map_err(io)?;
            send_stream(std::fs::File::from(fd), messages, *batched).map_err(io)?;
        }
        IpcTransport::Socket(path, batched) => {
            let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(io)?;
            let mut go = [0u8; 1];
            stream.read_exact(&mut go).map_err(io)?;
            send_stream(stream, messages, *batched).map_err(io)?;
        }
    }
    Ok(())
}

/// Runs `bench ipc`: `messages` messages of 64 bytes from a child process
/// to this one through the shared ring, a pipe and a Unix socket. The
/// child is `program` (the `cedarvm` binary) run as `bench ipc-peer`.
pub fn ipc(program: &Path, messages: u64) -> Result<IpcReport, ToolError> {
    use std::process::{Command, Stdio};
    let temp = tempfile::tempdir().map_err(|source| ToolError::File {
        path: std::env::temp_dir(),
        source,
    })?;
    let io = |source: std::io::Error| ToolError::File {
        path: program.to_path_buf(),
        source,
    };
    let shm = |e: vm_core::shm::ShmError| ToolError::Check(e.to_string());
    let peer = |transport: &[&str]| {
        let mut c = Command::new(program);
        c.args(["bench", "ipc-peer", "--messages", &messages.to_string()])
            .args(transport);
        c
    };
    let bar = progress(3, "ipc");
    use std::io::Write;

    // The shared ring.
    let path = temp.path().join("ring");
    let size = IPC_RING + IPC_SLOTS * IPC_MESSAGE_BYTES;
    let segment = vm_core::shm::Segment::create(&path, size, 0o600).map_err(shm)?;
    let empty = vm_core::shm::Semaphore::at(&segment, IPC_EMPTY).map_err(shm)?;
    let full = vm_core::shm::Semaphore::at(&segment, IPC_FULL).map_err(shm)?;
    empty.init(IPC_SLOTS as u32);
    let child = peer(&["--ring", path.to_str().expect("a UTF-8 temp path")])
        .spawn()
        .map_err(io)?;
    let started = Instant::now();
    let mut messages_checked = 0u64;
    segment
        .word(IPC_GO)
        .map_err(shm)?
        .store(1, std::sync::atomic::Ordering::SeqCst);
    for i in 0..messages {
        full.p();
        let slot = IPC_RING + (i as usize % IPC_SLOTS) * IPC_MESSAGE_BYTES;
        let first = segment
            .word(slot)
            .map_err(shm)?
            .load(std::sync::atomic::Ordering::Relaxed);
        if first != i as u32 {
            return Err(ToolError::Check(format!(
                "ring message {i} arrived as {first}"
            )));
        }
        let last_word = IPC_MESSAGE_BYTES / 4 - 1;
        let last = segment
            .word(slot + last_word * 4)
            .map_err(shm)?
            .load(std::sync::atomic::Ordering::Relaxed);
        if last != i as u32 ^ last_word as u32 {
            return Err(ToolError::Check(format!(
                "ring message {i} arrived torn (last word {last:#x})"
            )));
        }
        messages_checked += 1;
        empty.v();
    }
    let ring_s = started.elapsed().as_secs_f64();
    reap(child, program)?;
    bar.inc(1);

    // A pipe and a Unix socket, one write per message and in batches.
    let mut stream_rates = Vec::new();
    for batched in [false, true] {
        let flag: &[&str] = if batched {
            &["--pipe", "--batched"]
        } else {
            &["--pipe"]
        };
        let mut child = peer(flag)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(io)?;
        let from = child.stdout.take().expect("piped");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(b"g")
            .map_err(io)?;
        let (seconds, checked) = receive_stream(from, messages)?;
        messages_checked += checked;
        stream_rates.push(messages as f64 / seconds);
        reap(child, program)?;
        let socket = temp.path().join(format!("socket-{batched}"));
        let listener = std::os::unix::net::UnixListener::bind(&socket).map_err(io)?;
        let path = socket.to_str().expect("a UTF-8 temp path");
        let flag: &[&str] = if batched {
            &["--socket", path, "--batched"]
        } else {
            &["--socket", path]
        };
        let child = peer(flag).spawn().map_err(io)?;
        let (mut stream, _) = listener.accept().map_err(io)?;
        stream.write_all(b"g").map_err(io)?;
        let (seconds, checked) = receive_stream(stream, messages)?;
        messages_checked += checked;
        stream_rates.push(messages as f64 / seconds);
        reap(child, program)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(IpcReport {
        messages,
        messages_checked,
        message_bytes: IPC_MESSAGE_BYTES,
        ring_per_s: messages as f64 / ring_s,
        pipe_per_s: stream_rates[0],
        socket_per_s: stream_rates[1],
        pipe_batched_per_s: stream_rates[2],
        socket_batched_per_s: stream_rates[3],
    })
}

impl IpcReport {
    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        format!(
            "{} messages of {} bytes from one process to another\n\
             {:<48} {:>12.0} msg/s\n\
             {:<48} {:>12.0} msg/s  (ring {:.2}×)\n\
             {:<48} {:>12.0} msg/s  (ring {:.2}×)\n\
             {:<48} {:>12.0} msg/s  (ring {:.2}×)\n\
             {:<48} {:>12.0} msg/s  (ring {:.2}×)\n",
            self.messages,
            self.message_bytes,
            "shared ring, counting semaphores",
            self.ring_per_s,
            "pipe, one write per message",
            self.pipe_per_s,
            self.ring_per_s / self.pipe_per_s,
            "Unix socket, one write per message",
            self.socket_per_s,
            self.ring_per_s / self.socket_per_s,
            "pipe, 64 KiB batches",
            self.pipe_batched_per_s,
            self.ring_per_s / self.pipe_batched_per_s,
            "Unix socket, 64 KiB batches",
            self.socket_batched_per_s,
            self.ring_per_s / self.socket_batched_per_s,
        )
    }
}
