//! `berth`: the engine, with docker's command line.

fn main() {
    // `berth ps | head`: end quietly when the reader goes, as coreutils do.
    ch01_chroot::sigpipe::die_quietly_when_stdout_closes();
    std::process::exit(ch07_full_engine::cli::main());
}
