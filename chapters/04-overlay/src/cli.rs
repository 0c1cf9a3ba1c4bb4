//! `run` on layers, as a library: chapter 5 runs images through it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ch01_chroot::launch::ChildStep;
use ch02_namespaces::container::ContainerConfig;
use ch03_cgroups::cli::{LimitArgs, run_limited_with};
use ch03_cgroups::{Cgroup, CgroupError, LinuxResources, detect};
use nix::errno::Errno;

use crate::commit::visible_lowers;
use crate::overlay::{
    OverlayDirs, OverlayMount, choose_driver, mount_overlay, rootless_overlay_step,
};
use crate::state::{self, ContainerDir, ContainerState, EngineRecord, StorageDriver, cgroup_id};
use crate::vfs::copy_layers;
use crate::walk::remove_tree;

/// What to run a container on.
pub struct LayerRun {
    /// The container's name (its state directory, hostname and cgroup).
    pub name: String,
    /// Read-only layers, bottom first.
    pub layers: Vec<PathBuf>,
    /// None: overlay where possible, else vfs.
    pub driver: Option<StorageDriver>,
    /// Remove the container when it exits.
    pub rm: bool,
}

/// Chapter 3's run, on a filesystem made of layers. `configure` makes the
/// container's config from the merged root filesystem and the default
/// hostname (the container's name).
// ANCHOR: run
pub fn run_on_layers(
    engine: &str,
    root: &Path,
    spec: &LayerRun,
    limits: &LimitArgs,
    configure: impl FnOnce(PathBuf, String) -> anyhow::Result<ContainerConfig>,
) -> anyhow::Result<i32> {
    // 1. Refuse what can be refused before anything exists: nothing is
    //    made yet, so a refusal leaves nothing to undo.
    let checked = refuse_early(root, spec, limits)?;
    // 2. The state directory, with the record that we run it: before the
    //    root filesystem, which lives in that directory.
    let (dir, engine_lock) = create_state_dir(root, spec, &checked)?;
    // 3. The root filesystem, in the state directory: before the run, which
    //    needs it (or, rootless, the step that mounts it in the child).
    let rootfs = make_rootfs(&dir, &checked)?;
    // 4. Chapter 3's run on it: its result waits until the cleanup is done.
    let result = run_in_cgroup(engine, &dir, spec, &checked, limits, &rootfs, configure);
    // 5. Unmount, then drop the engine's record (so that `rm` may act only
    //    once the mount is gone), then remove everything if --rm.
    unmount_rootfs(rootfs)?;
    drop(engine_lock);
    if spec.rm {
        remove_container_dir(&dir.0)?;
    }
    result
}
// ANCHOR_END: run

/// What `refuse_early` found usable: the layers, the cgroup and the driver.
struct Checked {
    /// Existing, absolute, visible layers, bottom first.
    layers: Vec<PathBuf>,
    /// The cgroup named after the container and its store.
    cgroup: String,
    /// The storage driver chosen (given, or the host's best).
    driver: StorageDriver,
}

