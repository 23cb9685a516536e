//! Render: an app's files in, validated and tracked manifests out.
//!
//! Walks the tree in sorted order, parses every `.yaml`, `.yml` and `.json` file
//! (multi-document; empty documents skipped), applies the app's `gitsync.yaml`
//! (default namespace, common labels, `${VAR}` substitution, ConfigMap/Secret
//! generators with content-hash names and rewritten references), validates identity and
//! uniqueness, and adds the tracking labels, annotations and digest of the design's
//! contracts. Every problem names file, line and column; all of them are reported at
//! once. Deterministic byte for byte. Pure: no I/O.

mod generate;
mod options;
mod vars;
mod workload;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{Map, Value};

use crate::manifest::{
    ANNOTATION_DIGEST, ANNOTATION_REVISION, LABEL_APP, LABEL_MANAGED_BY, MANAGED_BY, Manifest,
    ObjectId, Source,
};
use crate::policy::{self, Policy};
use crate::tree::{AppTree, MAX_FILE_BYTES};
use crate::{digest, kinds, yaml};

pub use options::OPTIONS_FILE;

/// What a render is for.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The app name (the `gitsync.dev/app` label).
    pub app: String,
    /// The commit rendered (the `gitsync.dev/revision` annotation).
    pub revision: Option<String>,
    /// `${VAR}` values that override the app's `gitsync.yaml` vars.
    pub vars: BTreeMap<String, String>,
    /// Namespace for objects that name none; wins over the app's `gitsync.yaml`
    /// (the agent's per-app target namespace).
    pub namespace: Option<String>,
}

/// One thing wrong with the input, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl From<yaml::Error> for Problem {
    fn from(e: yaml::Error) -> Self {
        Self {
            file: e.file,
            line: e.line,
            column: e.column,
            message: e.message,
        }
    }
}

/// A failed render: every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub problems: Vec<Problem>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems:", many.len())?;
                for p in many {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}

/// What a render produces: the manifests to apply, and the app's own strategy policies
/// (documents of `kind: StrategyPolicy`, which are never applied).
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub manifests: Vec<Manifest>,
    pub policies: Vec<Policy>,
}

/// A parsed object before tracking metadata, with where it came from.
struct Parsed {
    object: Value,
    source: Source,
}

/// Renders an app tree.
pub fn render(tree: &AppTree, ctx: &Context) -> Result<Rendered, Error> {
    let mut problems = Vec::new();
    let mut options = match options::load(tree) {
        Ok(o) => o,
        Err(p) => return Err(Error { problems: vec![p] }),
    };
    if let Some(ns) = &ctx.namespace {
        options.namespace = Some(ns.clone());
    }
    let mut vars = options.vars.clone();
    vars.extend(ctx.vars.iter().map(|(k, v)| (k.clone(), v.clone())));

    let generated = generate::all(tree, &options, &vars);
    let (mut objects, renames) = match generated {
        Ok(g) => g,
        Err(mut p) => {
            problems.append(&mut p);
            (Vec::new(), BTreeMap::new())
        }
    };
    let skip = options.generator_files();

    let mut policies = Vec::new();
    for (path, bytes) in tree.files() {
        if !is_manifest(path) || path == OPTIONS_FILE || skip.contains(path) {
            continue;
        }
        let mut found = Found {
            objects: &mut objects,
            policies: &mut policies,
            problems: &mut problems,
        };
        parse_file(path, bytes, &vars, &mut found);
    }
    check_policy_names(&policies, &mut problems);

    let namespace_of = |o: &Value| {
        o.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .or(options.namespace.as_deref())
            .unwrap_or_default()
            .to_owned()
    };
    let autoscaled = workload::autoscaled(objects.iter().map(|p| &p.object), namespace_of);
    for parsed in &mut objects {
        workload::release_replicas(&mut parsed.object, &autoscaled, namespace_of);
        finish(parsed, &options, &renames, ctx);
    }
    check_duplicates(&objects, &mut problems);
    if !problems.is_empty() {
        return Err(Error { problems });
    }
    let manifests = objects
        .into_iter()
        .filter_map(|p| {
            let id = ObjectId::of(&p.object)?;
            let digest = annotation_digest(&p.object);
            Some(Manifest {
                id,
                source: p.source,
                object: p.object,
                digest,
            })
        })
        .collect();
    Ok(Rendered {
        manifests,
        policies: policies.into_iter().map(|(_, p)| p).collect(),
    })
}

