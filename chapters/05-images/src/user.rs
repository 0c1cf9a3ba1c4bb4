//! Who the container's process runs as: the image config's `User`, turned
//! into numbers with the image's own `/etc/passwd` and `/etc/group`.
//!
//! The kernel knows users only as numbers: setresuid(2) takes a uid,
//! setgroups(2) a list of gids. Names are a convention of the files
//! `/etc/passwd` (`name:x:uid:gid:gecos:home:shell`, passwd(5)) and
//! `/etc/group` (`name:x:gid:member,member`, group(5)), and the files that
//! count are the *image's*: `alice` may be 1000 on the host and 70 in the
//! image. So an engine reads them from the image before it starts the
//! process, as runc does (libcontainer/user, `GetExecUser`), with these
//! rules for the config's `User` (OCI image-spec config.md):
//!
//! - `name` or `uid`: the user's uid, primary gid and home from its passwd
//!   line; its supplementary groups are every group of `/etc/group` that
//!   lists it as a member. A number is always a uid, even if some user is
//!   called `1000`; a uid with no passwd line is still fine (gid 0, home
//!   `/`), a name with none is an error.
//! - `name:group`, `uid:gid`, `name:gid`, `uid:group`: the same, but the
//!   group is given, so it is the primary gid and there are no
//!   supplementary groups. A gid needs no line in `/etc/group`; a group
//!   name does.
//! - ids go from 0 to 2^31-1, as in runc.
//!
//! The home directory becomes `HOME` when the image's environment sets none.
//!
//! **Reading a file from layers without mounting them.** The image is a
//! stack of unpacked layer directories; the container's filesystem does not
//! exist yet. [`read_image_file`] looks a path up as overlayfs would: the
//! top layer that has an entry for it wins; a whiteout (a 0/0 character
//! device) deletes it, a directory marked opaque (`trusted.overlay.opaque`
//! or `user.overlay.opaque` = `y`) hides what the layers below hold inside
//! it, and a non-directory hides the directories of the same name below.
//! Symlinks are resolved by us, one component at a time, inside the image:
//! every step is an openat(2) of one name relative to a directory already
//! open in a layer, with O_NOFOLLOW, and `..` at the image's root stays at
//! the root (what openat2(2)'s RESOLVE_IN_ROOT does in one layer). So an
//! image whose `/etc/passwd` is a link to `/../../../etc/shadow` reads the
//! image's `/etc/shadow`, never the host's.
//!
//! Man pages: passwd(5), group(5), setgroups(2), openat(2), openat2(2),
//! symlink(7), xattr(7); the kernel's Documentation/filesystems/overlayfs.rst.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use ch01_chroot::process::User;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstatat};

/// The largest uid or gid an image may ask for (runc's limit: 2^31-1).
pub const MAX_ID: u64 = i32::MAX as u64;

/// `/etc/passwd` or `/etc/group` over this size is refused, not read.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// How many symlinks one lookup may follow (Linux's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// The xattrs overlayfs marks an opaque directory with.
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user {0} not found in the image's /etc/passwd")]
    UserNotFound(String),
    #[error("group {0} not found in the image's /etc/group")]
    GroupNotFound(String),
    #[error("user {spec:?}: {id} is out of range: user and group ids go from 0 to 2147483647")]
    OutOfRange { spec: String, id: String },
    #[error("user {0:?}: not a user: write NAME, UID, NAME:GROUP or UID:GID")]
    BadSpec(String),
    #[error("{path} in the image: too many levels of symbolic links")]
    SymlinkLoop { path: String },
    #[error("{path} in the image is not a regular file")]
    NotAFile { path: String },
    #[error("{path} in the image is over {limit} bytes: refusing to read it")]
    TooLarge { path: String, limit: u64 },
    #[error("read {path} in the image (layer {layer}): {cause}")]
    Read {
        path: String,
        layer: PathBuf,
        cause: io::Error,
    },
}

