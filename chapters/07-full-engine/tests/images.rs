//! The image commands end to end: `images`, `image inspect`, `history`,
//! `tag`, `rmi`, `image prune`; `pull`, `push`, `login`, `logout` against
//! Debian's docker-registry on 127.0.0.1 with htpasswd auth; `save`,
//! `load`, `import`; `commit`. Images are made locally (the shared busybox
//! rootfs, imported), never fetched from Docker Hub.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use berth_test_support::registry::{RegistryConfig, TestRegistry};
use common::{Env, IMAGE, envs};

/// One engine (images do not depend on the runtime: the first one).
fn env(test: &str) -> Option<Env> {
    envs(test).into_iter().next()
}

/// `cmd` with `input` on its stdin, to its end.
fn with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start berth");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait for berth")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn images_lists_tags_and_inspects_as_docker() {
    let Some(env) = env("images_lists_tags_and_inspects_as_docker") else {
        return;
    };
    let out = env.ok(&["images"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["busybox", "latest"], "{out}");
    let id = row[2].to_string();
    assert_eq!(id.len(), 12);
    // The ID is the config digest, which inspect gives whole.
    let full = env.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    assert_eq!(
        full,
        env.ok(&["image", "inspect", "-f", "{{.Id}}", IMAGE]).trim()
    );
    assert!(full.starts_with(&format!("sha256:{id}")), "{full}");
    assert_eq!(env.ok(&["images", "-q"]), format!("{id}\n"));
    // tag: a second name for the same image; inspect shows both.
    assert_eq!(env.ok(&["tag", IMAGE, "web:v0.1"]), "");
    assert_eq!(env.ok(&["tag", &id, "127.0.0.1:5999/user/web:v0.2"]), "");
    let names = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("127.0.0.1:5999/user/web:v0.2 {id}"),
            format!("busybox:latest {id}"),
            format!("web:v0.1 {id}"),
        ]
    );
    assert_eq!(
        env.ok(&["images", "-q"]),
        format!("{id}\n"),
        "one image, three names"
    );
    let tags = env.ok(&["image", "inspect", "-f", "{{json .RepoTags}}", "web:v0.1"]);
    let tags: Vec<String> = serde_json::from_str(tags.trim()).unwrap();
    assert_eq!(tags.len(), 3, "{tags:?}");
    // Docker's inspect document: an array, docker's field names.
    let raw = env.ok(&["image", "inspect", IMAGE]);
    let keys: Vec<&str> = raw
        .lines()
        .filter(|l| l.starts_with("        \"") && !l.starts_with("         "))
        .map(|l| l.trim().split('"').nth(1).unwrap())
        .collect();
    assert_eq!(
        &keys[..8],
        [
            "Id",
            "RepoTags",
            "RepoDigests",
            "Parent",
            "Comment",
            "Created",
            "DockerVersion",
            "Author"
        ],
        "docker's order: {raw}"
    );
    let doc: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let doc = &doc[0];
    for field in [
        "Id",
        "RepoTags",
        "RepoDigests",
        "Created",
        "Author",
        "Config",
        "Architecture",
        "Os",
        "Size",
        "RootFS",
        "GraphDriver",
    ] {
        assert!(doc.get(field).is_some(), "no {field} in {doc}");
    }
    assert_eq!(doc["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(doc["RootFS"]["Type"], "layers");
    // A repository filter and --digests.
    let web = env.ok(&["images", "web"]);
    assert_eq!(web.lines().count(), 2, "{web}");
    assert!(web.lines().nth(1).unwrap().starts_with("web "), "{web}");
    let digests = env.ok(&["images", "--digests"]);
    assert!(
        digests.lines().next().unwrap().contains("DIGEST"),
        "{digests}"
    );
    assert!(digests.contains("sha256:"), "{digests}");
    // history: the image's one layer, under its ID.
    let history = env.ok(&["history", IMAGE]);
    let mut lines = history.lines();
    assert!(lines.next().unwrap().starts_with("IMAGE "), "{history}");
    assert!(lines.next().unwrap().starts_with(&id), "{history}");
    // `inspect` finds images too (after containers), and --type image.
    assert_eq!(env.ok(&["inspect", "-f", "{{.Id}}", IMAGE]).trim(), full);
    assert_eq!(
        env.ok(&["inspect", "--type", "image", "-f", "{{.Os}}", IMAGE])
            .trim(),
        "linux"
    );
    let run = env.berth(&["inspect", "--type", "container", IMAGE]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    // Filters: reference patterns, dangling.
    let web = env.ok(&[
        "images",
        "-f",
        "reference=web:*",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    assert_eq!(web, "web:v0.1\n");
    assert_eq!(env.ok(&["images", "-q", "-f", "dangling=true"]), "");
    let run = env.berth(&["images", "-f", "nosuch=1"]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert_eq!(run.stderr(), "Error: invalid filter 'nosuch'\n");
    // Unknown images: docker's message, exit 1.
    let run = env.berth(&["image", "inspect", "nosuch"]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr().contains("No such image: nosuch"),
        "{}",
        run.transcript()
    );
    let run = env.berth(&["tag", "nosuch", "other"]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert_eq!(run.stderr(), "Error: No such image: nosuch\n");
}

#[test]
fn rmi_refuses_an_image_a_container_uses_and_prune_removes_the_unused() {
    let Some(env) = env("rmi_refuses_an_image_a_container_uses_and_prune_removes_the_unused")
    else {
        return;
    };
    let id = env.ok(&["images", "-q"]).trim().to_string();
    env.ok(&["create", "--name", "user", IMAGE, "true"]);
    // The last name of an image a container uses: refused, nothing changed.
    let run = env.berth(&["rmi", IMAGE]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr().starts_with(&format!(
            "Error: conflict: unable to remove repository reference \"{IMAGE}\" (must force) - container "
        )),
        "{}",
        run.transcript()
    );
    assert!(env.ok(&["images"]).contains("busybox"));
    // Another name goes alone: only untagged.
    env.ok(&["tag", IMAGE, "other:1"]);
    assert_eq!(env.ok(&["rmi", "other:1"]), "Untagged: other:1\n");
    // -f: the name goes, the image stays for the container, as <none>.
    assert_eq!(env.ok(&["rmi", "-f", IMAGE]), "Untagged: busybox:latest\n");
    let images = env.ok(&["images"]);
    let row: Vec<&str> = images.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["<none>", "<none>", id.as_str()], "{images}");
    // The container still starts from it.
    assert_eq!(env.ok(&["start", "-a", "user"]), "");
    // prune keeps it while the container exists, removes it after.
    let out = text(&with_stdin(env.cmd(&["image", "prune"]), b"n\n").stdout);
    assert_eq!(
        out,
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] ",
        "docker's question on stdout; answered no: nothing done"
    );
    assert_eq!(env.ok(&["images", "-q"]), format!("{id}\n"));
    env.ok(&["rm", "user"]);
    let pruned = env.ok(&["image", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Images:\n"), "{pruned}");
    assert!(
        pruned.contains(&format!("deleted: sha256:{id}")),
        "{pruned}"
    );
    assert!(pruned.contains("Total reclaimed space: "), "{pruned}");
    assert_eq!(env.ok(&["images", "-q"]), "");
    // rmi of what is not there: docker's message.
    let run = env.berth(&["rmi", "busybox"]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert_eq!(run.stderr(), "Error: No such image: busybox\n");
}

#[test]
fn image_prune_all_and_rmi_by_id_delete_unused_images() {
    let Some(env) = env("image_prune_all_and_rmi_by_id_delete_unused_images") else {
        return;
    };
    let id = env.ok(&["images", "-q"]).trim().to_string();
    // By ID, an image a running container uses: not even with -f.
    let running = env.run_d(&[IMAGE, "sleep", "60"]);
    let run = env.berth(&["rmi", "-f", &id]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert_eq!(
        run.stderr(),
        format!(
            "Error: conflict: unable to delete {id} (cannot be forced) - image is being used by running container {}\n",
            &running[..12]
        )
    );
    env.ok(&["rm", "-f", &running]);
    env.ok(&["tag", IMAGE, "web:v1"]);
    // By ID, with names in two repositories: refused unless forced.
    let run = env.berth(&["rmi", &id]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert_eq!(
        run.stderr(),
        format!(
            "Error: conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories\n"
        )
    );
    env.ok(&["rmi", "web:v1"]);
    env.ok(&["tag", IMAGE, "busybox:v1"]);
    // By ID, every name of one repository goes, and the image with them.
    let out = env.ok(&["rmi", &id]);
    let mut untagged: Vec<&str> = out.lines().filter(|l| l.starts_with("Untagged")).collect();
    untagged.sort();
    assert_eq!(
        untagged,
        ["Untagged: busybox:latest", "Untagged: busybox:v1"],
        "{out}"
    );
    assert!(out.contains(&format!("Deleted: sha256:{id}")), "{out}");
    assert_eq!(env.ok(&["images", "-q"]), "");
    let again = Env::new(env.runtime.clone());
    again.ok(&["tag", IMAGE, "web:v1"]);
    let pruned = again.ok(&["image", "prune", "-a", "-f"]);
    assert!(pruned.contains("untagged: busybox:latest"), "{pruned}");
    assert!(pruned.contains("untagged: web:v1"), "{pruned}");
    assert_eq!(again.ok(&["images", "-q"]), "");
}

#[test]
fn push_pull_login_logout_with_htpasswd() {
    let test = "push_pull_login_logout_with_htpasswd";
    let Some(env) = env(test) else {
        return;
    };
    let Some(registry) = TestRegistry::start_with(
        test,
        RegistryConfig {
            htpasswd: Some(("alice".into(), "s3cret".into())),
        },
    ) else {
        return;
    };
    let config = tempfile::tempdir().unwrap();
    let berth = |args: &[&str]| {
        let mut cmd = env.cmd(args);
        cmd.env("DOCKER_CONFIG", config.path());
        cmd
    };
    let ok = |args: &[&str]| {
        let out = berth(args).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let name = format!("{}/user/web:v0.2", registry.addr);
    ok(&["tag", IMAGE, &name]);
    // Without credentials: refused.
    let out = berth(&["push", &name]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // A wrong password: docker's message, nothing stored.
    let out = with_stdin(
        berth(&["login", "-u", "alice", "--password-stdin", &registry.addr]),
        b"wrong\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unauthorized: incorrect username or password"),
        "{}",
        text(&out.stderr)
    );
    assert!(!config.path().join("config.json").exists());
    // login: checked, then stored as docker stores it.
    let out = with_stdin(
        berth(&["login", "-u", "alice", "--password-stdin", &registry.addr]),
        b"s3cret\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Login Succeeded\n");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(
        stored["auths"][&registry.addr]["auth"], "YWxpY2U6czNjcmV0",
        "base64 of alice:s3cret"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(config.path().join("config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // push: the layer, then the tag's digest.
    let out = ok(&["push", &name]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("The push refers to repository [{}/user/web]", registry.addr)
    );
    assert!(out.contains(": Pushed\n"), "{out}");
    let last = out.lines().last().unwrap();
    assert!(last.starts_with("v0.2: digest: sha256:"), "{out}");
    // rmi, pull back: progress on stderr, the name on stdout; it runs.
    ok(&["rmi", &name]);
    let out = berth(&["pull", &name]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{name}\n"));
    let progress = text(&out.stderr);
    assert!(progress.starts_with("v0.2: Pulling from "), "{progress}");
    assert!(progress.contains("Digest: sha256:"), "{progress}");
    assert!(
        progress.contains(&format!("Status: Image is up to date for {name}"))
            || progress.contains(&format!("Status: Downloaded newer image for {name}")),
        "{progress}"
    );
    assert_eq!(ok(&["run", "--rm", &name, "echo", "pulled"]), "pulled\n");
    // logout: the entry goes, and pulls are refused again.
    assert_eq!(
        ok(&["logout", &registry.addr]),
        format!("Removing login credentials for {}\n", registry.addr)
    );
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config.path().join("config.json")).unwrap()).unwrap();
    assert!(stored["auths"].get(&registry.addr).is_none(), "{stored}");
    ok(&["rmi", &name]);
    let out = berth(&["pull", &name]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

#[test]
fn save_load_and_import_move_images_as_files() {
    let Some(env) = env("save_load_and_import_move_images_as_files") else {
        return;
    };
    let id = env.ok(&["images", "-q"]).trim().to_string();
    env.ok(&["tag", IMAGE, "user/web:v0.1"]);
    env.ok(&["tag", IMAGE, "user/web:v0.2"]);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("web.tar");
    // save a repository: all its tags.
    assert_eq!(
        env.ok(&["save", "-o", archive.to_str().unwrap(), "user/web"]),
        ""
    );
    env.ok(&["rmi", "user/web:v0.1", "user/web:v0.2"]);
    let out = env.ok(&["load", "-i", archive.to_str().unwrap()]);
    let mut loaded: Vec<&str> = out.lines().collect();
    loaded.sort();
    assert_eq!(
        loaded,
        ["Loaded image: user/web:v0.1", "Loaded image: user/web:v0.2"]
    );
    assert_eq!(env.ok(&["images", "-q"]), format!("{id}\n"));
    // Through stdout and stdin.
    let out = env.cmd(&["save", IMAGE]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let other = Env::new(env.runtime.clone());
    other.ok(&["rmi", IMAGE]);
    let loaded = with_stdin(other.cmd(&["load"]), &out.stdout);
    assert!(loaded.status.success(), "{}", text(&loaded.stderr));
    assert_eq!(text(&loaded.stdout), "Loaded image: busybox:latest\n");
    assert_eq!(other.ok(&["images", "-q"]), format!("{id}\n"));
    // save to a terminal-less stdout works; a bad name does not.
    let run = env.berth(&["save", "-o", archive.to_str().unwrap(), "nosuch"]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    // import: a tarball of a tree, with a CMD; the image runs it.
    let tarball = dir.path().join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(berth_test_support::rootfs())
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let out = env.ok(&[
        "import",
        "-c",
        r#"CMD ["/bin/sh","-c","echo imported"]"#,
        "-c",
        "ENV GREETING=hi",
        tarball.to_str().unwrap(),
        "imported:v1",
    ]);
    assert!(
        out.starts_with("sha256:") && out.trim().len() == 71,
        "{out}"
    );
    assert_eq!(env.ok(&["run", "--rm", "imported:v1"]), "imported\n");
    // Dated now, with docker's history step.
    let history = env.ok(&[
        "history",
        "--format",
        "{{.CreatedSince}}|{{.Comment}}",
        "imported:v1",
    ]);
    assert!(
        history.ends_with(&format!("ago|Imported from {}\n", tarball.display())),
        "{history}"
    );
    let messaged = env.ok(&[
        "import",
        "-m",
        "from a tarball",
        tarball.to_str().unwrap(),
        "imported:v2",
    ]);
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{.Comment}}", "imported:v2"]),
        "from a tarball\n"
    );
    assert!(messaged.starts_with("sha256:"), "{messaged}");
    assert_eq!(
        env.ok(&["run", "--rm", "imported:v1", "sh", "-c", "echo $GREETING"]),
        "hi\n"
    );
    // From stdin, without a name: a <none> image, tagged afterwards by ID.
    let out = with_stdin(env.cmd(&["import", "-"]), &std::fs::read(&tarball).unwrap());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let new_id = text(&out.stdout).trim().to_string();
    let images = env.ok(&["images", "--format", "{{.Repository}} {{.ID}}"]);
    assert!(
        images.contains(&format!("<none> {}", &new_id[7..19])),
        "{images}"
    );
    assert_eq!(
        env.ok(&["images", "-q", "--filter", "dangling=true"]),
        format!("{}\n", &new_id[7..19])
    );
    env.ok(&["tag", &new_id[7..19], "named:v1"]);
    assert_eq!(env.ok(&["images", "-q", "--filter", "dangling=true"]), "");
    let images = env.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(!images.contains("<none>"), "{images}");
}

#[test]
fn commit_makes_an_image_of_the_containers_changes() {
    let Some(env) = env("commit_makes_an_image_of_the_containers_changes") else {
        return;
    };
    let id = env.run_d(&[
        "--name",
        "test",
        IMAGE,
        "sh",
        "-c",
        "mkdir /data && echo 'hello world' > /data/index.html && rm /bin/true && touch /ready && sleep 60",
    ]);
    let ready = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while env.berth(&["exec", &id, "test", "-e", "/ready"]).code() != Some(0) {
        assert!(
            std::time::Instant::now() < ready,
            "the container never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Without a name: an ID, shown as <none>.
    let out = env.ok(&[
        "commit",
        "-a",
        "Berth Tester",
        "-p",
        "-m",
        "first commit",
        "test",
    ]);
    let image = out.trim().to_string();
    assert!(image.starts_with("sha256:") && image.len() == 71, "{out}");
    let images = env.ok(&["images"]);
    let row: Vec<&str> = images.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["<none>", "<none>", &image[7..19]], "{images}");
    // The container runs on, unpaused.
    assert_eq!(env.inspect("test", "{{.State.Status}}"), "running");
    env.ok(&["tag", &image[7..19], "web:v0.1"]);
    // The change is in the image, the deletion too (a whiteout).
    assert_eq!(
        env.ok(&["run", "--rm", "web:v0.1", "cat", "/data/index.html"]),
        "hello world\n"
    );
    let run = env.berth(&["run", "--rm", "web:v0.1", "ls", "/bin/true"]);
    assert_ne!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        env.ok(&["run", "--rm", IMAGE, "ls", "/bin/true"])
            .contains("/bin/true")
    );
    // Author, comment, history.
    assert_eq!(
        env.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Author}}|{{.Comment}}|{{len .RootFS.Layers}}",
            "web:v0.1"
        ])
        .trim(),
        "Berth Tester|first commit|2"
    );
    // The new layer is unpacked already, as pull and load leave theirs.
    let top = env.ok(&[
        "image",
        "inspect",
        "-f",
        "{{index .RootFS.Layers 1}}",
        "web:v0.1",
    ]);
    let top = top.trim().trim_start_matches("sha256:");
    assert!(env.root.join("layers/sha256").join(top).is_dir(), "{top}");
    // Only the container's own changes: not the mount points the runtime
    // made for /proc, /sys, /dev and the engine's /etc files.
    let layer = env.root.join("layers/sha256").join(top);
    let mut entries: Vec<String> = std::fs::read_dir(&layer)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["bin", "data", "ready"], "{}", layer.display());
    let history = env.ok(&["history", "web:v0.1"]);
    let second: Vec<&str> = history.lines().nth(1).unwrap().split("   ").collect();
    assert!(second[0].starts_with(&image[7..19]), "{history}");
    assert!(
        history.lines().nth(1).unwrap().ends_with("first commit"),
        "{history}"
    );
    assert!(
        history.lines().nth(2).unwrap().starts_with("<missing>"),
        "{history}"
    );
    // -c: the config changes; the committed image runs them.
    env.ok(&[
        "commit",
        "-c",
        r#"CMD ["/bin/cat","/data/index.html"]"#,
        "-c",
        "ENV SITE=/data",
        "-c",
        "WORKDIR /data",
        "test",
        "web:v0.4",
    ]);
    assert_eq!(env.ok(&["run", "--rm", "web:v0.4"]), "hello world\n");
    assert_eq!(
        env.ok(&["run", "--rm", "web:v0.4", "sh", "-c", "echo $SITE $(pwd)"]),
        "/data /data\n"
    );
    // Bad input: docker's words, nothing made.
    let before = env.ok(&["images", "-q"]);
    let run = env.berth(&["commit", "-c", "RUN ls", "test", "web:bad"]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr().contains("RUN is not a valid change command"),
        "{}",
        run.transcript()
    );
    let run = env.berth(&["commit", "nosuch"]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert_eq!(run.stderr(), "Error: No such container: nosuch\n");
    assert_eq!(env.ok(&["images", "-q"]), before);
    env.ok(&["rm", "-f", "test"]);
}

/// The classic images session (DESIGN.md, "The classic sessions"),
/// replayed with berth and a local registry in place of Docker Hub: the
/// base image comes from the registry's `library/busybox`, `-it` becomes
/// `-d` (no terminal in a test), and `curl IPADDRESS` becomes a `wget`
/// inside the container (networking is the next issue).
#[test]
fn classic_images_session() {
    let test = "classic_images_session";
    let Some(env) = env(test) else {
        return;
    };
    let Some(registry) = TestRegistry::start_with(
        test,
        RegistryConfig {
            htpasswd: Some(("user".into(), "pass".into())),
        },
    ) else {
        return;
    };
    let config = tempfile::tempdir().unwrap();
    let berth = |args: &[&str]| {
        let mut cmd = env.cmd(args);
        cmd.env("DOCKER_CONFIG", config.path());
        cmd
    };
    let ok = |args: &[&str]| {
        let out = berth(args).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let reg = registry.addr.clone();
    let base = format!("{reg}/library/busybox:latest");
    let out = with_stdin(
        berth(&["login", "-u", "user", "--password-stdin", &reg]),
        b"pass",
    );
    assert_eq!(
        text(&out.stdout),
        "Login Succeeded\n",
        "{}",
        text(&out.stderr)
    );
    // The registry's busybox, pulled as `pull busybox` would.
    ok(&["tag", IMAGE, &base]);
    ok(&["push", &base]);
    ok(&["rmi", &base, IMAGE]);
    assert_eq!(ok(&["pull", &base]), format!("{base}\n"));
    // run, and make /data/index.html inside.
    ok(&[
        "run",
        "-d",
        "--name",
        "test",
        &base,
        "sh",
        "-c",
        "mkdir /data; echo 'hello world' > /data/index.html; sleep 120",
    ]);
    let ready = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while berth(&["exec", "test", "test", "-e", "/data/index.html"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        assert!(std::time::Instant::now() < ready, "no /data/index.html");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // commit -a … -p -m "first commit" test: the new image's ID.
    let id = ok(&[
        "commit",
        "-a",
        "Berth Tester",
        "-p",
        "-m",
        "first commit",
        "test",
    ]);
    let short = &id.trim()[7..19];
    let images = ok(&["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("<none>") && l.contains(short)),
        "{images}"
    );
    ok(&["tag", short, "web:v0.1"]);
    let v2 = format!("{reg}/user/web:v0.2");
    ok(&["tag", "web:v0.1", &v2]);
    // push: the new layer Pushed, the base Mounted from library/busybox.
    let out = ok(&["push", &v2]);
    assert_eq!(
        out.lines().next().unwrap(),
        format!("The push refers to repository [{reg}/user/web]")
    );
    assert_eq!(out.matches(": Pushed").count(), 1, "{out}");
    assert_eq!(
        out.matches(": Mounted from library/busybox").count(),
        1,
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("v0.2: digest: sha256:")
    );
    assert_eq!(ok(&["rmi", "-f", &v2]), format!("Untagged: {v2}\n"));
    assert_eq!(ok(&["pull", &v2]), format!("{v2}\n"));
    assert_eq!(
        ok(&["run", "--rm", &v2, "cat", "/data/index.html"]),
        "hello world\n"
    );
    // commit -c 'CMD ["/bin/httpd",...]' (busybox's httpd is in /usr/sbin
    // here), push, run -d: it serves the page.
    let v4 = format!("{reg}/user/web:v0.4");
    ok(&[
        "commit",
        "-a",
        "Berth Tester",
        "-c",
        r#"CMD ["/usr/sbin/httpd","-f","-h","/data"]"#,
        "-p",
        "test",
        &v4,
    ]);
    ok(&["push", &v4]);
    ok(&["rm", "-f", "test"]);
    ok(&["run", "--name", "test", "-d", &v4]);
    let ps = ok(&["ps", "--format", "{{.Names}} {{.Image}}"]);
    assert_eq!(ps, format!("test {v4}\n"));
    assert_eq!(
        ok(&["inspect", "-f", "{{json .Config.Cmd}}", "test"]).trim(),
        r#"["/usr/sbin/httpd","-f","-h","/data"]"#
    );
    let served = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let page = loop {
        let out = berth(&[
            "exec",
            "test",
            "wget",
            "-qO-",
            "http://127.0.0.1/index.html",
        ])
        .output()
        .unwrap();
        if out.status.success() {
            break text(&out.stdout);
        }
        assert!(std::time::Instant::now() < served, "httpd never answered");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(page, "hello world\n");
    ok(&["rm", "-f", "test"]);
    // save -o web.tar REPO; rmi both tags; load -i: both back.
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("web.tar");
    ok(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        &format!("{reg}/user/web"),
    ]);
    let out = ok(&["rmi", &v2, &v4]);
    assert!(out.contains(&format!("Untagged: {v2}\n")), "{out}");
    assert!(out.contains(&format!("Untagged: {v4}\n")), "{out}");
    assert!(out.contains("Deleted: sha256:"), "{out}");
    let out = ok(&["load", "-i", archive.to_str().unwrap()]);
    let mut loaded: Vec<&str> = out.lines().collect();
    loaded.sort();
    assert_eq!(
        loaded,
        [format!("Loaded image: {v2}"), format!("Loaded image: {v4}")]
    );
    let images = ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.contains(&v2) && images.contains(&v4), "{images}");
}

#[test]
fn login_prompts_on_a_terminal_without_echoing_the_password() {
    let test = "login_prompts_on_a_terminal_without_echoing_the_password";
    let Some(env) = env(test) else {
        return;
    };
    let Some(registry) = TestRegistry::start_with(
        test,
        RegistryConfig {
            htpasswd: Some(("alice".into(), "s3cret".into())),
        },
    ) else {
        return;
    };
    use std::io::Read;
    let config = tempfile::tempdir().unwrap();
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut cmd = env.cmd(&["login", &registry.addr]);
    cmd.env("DOCKER_CONFIG", config.path())
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave));
    let mut child = cmd.spawn().expect("spawn berth on a pty");
    drop(cmd);
    let mut master = std::fs::File::from(pty.master);
    let mut screen = String::new();
    // Read the terminal until `text` shows (or berth ends).
    let mut until = |master: &mut std::fs::File, text: &str| {
        let mut buf = [0u8; 1024];
        while !screen.contains(text) {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => screen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        screen.clone()
    };
    until(&mut master, "Username: ");
    master.write_all(b"alice\n").unwrap();
    until(&mut master, "Password: ");
    master.write_all(b"s3cret\n").unwrap();
    let shown = until(&mut master, "Login Succeeded");
    assert!(child.wait().unwrap().success(), "{shown}");
    assert!(
        shown.contains("Username: alice"),
        "the user name echoes: {shown}"
    );
    assert!(
        !shown.contains("s3cret"),
        "the password must not echo: {shown}"
    );
    let stored = std::fs::read_to_string(config.path().join("config.json")).unwrap();
    assert!(stored.contains("YWxpY2U6czNjcmV0"), "{stored}");
    // Without a terminal and without --password-stdin: docker's refusal.
    let run = env.berth(&["login", "-u", "alice", &registry.addr]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert_eq!(
        run.stderr(),
        "Error: Cannot perform an interactive login from a non TTY device\n"
    );
}

/// Chapter 6's registry as the other side, with bearer tokens over
/// htpasswd users (Docker Hub's scheme). Its binary is built beside berth
/// by `cargo test --workspace` (or `cargo build -p ch06-registry`).
#[test]
fn push_and_pull_with_chapter_6s_registry_and_tokens() {
    let test = "push_and_pull_with_chapter_6s_registry_and_tokens";
    let Some(env) = env(test) else {
        return;
    };
    let server = common::berth_bin().with_file_name("ch06-registry");
    if !server.exists() {
        berth_test_support::skip(
            test,
            &format!(
                "{} is not built: cargo build -p ch06-registry",
                server.display()
            ),
        );
        return;
    }
    if !berth_test_support::registry::require_tool(test, "htpasswd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let out = Command::new("htpasswd")
        .args(["-Bbn", "bob", "hunter2"])
        .output()
        .unwrap();
    std::fs::write(&htpasswd, out.stdout).unwrap();
    let mut child = Command::new(&server)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--token-realm",
            "--htpasswd",
        ])
        .arg(&htpasswd)
        .arg("--root")
        .arg(dir.path().join("registry"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ch06-registry");
    // Stopped (by its own handle) whatever the test does.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = child.stderr.take().unwrap();
    let child = Stop(child);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split("listening on http://")
                .nth(1)
                .map(|rest| rest.split(',').next().unwrap_or("").to_string())
        })
        .expect("ch06-registry says where it listens");
    // Keep reading its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let config = tempfile::tempdir().unwrap();
    let berth = |args: &[&str]| {
        let mut cmd = env.cmd(args);
        cmd.env("DOCKER_CONFIG", config.path());
        cmd
    };
    let ok = |args: &[&str]| {
        let out = berth(args).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let name = format!("{addr}/bob/app:1");
    ok(&["tag", IMAGE, &name]);
    let out = berth(&["push", &name]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "anonymous push: {}",
        text(&out.stderr)
    );
    let out = with_stdin(
        berth(&["login", "-u", "bob", "--password-stdin", &addr]),
        b"wrong\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!config.path().join("config.json").exists());
    let out = with_stdin(
        berth(&["login", "-u", "bob", "--password-stdin", &addr]),
        b"hunter2\n",
    );
    assert_eq!(
        text(&out.stdout),
        "Login Succeeded\n",
        "{}",
        text(&out.stderr)
    );
    let pushed = ok(&["push", &name]);
    assert!(pushed.contains(": Pushed\n"), "{pushed}");
    ok(&["rmi", &name]);
    assert_eq!(ok(&["pull", &name]), format!("{name}\n"));
    assert_eq!(
        ok(&["run", "--rm", &name, "echo", "from ch06"]),
        "from ch06\n"
    );
    drop(child);
}
