//! The engine runs from a copy of itself that no one can write: the fix for
//! CVE-2019-5736.
//!
//! Kernel feature: `/proc/PID/exe` is a magic link to the program a process
//! runs, and it works across mount namespaces. A container process that
//! gets the engine to run *in* it (`exec` into a container whose program is
//! a script starting `#!/proc/self/exe`: the kernel runs the engine binary
//! again, now as the container's process) can open `/proc/PID/exe`, wait
//! for the engine to exit, and write the host's engine binary through that
//! descriptor. The next `run` on the host runs the container's code as root.
//! That is how runc was broken in 2019.
//!
//! The fix, as runc's: before a `run` or `exec` does anything, the engine
//! re-executes itself from a file that cannot be written, so that every
//! `/proc/PID/exe` the container could ever reach names that file, not the
//! binary on the host's disk:
//!
//! 1. as root, a **read-only bind mount** of the binary, detached (in no
//!    mount namespace at all, so nobody can remount it read-write), made
//!    with `open_tree(2)` and `mount_setattr(2)`: no copy, a few system
//!    calls (runc 1.2 mounts an overlayfs for the same effect);
//! 2. where mounting is not allowed (rootless), a **sealed memfd** copy:
//!    `memfd_create(2)` with `MFD_ALLOW_SEALING`, the binary copied in, then
//!    `F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`, after
//!    which no one, root included, can change a byte (runc 1.0's way).
//!
//! Then `execveat(2)` of that descriptor with the same arguments. The
//! re-executed engine sees that its `/proc/self/exe` is on a read-only
//! mount or is a sealed memfd, and goes on; an environment variable marks
//! the re-exec so that a failure can never loop.
//!
//! Man pages: proc_pid_exe(5), open_tree(2), mount_setattr(2),
//! memfd_create(2), fcntl(2) ("File Sealing"), execveat(2).

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, OFlag, SealFlag, fcntl, open};
use nix::libc;
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{FsFlags, fstatvfs};
use nix::unistd::execveat;

/// Set in the environment of the re-executed engine (and removed at once).
pub const MARKER: &str = "_BERTH_SEALED_EXE";

/// The seals that make a memfd unwritable for good.
const SEALS: SealFlag = SealFlag::F_SEAL_SEAL
    .union(SealFlag::F_SEAL_SHRINK)
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_WRITE);

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("protect the engine binary (CVE-2019-5736): {step}: {errno}")]
    Syscall { step: &'static str, errno: Errno },
    #[error(
        "protect the engine binary (CVE-2019-5736): re-executed, but /proc/self/exe is still writable; refusing to start a container"
    )]
    StillWritable,
}

fn fail(step: &'static str) -> impl Fn(Errno) -> SealError {
    move |errno| SealError::Syscall { step, errno }
}

/// How the running engine's binary is protected, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// On a read-only mount (our detached bind, or a read-only /usr).
    ReadOnlyMount,
    /// A memfd with the write seals.
    SealedMemfd,
}

/// How `/proc/self/exe` is protected now, or `None` if it is writable.
pub fn protection() -> Result<Option<Protection>, SealError> {
    let exe = open(
        c"/proc/self/exe",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail("open /proc/self/exe"))?;
    Ok(protection_of(exe.as_fd()))
}

fn protection_of(exe: BorrowedFd) -> Option<Protection> {
    // A regular file answers F_GET_SEALS with EINVAL.
    if let Ok(seals) = fcntl(exe, FcntlArg::F_GET_SEALS)
        && SealFlag::from_bits_truncate(seals).contains(SEALS)
    {
        return Some(Protection::SealedMemfd);
    }
    match fstatvfs(exe) {
        Ok(st) if st.flags().contains(FsFlags::ST_RDONLY) => Some(Protection::ReadOnlyMount),
        _ => None,
    }
}

// ANCHOR: ensure_sealed
/// Make sure the engine runs from an unwritable binary: return if it does,
/// otherwise re-execute it from one (this call then never returns). Call it
/// first thing in `run` and `exec`, before anything is created.
pub fn ensure_sealed() -> Result<Protection, SealError> {
    let reexecuted = std::env::var_os(MARKER).is_some();
    if reexecuted {
        // SAFETY: called at the start of a command, before the engine
        // starts any thread; nothing reads the environment concurrently.
        unsafe { std::env::remove_var(MARKER) };
    }
    if let Some(protection) = protection()? {
        return Ok(protection);
    }
    if reexecuted {
        return Err(SealError::StillWritable);
    }
    // 1. A read-only, detached bind mount of the binary (needs
    //    CAP_SYS_ADMIN); 2. otherwise a sealed copy in memory.
    let exe = match read_only_clone(c"/proc/self/exe") {
        Ok(fd) => fd,
        Err(_) => sealed_copy()?,
    };
    // 3. Run it, with our own arguments and environment, plus the marker.
    reexec(exe.as_fd())
}
// ANCHOR_END: ensure_sealed

