//! `berth build` end to end: real Dockerfiles built from the local busybox
//! image (tests/common), their images run and their files checked; the
//! cache counted; digests reproduced; errors a Dockerfile author reads.
//! RUN steps run with `--network none` (nothing touches the machine's
//! network); the httpd site is served on the container's own loopback.

mod common;

use std::path::Path;

use berth_test_support::Run;
use common::{Env, envs};

/// One engine (a build runs its RUN steps with its runtime).
fn env(test: &str) -> Option<Env> {
    envs(test).into_iter().next()
}

/// Write `files` (path, content) under `dir`.
fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// `berth build --network none --runtime R ARGS`.
fn build(env: &Env, args: &[&str]) -> Run {
    let mut all = vec!["build", "--network", "none", "--runtime", &env.runtime];
    all.extend(args);
    env.berth(&all)
}

fn build_ok(env: &Env, args: &[&str]) -> String {
    let run = build(env, args);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    run.stdout()
}

/// `run --rm IMAGE CMD...`: its stdout.
fn run_rm(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend(args);
    env.ok(&all)
}

fn context() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn a_static_binary_from_a_build_stage_runs_from_scratch() {
    let Some(env) = env("a_static_binary_from_a_build_stage_runs_from_scratch") else {
        return;
    };
    let ctx = context();
    write_files(
        ctx.path(),
        &[(
            "Dockerfile",
            "FROM busybox AS build\n\
             RUN mkdir -p /out && cp /bin/busybox /out/busybox && echo built > /out/stamp\n\
             \n\
             FROM scratch\n\
             COPY --from=build /out/busybox /bin/busybox\n\
             COPY --from=build /out/stamp /stamp\n\
             ENTRYPOINT [\"/bin/busybox\"]\n\
             CMD [\"cat\", \"/stamp\"]\n",
        )],
    );
    let out = build_ok(&env, &["-t", "small:1", ctx.path().to_str().unwrap()]);
    assert!(out.contains("Step 1/7 : FROM busybox AS build"), "{out}");
    assert!(out.contains("Step 3/7 : FROM scratch"), "{out}");
    assert!(out.contains(" ---> Running in "), "{out}");
    assert!(out.contains("Removing intermediate container "), "{out}");
    assert!(out.contains("Successfully tagged small:1"), "{out}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap()
        .to_string();
    assert!(
        env.ok(&["image", "inspect", "-f", "{{.Id}}", "small:1"])
            .contains(&id)
    );
    // The image runs: its entrypoint and cmd, nothing but the two files.
    assert_eq!(run_rm(&env, &["small:1"]), "built\n");
    let listing = run_rm(&env, &["small:1", "ls", "/"]);
    let mut names: Vec<&str> = listing.split_whitespace().collect();
    names.sort();
    // The runtime's mount points are there too; the image's files are
    // bin and stamp only.
    for name in ["bin", "stamp"] {
        assert!(names.contains(&name), "{listing}");
    }
    assert!(!names.contains(&"out"), "{listing}");
    // Two layers (the two COPYs), history for every step of the stage.
    let layers = env.ok(&[
        "image",
        "inspect",
        "-f",
        "{{len .RootFS.Layers}}",
        "small:1",
    ]);
    assert_eq!(layers.trim(), "2");
    // --target: the build stage alone (its RUN from cache).
    let out = build_ok(
        &env,
        &[
            "--target",
            "build",
            "-t",
            "builder",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(out.contains("Step 2/2 : RUN"), "{out}");
    assert!(out.contains(" ---> Using cache"), "{out}");
    assert_eq!(run_rm(&env, &["builder", "cat", "/out/stamp"]), "built\n");
    let run = build(&env, &["--target", "nope", ctx.path().to_str().unwrap()]);
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stderr()
            .contains("target stage \"nope\" could not be found"),
        "{}",
        run.stderr()
    );
    // COPY --from an image (not a stage) by name.
    let other = context();
    write_files(
        other.path(),
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY --from=busybox /bin/busybox /busybox\nCMD [\"/busybox\", \"echo\", \"from an image\"]\n",
        )],
    );
    build_ok(&env, &["-t", "fromimage", other.path().to_str().unwrap()]);
    assert_eq!(run_rm(&env, &["fromimage"]), "from an image\n");
}

#[test]
fn a_busybox_httpd_site_serves_its_copied_file() {
    let Some(env) = env("a_busybox_httpd_site_serves_its_copied_file") else {
        return;
    };
    let ctx = context();
    write_files(
        ctx.path(),
        &[
            (
                "Dockerfile",
                "FROM busybox\n\
                 ENV SITE=/srv/www\n\
                 WORKDIR $SITE\n\
                 COPY site/ ./\n\
                 RUN chmod -R a+rX . && ls > /listing\n\
                 EXPOSE 8080\n\
                 CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/srv/www\"]\n",
            ),
            ("site/index.html", "hello world\n"),
            ("site/css/site.css", "body {}\n"),
        ],
    );
    build_ok(&env, &["-t", "web:v1", ctx.path().to_str().unwrap()]);
    let config = env.ok(&["image", "inspect", "-f", "{{json .Config}}", "web:v1"]);
    let config: serde_json::Value = serde_json::from_str(config.trim()).unwrap();
    assert_eq!(config["WorkingDir"], "/srv/www");
    assert_eq!(config["Cmd"][0], "httpd");
    assert!(config["ExposedPorts"]["8080/tcp"].is_object(), "{config}");
    // The server, on the container's own loopback.
    let page = run_rm(
        &env,
        &[
            "web:v1",
            "sh",
            "-c",
            "httpd -p 127.0.0.1:8080 -h /srv/www && sleep 0.3 && wget -qO- http://127.0.0.1:8080/index.html && wget -qO- http://127.0.0.1:8080/css/site.css && cat /listing",
        ],
    );
    assert_eq!(page, "hello world\nbody {}\ncss\nindex.html\n");
}

#[test]
fn build_args_and_env_are_substituted_as_docker_does() {
    let Some(env) = env("build_args_and_env_are_substituted_as_docker_does") else {
        return;
    };
    let ctx = context();
    write_files(
        ctx.path(),
        &[
            (
                "Dockerfile",
                "ARG BASE=busybox\n\
                 FROM ${BASE}\n\
                 ARG VERSION=1.0\n\
                 ARG FLAVOUR\n\
                 ENV APP_VERSION=$VERSION APP_DIR=/opt/app \\\n\
                     GREETING=\"hello ${NAME:-world}\"\n\
                 LABEL version=\"${VERSION}\" flavour=${FLAVOUR:-plain} set=${VERSION:+yes}\n\
                 COPY files/${VERSION}.txt ${APP_DIR}/\n\
                 RUN echo \"$VERSION $FLAVOUR $APP_VERSION\" > /built-with\n",
            ),
            ("files/1.0.txt", "one\n"),
            ("files/2.0.txt", "two\n"),
        ],
    );
    build_ok(
        &env,
        &[
            "-t",
            "args:v2",
            "--build-arg",
            "VERSION=2.0",
            "--build-arg",
            "FLAVOUR=sweet",
            ctx.path().to_str().unwrap(),
        ],
    );
    let env_list = env.ok(&["image", "inspect", "-f", "{{json .Config.Env}}", "args:v2"]);
    let env_list: Vec<String> = serde_json::from_str(env_list.trim()).unwrap();
    assert!(
        env_list.contains(&"APP_VERSION=2.0".to_string()),
        "{env_list:?}"
    );
    assert!(
        env_list.contains(&"APP_DIR=/opt/app".to_string()),
        "{env_list:?}"
    );
    assert!(
        env_list.contains(&"GREETING=hello world".to_string()),
        "{env_list:?}"
    );
    assert!(
        !env_list.iter().any(|e| e.starts_with("VERSION=")),
        "ARGs are not kept in the image: {env_list:?}"
    );
    let labels = env.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Labels}}",
        "args:v2",
    ]);
    let labels: serde_json::Value = serde_json::from_str(labels.trim()).unwrap();
    assert_eq!(labels["version"], "2.0");
    assert_eq!(labels["flavour"], "sweet");
    assert_eq!(labels["set"], "yes");
    assert_eq!(
        run_rm(&env, &["args:v2", "cat", "/opt/app/2.0.txt", "/built-with"]),
        "two\n2.0 sweet 2.0\n"
    );
    // The defaults without build args.
    build_ok(&env, &["-t", "args:v1", ctx.path().to_str().unwrap()]);
    assert_eq!(
        run_rm(&env, &["args:v1", "cat", "/opt/app/1.0.txt", "/built-with"]),
        "one\n1.0  1.0\n"
    );
    let labels = env.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Labels}}",
        "args:v1",
    ]);
    let labels: serde_json::Value = serde_json::from_str(labels.trim()).unwrap();
    assert_eq!(labels["flavour"], "plain");
}

