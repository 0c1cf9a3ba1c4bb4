//! Reading a bundle: `config.json` and the root filesystem beside it.
//!
//! An OCI *bundle* is a directory holding `config.json` and, usually, the
//! root filesystem (`root.path`, `rootfs` by convention). The runtime reads
//! the file once, at `create`, and keeps what it needs in the container's
//! state directory: editing config.json afterwards changes nothing.
//!
//! The types are those of the `oci-spec` crate (the containers project's,
//! which youki uses): every field of runtime-spec 1.2 in the spec's own
//! names. What this module adds is *strictness*, so that a mistake in a
//! 300-line JSON file is one line naming the field:
//!
//! - malformed JSON and fields of the wrong type name the JSON path of the
//!   field (`linux.namespaces[2].type: unknown variant "pidd"`), through
//!   `serde_path_to_error`;
//! - the rules the spec states in words are checked here: `ociVersion` is
//!   1.x, `root.path` exists, mount destinations, hook and device paths are
//!   absolute, namespaces appear once, ids map only with a user namespace.
//!
//! Unknown fields are ignored, as the spec requires ("MUST NOT generate an
//! error if they encounter an unknown property"): a newer engine may write
//! fields this runtime has never heard of. What Berth *knows* but cannot
//! honour is refused by [`super::validate`], by name.
//!
//! Specs: runtime-spec `bundle.md`, `config.md`, `config-linux.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// The file name of a bundle's configuration.
pub const CONFIG_FILE: &str = "config.json";

/// A bad bundle: the message names the file or the field, and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read {}: {}", path.display(), io_reason(source))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Malformed JSON (`field` says so), or a field of the wrong type
    /// (`field` is its JSON path).
    #[error("config.json: {field}: {message}")]
    Json { field: String, message: String },
    /// A value the spec does not allow.
    #[error("config.json: {field}: {why}")]
    Invalid { field: String, why: String },
}

pub(crate) fn invalid(field: impl Into<String>, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        why: why.into(),
    }
}

/// A bundle, read and checked.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    /// The root filesystem, absolute (`root.path` resolved against `dir`).
    pub rootfs: PathBuf,
    pub spec: Spec,
}

/// Read `dir/config.json`, parse it strictly and check the spec's rules.
// ANCHOR: load_bundle
pub fn load_bundle(dir: &Path) -> Result<Bundle, ConfigError> {
    let dir = std::path::absolute(dir).map_err(|source| ConfigError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(CONFIG_FILE);
    let bytes = std::fs::read(&path).map_err(|source| ConfigError::Read { path, source })?;
    let spec = parse_config(&bytes)?;
    check_spec(&spec)?;
    let rootfs = root_path(&dir, &spec)?;
    Ok(Bundle { dir, rootfs, spec })
}
// ANCHOR_END: load_bundle

/// Parse config.json's bytes; errors name the JSON path of the bad field.
pub fn parse_config(bytes: &[u8]) -> Result<Spec, ConfigError> {
    parse_json(bytes)
}

/// Parse any runtime-spec JSON document (config.json, a `process.json`
/// for `exec`, a resources file for `update`) with errors naming the field.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        // A syntax error has no field to name: say where it is instead.
        let field = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "malformed JSON".to_string()
            }
            _ => field,
        };
        ConfigError::Json {
            field,
            message: inner.to_string(),
        }
    })?;
    // Trailing garbage after the document is malformed JSON too.
    de.end().map_err(|err| ConfigError::Json {
        field: "malformed JSON".to_string(),
        message: err.to_string(),
    })?;
    Ok(value)
}

