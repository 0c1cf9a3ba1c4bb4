//! `serve --token-realm`: bearer tokens scoped per repository and action,
//! as Docker Hub issues them, met by chapter 5's pull, our push and skopeo.

mod common;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use berth_test_support::registry::{oci_ref, require_tool, skopeo_copy, skopeo_digest};
use ch05_images::pull::{PullOptions, pull};
use ch05_images::reference::Reference;
use ch05_images::registry::{ClientOptions, Credentials, Registry};
use ch05_images::store::Store;
use common::*;

/// A token registry with user alice (password `pw`), and any extra
/// `serve` arguments.
fn token_server(dir: &Path, extra: &[&str]) -> Server {
    let file = htpasswd_file(dir, "alice", "pw");
    let mut args = vec!["--token-realm", "--htpasswd", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start_in(&dir.join("registry"), &args)
}

/// A chapter 5 store holding `berth/test:1`: (store, manifest digest).
fn source(work: &Path) -> (std::path::PathBuf, String) {
    let (_, digest) = oci_layout(work, &[("etc/motd", b"tokens\n")]);
    (work.join("store"), digest)
}

/// `GET /token` as a client would, with optional Basic credentials.
fn token(server: &Server, scopes: &[&str], user: Option<(&str, &str)>) -> Reply {
    let query: Vec<String> = scopes.iter().map(|s| format!("scope={s}")).collect();
    let url = server.url(&format!("/token?service=ch06-registry&{}", query.join("&")));
    let basic = user.map(|(u, p)| {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        format!("Basic {pair}")
    });
    let headers: Vec<(&str, &str)> = basic
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    request("GET", &url, &headers, None)
}

fn token_of(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["token"].as_str().unwrap().to_string()
}

/// The claims of a token (the middle of `header.claims.signature`).
fn claims(token: &str) -> serde_json::Value {
    let middle = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64URL.decode(middle).unwrap()).unwrap()
}

fn get(server: &Server, path: &str, token: &str) -> Reply {
    let bearer = format!("Bearer {token}");
    request(
        "GET",
        &server.url(path),
        &[("authorization", &bearer)],
        None,
    )
}