#[test]
fn dockerignore_keeps_files_out_of_copy() {
    let Some(env) = env("dockerignore_keeps_files_out_of_copy") else {
        return;
    };
    let ctx = context();
    write_files(
        ctx.path(),
        &[
            ("Dockerfile", "FROM busybox\nCOPY . /app\n"),
            (
                ".dockerignore",
                "# secrets and logs stay home\n*.key\n**/*.log\nbuild\n!build/keep.txt\n",
            ),
            ("main.txt", "main\n"),
            ("secret.key", "k\n"),
            ("logs/a.log", "log\n"),
            ("logs/deep/b.log", "log\n"),
            ("logs/readme.txt", "r\n"),
            ("build/out.bin", "bin\n"),
            ("build/keep.txt", "keep\n"),
        ],
    );
    build_ok(&env, &["-t", "ignored", ctx.path().to_str().unwrap()]);
    let files = run_rm(&env, &["ignored", "find", "/app", "-type", "f"]);
    let mut files: Vec<&str> = files.lines().collect();
    files.sort();
    assert_eq!(
        files,
        [
            "/app/.dockerignore",
            "/app/Dockerfile",
            "/app/build/keep.txt",
            "/app/logs/readme.txt",
            "/app/main.txt"
        ]
    );
}

#[test]
fn user_and_workdir_apply_to_run_copy_and_the_image() {
    let Some(env) = env("user_and_workdir_apply_to_run_copy_and_the_image") else {
        return;
    };
    let ctx = context();
    write_files(
        ctx.path(),
        &[
            (
                "Dockerfile",
                "FROM busybox\n\
                 RUN mkdir /data && chown 1000:1000 /data\n\
                 WORKDIR /data\n\
                 COPY --chown=1000:1000 --chmod=640 note.txt .\n\
                 COPY note.txt rootowned.txt\n\
                 USER 1000:1000\n\
                 RUN id -u > uid && pwd > pwd && stat -c '%u:%g %a' note.txt rootowned.txt > owners\n\
                 WORKDIR sub\n\
                 USER nobody\n",
            ),
            ("note.txt", "note\n"),
        ],
    );
    build_ok(&env, &["-t", "who", ctx.path().to_str().unwrap()]);
    assert_eq!(
        env.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Config.User}} {{.Config.WorkingDir}}",
            "who"
        ])
        .trim(),
        "nobody /data/sub"
    );
    assert_eq!(
        run_rm(
            &env,
            &[
                "--user",
                "0",
                "who",
                "cat",
                "/data/uid",
                "/data/pwd",
                "/data/owners"
            ]
        ),
        "1000\n/data\n1000:1000 640\n0:0 644\n"
    );
    // The image's user and workdir are the container's.
    assert_eq!(
        run_rm(&env, &["who", "sh", "-c", "id -u; pwd"]),
        "65534\n/data/sub\n"
    );
}

