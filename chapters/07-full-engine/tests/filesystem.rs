//! A container's filesystem from the host: `diff`, `export` and `cp`, and
//! the container's symlinks, which must never lead a copy to the host's
//! files (docker's CVE-2018-15664 and CVE-2019-14271 were exactly that).

mod common;

use std::path::Path;

use common::{IMAGE, envs};

#[test]
fn diff_lists_what_the_container_changed_as_docker_does() {
    for env in envs("filesystem::diff") {
        env.ok(&[
            "run",
            "--name",
            "changed",
            "-v",
            "/data",
            IMAGE,
            "sh",
            "-c",
            "echo x > /new; rm /bin/ls; echo y >> /etc/passwd; echo v > /data/in-volume",
        ]);
        let diff = env.ok(&["diff", "changed"]);
        assert_eq!(
            diff, "C /bin\nD /bin/ls\nC /etc\nC /etc/passwd\nA /new\n",
            "the runtime's mount points and the volume are not the container's changes"
        );
        env.ok(&["rm", "-v", "changed"]);
    }
}

#[test]
fn export_writes_the_whole_filesystem_and_leaves_no_mount() {
    for env in envs("filesystem::export") {
        env.ok(&[
            "run",
            "--name",
            "exported",
            IMAGE,
            "sh",
            "-c",
            "echo mine > /mine; ln -s /etc/passwd /link",
        ]);
        let tar = env.cmd(&["export", "exported"]).output().unwrap();
        assert!(
            tar.status.success(),
            "{}",
            String::from_utf8_lossy(&tar.stderr)
        );
        let mut archive = tar::Archive::new(&tar.stdout[..]);
        let mut names = Vec::new();
        let mut link = None;
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name == "mine" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                assert_eq!(text, "mine\n");
            }
            if name == "link" {
                link = entry.link_name().unwrap().map(|l| l.into_owned());
            }
            names.push(name);
        }
        assert!(
            names.iter().any(|n| n == "bin/busybox" || n == "bin/sh"),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n == "mine"));
        assert_eq!(
            link.as_deref(),
            Some(Path::new("/etc/passwd")),
            "a link stays a link"
        );
        // The stopped container's overlay was mounted for the export only.
        assert!(env.leftovers(&[]).is_empty(), "{:?}", env.leftovers(&[]));
        // -o writes a file; a terminal is refused (not testable here).
        let out = tempfile::tempdir().unwrap();
        let file = out.path().join("fs.tar");
        env.ok(&["export", "-o", file.to_str().unwrap(), "exported"]);
        assert_eq!(std::fs::read(&file).unwrap().len(), tar.stdout.len());
        env.ok(&["rm", "exported"]);
    }
}