/// One line of `/etc/passwd` (passwd(5)), the fields an engine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One line of `/etc/group` (group(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    /// The users for whom this is a supplementary group.
    pub members: Vec<String>,
}

/// A user spec resolved to numbers: what the process gets (OCI runtime
/// spec: `process.user`), and its home directory for `HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

impl ExecUser {
    /// The identity chapter 1's exec step takes on.
    pub fn user(&self) -> User {
        User {
            uid: self.uid,
            gid: self.gid,
            additional_gids: self.additional_gids.clone(),
        }
    }
}

/// The lines of a colon-separated file worth reading: not empty, not a
/// comment, not an NIS `+`/`-` entry.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', '+', '-']))
        .map(|l| l.split(':').collect())
}

/// The entries of an `/etc/passwd`; lines without numeric ids are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    records(text)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// The entries of an `/etc/group`; lines without a numeric gid are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    records(text)
        .filter_map(|f| {
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .unwrap_or(&"")
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// `Some(id)` if `text` is a number (then it is always an id, never a
/// name), or an error if that number is out of range.
fn numeric(spec: &str, text: &str) -> Result<Option<u32>, UserError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(n) if n <= MAX_ID => Ok(Some(n as u32)),
        _ => Err(UserError::OutOfRange {
            spec: spec.to_string(),
            id: text.to_string(),
        }),
    }
}

// ANCHOR: resolve_user
/// Resolve a `User` spec (`name`, `uid`, `name:group`, `uid:gid`...) with
/// the image's passwd and group entries, by runc's rules (see the module
/// documentation).
pub fn resolve_user(
    spec: &str,
    passwd: &[PasswdEntry],
    group: &[GroupEntry],
) -> Result<ExecUser, UserError> {
    // 1. USER[:GROUP]; an empty USER means root, as in runc.
    let (user_part, group_part) = split_user_spec(spec)?;
    // 2. The user: a number is a uid, looked up for its gid and home but
    //    fine without a passwd line; a name must have one.
    let (mut user, entry) = look_up_user(spec, user_part, passwd)?;
    // 3. The groups: an explicit group replaces the primary gid and brings
    //    no supplementary groups; otherwise the user's memberships do.
    apply_groups(&mut user, spec, group_part, entry, group)?;
    Ok(user)
}
// ANCHOR_END: resolve_user

// ANCHOR: split_user_spec
/// Split a `User` spec into its user and its group: `USER[:GROUP]`, with
/// an empty group the same as none and a second `:` an error.
fn split_user_spec(spec: &str) -> Result<(&str, Option<&str>), UserError> {
    match spec.split_once(':') {
        Some((_, g)) if g.contains(':') => Err(UserError::BadSpec(spec.to_string())),
        Some((u, g)) => Ok((u, Some(g).filter(|g| !g.is_empty()))),
        None => Ok((spec, None)),
    }
}
// ANCHOR_END: split_user_spec

// ANCHOR: look_up_user
/// The user part of a spec as an [`ExecUser`] with its uid, primary gid
/// and home, and the passwd line it came from if any: a number is a uid,
/// looked up but fine without a line (gid 0, home `/`); a name must have
/// one; an empty name is root.
fn look_up_user<'a>(
    spec: &str,
    user_part: &str,
    passwd: &'a [PasswdEntry],
) -> Result<(ExecUser, Option<&'a PasswdEntry>), UserError> {
    let entry = match numeric(spec, user_part)? {
        Some(uid) => passwd.iter().find(|e| e.uid == uid),
        None if user_part.is_empty() => passwd.iter().find(|e| e.uid == 0),
        None => Some(
            passwd
                .iter()
                .find(|e| e.name == user_part)
                .ok_or_else(|| UserError::UserNotFound(user_part.to_string()))?,
        ),
    };
    let user = match entry {
        Some(e) => ExecUser {
            uid: e.uid,
            gid: e.gid,
            additional_gids: vec![],
            home: e.home.clone(),
        },
        None => ExecUser {
            uid: numeric(spec, user_part)?.unwrap_or(0),
            gid: 0,
            additional_gids: vec![],
            home: "/".to_string(),
        },
    };
    Ok((user, entry))
}
// ANCHOR_END: look_up_user

