//! `cargo xtask msrv`: is the `rust-version` we state the true minimum?
//!
//! The workspace's `rust-version` is what the README and Setting up tell a
//! learner to install. It is only true if it is at least the `rust-version`
//! of every package in Cargo.lock: cargo builds a dependency only with a
//! toolchain that new. So this task reads `cargo metadata --locked` (every
//! locked package, with its `rust_version`), fails if a workspace member
//! states less than the highest dependency needs, and fails if the README or
//! Setting up names another version than the workspace's.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};

/// A Rust version, `1.89` or `1.89.0`, compared as numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Version(u32, u32, u32);

impl Version {
    fn parse(text: &str) -> Result<Version> {
        let mut parts = text.trim().split('.');
        let mut next = |required: bool| -> Result<u32> {
            match parts.next() {
                Some(part) => part
                    .parse()
                    .with_context(|| format!("`{text}` is not a Rust version")),
                None if required => bail!("`{text}` is not a Rust version"),
                None => Ok(0),
            }
        };
        let version = Version(next(true)?, next(true)?, next(false)?);
        if parts.next().is_some() {
            bail!("`{text}` is not a Rust version");
        }
        Ok(version)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.2 == 0 {
            write!(f, "{}.{}", self.0, self.1)
        } else {
            write!(f, "{}.{}.{}", self.0, self.1, self.2)
        }
    }
}

/// One package of the metadata: name, version, rust_version.
struct Package {
    name: String,
    version: String,
    rust_version: Option<Version>,
    member: bool,
}

/// What `cargo metadata` says: the workspace's members and every locked package.
fn packages(metadata: &serde_json::Value) -> Result<Vec<Package>> {
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .context("cargo metadata has no workspace_members")?
        .iter()
        .filter_map(|id| id.as_str())
        .collect();
    let mut packages = Vec::new();
    for package in metadata["packages"]
        .as_array()
        .context("cargo metadata has no packages")?
    {
        let field = |key: &str| package[key].as_str().unwrap_or_default().to_string();
        packages.push(Package {
            name: field("name"),
            version: field("version"),
            rust_version: package["rust_version"]
                .as_str()
                .map(Version::parse)
                .transpose()
                .with_context(|| format!("package {}", field("name")))?,
            member: members.contains(&package["id"].as_str().unwrap_or_default()),
        });
    }
    Ok(packages)
}

/// The problems: members below the highest dependency's rust_version.
fn check_members(packages: &[Package]) -> (Option<&Package>, Vec<String>) {
    let highest = packages
        .iter()
        .filter(|p| !p.member && p.rust_version.is_some())
        .max_by_key(|p| p.rust_version);
    let mut problems = Vec::new();
    let Some(needed) = highest.and_then(|p| p.rust_version) else {
        return (highest, problems);
    };
    for member in packages.iter().filter(|p| p.member) {
        match member.rust_version {
            Some(stated) if stated >= needed => {}
            stated => problems.push(format!(
                "{} states rust-version {}, but Cargo.lock needs {needed} ({} {}): \
                 raise rust-version in the root Cargo.toml",
                member.name,
                stated.map_or("(none)".to_string(), |v| v.to_string()),
                highest.map_or("", |p| p.name.as_str()),
                highest.map_or("", |p| p.version.as_str()),
            )),
        }
    }
    (highest, problems)
}

/// The `Rust X or newer` a page tells the reader to install, if it says so.
fn stated_in(text: &str) -> Option<&str> {
    text.match_indices("Rust ").find_map(|(at, _)| {
        let rest = &text[at + "Rust ".len()..];
        let version = &rest[..rest.find(" or newer")?];
        (!version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.'))
            .then_some(version)
    })
}

pub fn run(root: &Path) -> Result<ExitCode> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata --locked failed: see above");
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata's output is not JSON")?;
    let packages = packages(&metadata)?;
    let (highest, mut problems) = check_members(&packages);

    let workspace = packages
        .iter()
        .filter(|p| p.member)
        .filter_map(|p| p.rust_version)
        .min()
        .context("no workspace member states a rust-version")?;
    for page in ["README.md", "book/src/setting-up.md"] {
        let text = std::fs::read_to_string(root.join(page))
            .with_context(|| format!("cannot read {page}"))?;
        match stated_in(&text).map(Version::parse) {
            Some(Ok(stated)) if stated == workspace => {}
            Some(Ok(stated)) => problems.push(format!(
                "{page} says Rust {stated} or newer, but rust-version is {workspace}"
            )),
            _ => problems.push(format!(
                "{page} does not say `Rust {workspace} or newer` (the minimum Rust version)"
            )),
        }
    }

    for problem in &problems {
        println!("msrv: {problem}");
    }
    if !problems.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    match highest {
        Some(p) => println!(
            "msrv: rust-version {workspace} covers all {} locked packages (highest: {} {} needs {})",
            packages.len(),
            p.name,
            p.version,
            p.rust_version.map_or(String::new(), |v| v.to_string())
        ),
        None => println!("msrv: no locked package states a rust_version"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, rust_version: Option<&str>, member: bool) -> Package {
        Package {
            name: name.into(),
            version: "1.0.0".into(),
            rust_version: rust_version.map(|v| Version::parse(v).unwrap()),
            member,
        }
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert!(Version::parse("1.89.0").unwrap() > Version::parse("1.9").unwrap());
        assert_eq!(
            Version::parse("1.89").unwrap(),
            Version::parse("1.89.0").unwrap()
        );
        assert!(Version::parse("1.x").is_err());
        assert!(Version::parse("1").is_err());
        assert!(Version::parse("1.2.3.4").is_err());
    }

    #[test]
    fn a_member_below_a_dependency_is_a_problem() {
        let packages = [
            package("berth", Some("1.85"), true),
            package("uuid", Some("1.89.0"), false),
            package("time", Some("1.88"), false),
            package("libc", None, false),
        ];
        let (highest, problems) = check_members(&packages);
        assert_eq!(highest.unwrap().name, "uuid");
        assert_eq!(
            problems,
            [
                "berth states rust-version 1.85, but Cargo.lock needs 1.89 (uuid 1.0.0): \
              raise rust-version in the root Cargo.toml"
            ]
        );
        let packages = [
            package("berth", Some("1.89"), true),
            package("uuid", Some("1.89.0"), false),
        ];
        assert!(check_members(&packages).1.is_empty());
    }

    #[test]
    fn finds_the_stated_version() {
        assert_eq!(stated_in("- Rust 1.89 or newer (`rustup`)"), Some("1.89"));
        assert_eq!(
            stated_in("- **Rust 1.89 or newer**, installed"),
            Some("1.89")
        );
        assert_eq!(stated_in("Rust, a language"), None);
        assert_eq!(
            stated_in("in Rust, one.\n- Rust 1.89 or newer"),
            Some("1.89")
        );
    }
}