/// The step that mounts the overlay inside the child (chapter 2's
/// before_rootfs hook).
type OverlayStep = dyn Fn() -> Result<(), (&'static str, Errno)>;

/// A container's root filesystem, as made: the overlay mount the engine
/// holds, or the step that mounts it in the child (rootless), or neither
/// (vfs: a copy).
struct Rootfs {
    /// The overlay mount, when the engine made it.
    mount: Option<OverlayMount>,
    /// The child's overlay step, when the engine may not mount.
    in_child: Option<Box<OverlayStep>>,
}

// ANCHOR: refuse_early
/// Step 1: refuse, before anything exists, a name taken, missing layers,
/// and limits that are wrong or that this host cannot apply (tried on a
/// cgroup made and removed at once); choose the storage driver.
fn refuse_early(root: &Path, spec: &LayerRun, limits: &LimitArgs) -> anyhow::Result<Checked> {
    state::check_free(root, &spec.name)?;
    let layers = existing_layers(&spec.layers)?;
    let cgroup = cgroup_id(root, &spec.name);
    check_limits(&cgroup, limits)?;
    let driver = spec.driver.unwrap_or_else(auto_driver);
    Ok(Checked {
        layers,
        cgroup,
        driver,
    })
}
// ANCHOR_END: refuse_early

// ANCHOR: create_state_dir
/// Step 2: the container's state directory, and the record that our
/// engine runs it, kept until `run_on_layers` returns (`rm` leaves a
/// container alone meanwhile). If the record cannot be made, the
/// directory goes again.
fn create_state_dir(
    root: &Path,
    spec: &LayerRun,
    checked: &Checked,
) -> anyhow::Result<(ContainerDir, EngineRecord)> {
    let state = ContainerState {
        name: spec.name.clone(),
        layers: checked.layers.clone(),
        driver: checked.driver,
    };
    let dir = state::create(root, &state)?;
    match state::record_engine(&dir, Path::new("/proc")) {
        Ok(lock) => Ok((dir, lock)),
        Err(err) => {
            let _ = remove_tree(&dir.0);
            Err(err.into())
        }
    }
}
// ANCHOR_END: create_state_dir

// ANCHOR: make_rootfs
/// Step 3: the container's root filesystem on `merged/`; on failure the
/// state directory goes too: nothing half-made stays behind.
fn make_rootfs(dir: &ContainerDir, checked: &Checked) -> anyhow::Result<Rootfs> {
    let made = mount_or_copy(dir, checked);
    if made.is_err() {
        let _ = remove_tree(&dir.0);
    }
    made
}

/// An overlay mount of the layers on `merged/`, or a copy of them there
/// (vfs). Rootless, the overlay is mounted by the container's child,
/// inside its user namespace (chapter 2's before_rootfs hook): this
/// returns that step.
fn mount_or_copy(dir: &ContainerDir, checked: &Checked) -> anyhow::Result<Rootfs> {
    let rootless = !nix::unistd::Uid::effective().is_root();
    let dirs = OverlayDirs {
        lower: checked.layers.clone(),
        upper: dir.upper(),
        work: dir.work(),
        merged: dir.merged(),
    };
    Ok(match checked.driver {
        StorageDriver::Overlay if rootless => Rootfs {
            mount: None,
            in_child: Some(Box::new(rootless_overlay_step(&dirs)?)),
        },
        StorageDriver::Overlay => Rootfs {
            mount: Some(mount_overlay(&dirs)?),
            in_child: None,
        },
        StorageDriver::Vfs => {
            copy_layers(&checked.layers, &dir.merged())?;
            Rootfs {
                mount: None,
                in_child: None,
            }
        }
    })
}
// ANCHOR_END: make_rootfs

// ANCHOR: run_in_cgroup
/// Step 4: chapter 3's run on `merged/`, in a cgroup named after the
/// container and its store, with the child's overlay step if there is
/// one. A container in a user namespace gets its directory's group, to
/// reach its merged/ through it.
fn run_in_cgroup(
    engine: &str,
    dir: &ContainerDir,
    spec: &LayerRun,
    checked: &Checked,
    limits: &LimitArgs,
    rootfs: &Rootfs,
    configure: impl FnOnce(PathBuf, String) -> anyhow::Result<ContainerConfig>,
) -> anyhow::Result<i32> {
    let no_step = || Ok(());
    let before_rootfs: ChildStep = match &rootfs.in_child {
        Some(step) => step.as_ref(),
        None => &no_step,
    };
    let config = configure(dir.merged(), spec.name.clone())?;
    open_to_container_root(dir, &config)?;
    run_limited_with(engine, &checked.cgroup, &config, limits, before_rootfs)
}
// ANCHOR_END: run_in_cgroup

/// Step 5: unmount the overlay the engine mounted, if it did; the
/// writable layer stays for diff and commit.
fn unmount_rootfs(rootfs: Rootfs) -> anyhow::Result<()> {
    if let Some(mount) = rootfs.mount {
        mount.unmount()?;
    }
    Ok(())
}

/// The layers as absolute paths, each an existing directory, bottom first;
/// without those a layer with an opaque root hides (overlayfs would show
/// them).
fn existing_layers(given: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut layers = Vec::new();
    for layer in given {
        let path = std::fs::canonicalize(layer)
            .ok()
            .filter(|p| p.is_dir())
            .with_context(|| {
                format!(
                    "layer {}: no such directory: give an existing directory as --layer",
                    layer.display()
                )
            })?;
        layers.push(path);
    }
    layers.reverse();
    let mut visible = visible_lowers(&layers)?;
    visible.reverse();
    Ok(visible)
}

/// Refuse limits that are malformed, or that this host cannot apply, before
/// anything is made: the limits are written into a cgroup of the
/// container's name, which is removed again at once.
fn check_limits(cgroup: &str, limits: &LimitArgs) -> anyhow::Result<()> {
    let resources = LinuxResources::from_flags(&limits.limits)?;
    resources.validate()?;
    if limits.no_cgroups || resources.is_empty() {
        return Ok(());
    }
    let proc_root = Path::new("/proc");
    let layout = detect(proc_root)?;
    Cgroup::create(&layout, proc_root, cgroup, &resources)?.remove()?;
    Ok(())
}

/// In a user namespace as root, the container's root (a host uid such as
/// 100000) must cross its directory to reach `merged/`: give the directory
/// the group the container's gid 0 maps to, mode 0710, as docker does for
/// a remapped root.
fn open_to_container_root(dir: &ContainerDir, config: &ContainerConfig) -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(());
    }
    let Some(root_group) = config
        .gid_mappings
        .iter()
        .find(|m| m.container_id == 0)
        .map(|m| m.host_id)
    else {
        return Ok(());
    };
    nix::unistd::chown(&dir.0, None, Some(nix::unistd::Gid::from_raw(root_group)))
        .with_context(|| format!("chown {}", dir.0.display()))?;
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o710))
        .with_context(|| format!("chmod {}", dir.0.display()))?;
    Ok(())
}

