//! Image names: parsing `alpine`, `user/app:1` or
//! `localhost:5000/a/b@sha256:…` into registry, repository, tag and digest.
//!
//! What a user types is docker's *familiar* form; what a registry needs is
//! the fully qualified one. `alpine` means `docker.io/library/alpine:latest`:
//! with no registry the name is on Docker Hub, a one-component Hub name
//! lives in the `library/` namespace of official images, and with neither
//! tag nor digest the tag is `latest`. The first `/`-separated component
//! names a registry only if it looks like a host — it contains a '.' or a
//! ':' (a port), is `localhost`, or has capitals (host names may; repository
//! names may not) — so `user/app` is a Hub repository and `ghcr.io/user/app`
//! is not. A digest (`@sha256:…`) pins exact content; with one, no tag is
//! implied.
//!
//! Specs: the grammar in github.com/distribution/reference (`reference.go`,
//! `regexp.go`) and its normalisation (`normalize.go`, which is what
//! `docker pull` uses); the OCI distribution-spec's `<name>` and `<reference>`
//! rules for `/v2/<name>/manifests/<reference>`.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Docker Hub's name for itself in references.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The old name of Docker Hub, normalised to [`DEFAULT_REGISTRY`].
const LEGACY_REGISTRY: &str = "index.docker.io";
/// The namespace of Docker Hub's official images.
const OFFICIAL_PREFIX: &str = "library/";
/// The tag implied when neither tag nor digest is given.
pub const DEFAULT_TAG: &str = "latest";
/// The longest `registry/repository`, counted after normalisation.
pub const NAME_MAX: usize = 255;
/// The longest tag.
pub const TAG_MAX: usize = 128;

/// A fully qualified image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `localhost:5000`, …
    pub registry: String,
    /// `library/alpine`, `user/app`, …
    pub repository: String,
    /// `None` only when a digest is given without a tag.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference: give a name such as alpine or docker.io/library/alpine:3.20")]
    Empty,
    #[error("image reference {input:?}: the repository name is missing before ':' or '@'")]
    NoName { input: String },
    #[error("image reference {input:?}: repository name must be lowercase")]
    Uppercase { input: String },
    #[error(
        "image reference {input:?}: empty path component: remove the doubled, leading or trailing '/'"
    )]
    EmptyComponent { input: String },
    #[error(
        "image reference {input:?}: path component {component:?} is not valid: use lowercase \
         letters and digits, separated by one '.', one or two '_' or any number of '-', \
         starting and ending with a letter or digit"
    )]
    BadComponent { input: String, component: String },
    #[error(
        "image reference {input:?}: registry {registry:?} is not a valid HOST[:PORT]: host name \
         parts are letters, digits and inner '-', joined by '.'; the port is digits"
    )]
    BadRegistry { input: String, registry: String },
    #[error(
        "image reference {input:?}: tag {tag:?} is not valid: a tag is 1 to 128 letters, \
         digits, '_', '.' and '-', not starting with '.' or '-'"
    )]
    BadTag { input: String, tag: String },
    #[error(
        "image reference {input:?}: the name {name:?} is {len} characters long; the limit is 255"
    )]
    TooLong {
        input: String,
        name: String,
        len: usize,
    },
    #[error(
        "image reference {input:?}: a repository name cannot be 64 hex digits, which is an \
         image id: refer to images by name, or by digest with NAME@sha256:HEX"
    )]
    LooksLikeId { input: String },
    #[error("image reference {input:?}: {cause}")]
    Digest { input: String, cause: DigestError },
}

