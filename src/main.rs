//! The `cedarvm` command: the disk tools, the demo and the benchmark runs
//! (see `cli` for the subcommands). Built with the `cli` feature (on by
//! default); the library crate is the facade in `lib.rs`.

mod check;
mod cli;
mod demo;
mod progress_bar;
mod signals;

fn main() {
    utility_mode::progress::set_sink(Box::new(progress_bar::TerminalSink));
    signals::install();
    let status = cli::run(std::env::args_os());
    // An interrupted run may end here first (its child killed under it):
    // the signal thread finishes the cleanup and exits 130 or 143.
    signals::wait_if_interrupted();
    std::process::exit(status);
}
