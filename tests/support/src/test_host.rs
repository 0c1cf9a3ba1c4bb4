//! A throwaway network namespace that plays the host, for network tests.
//!
//! A test that makes bridges, veths or nftables rules must never touch
//! the machine's own network: [`in_test_host`] re-runs the calling test,
//! alone, under `unshare --net --mount`, so everything it creates lives
//! in a fresh network namespace (and a private mount namespace for its
//! namespace files) and dies with it. The outer run only checks that the
//! inner one passed.
//!
//! ```ignore
//! #[test]
//! fn published_port_is_reachable() {
//!     if !in_test_host("published_port_is_reachable") { return; }
//!     // here: a new network namespace, lo down, nothing else
//! }
//! ```

use std::process::Command;

use crate::{require_root, skip};

/// The variable that tells the re-run test it is inside its test host.
const INSIDE: &str = "BERTH_TEST_HOST";

/// True when the caller runs inside its test host and should do its
/// work; false in the outer run (which ran the test inside one and
/// asserted it passed) or when the test had to be skipped (no root, no
/// `unshare`).
pub fn in_test_host(test: &str) -> bool {
    if std::env::var(INSIDE).is_ok_and(|v| v == test) {
        return true;
    }
    if !require_root(test) {
        return false;
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        skip(test, "needs unshare(1) from util-linux");
        return false;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let status = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, test)
        .status()
        .expect("run the test inside unshare --net --mount");
    assert!(
        status.success(),
        "{test} failed inside its test host ({status}); its output is above"
    );
    false
}
