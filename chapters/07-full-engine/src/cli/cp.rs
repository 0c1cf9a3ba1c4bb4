//! `cp`: files between a container and the host, as tar streams.
//!
//! A container's files are the container's: a symlink in them means what
//! it means *inside* (`/etc/passwd -> /x` is the container's `/x`). A copy
//! that followed it on the host would read or write the host's files, as
//! `docker cp` once did (CVE-2018-15664, CVE-2019-14271). So the container's
//! side of every copy happens in a helper process (this same binary, run
//! as `berth container cp-helper`) that first `chroot(2)`s into the
//! container's root: `/proc/PID/root` of a running container, which shows
//! its volumes and binds too, or the overlay mounted for the time of the
//! copy. Inside, every path resolves in the container, however its links
//! point. The host's side is an ordinary tar stream: written from the host
//! path, or unpacked with the tar crate, which refuses entries that climb
//! out of the destination (`..`, absolute names, links).
//!
//! docker's rules for where things land: into an existing directory under
//! the source's own name; to a path that does not exist under that name;
//! a source ending in `/.` copies a directory's content, not the directory.
//!
//! Man pages: chroot(2), proc(5) (`/proc/PID/root`), tar(5).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::{Args, Subcommand};

use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::record::Status;

/// The arguments of `cp`.
#[derive(Args, Debug, Clone)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH (`-`: a tar stream on stdin)
    pub source: String,
    /// DEST_PATH or CONTAINER:DEST_PATH (`-`: a tar stream on stdout)
    pub destination: String,
}

/// The helper's work, inside the container's root.
#[derive(Subcommand, Debug, Clone)]
pub enum CpHelper {
    /// Print what PATH is: `dir`, `file` or `none`.
    Stat { root: PathBuf, path: String },
    /// Write PATH as a tar on stdout, its top entry named NAME (or its
    /// content, with `--contents`).
    Out {
        root: PathBuf,
        path: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        follow: bool,
    },
    /// Unpack the tar on stdin into the directory DIR.
    In {
        root: PathBuf,
        dir: String,
        #[arg(long)]
        keep_owners: bool,
    },
}

/// `CONTAINER:PATH`, or a host path (a `:` after a `/` is part of a path,
/// as docker reads it: `./a:b` is local).
fn split_container(arg: &str) -> Option<(&str, &str)> {
    let (container, path) = arg.split_once(':')?;
    (!container.is_empty() && !container.contains('/')).then_some((container, path))
}

fn fail(message: impl Into<String>) -> Failure {
    Failure::new(message, 1)
}

/// `cp`.
pub fn cp(engine: &Engine, args: &CpArgs) -> Outcome {
    match (
        split_container(&args.source),
        split_container(&args.destination),
    ) {
        (Some(_), Some(_)) => Err(fail(
            "copying between containers is not supported: copy to the host first",
        )),
        (None, None) => Err(fail(
            "must specify at least one container source: use CONTAINER:PATH",
        )),
        (Some((container, path)), None) => {
            copy_out(engine, container, path, &args.destination, args)
        }
        (None, Some((container, path))) => copy_in(engine, &args.source, container, path, args),
    }
}

/// The container's root as the helper should see it, and what to undo
/// after: a stopped container's overlay, mounted for the copy.
struct ContainerRoot<'e> {
    path: PathBuf,
    unmount: Option<(&'e Engine, String)>,
    _lock: Option<crate::engine::record::ContainerLock>,
}

impl Drop for ContainerRoot<'_> {
    fn drop(&mut self) {
        if let Some((engine, id)) = self.unmount.take() {
            let _ = engine.unmount_rootfs(&id);
        }
    }
}

fn container_root<'e>(engine: &'e Engine, text: &str) -> Result<ContainerRoot<'e>, Failure> {
    let c = engine.container(text)?;
    if matches!(c.state.status, Status::Running | Status::Paused) && c.state.pid > 0 {
        return Ok(ContainerRoot {
            path: PathBuf::from(format!("/proc/{}/root", c.state.pid)),
            unmount: None,
            _lock: None,
        });
    }
    let (path, mounted_now, lock) = engine.mount_rootfs(&c.id)?;
    Ok(ContainerRoot {
        path,
        unmount: mounted_now.then(|| (engine, c.id.clone())),
        _lock: Some(lock),
    })
}

