//! Volumes, binds and tmpfs, as docker's users know them: data that
//! outlives the container, the image's content on a volume's first use,
//! anonymous volumes gone with `--rm` and `rm -v`, a volume in use kept,
//! bad specs refused with nothing made.

mod common;

use common::{Env, IMAGE, envs};

/// An image with `VOLUME /etc/app` holding a default file, from `env`'s
/// busybox image.
fn image_with_volume(env: &Env) -> &'static str {
    env.ok(&[
        "run",
        "--name",
        "maker",
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /etc/app && echo default > /etc/app/conf",
    ]);
    env.ok(&["commit", "-c", "VOLUME /etc/app", "maker", "withvol:1"]);
    env.ok(&["rm", "maker"]);
    "withvol:1"
}

fn volume_names(env: &Env) -> Vec<String> {
    env.ok(&["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_named_volume_outlives_its_containers_and_a_read_only_one_stays_so() {
    for env in envs("volumes::named") {
        env.ok(&["volume", "create", "data"]);
        env.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data",
            IMAGE,
            "sh",
            "-c",
            "echo kept > /data/f",
        ]);
        // Another container sees it; through :ro it cannot change it.
        let run = env.berth(&[
            "run",
            "--rm",
            "-v",
            "data:/data:ro",
            IMAGE,
            "sh",
            "-c",
            "cat /data/f; echo x > /data/g || echo refused",
        ]);
        assert_eq!(run.stdout(), "kept\nrefused\n", "{}", run.transcript());
        assert!(
            run.stderr().contains("Read-only file system"),
            "{}",
            run.transcript()
        );
        // Its data is where inspect says.
        let mountpoint = env.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "data"]);
        let file = std::path::Path::new(mountpoint.trim()).join("f");
        assert_eq!(std::fs::read_to_string(file).unwrap(), "kept\n");
        // Named volumes are not anonymous: --rm left it.
        assert_eq!(volume_names(&env), ["data"]);
    }
}

#[test]
fn a_new_volume_gets_the_images_content_and_anonymous_ones_go_with_the_container() {
    for env in envs("volumes::anonymous") {
        let image = image_with_volume(&env);
        // The image's VOLUME: an anonymous volume, filled from the image.
        let id = env.run_d(&[image, "sleep", "60"]);
        assert_eq!(env.ok(&["exec", &id, "cat", "/etc/app/conf"]), "default\n");
        let mounts = env.inspect(&id, "{{range .Mounts}}{{.Type}} {{.Destination}}{{end}}");
        assert_eq!(mounts, "volume /etc/app");
        let names = volume_names(&env);
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(names[0].len(), 64, "an anonymous volume's name: {names:?}");
        // A change to it is in the volume, not the container's layer.
        env.ok(&["exec", &id, "sh", "-c", "echo changed > /etc/app/conf"]);
        // rm without -v keeps it; with -v it goes.
        env.ok(&["rm", "-f", &id]);
        assert_eq!(volume_names(&env), names);
        env.ok(&["volume", "prune", "-f"]);
        assert!(
            volume_names(&env).is_empty(),
            "prune removes unused anonymous volumes"
        );
        let id = env.run_d(&[image, "sleep", "60"]);
        env.ok(&["rm", "-f", "-v", &id]);
        assert!(volume_names(&env).is_empty(), "rm -v removes them");
        // --rm takes them along.
        env.ok(&["run", "--rm", image, "true"]);
        assert!(volume_names(&env).is_empty(), "--rm removes them");
        // A named volume at that path replaces the anonymous one.
        env.ok(&[
            "run",
            "--rm",
            "-v",
            "conf:/etc/app",
            image,
            "cat",
            "/etc/app/conf",
        ]);
        assert_eq!(volume_names(&env), ["conf"]);
    }
}

#[test]
fn a_volume_in_use_is_kept_and_binds_and_tmpfs_mount_as_asked() {
    for env in envs("volumes::in_use") {
        let id = env.run_d(&["-v", "busy:/busy", IMAGE, "sleep", "60"]);
        let run = env.berth(&["volume", "rm", "busy"]);
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(
            run.stderr().contains("volume is in use") && run.stderr().contains(&id),
            "{}",
            run.transcript()
        );
        env.ok(&["rm", "-f", &id]);
        assert_eq!(env.ok(&["volume", "rm", "busy"]), "busy\n");
        // A bind mount, read-only, and a tmpfs that executes nothing.
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("h"), "from the host\n").unwrap();
        let bind = format!("{}:/h:ro", host.path().display());
        let run = env.berth(&[
            "run", "--rm", "-v", &bind, "--tmpfs", "/scratch:size=1m", IMAGE, "sh", "-c",
            "cat /h/h; touch /h/new || echo ro; cp /bin/busybox /scratch/b && /scratch/b true || echo noexec; grep ' /scratch ' /proc/mounts",
        ]);
        let out = run.stdout();
        assert!(
            out.starts_with("from the host\nro\nnoexec\n"),
            "{}",
            run.transcript()
        );
        assert!(
            out.contains("tmpfs /scratch tmpfs") && out.contains("size=1024k"),
            "{out}"
        );
        assert!(!host.path().join("new").exists());
        // --mount too.
        let mount = format!(
            "type=bind,source={},target=/m,readonly",
            host.path().display()
        );
        assert_eq!(
            env.ok(&["run", "--rm", "--mount", &mount, IMAGE, "cat", "/m/h"]),
            "from the host\n"
        );
    }
}

#[test]
fn bad_mount_specs_are_refused_and_nothing_is_made() {
    for env in envs("volumes::bad") {
        for (spec, words) in [
            (vec!["-v", "./rel:/x"], "use absolute path"),
            (vec!["-v", "/a:relative"], "must be absolute"),
            (vec!["-v", "/a:/"], "can't be '/'"),
            (vec!["-v", "/a:/x:bogus"], "invalid mode"),
            (
                vec!["-v", "one:/x", "-v", "two:/x"],
                "Duplicate mount point",
            ),
            (
                vec!["--mount", "type=bind,source=/no/such/dir,target=/x"],
                "bind source path does not exist",
            ),
            (vec!["--mount", "type=nfs,target=/x"], "unknown mount type"),
        ] {
            let mut args = vec!["run", "--rm"];
            args.extend(&spec);
            args.extend([IMAGE, "true"]);
            let run = env.berth(&args);
            assert_eq!(run.code(), Some(125), "{}", run.transcript());
            assert!(run.stderr().contains(words), "{}", run.transcript());
        }
        assert_eq!(env.ok(&["ps", "-aq"]), "", "a refused run left a container");
        assert!(volume_names(&env).is_empty(), "a refused run left a volume");
    }
}