/// `open_tree(path, OPEN_TREE_CLONE)`: a bind mount of the binary that
/// belongs to no mount namespace; then `mount_setattr` read-only.
// ANCHOR: read_only_clone
fn read_only_clone(path: &std::ffi::CStr) -> Result<OwnedFd, SealError> {
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    // SAFETY: open_tree(2) with a NUL-terminated path; it returns a new
    // descriptor we take ownership of, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    let fd = Errno::result(fd).map_err(fail("open_tree the engine binary"))?;
    // SAFETY: open_tree returned a descriptor nobody else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr(2) on our descriptor, with an empty path and a
    // pointer to a mount_attr of the size we pass.
    let set = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(set).map_err(fail("mount_setattr read-only"))?;
    Ok(tree)
}
// ANCHOR_END: read_only_clone

/// The binary copied into a memfd, sealed against every change.
// ANCHOR: sealed_copy
fn sealed_copy() -> Result<OwnedFd, SealError> {
    let exe = open(
        c"/proc/self/exe",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail("open /proc/self/exe"))?;
    let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) says so explicitly, where vm.memfd_noexec would
    // otherwise make the copy unexecutable; older kernels refuse the flag.
    let memfd = memfd_create(
        c"berth-engine",
        flags | MFdFlags::from_bits_retain(libc::MFD_EXEC),
    )
    .or_else(|_| memfd_create(c"berth-engine", flags))
    .map_err(fail("memfd_create"))?;
    let mut from = std::fs::File::from(exe);
    let mut to = std::fs::File::from(memfd);
    // std::io::copy uses copy_file_range(2) or sendfile(2) here.
    std::io::copy(&mut from, &mut to).map_err(|e| SealError::Syscall {
        step: "copy the engine into a memfd",
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    let memfd = OwnedFd::from(to);
    fcntl(memfd.as_fd(), FcntlArg::F_ADD_SEALS(SEALS)).map_err(fail("seal the memfd"))?;
    Ok(memfd)
}
// ANCHOR_END: sealed_copy

/// `execveat(exe, "", argv, envp + MARKER, AT_EMPTY_PATH)`.
fn reexec(exe: BorrowedFd) -> Result<Protection, SealError> {
    let cstring = |s: OsString| CString::new(s.into_vec()).ok();
    let args: Vec<CString> = std::env::args_os().filter_map(cstring).collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstring(kv)
        })
        .collect();
    env.push(CString::new(format!("{MARKER}=1")).unwrap_or_default());
    let errno = match execveat(exe, c"", &args, &env, AtFlags::AT_EMPTY_PATH) {
        Err(errno) => errno,
        Ok(never) => match never {},
    };
    Err(SealError::Syscall {
        step: "execveat the protected engine",
        errno,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_copy_cannot_be_written_or_resized() {
        let memfd = sealed_copy().unwrap();
        assert_eq!(protection_of(memfd.as_fd()), Some(Protection::SealedMemfd));
        // Reopened for writing through /proc, as an attacker would.
        let path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
        let reopened = std::fs::OpenOptions::new().write(true).open(&path);
        let writable = reopened.and_then(|mut f| {
            use std::io::Write;
            f.write_all(b"\x7fELF evil")
        });
        assert_eq!(writable.unwrap_err().raw_os_error(), Some(libc::EPERM));
        let grown = nix::unistd::ftruncate(memfd.as_fd(), 1);
        assert_eq!(grown, Err(Errno::EPERM));
    }

    #[test]
    fn a_read_only_clone_refuses_writes() {
        if !berth_test_support::require_root("a_read_only_clone_refuses_writes (open_tree)") {
            return;
        }
        // A copy of a binary that nothing runs (the running one would
        // answer ETXTBSY before EROFS; an attacker waits until it exits).
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("engine");
        std::fs::copy("/proc/self/exe", &copy).unwrap();
        let path = CString::new(copy.to_str().unwrap()).unwrap();
        let tree = read_only_clone(&path).unwrap();
        assert_eq!(protection_of(tree.as_fd()), Some(Protection::ReadOnlyMount));
        let path = format!("/proc/self/fd/{}", tree.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    }

    #[test]
    fn the_test_binary_itself_is_writable() {
        // The check is not always "protected": cargo's test binary is not.
        assert_eq!(protection().unwrap(), None);
    }
}
