//! `diff` and `export`: a container's filesystem from the host
//! ([`crate::engine::filesystem`]).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use super::{Failure, Outcome};
use crate::engine::Engine;

/// The arguments of `diff`.
#[derive(Args, Debug, Clone)]
pub struct DiffArgs {
    pub container: String,
}

/// The flags of `export`.
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long, value_name = "string")]
    pub output: Option<PathBuf>,
    pub container: String,
}

/// `diff`: docker's `A`/`C`/`D` lines.
pub fn diff(engine: &Engine, args: &DiffArgs) -> Outcome {
    let changes = engine.changes(&args.container)?;
    let mut out = std::io::stdout().lock();
    for change in changes {
        let _ = writeln!(out, "{change}");
    }
    Ok(0)
}

/// `export`: to `-o FILE` (written whole, then renamed, so a failed
/// export leaves no half file), or to a stdout that is not a terminal.
pub fn export(engine: &Engine, args: &ExportArgs) -> Outcome {
    let Some(path) = &args.output else {
        let stdout = std::io::stdout();
        if stdout.is_terminal() {
            return Err(Failure::new(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                1,
            ));
        }
        if let Err(err) = engine.export(&args.container, &mut stdout.lock()) {
            // `export c | head`: ends quietly, as coreutils do.
            ch01_chroot::sigpipe::die_if_stdout_closed();
            return Err(err.into());
        }
        return Ok(0);
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let fail =
        |e: &dyn std::fmt::Display| Failure::new(format!("export to {}: {e}", path.display()), 1);
    let mut temp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| fail(&e))?;
    engine.export(&args.container, temp.as_file_mut())?;
    temp.persist(path).map_err(|e| fail(&e.error))?;
    Ok(0)
}