/// The `Using cache` lines of a build's output.
fn hits(out: &str) -> usize {
    out.lines().filter(|l| *l == " ---> Using cache").count()
}

#[test]
fn an_unchanged_rebuild_is_all_cache_and_a_change_invalidates_from_its_step() {
    let Some(env) = env("an_unchanged_rebuild_is_all_cache_and_a_change_invalidates_from_its_step")
    else {
        return;
    };
    let ctx = context();
    write_files(
        ctx.path(),
        &[
            (
                "Dockerfile",
                "FROM busybox\n\
                 ENV A=1\n\
                 RUN echo one > /one\n\
                 COPY app.txt /app.txt\n\
                 RUN cat /app.txt > /copy\n\
                 CMD [\"cat\", \"/copy\"]\n",
            ),
            ("app.txt", "v1\n"),
        ],
    );
    let dir = ctx.path().to_str().unwrap();
    let first = build_ok(&env, &["-t", "cached", dir]);
    assert_eq!(hits(&first), 0, "{first}");
    // The steps' images are intermediate: listed with -a only.
    let listed = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    assert_eq!(listed, ["busybox:latest", "cached:latest"]);
    let every = env.ok(&["images", "-a", "-q"]);
    assert_eq!(every.lines().count(), 6, "busybox and 5 steps: {every}");
    let layers_dir = env.root.join("layers");
    let count = |p: &Path| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
    let layers = count(&layers_dir);
    // 1. Unchanged: every step from cache, the same image, no new layer.
    let second = build_ok(&env, &["-t", "cached", dir]);
    assert_eq!(hits(&second), 5, "{second}");
    assert!(!second.contains("Running in"), "{second}");
    let id = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("Successfully built "))
            .unwrap()
            .to_string()
    };
    assert_eq!(id(&first), id(&second));
    assert_eq!(count(&layers_dir), layers, "no new layer");
    // 2. The copied file changes: the steps before it hit, it and after miss.
    std::fs::write(ctx.path().join("app.txt"), "v2\n").unwrap();
    let third = build_ok(&env, &["-t", "cached", dir]);
    assert_eq!(hits(&third), 2, "{third}");
    assert_ne!(id(&third), id(&second));
    assert_eq!(run_rm(&env, &["cached"]), "v2\n");
    // Only its mtime changes: still a hit (docker ignores times).
    let file = ctx.path().join("app.txt");
    let f = std::fs::File::options().write(true).open(&file).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    let fourth = build_ok(&env, &["-t", "cached", dir]);
    assert_eq!(hits(&fourth), 5, "{fourth}");
    // 3. --no-cache: nothing from the cache.
    let fifth = build_ok(&env, &["--no-cache", "-t", "cached", dir]);
    assert_eq!(hits(&fifth), 0, "{fifth}");
    // -q prints the ID only.
    let quiet = build_ok(&env, &["-q", dir]);
    assert_eq!(quiet.lines().count(), 1, "{quiet}");
    assert!(quiet.starts_with("sha256:"), "{quiet}");
}

