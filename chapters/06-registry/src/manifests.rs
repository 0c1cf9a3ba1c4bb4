//! Manifests: `GET`, `HEAD`, `PUT` and `DELETE /v2/<name>/manifests/<reference>`.
//!
//! A manifest is the one document a registry reads: everything else is
//! opaque bytes. On `PUT` the registry checks, in this order, and refuses
//! with the spec's code:
//!
//! 1. the body is at most [`MAX_MANIFEST_BYTES`] (4 MiB, the size every
//!    registry must accept), else `413`, read no further;
//! 2. if pushed by digest, the bytes hash to it (`DIGEST_INVALID`);
//! 3. it is JSON of a manifest media type we know — an OCI image manifest or
//!    index, or Docker's schema 2 manifest or manifest list — and its
//!    `mediaType` agrees with `Content-Type` (`MANIFEST_INVALID`);
//! 4. every blob it names (config, layers) is in this repository with the
//!    size the descriptor states, and every manifest an index names is too
//!    (`MANIFEST_BLOB_UNKNOWN`, one error per missing digest). Two
//!    exceptions, as the spec allows: the `subject` may not exist yet (a
//!    signature may be pushed before what it signs), and non-distributable
//!    ("foreign") layers live elsewhere by definition.
//!
//! Only then is it stored — the bytes exactly as sent, since its digest is
//! over those bytes — as a blob, linked into the repository with its media
//! type, recorded as a referrer of its `subject` (answered with the
//! `OCI-Subject` header), and last tagged: a tag never points to a manifest
//! whose content is not all there.
//!
//! Specs: distribution-spec v1.1, "Pulling manifests", "Pushing Manifests"
//! (and "with Subject"), "Deleting tags", "Deleting Manifests" (end-3,
//! end-7, end-9); image-spec `manifest.md`, `image-index.md`,
//! `descriptor.md`; CVE-2021-41190 (a document that is both a manifest and
//! an index).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::Response;
use ch05_images::digest::{Algorithm, Digest};
use ch05_images::oci::{self, DOCKER_MANIFEST_LIST, Descriptor, Manifest, OCI_INDEX};

use crate::body::{BodyError, read_small_body};
use crate::errors::{ApiError, ErrorCode, ErrorEntry, digest_invalid, name_unknown};
use crate::names::{Reference, ReferenceError, is_tag};
use crate::routes::{DOCKER_CONTENT_DIGEST, Query, empty_response};
use crate::storage::Storage;

/// The largest manifest accepted (the spec's "at least 4 megabytes").
pub const MAX_MANIFEST_BYTES: usize = oci::MAX_MANIFEST_BYTES;

/// What a manifest is, once checked.
#[derive(Debug, Clone)]
pub struct Checked {
    pub media_type: String,
    /// Blobs that must be in the repository (config and layers).
    pub blobs: Vec<Descriptor>,
    /// Manifests that must be in the repository (an index's entries).
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Digest>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::ManifestInvalid, detail)
}

fn manifest_unknown(name: &str, reference: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::ManifestUnknown,
        format!("manifest {reference} is not in repository {name}"),
    )
}

/// The descriptor's digest, or why the manifest is invalid.
fn descriptor_digest(what: &str, descriptor: &Descriptor) -> Result<Digest, ApiError> {
    Digest::parse(&descriptor.digest).map_err(|e| invalid(format!("{what}: {e}")))
}

