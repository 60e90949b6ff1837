//! The binary's progress sink: an `indicatif` bar on standard error when it
//! is a terminal, nothing otherwise (see `utility_mode::progress`).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Draws every tool's progress as an `indicatif` bar on a terminal.
pub struct TerminalSink;

impl utility_mode::progress::ProgressSink for TerminalSink {
    fn start(&self, len: u64, what: &str) -> Box<dyn utility_mode::progress::ProgressBar> {
        let bar = ProgressBar::new(len);
        if std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta})")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(what.to_string());
        } else {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        Box::new(Bar(bar))
    }
}

struct Bar(ProgressBar);

impl utility_mode::progress::ProgressBar for Bar {
    fn inc(&self, steps: u64) {
        self.0.inc(steps);
    }
    fn set_message(&self, what: &str) {
        self.0.set_message(what.to_string());
    }
    fn clear(&self) {
        self.0.finish_and_clear();
    }
}