#[test]
fn source_date_epoch_reproduces_the_image_digest() {
    let test = "source_date_epoch_reproduces_the_image_digest";
    let (Some(a), Some(b)) = (env(test), env(test)) else {
        return;
    };
    let ctx = context();
    write_files(
        ctx.path(),
        &[
            (
                "Dockerfile",
                "FROM busybox\n\
                 COPY site /site\n\
                 RUN mkdir -p /var/made && echo made > /var/made/file && touch /site/touched\n\
                 LABEL built=yes\n",
            ),
            ("site/index.html", "hi\n"),
        ],
    );
    let dir = ctx.path().to_str().unwrap();
    let id = |env: &Env| {
        let mut cmd = env.cmd(&[
            "build",
            "-q",
            "--network",
            "none",
            "--runtime",
            &env.runtime,
            dir,
        ]);
        cmd.env("SOURCE_DATE_EPOCH", "1700000000");
        let run = Run::capture(cmd);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        run.stdout().trim().to_string()
    };
    let first = id(&a);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = id(&b);
    assert_eq!(first, second, "two stores, one digest");
    let created = a.ok(&["image", "inspect", "-f", "{{.Created}}", &first]);
    assert!(created.starts_with("2023-11-14T22:13:20"), "{created}");
    // Without it, times differ and so do digests.
    let plain = build_ok(&a, &["-q", "--no-cache", dir]);
    assert_ne!(plain.trim(), first);
}