// ANCHOR: accept_manifest
/// Checks `bytes`, sent with `content_type`, as a manifest (step 3 of the
/// module's list; existence is checked by the caller): chapter 5's
/// [`oci::check_manifest`], which a client pulling it applies too, then
/// what a registry adds.
pub fn accept_manifest(content_type: &str, bytes: &[u8]) -> Result<Checked, ApiError> {
    let checked = oci::check_manifest(content_type, bytes).map_err(|e| invalid(e.to_string()))?;
    // Policy: the registry stores the media type it answers GET with, so
    // the client must say it, and exactly as the document does.
    let Some(media_type) = checked.media_type else {
        return Err(invalid(
            "cannot tell what this manifest is: send Content-Type with its media type \
             (application/vnd.oci.image.manifest.v1+json, ...index.v1+json, or Docker's)",
        ));
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if let Some(c) = value.get("mediaType").and_then(serde_json::Value::as_str)
        && c != media_type
    {
        return Err(invalid(format!(
            "Content-Type is {media_type} but the manifest's mediaType is {c}: they must agree"
        )));
    }
    // What must be here: blobs (but foreign layers, which live elsewhere by
    // definition) or an index's manifests; and the subject, which need not.
    let (blobs, manifests, subject) = match checked.manifest {
        Manifest::Index(index) => (Vec::new(), index.manifests, index.subject),
        Manifest::Image(manifest) => {
            let layers = manifest.layers.into_iter();
            let mut blobs = vec![manifest.config];
            blobs.extend(layers.filter(|l| !oci::is_foreign_layer(&l.media_type)));
            (blobs, Vec::new(), manifest.subject)
        }
    };
    let subject = match &subject {
        Some(s) => Some(descriptor_digest("subject", s)?),
        None => None,
    };
    Ok(Checked {
        media_type,
        blobs,
        manifests,
        subject,
    })
}
// ANCHOR_END: accept_manifest

/// Step 4: everything the manifest names is in repository `name`, with the
/// stated size. Every missing digest is one `MANIFEST_BLOB_UNKNOWN`.
async fn check_references(
    storage: &Storage,
    name: &str,
    checked: &Checked,
) -> Result<(), ApiError> {
    let mut missing = Vec::new();
    let io = |e: std::io::Error| ApiError::internal(format!("check manifest references: {e}"));
    let wanted = checked
        .blobs
        .iter()
        .map(|d| (d, false))
        .chain(checked.manifests.iter().map(|d| (d, true)));
    for (descriptor, is_manifest) in wanted {
        let digest = descriptor_digest("descriptor", descriptor)?;
        let size = if is_manifest {
            match storage
                .manifest_media_type(name, &digest)
                .await
                .map_err(io)?
            {
                Some(_) => storage.blob_size(&digest).await.map_err(io)?,
                None => None,
            }
        } else {
            storage.has_blob(name, &digest).await.map_err(io)?
        };
        match size {
            None => missing.push(ErrorEntry {
                code: ErrorCode::ManifestBlobUnknown,
                detail: format!(
                    "{} {digest} is not in repository {name}: push it before the manifest",
                    if is_manifest { "manifest" } else { "blob" }
                ),
            }),
            Some(size) if size != descriptor.size => {
                return Err(invalid(format!(
                    "the descriptor of {digest} says {} bytes but the registry has {size}",
                    descriptor.size
                )));
            }
            Some(_) => {}
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            errors: missing,
            headers: Vec::new(),
        })
    }
}

/// The digest of the manifest a reference names in `name`, or 404.
async fn resolve(storage: &Storage, name: &str, reference: &Reference) -> Result<Digest, ApiError> {
    let io = |e: std::io::Error| ApiError::internal(format!("resolve {reference}: {e}"));
    if !storage.repository_exists(name).await {
        return Err(name_unknown(name));
    }
    match reference {
        Reference::Digest(digest) => Ok(digest.clone()),
        Reference::Tag(tag) => storage
            .resolve_tag(name, tag)
            .await
            .map_err(io)?
            .ok_or_else(|| manifest_unknown(name, tag)),
    }
}

/// The `<reference>` of a request that reads (GET, HEAD, DELETE): a bad
/// digest is a bad request, a bad tag simply cannot exist.
fn read_reference(name: &str, text: &str) -> Result<Reference, ApiError> {
    match Reference::parse(text) {
        Ok(r) => Ok(r),
        Err(ReferenceError::Digest(why)) => Err(digest_invalid(text, why)),
        Err(ReferenceError::Tag(_)) => Err(manifest_unknown(name, text)),
    }
}

