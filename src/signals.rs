//! Ctrl-C and SIGTERM: what a run created on disk is removed, the progress
//! bar's line is cleared, and the process exits 130 or 143 (128 + the
//! signal), as a shell expects.
//!
//! Runs register the paths they create ([`remove_on_signal`]); a thread
//! waits for the signals (`signal-hook`'s iterator, so no work happens in
//! a signal handler) and cleans up. Destructors do not run on this path,
//! which is why the paths are registered rather than left to `Drop`.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

static CREATED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static CGROUPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes `path` (a file or a folder) if the run is interrupted.
pub fn remove_on_signal(path: PathBuf) {
    CREATED.lock().unwrap_or_else(|e| e.into_inner()).push(path);
}

/// No longer removes `paths` if the run is interrupted (the run that made
/// them finished: they are its result, or it removed them itself).
pub fn keep_on_signal(paths: &[PathBuf]) {
    CREATED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| !paths.contains(p));
}

/// Blocks forever if a signal arrived: the signal thread is cleaning up
/// and will exit the process with the signal's status (a run that failed
/// because its child was killed by that cleanup must not exit first, with
/// its own status and message).
pub fn wait_if_interrupted() {
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

/// Whether a signal arrived (the signal thread is cleaning up).
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// What a benchmark run asks to be undone if it is interrupted.
pub fn undo_on_signal(cleanup: cedar_bench::out_of_core::Cleanup) {
    use cedar_bench::out_of_core::Cleanup;
    match cleanup {
        Cleanup::Kill(pid) => CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(pid),
        Cleanup::RemoveDir(path) => remove_on_signal(path),
        Cleanup::RemoveCgroup(path) => CGROUPS.lock().unwrap_or_else(|e| e.into_inner()).push(path),
        Cleanup::Reaped(pid) => CHILDREN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&p| p != pid),
    }
}

/// Kills the registered children and waits (up to a second each) for them
/// to be gone, so that their files and cgroups can go.
fn kill_children() {
    let children = std::mem::take(&mut *CHILDREN.lock().unwrap_or_else(|e| e.into_inner()));
    for pid in children {
        let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
            continue;
        };
        // Already gone (and perhaps reaped): nothing to do.
        if rustix::process::kill_process(pid, rustix::process::Signal::KILL).is_err() {
            continue;
        }
        for _ in 0..100 {
            match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG) {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }
}

/// Starts the thread that handles SIGINT and SIGTERM. If the signals
/// cannot be registered, the default behaviour stays (the process dies,
/// leaving its files): said once on standard error.
pub fn install() {
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!(
                "cedarvm: note: cannot handle Ctrl-C ({e}); an interrupted run leaves its files"
            );
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
                kill_children();
                let created =
                    std::mem::take(&mut *CREATED.lock().unwrap_or_else(|e| e.into_inner()));
                let mut removed = Vec::new();
                for path in created {
                    let gone = if path.is_dir() {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                    if gone.is_ok() {
                        removed.push(path);
                    }
                }
                for cgroup in
                    std::mem::take(&mut *CGROUPS.lock().unwrap_or_else(|e| e.into_inner()))
                {
                    let _ = std::fs::remove_dir(&cgroup);
                }
                // Clear whatever line a progress bar left (on a terminal:
                // there is none elsewhere).
                let mut err = std::io::stderr();
                if std::io::IsTerminal::is_terminal(&err) {
                    let _ = err.write_all(b"\r\x1b[2K");
                    let _ = err.flush();
                }
                // Say what went (one line; nothing if the run had made
                // nothing yet).
                if !removed.is_empty() {
                    let names: Vec<String> =
                        removed.iter().map(|p| p.display().to_string()).collect();
                    let _ = writeln!(
                        err,
                        "cedarvm: interrupted; removed what the run had made: {}",
                        names.join(", ")
                    );
                }
                std::process::exit(128 + signal);
            }
        });
    if let Err(e) = spawned {
        eprintln!("cedarvm: note: cannot handle Ctrl-C ({e}); an interrupted run leaves its files");
    }
}
