//! The manifest model: object identity, where a rendered object came from, and the
//! tracking metadata gitsync puts on everything it manages.
//!
//! Objects are kept as `serde_json::Value` (Kubernetes objects are open-ended JSON);
//! this module owns the small typed layer around them. It does no I/O.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// Label every managed object carries: `app.kubernetes.io/managed-by: gitsync`.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "gitsync";
/// Label naming the gitsync app an object belongs to.
pub const LABEL_APP: &str = "gitsync.dev/app";
/// Annotation with the commit the object was rendered from.
pub const ANNOTATION_REVISION: &str = "gitsync.dev/revision";
/// Annotation with the sha256 digest of the rendered object.
pub const ANNOTATION_DIGEST: &str = "gitsync.dev/digest";
/// Annotation that opts an object out of (`"false"`) or a PVC into (`"true"`) pruning.
pub const ANNOTATION_PRUNE: &str = "gitsync.dev/prune";
/// Annotation ordering objects into waves (`"<int>"`, default 0): each wave is applied
/// and healthy before the next starts.
pub const ANNOTATION_WAVE: &str = "gitsync.dev/wave";
/// Annotation that lets a sync delete and recreate an object whose immutable fields
/// changed (`"true"`).
pub const ANNOTATION_REPLACE: &str = "gitsync.dev/replace";
/// Annotation binding a workload to a strategy policy.
pub const ANNOTATION_STRATEGY: &str = "gitsync.dev/strategy";
/// `"true"`: this object is applied with force, taking fields other managers own (as
/// the app-wide `force: true` does for every object). Rollouts set it on a slot whose
/// count an HPA that no longer targets it still owns.
pub const ANNOTATION_FORCE: &str = "gitsync.dev/force-conflicts";
/// The field manager gitsync applies with.
pub const FIELD_MANAGER: &str = "gitsync";

/// Identity of a Kubernetes object: `group/version/kind/namespace/name`.
///
/// The core group is the empty string; cluster-scoped objects have no namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectId {
    pub group: String,
    pub version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectId {
    /// Reads the identity of an object; `None` when apiVersion, kind or name is missing.
    pub fn of(object: &Value) -> Option<Self> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        let meta = object.get("metadata")?;
        let name = meta.get("name")?.as_str()?;
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty());
        let (group, version) = split_api_version(api_version);
        Some(Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// `apiVersion` as written in manifests: `v1`, `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Identity with the version left out: two versions of one object are the same object.
    pub fn group_kind_key(&self) -> Key<'_> {
        (
            &self.group,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }

    /// Short human form: `Deployment/demo/front-end`, `Namespace/demo`.
    pub fn short(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{}", self.kind, ns, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}/{}",
            self.group,
            self.version,
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }
}

/// Identity without the version, borrowed from an object: what
/// [`ObjectId::group_kind_key`] gives for the object's [`ObjectId`].
pub type Key<'a> = (&'a str, &'a str, Option<&'a str>, &'a str);

/// Objects by their identity without the version (the same object served at two
/// versions is one object), for matching desired objects with live ones.
pub fn index(objects: &[Value]) -> BTreeMap<Key<'_>, &Value> {
    objects
        .iter()
        .filter_map(|object| {
            let (group, _) = split_api_version(object.get("apiVersion")?.as_str()?);
            let kind = object.get("kind")?.as_str()?;
            let meta = object.get("metadata")?;
            let namespace = meta
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|ns| !ns.is_empty());
            Some((
                (group, kind, namespace, meta.get("name")?.as_str()?),
                object,
            ))
        })
        .collect()
}

/// Splits `apps/v1` into `("apps", "v1")` and `v1` into `("", "v1")`.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// Where a rendered object was defined: a path relative to the app root, 1-based line
/// and column of the document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Source {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One rendered, validated object ready to diff and apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub id: ObjectId,
    pub source: Source,
    /// The full object, tracking metadata included.
    pub object: Value,
    /// Hex sha256 over the canonical form (see [`crate::digest`]).
    pub digest: String,
}

/// Metadata field of an object as a string, if present.
pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/annotations")?.get(key)?.as_str()
}

/// Manifests kept for later as compressed JSON text: a parsed object tree costs several
/// times its text, and the agent keeps every app's last synced render between syncs
/// (for drift checks and rollout passes), unpacking it only when it reads it.
/// Manifests repeat themselves (labels, annotations, field names), so their text
/// deflates to about a tenth; and all of it is one buffer: thousands of small long-lived
/// allocations would pin as many allocator pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packed {
    /// One JSON line per manifest, deflated.
    text: Box<[u8]>,
    /// How many manifests it holds.
    len: usize,
    /// One identity per kind (no namespace, no name), in first-seen order.
    kinds: Vec<ObjectId>,
}

/// A manifest as [`Packed`] writes it.
#[derive(Serialize)]
struct PackedLine<'a> {
    g: &'a str,
    v: &'a str,
    k: &'a str,
    ns: Option<&'a str>,
    n: &'a str,
    f: &'a str,
    l: usize,
    c: usize,
    d: &'a str,
    o: &'a Value,
}