#[test]
fn a_failing_run_names_its_line_code_and_output_and_leaves_nothing() {
    let Some(env) = env("a_failing_run_names_its_line_code_and_output_and_leaves_nothing") else {
        return;
    };
    let ctx = context();
    write_files(
        ctx.path(),
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN echo fine\n\
             RUN echo about to fail && echo to stderr >&2 && exit 3\n\
             RUN echo never\n",
        )],
    );
    let run = build(&env, &["-t", "broken", ctx.path().to_str().unwrap()]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let err = run.stderr();
    assert!(
        err.contains("Dockerfile:3: RUN echo about to fail"),
        "{err}"
    );
    assert!(err.contains("returned a non-zero code: 3"), "{err}");
    assert!(
        err.contains("about to fail") && err.contains("to stderr"),
        "{err}"
    );
    assert!(!run.stdout().contains("never"));
    // Nothing left: no container, mount, monitor; no temp dir in the store.
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_eq!(env.leftovers(&[]), Vec::<String>::new());
    let containers = env.root.join("containers");
    assert_eq!(
        std::fs::read_dir(&containers)
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    assert!(env.berth(&["image", "inspect", "broken"]).code() != Some(0));
}

#[test]
fn copy_from_outside_the_context_is_refused() {
    let Some(env) = env("copy_from_outside_the_context_is_refused") else {
        return;
    };
    let outer = context();
    let ctx = outer.path().join("ctx");
    write_files(
        outer.path(),
        &[
            ("outside.txt", "host secret\n"),
            ("ctx/Dockerfile", "FROM busybox\nCOPY ../outside.txt /x\n"),
            ("ctx/Dockerfile.link", "FROM busybox\nCOPY link /x\n"),
            (
                "ctx/Dockerfile.bad",
                "FROM busybox\nCOPY ok.txt /x\nFROB it\n",
            ),
            ("ctx/ok.txt", "ok\n"),
        ],
    );
    std::os::unix::fs::symlink("../outside.txt", ctx.join("link")).unwrap();
    let dir = ctx.to_str().unwrap();
    let run = build(&env, &[dir]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr()
            .contains("Dockerfile:2: COPY ../outside.txt /x: forbidden path outside the build context: ../outside.txt"),
        "{}",
        run.stderr()
    );
    // A link out of the context is resolved inside it: nothing there.
    let run = build(
        &env,
        &[
            "-f",
            &ctx.join("Dockerfile.link").display().to_string(),
            dir,
        ],
    );
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr().contains("file not found in build context"),
        "{}",
        run.stderr()
    );
    // An unknown instruction: its line, before anything runs.
    let run = build(
        &env,
        &["-f", &ctx.join("Dockerfile.bad").display().to_string(), dir],
    );
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert_eq!(
        run.stderr().trim(),
        "Error: dockerfile parse error on line 3: unknown instruction: FROB"
    );
    assert_eq!(run.stdout(), "");
    // A link one source copies is replaced, not written through, by the
    // next source's directory of the same name.
    let away = outer.path().join("away");
    std::fs::create_dir(&away).unwrap();
    write_files(
        &ctx,
        &[
            ("two/x/planted", "through the link\n"),
            ("Dockerfile.links", "FROM busybox\nCOPY one/ two/ /dst/\n"),
        ],
    );
    std::fs::create_dir_all(ctx.join("one")).unwrap();
    std::os::unix::fs::symlink(&away, ctx.join("one/x")).unwrap();
    let file = ctx.join("Dockerfile.links").display().to_string();
    build_ok(&env, &["-t", "links", "-f", &file, dir]);
    assert_eq!(
        std::fs::read_dir(&away).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert_eq!(
        run_rm(&env, &["links", "cat", "/dst/x/planted"]),
        "through the link\n"
    );
    // A platform this host cannot run.
    let run = build(&env, &["--platform", "linux/s390x", dir]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr().contains("does not emulate"),
        "{}",
        run.stderr()
    );
}

#[test]
fn onbuild_triggers_run_in_the_child_and_healthcheck_and_shell_are_kept() {
    let Some(env) = env("onbuild_triggers_run_in_the_child_and_healthcheck_and_shell_are_kept")
    else {
        return;
    };
    let ctx = context();
    write_files(
        ctx.path(),
        &[
            (
                "Dockerfile",
                "FROM busybox\n\
                 SHELL [\"/bin/sh\", \"-ec\"]\n\
                 RUN echo \"$0 $-\" > /shell\n\
                 HEALTHCHECK --interval=5s --retries=2 CMD wget -q -O /dev/null http://127.0.0.1/\n\
                 ONBUILD COPY trigger.txt /from-trigger.txt\n\
                 ONBUILD RUN echo triggered > /triggered\n",
            ),
            ("Dockerfile.child", "FROM parent\nRUN cat /triggered\n"),
            ("trigger.txt", "copied by a trigger\n"),
        ],
    );
    let dir = ctx.path().to_str().unwrap();
    build_ok(&env, &["-t", "parent", dir]);
    let config = env.ok(&["image", "inspect", "-f", "{{json .Config}}", "parent"]);
    let config: serde_json::Value = serde_json::from_str(config.trim()).unwrap();
    assert_eq!(
        config["OnBuild"],
        serde_json::json!([
            "COPY trigger.txt /from-trigger.txt",
            "RUN echo triggered > /triggered"
        ])
    );
    assert_eq!(config["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(
        config["Healthcheck"],
        serde_json::json!({
            "Test": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1/"],
            "Interval": 5_000_000_000i64,
            "Retries": 2,
        })
    );
    // The shell form ran through SHELL (`-e` among the shell's flags).
    let shell = run_rm(&env, &["parent", "cat", "/shell"]);
    assert!(
        shell.starts_with("/bin/sh ") && shell.contains('e'),
        "{shell}"
    );
    // A child: the triggers run first, and are not inherited.
    let child = ctx.path().join("Dockerfile.child").display().to_string();
    let out = build_ok(&env, &["-t", "child", "-f", &child, dir]);
    assert!(out.contains("# Executing 2 build trigger(s)"), "{out}");
    assert!(out.contains("triggered\n"), "{out}");
    assert_eq!(
        run_rm(&env, &["child", "cat", "/from-trigger.txt"]),
        "copied by a trigger\n"
    );
    let config = env.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.OnBuild}}",
        "child",
    ]);
    assert_eq!(config.trim(), "null");
}

