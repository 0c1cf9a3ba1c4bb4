//! Which files a dynamically linked program needs, read from its ELF headers.
//!
//! Kernel feature: when `execve(2)` loads an ELF program that has a
//! `PT_INTERP` program header, the kernel also maps the *interpreter* named
//! there (the dynamic loader, `/lib64/ld-linux-x86-64.so.2`) and starts it.
//! The loader then reads the program's `DT_NEEDED` entries (`libc.so.6`, ...)
//! and looks each up in `DT_RUNPATH`/`DT_RPATH`, the directories of
//! `/etc/ld.so.conf`, then `/lib` and `/usr/lib`. A rootfs must contain all of
//! them, at those paths, or `execve` fails with a puzzling `ENOENT`.
//!
//! `ldd` answers the same question by *running* the loader on the program;
//! reading the headers is safer and works for any architecture.
//!
//! Man pages: elf(5), ld.so(8), ldconfig(8), ldd(1).

use std::path::{Path, PathBuf};

use goblin::elf::Elf;

/// What an ELF file asks of the dynamic loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfNeeds {
    /// `PT_INTERP`: the loader's absolute path; `None` for static programs.
    pub interpreter: Option<String>,
    /// `DT_NEEDED`: library names, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` (or the older `DT_RPATH`) directories, `$ORIGIN` expanded.
    pub search_path: Vec<String>,
    /// `e_machine` and 64-bitness: a library must match both.
    pub machine: u16,
    pub is_64: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: not an ELF file we can read: {reason}")]
    Parse { path: PathBuf, reason: String },
}

/// Read `host_root`/`path`'s headers. `path` is absolute, as seen on the host.
// ANCHOR: read_needs
pub fn read_needs(host_root: &Path, path: &str) -> Result<ElfNeeds, ElfError> {
    let file = host_root.join(path.trim_start_matches('/'));
    let bytes = std::fs::read(&file).map_err(|cause| ElfError::Read {
        path: file.clone(),
        cause,
    })?;
    let elf = Elf::parse(&bytes).map_err(|e| ElfError::Parse {
        path: file.clone(),
        reason: e.to_string(),
    })?;
    let origin = Path::new(path).parent().unwrap_or(Path::new("/"));
    let paths = if elf.runpaths.is_empty() {
        &elf.rpaths
    } else {
        &elf.runpaths
    };
    let search_path = paths
        .iter()
        .flat_map(|p| p.split(':'))
        .filter(|p| !p.is_empty())
        .map(|p| p.replace("$ORIGIN", &origin.to_string_lossy()))
        .collect();
    Ok(ElfNeeds {
        interpreter: elf.interpreter.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        search_path,
        machine: elf.header.e_machine,
        is_64: elf.is_64,
    })
}
// ANCHOR_END: read_needs

/// True if the ELF file needs no loader and no libraries (a static binary).
pub fn is_static(needs: &ElfNeeds) -> bool {
    needs.interpreter.is_none() && needs.needed.is_empty()
}

/// The directories the loader searches after RUNPATH: those listed in
/// `/etc/ld.so.conf` (following `include` lines), then the trusted defaults.
pub fn loader_dirs(host_root: &Path) -> Vec<String> {
    let mut dirs = Vec::new();
    read_ld_so_conf(host_root, Path::new("/etc/ld.so.conf"), &mut dirs, 0);
    // The loader's built-in list: on Debian and Ubuntu it starts with the
    // multiarch directories (/lib/x86_64-linux-gnu, ...).
    let triple = format!("{}-linux-gnu", std::env::consts::ARCH);
    let defaults = [
        format!("/lib/{triple}"),
        format!("/usr/lib/{triple}"),
        "/lib64".into(),
        "/usr/lib64".into(),
        "/lib".into(),
        "/usr/lib".into(),
    ];
    for default in defaults {
        if !dirs.contains(&default) {
            dirs.push(default);
        }
    }
    dirs
}