// ANCHOR: apply_groups
/// Set the user's groups: an explicit group (a gid, or a name of the
/// image's `/etc/group`) replaces the primary gid and brings no
/// supplementary groups; otherwise every group listing the user as a
/// member is a supplementary group, each once.
fn apply_groups(
    user: &mut ExecUser,
    spec: &str,
    group_part: Option<&str>,
    entry: Option<&PasswdEntry>,
    group: &[GroupEntry],
) -> Result<(), UserError> {
    match group_part {
        Some(g) => {
            user.gid = match numeric(spec, g)? {
                Some(gid) => gid,
                None => {
                    group
                        .iter()
                        .find(|e| e.name == g)
                        .ok_or_else(|| UserError::GroupNotFound(g.to_string()))?
                        .gid
                }
            };
        }
        None => {
            if let Some(e) = entry {
                for g in group.iter().filter(|g| g.members.contains(&e.name)) {
                    if !user.additional_gids.contains(&g.gid) {
                        user.additional_gids.push(g.gid);
                    }
                }
            }
        }
    }
    Ok(())
}
// ANCHOR_END: apply_groups

// ANCHOR: apply_image_env
/// The environment of a container's process: the image's `Env` over
/// `env`, then the user's home directory as `HOME` unless the image's `Env`
/// sets one. An image entry replaces the entry of `env` with the same name
/// where it stands, or is appended (docker's rule, so `PATH` stays first).
pub fn apply_image_env(env: &mut Vec<String>, image_env: &[String], user: Option<&ExecUser>) {
    let name = |kv: &str| kv.split('=').next().unwrap_or_default().to_string();
    for kv in image_env {
        match env.iter_mut().find(|e| name(e) == name(kv)) {
            Some(entry) => *entry = kv.clone(),
            None => env.push(kv.clone()),
        }
    }
    let image_home = image_env.iter().any(|kv| name(kv) == "HOME");
    if let Some(user) = user
        && !image_home
    {
        env.retain(|e| name(e) != "HOME");
        env.push(format!("HOME={}", user.home));
    }
}
// ANCHOR_END: apply_image_env

/// Resolve `spec` with the `/etc/passwd` and `/etc/group` of the image
/// whose unpacked layers are `layers` (bottom first). A missing file counts
/// as an empty one.
pub fn resolve_user_in_layers(layers: &[PathBuf], spec: &str) -> Result<ExecUser, UserError> {
    let image = ImageFs::open(layers)?;
    let text = |path: &str| -> Result<String, UserError> {
        let bytes = image.read(path)?.unwrap_or_default();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let passwd = parse_passwd(&text("/etc/passwd")?);
    let group = parse_group(&text("/etc/group")?);
    resolve_user(spec, &passwd, &group)
}

/// The content of the file at the absolute `path` in the image whose
/// unpacked layers are `layers` (bottom first), or `None` if the image has
/// no such file. See the module documentation for how the lookup works.
pub fn read_image_file(layers: &[PathBuf], path: &str) -> Result<Option<Vec<u8>>, UserError> {
    ImageFs::open(layers)?.read(path)
}

/// What a path is in the union of the layers.
#[derive(Debug)]
enum Entry {
    Missing,
    Dir,
    /// A regular file, found in the layer with this index (top first).
    File(usize),
    Symlink(OsString),
    /// A device, a FIFO or a socket: nothing to read a user from.
    Other,
}

/// What one layer holds at one name.
enum Kind {
    Whiteout,
    Dir,
    File,
    Symlink,
    Other,
}

/// The layers of an image, each opened once, top first.
struct ImageFs {
    layers: Vec<(PathBuf, File)>,
}

/// The components of a path, without empty ones (`a//b`, a trailing `/`).
fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| OsStr::from_bytes(c).to_os_string())
}