// ANCHOR: get_manifest
/// `GET` (or `HEAD`) `/v2/<name>/manifests/<reference>`: the bytes as pushed,
/// with the media type they were pushed as.
pub async fn get(
    storage: &Storage,
    name: &str,
    reference: &str,
    head: bool,
) -> Result<Response, ApiError> {
    let reference = read_reference(name, reference)?;
    let digest = resolve(storage, name, &reference).await?;
    let io = |e: std::io::Error| ApiError::internal(format!("read manifest {digest}: {e}"));
    let Some(media_type) = storage
        .manifest_media_type(name, &digest)
        .await
        .map_err(io)?
    else {
        return Err(manifest_unknown(name, &reference.to_string()));
    };
    let bytes = storage.read_blob(&digest).await.map_err(io)?;
    let headers = vec![
        (header::CONTENT_TYPE, media_type),
        (header::CONTENT_LENGTH, bytes.len().to_string()),
        (
            HeaderName::from_static(DOCKER_CONTENT_DIGEST),
            digest.to_string(),
        ),
        (header::ETAG, format!("\"{digest}\"")),
    ];
    let mut response = empty_response(StatusCode::OK, headers);
    if !head {
        *response.body_mut() = Body::from(bytes);
    }
    Ok(response)
}
// ANCHOR_END: get_manifest

// ANCHOR: put_manifest
/// `PUT /v2/<name>/manifests/<reference>`.
pub async fn put(
    storage: &Storage,
    name: &str,
    reference: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (reference, extra_tags) = parse_put_reference(reference, query)?;
    // 1. Size: refuse before reading when Content-Length already says too
    //    much, and stop reading past the limit otherwise.
    let bytes = read_manifest_body(headers, body).await?;
    // 2. The digest: over the bytes exactly as sent.
    let digest = check_digest(&reference, &bytes)?;
    // 3. What it is; 4. everything it names is here.
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let checked = accept_manifest(content_type, &bytes)?;
    check_references(storage, name, &checked).await?;
    // 5. Store: the bytes, the repository's link, the referrer link, and the
    //    tags last.
    let mut tags: Vec<&str> = extra_tags;
    if let Reference::Tag(tag) = &reference {
        tags.push(tag);
    }
    store_manifest(storage, name, &digest, &bytes, &checked, &tags).await?;
    let mut out = vec![
        (header::LOCATION, format!("/v2/{name}/manifests/{digest}")),
        (
            HeaderName::from_static(DOCKER_CONTENT_DIGEST),
            digest.to_string(),
        ),
        (header::CONTENT_LENGTH, "0".into()),
    ];
    if let Some(subject) = &checked.subject {
        out.push((HeaderName::from_static("oci-subject"), subject.to_string()));
    }
    if matches!(reference, Reference::Digest(_)) {
        for tag in tags {
            out.push((HeaderName::from_static("oci-tag"), tag.to_string()));
        }
    }
    Ok(empty_response(StatusCode::CREATED, out))
}
// ANCHOR_END: put_manifest

/// The `<reference>` of a `PUT`, and the extra tags (`?tag=a&tag=b`) a push
/// by digest may carry (end-7b).
fn parse_put_reference<'q>(
    reference: &str,
    query: &'q Query,
) -> Result<(Reference, Vec<&'q str>), ApiError> {
    let reference = match Reference::parse(reference) {
        Ok(r) => r,
        Err(ReferenceError::Digest(why)) => return Err(digest_invalid(reference, why)),
        Err(ReferenceError::Tag(why)) => return Err(invalid(why)),
    };
    let extra_tags: Vec<&str> = query.get_all("tag").collect();
    if let Some(bad) = extra_tags.iter().find(|t| !is_tag(t)) {
        return Err(invalid(format!("tag {bad:?} is not valid")));
    }
    if !extra_tags.is_empty() && matches!(reference, Reference::Tag(_)) {
        return Err(invalid(
            "tag query parameters are only accepted on a push by digest",
        ));
    }
    Ok((reference, extra_tags))
}

/// Step 1 of [`put`]: the body, at most [`MAX_MANIFEST_BYTES`].
async fn read_manifest_body(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ManifestInvalid,
            format!("the manifest is larger than {MAX_MANIFEST_BYTES} bytes, the limit here"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_MANIFEST_BYTES as u64) {
        return Err(too_large());
    }
    match read_small_body(body, MAX_MANIFEST_BYTES).await {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(too_large()),
        Err(BodyError::Client(detail)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::SizeInvalid,
            detail,
        )),
        Err(BodyError::Disk(e)) => Err(ApiError::internal(e)),
    }
}