impl Reference {
    /// Parses and normalises a reference the way `docker pull` does.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        // 1. Not empty, and not an image id (which docker refuses as a name).
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.len() == 64 && input.bytes().all(is_lower_hex) {
            return Err(ReferenceError::LooksLikeId {
                input: input.to_string(),
            });
        }
        // 2. The parts: NAME[:TAG][@DIGEST], each checked on its own.
        let (name, tag, digest) = split_parts(input)?;
        let (registry, repository) = split_registry(name);
        check_name(input, registry, repository)?;
        // 3. Docker's defaults: docker.io, library/ for its official images.
        let registry = match registry {
            None | Some(LEGACY_REGISTRY) => DEFAULT_REGISTRY,
            Some(host) => host,
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("{OFFICIAL_PREFIX}{repository}")
        } else {
            repository.to_string()
        };
        // 4. The whole name within the spec's limit, once the defaults are in.
        let full_name = format!("{registry}/{repository}");
        if full_name.len() > NAME_MAX {
            return Err(ReferenceError::TooLong {
                input: input.to_string(),
                len: full_name.len(),
                name: full_name,
            });
        }
        // 5. No tag and no digest means `latest`.
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// Docker's short form, as `images` lists it: no `docker.io/`, no
    /// `library/` for official images (`alpine:latest`, `user/app:1`,
    /// `localhost:5000/a/b:tag`).
    pub fn familiar(&self) -> String {
        format!("{}{}", self.familiar_name(), self.suffix())
    }

    /// [`Reference::familiar`] without the tag and digest: the REPOSITORY
    /// column of `images` (`alpine`, `user/app`, `localhost:5000/a/b`).
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The `<name>` in the registry API's `/v2/<name>/manifests/…` and
    /// `/v2/<name>/blobs/…`: the repository without the registry.
    pub fn api_repository(&self) -> &str {
        &self.repository
    }

    /// `:TAG`, `@DIGEST`, or both.
    fn suffix(&self) -> String {
        let mut out = String::new();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
        out
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.registry, self.repository, self.suffix())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(text: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(text)
    }
}

/// Splits off the registry: the first component is one iff it contains
/// '.' or ':', is `localhost`, or has capitals (normalize.go's
/// `splitDockerDomain`).
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `tag` is a valid tag: `[\w][\w.-]{0,127}`. The one tag grammar:
/// chapter 6's registry checks the tags it is sent with it.
pub fn is_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    match bytes.first() {
        Some(&first) => {
            is_word(first)
                && bytes.len() <= TAG_MAX
                && bytes.iter().all(|&b| is_word(b) || b == b'.' || b == b'-')
        }
        None => false,
    }
}

/// Whether `component` is a valid component of a repository name:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, alphanumeric runs joined by one
/// separator each. The one name grammar: chapter 6's registry checks the
/// names in its URLs with it.
pub fn is_path_component(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Every run of separators between alphanumerics must be one of the
    // allowed ones.
    component
        .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        .all(|sep| {
            sep.is_empty()
                || sep == "."
                || sep == "_"
                || sep == "__"
                || sep.bytes().all(|b| b == b'-')
        })
}

/// `HOST[:PORT]`, HOST being dot-joined `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?`
/// or a bracketed IPv6 address.
fn is_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if registry.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|part| {
            let bytes = part.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(&first), Some(&last)) => {
                    first.is_ascii_alphanumeric()
                        && last.is_ascii_alphanumeric()
                        && bytes
                            .iter()
                            .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
                }
                _ => false,
            }
        })
}

/// `NAME[:TAG][@DIGEST]` cut in three, the tag and digest checked. A `:`
/// before the last `/` belongs to a registry's port, not a tag.
fn split_parts(input: &str) -> Result<(&str, Option<&str>, Option<Digest>), ReferenceError> {
    let (name_tag, digest) = match input.split_once('@') {
        Some((before, after)) => {
            let digest = Digest::parse(after).map_err(|cause| ReferenceError::Digest {
                input: input.to_string(),
                cause,
            })?;
            (before, Some(digest))
        }
        None => (input, None),
    };
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if name.is_empty() {
        return Err(ReferenceError::NoName {
            input: input.to_string(),
        });
    }
    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return Err(ReferenceError::BadTag {
            input: input.to_string(),
            tag: tag.to_string(),
        });
    }
    Ok((name, tag, digest))
}