fn read_ld_so_conf(host_root: &Path, conf: &Path, dirs: &mut Vec<String>, depth: u32) {
    let Ok(text) = std::fs::read_to_string(host_root.join(conf.strip_prefix("/").unwrap_or(conf)))
    else {
        return;
    };
    for line in text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
    {
        if let Some(pattern) = line.strip_prefix("include").map(str::trim) {
            if depth < 8 {
                for conf in glob_one_level(host_root, pattern) {
                    read_ld_so_conf(host_root, &conf, dirs, depth + 1);
                }
            }
        } else if line.starts_with('/') && !dirs.iter().any(|d| d == line) {
            dirs.push(line.to_string());
        }
    }
}

/// Expand `/etc/ld.so.conf.d/*.conf`: a `*` in the last component only, which
/// is all ld.so.conf files use. Sorted, as ldconfig reads them.
fn glob_one_level(host_root: &Path, pattern: &str) -> Vec<PathBuf> {
    let pattern = Path::new(pattern);
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return vec![];
    };
    let name = name.to_string_lossy();
    let (prefix, suffix) = name.split_once('*').unwrap_or((&name, ""));
    let host_dir = host_root.join(dir.strip_prefix("/").unwrap_or(dir));
    let mut found: Vec<PathBuf> = std::fs::read_dir(host_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with(prefix) && n.ends_with(suffix) && n.len() >= prefix.len() + suffix.len()
        })
        .filter(|n| name.contains('*') || *n == name)
        .map(|n| dir.join(n))
        .collect();
    found.sort();
    found
}

/// Find library `name` for a program with `needs`, as the loader would:
/// RUNPATH first, then `dirs`; skipping files of the wrong architecture.
// ANCHOR: find_library
pub fn find_library(
    host_root: &Path,
    name: &str,
    needs: &ElfNeeds,
    dirs: &[String],
) -> Option<String> {
    needs
        .search_path
        .iter()
        .chain(dirs)
        .map(|dir| format!("{}/{name}", dir.trim_end_matches('/')))
        .find(|candidate| {
            read_needs(host_root, candidate)
                .is_ok_and(|lib| lib.machine == needs.machine && lib.is_64 == needs.is_64)
        })
}
// ANCHOR_END: find_library

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ld_so_conf_includes_are_followed_in_order() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc/ld.so.conf.d");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            root.path().join("etc/ld.so.conf"),
            "include /etc/ld.so.conf.d/*.conf\n/opt/lib # comment\n",
        )
        .unwrap();
        std::fs::write(etc.join("b.conf"), "/usr/lib/b\n").unwrap();
        std::fs::write(etc.join("a.conf"), "# only a comment\n/usr/lib/a\n").unwrap();
        std::fs::write(etc.join("ignored.txt"), "/nope\n").unwrap();
        assert_eq!(
            loader_dirs(root.path())[..3],
            ["/usr/lib/a", "/usr/lib/b", "/opt/lib"]
        );
        assert!(loader_dirs(root.path()).ends_with(&["/lib".into(), "/usr/lib".into()]));
    }

    #[test]
    fn a_host_program_needs_its_loader_and_libc() {
        // /bin/sh is dynamically linked on every distribution we support.
        let needs = read_needs(Path::new("/"), "/bin/sh").unwrap();
        if is_static(&needs) {
            return; // a static shell needs nothing: nothing to check
        }
        assert!(needs.interpreter.as_deref().unwrap().contains("ld-"));
        assert!(needs.needed.iter().any(|l| l.starts_with("libc.so")));
        let dirs = loader_dirs(Path::new("/"));
        let libc = needs
            .needed
            .iter()
            .find(|l| l.starts_with("libc.so"))
            .unwrap();
        assert!(find_library(Path::new("/"), libc, &needs, &dirs).is_some());
    }

    #[test]
    fn non_elf_files_are_refused_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("script"), "#!/bin/sh\n").unwrap();
        let err = read_needs(dir.path(), "/script").unwrap_err();
        assert!(err.to_string().contains("script: not an ELF file"), "{err}");
    }
}