/// Where [`parse_file`] puts what it finds.
struct Found<'a> {
    objects: &'a mut Vec<Parsed>,
    /// The app's policies, with where each is defined.
    policies: &'a mut Vec<(Source, Policy)>,
    problems: &'a mut Vec<Problem>,
}

/// Two policies of one app with the same name: both named.
fn check_policy_names(policies: &[(Source, Policy)], problems: &mut Vec<Problem>) {
    let mut seen: HashMap<&str, &Source> = HashMap::new();
    for (source, policy) in policies {
        if let Some(first) = seen.insert(&policy.name, source) {
            problems.push(Problem {
                file: source.file.clone(),
                line: source.line,
                column: source.column,
                message: format!(
                    "duplicate StrategyPolicy {:?} (also defined at {first})",
                    policy.name
                ),
            });
        }
    }
}

/// The rendered manifests as one YAML stream, as `gitsync render` prints it.
pub fn to_yaml_stream(manifests: &[Manifest]) -> String {
    let mut out = String::with_capacity(manifests.len() * 512);
    for m in manifests {
        out.push_str("---\n");
        out.push_str(&yaml::to_yaml(&m.object));
    }
    out
}

/// Files render reads: `.yaml`, `.yml`, `.json`, outside hidden directories.
pub fn is_manifest(path: &str) -> bool {
    let visible = path.split('/').all(|part| !part.starts_with('.'));
    let ext = std::path::Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    visible && matches!(ext, "yaml" | "yml" | "json")
}

fn parse_file(path: &str, bytes: &[u8], vars: &BTreeMap<String, String>, found: &mut Found<'_>) {
    let problems = &mut *found.problems;
    let at = |line, column, message: String| Problem {
        file: path.to_owned(),
        line,
        column,
        message,
    };
    if bytes.len() > MAX_FILE_BYTES {
        problems.push(at(
            1,
            1,
            format!(
                "file is {} bytes, over the {MAX_FILE_BYTES}-byte limit for a manifest",
                bytes.len()
            ),
        ));
        return;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        problems.push(at(1, 1, "file is not UTF-8 text".into()));
        return;
    };
    let text = match vars::substitute(text, vars) {
        Ok(t) => t,
        Err(errors) => {
            problems.extend(errors.into_iter().map(|e| at(e.line, e.column, e.message)));
            return;
        }
    };
    let documents = match yaml::parse_documents(path, &text) {
        Ok(d) => d,
        Err(e) => {
            problems.push(e.into());
            return;
        }
    };
    for doc in documents {
        let source = Source {
            file: path.to_owned(),
            line: doc.line,
            column: doc.column,
        };
        if policy::is_policy(&doc.value) {
            match policy::from_document(path, &doc) {
                Ok(p) => found.policies.push((source, p)),
                Err(e) => problems.push(policy_problem(e)),
            }
            continue;
        }
        match validate(&doc.value) {
            Ok(()) => found.objects.push(Parsed {
                object: doc.value,
                source,
            }),
            Err(message) => problems.push(at(doc.line, doc.column, message)),
        }
    }
}

/// A policy error as a render problem (a parse error has its own position).
fn policy_problem(error: policy::Error) -> Problem {
    match error {
        policy::Error::Parse(e) => e.into(),
        policy::Error::Invalid {
            file,
            line,
            column,
            message,
        } => Problem {
            file,
            line,
            column,
            message,
        },
    }
}