/// Open the directory `name` in `dir`, never following a symlink.
fn open_dir(dir: &File, name: &OsStr) -> Result<File, Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(dir, name, flags, Mode::empty()).map(File::from)
}

/// What `dir` holds at `name` (lstat: a symlink is a symlink), `None` if
/// nothing.
fn classify(dir: &File, name: &OsStr) -> Result<Option<Kind>, Errno> {
    let stat = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    Ok(Some(if kind == SFlag::S_IFCHR && stat.st_rdev == 0 {
        Kind::Whiteout
    } else if kind == SFlag::S_IFDIR {
        Kind::Dir
    } else if kind == SFlag::S_IFREG {
        Kind::File
    } else if kind == SFlag::S_IFLNK {
        Kind::Symlink
    } else {
        Kind::Other
    }))
}

/// Whether an open directory is marked opaque. Only `y` counts (newer
/// kernels write `x` for "holds xattr whiteouts"); no xattr, no xattr
/// support, or `trusted.*` hidden from a normal user all mean "no".
fn is_opaque(dir: &File) -> bool {
    use xattr::FileExt;
    OPAQUE_XATTRS
        .iter()
        .any(|name| matches!(dir.get_xattr(name), Ok(Some(v)) if v == b"y"))
}

impl ImageFs {
    fn open(layers: &[PathBuf]) -> Result<ImageFs, UserError> {
        let mut open = Vec::new();
        for layer in layers.iter().rev() {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            let fd =
                nix::fcntl::open(layer, flags, Mode::empty()).map_err(|e| UserError::Read {
                    path: "/".to_string(),
                    layer: layer.clone(),
                    cause: e.into(),
                })?;
            open.push((layer.clone(), File::from(fd)));
        }
        Ok(ImageFs { layers: open })
    }

