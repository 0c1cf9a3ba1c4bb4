//! Check for exercise 2: read the OOM count from the cgroup, not a guess.

use std::path::Path;

use berth_test_support::require_root;
use ch03_cgroups::{Cgroup, LinuxResources, ResourceFlags, detect};
use ch03_exercises::{checking_mine, ex2_oom_detective, solutions};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

fn oom_kills() -> fn(&Path) -> std::io::Result<u64> {
    if checking_mine() {
        ex2_oom_detective::oom_kills
    } else {
        solutions::ex2_oom_detective::oom_kills
    }
}

#[test]
fn ex2_oom_detective_reads_both_formats() {
    // The files as the kernel writes them (v2, then v1), in a temp dir.
    let v2 = tempfile::tempdir().unwrap();
    std::fs::write(
        v2.path().join("memory.events"),
        "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
    )
    .unwrap();
    assert_eq!(oom_kills()(v2.path()).unwrap(), 1);
    let v1 = tempfile::tempdir().unwrap();
    std::fs::write(
        v1.path().join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
    )
    .unwrap();
    assert_eq!(oom_kills()(v1.path()).unwrap(), 3);
}

#[test]
fn ex2_oom_detective_on_the_real_kernel() {
    if !require_root("ex2_oom_detective_on_the_real_kernel") {
        return;
    }
    let proc_root = Path::new("/proc");
    let layout = detect(proc_root).unwrap();
    let flags = ResourceFlags {
        memory: Some("16m".into()),
        ..ResourceFlags::default()
    };
    let resources = LinuxResources::from_flags(&flags).unwrap();
    let id = format!("ex2-{}", std::process::id());
    let cgroup = Cgroup::create(&layout, proc_root, &id, &resources).unwrap();
    let memory_dir = cgroup
        .paths()
        .into_iter()
        .find(|p| p.join("memory.events").exists() || p.join("memory.oom_control").exists())
        .unwrap();
    assert_eq!(
        oom_kills()(&memory_dir).unwrap(),
        0,
        "nothing was killed yet"
    );

    // A child that joins the cgroup and touches 64 MiB under a 16 MiB limit.
    // SAFETY: the child only writes a file, touches memory and exits.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let _ = std::fs::write(memory_dir.join("cgroup.procs"), "0");
            let mut hog: Vec<Vec<u8>> = Vec::new();
            for _ in 0..64 {
                hog.push(vec![1u8; 1 << 20]);
            }
            // SAFETY: leave at once, without the harness's destructors.
            unsafe { nix::libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).unwrap();
            assert!(
                matches!(
                    status,
                    WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)
                ),
                "{status:?}"
            );
        }
    }
    assert!(
        oom_kills()(&memory_dir).unwrap() >= 1,
        "the kernel counted the kill"
    );
    cgroup.remove().unwrap();
}