/// apiVersion, kind and metadata.name are present and strings.
fn validate(object: &Value) -> Result<(), String> {
    let Some(map) = object.as_object() else {
        return Err("a manifest must be a mapping (apiVersion, kind, metadata, …)".into());
    };
    let fields = [
        ("apiVersion", map.get("apiVersion")),
        ("kind", map.get("kind")),
        (
            "metadata.name",
            map.get("metadata").and_then(|m| m.get("name")),
        ),
    ];
    let mut missing = Vec::new();
    for (field, value) in fields {
        match value {
            None | Some(Value::Null) => missing.push(field),
            Some(Value::String(s)) if s.is_empty() => missing.push(field),
            Some(Value::String(_)) => {}
            Some(other) => {
                let hint = if other.is_boolean() {
                    " (YAML reads unquoted yes, no, y, n, on, off, true and false as booleans: quote the value)"
                } else {
                    " (quote the value)"
                };
                return Err(format!("{field} must be a string, found {other}{hint}"));
            }
        }
    }
    if map
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("kustomize.config.k8s.io/"))
    {
        return Err("this is a kustomize file; gitsync renders plain manifests and does not run kustomize (render the overlay with `kubectl kustomize` and commit the output, or move this file out of the app)".into());
    }
    if !missing.is_empty() {
        return Err(format!(
            "manifest has no {} (every object needs apiVersion, kind and metadata.name)",
            missing.join(", ")
        ));
    }
    if let Some(ns) = map.get("metadata").and_then(|m| m.get("namespace"))
        && !ns.is_string()
        && !ns.is_null()
    {
        return Err("metadata.namespace must be a string".into());
    }
    Ok(())
}

/// Namespace default, generator renames, common labels, tracking metadata, digest.
fn finish(
    parsed: &mut Parsed,
    options: &options::Options,
    renames: &BTreeMap<String, String>,
    ctx: &Context,
) {
    let kind = parsed
        .object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let object = &mut parsed.object;
    let meta = object_field(object, "metadata");
    if let Some(ns) = &options.namespace
        && !kinds::is_cluster_scoped(&kind)
        && meta.get("namespace").and_then(Value::as_str).is_none()
    {
        meta.insert("namespace".into(), Value::String(ns.clone()));
    }
    let same_namespace =
        meta.get("namespace").and_then(Value::as_str) == options.namespace.as_deref();
    if kinds::is_workload(&kind) {
        if same_namespace {
            workload::rename_references(object, &kind, renames);
        }
        workload::add_template_labels(object, &kind, &options.common_labels);
    }
    let meta = object_field(object, "metadata");
    let labels = map_field(meta, "labels");
    for (k, v) in &options.common_labels {
        labels.insert(k.clone(), Value::String(v.clone()));
    }
    labels.insert(LABEL_MANAGED_BY.into(), Value::String(MANAGED_BY.into()));
    labels.insert(LABEL_APP.into(), Value::String(ctx.app.clone()));
    let annotations = map_field(meta, "annotations");
    match &ctx.revision {
        Some(rev) => {
            annotations.insert(ANNOTATION_REVISION.into(), Value::String(rev.clone()));
        }
        None => {
            annotations.remove(ANNOTATION_REVISION);
        }
    }
    digest::stamp(object);
}

fn annotation_digest(object: &Value) -> String {
    crate::manifest::annotation(object, ANNOTATION_DIGEST)
        .unwrap_or_default()
        .to_owned()
}

/// The map at `object[key]`, created if absent or not a map.
fn object_field<'a>(object: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let Value::Object(map) = object else {
        unreachable!("made an object above")
    };
    map_field(map, key)
}

/// The map at `map[key]`, created if absent or not a map.
fn map_field<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

/// Two documents defining one object: both positions named.
fn check_duplicates(objects: &[Parsed], problems: &mut Vec<Problem>) {
    let mut seen: HashMap<(String, String, Option<String>, String), &Source> =
        HashMap::with_capacity(objects.len());
    for parsed in objects {
        let Some(id) = ObjectId::of(&parsed.object) else {
            continue;
        };
        let key = (
            id.group.clone(),
            id.kind.clone(),
            id.namespace.clone(),
            id.name.clone(),
        );
        if let Some(first) = seen.get(&key) {
            problems.push(Problem {
                file: parsed.source.file.clone(),
                line: parsed.source.line,
                column: parsed.source.column,
                message: format!("{} is defined twice: here and at {first}", id.short()),
            });
        } else {
            seen.insert(key, &parsed.source);
        }
    }
}

#[cfg(test)]
mod tests;
