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

/// Removes `path` (a file or a folder) if the run is interrupted.
pub fn remove_on_signal(path: PathBuf) {
    CREATED.lock().unwrap_or_else(|e| e.into_inner()).push(path);
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
                let created =
                    std::mem::take(&mut *CREATED.lock().unwrap_or_else(|e| e.into_inner()));
                for path in created {
                    let _ = if path.is_dir() {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                }
                // Clear whatever line a progress bar left.
                let mut err = std::io::stderr();
                let _ = err.write_all(b"\r\x1b[2K");
                let _ = err.flush();
                std::process::exit(128 + signal);
            }
        });
    if let Err(e) = spawned {
        eprintln!("cedarvm: note: cannot handle Ctrl-C ({e}); an interrupted run leaves its files");
    }
}