/// A manifest as [`Packed`] reads it back.
#[derive(serde::Deserialize)]
struct UnpackedLine {
    g: String,
    v: String,
    k: String,
    ns: Option<String>,
    n: String,
    f: String,
    l: usize,
    c: usize,
    d: String,
    o: Value,
}

impl Packed {
    /// Packs `manifests`, in their order.
    pub fn pack(manifests: &[Manifest]) -> Self {
        use std::io::Write as _;
        let mut packed = Self::default();
        // Lines are written straight into the encoder, with no uncompressed copy.
        let mut encoder = crate::deflated::encoder();
        for m in manifests {
            let line = PackedLine {
                g: &m.id.group,
                v: &m.id.version,
                k: &m.id.kind,
                ns: m.id.namespace.as_deref(),
                n: &m.id.name,
                f: &m.source.file,
                l: m.source.line,
                c: m.source.column,
                d: &m.digest,
                o: &m.object,
            };
            // Writing into a Vec fails only on a map with non-string keys, which a
            // `Value` cannot hold. A JSON text holds no raw newline: one ends each line.
            if serde_json::to_writer(&mut encoder, &line).is_ok()
                && encoder.write_all(b"\n").is_ok()
            {
                packed.len += 1;
            }
            if !packed
                .kinds
                .iter()
                .any(|k| k.group == m.id.group && k.kind == m.id.kind)
            {
                packed.kinds.push(ObjectId {
                    namespace: None,
                    name: String::new(),
                    ..m.id.clone()
                });
            }
        }
        packed.text = crate::deflated::finish(encoder);
        packed
    }

    /// The manifests as they were packed.
    pub fn unpack(&self) -> Vec<Manifest> {
        self.each().collect()
    }

    /// The manifests as they were packed, one at a time: reading them all holds one in
    /// memory, not all of them.
    pub fn each(&self) -> impl Iterator<Item = Manifest> + '_ {
        use std::io::BufRead as _;
        let lines = std::io::BufReader::new(crate::deflated::decoder(&self.text));
        // Text this module wrote inflates and parses back.
        lines.split(b'\n').map_while(Result::ok).filter_map(|line| {
            let line: UnpackedLine = serde_json::from_slice(&line).ok()?;
            Some(Manifest {
                id: ObjectId {
                    group: line.g,
                    version: line.v,
                    kind: line.k,
                    namespace: line.ns,
                    name: line.n,
                },
                source: Source {
                    file: line.f,
                    line: line.l,
                    column: line.c,
                },
                object: line.o,
                digest: line.d,
            })
        })
    }

    /// One identity per kind of the packed manifests (group, version and kind set;
    /// no namespace, no name).
    pub fn kinds(&self) -> &[ObjectId] {
        &self.kinds
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Label of an object as a string, if present.
pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/labels")?.get(key)?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_identity_of_namespaced_and_cluster_objects() {
        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo"}});
        let id = ObjectId::of(&dep).expect("identity");
        assert_eq!(id.to_string(), "apps/v1/Deployment/demo/web");
        assert_eq!(id.short(), "Deployment/demo/web");
        assert_eq!(id.api_version(), "apps/v1");

        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}});
        let id = ObjectId::of(&ns).expect("identity");
        assert_eq!(id.to_string(), "/v1/Namespace//demo");
        assert_eq!(id.api_version(), "v1");
    }

    #[test]
    fn packed_manifests_unpack_as_they_were() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "demo", "labels": {"x": "1"}},
            "data": {"n": "2", "u": "ünï", "e": ""}, "z": [1, 2.5, null, true]});
        let manifests = vec![Manifest {
            id: ObjectId::of(&object).expect("id"),
            source: Source {
                file: "a.yaml".into(),
                line: 3,
                column: 1,
            },
            object,
            digest: "abc".into(),
        }];
        let packed = Packed::pack(&manifests);
        assert_eq!(packed.len(), 1);
        assert_eq!(packed.kinds()[0].kind, "ConfigMap");
        assert_eq!(packed.kinds()[0].name, "");
        assert_eq!(packed.unpack(), manifests);
    }

    #[test]
    fn many_similar_manifests_pack_into_a_fraction_of_their_text() {
        let manifests: Vec<Manifest> = (0..500)
            .map(|i| {
                let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{i}"), "namespace": "demo",
                        "labels": {"gitsync.dev/app": "demo"}},
                    "data": {"value": format!("v{i}")}});
                Manifest {
                    id: ObjectId::of(&object).expect("id"),
                    source: Source {
                        file: format!("cm-{i}.yaml"),
                        line: 1,
                        column: 1,
                    },
                    object,
                    digest: format!("{i:064x}"),
                }
            })
            .collect();
        let text: usize = manifests.iter().map(|m| m.object.to_string().len()).sum();
        let packed = Packed::pack(&manifests);
        assert!(
            packed.text.len() * 4 < text,
            "{} of {text}",
            packed.text.len()
        );
        assert_eq!(packed.unpack(), manifests);
        assert_eq!(packed.kinds().len(), 1);
    }

    #[test]
    fn missing_kind_has_no_identity() {
        assert!(ObjectId::of(&json!({"apiVersion": "v1", "metadata": {"name": "x"}})).is_none());
    }
}
