//! The registry the exercise checks start: chapter 6's server, as
//! `ch06-registry serve --addr 127.0.0.1:0 --root DIR` runs it — open to
//! anyone, on a free loopback port, which it prints on stderr
//! (`listening on http://127.0.0.1:PORT`), followed by a line per request.
//!
//! It lives here because a test can start only the binaries of its own
//! package, and `cargo xtask exercise` tests this package alone.

use std::process::ExitCode;

use ch06_registry::auth::Auth;
use ch06_registry::server::{ServeOptions, serve};

fn main() -> ExitCode {
    let Some(root) = std::env::args_os().nth(1) else {
        eprintln!("usage: ch06-exercise-registry DIR (where the registry keeps what is pushed)");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ch06-exercise-registry: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = ServeOptions {
        addr: "127.0.0.1:0".into(),
        root: root.into(),
        auth: Auth::new(None, false),
        timeouts: Default::default(),
        proxy: None,
    };
    match runtime.block_on(serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ch06-exercise-registry: {e:#}");
            ExitCode::FAILURE
        }
    }
}