/// Step 2 of [`put`]: the manifest's digest, which must be the one it was
/// pushed by, if it was (by tag: sha256, as every registry names it).
fn check_digest(reference: &Reference, bytes: &[u8]) -> Result<Digest, ApiError> {
    let algorithm = match reference {
        Reference::Digest(d) => d.algorithm(),
        Reference::Tag(_) => Algorithm::Sha256,
    };
    let digest = Digest::of_bytes(algorithm, bytes);
    if let Reference::Digest(expected) = reference
        && *expected != digest
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::DigestInvalid,
            format!("the manifest hashes to {digest}, not {expected}: nothing was stored"),
        ));
    }
    Ok(digest)
}

/// Step 5 of [`put`]: the bytes (once), the repository's link with the
/// media type, the referrer link, and `tags` last.
pub(crate) async fn store_manifest(
    storage: &Storage,
    name: &str,
    digest: &Digest,
    bytes: &[u8],
    checked: &Checked,
    tags: &[&str],
) -> Result<(), ApiError> {
    let io = |e: std::io::Error| ApiError::internal(format!("store manifest {digest}: {e}"));
    if storage.blob_size(digest).await.map_err(io)?.is_none() {
        storage
            .write_atomic(&storage.blob_path(digest), bytes)
            .await
            .map_err(io)?;
    }
    storage
        .link_manifest(name, digest, &checked.media_type)
        .await
        .map_err(io)?;
    if let Some(subject) = &checked.subject {
        storage
            .link_referrer(name, subject, digest)
            .await
            .map_err(io)?;
    }
    for tag in tags {
        storage.set_tag(name, tag, digest).await.map_err(io)?;
    }
    Ok(())
}

/// `DELETE /v2/<name>/manifests/<reference>`: a tag (the manifest stays), or
/// a manifest with every tag pointing to it and its referrer entry.
pub async fn delete(storage: &Storage, name: &str, reference: &str) -> Result<Response, ApiError> {
    let reference = read_reference(name, reference)?;
    if !storage.repository_exists(name).await {
        return Err(name_unknown(name));
    }
    let io = |e: std::io::Error| ApiError::internal(format!("delete {reference}: {e}"));
    let accepted = || {
        empty_response(
            StatusCode::ACCEPTED,
            vec![(header::CONTENT_LENGTH, "0".into())],
        )
    };
    let digest = match &reference {
        Reference::Tag(tag) => {
            if !storage.delete_tag(name, tag).await.map_err(io)? {
                return Err(manifest_unknown(name, tag));
            }
            return Ok(accepted());
        }
        Reference::Digest(digest) => digest,
    };
    if storage
        .manifest_media_type(name, digest)
        .await
        .map_err(io)?
        .is_none()
    {
        return Err(manifest_unknown(name, &digest.to_string()));
    }
    // Its subject, to drop it from that subject's referrers.
    if let Ok(bytes) = storage.read_blob(digest).await
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes)
        && let Some(subject) = value
            .pointer("/subject/digest")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| Digest::parse(s).ok())
    {
        storage
            .unlink_referrer(name, &subject, digest)
            .await
            .map_err(io)?;
    }
    for tag in storage.tags(name).await.map_err(io)? {
        if storage.resolve_tag(name, &tag).await.map_err(io)?.as_ref() == Some(digest) {
            storage.delete_tag(name, &tag).await.map_err(io)?;
        }
    }
    storage.unlink_manifest(name, digest).await.map_err(io)?;
    Ok(accepted())
}

/// The referrers API's descriptor of manifest `digest` (`media_type`,
/// `bytes`): its `artifactType` — for an image manifest without one, its
/// config's media type — and its annotations.
pub fn referrer_descriptor(media_type: &str, digest: &Digest, bytes: &[u8]) -> serde_json::Value {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let mut descriptor = serde_json::json!({
        "mediaType": media_type,
        "digest": digest.to_string(),
        "size": bytes.len(),
    });
    let artifact_type = value
        .get("artifactType")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .or_else(|| {
            if matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST) {
                None
            } else {
                value
                    .pointer("/config/mediaType")
                    .and_then(serde_json::Value::as_str)
            }
        });
    if let Some(t) = artifact_type {
        descriptor["artifactType"] = t.into();
    }
    if let Some(annotations) = value.get("annotations").filter(|a| a.is_object()) {
        descriptor["annotations"] = annotations.clone();
    }
    descriptor
}