/// `root.path`, resolved against the bundle: it must be a directory.
fn root_path(bundle: &Path, spec: &Spec) -> Result<PathBuf, ConfigError> {
    let root = spec.root().as_ref().ok_or_else(|| {
        invalid(
            "root",
            "missing: say where the root filesystem is (\"root\": {\"path\": \"rootfs\"})",
        )
    })?;
    if root.path().as_os_str().is_empty() {
        return Err(invalid("root.path", "missing or empty"));
    }
    let rootfs = bundle.join(root.path());
    match std::fs::metadata(&rootfs) {
        Ok(meta) if meta.is_dir() => Ok(rootfs),
        Ok(_) => Err(invalid(
            "root.path",
            format!("{}: not a directory", rootfs.display()),
        )),
        Err(err) => Err(invalid(
            "root.path",
            format!(
                "{}: {}: unpack the root filesystem there, or fix root.path",
                rootfs.display(),
                io_reason(&err)
            ),
        )),
    }
}

/// "no such file or directory", without std's " (os error 2)".
pub(crate) fn io_reason(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
        None => err.to_string(),
    }
}

/// The rules the spec states in words, that serde cannot check.
// ANCHOR: check_spec
pub fn check_spec(spec: &Spec) -> Result<(), ConfigError> {
    check_version(spec.version())?;
    if let Some(mounts) = spec.mounts() {
        for (i, mount) in mounts.iter().enumerate() {
            check_absolute(&format!("mounts[{i}].destination"), mount.destination())?;
        }
    }
    if let Some(process) = spec.process() {
        check_process(process, "process")?;
    }
    if let Some(hooks) = spec.hooks() {
        let lists = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (name, list) in lists {
            for (i, hook) in list.iter().flatten().enumerate() {
                let field = format!("hooks.{name}[{i}]");
                check_absolute(&format!("{field}.path"), hook.path())?;
                if hook.timeout().is_some_and(|t| t <= 0) {
                    return Err(invalid(
                        format!("{field}.timeout"),
                        "must be greater than zero (seconds)",
                    ));
                }
            }
        }
    }
    if let Some(linux) = spec.linux() {
        check_namespaces(spec)?;
        for (i, device) in linux.devices().iter().flatten().enumerate() {
            check_absolute(&format!("linux.devices[{i}].path"), device.path())?;
        }
        for (field, list) in [
            ("linux.maskedPaths", linux.masked_paths()),
            ("linux.readonlyPaths", linux.readonly_paths()),
        ] {
            for (i, path) in list.iter().flatten().enumerate() {
                check_absolute(&format!("{field}[{i}]"), Path::new(path))?;
            }
        }
    }
    Ok(())
}
// ANCHOR_END: check_spec

/// `ociVersion` is required and must be 1.x: the spec keeps compatibility
/// within a major version only.
fn check_version(version: &str) -> Result<(), ConfigError> {
    if version.is_empty() {
        return Err(invalid(
            "ociVersion",
            "missing: a config.json states the runtime-spec version it follows (\"ociVersion\": \"1.2.0\")",
        ));
    }
    let mut parts = version.splitn(3, '.');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next();
    if major != "1" || minor.is_none_or(|m| m.parse::<u32>().is_err()) {
        return Err(invalid(
            "ociVersion",
            format!("{version:?}: berth-runtime implements runtime-spec 1.x"),
        ));
    }
    Ok(())
}

fn check_absolute(field: &str, path: &Path) -> Result<(), ConfigError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{:?} is not an absolute path", path.display().to_string()),
        ))
    }
}