#[test]
fn cp_copies_both_ways_with_dockers_rules() {
    for env in envs("filesystem::cp") {
        let id = env.run_d(&[IMAGE, "sleep", "60"]);
        let host = tempfile::tempdir().unwrap();
        let h = host.path();
        std::fs::create_dir_all(h.join("dir/sub")).unwrap();
        std::fs::write(h.join("dir/sub/inner"), "inner\n").unwrap();
        std::fs::write(h.join("file"), "file\n").unwrap();
        let at = |p: &str| format!("{id}:{p}");
        let host_path = |p: &str| h.join(p).display().to_string();
        // Into the container: a file into a directory, a directory under
        // its name, a directory's content with /., a file under a new name.
        env.ok(&["cp", &host_path("file"), &at("/tmp")]);
        env.ok(&["cp", &host_path("dir"), &at("/tmp")]);
        env.ok(&["cp", &format!("{}/.", host_path("dir")), &at("/opt")]);
        env.ok(&["cp", &host_path("file"), &at("/tmp/renamed")]);
        let listing = env.ok(&[
            "exec",
            &id,
            "sh",
            "-c",
            "cat /tmp/file /tmp/dir/sub/inner /opt/sub/inner /tmp/renamed",
        ]);
        assert_eq!(listing, "file\ninner\ninner\nfile\n");
        // Out of it: to a new name, into a directory, as a tar on stdout.
        env.ok(&["cp", &at("/etc/hostname"), &host_path("hostname")]);
        assert_eq!(
            std::fs::read_to_string(h.join("hostname")).unwrap().trim(),
            &id[..12]
        );
        env.ok(&["cp", &at("/tmp/dir"), &host_path("back")]);
        assert_eq!(
            std::fs::read_to_string(h.join("back/sub/inner")).unwrap(),
            "inner\n"
        );
        let tar = env.cmd(&["cp", &at("/tmp/file"), "-"]).output().unwrap();
        let mut archive = tar::Archive::new(&tar.stdout[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["file"]);
        // Errors as docker words them, nothing written.
        let run = env.berth(&["cp", &at("/no/such"), &host_path("x")]);
        assert_eq!(run.code(), Some(1));
        assert!(
            run.stderr().contains("Could not find the file /no/such"),
            "{}",
            run.transcript()
        );
        assert!(!h.join("x").exists());
        let run = env.berth(&["cp", &host_path("file"), &host_path("y")]);
        assert!(
            run.stderr().contains("must specify at least one container"),
            "{}",
            run.transcript()
        );
        env.ok(&["rm", "-f", &id]);
    }
}

#[test]
fn cp_never_follows_a_containers_symlink_to_the_host() {
    for env in envs("filesystem::cp_symlinks") {
        // The container points links at the host's paths, as an attacker
        // would: /escape -> /etc, /up -> ../../../.., /rootlink -> /.
        let id = env.run_d(&[
            IMAGE, "sh", "-c",
            "ln -s /etc /escape; ln -s ../../../../../.. /up; ln -s / /rootlink; echo container > /etc/only-here; sleep 60",
        ]);
        // Wait for the links.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while env.berth(&["exec", &id, "test", "-L", "/rootlink"]).code() != Some(0) {
            assert!(
                std::time::Instant::now() < deadline,
                "the container made no links"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let host = tempfile::tempdir().unwrap();
        let h = host.path();
        std::fs::write(h.join("payload"), "payload\n").unwrap();
        let marker = format!("berth-cp-attack-{}", std::process::id());
        // Writing through the links lands in the container's /etc and /,
        // never the host's.
        env.ok(&[
            "cp",
            &h.join("payload").display().to_string(),
            &format!("{id}:/escape/{marker}"),
        ]);
        env.ok(&[
            "cp",
            &h.join("payload").display().to_string(),
            &format!("{id}:/up/tmp/{marker}"),
        ]);
        assert!(
            !Path::new("/etc").join(&marker).exists(),
            "cp wrote the host's /etc"
        );
        assert!(
            !Path::new("/tmp").join(&marker).exists(),
            "cp wrote the host's /tmp"
        );
        assert_eq!(
            env.ok(&[
                "exec",
                &id,
                "cat",
                &format!("/etc/{marker}"),
                &format!("/tmp/{marker}")
            ]),
            "payload\npayload\n"
        );
        // Reading through them reads the container's files, not the host's.
        env.ok(&[
            "cp",
            &format!("{id}:/rootlink/etc/only-here"),
            &h.join("read").display().to_string(),
        ]);
        assert_eq!(
            std::fs::read_to_string(h.join("read")).unwrap(),
            "container\n"
        );
        let host_hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        env.ok(&[
            "cp",
            &format!("{id}:/up/etc/hostname"),
            &h.join("name").display().to_string(),
        ]);
        let copied = std::fs::read_to_string(h.join("name")).unwrap();
        assert_eq!(
            copied.trim(),
            &id[..12],
            "the container's /etc/hostname, not the host's ({host_hostname:?})"
        );
        // The stopped container too (its overlay, mounted for the copy).
        env.ok(&["stop", "-t", "1", &id]);
        env.ok(&[
            "cp",
            &h.join("payload").display().to_string(),
            &format!("{id}:/escape/{marker}-2"),
        ]);
        assert!(
            !Path::new("/etc").join(format!("{marker}-2")).exists(),
            "cp wrote the host's /etc"
        );
        assert!(env.leftovers(&[]).is_empty(), "{:?}", env.leftovers(&[]));
        env.ok(&["rm", "-f", &id]);
    }
}
