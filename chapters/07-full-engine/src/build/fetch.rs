//! ADD's remote sources: a URL fetched over HTTP(S) into the layer.
//!
//! As docker's ADD: the file is not unpacked, its mode is 0600, its mtime
//! is the response's `Last-Modified` (else now), and when the destination
//! is a directory its name is the URL path's last segment. The cache key
//! is the content's digest (the copy is hashed like any other), so a
//! changed remote file invalidates the step.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// The file name a URL gives (its path's last segment).
pub fn file_name(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    let (_, path) = path.split_once('/')?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's preferred
/// form) as seconds since the epoch.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let rfc3339 = format!("{year}-{month:02}-{day:0>2}T{time}Z");
    let time = humantime::parse_rfc3339(&rfc3339).ok()?;
    Some(time.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

/// Fetch `url` into the new file `dest`; its `Last-Modified`, if given.
pub fn fetch(url: &str, dest: &Path) -> Result<Option<i64>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .user_agent(concat!("berth-build/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .max_redirects(10)
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| format!("fetch {url}: {e}"))?;
    let modified = response
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    // What an earlier source left there is replaced, never written through.
    if dest.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
        std::fs::remove_file(dest).map_err(|e| format!("replace {}: {e}", dest.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(|e| format!("create {}: {e}", dest.display()))?;
    let mut body = response.body_mut().as_reader();
    std::io::copy(&mut body, &mut file).map_err(|e| format!("fetch {url}: {e}"))?;
    file.flush()
        .map_err(|e| format!("write {}: {e}", dest.display()))?;
    Ok(modified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates_read_as_docker_reads_them() {
        assert_eq!(
            file_name("http://127.0.0.1:8080/a/b/file.tar.gz?x=1").as_deref(),
            Some("file.tar.gz")
        );
        assert_eq!(file_name("https://example.com/"), None);
        assert_eq!(file_name("https://example.com"), None);
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