/// overlay when the kernel has it and lets us mount it, else vfs, with a notice.
fn auto_driver() -> StorageDriver {
    let rootless = !nix::unistd::Uid::effective().is_root();
    let (driver, notice) = choose_driver(Path::new("/proc"), rootless);
    if let Some(notice) = notice {
        eprintln!("note: {notice}");
    }
    driver
}

// ANCHOR: remove_container
/// `rm NAME`: delete container NAME's writable layer and state (its
/// read-only layers stay). Refused while its engine runs. A container
/// whose engine died (killed with SIGKILL, say) may have left everything:
/// processes still running in its cgroup, its overlay mounted, the cgroup
/// itself. Those go first, in that order: the processes keep the mount
/// busy, and a cgroup with processes cannot be removed.
pub fn remove_container(root: &Path, name: &str) -> anyhow::Result<()> {
    state::check_root(root)?;
    let (dir, _) = state::load(root, name)?;
    state::check_engine_gone(&dir, name, Path::new("/proc"))?;
    // 1. Kill what runs in its cgroup and remove the cgroup.
    remove_cgroup(&cgroup_id(root, name))?;
    // 2. Unmount its overlay (a stacked mount too, if one was made twice).
    while nix::mount::umount2(&dir.merged(), nix::mount::MntFlags::MNT_DETACH).is_ok() {}
    // 3. Its directory.
    remove_container_dir(&dir.0)
}
// ANCHOR_END: remove_container

/// Kill the processes of the cgroup `id` and remove it, if it exists.
fn remove_cgroup(id: &str) -> anyhow::Result<()> {
    let proc_root = Path::new("/proc");
    let Ok(layout) = detect(proc_root) else {
        return Ok(()); // no cgroups here: none was made
    };
    match Cgroup::open(&layout, proc_root, id) {
        Ok(cgroup) => Ok(cgroup.remove()?),
        Err(CgroupError::NotFound { .. } | CgroupError::RootlessV1) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Remove a container's directory, however deep its writable layer nests
/// (a few descriptors, whatever the depth), giving back its owner's
/// permissions to directories that lost them (overlay leaves `work/work`
/// with mode 000; a rootless user must restore that before emptying it).
pub fn remove_container_dir(dir: &Path) -> anyhow::Result<()> {
    remove_tree(dir).with_context(|| format!("remove {}", dir.display()))
}
