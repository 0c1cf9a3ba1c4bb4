//! `run` on layers, as a library: chapter 5 runs images through it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ch01_chroot::launch::ChildStep;
use ch02_namespaces::container::ContainerConfig;
use ch03_cgroups::cli::{LimitArgs, run_limited_with};

use crate::overlay::{OverlayDirs, choose_driver, mount_overlay, rootless_overlay_step};
use crate::state::{self, ContainerState, StorageDriver};
use crate::vfs::copy_layers;

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
    // 1. The layers must exist; their absolute paths go in the state.
    let mut layers = Vec::new();
    for layer in &spec.layers {
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
    let driver = spec.driver.unwrap_or_else(auto_driver);
    // 2. The container's state directory: refuses a name already taken.
    let state = ContainerState {
        name: spec.name.clone(),
        layers: layers.clone(),
        driver,
    };
    let dir = state::create(root, &state)?;
    // 3. Its root filesystem: an overlay, or a copy. On failure, the state
    //    goes too: nothing half-made stays behind.
    //    Rootless, the overlay is mounted by the container's child, inside
    //    its user namespace (chapter 2's before_rootfs hook).
    let rootless = !nix::unistd::Uid::effective().is_root();
    let dirs = OverlayDirs {
        lower: layers.clone(),
        upper: dir.upper(),
        work: dir.work(),
        merged: dir.merged(),
    };
    let made = (|| -> anyhow::Result<_> {
        match driver {
            StorageDriver::Overlay if rootless => Ok((None, Some(rootless_overlay_step(&dirs)?))),
            StorageDriver::Overlay => Ok((Some(mount_overlay(&dirs)?), None)),
            StorageDriver::Vfs => {
                copy_layers(&layers, &dir.merged())?;
                Ok((None, None))
            }
        }
    })();
    let (mount, in_child) = match made {
        Ok(made) => made,
        Err(err) => {
            let _ = std::fs::remove_dir_all(&dir.0);
            return Err(err);
        }
    };
    let no_step = || Ok(());
    let before_rootfs: ChildStep = match &in_child {
        Some(step) => step,
        None => &no_step,
    };
    // 4. Chapter 3's run on it.
    let result = configure(dir.merged(), spec.name.clone())
        .and_then(|config| run_limited_with(engine, &spec.name, &config, limits, before_rootfs));
    // 5. Unmount; the writable layer stays for diff and commit, unless --rm.
    if let Some(mount) = mount {
        mount.unmount()?;
    }
    if spec.rm {
        remove_container_dir(&dir.0)?;
    }
    result
}
// ANCHOR_END: run

/// overlay when the kernel has it and lets us mount it, else vfs, with a notice.
fn auto_driver() -> StorageDriver {
    let rootless = !nix::unistd::Uid::effective().is_root();
    let (driver, notice) = choose_driver(Path::new("/proc"), rootless);
    if let Some(notice) = notice {
        eprintln!("note: {notice}");
    }
    driver
}

/// `rm NAME`: delete container NAME's writable layer and state (its
/// read-only layers stay). A container whose engine died may still have
/// its overlay mounted: that mount is detached first.
pub fn remove_container(root: &Path, name: &str) -> anyhow::Result<()> {
    let (dir, _) = state::load(root, name)?;
    let _ = nix::mount::umount2(&dir.merged(), nix::mount::MntFlags::MNT_DETACH);
    remove_container_dir(&dir.0)
}

/// Remove a container's directory. overlay leaves its `work/work` with mode
/// 000; root ignores that, a rootless user must first give it back the
/// owner's permissions (it is the user's own directory).
pub fn remove_container_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::remove_dir_all(dir).is_ok() {
        return Ok(());
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            let mode = meta.permissions().mode() | 0o700;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode));
            stack.extend(
                std::fs::read_dir(&path)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))
}