#[cfg(test)]
mod tests {
    use super::*;
    use ch05_images::oci::{DOCKER_SCHEMA1_SIGNED, OCI_MANIFEST};

    const CONFIG: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
               "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CONFIG}","size":2}},
               "layers":[]{extra}}}"#
        )
    }

    fn code(result: Result<Checked, ApiError>) -> &'static str {
        result.unwrap_err().code().as_str()
    }

    #[test]
    fn accepts_images_indexes_and_artifacts() {
        let checked = accept_manifest(OCI_MANIFEST, image("").as_bytes()).unwrap();
        assert_eq!(checked.media_type, OCI_MANIFEST);
        assert_eq!(checked.blobs.len(), 1);
        // No Content-Type: the mediaType field says it.
        assert!(accept_manifest("", image("").as_bytes()).is_ok());
        // Parameters are ignored.
        assert!(
            accept_manifest(
                &format!("{OCI_MANIFEST}; charset=utf-8"),
                image("").as_bytes()
            )
            .is_ok()
        );
        // An artifact: any config type, a subject that need not exist.
        let artifact = image(&format!(
            r#","artifactType":"application/vnd.example","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{CONFIG}","size":1}}"#
        ));
        let checked = accept_manifest(OCI_MANIFEST, artifact.as_bytes()).unwrap();
        assert_eq!(checked.subject.unwrap().to_string(), CONFIG);
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{CONFIG}","size":3}}]}}"#
        );
        let checked = accept_manifest(OCI_INDEX, index.as_bytes()).unwrap();
        assert_eq!(checked.manifests.len(), 1);
        assert!(checked.blobs.is_empty());
    }

    #[test]
    fn refuses_what_is_not_a_manifest() {
        assert_eq!(
            code(accept_manifest(OCI_MANIFEST, b"not json")),
            "MANIFEST_INVALID"
        );
        assert_eq!(
            code(accept_manifest(OCI_MANIFEST, b"[1]")),
            "MANIFEST_INVALID"
        );
        assert_eq!(
            code(accept_manifest(OCI_INDEX, image("").as_bytes())),
            "MANIFEST_INVALID"
        );
        assert_eq!(
            code(accept_manifest(
                "application/x-unknown",
                image("").as_bytes()
            )),
            "MANIFEST_INVALID"
        );
        assert_eq!(
            code(accept_manifest(
                OCI_MANIFEST,
                image(r#","manifests":[]"#).as_bytes()
            )),
            "MANIFEST_INVALID"
        );
        let v1 = image("").replace("\"schemaVersion\":2", "\"schemaVersion\":1");
        assert_eq!(
            code(accept_manifest(OCI_MANIFEST, v1.as_bytes())),
            "MANIFEST_INVALID"
        );
        let bad_digest = image("").replace(CONFIG, "sha256:abc");
        let err = accept_manifest(OCI_MANIFEST, bad_digest.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("config"), "{err}");
        assert_eq!(
            code(accept_manifest(DOCKER_SCHEMA1_SIGNED, b"{}")),
            "MANIFEST_INVALID"
        );
    }

    #[test]
    fn referrer_descriptors_follow_the_spec() {
        let digest = Digest::of_bytes(Algorithm::Sha256, b"x");
        let plain = image(r#","annotations":{"a":"b"}"#);
        let d = referrer_descriptor(OCI_MANIFEST, &digest, plain.as_bytes());
        assert_eq!(
            d["artifactType"],
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(d["annotations"]["a"], "b");
        assert_eq!(d["size"], plain.len());
        let typed = image(r#","artifactType":"application/vnd.example""#);
        let d = referrer_descriptor(OCI_MANIFEST, &digest, typed.as_bytes());
        assert_eq!(d["artifactType"], "application/vnd.example");
        let index = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        let d = referrer_descriptor(OCI_INDEX, &digest, index.as_bytes());
        assert!(d.get("artifactType").is_none());
    }
}