/// One file of a flattened image: kind, mode, owner, content or target.
type Entry = (char, u32, u64, u64, String);

/// The files of the image in the docker archive `archive` (what `save`
/// writes), its layers applied in order (whiteouts delete), under
/// `prefixes`.
fn flatten(archive: &Path, prefixes: &[&str]) -> std::collections::BTreeMap<String, Entry> {
    use std::io::Read;
    let bytes = std::fs::read(archive).unwrap();
    let member = |name: &str| -> Vec<u8> {
        let mut tar = tar::Archive::new(&bytes[..]);
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().to_string_lossy() == name {
                let mut out = Vec::new();
                entry.read_to_end(&mut out).unwrap();
                return out;
            }
        }
        panic!("{name} not in {}", archive.display());
    };
    let manifest: serde_json::Value = serde_json::from_slice(&member("manifest.json")).unwrap();
    let mut files = std::collections::BTreeMap::new();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let data = member(layer.as_str().unwrap());
        let reader: Box<dyn Read> = if data.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(&data[..]))
        } else {
            Box::new(&data[..])
        };
        let mut tar = tar::Archive::new(reader);
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let path = path
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_string();
            let (dir, base) = path.rsplit_once('/').unwrap_or(("", &path));
            if let Some(gone) = base.strip_prefix(".wh.") {
                let gone = if dir.is_empty() {
                    gone.to_string()
                } else {
                    format!("{dir}/{gone}")
                };
                files.retain(|p: &String, _| p != &gone && !p.starts_with(&format!("{gone}/")));
                continue;
            }
            if !prefixes
                .iter()
                .any(|p| path == *p || path.starts_with(&format!("{p}/")))
            {
                continue;
            }
            let header = entry.header().clone();
            let kind = header.entry_type();
            let (kind, content) = if kind.is_dir() {
                ('d', String::new())
            } else if kind.is_symlink() {
                (
                    'l',
                    entry
                        .link_name()
                        .unwrap()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                )
            } else {
                let mut content = Vec::new();
                entry.read_to_end(&mut content).unwrap();
                ('f', String::from_utf8_lossy(&content).into_owned())
            };
            files.insert(
                path,
                (
                    kind,
                    header.mode().unwrap() & 0o7777,
                    header.uid().unwrap(),
                    header.gid().unwrap(),
                    content,
                ),
            );
        }
    }
    files
}

