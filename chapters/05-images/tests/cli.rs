//! Chapter 5 end to end: import a root filesystem as an image, list, tag,
//! inspect and remove it, and run containers from it.

use std::path::PathBuf;

use berth_test_support::probe::{PROBE_IN_CONTAINER, probe_rootfs};
use berth_test_support::{Run, bin_path, require_root};

fn bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_ch05-images"))
}

struct Setup {
    state: tempfile::TempDir,
    base: berth_test_support::probe::ProbeRootfs,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            state: tempfile::tempdir().unwrap(),
            base: probe_rootfs(),
        }
    }
    fn ch05(&self, args: &[&str]) -> Run {
        let mut all = vec!["--root", self.state.path().to_str().unwrap()];
        all.extend(args);
        Run::new(&bin(), all)
    }
}

fn settings() -> insta::Settings {
    let mut s = berth_test_support::container_snapshot_settings();
    s.add_filter(r"--root /tmp/\.tmp[A-Za-z0-9]+ ", "--root [STATE] ");
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    s.add_filter(
        r"\t[0-9a-f]{12}\t([^\t]*)\t[0-9.]+ [KM]iB",
        "\t[IMAGE ID]\t$1\t[SIZE]",
    );
    s
}

#[test]
fn an_imported_image_is_listed_tagged_and_removed() {
    let s = Setup::new();
    let base = s.base.path.to_str().unwrap();
    let import = s.ch05(&["import", base, "berth/probe:1"]);
    assert_eq!(import.code(), Some(0), "{}", import.transcript());
    assert!(
        import.stdout().starts_with("berth/probe:1: sha256:"),
        "{}",
        import.transcript()
    );
    // The same tree gives the same image.
    let again = s.ch05(&["import", base, "berth/probe:1"]);
    assert_eq!(again.stdout(), import.stdout());
    assert_eq!(
        s.ch05(&["tag", "berth/probe:1", "localhost:5000/class/probe"])
            .code(),
        Some(0)
    );
    let images = s.ch05(&["images"]);
    settings().bind(|| insta::assert_snapshot!("ch05_images", images.transcript()));
    let rmi = s.ch05(&["rmi", "berth/probe:1"]);
    assert_eq!(rmi.code(), Some(0), "{}", rmi.transcript());
    let left = s.ch05(&["images"]).stdout();
    assert_eq!(left.lines().count(), 2, "{left}");
    assert!(
        left.contains("localhost:5000/class/probe\tlatest"),
        "{left}"
    );
}

#[test]
fn a_container_runs_the_image_with_its_config() {
    if !require_root("a_container_runs_the_image_with_its_config") {
        return;
    }
    let s = Setup::new();
    let base = s.base.path.to_str().unwrap();
    let cmd = [
        "import",
        base,
        "probe",
        "--cmd",
        PROBE_IN_CONTAINER,
        "cwd",
        "uid",
    ];
    assert_eq!(s.ch05(&cmd).code(), Some(0));
    // The image's Cmd by default...
    let run = s.ch05(&["run", "--rm", "probe"]);
    assert_eq!(run.stdout(), "cwd: /\nuid: 0/0\n", "{}", run.transcript());
    // ...or the command line's, with -w and -u.
    let run = s.ch05(&[
        "run",
        "--rm",
        "-w",
        "/etc",
        "-u",
        "65534:65534",
        "probe",
        PROBE_IN_CONTAINER,
        "cwd",
        "uid",
    ]);
    assert_eq!(
        run.stdout(),
        "cwd: /etc\nuid: 65534/65534\n",
        "{}",
        run.transcript()
    );
    assert!(
        !s.state
            .path()
            .join("containers")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "--rm left a container"
    );
}

#[test]
fn bad_names_and_unknown_images_are_refused() {
    let s = Setup::new();
    let bad = s.ch05(&["run", "Alpine"]);
    assert_eq!(bad.code(), Some(125));
    assert!(
        bad.stderr().contains("must be lowercase"),
        "{}",
        bad.transcript()
    );
    let unknown = s.ch05(&["run", "nosuch"]);
    assert_eq!(unknown.code(), Some(125));
    settings().bind(|| insta::assert_snapshot!("ch05_error_unknown_image", unknown.transcript()));
}
