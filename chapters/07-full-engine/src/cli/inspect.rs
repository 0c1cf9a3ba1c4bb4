//! `inspect`: the record, as docker's inspect document (a JSON array,
//! indented by four spaces), or a template over each.

use std::io::Write;

use clap::Args;

use super::format::{render, template};
use super::{Failure, Outcome};
use crate::engine::Engine;

/// The flags of `inspect`.
#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
    /// Return JSON for specified type (container)
    #[arg(long = "type", value_name = "string")]
    pub kind: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// JSON with docker's four-space indentation.
pub fn to_json_4<T: serde::Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser).expect("a record serializes");
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// What a name turned out to be: its inspect document.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Found {
    Container(Box<crate::engine::record::Container>),
    Image(Box<super::images::ImageInspect>),
}

/// `inspect`.
pub fn inspect(engine: &Engine, args: &InspectArgs) -> Outcome {
    if let Some(kind) = &args.kind
        && kind != "container"
        && kind != "image"
    {
        return Err(Failure::new(
            format!("\"{kind}\" is not a valid value for --type"),
            1,
        ));
    }
    let template = match args.format.as_deref() {
        Some(text) if text != "json" => Some(template(text).map_err(|m| Failure::new(m, 1))?),
        _ => None,
    };
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let want = |kind: &str| args.kind.as_deref().is_none_or(|k| k == kind);
    for name in &args.names {
        // A container first, then an image, as docker looks them up.
        let container = want("container")
            .then(|| engine.container(name).ok())
            .flatten();
        if let Some(c) = container {
            found.push(Found::Container(Box::new(c.inspect())));
            continue;
        }
        let image = match (want("image"), engine.image_store()) {
            (true, Ok(store)) => super::images::find_image(store, name)
                .ok()
                .map(|(image, names)| super::images::inspect_document(store, &image, &names)),
            _ => None,
        };
        match image {
            Some(doc) => found.push(Found::Image(Box::new(doc))),
            None => missing.push(name.clone()),
        }
    }
    let mut out = std::io::stdout().lock();
    match &template {
        Some(template) => {
            for c in &found {
                let value = gotmpl::ser::to_value(c).map_err(|e| Failure::new(e.to_string(), 1))?;
                let text = render(template, &value).map_err(|m| Failure::new(m, 1))?;
                let _ = writeln!(out, "{text}");
            }
        }
        None => {
            let _ = writeln!(out, "{}", to_json_4(&found));
        }
    }
    if missing.is_empty() {
        return Ok(0);
    }
    for name in &missing {
        eprintln!("Error: No such object: {name}");
    }
    Err(Failure::new("", 1))
}