/// `process` (config.json's, or `exec`'s process.json).
pub fn check_process(process: &oci_spec::runtime::Process, field: &str) -> Result<(), ConfigError> {
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() {
        return Err(invalid(
            format!("{field}.args"),
            "empty: name the program to run",
        ));
    }
    check_absolute(&format!("{field}.cwd"), process.cwd())?;
    for (i, pair) in process.env().iter().flatten().enumerate() {
        let name = pair.split_once('=').map(|(name, _)| name);
        if name.is_none_or(str::is_empty) || pair.contains('\0') {
            return Err(invalid(
                format!("{field}.env[{i}]"),
                format!("{pair:?} is not NAME=VALUE"),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, rlimit) in process.rlimits().iter().flatten().enumerate() {
        let name = serde_json::to_value(rlimit.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if !seen.insert(name.clone()) {
            return Err(invalid(
                format!("{field}.rlimits[{i}]"),
                format!("{name} appears twice"),
            ));
        }
        if rlimit.soft() > rlimit.hard() {
            return Err(invalid(
                format!("{field}.rlimits[{i}]"),
                format!(
                    "{name}: soft limit {} is above the hard limit {}",
                    rlimit.soft(),
                    rlimit.hard()
                ),
            ));
        }
    }
    Ok(())
}

/// Each namespace type once; a path only for joining; uid/gid mappings
/// only with a new user namespace, and then required.
fn check_namespaces(spec: &Spec) -> Result<(), ConfigError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, ns) in namespaces.iter().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        if !seen.insert(ns.typ() as u32) {
            return Err(invalid(
                field,
                format!("the {} namespace appears twice", ns_name(ns.typ())),
            ));
        }
        if let Some(path) = ns.path() {
            check_absolute(&format!("{field}.path"), path)?;
        }
    }
    let user = namespaces
        .iter()
        .find(|ns| ns.typ() == LinuxNamespaceType::User);
    let maps = [
        ("linux.uidMappings", linux.uid_mappings()),
        ("linux.gidMappings", linux.gid_mappings()),
    ];
    for (field, map) in maps {
        let present = map.as_ref().is_some_and(|m| !m.is_empty());
        match user {
            None if present => {
                return Err(invalid(
                    field,
                    "set without a user namespace: add {\"type\": \"user\"} to linux.namespaces",
                ));
            }
            Some(ns) if ns.path().is_none() && !present => {
                return Err(invalid(
                    field,
                    "missing: a new user namespace needs its uid and gid mappings",
                ));
            }
            _ => {}
        }
        for (i, m) in map.iter().flatten().enumerate() {
            if m.size() == 0 {
                return Err(invalid(format!("{field}[{i}].size"), "must not be zero"));
            }
        }
    }
    Ok(())
}

/// The namespace's name as the spec spells it (`network`, `mount`).
pub fn ns_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small valid config, as text to edit.
    const VALID: &str = r#"{
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
        "someFutureField": {"anything": [1, 2]}
    }"#;

    fn error_of(text: &str) -> String {
        match parse_config(text.as_bytes()).and_then(|spec| check_spec(&spec)) {
            Ok(()) => panic!("accepted: {text}"),
            Err(err) => err.to_string(),
        }
    }

    fn with(replace: &str, by: &str) -> String {
        assert!(VALID.contains(replace), "{replace}");
        VALID.replacen(replace, by, 1)
    }

    #[test]
    fn a_valid_config_parses_and_unknown_fields_are_ignored() {
        let spec = parse_config(VALID.as_bytes()).unwrap();
        check_spec(&spec).unwrap();
        assert_eq!(spec.version(), "1.2.0");
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_deref(),
            Some(&["sh".to_string()][..])
        );
    }

    #[test]
    fn malformed_json_names_the_place() {
        let err = error_of(r#"{"ociVersion": "1.2.0", "root": {"path": "rootfs"},"#);
        assert_eq!(
            err,
            "config.json: malformed JSON: EOF while parsing a value at line 1 column 51"
        );
        let err = error_of(&format!("{VALID} trailing"));
        assert!(
            err.starts_with("config.json: malformed JSON: trailing characters"),
            "{err}"
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_by_its_path() {
        let err = error_of(&with(r#""uid": 0"#, r#""uid": "root""#));
        assert!(
            err.starts_with(
                "config.json: process.user.uid: invalid type: string \"root\", expected u32"
            ),
            "{err}"
        );
        let err = error_of(&with(r#"["sh"]"#, r#""sh""#));
        assert!(
            err.starts_with("config.json: process.args: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_namespace_type_is_named() {
        let err = error_of(&with(r#"{"type": "pid"}"#, r#"{"type": "pidd"}"#));
        assert!(
            err.starts_with("config.json: linux.namespaces[0].type: unknown variant `pidd`"),
            "{err}"
        );
    }

    #[test]
    fn the_spec_rules_are_checked() {
        let cases = [
            (
                with(r#""destination": "/proc""#, r#""destination": "proc""#),
                "config.json: mounts[0].destination: \"proc\" is not an absolute path",
            ),
            (
                with(r#""cwd": "/""#, r#""cwd": "tmp""#),
                "config.json: process.cwd: \"tmp\" is not an absolute path",
            ),
            (
                with(r#""args": ["sh"]"#, r#""args": []"#),
                "config.json: process.args: empty: name the program to run",
            ),
            (
                with(r#""PATH=/bin""#, r#""PATH""#),
                "config.json: process.env[0]: \"PATH\" is not NAME=VALUE",
            ),
            (
                with(r#""1.2.0""#, r#""2.0.0""#),
                "config.json: ociVersion: \"2.0.0\": berth-runtime implements runtime-spec 1.x",
            ),
            (
                with(r#""ociVersion": "1.2.0","#, ""),
                "config.json: ociVersion: missing: a config.json states the runtime-spec version it follows (\"ociVersion\": \"1.2.0\")",
            ),
            (
                with(r#"{"type": "mount"}"#, r#"{"type": "pid"}"#),
                "config.json: linux.namespaces[1]: the pid namespace appears twice",
            ),
            (
                with(
                    r#"{"type": "mount"}"#,
                    r#"{"type": "network", "path": "run/netns/x"}"#,
                ),
                "config.json: linux.namespaces[1].path: \"run/netns/x\" is not an absolute path",
            ),
            (
                with(
                    r#""namespaces""#,
                    r#""uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}], "namespaces""#,
                ),
                "config.json: linux.uidMappings: set without a user namespace: add {\"type\": \"user\"} to linux.namespaces",
            ),
            (
                with(r#"{"type": "mount"}"#, r#"{"type": "user"}"#),
                "config.json: linux.uidMappings: missing: a new user namespace needs its uid and gid mappings",
            ),
            (
                with(
                    r#""mounts""#,
                    r#""hooks": {"prestart": [{"path": "hook"}]}, "mounts""#,
                ),
                "config.json: hooks.prestart[0].path: \"hook\" is not an absolute path",
            ),
            (
                with(
                    r#""mounts""#,
                    r#""hooks": {"poststop": [{"path": "/bin/true", "timeout": 0}]}, "mounts""#,
                ),
                "config.json: hooks.poststop[0].timeout: must be greater than zero (seconds)",
            ),
            (
                with(
                    r#""cwd""#,
                    r#""rlimits": [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}], "cwd""#,
                ),
                "config.json: process.rlimits[0]: RLIMIT_NOFILE: soft limit 2048 is above the hard limit 1024",
            ),
            (
                with(
                    r#""namespaces""#,
                    r#""maskedPaths": ["proc/kcore"], "namespaces""#,
                ),
                "config.json: linux.maskedPaths[0]: \"proc/kcore\" is not an absolute path",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(error_of(&text), want);
        }
    }

    #[test]
    fn the_rootfs_must_be_a_directory_in_the_bundle() {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::write(bundle.path().join(CONFIG_FILE), VALID).unwrap();
        let err = load_bundle(bundle.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "config.json: root.path: {}/rootfs: no such file or directory: unpack the root filesystem there, or fix root.path",
                bundle.path().display()
            )
        );
        std::fs::write(bundle.path().join("rootfs"), "").unwrap();
        let err = load_bundle(bundle.path()).unwrap_err().to_string();
        assert!(err.ends_with("/rootfs: not a directory"), "{err}");
        std::fs::remove_file(bundle.path().join("rootfs")).unwrap();
        std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
        let loaded = load_bundle(bundle.path()).unwrap();
        assert_eq!(loaded.rootfs, bundle.path().join("rootfs"));
        assert!(loaded.dir.is_absolute());

        let empty = tempfile::tempdir().unwrap();
        let err = load_bundle(empty.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "read {}/config.json: no such file or directory",
                empty.path().display()
            )
        );
    }
}
