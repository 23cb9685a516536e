//! The parts of a Kubernetes API resource path, as the API server reads them:
//! `/api/v1/[namespaces/{ns}/]{plural}[/{name}[/{subresource}]]` and the same under
//! `/apis/{group}/{version}`. `/api/v1/namespaces/{name}/status` (and `/finalize`) is
//! the Namespace's own subresource, not a resource called `status` in it. Which kinds
//! exist is not asked here: the server looks the plural up, fault injection does not.

/// A resource path, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResourcePath<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub namespace: Option<&'a str>,
    pub plural: &'a str,
    pub name: Option<&'a str>,
    pub subresource: Option<&'a str>,
}

/// Splits a resource path; `None` for discovery paths and anything else.
pub(crate) fn parse(path: &str) -> Option<ResourcePath<'_>> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, ..]
            if !group.is_empty() || (*plural != "status" && *plural != "finalize") =>
        {
            (Some(*ns), &rest[2..])
        }
        other => (None, other),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    Some(ResourcePath {
        group,
        version,
        namespace,
        plural,
        name,
        subresource,
    })
}