#[test]
fn the_same_dockerfile_built_by_podman_gives_the_same_files() {
    let test = "the_same_dockerfile_built_by_podman_gives_the_same_files";
    let Some(env) = env(test) else {
        return;
    };
    if !common::have("podman") || !common::have("runc") {
        berth_test_support::skip(test, "podman and runc are not both installed");
        return;
    }
    let ctx = context();
    write_files(
        ctx.path(),
        &[
            (
                "Dockerfile",
                "ARG BASE=busybox\n\
                 FROM $BASE\n\
                 WORKDIR /app\n\
                 COPY site/ ./site/\n\
                 COPY --chown=1000:1000 --chmod=0750 *.sh /app/bin/\n\
                 ADD files.tar /app/unpacked/\n\
                 RUN mkdir -p /app/data && echo hello > /app/data/hello && chmod 600 /app/data/hello \\\n\
                     && ln -s hello /app/data/link && chown -R 1000:1000 /app/data\n\
                 USER 1000\n\
                 RUN echo made by 1000 > /tmp/by-user\n",
            ),
            ("site/index.html", "hello world\n"),
            ("site/css/site.css", "body {}\n"),
            ("start.sh", "#!/bin/sh\necho start\n"),
            ("stop.sh", "#!/bin/sh\necho stop\n"),
        ],
    );
    // An archive with owners and modes of its own, for ADD to unpack.
    let mut tar = tar::Builder::new(Vec::new());
    for (path, mode, uid, data) in [
        ("docs/", 0o750, 7u64, &b""[..]),
        ("docs/a.txt", 0o640, 7, &b"aaa\n"[..]),
        ("b.txt", 0o600, 0, &b"bbb\n"[..]),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(if path.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(uid);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        tar.append_data(&mut header, path, data).unwrap();
    }
    std::fs::write(ctx.path().join("files.tar"), tar.into_inner().unwrap()).unwrap();
    let work = tempfile::tempdir().unwrap();
    // 1. berth.
    build_ok(&env, &["-t", "compare", ctx.path().to_str().unwrap()]);
    let ours = work.path().join("berth.tar");
    env.ok(&["save", "-o", ours.to_str().unwrap(), "compare"]);
    // 2. podman (buildah), in a store of its own, from the same base rootfs.
    let root = work.path().join("podman");
    let podman = |args: &[&str]| {
        let mut cmd = std::process::Command::new("podman");
        cmd.arg("--root")
            .arg(root.join("root"))
            .arg("--runroot")
            .arg(root.join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
            ])
            .args(args);
        let run = Run::capture(cmd);
        assert_eq!(run.code(), Some(0), "podman {args:?}: {}", run.transcript());
    };
    let base = work.path().join("rootfs.tar");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(berth_test_support::rootfs())
        .arg("-cf")
        .arg(&base)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    podman(&[
        "import",
        base.to_str().unwrap(),
        "localhost/berth-base:latest",
    ]);
    podman(&[
        "build",
        "--runtime",
        "runc",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--build-arg",
        "BASE=localhost/berth-base:latest",
        "-t",
        "localhost/compare",
        ctx.path().to_str().unwrap(),
    ]);
    let theirs = work.path().join("podman.tar");
    podman(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        theirs.to_str().unwrap(),
        "localhost/compare",
    ]);
    podman(&["system", "reset", "--force"]);
    // 3. The same files, path by path: kind, mode, owner, content.
    let prefixes = ["app", "tmp/by-user"];
    let ours = flatten(&ours, &prefixes);
    let theirs = flatten(&theirs, &prefixes);
    assert!(ours.len() > 10, "{ours:#?}");
    let diff: Vec<String> = ours
        .keys()
        .chain(theirs.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|p| ours.get(*p) != theirs.get(*p))
        .map(|p| format!("{p}: berth {:?} podman {:?}", ours.get(p), theirs.get(p)))
        .collect();
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}

/// A one-file HTTP server on 127.0.0.1 (a thread, for as long as the
/// test runs): `body` for every GET, with a `Last-Modified`.
fn serve(body: std::sync::Arc<std::sync::Mutex<String>>) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let text = body.lock().unwrap().clone();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    port
}

#[test]
fn add_fetches_a_url_and_caches_by_its_content() {
    let Some(env) = env("add_fetches_a_url_and_caches_by_its_content") else {
        return;
    };
    let body = std::sync::Arc::new(std::sync::Mutex::new("remote v1\n".to_string()));
    let port = serve(body.clone());
    let ctx = context();
    write_files(
        ctx.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\nADD http://127.0.0.1:{port}/files/data.txt /fetched/\nRUN cat /fetched/data.txt\n"
            ),
        )],
    );
    let dir = ctx.path().to_str().unwrap();
    build_ok(&env, &["-t", "fetched", dir]);
    assert_eq!(
        run_rm(
            &env,
            &["fetched", "stat", "-c", "%a %u:%g %Y", "/fetched/data.txt"]
        ),
        "600 0:0 784111777\n"
    );
    assert_eq!(
        run_rm(&env, &["fetched", "cat", "/fetched/data.txt"]),
        "remote v1\n"
    );
    // Fetched again each build; the same content hits the cache.
    let again = build_ok(&env, &["-t", "fetched", dir]);
    assert_eq!(hits(&again), 2, "{again}");
    *body.lock().unwrap() = "remote v2\n".into();
    let changed = build_ok(&env, &["-t", "fetched", dir]);
    assert_eq!(hits(&changed), 0, "{changed}");
    assert_eq!(
        run_rm(&env, &["fetched", "cat", "/fetched/data.txt"]),
        "remote v2\n"
    );
}

