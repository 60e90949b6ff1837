//! The `cedarvm` command: see `utility_mode::cli`.

fn main() {
    std::process::exit(utility_mode::cli::run(std::env::args_os()));
}