/// This binary, as the helper, for `root`.
fn helper(args: &[&str]) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let mut cmd = Command::new(exe);
    cmd.args(["container", "cp-helper"]).args(args);
    cmd
}

/// What `path` is in the container: "dir", "file" or "none".
fn stat_in(root: &Path, path: &str) -> Result<String, Failure> {
    let root = root.to_string_lossy();
    let out = helper(&["stat", &root, path])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| fail(format!("run the copy helper: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!("could not look up {path} in the container")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The last component of `path` (`.` for a path ending in `/.`).
fn base_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    Path::new(trimmed)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into())
}

fn copy_out(engine: &Engine, container: &str, src: &str, dest: &str, args: &CpArgs) -> Outcome {
    let root = container_root(engine, container)?;
    let kind = stat_in(&root.path, src)?;
    if kind == "none" {
        return Err(fail(format!(
            "Could not find the file {src} in container {container}"
        )));
    }
    let contents = src.ends_with("/.");
    let to_stdout = dest == "-";
    // Where the tar is unpacked, and the name its top entry gets.
    let (into, name) = if to_stdout {
        (PathBuf::new(), base_name(src))
    } else {
        let dest_path = Path::new(dest);
        match dest_path.symlink_metadata() {
            Ok(meta) if meta.is_dir() => (dest_path.to_path_buf(), base_name(src)),
            Ok(_) if kind == "dir" => {
                return Err(fail(format!(
                    "cannot copy directory: destination {dest} is a file"
                )));
            }
            _ if dest.ends_with('/') => {
                return Err(fail(format!("destination directory {dest} does not exist")));
            }
            _ => {
                let parent = dest_path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                if !parent.is_dir() {
                    return Err(fail(format!(
                        "destination directory {} does not exist",
                        parent.display()
                    )));
                }
                (parent.to_path_buf(), base_name(dest))
            }
        }
    };
    let root_text = root.path.to_string_lossy().into_owned();
    let mut helper_args = vec!["out", &root_text, src];
    let top = if contents && !to_stdout && Path::new(dest).is_dir() {
        None // the directory's content straight into DEST
    } else {
        Some(name)
    };
    if let Some(top) = &top {
        helper_args.extend(["--name", top]);
    }
    if args.follow_link {
        helper_args.push("--follow");
    }
    let mut child = helper(&helper_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| fail(format!("run the copy helper: {e}")))?;
    let mut stream = child.stdout.take().expect("piped stdout");
    let copied = if to_stdout {
        std::io::copy(&mut stream, &mut std::io::stdout().lock())
            .map(|_| ())
            .map_err(|e| e.to_string())
    } else {
        unpack_on_host(&mut stream, &into, args.archive)
    };
    drop(stream);
    let status = child.wait().map_err(|e| fail(e.to_string()))?;
    copied.map_err(|e| fail(format!("copy {src} to {dest}: {e}")))?;
    if !status.success() {
        return Err(fail(format!("copy {src} out of the container failed")));
    }
    Ok(0)
}

/// Unpack a tar from the container into `into` on the host; entries that
/// would land outside `into` are refused by the tar crate.
fn unpack_on_host(stream: &mut dyn Read, into: &Path, keep_owners: bool) -> Result<(), String> {
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(keep_owners);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let name = entry.path().map_err(|e| e.to_string())?.into_owned();
        if !entry.unpack_in(into).map_err(|e| e.to_string())? {
            return Err(format!(
                "refused {}: it would land outside {}",
                name.display(),
                into.display()
            ));
        }
    }
    Ok(())
}

