//! Which lists in built-in Kubernetes kinds are maps keyed by some of their items'
//! fields (`x-kubernetes-list-type: map` with `x-kubernetes-list-map-keys` in the
//! OpenAPI schema). Everything not listed here is an atomic list.
//!
//! Lists are recognised by their field name and, where the name is ambiguous, by the
//! list they sit in: `ports` inside `containers` is keyed by `containerPort` and
//! `protocol`, `ports` of a Service by `port` and `protocol`.

/// The key fields of the list `name` found inside items of the list `within`, or `None`
/// when the list is atomic.
pub fn list_keys(name: &str, within: Option<&str>) -> Option<&'static [&'static str]> {
    let keys: &'static [&'static str] = match name {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => &["name"],
        "ports" if is_container_list(within) => &["containerPort", "protocol"],
        "ports" => &["port", "protocol"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "hostAliases" => &["ip"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        "conditions" => &["type"],
        "ownerReferences" => &["uid"],
        _ => return None,
    };
    Some(keys)
}

fn is_container_list(within: Option<&str>) -> bool {
    matches!(
        within,
        Some("containers" | "initContainers" | "ephemeralContainers")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_depend_on_where_they_are() {
        assert_eq!(
            list_keys("ports", Some("containers")),
            Some(&["containerPort", "protocol"][..])
        );
        assert_eq!(list_keys("ports", None), Some(&["port", "protocol"][..]));
        assert_eq!(list_keys("args", Some("containers")), None);
    }
}
