//! Content discovery: the tags of a repository, the repositories of the
//! registry, and the manifests that refer to a manifest.
//!
//! - `GET /v2/<name>/tags/list[?n=N&last=TAG]`: tags in byte order, `N` at a
//!   time after `TAG`, with `Link: <...>; rel="next"` while more remain;
//! - `GET /v2/_catalog[?n=N&last=NAME]`: repository names, the same way
//!   (not in the OCI spec; Docker's registry API, which every tool speaks);
//! - `GET /v2/<name>/referrers/<digest>[?artifactType=T]`: an image index
//!   listing every manifest in `<name>` whose `subject` is `<digest>` — the
//!   signatures, SBOMs and attestations attached to an image — filtered by
//!   artifact type if asked (`OCI-Filters-Applied: artifactType`). Never a
//!   404: no referrers is an empty index.
//!
//! Specs: distribution-spec v1.1, "Listing Tags", "Listing Referrers"
//! (end-8, end-12); Docker registry HTTP API V2, "Catalog"; RFC 5988 (Link).

use axum::body::Body;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::Response;
use ch05_images::digest::Digest;
use ch05_images::oci::OCI_INDEX;

use crate::errors::{ApiError, ErrorCode, digest_invalid, name_unknown};
use crate::manifests::referrer_descriptor;
use crate::routes::{Query, empty_response};
use crate::storage::Storage;

// ANCHOR: paginate
/// One page of a sorted list: the entries after `last`, at most `n`, and
/// whether more remain.
pub fn paginate(all: Vec<String>, n: Option<usize>, last: Option<&str>) -> (Vec<String>, bool) {
    let rest: Vec<String> = match last {
        Some(last) => all.into_iter().filter(|e| e.as_str() > last).collect(),
        None => all,
    };
    match n {
        Some(n) if rest.len() > n => (rest.into_iter().take(n).collect(), n > 0),
        _ => (rest, false),
    }
}
// ANCHOR_END: paginate

/// `?n=` as a count.
fn page_size(query: &Query) -> Result<Option<usize>, ApiError> {
    match query.get("n") {
        None | Some("") => Ok(None),
        Some(text) => text.parse::<usize>().map(Some).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::Unsupported,
                format!("n={text:?} is not a page size: give a non-negative integer"),
            )
        }),
    }
}

/// A JSON answer, with a `Link` to the next page if there is one.
fn page_response(body: serde_json::Value, next: Option<String>) -> Response {
    let bytes = body.to_string().into_bytes();
    let mut headers = vec![
        (header::CONTENT_TYPE, "application/json".to_string()),
        (header::CONTENT_LENGTH, bytes.len().to_string()),
    ];
    if let Some(next) = next {
        headers.push((header::LINK, format!("<{next}>; rel=\"next\"")));
    }
    let mut response = empty_response(StatusCode::OK, headers);
    *response.body_mut() = Body::from(bytes);
    response
}

// ANCHOR: tags
/// `GET /v2/<name>/tags/list`.
pub async fn tags(storage: &Storage, name: &str, query: &Query) -> Result<Response, ApiError> {
    if !storage.repository_exists(name).await {
        return Err(name_unknown(name));
    }
    let n = page_size(query)?;
    let all = storage
        .tags(name)
        .await
        .map_err(|e| ApiError::internal(format!("list tags of {name}: {e}")))?;
    let (page, more) = paginate(all, n, query.get("last"));
    let next = match (more, page.last(), n) {
        (true, Some(last), Some(n)) => Some(format!("/v2/{name}/tags/list?n={n}&last={last}")),
        _ => None,
    };
    Ok(page_response(
        serde_json::json!({ "name": name, "tags": page }),
        next,
    ))
}
// ANCHOR_END: tags

/// `GET /v2/_catalog`.
pub async fn catalog(storage: &Storage, query: &Query) -> Result<Response, ApiError> {
    let n = page_size(query)?;
    let all = storage
        .repositories()
        .await
        .map_err(|e| ApiError::internal(format!("list repositories: {e}")))?;
    let (page, more) = paginate(all, n, query.get("last"));
    let next = match (more, page.last(), n) {
        (true, Some(last), Some(n)) => Some(format!("/v2/_catalog?n={n}&last={last}")),
        _ => None,
    };
    Ok(page_response(
        serde_json::json!({ "repositories": page }),
        next,
    ))
}

// ANCHOR: referrers
/// `GET /v2/<name>/referrers/<digest>`.
pub async fn referrers(
    storage: &Storage,
    name: &str,
    subject: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let subject = Digest::parse(subject).map_err(|e| digest_invalid(subject, e))?;
    let filter = query.get("artifactType").filter(|t| !t.is_empty());
    let io = |e: std::io::Error| ApiError::internal(format!("referrers of {subject}: {e}"));
    let mut manifests = Vec::new();
    for digest in storage.referrers(name, &subject).await.map_err(io)? {
        // A referrer deleted since is no longer linked: skip it.
        let Some(media_type) = storage
            .manifest_media_type(name, &digest)
            .await
            .map_err(io)?
        else {
            continue;
        };
        let bytes = storage.read_blob(&digest).await.map_err(io)?;
        let descriptor = referrer_descriptor(&media_type, &digest, &bytes);
        if let Some(wanted) = filter
            && descriptor.get("artifactType").and_then(|t| t.as_str()) != Some(wanted)
        {
            continue;
        }
        manifests.push(descriptor);
    }
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    })
    .to_string()
    .into_bytes();
    let mut headers = vec![
        (header::CONTENT_TYPE, OCI_INDEX.to_string()),
        (header::CONTENT_LENGTH, body.len().to_string()),
    ];
    if filter.is_some() {
        headers.push((
            HeaderName::from_static("oci-filters-applied"),
            "artifactType".into(),
        ));
    }
    let mut response = empty_response(StatusCode::OK, headers);
    *response.body_mut() = Body::from(body);
    Ok(response)
}
// ANCHOR_END: referrers

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pages_follow_the_spec() {
        let all = list(&["a", "b", "c", "d"]);
        assert_eq!(paginate(all.clone(), None, None), (all.clone(), false));
        assert_eq!(
            paginate(all.clone(), Some(2), None),
            (list(&["a", "b"]), true)
        );
        assert_eq!(
            paginate(all.clone(), Some(2), Some("b")),
            (list(&["c", "d"]), false)
        );
        assert_eq!(
            paginate(all.clone(), None, Some("c")),
            (list(&["d"]), false)
        );
        // n=0: an empty list and no Link.
        assert_eq!(paginate(all.clone(), Some(0), None), (vec![], false));
        assert!(!paginate(all, Some(10), None).1);
    }
}
