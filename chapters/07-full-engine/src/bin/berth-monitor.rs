//! `berth-monitor CONFIG`: one container's monitor (conmon's job), started
//! by `berth`. Small on purpose: one runs per container, for as long as the
//! container lives.

fn main() {
    ch01_chroot::sigpipe::die_quietly_when_stdout_closes();
    let Some(config) = std::env::args_os().nth(1) else {
        eprintln!("usage: berth-monitor CONFIG (started by berth, not by hand)");
        std::process::exit(2);
    };
    std::process::exit(ch07_full_engine::monitor::main(std::path::Path::new(
        &config,
    )));
}
