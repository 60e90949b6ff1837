//! Progress of long-running tool work, without a terminal library.
//!
//! The tools say how far they are ([`progress`] → [`Progress::inc`]); what
//! is shown is up to the program: the `cedarvm` binary installs a sink that
//! draws an `indicatif` bar on a terminal (and nothing otherwise). A
//! program that installs none gets silence. This is the `log` crate's
//! design (a library reports, the binary decides how to show it), chosen so
//! that the tools as a library compile no terminal code.

use std::sync::OnceLock;

/// Where progress goes: one bar per call of [`ProgressSink::start`].
pub trait ProgressSink: Send + Sync {
    /// A new bar over `len` steps labelled `what`.
    fn start(&self, len: u64, what: &str) -> Box<dyn ProgressBar>;
}

/// One bar, as a sink draws it.
pub trait ProgressBar: Send {
    /// `steps` more steps done.
    fn inc(&self, steps: u64);
    /// A new label for the bar (the phase the work is in).
    fn set_message(&self, what: &str);
    /// The work is over: take the bar off the screen.
    fn clear(&self);
}

static SINK: OnceLock<Box<dyn ProgressSink>> = OnceLock::new();

/// Installs the program's sink; the first one installed stays. Returns
/// whether this one was installed.
pub fn set_sink(sink: Box<dyn ProgressSink>) -> bool {
    SINK.set(sink).is_ok()
}

/// A bar over `len` steps labelled `what`, shown by the installed sink (if
/// any). The bar clears itself when dropped, on every return path.
pub fn progress(len: u64, what: &str) -> Progress {
    Progress(SINK.get().map(|sink| sink.start(len, what)))
}

/// A bar handed out by [`progress`]; cleared when dropped.
pub struct Progress(Option<Box<dyn ProgressBar>>);

impl Progress {
    /// `steps` more steps done.
    pub fn inc(&self, steps: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(steps);
        }
    }

    /// A new label (the phase the work is in).
    pub fn set_message(&self, what: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(what);
        }
    }

    /// Takes the bar off the screen now (dropping it does the same).
    pub fn finish_and_clear(&self) {
        if let Some(bar) = &self.0 {
            bar.clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish_and_clear();
    }
}
