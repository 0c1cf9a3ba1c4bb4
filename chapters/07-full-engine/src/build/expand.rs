//! Variable substitution in a Dockerfile's words, as docker's builder does
//! it (moby/buildkit `frontend/dockerfile/shell`): `$VAR`, `${VAR}`,
//! `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`,
//! `${VAR:?message}`, quote removal (`'...'` is literal, `"..."` expands),
//! and the escape character (`\` unless `# escape=` says otherwise).
//!
//! The builder, not the shell, does this for ADD, COPY, ENV, ARG, EXPOSE,
//! FROM, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR; RUN, CMD and
//! ENTRYPOINT are left to the container's shell.

use std::collections::BTreeMap;

/// A substitution that cannot be done: `${VAR:?message}` with VAR unset,
/// or a `${` without its `}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("missing '}}' in {0:?}")]
    Unclosed(String),
    #[error("unsupported modifier ({modifier}) in substitution {text:?}")]
    Modifier { modifier: char, text: String },
}

/// The variables in effect: build args and ENV, the later winning.
pub type Vars = BTreeMap<String, String>;

/// `word` with its variables substituted and its quotes removed.
pub fn expand_word(word: &str, vars: &Vars, escape: char) -> Result<String, ExpandError> {
    let chars: Vec<char> = word.chars().collect();
    let mut lexer = Lexer {
        chars: &chars,
        pos: 0,
        vars,
        escape,
        text: word,
    };
    lexer.until(None)
}

/// `text` split into words at unquoted whitespace, each expanded (EXPOSE,
/// VOLUME, the shell form of COPY's sources).
pub fn expand_words(text: &str, vars: &Vars, escape: char) -> Result<Vec<String>, ExpandError> {
    split_words(text, escape)
        .iter()
        .map(|w| expand_word(w, vars, escape))
        .collect()
}