fn copy_in(engine: &Engine, src: &str, container: &str, dest: &str, args: &CpArgs) -> Outcome {
    let root = container_root(engine, container)?;
    let kind = stat_in(&root.path, dest)?;
    let root_text = root.path.to_string_lossy().into_owned();
    // The tar to send, and the container directory it is unpacked in.
    let (dir, tar): (String, Vec<u8>) = if src == "-" {
        if kind != "dir" {
            return Err(fail(format!(
                "destination \"{container}:{dest}\" must be a directory"
            )));
        }
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("read the tar on stdin: {e}")))?;
        (dest.to_string(), bytes)
    } else {
        let src_path = Path::new(src);
        let meta = src_path
            .symlink_metadata()
            .map_err(|e| fail(format!("stat {src}: {e}")))?;
        let (dir, name, contents) = match kind.as_str() {
            "dir" if src.ends_with("/.") => (dest.to_string(), String::new(), true),
            "dir" => (dest.to_string(), base_name(src), false),
            "file" if meta.is_dir() => {
                return Err(fail(format!(
                    "cannot copy directory: destination {container}:{dest} is a file"
                )));
            }
            _ if dest.ends_with('/') => {
                return Err(fail(format!(
                    "destination directory {container}:{dest} does not exist"
                )));
            }
            _ => {
                let parent = Path::new(dest)
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/".into());
                (parent, base_name(dest), false)
            }
        };
        let tar = host_tar(src_path, &name, contents, args.follow_link)
            .map_err(|e| fail(format!("read {src}: {e}")))?;
        (dir, tar)
    };
    let mut helper_args = vec!["in", root_text.as_str(), dir.as_str()];
    if args.archive {
        helper_args.push("--keep-owners");
    }
    let mut child = helper(&helper_args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("run the copy helper: {e}")))?;
    let sent = child.stdin.take().expect("piped stdin").write_all(&tar);
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() || sent.is_err() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(fail(format!("copy {src} into {container}:{dest}: {why}")));
    }
    Ok(0)
}

/// A tar of the host's `src`, its top entry named `name` (or its content,
/// for a directory and `contents`).
fn host_tar(src: &Path, name: &str, contents: bool, follow: bool) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(follow);
    let meta = if follow {
        src.metadata()?
    } else {
        src.symlink_metadata()?
    };
    if meta.is_dir() {
        tar.append_dir_all(if contents { "." } else { name }, src)?;
    } else {
        tar.append_path_with_name(src, name)?;
    }
    tar.into_inner()
}

/// `container cp-helper`: chroot into the container's root, then do one
/// side of a copy there. Run by `cp` only.
pub fn cp_helper(command: &CpHelper) -> i32 {
    let root = match command {
        CpHelper::Stat { root, .. } | CpHelper::Out { root, .. } | CpHelper::In { root, .. } => {
            root
        }
    };
    // 1. Into the container's root: from here on, every path (and every
    //    symlink in one) resolves inside it.
    if let Err(e) = nix::unistd::chroot(root).and_then(|()| nix::unistd::chdir("/")) {
        eprintln!("chroot {}: {e}", root.display());
        return 1;
    }
    // 2. One side of the copy.
    let result = match command {
        CpHelper::Stat { path, .. } => {
            let kind = match Path::new(path).metadata() {
                Ok(m) if m.is_dir() => "dir",
                Ok(_) => "file",
                Err(_) => "none",
            };
            println!("{kind}");
            Ok(())
        }
        CpHelper::Out {
            path, name, follow, ..
        } => tar_out(Path::new(path), name.as_deref(), *follow),
        CpHelper::In {
            dir, keep_owners, ..
        } => unpack_in(Path::new(dir), *keep_owners),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn tar_out(path: &Path, name: Option<&str>, follow: bool) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut tar = tar::Builder::new(stdout.lock());
    tar.follow_symlinks(follow);
    let meta = if follow {
        path.metadata()?
    } else {
        path.symlink_metadata()?
    };
    match name {
        Some(name) if meta.is_dir() => tar.append_dir_all(name, path)?,
        Some(name) => tar.append_path_with_name(path, name)?,
        None => tar.append_dir_all(".", path)?,
    }
    tar.finish()
}

fn unpack_in(dir: &Path, keep_owners: bool) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(std::io::stdin().lock());
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(keep_owners);
    archive.set_overwrite(true);
    archive.unpack(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_told_from_host_paths_as_docker_does() {
        assert_eq!(
            split_container("web:/etc/hosts"),
            Some(("web", "/etc/hosts"))
        );
        assert_eq!(split_container("/tmp/a:b"), None);
        assert_eq!(split_container("./a:b"), None);
        assert_eq!(split_container("plain"), None);
        assert_eq!(split_container(":/x"), None);
        assert_eq!(base_name("/etc/app/"), "app");
        assert_eq!(base_name("/"), ".");
    }
}
