//! Check for exercise 2: every tag of a repository of chapter 6's registry,
//! fetched a page at a time through a recorder that keeps the requests:
//! the right tags in the registry's order, in as many requests as pages.

mod common;

use ch06_exercises::{checking_mine, ex2_all_tags, solutions};
use common::*;

type AllTags = fn(&str, &str, usize) -> Result<Vec<String>, String>;

fn all_tags() -> AllTags {
    if checking_mine() {
        ex2_all_tags::all_tags
    } else {
        solutions::ex2_all_tags::all_tags
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn ex2_all_tags_page_by_page() {
    let registry = Registry::start();
    push_image_with_tags(
        &registry,
        "class/app",
        &["v9", "1.0", "latest", "2.1", "v10", "1.1", "stable", "2.0"],
    );
    // Byte order, as the spec wants: "v10" before "v9".
    let expected = strings(&["1.0", "1.1", "2.0", "2.1", "latest", "stable", "v10", "v9"]);

    // Three at a time: 3 + 3 + 2, three requests.
    let recorder = Recorder::start(&registry.addr);
    let got = all_tags()(&recorder.addr, "class/app", 3);
    assert_eq!(
        got,
        Ok(expected.clone()),
        "every tag, in the registry's order"
    );
    let sent = recorder.requests();
    let targets: Vec<&str> = sent.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        sent.len(),
        3,
        "one GET per page of at most 3 tags: {targets:?}"
    );
    for request in &sent {
        assert_eq!(request.method, "GET", "{request:?}");
        assert!(
            request.target.starts_with("/v2/class/app/tags/list?")
                && request.target.contains("n=3"),
            "every page asks for n=3: {targets:?}"
        );
    }
    assert!(
        targets[1].contains("last=2.0") && targets[2].contains("last=stable"),
        "each page starts after the last tag of the one before, as Link says: {targets:?}"
    );

    // Tags that fill their pages exactly: the last full page has no Link,
    // so two requests, not three.
    push_image_with_tags(&registry, "class/six", &["a", "b", "c", "d", "e", "f"]);
    let recorder = Recorder::start(&registry.addr);
    let got = all_tags()(&recorder.addr, "class/six", 3);
    assert_eq!(got, Ok(strings(&["a", "b", "c", "d", "e", "f"])));
    assert_eq!(
        recorder.requests().len(),
        2,
        "no request after the page without a Link: {:?}",
        recorder.requests()
    );

    // One page holds them all.
    let recorder = Recorder::start(&registry.addr);
    assert_eq!(all_tags()(&recorder.addr, "class/app", 100), Ok(expected));
    assert_eq!(recorder.requests().len(), 1);

    // A repository nobody pushed to: NAME_UNKNOWN, an Err.
    let unknown = all_tags()(&recorder.addr, "class/nothing", 3);
    assert!(
        unknown.is_err(),
        "an unknown repository must be an Err: {unknown:?}"
    );
}
