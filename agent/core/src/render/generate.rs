//! ConfigMap and Secret generators: objects built from files and literals, named
//! `<name>-<hash>` where the hash covers their content, so a content change is a new
//! object and the workloads that reference it roll.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::options::{Generator, OPTIONS_FILE, Options};
use super::{Parsed, Problem, vars};
use crate::digest;
use crate::manifest::Source;
use crate::tree::AppTree;

/// Generated objects, and the renames (`name` → `name-hash`) to apply to references.
pub type Generated = (Vec<Parsed>, BTreeMap<String, String>);

/// Builds every generator of the app.
pub fn all(
    tree: &AppTree,
    options: &Options,
    vars: &BTreeMap<String, String>,
) -> Result<Generated, Vec<Problem>> {
    let mut objects = Vec::new();
    let mut renames = BTreeMap::new();
    let mut problems = Vec::new();
    let position = |name: &str| -> usize {
        // The generator's line in gitsync.yaml: first line mentioning its name.
        tree.get(OPTIONS_FILE)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|t| t.lines().position(|l| l.contains(name)))
            .map_or(1, |i| i + 1)
    };
    let kinds = options
        .config_map_generator
        .iter()
        .map(|g| (g, false))
        .chain(options.secret_generator.iter().map(|g| (g, true)));
    for (generator, secret) in kinds {
        let line = position(&generator.name);
        match build(tree, generator, secret, vars, options.namespace.as_deref()) {
            Ok(object) => {
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                renames.insert(generator.name.clone(), name);
                objects.push(Parsed {
                    object,
                    source: Source {
                        file: OPTIONS_FILE.into(),
                        line,
                        column: 1,
                    },
                });
            }
            Err(message) => problems.push(Problem {
                file: OPTIONS_FILE.into(),
                line,
                column: 1,
                message: format!("generator {}: {message}", generator.name),
            }),
        }
    }
    if problems.is_empty() {
        Ok((objects, renames))
    } else {
        Err(problems)
    }
}

fn build(
    tree: &AppTree,
    generator: &Generator,
    secret: bool,
    vars: &BTreeMap<String, String>,
    namespace: Option<&str>,
) -> Result<Value, String> {
    let mut data = Map::new();
    let mut binary = Map::new();
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    for (key, path) in generator.file_entries() {
        let bytes = tree
            .get(&path)
            .ok_or_else(|| format!("file {path} does not exist in the app"))?;
        if secret {
            data.insert(key, Value::String(encode(bytes)));
        } else if let Ok(text) = std::str::from_utf8(bytes) {
            data.insert(key, Value::String(text.to_owned()));
        } else {
            binary.insert(key, Value::String(encode(bytes)));
        }
    }
    for literal in &generator.literals {
        let literal = vars::substitute(literal, vars).map_err(|f| {
            f.into_iter()
                .map(|f| f.message)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let (key, value) = literal
            .split_once('=')
            .ok_or_else(|| format!("literal {literal:?} is not KEY=value"))?;
        let value = if secret {
            encode(value.as_bytes())
        } else {
            value.to_owned()
        };
        data.insert(key.to_owned(), Value::String(value));
    }
    let mut object = if secret {
        json!({"apiVersion": "v1", "kind": "Secret",
            "type": generator.secret_type.clone().unwrap_or_else(|| "Opaque".into()),
            "data": data})
    } else {
        let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": data});
        if !binary.is_empty() {
            o["binaryData"] = Value::Object(binary);
        }
        o
    };
    let hash = digest::of_object(&object);
    let mut meta = json!({"name": format!("{}-{}", generator.name, &hash[..10])});
    if let Some(ns) = namespace {
        meta["namespace"] = Value::String(ns.to_owned());
    }
    object["metadata"] = meta;
    Ok(object)
}
