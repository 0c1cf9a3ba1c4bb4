//! Container ids and names, as docker makes them.
//!
//! An **id** is 32 random bytes in hex: 64 characters, shown as its first
//! 12. Commands accept any unambiguous prefix of it. Like docker, we never
//! make an id whose 12-character short form is all digits, so `stop 123456`
//! can never be mistaken for a number.
//!
//! A **name** is the user's (`--name web`) or made up, docker-style, from
//! an adjective and a surname (`quirky_ritchie`). Names follow docker's rule
//! `[a-zA-Z0-9][a-zA-Z0-9_.-]+` and are unique on one root; the registry
//! that keeps them unique is [`super::names`].
//!
//! Man pages: getrandom(2).

/// How many hex digits a short id has.
pub const SHORT_ID: usize = 12;

/// A fresh 64-hex-digit id.
pub fn new_id() -> String {
    loop {
        let mut bytes = [0u8; 32];
        // getrandom(2) from the kernel's pool cannot fail once the pool is
        // initialised (always, long before anyone runs containers).
        getrandom::fill(&mut bytes).expect("getrandom(2)");
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if !id[..SHORT_ID].bytes().all(|b| b.is_ascii_digit()) {
            return id;
        }
    }
}

/// The first 12 hex digits of `id`.
pub fn short(id: &str) -> &str {
    &id[..SHORT_ID.min(id.len())]
}

/// True if `text` could be a whole id: 64 lowercase hex digits.
pub fn is_full_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// docker's rule for a name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (so at least two
/// characters), with an optional leading `/` (docker keeps names as
/// `/web`), which is dropped.
pub fn check_name(name: &str) -> Result<&str, String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && bare.len() >= 2
        && bare.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(bare)
    } else {
        Err(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        ))
    }
}

/// Adjectives and surnames for made-up names: people who built the pieces
/// this book is about (Unix, C, Linux, the kernel features, the tools).
const ADJECTIVES: [&str; 40] = [
    "admiring", "bold", "brave", "busy", "calm", "clever", "cool", "dazzling", "eager", "elastic",
    "elegant", "epic", "fervent", "festive", "focused", "friendly", "gallant", "gentle", "happy",
    "hopeful", "jolly", "keen", "kind", "lucid", "modest", "nifty", "noble", "patient", "quirky",
    "relaxed", "serene", "sharp", "stoic", "sweet", "tender", "trusting", "upbeat", "vibrant",
    "wizardly", "zen",
];
const SURNAMES: [&str; 40] = [
    "allen",
    "backus",
    "bell",
    "bosworth",
    "cerf",
    "corbato",
    "dijkstra",
    "engelbart",
    "hamilton",
    "hopper",
    "joy",
    "kahn",
    "kay",
    "kernighan",
    "knuth",
    "lamport",
    "liskov",
    "lovelace",
    "mccarthy",
    "mcilroy",
    "menage",
    "morris",
    "murdock",
    "ossanna",
    "pike",
    "ritchie",
    "saltzer",
    "shannon",
    "stallman",
    "tanenbaum",
    "thompson",
    "torvalds",
    "turing",
    "vixie",
    "wall",
    "wirth",
    "wozniak",
    "kamp",
    "hykes",
    "wheeler",
];

/// A made-up name that `taken` says is free. After a few collisions a
/// digit is added, as docker does.
pub fn random_name(taken: impl Fn(&str) -> bool) -> String {
    for attempt in 0.. {
        let mut bytes = [0u8; 3];
        getrandom::fill(&mut bytes).expect("getrandom(2)");
        let mut name = format!(
            "{}_{}",
            ADJECTIVES[bytes[0] as usize % ADJECTIVES.len()],
            SURNAMES[bytes[1] as usize % SURNAMES.len()]
        );
        if attempt >= 3 {
            name.push_str(&(bytes[2] % 10).to_string());
        }
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_digits_whose_short_form_is_not_a_number() {
        for _ in 0..100 {
            let id = new_id();
            assert!(is_full_id(&id), "{id}");
            assert!(short(&id).parse::<u64>().is_err());
        }
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn names_follow_dockers_rule() {
        assert_eq!(check_name("web").unwrap(), "web");
        assert_eq!(check_name("/web-1.a_b").unwrap(), "web-1.a_b");
        for bad in ["", "a", "-web", "we b", "web/1", "_x", "/"] {
            let err = check_name(bad).unwrap_err();
            assert!(err.starts_with("Invalid container name ("), "{err}");
        }
        let name = random_name(|_| false);
        assert!(check_name(&name).is_ok() && name.contains('_'), "{name}");
        // Collisions: a digit is added after three tries.
        let mut tries = std::cell::Cell::new(0);
        let name = random_name(|_| {
            tries.set(tries.get() + 1);
            tries.get() <= 3
        });
        assert!(name.chars().last().unwrap().is_ascii_digit(), "{name}");
        let _ = tries.get_mut();
    }
}
