//! Reference solution for exercise 2: two GETs of the distribution API,
//! each answer checked against the digest that names it.

use sha2::{Digest, Sha256};

/// The manifest types we can read. Without an Accept header a registry
/// may answer with an old format, or refuse.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.v2+json";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn get(url: &str, accept: Option<&str>) -> Result<(Vec<u8>, Option<String>), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let mut response = request.call().map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(format!("GET {url}: status {status}"));
    }
    let stated = response
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response
        .body_mut()
        .with_config()
        .limit(4 << 20)
        .read_to_vec()
        .map_err(|e| format!("GET {url}: {e}"))?;
    Ok((body, stated))
}

/// The diff_ids of `registry/repository:tag`, from its config.
pub fn fetch_diff_ids(registry: &str, repository: &str, tag: &str) -> Result<Vec<String>, String> {
    let base = format!("http://{registry}/v2/{repository}");
    let (manifest, stated) = get(&format!("{base}/manifests/{tag}"), Some(ACCEPT))?;
    let stated = stated.ok_or("the registry stated no Docker-Content-Digest")?;
    if sha256(&manifest) != stated {
        return Err(format!("the manifest does not hash to {stated}"));
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest).map_err(|e| format!("manifest: {e}"))?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or("the manifest names no config")?;
    let (config, _) = get(&format!("{base}/blobs/{config_digest}"), None)?;
    if sha256(&config) != config_digest {
        return Err(format!("the config does not hash to {config_digest}"));
    }
    let config: serde_json::Value =
        serde_json::from_slice(&config).map_err(|e| format!("config: {e}"))?;
    config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or("the config has no rootfs.diff_ids")?
        .iter()
        .map(|d| {
            d.as_str()
                .map(str::to_string)
                .ok_or("a diff_id is not a string".into())
        })
        .collect()
}