/// `text` split at whitespace outside quotes, quotes and escapes kept (as
/// docker's `parseWords`).
pub fn split_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        match quote {
            None if ch.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            _ if ch == escape && quote != Some('\'') => {
                word.push(ch);
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            None if ch == '\'' || ch == '"' => {
                quote = Some(ch);
                word.push(ch);
            }
            Some(q) if ch == q => {
                quote = None;
                word.push(ch);
            }
            _ => word.push(ch),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

struct Lexer<'a> {
    chars: &'a [char],
    pos: usize,
    vars: &'a Vars,
    escape: char,
    text: &'a str,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += 1;
        Some(ch)
    }

    /// Read until `stop` (unquoted, unescaped) or the end.
    fn until(&mut self, stop: Option<char>) -> Result<String, ExpandError> {
        let mut out = String::new();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                return Ok(out);
            }
            self.pos += 1;
            match ch {
                '\'' => {
                    while let Some(c) = self.next() {
                        if c == '\'' {
                            break;
                        }
                        out.push(c);
                    }
                }
                '"' => self.double_quoted(&mut out)?,
                '$' => out.push_str(&self.dollar()?),
                c if c == self.escape => {
                    // An escape at the end of the word is dropped.
                    if let Some(next) = self.next() {
                        out.push(next);
                    }
                }
                c => out.push(c),
            }
        }
        Ok(out)
    }

    fn double_quoted(&mut self, out: &mut String) -> Result<(), ExpandError> {
        while let Some(ch) = self.next() {
            match ch {
                '"' => return Ok(()),
                '$' => out.push_str(&self.dollar()?),
                c if c == self.escape => match self.peek() {
                    None => {}
                    // Only these may be escaped inside double quotes.
                    Some(next) if next == '"' || next == '$' || next == self.escape => {
                        self.pos += 1;
                        out.push(next);
                    }
                    Some(_) => out.push(c),
                },
                c => out.push(c),
            }
        }
        Ok(())
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// After a `$`: the variable's value (or a lone `$`).
    fn dollar(&mut self) -> Result<String, ExpandError> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.vars.get(&name).cloned().unwrap_or_default());
        }
        self.pos += 1;
        let name = self.name();
        let value = self.vars.get(&name);
        match self.next() {
            Some('}') => Ok(value.cloned().unwrap_or_default()),
            Some(':') => {
                let modifier = self
                    .next()
                    .ok_or_else(|| ExpandError::Unclosed(self.text.into()))?;
                let word = self.word_in_braces()?;
                let set = value.is_some_and(|v| !v.is_empty());
                self.modify(&name, modifier, set, value, word)
            }
            Some(modifier @ ('-' | '+' | '?')) => {
                let word = self.word_in_braces()?;
                self.modify(&name, modifier, value.is_some(), value, word)
            }
            Some(other) => Err(ExpandError::Modifier {
                modifier: other,
                text: self.text.into(),
            }),
            None => Err(ExpandError::Unclosed(self.text.into())),
        }
    }

    fn word_in_braces(&mut self) -> Result<String, ExpandError> {
        let word = self.until(Some('}'))?;
        if self.next() != Some('}') {
            return Err(ExpandError::Unclosed(self.text.into()));
        }
        Ok(word)
    }

    fn modify(
        &self,
        name: &str,
        modifier: char,
        set: bool,
        value: Option<&String>,
        word: String,
    ) -> Result<String, ExpandError> {
        match modifier {
            '-' => Ok(if set {
                value.cloned().unwrap_or_default()
            } else {
                word
            }),
            '+' => Ok(if set { word } else { String::new() }),
            '?' if set => Ok(value.cloned().unwrap_or_default()),
            '?' => Err(ExpandError::Required {
                name: name.into(),
                message: if word.is_empty() {
                    "is not allowed to be unset".into()
                } else {
                    word
                },
            }),
            other => Err(ExpandError::Modifier {
                modifier: other,
                text: self.text.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars::from([
            ("A".into(), "apple".into()),
            ("EMPTY".into(), String::new()),
            ("P".into(), "/srv/www".into()),
        ])
    }

    fn x(word: &str) -> String {
        expand_word(word, &vars(), '\\').unwrap()
    }

    #[test]
    fn plain_and_braced_variables_expand() {
        assert_eq!(x("$A"), "apple");
        assert_eq!(x("${A}s"), "apples");
        assert_eq!(x("$A-pie"), "apple-pie");
        assert_eq!(x("$NOPE|"), "|");
        assert_eq!(x("${P}/index.html"), "/srv/www/index.html");
        assert_eq!(x("cost: $"), "cost: $");
    }

    #[test]
    fn modifiers_follow_docker() {
        assert_eq!(x("${NOPE:-pear}"), "pear");
        assert_eq!(x("${EMPTY:-pear}"), "pear");
        assert_eq!(x("${EMPTY-pear}"), "");
        assert_eq!(x("${A:-pear}"), "apple");
        assert_eq!(x("${A:+set}"), "set");
        assert_eq!(x("${EMPTY:+set}"), "");
        assert_eq!(x("${EMPTY+set}"), "set");
        assert_eq!(x("${NOPE:+set}"), "");
        assert_eq!(x("${NOPE:-$A}"), "apple");
        assert!(matches!(
            expand_word("${NOPE:?needed}", &vars(), '\\'),
            Err(ExpandError::Required { .. })
        ));
        assert!(matches!(
            expand_word("${A", &vars(), '\\'),
            Err(ExpandError::Unclosed(_))
        ));
    }

    #[test]
    fn quotes_and_escapes_are_removed_as_docker_removes_them() {
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A pie\""), "apple pie");
        assert_eq!(x(r"\$A"), "$A");
        assert_eq!(x(r#""a\"b""#), "a\"b");
        assert_eq!(x(r#""a\nb""#), r"a\nb");
        assert_eq!(x(r"a\ b"), "a b");
        assert_eq!(expand_word("`$A", &vars(), '`').unwrap(), "$A");
    }

    #[test]
    fn words_split_outside_quotes() {
        assert_eq!(
            split_words(r#"a=1 b="two words" c=three\ words"#, '\\'),
            [r"a=1", r#"b="two words""#, r"c=three\ words"]
        );
        assert_eq!(
            expand_words("80/tcp ${PORT:-53}/udp", &vars(), '\\').unwrap(),
            ["80/tcp", "53/udp"]
        );
    }
}
