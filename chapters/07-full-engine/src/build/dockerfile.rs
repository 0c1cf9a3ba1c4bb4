//! The Dockerfile: its lines, its parser directives, its instructions.
//!
//! What docker's parser does (moby/buildkit `frontend/dockerfile/parser`,
//! and the Dockerfile reference), written again:
//!
//! 1. Parser directives (`# escape=`` ` ``, `# syntax=...`) are comment lines
//!    at the very top; the first other line ends them.
//! 2. A line ending in the escape character (spaces after it allowed)
//!    continues on the next; comment lines and empty lines inside a
//!    continued instruction are skipped.
//! 3. An instruction is a case-insensitive keyword, its `--flags`, and its
//!    arguments, parsed per instruction: JSON (exec) or shell form for RUN,
//!    CMD, ENTRYPOINT, COPY, ADD, VOLUME; `key=value` pairs for ENV, LABEL,
//!    ARG; whitespace-split words for FROM, EXPOSE.
//!
//! Variables are not substituted here: that depends on the build's state
//! (see [`super::expand`]).

use std::fmt;

/// A Dockerfile that does not parse: docker's words, with the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// A command in shell form (run by the stage's SHELL) or exec form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    Shell(String),
    Exec(Vec<String>),
}

/// COPY's and ADD's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyArgs {
    /// `--from=STAGE|IMAGE` (COPY only).
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    /// The sources and the destination (the last), unexpanded.
    pub sources: Vec<String>,
    pub dest: String,
}

/// HEALTHCHECK's settings (durations as written).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Healthcheck {
    /// `None` for `HEALTHCHECK NONE`.
    pub test: Option<ShellOrExec>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

/// One instruction's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run(ShellOrExec),
    Copy(CopyArgs),
    Add(CopyArgs),
    /// `key=value` pairs, values unexpanded (quotes kept).
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Cmd(ShellOrExec),
    Entrypoint(ShellOrExec),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Shell(Vec<String>),
    Healthcheck(Healthcheck),
    /// The trigger as written, and parsed.
    Onbuild(String, Box<Command>),
    Maintainer(String),
}

/// An instruction: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The line its keyword is on (1-based).
    pub line: usize,
    /// The keyword, upper case.
    pub keyword: String,
    /// The whole instruction as one line (continuations joined).
    pub text: String,
    pub command: Command,
}

impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\`, or `` ` `` by directive).
    pub escape: char,
    /// Notes for the user (an ignored `# syntax=`, empty continuation lines).
    pub notes: Vec<String>,
    pub instructions: Vec<Instruction>,
}

/// Parse `text`.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut notes = Vec::new();
    // 1. Parser directives, at the top.
    let mut escape = '\\';
    let mut first = 0;
    for (n, line) in lines.iter().enumerate() {
        let Some((key, value)) = directive(line) else {
            break;
        };
        match key.as_str() {
            "escape" => {
                escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(ParseError {
                            line: n + 1,
                            message: format!(
                                "invalid escape token '{value}' does not match ` or \\"
                            ),
                        });
                    }
                }
            }
            "syntax" => notes.push(format!(
                "line {}: # syntax={value} is ignored: berth build has its own Dockerfile frontend",
                n + 1
            )),
            _ => {}
        }
        first = n + 1;
    }
    // 2. Lines, joined where they continue.
    let mut instructions = Vec::new();
    let mut n = first;
    while n < lines.len() {
        let start = n;
        let line = lines[n].trim_start();
        n += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (mut joined, mut more) = continuation(line, escape);
        while more && n < lines.len() {
            let next = lines[n];
            n += 1;
            if next.trim_start().starts_with('#') {
                continue;
            }
            if next.trim().is_empty() {
                notes.push(format!(
                    "line {n}: an empty continuation line (docker warns: it will become an error)"
                ));
                continue;
            }
            let (part, again) = continuation(next, escape);
            joined.push_str(&part);
            more = again;
        }
        // 3. The instruction.
        let instruction = parse_instruction(&joined, start + 1, escape)?;
        instructions.push(instruction);
    }
    Ok(Dockerfile {
        escape,
        notes,
        instructions,
    })
}

