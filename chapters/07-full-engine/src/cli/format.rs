//! `--format`: Go templates, as the docker CLI takes them.
//!
//! `--format '{{.ID}} {{.Status}}'` runs a Go text/template over each item
//! (through the gotmpl crate, a port of Go's text/template); `table ...`
//! does the same with a header line and the columns aligned as docker
//! aligns them (Go's text/tabwriter: cells at least 10 wide, 3 spaces
//! between); `json` prints each item as one JSON line. docker's template
//! functions are added: `json`, `join`, `lower`, `upper`, `title`, `split`,
//! `truncate`, `pad`.

use std::io::Write;

use gotmpl::{Template, TemplateError, Value};

/// What `--format` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// No format: the command's own default (usually a table).
    Default,
    /// `table TEMPLATE`: a header, aligned columns.
    Table(String),
    /// A template per item, no header.
    Raw(String),
    /// `json`: each item as one JSON line.
    Json,
}

impl Format {
    pub fn parse(text: Option<&str>) -> Format {
        match text.map(str::trim) {
            None | Some("") => Format::Default,
            Some("json") => Format::Json,
            Some("table") => Format::Default,
            Some(t) if t.starts_with("table ") => Format::Table(t["table ".len()..].to_string()),
            Some(_) => Format::Raw(text.unwrap_or_default().to_string()),
        }
    }
}

/// A gotmpl value as JSON.
pub fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::String(s) => s.to_string().into(),
        Value::List(items) => items.iter().map(to_json).collect(),
        Value::Map(map) => map
            .iter()
            .map(|(k, v)| (k.to_string(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        _ => serde_json::Value::Null,
    }
}

fn string_arg(args: &[Value], i: usize, name: &str) -> gotmpl::Result<String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.to_string()),
        Some(other) => Ok(gotmpl_text(other)),
        None => Err(TemplateError::Exec(format!("{name}: missing argument {i}"))),
    }
}

/// How a value prints in a template (`{{.}}`).
fn gotmpl_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Nil => "<no value>".into(),
        other => to_json(other).to_string(),
    }
}

/// Parse `text` with docker's functions.
pub fn template(text: &str) -> Result<Template, String> {
    Template::new("")
        .func("json", |args: &[Value]| {
            let value = args.first().cloned().unwrap_or(Value::Nil);
            Ok(Value::String(to_json(&value).to_string().into()))
        })
        .func("join", |args: &[Value]| {
            let sep = string_arg(args, 1, "join")?;
            let items = match args.first() {
                Some(Value::List(items)) => items.iter().map(gotmpl_text).collect::<Vec<_>>(),
                Some(other) => vec![gotmpl_text(other)],
                None => vec![],
            };
            Ok(Value::String(items.join(&sep).into()))
        })
        .func("lower", |args: &[Value]| {
            Ok(Value::String(
                string_arg(args, 0, "lower")?.to_lowercase().into(),
            ))
        })
        .func("upper", |args: &[Value]| {
            Ok(Value::String(
                string_arg(args, 0, "upper")?.to_uppercase().into(),
            ))
        })
        .func("title", |args: &[Value]| {
            let text = string_arg(args, 0, "title")?;
            let mut chars = text.chars();
            let titled: String = chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default();
            Ok(Value::String(titled.into()))
        })
        .func("split", |args: &[Value]| {
            let text = string_arg(args, 0, "split")?;
            let sep = string_arg(args, 1, "split")?;
            let parts: Vec<Value> = text
                .split(sep.as_str())
                .map(|p| Value::String(p.into()))
                .collect();
            Ok(Value::List(parts.into()))
        })
        .func("truncate", |args: &[Value]| {
            let text = string_arg(args, 0, "truncate")?;
            let len = match args.get(1) {
                Some(Value::Int(n)) => *n as usize,
                Some(Value::Uint(n)) => *n as usize,
                _ => return Err(TemplateError::Exec("truncate: want a length".into())),
            };
            Ok(Value::String(
                text.chars().take(len).collect::<String>().into(),
            ))
        })
        .func("pad", |args: &[Value]| {
            let text = string_arg(args, 0, "pad")?;
            let n = |i: usize| match args.get(i) {
                Some(Value::Int(n)) => *n as usize,
                Some(Value::Uint(n)) => *n as usize,
                _ => 0,
            };
            Ok(Value::String(
                format!("{}{text}{}", " ".repeat(n(1)), " ".repeat(n(2))).into(),
            ))
        })
        .parse(text)
        .map_err(|e| format!("template parsing error: {e}"))
}

