//! Check for exercise 1: a pids limit made by hand.

use std::path::Path;

use berth_test_support::require_root;
use ch03_cgroups::{Layout, detect};
use ch03_exercises::{checking_mine, ex1_pids_by_hand, solutions};

#[test]
fn ex1_pids_by_hand() {
    if !require_root("ex1_pids_by_hand") {
        return;
    }
    let f = if checking_mine() {
        ex1_pids_by_hand::forks_allowed
    } else {
        solutions::ex1_pids_by_hand::forks_allowed
    };
    let pids_root = match detect(Path::new("/proc")).unwrap() {
        Layout::V2 { mount } => mount,
        Layout::V1 { controllers } => controllers["pids"].clone(),
    };
    let name = format!("berth-exercise-{}", std::process::id());
    let forked = f(&pids_root, &name, 5).expect("forks_allowed failed");
    // The child counts too: five in all, so four more.
    assert_eq!(
        forked, 4,
        "with pids.max = 5 the child should fork exactly 4"
    );
    assert!(
        !pids_root.join(&name).exists(),
        "remove the cgroup before returning"
    );
}