    // ANCHOR: lookup
    /// What `path` (resolved directory names and a last name, no `.`, `..`
    /// or symlinks before the last) is in the union: the top layer with an
    /// entry decides, unless something above hid the lower layers.
    fn lookup(&self, path: &[OsString], shown: &str) -> Result<Entry, UserError> {
        let Some((last, dirs)) = path.split_last() else {
            return Ok(Entry::Dir);
        };
        'layers: for (i, (layer_path, root)) in self.layers.iter().enumerate() {
            let err = |e: Errno| UserError::Read {
                path: shown.to_string(),
                layer: layer_path.clone(),
                cause: e.into(),
            };
            let mut dir = root.try_clone().map_err(|e| UserError::Read {
                path: shown.to_string(),
                layer: layer_path.clone(),
                cause: e,
            })?;
            // Set once a directory on the way is opaque: nothing below
            // this layer shows through it.
            let mut opaque = false;
            for name in dirs {
                match classify(&dir, name).map_err(err)? {
                    None if opaque => return Ok(Entry::Missing),
                    None => continue 'layers,
                    Some(Kind::Dir) => {
                        dir = open_dir(&dir, name).map_err(err)?;
                        opaque |= is_opaque(&dir);
                    }
                    // A whiteout deletes the directory; a file, symlink or
                    // device in its place hides the directories below too.
                    Some(_) => return Ok(Entry::Missing),
                }
            }
            return Ok(match classify(&dir, last).map_err(err)? {
                None if opaque => Entry::Missing,
                None => continue 'layers,
                Some(Kind::Whiteout) => Entry::Missing,
                Some(Kind::Dir) => Entry::Dir,
                Some(Kind::File) => Entry::File(i),
                Some(Kind::Symlink) => {
                    Entry::Symlink(readlinkat(&dir, last.as_os_str()).map_err(err)?)
                }
                Some(Kind::Other) => Entry::Other,
            });
        }
        Ok(Entry::Missing)
    }
    // ANCHOR_END: lookup

    // ANCHOR: resolve_in_image
    /// Resolve the absolute `path` to a regular file: the layer it is in
    /// and its directory names there, or `None` if the image has no such
    /// file. Symlinks are followed inside the image only: an absolute
    /// target starts again at the image's root, and `..` there stays put.
    fn resolve(&self, path: &str) -> Result<Option<(usize, Vec<OsString>)>, UserError> {
        let mut todo: VecDeque<OsString> = components(path.as_bytes()).collect();
        let mut at: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            if name == "." {
                continue;
            }
            if name == ".." {
                at.pop();
                continue;
            }
            at.push(name);
            match self.lookup(&at, path)? {
                Entry::Missing => return Ok(None),
                Entry::Dir => {}
                Entry::File(layer) if todo.is_empty() => return Ok(Some((layer, at))),
                Entry::File(_) => return Ok(None),
                Entry::Symlink(target) => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(UserError::SymlinkLoop {
                            path: path.to_string(),
                        });
                    }
                    at.pop();
                    if target.as_bytes().starts_with(b"/") {
                        at.clear();
                    }
                    for c in components(target.as_bytes()).rev() {
                        todo.push_front(c);
                    }
                }
                Entry::Other => {
                    return Err(UserError::NotAFile {
                        path: path.to_string(),
                    });
                }
            }
        }
        // The path names a directory.
        Err(UserError::NotAFile {
            path: path.to_string(),
        })
    }
    // ANCHOR_END: resolve_in_image

    /// The content of the regular file at `path`, or `None`.
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, UserError> {
        let Some((layer, names)) = self.resolve(path)? else {
            return Ok(None);
        };
        let (layer_path, root) = &self.layers[layer];
        let err = |cause: io::Error| UserError::Read {
            path: path.to_string(),
            layer: layer_path.clone(),
            cause,
        };
        let Some((last, dirs)) = names.split_last() else {
            return Ok(None);
        };
        // The same walk as the lookup, in the one layer that has the file:
        // one name at a time, never through a symlink.
        let mut dir = root.try_clone().map_err(err)?;
        for name in dirs {
            dir = open_dir(&dir, name).map_err(|e| err(e.into()))?;
        }
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let file = File::from(
            openat(&dir, last.as_os_str(), flags, Mode::empty()).map_err(|e| err(e.into()))?,
        );
        let meta = file.metadata().map_err(err)?;
        if !meta.is_file() {
            return Err(UserError::NotAFile {
                path: path.to_string(),
            });
        }
        let too_large = || UserError::TooLarge {
            path: path.to_string(),
            limit: MAX_FILE_BYTES,
        };
        if meta.len() > MAX_FILE_BYTES {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(err)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(too_large());
        }
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_env_replaces_in_place_appends_and_sets_home() {
        let alice = ExecUser {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![],
            home: "/home/alice".into(),
        };
        let mut env = vec!["PATH=/bin".to_string(), "HOME=/root".to_string()];
        let image = ["PATH=/usr/bin".to_string(), "LANG=C".to_string()];
        apply_image_env(&mut env, &image, Some(&alice));
        assert_eq!(env, ["PATH=/usr/bin", "LANG=C", "HOME=/home/alice"]);
        // An image that sets HOME keeps it, whoever runs.
        let mut env = vec!["HOME=/root".to_string()];
        apply_image_env(&mut env, &["HOME=/srv".to_string()], Some(&alice));
        assert_eq!(env, ["HOME=/srv"]);
        let mut env = vec!["HOME=/root".to_string()];
        apply_image_env(&mut env, &[], None);
        assert_eq!(env, ["HOME=/root"]);
    }
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
1002:x:1003:1003:numeric name:/home/n:/bin/sh
broken:x:notanumber:1:::
";
    const GROUP: &str = "\
root:x:0:
users:x:100:alice
alice:x:1000:
wheel:x:10:bob,alice
audio:x:29:alice
";

    fn resolve(spec: &str) -> Result<ExecUser, UserError> {
        resolve_user(spec, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    fn ids(spec: &str) -> (u32, u32, Vec<u32>, String) {
        let u = resolve(spec).unwrap();
        (u.uid, u.gid, u.additional_gids, u.home)
    }

    #[test]
    fn user_specs_resolve_as_runc_does() {
        // A name: uid, gid and home from passwd, memberships from group.
        assert_eq!(
            ids("alice"),
            (1000, 1000, vec![100, 10, 29], "/home/alice".into())
        );
        // A uid with a passwd line is that user, groups included.
        assert_eq!(
            ids("1000"),
            (1000, 1000, vec![100, 10, 29], "/home/alice".into())
        );
        // An explicit group: primary gid, no supplementary groups.
        assert_eq!(ids("alice:wheel"), (1000, 10, vec![], "/home/alice".into()));
        assert_eq!(
            ids("alice:4242"),
            (1000, 4242, vec![], "/home/alice".into())
        );
        assert_eq!(ids("1001:audio"), (1001, 29, vec![], "/home/bob".into()));
        // A uid with no passwd line: gid 0, home /.
        assert_eq!(ids("4000"), (4000, 0, vec![], "/".into()));
        assert_eq!(ids("4000:4001"), (4000, 4001, vec![], "/".into()));
        // A number is a uid, even if a user is called that.
        assert_eq!(ids("1002").0, 1002);
        assert_eq!(ids("1002").1, 0);
        // Empty user: root; empty group: as if none was given.
        assert_eq!(ids(":100"), (0, 100, vec![], "/root".into()));
        assert_eq!(ids("bob:"), (1001, 100, vec![10], "/home/bob".into()));
        assert_eq!(
            resolve("alice").unwrap().user(),
            User {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![100, 10, 29]
            }
        );
    }

    #[test]
    fn unknown_names_and_bad_ids_are_errors() {
        let err = resolve("carol").unwrap_err();
        assert_eq!(
            err.to_string(),
            "user carol not found in the image's /etc/passwd"
        );
        let err = resolve("alice:staff").unwrap_err();
        assert_eq!(
            err.to_string(),
            "group staff not found in the image's /etc/group"
        );
        for spec in ["2147483648", "alice:99999999999999999999999"] {
            assert!(
                matches!(resolve(spec), Err(UserError::OutOfRange { .. })),
                "{spec}"
            );
        }
        assert_eq!(ids("2147483647").0, 2147483647);
        assert!(matches!(resolve("a:b:c"), Err(UserError::BadSpec(_))));
        // Without any passwd file, only numbers work.
        assert!(matches!(
            resolve_user("alice", &[], &[]),
            Err(UserError::UserNotFound(_))
        ));
        assert_eq!(resolve_user("7:8", &[], &[]).unwrap().gid, 8);
    }

    /// Layers in a temporary directory, bottom first.
    struct Layers {
        _tmp: tempfile::TempDir,
        dirs: Vec<PathBuf>,
        outside: PathBuf,
    }

    fn layers(n: usize) -> Layers {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..n).map(|i| tmp.path().join(format!("l{i}"))).collect();
        for d in &dirs {
            fs::create_dir_all(d.join("etc")).unwrap();
        }
        // A passwd outside every layer, with a user the image does not have.
        let outside = tmp.path().join("host/etc");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("passwd"), "mallory:x:0:0::/:/bin/sh\n").unwrap();
        Layers {
            outside: outside.join("passwd"),
            _tmp: tmp,
            dirs,
        }
    }

    fn read(l: &Layers, path: &str) -> Option<String> {
        read_image_file(&l.dirs, path)
            .unwrap()
            .map(|b| String::from_utf8(b).unwrap())
    }

    /// Make `path` an overlay whiteout; false if this kernel or user may not.
    fn whiteout(path: &Path) -> bool {
        use nix::sys::stat::{SFlag, mknod};
        match mknod(path, SFlag::S_IFCHR, Mode::empty(), 0) {
            Ok(()) => true,
            Err(Errno::EPERM) => false,
            Err(e) => panic!("mknod {}: {e}", path.display()),
        }
    }

    #[test]
    fn the_top_layer_wins() {
        let l = layers(2);
        fs::write(l.dirs[0].join("etc/passwd"), "root:x:0:0::/root:\n").unwrap();
        fs::write(l.dirs[0].join("etc/group"), "root:x:0:\n").unwrap();
        fs::write(l.dirs[1].join("etc/passwd"), "alice:x:7:8::/a:\n").unwrap();
        assert_eq!(read(&l, "/etc/passwd").unwrap(), "alice:x:7:8::/a:\n");
        // The lower layer's file shows through where the upper has none.
        assert_eq!(read(&l, "/etc/group").unwrap(), "root:x:0:\n");
        assert_eq!(read(&l, "/etc/shadow"), None);
        assert_eq!(
            read(&l, "etc/./../etc//passwd").unwrap(),
            "alice:x:7:8::/a:\n"
        );
        let u = resolve_user_in_layers(&l.dirs, "alice").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (7, 8, "/a"));
    }

    #[test]
    fn a_whiteout_in_an_upper_layer_hides_etc_passwd() {
        let l = layers(2);
        fs::write(l.dirs[0].join("etc/passwd"), "alice:x:7:8::/a:\n").unwrap();
        if !whiteout(&l.dirs[1].join("etc/passwd")) {
            berth_test_support::skip(
                "a_whiteout_in_an_upper_layer_hides_etc_passwd",
                "this kernel refuses unprivileged whiteouts (before Linux 5.8)",
            );
            return;
        }
        assert_eq!(read(&l, "/etc/passwd"), None);
        let err = resolve_user_in_layers(&l.dirs, "alice").unwrap_err();
        assert_eq!(
            err.to_string(),
            "user alice not found in the image's /etc/passwd"
        );
        // Numbers need no passwd line.
        assert_eq!(resolve_user_in_layers(&l.dirs, "7").unwrap().home, "/");
    }

    #[test]
    fn a_whiteout_or_a_file_in_place_of_etc_hides_the_whole_directory() {
        let l = layers(3);
        fs::write(l.dirs[0].join("etc/passwd"), "alice:x:7:8::/a:\n").unwrap();
        // Middle layer: /etc is a file.
        fs::remove_dir(l.dirs[1].join("etc")).unwrap();
        fs::write(l.dirs[1].join("etc"), "not a directory").unwrap();
        assert_eq!(read(&l, "/etc/passwd"), None);
        // Middle layer: /etc deleted, top layer: a new /etc without passwd.
        fs::remove_file(l.dirs[1].join("etc")).unwrap();
        if whiteout(&l.dirs[1].join("etc")) {
            assert_eq!(read(&l, "/etc/passwd"), None);
            fs::write(l.dirs[2].join("etc/passwd"), "bob:x:1:1::/b:\n").unwrap();
            assert_eq!(read(&l, "/etc/passwd").unwrap(), "bob:x:1:1::/b:\n");
        }
    }

    #[test]
    fn an_opaque_directory_hides_the_layers_below() {
        use xattr::FileExt;
        let l = layers(2);
        fs::write(l.dirs[0].join("etc/passwd"), "alice:x:7:8::/a:\n").unwrap();
        let upper_etc = File::open(l.dirs[1].join("etc")).unwrap();
        // Root may set trusted.*; anyone may set user.* on their own files
        // where the filesystem supports it.
        let set = OPAQUE_XATTRS
            .iter()
            .any(|name| upper_etc.set_xattr(name, b"y").is_ok());
        if !set {
            berth_test_support::skip(
                "an_opaque_directory_hides_the_layers_below",
                "the temporary directory's filesystem has no trusted or user xattrs",
            );
            return;
        }
        assert_eq!(read(&l, "/etc/passwd"), None);
        fs::write(l.dirs[1].join("etc/passwd"), "bob:x:1:1::/b:\n").unwrap();
        assert_eq!(read(&l, "/etc/passwd").unwrap(), "bob:x:1:1::/b:\n");
    }

    #[test]
    fn symlinks_are_followed_inside_the_image_only() {
        let l = layers(2);
        fs::create_dir_all(l.dirs[0].join("data")).unwrap();
        fs::write(l.dirs[0].join("data/passwd"), "alice:x:7:8::/a:\n").unwrap();
        // Upper layer: an absolute link into the lower layer's /data.
        symlink("/data/passwd", l.dirs[1].join("etc/passwd")).unwrap();
        assert_eq!(read(&l, "/etc/passwd").unwrap(), "alice:x:7:8::/a:\n");
        // A relative one, through a symlinked directory.
        fs::remove_file(l.dirs[1].join("etc/passwd")).unwrap();
        symlink("../d/passwd", l.dirs[1].join("etc/passwd")).unwrap();
        symlink("data", l.dirs[1].join("d")).unwrap();
        assert_eq!(read(&l, "/etc/passwd").unwrap(), "alice:x:7:8::/a:\n");

        // Out of the image: `..` stops at the image's root, so these name
        // the image's /etc/shadow and the image's copy of the outside path,
        // which do not exist.
        let out = l.outside.to_str().unwrap();
        for target in [
            "/../../../etc/shadow".to_string(),
            format!("/../../../../../../../..{out}"),
            format!("../../../../../../../../../..{out}"),
            out.to_string(),
        ] {
            fs::remove_file(l.dirs[1].join("etc/passwd")).unwrap();
            symlink(&target, l.dirs[1].join("etc/passwd")).unwrap();
            assert_eq!(read(&l, "/etc/passwd"), None, "{target}");
            let err = resolve_user_in_layers(&l.dirs, "mallory").unwrap_err();
            assert!(matches!(err, UserError::UserNotFound(_)), "{target}: {err}");
        }
        // A symlinked layer directory is not followed either: /etc itself a
        // link to the host's /etc finds nothing.
        let l2 = layers(1);
        fs::remove_dir(l2.dirs[0].join("etc")).unwrap();
        symlink(l2.outside.parent().unwrap(), l2.dirs[0].join("etc")).unwrap();
        assert_eq!(read(&l2, "/etc/passwd"), None);
    }

    #[test]
    fn symlink_loops_and_odd_files_are_errors() {
        let l = layers(1);
        symlink("b", l.dirs[0].join("etc/a")).unwrap();
        symlink("a", l.dirs[0].join("etc/b")).unwrap();
        symlink("a", l.dirs[0].join("etc/passwd")).unwrap();
        let err = read_image_file(&l.dirs, "/etc/passwd").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/passwd in the image: too many levels of symbolic links"
        );
        fs::remove_file(l.dirs[0].join("etc/passwd")).unwrap();
        fs::create_dir(l.dirs[0].join("etc/passwd")).unwrap();
        let err = read_image_file(&l.dirs, "/etc/passwd").unwrap_err();
        assert!(matches!(err, UserError::NotAFile { .. }), "{err}");
        fs::remove_dir(l.dirs[0].join("etc/passwd")).unwrap();
        nix::unistd::mkfifo(&l.dirs[0].join("etc/passwd"), Mode::S_IRWXU).unwrap();
        let err = read_image_file(&l.dirs, "/etc/passwd").unwrap_err();
        assert!(matches!(err, UserError::NotAFile { .. }), "{err}");
    }

    #[test]
    fn a_huge_passwd_is_refused() {
        let l = layers(1);
        let f = File::create(l.dirs[0].join("etc/passwd")).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let err = read_image_file(&l.dirs, "/etc/passwd").unwrap_err();
        assert!(matches!(err, UserError::TooLarge { .. }), "{err}");
    }
}
