//! Check for exercise 1: a new UTS namespace gets its own hostname.

use berth_test_support::require_root;
use ch02_exercises::{checking_mine, ex1_own_hostname, solutions};

#[test]
fn ex1_own_hostname() {
    if !require_root("ex1_own_hostname") {
        return;
    }
    let f = if checking_mine() {
        ex1_own_hostname::hostname_in_new_uts
    } else {
        solutions::ex1_own_hostname::hostname_in_new_uts
    };
    let before = nix::unistd::gethostname().unwrap();
    let seen = f("exercise-box").expect("hostname_in_new_uts failed");
    assert_eq!(seen, "exercise-box", "the child must see the name it set");
    assert_eq!(
        nix::unistd::gethostname().unwrap(),
        before,
        "the host's hostname changed: the child was not in a new UTS namespace"
    );
}