/// Render `template` over `data`.
pub fn render(template: &Template, data: &Value) -> Result<String, String> {
    template
        .execute_to_string(data)
        .map_err(|e| format!("template: {e}"))
}

/// Align tab-separated lines as docker's tables are: each column as wide
/// as its widest cell plus 3 spaces, and at least `min_width` (Go's
/// tabwriter counts the padding in the minimum, the tabwriter crate does
/// not); the last column is not padded.
pub fn align(lines: &[String], min_width: usize) -> String {
    const PADDING: usize = 3;
    let mut tw = tabwriter::TabWriter::new(Vec::new())
        .minwidth(min_width.saturating_sub(PADDING))
        .padding(PADDING);
    for line in lines {
        let _ = writeln!(tw, "{line}");
    }
    let _ = tw.flush();
    String::from_utf8_lossy(&tw.into_inner().unwrap_or_default()).into_owned()
}

/// Print `items` per `format`: `default` (a table template) when none was
/// given, with `headers` naming each field's column.
pub fn print_items(
    out: &mut dyn Write,
    format: &Format,
    default: &str,
    headers: &Value,
    items: &[Value],
) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    match format {
        Format::Json => {
            for item in items {
                writeln!(out, "{}", to_json(item)).map_err(io)?;
            }
        }
        Format::Raw(text) => {
            let template = template(text)?;
            for item in items {
                writeln!(out, "{}", render(&template, item)?).map_err(io)?;
            }
        }
        Format::Table(_) | Format::Default => {
            let text = match format {
                Format::Table(text) => text.as_str(),
                _ => default,
            };
            let template = template(text)?;
            let mut lines = vec![render(&template, headers)?];
            for item in items {
                lines.push(render(&template, item)?);
            }
            write!(out, "{}", align(&lines, 10)).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gotmpl::tmap;

    #[test]
    fn formats_parse_as_dockers() {
        assert_eq!(Format::parse(None), Format::Default);
        assert_eq!(Format::parse(Some("json")), Format::Json);
        assert_eq!(
            Format::parse(Some("table {{.ID}}")),
            Format::Table("{{.ID}}".into())
        );
        assert_eq!(
            Format::parse(Some("{{.ID}}")),
            Format::Raw("{{.ID}}".into())
        );
    }

    #[test]
    fn templates_have_dockers_functions() {
        let data = tmap! { "Names" => "web", "Env" => vec!["A=1", "B=2"], "State" => tmap!{ "Status" => "running" } };
        let t = |text: &str| render(&template(text).unwrap(), &data).unwrap();
        assert_eq!(t("{{.Names}}"), "web");
        assert_eq!(t("{{.State.Status}}"), "running");
        assert_eq!(t("{{json .State}}"), r#"{"Status":"running"}"#);
        assert_eq!(t("{{join .Env \",\"}}"), "A=1,B=2");
        assert_eq!(t("{{upper .Names}}"), "WEB");
        assert_eq!(t("{{title .Names}}"), "Web");
        assert_eq!(t("{{truncate .Names 2}}"), "we");
        assert!(template("{{.Names").is_err());
    }

    #[test]
    fn tables_align_as_dockers() {
        let lines = vec![
            "ID\tNAME\tSTATUS".to_string(),
            "abc\tlong-name-here\tUp".to_string(),
        ];
        assert_eq!(
            align(&lines, 10),
            "ID        NAME             STATUS\nabc       long-name-here   Up\n"
        );
    }
}