/// The registry host and every path component of the repository against
/// the distribution spec's grammar; `input` is named in the error.
fn check_name(input: &str, registry: Option<&str>, repository: &str) -> Result<(), ReferenceError> {
    let input = || input.to_string();
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase { input: input() });
    }
    if let Some(registry) = registry
        && !is_registry(registry)
    {
        return Err(ReferenceError::BadRegistry {
            input: input(),
            registry: registry.to_string(),
        });
    }
    for component in repository.split('/') {
        if component.is_empty() {
            return Err(ReferenceError::EmptyComponent { input: input() });
        }
        if !is_path_component(component) {
            return Err(ReferenceError::BadComponent {
                input: input(),
                component: component.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_normalises() {
        let d = format!("sha256:{HEX}");
        // (input, fully qualified, familiar)
        let cases: Vec<(String, String, String)> = [
            ("alpine", "docker.io/library/alpine:latest", "alpine:latest"),
            (
                "alpine:3.20",
                "docker.io/library/alpine:3.20",
                "alpine:3.20",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            ("user/app:1", "docker.io/user/app:1", "user/app:1"),
            (
                "library/alpine",
                "docker.io/library/alpine:latest",
                "alpine:latest",
            ),
            (
                "docker.io/alpine",
                "docker.io/library/alpine:latest",
                "alpine:latest",
            ),
            (
                "docker.io/library/alpine:edge",
                "docker.io/library/alpine:edge",
                "alpine:edge",
            ),
            (
                "index.docker.io/alpine",
                "docker.io/library/alpine:latest",
                "alpine:latest",
            ),
            (
                "index.docker.io/user/app:v2",
                "docker.io/user/app:v2",
                "user/app:v2",
            ),
            (
                "docker.io/library/a/b",
                "docker.io/library/a/b:latest",
                "library/a/b:latest",
            ),
            ("localhost/a", "localhost/a:latest", "localhost/a:latest"),
            (
                "localhost:5000/a/b:tag",
                "localhost:5000/a/b:tag",
                "localhost:5000/a/b:tag",
            ),
            (
                "localhost:5000",
                "docker.io/library/localhost:5000",
                "localhost:5000",
            ),
            (
                "ghcr.io/user/app",
                "ghcr.io/user/app:latest",
                "ghcr.io/user/app:latest",
            ),
            (
                "quay.io/a/b/c/d:x_y",
                "quay.io/a/b/c/d:x_y",
                "quay.io/a/b/c/d:x_y",
            ),
            (
                "reg.example.com:443/team/app",
                "reg.example.com:443/team/app:latest",
                "reg.example.com:443/team/app:latest",
            ),
            (
                "127.0.0.1:5000/app:1.0",
                "127.0.0.1:5000/app:1.0",
                "127.0.0.1:5000/app:1.0",
            ),
            (
                "[::1]:5000/app",
                "[::1]:5000/app:latest",
                "[::1]:5000/app:latest",
            ),
            (
                "Registry.Example/app",
                "Registry.Example/app:latest",
                "Registry.Example/app:latest",
            ),
            (
                "my-registry/app",
                "docker.io/my-registry/app:latest",
                "my-registry/app:latest",
            ),
            (
                "u/a.b_c__d---e",
                "docker.io/u/a.b_c__d---e:latest",
                "u/a.b_c__d---e:latest",
            ),
            (
                "user/my_app.v2-x",
                "docker.io/user/my_app.v2-x:latest",
                "user/my_app.v2-x:latest",
            ),
            (
                "alpine:_Tag.1-B",
                "docker.io/library/alpine:_Tag.1-B",
                "alpine:_Tag.1-B",
            ),
            (
                "busybox:1.36.1-glibc",
                "docker.io/library/busybox:1.36.1-glibc",
                "busybox:1.36.1-glibc",
            ),
        ]
        .into_iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .chain([
            (
                format!("alpine@{d}"),
                format!("docker.io/library/alpine@{d}"),
                format!("alpine@{d}"),
            ),
            (
                format!("alpine:3@{d}"),
                format!("docker.io/library/alpine:3@{d}"),
                format!("alpine:3@{d}"),
            ),
            (
                format!("localhost:5000/a@{d}"),
                format!("localhost:5000/a@{d}"),
                format!("localhost:5000/a@{d}"),
            ),
        ])
        .collect();
        for (input, full, familiar) in cases {
            let r =
                Reference::parse(&input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
            assert_eq!(r.to_string(), full, "full form of {input:?}");
            assert_eq!(r.familiar(), familiar, "familiar form of {input:?}");
            // The full form is itself a reference to the same image.
            assert_eq!(Reference::parse(&full).unwrap(), r, "{full:?} round trip");
        }
    }

    #[test]
    fn splits_the_parts() {
        let r = Reference::parse(&format!("localhost:5000/a/b:tag@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.api_repository(), "a/b");
        assert_eq!(r.tag.as_deref(), Some("tag"));
        assert_eq!(r.digest.map(|d| d.hex().to_string()).as_deref(), Some(HEX));

        let r = Reference::parse(&format!("alpine@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.api_repository(), "library/alpine");
    }

    #[test]
    fn refuses_bad_references() {
        let long_tag = format!("a:{}", "t".repeat(129));
        let long_name = "a".repeat(256);
        let cases: Vec<(&str, String)> = vec![
            ("", "empty image reference".into()),
            ("Alpine", "image reference \"Alpine\": repository name must be lowercase".into()),
            ("user/App:1", "repository name must be lowercase".into()),
            ("a//b", "image reference \"a//b\": empty path component".into()),
            ("a/", "image reference \"a/\": empty path component".into()),
            ("a:", "image reference \"a:\": tag \"\" is not valid".into()),
            (":tag", "image reference \":tag\": the repository name is missing".into()),
            (
                "a@sha256:zz",
                "image reference \"a@sha256:zz\": digest \"sha256:zz\": the hex part must be 64 lowercase hex digits".into(),
            ),
            ("a@md5:00", "unknown algorithm \"md5\"".into()),
            (&long_tag, format!("tag \"{}\" is not valid", "t".repeat(129))),
            ("-a", "image reference \"-a\": path component \"-a\" is not valid".into()),
            ("a/-b", "path component \"-b\" is not valid".into()),
            ("a/b.", "path component \"b.\" is not valid".into()),
            ("a/b..c", "path component \"b..c\" is not valid".into()),
            ("a/b___c", "path component \"b___c\" is not valid".into()),
            ("a:1+2", "tag \"1+2\" is not valid".into()),
            ("a:-x", "tag \"-x\" is not valid".into()),
            (
                &long_name,
                format!("the name \"docker.io/library/{long_name}\" is 274 characters long; the limit is 255"),
            ),
            ("localhost:x/a", "registry \"localhost:x\" is not a valid HOST[:PORT]".into()),
            ("-bad.io/a", "registry \"-bad.io\" is not a valid HOST[:PORT]".into()),
            (HEX, "cannot be 64 hex digits".into()),
        ];
        for (input, want) in cases {
            let err = match Reference::parse(input) {
                Ok(r) => panic!("{input:?} should be refused, parsed as {r}"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(&want), "{input:?}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn name_length_counts_the_normalised_name() {
        // docker.io/library/ + 237 = 255: allowed; one more is not.
        assert!(Reference::parse(&"a".repeat(237)).is_ok());
        assert!(matches!(
            Reference::parse(&"a".repeat(238)),
            Err(ReferenceError::TooLong { len: 256, .. })
        ));
    }
}