/// `berth build ARGS` with `input` on its stdin.
fn build_stdin(env: &Env, args: &[&str], input: &[u8]) -> (Option<i32>, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut all = vec!["build", "--network", "none", "--runtime", &env.runtime];
    all.extend(args);
    let mut child = env
        .cmd(&all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_context_or_a_dockerfile_comes_on_stdin() {
    let Some(env) = env("a_context_or_a_dockerfile_comes_on_stdin") else {
        return;
    };
    // 1. A tarball context on stdin (`build - < context.tar`).
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("Dockerfile", &b"FROM busybox\nCOPY hello.txt /\n"[..]),
        ("hello.txt", &b"from a tarball\n"[..]),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, data).unwrap();
    }
    let (code, out, err) = build_stdin(&env, &["-t", "fromtar", "-"], &tar.into_inner().unwrap());
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Successfully tagged fromtar:latest"), "{out}");
    assert_eq!(
        run_rm(&env, &["fromtar", "cat", "/hello.txt"]),
        "from a tarball\n"
    );
    // 2. A Dockerfile alone on stdin: no context.
    let (code, out, err) = build_stdin(
        &env,
        &["-t", "nocontext", "-"],
        b"FROM busybox\nRUN echo no context > /note\n",
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(run_rm(&env, &["nocontext", "cat", "/note"]), "no context\n");
    // 3. `-f -`: the Dockerfile on stdin, the context a directory.
    let ctx = context();
    write_files(ctx.path(), &[("data.txt", "from the directory\n")]);
    let (code, out, err) = build_stdin(
        &env,
        &["-t", "dashf", "-f", "-", ctx.path().to_str().unwrap()],
        b"FROM busybox\nCOPY data.txt /\n",
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        run_rm(&env, &["dashf", "cat", "/data.txt"]),
        "from the directory\n"
    );
}

#[test]
fn run_steps_use_the_default_bridge_network_as_root() {
    let test = "run_steps_use_the_default_bridge_network_as_root";
    // In a throwaway network namespace that plays the host (see
    // tests/network.rs): the bridge and veths live and die there.
    if !berth_test_support::test_host::in_test_host(test) {
        return;
    }
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success());
    let Some(env) = env(test) else {
        return;
    };
    let ctx = context();
    write_files(
        ctx.path(),
        &[(
            "Dockerfile",
            "FROM busybox\nRUN ip -4 -o addr show eth0 > /addr && ip route > /routes\n",
        )],
    );
    // No --network: bridge, as root.
    let run = env.berth(&[
        "build",
        "--runtime",
        &env.runtime,
        "-t",
        "bridged",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let addr = run_rm(&env, &["bridged", "cat", "/addr", "/routes"]);
    assert!(addr.contains("eth0") && addr.contains("inet "), "{addr}");
    assert!(addr.contains("default via"), "{addr}");
    // The step's veth went with its container.
    let veths = std::process::Command::new("ip")
        .args(["-o", "link", "show", "type", "veth"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&veths.stdout), "");
}

#[test]
fn ctrl_c_during_a_run_step_leaves_nothing_behind() {
    let Some(env) = env("ctrl_c_during_a_run_step_leaves_nothing_behind") else {
        return;
    };
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let ctx = context();
    write_files(
        ctx.path(),
        &[("Dockerfile", "FROM busybox\nRUN echo started && sleep 60\n")],
    );
    let mut child = env
        .cmd(&[
            "build",
            "--network",
            "none",
            "--runtime",
            &env.runtime,
            ctx.path().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let running = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with(" ---> Running in "));
    assert!(running.is_some(), "the RUN step never started");
    // Its output shows while it runs (the step sleeps a minute).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(lines.next());
    });
    let first = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the step's output while it runs");
    assert_eq!(first.unwrap().unwrap(), "started");
    // Its container is up; then Ctrl-C.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while env.ok(&["ps", "-q"]).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no running container");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_eq!(env.leftovers(&[]), Vec::<String>::new());
}
