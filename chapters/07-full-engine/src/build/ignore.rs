//! `.dockerignore`: which files of the build context COPY and ADD never see.
//!
//! docker's rules (moby `patternmatcher`, the Dockerfile reference): one
//! pattern a line, `#` lines are comments; a pattern is cleaned as a path
//! (`./a//b/` is `a/b`, a leading `/` dropped); `*` matches within one path
//! component, `?` one character, `[a-z]` a class, `**` any number of
//! components (none too); `\` escapes. A pattern that matches a directory
//! excludes everything under it. A `!` line re-includes what it matches;
//! the last matching line decides.

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    tokens: Vec<Token>,
    /// How many path components the pattern has (for the parent rule).
    depth: usize,
    exclusion: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**/`: zero or more whole components.
    Dirs,
    /// `**` elsewhere: anything.
    Any,
    /// `[...]`: ranges, negated or not.
    Class(Vec<(char, char)>, bool),
}

/// The patterns of a `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Parse a `.dockerignore`'s text.
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, line) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(line);
            if cleaned.is_empty() {
                continue;
            }
            patterns.push(Pattern {
                depth: cleaned.split('/').count(),
                tokens: compile(&cleaned),
                exclusion,
            });
        }
        Ignore { patterns }
    }

    /// Whether the context path `rel` (`a/b/c`, no leading `/`) is left
    /// out.
    pub fn excludes(&self, rel: &str) -> bool {
        let rel = clean(rel);
        let parts: Vec<&str> = rel.split('/').collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            let mut hit = matches(&pattern.tokens, &rel.chars().collect::<Vec<_>>());
            // A pattern matching a parent directory matches its contents.
            if !hit && parts.len() > pattern.depth {
                let parent = parts[..pattern.depth].join("/");
                hit = matches(&pattern.tokens, &parent.chars().collect::<Vec<_>>());
            }
            if hit {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }

    /// Whether some `!` pattern could re-include a path under `dir`: then
    /// an excluded directory must still be walked.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }
}

/// A path cleaned as Go's `filepath.Clean`, relative (no leading `/`).
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !path.starts_with('/') {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn compile(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                    tokens.push(Token::Dirs);
                } else {
                    tokens.push(Token::Any);
                }
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '\\' if i < chars.len() => {
                tokens.push(Token::Lit(chars[i]));
                i += 1;
            }
            '[' => {
                let mut j = i;
                let negated = matches!(chars.get(j), Some('^' | '!'));
                if negated {
                    j += 1;
                }
                let mut ranges = Vec::new();
                let mut closed = false;
                while j < chars.len() {
                    let mut lo = chars[j];
                    if lo == ']' && !ranges.is_empty() {
                        closed = true;
                        j += 1;
                        break;
                    }
                    if lo == '\\' && j + 1 < chars.len() {
                        j += 1;
                        lo = chars[j];
                    }
                    j += 1;
                    let mut hi = lo;
                    if chars.get(j) == Some(&'-') && chars.get(j + 1).is_some_and(|c| *c != ']') {
                        hi = chars[j + 1];
                        j += 2;
                    }
                    ranges.push((lo, hi));
                }
                if closed {
                    tokens.push(Token::Class(ranges, negated));
                    i = j;
                } else {
                    tokens.push(Token::Lit('['));
                }
            }
            c => tokens.push(Token::Lit(c)),
        }
    }
    tokens
}

/// Whether `tokens` match all of `name`.
fn matches(tokens: &[Token], name: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return name.is_empty();
    };
    match first {
        Token::Lit(c) => name.first() == Some(c) && matches(rest, &name[1..]),
        Token::One => name.first().is_some_and(|c| *c != '/') && matches(rest, &name[1..]),
        Token::Class(ranges, negated) => {
            name.first().is_some_and(|c| {
                *c != '/' && ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated
            }) && matches(rest, &name[1..])
        }
        Token::Star => {
            for n in 0..=name.len() {
                if matches(rest, &name[n..]) {
                    return true;
                }
                if name.get(n) == Some(&'/') {
                    break;
                }
            }
            false
        }
        Token::Any => (0..=name.len()).any(|n| matches(rest, &name[n..])),
        Token::Dirs => {
            // Zero components, or any prefix ending at a `/`.
            matches(rest, name)
                || (0..name.len()).any(|n| name[n] == '/' && matches(rest, &name[n + 1..]))
        }
    }
}

/// Go's `filepath.Match` for one COPY source pattern against a context
/// path (`*` does not cross `/`).
pub fn glob_matches(pattern: &str, path: &str) -> bool {
    let tokens: Vec<Token> = compile(pattern)
        .into_iter()
        .map(|t| match t {
            Token::Any | Token::Dirs => Token::Star,
            t => t,
        })
        .collect();
    matches(&tokens, &path.chars().collect::<Vec<_>>())
}

/// Whether a COPY source has wildcards.
pub fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_dockers() {
        let ignore = Ignore::parse(
            "# comment\n*.log\n/build/\ntemp?\n**/secret.txt\ndocs/**/*.md\n!docs/keep/README.md\n",
        );
        assert!(ignore.excludes("a.log"));
        assert!(!ignore.excludes("dir/a.log"), "* stays in one component");
        assert!(ignore.excludes("build"));
        assert!(ignore.excludes("build/out/bin"), "under an excluded dir");
        assert!(ignore.excludes("temp1"));
        assert!(!ignore.excludes("temp12"));
        assert!(
            ignore.excludes("secret.txt"),
            "**/ matches no directory too"
        );
        assert!(ignore.excludes("a/b/secret.txt"));
        assert!(ignore.excludes("docs/x.md"));
        assert!(ignore.excludes("docs/a/b/x.md"));
        assert!(!ignore.excludes("docs/keep/README.md"), "re-included by !");
        assert!(!ignore.excludes("docs/x.txt"));
        assert!(!ignore.excludes("src/main.rs"));
    }

    #[test]
    fn the_last_matching_line_decides() {
        let ignore = Ignore::parse("*\n!keep\n!dir\ndir/no\n");
        assert!(ignore.excludes("other"));
        assert!(!ignore.excludes("keep"));
        assert!(!ignore.excludes("dir/yes"));
        assert!(ignore.excludes("dir/no"));
        assert!(ignore.has_exceptions());
    }

    #[test]
    fn classes_escapes_and_cleaning() {
        let ignore = Ignore::parse("[a-c]x\n[!a-c]y\nlit\\*\n./x/../z//w/\n");
        assert!(ignore.excludes("bx"));
        assert!(!ignore.excludes("dx"));
        assert!(ignore.excludes("dy"));
        assert!(!ignore.excludes("ay"));
        assert!(ignore.excludes("lit*"));
        assert!(!ignore.excludes("litx"));
        assert!(ignore.excludes("z/w"));
        assert_eq!(clean("/a/./b//../c/"), "a/c");
        assert_eq!(clean("../x"), "../x");
    }

    #[test]
    fn copy_globs_stay_in_one_component() {
        assert!(glob_matches("*.html", "index.html"));
        assert!(!glob_matches("*.html", "sub/index.html"));
        assert!(glob_matches("sub/*.html", "sub/index.html"));
        assert!(glob_matches("file?.txt", "file1.txt"));
        assert!(has_wildcards("a*"));
        assert!(!has_wildcards("a/b"));
    }
}