/// Asserts a 401 UNAUTHORIZED whose challenge sends the client to our
/// realm for `scope`, with `error` (RFC 6750) if given.
fn assert_challenge(reply: &Reply, server: &Server, scope: Option<&str>, error: Option<&str>) {
    reply.assert_error(401, "UNAUTHORIZED");
    let mut want = format!(
        r#"Bearer realm="http://{}/token",service="ch06-registry""#,
        server.addr
    );
    if let Some(scope) = scope {
        want.push_str(&format!(r#",scope="{scope}""#));
    }
    if let Some(error) = error {
        want.push_str(&format!(r#",error="{error}""#));
    }
    assert_eq!(reply.header("www-authenticate"), Some(want.as_str()));
}

/// A request whose headers announce a body of `length` bytes that is
/// never sent; the reply, read until the server closes the connection
/// (at most 30 seconds: a server that waits for the body fails here).
fn headers_only(server: &Server, method: &str, path: &str, length: u64) -> Reply {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.addr.as_str()).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {length}\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path} with an unsent body: no answer: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole HTTP answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn tokens_are_scoped_per_repository_and_action() {
    if !require_tool("tokens_are_scoped_per_repository_and_action", "htpasswd") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (store, digest) = source(work.path());
    let server = token_server(work.path(), &[]);
    let stored = || {
        server
            .files()
            .into_iter()
            .filter(|f| f.starts_with("blobs/") || f.starts_with("repositories/"))
            .collect::<Vec<_>>()
    };

    // Without a token: the challenge names the scope each request needs.
    assert_challenge(
        &request("GET", &server.url("/v2/"), &[], None),
        &server,
        None,
        None,
    );
    for (method, path, scope) in [
        ("GET", "/v2/app/manifests/1", "repository:app:pull"),
        ("HEAD", "/v2/app/blobs/sha256:00", "repository:app:pull"),
        ("POST", "/v2/app/blobs/uploads/", "repository:app:pull,push"),
        ("DELETE", "/v2/app/manifests/1", "repository:app:delete"),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
    ] {
        let reply = request(method, &server.url(path), &[], None);
        if method == "HEAD" {
            assert_eq!(reply.status, 401);
        } else {
            assert_challenge(&reply, &server, Some(scope), None);
        }
    }
    // A write refused before its body was read: a small body is read and
    // dropped so the connection can carry the next request; a big one is
    // not waited for, and the connection is closed.
    let small = put_manifest(&server, "app", "1", OCI_MANIFEST, b"{}");
    assert_challenge(&small, &server, Some("repository:app:pull,push"), None);
    assert_eq!(small.header("connection"), None);
    // The big one is announced and never sent: the answer must come all
    // the same. (Sending the body too would race with the close: the
    // client may still be writing when the server hangs up.)
    let big = headers_only(
        &server,
        "POST",
        "/v2/app/blobs/uploads/?digest=sha256:00",
        1 << 20,
    );
    assert_challenge(&big, &server, Some("repository:app:pull,push"), None);
    assert_eq!(big.header("connection"), Some("close"));

    // Passwords are for the token server only.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:pw")
    );
    assert_challenge(
        &request(
            "GET",
            &server.url("/v2/"),
            &[("authorization", &basic)],
            None,
        ),
        &server,
        None,
        None,
    );

    // Push without credentials: the anonymous token grants pull only, and
    // the registry says so. Nothing is stored.
    let dest = format!("{}/team/app:1", server.addr);
    let refused = push_cmd(&store, &["berth/test:1", &dest], "");
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("authentication required")
            && stderr
                .contains("UNAUTHORIZED: the token does not grant push on repository team/app")
            && stderr.contains("--password-stdin"),
        "{stderr}"
    );
    assert_eq!(stored(), Vec::<String>::new());
    // A wrong password is refused by the token server.
    let wrong = push_as(&store, "alice", "nope", "berth/test:1", &dest);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("wrong user name or password"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    assert_eq!(stored(), Vec::<String>::new());

    // With credentials, the push goes through, with one token for the
    // repository's pull,push scope.
    let out = push_stdout(&push_as(&store, "alice", "pw", "berth/test:1", &dest));
    assert!(
        out.ends_with(&format!(" digest: {digest} size: {}\n", {
            let t = token_of(&token(&server, &["repository:team/app:pull"], None));
            get(&server, "/v2/team/app/manifests/1", &t).body.len()
        })),
        "{out}"
    );
    assert!(
        server.log().contains(
            "GET /token?scope=repository%3Ateam%2Fapp%3Apull%2Cpush&service=ch06-registry 200"
        ),
        "{}",
        server.log()
    );

    // Chapter 5 pulls anonymously: it fetches a pull token by itself.
    let pulled = Store::open(work.path().join("pulled")).unwrap();
    let anonymous = Registry::new(&server.addr, &ClientOptions::default()).unwrap();
    let reference = Reference::parse(&dest).unwrap();
    assert_eq!(
        pull(&pulled, &anonymous, &reference, &PullOptions::default())
            .unwrap()
            .digest,
        digest
    );

    // Into another repository: one token for both scopes, and the blobs
    // are mounted from team/app.
    Store::open(&store)
        .unwrap()
        .set_name(&reference.to_string(), &digest)
        .unwrap();
    let copy = format!("{}/team/copy:1", server.addr);
    let mounted = push_stdout(&push_cmd(
        &store,
        &["--username", "alice", "--password-stdin", &dest, &copy],
        "pw\n",
    ));
    assert_eq!(
        mounted.matches(": Mounted from team/app\n").count(),
        2,
        "{mounted}"
    );
    assert!(
        server.log().contains(
            "GET /token?scope=repository%3Ateam%2Fcopy%3Apull%2Cpush&scope=repository%3Ateam%2Fapp%3Apull&service=ch06-registry 200"
        ),
        "{}",
        server.log()
    );
    // A token that may not read team/app mounts nothing from it: the
    // upload starts as if no mount had been asked for.
    let reader = token_of(&token(&server, &["repository:team/app:pull"], None));
    let manifest = get(&server, "/v2/team/app/manifests/1", &reader).json();
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mount = |scopes: &[&str]| {
        let t = token_of(&token(&server, scopes, Some(("alice", "pw"))));
        let bearer = format!("Bearer {t}");
        request(
            "POST",
            &server.url(&format!(
                "/v2/team/third/blobs/uploads/?mount={config}&from=team/app"
            )),
            &[("authorization", &bearer)],
            None,
        )
        .status
    };
    assert_eq!(mount(&["repository:team/third:pull,push"]), 202);
    assert_eq!(
        mount(&[
            "repository:team/third:pull,push",
            "repository:team/app:pull"
        ]),
        201
    );

    // A token for team/app is no good for another repository, nor for a
    // push, and the challenge says which scope would be.
    let app_pull = token_of(&token(&server, &["repository:team/app:pull"], None));
    assert_eq!(
        get(&server, "/v2/team/app/manifests/1", &app_pull).status,
        200
    );
    assert_challenge(
        &get(&server, "/v2/team/other/manifests/1", &app_pull),
        &server,
        Some("repository:team/other:pull"),
        Some("insufficient_scope"),
    );
    let anonymous_push = token_of(&token(&server, &["repository:team/app:pull,push"], None));
    assert_eq!(
        claims(&anonymous_push)["access"],
        serde_json::json!([{"type": "repository", "name": "team/app", "actions": ["pull"]}]),
        "anonymous gets pull only"
    );
    let bearer = format!("Bearer {anonymous_push}");
    let post = request(
        "POST",
        &server.url("/v2/team/app/blobs/uploads/"),
        &[("authorization", &bearer)],
        None,
    );
    assert_challenge(
        &post,
        &server,
        Some("repository:team/app:pull,push"),
        Some("insufficient_scope"),
    );

    // A changed token: the claims now name team/other, the signature is
    // the old one.
    let parts: Vec<&str> = app_pull.split('.').collect();
    let mut forged = claims(&app_pull);
    forged["access"][0]["name"] = "team/other".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(serde_json::to_vec(&forged).unwrap()),
        parts[2]
    );
    let reply = get(&server, "/v2/team/other/manifests/1", &forged);
    assert_challenge(
        &reply,
        &server,
        Some("repository:team/other:pull"),
        Some("invalid_token"),
    );
    assert!(
        String::from_utf8_lossy(&reply.body).contains("signature does not match"),
        "{reply:?}"
    );

    // Alice's token may do what she asked; the catalog needs its own scope.
    let alice = token_of(&token(
        &server,
        &["repository:team/app:pull,push,delete", "registry:catalog:*"],
        Some(("alice", "pw")),
    ));
    let granted = claims(&alice);
    assert_eq!(granted["sub"], "alice");
    assert_eq!(granted["aud"], "ch06-registry");
    assert_eq!(
        granted["access"][0]["actions"],
        serde_json::json!(["pull", "push", "delete"])
    );
    assert_eq!(
        get(&server, "/v2/_catalog", &alice).json()["repositories"],
        serde_json::json!(["team/app", "team/copy", "team/third"])
    );
    assert_challenge(
        &get(&server, "/v2/_catalog", &app_pull),
        &server,
        Some("registry:catalog:*"),
        Some("insufficient_scope"),
    );
    // A token server for another service, or a scope that is not one.
    request(
        "GET",
        &server.url("/token?service=elsewhere&scope=repository:a:pull"),
        &[],
        None,
    )
    .assert_error(400, "UNSUPPORTED");
    token(&server, &["nonsense"], None).assert_error(400, "UNSUPPORTED");

    // No token ever reaches the log.
    let log = server.log();
    for t in [&app_pull, &alice, &anonymous_push] {
        assert!(!log.contains(t.as_str()), "a token in the log:\n{log}");
    }
}

#[test]
fn an_expired_token_is_refused() {
    if !require_tool("an_expired_token_is_refused", "htpasswd") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let server = token_server(work.path(), &["--token-ttl", "2s"]);
    let reply = token(&server, &["repository:a:pull"], None);
    assert_eq!(reply.json()["expires_in"], 2);
    let t = token_of(&reply);
    let exp = claims(&t)["exp"].as_u64().unwrap();
    // Wait until the clock is past `exp` (not a timing measured: the test
    // only needs the token's lifetime to be over).
    while ch06_registry::token::now() < exp {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let reply = get(&server, "/v2/a/tags/list", &t);
    assert_challenge(
        &reply,
        &server,
        Some("repository:a:pull"),
        Some("invalid_token"),
    );
    assert!(
        String::from_utf8_lossy(&reply.body).contains("the token expired"),
        "{reply:?}"
    );
}

#[test]
fn without_anonymous_pull_only_users_pull() {
    if !require_tool("without_anonymous_pull_only_users_pull", "htpasswd") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (store, digest) = source(work.path());
    let server = token_server(work.path(), &["--no-anonymous-pull"]);
    let dest = format!("{}/private/app:1", server.addr);
    push_stdout(&push_as(&store, "alice", "pw", "berth/test:1", &dest));
    assert_eq!(
        claims(&token_of(&token(
            &server,
            &["repository:private/app:pull"],
            None
        )))["access"],
        serde_json::json!([])
    );

    let reference = Reference::parse(&dest).unwrap();
    let pulled = Store::open(work.path().join("pulled")).unwrap();
    let anonymous = Registry::new(&server.addr, &ClientOptions::default()).unwrap();
    let err = pull(&pulled, &anonymous, &reference, &PullOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("the token does not grant pull on repository private/app: it is anonymous"),
        "{err}"
    );
    let alice = ClientOptions {
        credentials: Some(Credentials {
            username: "alice".into(),
            password: "pw".into(),
        }),
        ..ClientOptions::default()
    };
    let registry = Registry::new(&server.addr, &alice).unwrap();
    assert_eq!(
        pull(&pulled, &registry, &reference, &PullOptions::default())
            .unwrap()
            .digest,
        digest
    );
}

/// skopeo (containers/image, as podman and buildah use it) speaks the token
/// protocol with our server: in with credentials, out anonymously.
#[test]
fn skopeo_copies_through_the_token_server() {
    let test = "skopeo_copies_through_the_token_server";
    if !require_tool(test, "htpasswd") || !require_tool(test, "skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (layout, digest) = oci_layout(work.path(), &[("etc/motd", b"skopeo\n")]);
    let server = token_server(work.path(), &[]);
    skopeo_copy(
        &["--dest-creds", "alice:pw"],
        &oci_ref(&layout, "1"),
        &server.skopeo_ref("berth/skopeo:1"),
    );
    assert_eq!(skopeo_digest(&server.skopeo_ref("berth/skopeo:1")), digest);
    let out = work.path().join("out");
    skopeo_copy(
        &[],
        &server.skopeo_ref("berth/skopeo:1"),
        &oci_ref(&out, "1"),
    );
    assert!(server.log().contains("GET /token?"), "{}", server.log());
}