/// `# key=value` at the top, if `line` is one.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (key, value) = rest.split_once('=')?;
    let key = key.trim();
    if key.is_empty()
        || !key.starts_with(|c: char| c.is_ascii_alphabetic())
        || !key.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let value = value.trim();
    (!value.is_empty()).then(|| (key.to_ascii_lowercase(), value.to_string()))
}

/// `line` without a trailing escape character (and the blanks after it),
/// and whether it had one.
fn continuation(line: &str, escape: char) -> (String, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(rest) => (rest.to_string(), true),
        None => (line.trim_end_matches(['\r']).to_string(), false),
    }
}

/// The flags before an instruction's arguments: (name, value) pairs.
fn take_flags(rest: &str) -> (Vec<(String, Option<String>)>, &str) {
    let mut flags = Vec::new();
    let mut rest = rest.trim_start();
    while let Some(after) = rest.strip_prefix("--") {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let word = &after[..end];
        rest = after[end..].trim_start();
        if word.is_empty() {
            break;
        }
        match word.split_once('=') {
            Some((k, v)) => flags.push((k.to_string(), Some(v.to_string()))),
            None => flags.push((word.to_string(), None)),
        }
    }
    (flags, rest)
}

/// Parse one joined instruction line.
pub fn parse_instruction(
    line: &str,
    number: usize,
    escape: char,
) -> Result<Instruction, ParseError> {
    let err = |message: String| ParseError {
        line: number,
        message,
    };
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let keyword = word.to_ascii_uppercase();
    let (flags, args) = take_flags(rest);
    let allowed: &[&str] = match keyword.as_str() {
        "FROM" => &["platform"],
        "COPY" => &["from", "chown", "chmod", "link"],
        "ADD" => &["chown", "chmod", "link", "checksum", "keep-git-dir"],
        "HEALTHCHECK" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        "RUN" => &[],
        _ => &[],
    };
    // Flags only where docker has them; elsewhere `--x` is an argument.
    let (flags, args) = if allowed.is_empty() && keyword != "RUN" {
        (vec![], rest.trim())
    } else {
        (flags, args)
    };
    for (name, _) in &flags {
        if !allowed.contains(&name.as_str()) {
            return Err(err(if keyword == "RUN" {
                format!("RUN --{name} is not supported by berth build (it needs BuildKit)")
            } else {
                format!("unknown flag: --{name}")
            }));
        }
    }
    let flag = |name: &str| -> Option<String> {
        flags
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone().unwrap_or_default())
    };
    let need = |what: &str| -> Result<(), ParseError> {
        if args.is_empty() {
            return Err(err(format!("{keyword} requires {what}")));
        }
        Ok(())
    };
    let command = match keyword.as_str() {
        "FROM" => {
            let words: Vec<&str> = args.split_whitespace().collect();
            match words.as_slice() {
                [image] => Command::From {
                    image: image.to_string(),
                    name: None,
                    platform: flag("platform"),
                },
                [image, as_, name] if as_.eq_ignore_ascii_case("as") => Command::From {
                    image: image.to_string(),
                    name: Some(name.to_ascii_lowercase()),
                    platform: flag("platform"),
                },
                _ => {
                    return Err(err(
                        "FROM requires either one or three arguments (IMAGE [AS NAME])".into(),
                    ));
                }
            }
        }
        "RUN" => {
            need("at least one argument")?;
            Command::Run(shell_or_exec(args))
        }
        "CMD" => Command::Cmd(shell_or_exec(args)),
        "ENTRYPOINT" => Command::Entrypoint(shell_or_exec(args)),
        "COPY" | "ADD" => {
            let mut words = match json_list(args) {
                Some(list) => list,
                None => args.split_whitespace().map(str::to_string).collect(),
            };
            if words.len() < 2 {
                return Err(err(format!(
                    "{keyword} requires at least two arguments, but only {} provided",
                    words.len()
                )));
            }
            let dest = words.pop().unwrap_or_default();
            let from = flag("from");
            if keyword == "ADD" && from.is_some() {
                return Err(err("unknown flag: --from".into()));
            }
            let copy = CopyArgs {
                from,
                chown: flag("chown"),
                chmod: flag("chmod"),
                sources: words,
                dest,
            };
            if keyword == "COPY" {
                Command::Copy(copy)
            } else {
                Command::Add(copy)
            }
        }
        "ENV" | "LABEL" => {
            need("at least one argument")?;
            let pairs = name_values(&keyword, args, escape).map_err(err)?;
            if keyword == "ENV" {
                Command::Env(pairs)
            } else {
                Command::Label(pairs)
            }
        }
        "ARG" => {
            need("exactly one argument")?;
            let mut pairs = Vec::new();
            for word in super::expand::split_words(args, escape) {
                match word.split_once('=') {
                    Some((k, v)) => pairs.push((k.to_string(), Some(v.to_string()))),
                    None => pairs.push((word, None)),
                }
            }
            Command::Arg(pairs)
        }
        "WORKDIR" => {
            need("exactly one argument")?;
            Command::Workdir(args.to_string())
        }
        "USER" => {
            need("exactly one argument")?;
            Command::User(args.to_string())
        }
        "STOPSIGNAL" => {
            need("exactly one argument")?;
            Command::StopSignal(args.to_string())
        }
        "MAINTAINER" => {
            need("exactly one argument")?;
            Command::Maintainer(args.to_string())
        }
        "EXPOSE" => {
            need("at least one argument")?;
            Command::Expose(args.split_whitespace().map(str::to_string).collect())
        }
        "VOLUME" => {
            need("at least one argument")?;
            Command::Volume(match json_list(args) {
                Some(list) => list,
                None => args.split_whitespace().map(str::to_string).collect(),
            })
        }
        "SHELL" => match json_list(args) {
            Some(list) if !list.is_empty() => Command::Shell(list),
            _ => return Err(err("SHELL requires the arguments to be in JSON form".into())),
        },
        "HEALTHCHECK" => {
            let (kind, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
            let test = match kind.to_ascii_uppercase().as_str() {
                "NONE" if rest.trim().is_empty() && flags.is_empty() => None,
                "NONE" => {
                    return Err(err("HEALTHCHECK NONE takes no arguments".into()));
                }
                "CMD" if !rest.trim().is_empty() => Some(shell_or_exec(rest.trim())),
                _ => {
                    return Err(err(format!(
                        "Unknown type {kind:?} in HEALTHCHECK (try CMD)"
                    )));
                }
            };
            Command::Healthcheck(Healthcheck {
                test,
                interval: flag("interval"),
                timeout: flag("timeout"),
                start_period: flag("start-period"),
                start_interval: flag("start-interval"),
                retries: flag("retries"),
            })
        }
        "ONBUILD" => {
            need("at least one argument")?;
            let inner = parse_instruction(args, number, escape)?;
            if matches!(inner.keyword.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(err(format!(
                    "{} isn't allowed as an ONBUILD trigger",
                    inner.keyword
                )));
            }
            Command::Onbuild(inner.text, Box::new(inner.command))
        }
        _ => return Err(err(format!("unknown instruction: {word}"))),
    };
    Ok(Instruction {
        line: number,
        text: format!("{keyword} {rest}").trim_end().to_string(),
        keyword,
        command,
    })
}

