//! Reference solution for exercise 2: the tags list, a page at a time,
//! following `Link: <...>; rel="next"` (RFC 8288) until there is none.

/// The URL in a `Link` header's `rel="next"` entry, if there is one.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|entry| {
        let (target, params) = entry.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

/// Every tag of `registry`'s `repository`, fetched `page_size` at a time.
pub fn all_tags(registry: &str, repository: &str, page_size: usize) -> Result<Vec<String>, String> {
    let base = format!("http://{registry}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut tags = Vec::new();
    let mut next = Some(format!("{base}/v2/{repository}/tags/list?n={page_size}"));
    while let Some(url) = next.take() {
        let mut response = agent
            .get(&url)
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("GET {url}: {e}"))?;
        if response.status() != 200 {
            return Err(format!("GET {url}: {} {body}", response.status()));
        }
        let page: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
        // No tags at all may come as null.
        if let Some(list) = page["tags"].as_array() {
            for tag in list {
                let tag = tag
                    .as_str()
                    .ok_or(format!("GET {url}: a tag is not a string"))?;
                tags.push(tag.to_string());
            }
        }
        // The next page: a path on the registry, or a whole URL.
        next = response
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(next_link)
            .map(|target| {
                if target.starts_with('/') {
                    format!("{base}{target}")
                } else {
                    target
                }
            });
    }
    Ok(tags)
}