/// A JSON array of strings, if `text` is one.
fn json_list(text: &str) -> Option<Vec<String>> {
    if !text.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(text).ok()
}

/// The exec form if `text` is a JSON array of strings, else the shell form.
fn shell_or_exec(text: &str) -> ShellOrExec {
    match json_list(text) {
        Some(list) => ShellOrExec::Exec(list),
        None => ShellOrExec::Shell(text.to_string()),
    }
}

/// ENV's and LABEL's `key=value ...`, or the old `key value` form.
fn name_values(keyword: &str, args: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = super::expand::split_words(args, escape);
    if let Some(first) = words.first()
        && !first.contains('=')
    {
        // `ENV key value with spaces`: one pair, the rest its value.
        let value = args[first.len()..].trim();
        if value.is_empty() {
            return Err(format!("{keyword} must have two arguments"));
        }
        return Ok(vec![(first.clone(), value.to_string())]);
    }
    let mut pairs = Vec::new();
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            ));
        };
        if k.is_empty() {
            return Err(format!("{keyword} names can not be blank"));
        }
        pairs.push((k.to_string(), v.to_string()));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Command {
        let file = parse(text).unwrap();
        assert_eq!(file.instructions.len(), 1, "{file:?}");
        file.instructions[0].command.clone()
    }

    #[test]
    fn from_takes_a_name_a_platform_and_scratch() {
        assert_eq!(
            one("from --platform=linux/amd64 busybox:1 AS Build"),
            Command::From {
                image: "busybox:1".into(),
                name: Some("build".into()),
                platform: Some("linux/amd64".into()),
            }
        );
        assert_eq!(
            one("FROM scratch"),
            Command::From {
                image: "scratch".into(),
                name: None,
                platform: None
            }
        );
        let e = parse("FROM a b").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("FROM requires"), "{e}");
    }

    #[test]
    fn run_cmd_entrypoint_have_shell_and_exec_forms() {
        assert_eq!(
            one("RUN echo hi > /x"),
            Command::Run(ShellOrExec::Shell("echo hi > /x".into()))
        );
        assert_eq!(
            one(r#"RUN ["/bin/echo", "hi"]"#),
            Command::Run(ShellOrExec::Exec(vec!["/bin/echo".into(), "hi".into()]))
        );
        // Not valid JSON: the shell form, as docker.
        assert_eq!(
            one("CMD [oops"),
            Command::Cmd(ShellOrExec::Shell("[oops".into()))
        );
        assert_eq!(
            one(r#"ENTRYPOINT ["httpd", "-f"]"#),
            Command::Entrypoint(ShellOrExec::Exec(vec!["httpd".into(), "-f".into()]))
        );
        let e = parse("FROM a\nRUN --mount=type=cache,target=/x true").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn copy_and_add_take_their_flags() {
        assert_eq!(
            one("COPY --from=build --chown=1:2 --chmod=0755 a b* /dst/"),
            Command::Copy(CopyArgs {
                from: Some("build".into()),
                chown: Some("1:2".into()),
                chmod: Some("0755".into()),
                sources: vec!["a".into(), "b*".into()],
                dest: "/dst/".into(),
            })
        );
        assert_eq!(
            one(r#"ADD ["a b.tar", "/x"]"#),
            Command::Add(CopyArgs {
                sources: vec!["a b.tar".into()],
                dest: "/x".into(),
                ..CopyArgs::default()
            })
        );
        assert!(parse("COPY onlyone").unwrap_err().message.contains("two"));
        assert!(
            parse("COPY --frm=x a b")
                .unwrap_err()
                .message
                .contains("unknown flag: --frm")
        );
        assert!(parse("ADD --from=x a b").is_err());
    }

    #[test]
    fn env_label_arg_take_pairs_and_the_old_form() {
        assert_eq!(
            one(r#"ENV A=1 B="two words" C=three\ words"#),
            Command::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"two words\"".into()),
                ("C".into(), r"three\ words".into()),
            ])
        );
        assert_eq!(
            one("ENV GREETING hello there"),
            Command::Env(vec![("GREETING".into(), "hello there".into())])
        );
        assert_eq!(
            one("LABEL org.x=y"),
            Command::Label(vec![("org.x".into(), "y".into())])
        );
        assert_eq!(
            one("ARG V=1.0 W"),
            Command::Arg(vec![("V".into(), Some("1.0".into())), ("W".into(), None)])
        );
        assert!(
            parse("ENV A=1 B")
                .unwrap_err()
                .message
                .contains("can't find =")
        );
        assert!(parse("ENV ONLY").is_err());
    }

    #[test]
    fn the_other_instructions_parse() {
        assert_eq!(one("WORKDIR /srv"), Command::Workdir("/srv".into()));
        assert_eq!(one("USER 1000:1000"), Command::User("1000:1000".into()));
        assert_eq!(
            one("EXPOSE 80 53/udp"),
            Command::Expose(vec!["80".into(), "53/udp".into()])
        );
        assert_eq!(
            one(r#"VOLUME ["/data", "/logs"]"#),
            Command::Volume(vec!["/data".into(), "/logs".into()])
        );
        assert_eq!(one("VOLUME /data"), Command::Volume(vec!["/data".into()]));
        assert_eq!(
            one("STOPSIGNAL SIGQUIT"),
            Command::StopSignal("SIGQUIT".into())
        );
        assert_eq!(
            one(r#"SHELL ["/bin/sh", "-ec"]"#),
            Command::Shell(vec!["/bin/sh".into(), "-ec".into()])
        );
        assert!(parse("SHELL /bin/sh -c").is_err());
        assert_eq!(
            one("HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost"),
            Command::Healthcheck(Healthcheck {
                test: Some(ShellOrExec::Shell("wget -q localhost".into())),
                interval: Some("5s".into()),
                retries: Some("3".into()),
                ..Healthcheck::default()
            })
        );
        assert_eq!(
            one("HEALTHCHECK NONE"),
            Command::Healthcheck(Healthcheck::default())
        );
        match one("ONBUILD RUN echo triggered") {
            Command::Onbuild(text, inner) => {
                assert_eq!(text, "RUN echo triggered");
                assert_eq!(
                    *inner,
                    Command::Run(ShellOrExec::Shell("echo triggered".into()))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(parse("ONBUILD FROM x").is_err());
        assert_eq!(one("MAINTAINER me"), Command::Maintainer("me".into()));
    }

    #[test]
    fn continuations_comments_and_blank_lines() {
        let file = parse(
            "# a comment\n\nFROM busybox\nRUN echo a \\\n# inside\n    && echo b \\  \n\n  && echo c\n",
        )
        .unwrap();
        assert_eq!(file.instructions.len(), 2);
        let run = &file.instructions[1];
        assert_eq!(run.line, 4);
        assert_eq!(
            run.command,
            Command::Run(ShellOrExec::Shell(
                "echo a     && echo b   && echo c".into()
            ))
        );
        assert_eq!(file.notes.len(), 1, "the empty continuation line");
    }

    #[test]
    fn directives_set_the_escape_and_note_syntax() {
        let file =
            parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM busybox\nRUN dir `\n  c:\\\n")
                .unwrap();
        assert_eq!(file.escape, '`');
        assert_eq!(file.notes.len(), 1);
        assert!(file.notes[0].contains("syntax"), "{:?}", file.notes);
        assert_eq!(
            file.instructions[1].command,
            Command::Run(ShellOrExec::Shell("dir   c:\\".into()))
        );
        // After the first instruction a directive is a comment.
        let file = parse("FROM busybox\n# escape=`\nRUN a \\\n b").unwrap();
        assert_eq!(file.escape, '\\');
        assert_eq!(
            file.instructions[1].command,
            Command::Run(ShellOrExec::Shell("a  b".into()))
        );
        assert!(parse("# escape=x\nFROM a").is_err());
    }

    #[test]
    fn errors_name_the_line_and_the_instruction() {
        let e = parse("FROM busybox\n\nFROB x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "dockerfile parse error on line 3: unknown instruction: FROB"
        );
        let e = parse("FROM busybox\nWORKDIR\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "dockerfile parse error on line 2: WORKDIR requires exactly one argument"
        );
    }
}
