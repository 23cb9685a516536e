//! MutatingWebhookConfiguration and ValidatingWebhookConfiguration objects: their
//! defaults (`SetDefaults_MutatingWebhook`, `SetDefaults_ValidatingWebhook`,
//! `SetDefaults_Rule`, `SetDefaults_ServiceReference`) and their validation
//! (`ValidateMutatingWebhookConfiguration`, `ValidateValidatingWebhookConfiguration`),
//! with the API server's messages.

use std::collections::HashSet;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::admit::Cause;
use crate::admit::{LABEL_VALUE_MESSAGE, is_label_value};

/// Fills in what the API server defaults in each webhook of a configuration.
pub fn apply_defaults(mutating: bool, configuration: &mut Value) {
    let Some(hooks) = configuration
        .get_mut("webhooks")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for hook in hooks.iter_mut().filter_map(Value::as_object_mut) {
        default(hook, "failurePolicy", json!("Fail"));
        default(hook, "matchPolicy", json!("Equivalent"));
        default(hook, "namespaceSelector", json!({}));
        default(hook, "objectSelector", json!({}));
        default(hook, "timeoutSeconds", json!(10));
        if mutating {
            default(hook, "reinvocationPolicy", json!("Never"));
        }
        if let Some(rules) = hook.get_mut("rules").and_then(Value::as_array_mut) {
            for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
                default(rule, "scope", json!("*"));
            }
        }
        if let Some(service) = hook
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
        {
            default(service, "port", json!(443));
        }
    }
}

/// Sets `key` when it is absent or null.
fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_owned(), value);
    }
}

/// Validates a configuration's webhooks (its name is validated with every object's).
pub fn validate(mutating: bool, configuration: &Value, causes: &mut Vec<Cause>) {
    let hooks = match configuration.get("webhooks") {
        None | Some(Value::Null) => return,
        Some(Value::Array(hooks)) => hooks,
        Some(_) => {
            causes.push(("webhooks".into(), "Invalid value: must be a list".into()));
            return;
        }
    };
    let mut names = HashSet::new();
    for (i, hook) in hooks.iter().enumerate() {
        let at = format!("webhooks[{i}]");
        if !hook.is_object() {
            causes.push((at, "Invalid value: must be an object".into()));
            continue;
        }
        validate_hook(mutating, hook, &at, causes);
        validate_review_versions(hook.get("admissionReviewVersions"), &at, causes);
        let name = hook.get("name").and_then(Value::as_str).unwrap_or_default();
        if !name.is_empty() && !names.insert(name) {
            causes.push((format!("{at}.name"), format!("Duplicate value: {name:?}")));
        }
    }
}

fn validate_hook(mutating: bool, hook: &Value, at: &str, causes: &mut Vec<Cause>) {
    let text = |field: &str| hook.get(field).and_then(Value::as_str);
    let name = text("name").unwrap_or_default();
    if let Err(message) = fully_qualified_name(name) {
        causes.push((format!("{at}.name"), message));
    }
    for (j, rule) in list(hook.get("rules")).iter().enumerate() {
        validate_rule(rule, &format!("{at}.rules[{j}]"), causes);
    }
    let one_of = |field: &str, allowed: &[&str], causes: &mut Vec<Cause>| {
        if let Some(value) = hook.get(field).filter(|v| !v.is_null())
            && !value.as_str().is_some_and(|v| allowed.contains(&v))
        {
            causes.push((format!("{at}.{field}"), unsupported(value, allowed)));
        }
    };
    one_of("failurePolicy", &["Fail", "Ignore"], causes);
    one_of("matchPolicy", &["Equivalent", "Exact"], causes);
    match hook.get("sideEffects").filter(|v| !v.is_null()) {
        None => causes.push((
            format!("{at}.sideEffects"),
            "Required value: must specify one of None, NoneOnDryRun".into(),
        )),
        Some(_) => one_of("sideEffects", &["None", "NoneOnDryRun"], causes),
    }
    if let Some(timeout) = hook.get("timeoutSeconds").filter(|v| !v.is_null())
        && !timeout.as_i64().is_some_and(|t| (1..=30).contains(&t))
    {
        causes.push((
            format!("{at}.timeoutSeconds"),
            format!("Invalid value: {timeout}: the timeout value must be between 1 and 30 seconds"),
        ));
    }
    for field in ["namespaceSelector", "objectSelector"] {
        if let Some(selector) = hook.get(field).filter(|v| !v.is_null()) {
            validate_label_selector(selector, &format!("{at}.{field}"), causes);
        }
    }
    if mutating {
        one_of("reinvocationPolicy", &["IfNeeded", "Never"], causes);
    }
    validate_client_config(
        hook.get("clientConfig"),
        &format!("{at}.clientConfig"),
        causes,
    );
    if !list(hook.get("matchConditions")).is_empty() {
        causes.push((
            format!("{at}.matchConditions"),
            "Forbidden: the local cluster does not evaluate CEL match conditions; select requests with rules and selectors instead".into(),
        ));
    }
}

fn list(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    list(value).iter().filter_map(Value::as_str).collect()
}

/// `Unsupported value: "X": supported values: "A", "B"`.
fn unsupported(value: &Value, allowed: &[&str]) -> String {
    let supported: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "Unsupported value: {value}: supported values: {}",
        supported.join(", ")
    )
}

/// `IsFullyQualifiedName`: a DNS subdomain of at least three segments.
fn fully_qualified_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Required value".into());
    }
    if !crate::admit::is_subdomain(name) {
        return Err(format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ));
    }
    if name.split('.').count() < 3 {
        return Err(format!(
            "Invalid value: {name:?}: should be a domain with at least three segments separated by dots"
        ));
    }
    Ok(())
}

/// `validateRuleWithOperations`.
fn validate_rule(rule: &Value, at: &str, causes: &mut Vec<Cause>) {
    let supported = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
    for (field, what) in [
        ("operations", "operations"),
        ("apiGroups", "API groups"),
        ("apiVersions", "API versions"),
    ] {
        let values = strings(rule.get(field));
        if values.is_empty() {
            causes.push((format!("{at}.{field}"), "Required value".into()));
        }
        if values.len() > 1 && values.contains(&"*") {
            causes.push((
                format!("{at}.{field}"),
                format!(
                    "Invalid value: {}: if '*' is present, must not specify other {what}",
                    json!(values)
                ),
            ));
        }
        if field == "operations" {
            for (k, op) in list(rule.get(field)).iter().enumerate() {
                if !op.as_str().is_some_and(|o| supported.contains(&o)) {
                    causes.push((format!("{at}.operations[{k}]"), unsupported(op, &supported)));
                }
            }
        }
    }
    for (k, version) in strings(rule.get("apiVersions")).iter().enumerate() {
        if version.is_empty() {
            causes.push((format!("{at}.apiVersions[{k}]"), "Required value".into()));
        }
    }
    validate_resources(
        &strings(rule.get("resources")),
        &format!("{at}.resources"),
        causes,
    );
    if let Some(scope) = rule.get("scope").filter(|v| !v.is_null())
        && !scope
            .as_str()
            .is_some_and(|s| ["*", "Cluster", "Namespaced"].contains(&s))
    {
        causes.push((
            format!("{at}.scope"),
            unsupported(scope, &["*", "Cluster", "Namespaced"]),
        ));
    }
}

/// `validateResources`: `x`, `x/y`, `x/*`, `*/y`, `*` and `*/*` without overlaps.
fn validate_resources(resources: &[&str], at: &str, causes: &mut Vec<Cause>) {
    if resources.is_empty() {
        causes.push((at.to_owned(), "Required value".into()));
    }
    let mut with_wildcard_sub = HashSet::new();
    let mut sub_with_wildcard_res = HashSet::new();
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, item) in resources.iter().enumerate() {
        if item.is_empty() {
            causes.push((format!("{at}[{i}]"), "Required value".into()));
            continue;
        }
        double |= *item == "*/*";
        single |= *item == "*";
        let Some((res, sub)) = item.split_once('/') else {
            plain = *item != "*";
            continue;
        };
        if with_wildcard_sub.contains(res) {
            causes.push((
                format!("{at}[{i}]"),
                format!(
                    "Invalid value: {item:?}: if '{res}/*' is present, must not specify {item}"
                ),
            ));
        }
        if sub_with_wildcard_res.contains(sub) {
            causes.push((
                format!("{at}[{i}]"),
                format!(
                    "Invalid value: {item:?}: if '*/{sub}' is present, must not specify {item}"
                ),
            ));
        }
        if sub == "*" {
            with_wildcard_sub.insert(res);
        }
        if res == "*" {
            sub_with_wildcard_res.insert(sub);
        }
    }
    if resources.len() > 1 && double {
        causes.push((
            at.to_owned(),
            format!(
                "Invalid value: {}: if '*/*' is present, must not specify other resources",
                json!(resources)
            ),
        ));
    }
    if single && plain {
        causes.push((
            at.to_owned(),
            format!(
                "Invalid value: {}: if '*' is present, must not specify other resources without subresources",
                json!(resources)
            ),
        ));
    }
}

/// `ValidateLabelSelector`.
fn validate_label_selector(selector: &Value, at: &str, causes: &mut Vec<Cause>) {
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            if let Err(why) = crate::admit::qualified_name(key) {
                causes.push((
                    format!("{at}.matchLabels"),
                    format!("Invalid value: {key:?}: {why}"),
                ));
            }
            let value = value.as_str().unwrap_or_default();
            if !is_label_value(value) {
                causes.push((
                    format!("{at}.matchLabels"),
                    format!("Invalid value: {value:?}: {LABEL_VALUE_MESSAGE}"),
                ));
            }
        }
    }
    for (i, expression) in list(selector.get("matchExpressions")).iter().enumerate() {
        let at = format!("{at}.matchExpressions[{i}]");
        let values = list(expression.get("values"));
        match expression.get("operator").and_then(Value::as_str) {
            Some("In" | "NotIn") => {
                if values.is_empty() {
                    causes.push((
                        format!("{at}.values"),
                        "Required value: must be specified when `operator` is 'In' or 'NotIn'"
                            .into(),
                    ));
                }
            }
            Some("Exists" | "DoesNotExist") => {
                if !values.is_empty() {
                    causes.push((
                        format!("{at}.values"),
                        "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'".into(),
                    ));
                }
            }
            _ => causes.push((
                format!("{at}.operator"),
                format!(
                    "Invalid value: {}: not a valid selector operator",
                    expression.get("operator").unwrap_or(&json!(""))
                ),
            )),
        }
        let key = expression
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Err(why) = crate::admit::qualified_name(key) {
            causes.push((
                format!("{at}.key"),
                format!("Invalid value: {key:?}: {why}"),
            ));
        }
        for (k, value) in values.iter().enumerate() {
            let value = value.as_str().unwrap_or_default();
            if !is_label_value(value) {
                causes.push((
                    format!("{at}.values[{k}]"),
                    format!("Invalid value: {value:?}: {LABEL_VALUE_MESSAGE}"),
                ));
            }
        }
    }
}

/// `clientConfig`: exactly one of `url` (`ValidateWebhookURL`, https only) and
/// `service` (`ValidateWebhookService`); a `caBundle` that is base64.
fn validate_client_config(config: Option<&Value>, at: &str, causes: &mut Vec<Cause>) {
    let empty = json!({});
    let config = config.filter(|c| c.is_object()).unwrap_or(&empty);
    let url = config.get("url").filter(|v| !v.is_null());
    let service = config.get("service").filter(|v| !v.is_null());
    match (url, service) {
        (Some(url), None) => {
            for message in validate_url(url.as_str().unwrap_or_default()) {
                causes.push((format!("{at}.url"), message));
            }
        }
        (None, Some(service)) => validate_service(service, &format!("{at}.service"), causes),
        _ => causes.push((
            at.to_owned(),
            "Required value: exactly one of url or service is required".into(),
        )),
    }
    if let Some(bundle) = config.get("caBundle").and_then(Value::as_str)
        && let Err(e) = base64::engine::general_purpose::STANDARD.decode(bundle)
    {
        causes.push((
            format!("{at}.caBundle"),
            format!("Invalid value: the caBundle must be base64: {e}"),
        ));
    }
}

/// `ValidateWebhookURL` with https required, on the URL's parts as Go's `url.Parse`
/// splits them.
pub(super) fn validate_url(url: &str) -> Vec<String> {
    const FORM: &str = "; desired format: https://host[/path]";
    let mut out = Vec::new();
    let (rest, fragment) = url.split_once('#').unwrap_or((url, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (scheme, rest) = match rest.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("", ""),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    if scheme != "https" {
        out.push(format!(
            "Invalid value: {scheme:?}: 'https' is the only allowed URL scheme{FORM}"
        ));
    }
    if host.is_empty() {
        out.push(format!("Invalid value: \"\": host must be provided{FORM}"));
    }
    if let Some(user) = user {
        out.push(format!(
            "Invalid value: {user:?}: user information is not permitted in the URL"
        ));
    }
    if !fragment.is_empty() {
        out.push(format!(
            "Invalid value: {fragment:?}: fragments are not permitted in the URL"
        ));
    }
    if !query.is_empty() {
        out.push(format!(
            "Invalid value: {query:?}: query parameters are not permitted in the URL"
        ));
    }
    out
}

/// `ValidateWebhookService`.
fn validate_service(service: &Value, at: &str, causes: &mut Vec<Cause>) {
    let text = |field: &str| {
        service
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if text("name").is_empty() {
        causes.push((
            format!("{at}.name"),
            "Required value: service name is required".into(),
        ));
    }
    if text("namespace").is_empty() {
        causes.push((
            format!("{at}.namespace"),
            "Required value: service namespace is required".into(),
        ));
    }
    if let Some(port) = service.get("port")
        && !port.as_i64().is_some_and(|p| (1..=65_535).contains(&p))
    {
        causes.push((
            format!("{at}.port"),
            format!(
                "Invalid value: {port}: port is not valid: must be between 1 and 65535, inclusive"
            ),
        ));
    }
    let path = text("path");
    if path.is_empty() || path == "/" {
        return;
    }
    if path == "//" {
        causes.push((
            format!("{at}.path"),
            format!("Invalid value: {path:?}: segment[0] may not be empty"),
        ));
        return;
    }
    if !path.starts_with('/') {
        causes.push((
            format!("{at}.path"),
            format!("Invalid value: {path:?}: must start with a '/'"),
        ));
    }
    let inner = path.strip_prefix('/').unwrap_or(path);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    for (i, step) in inner.split('/').enumerate() {
        if step.is_empty() {
            causes.push((
                format!("{at}.path"),
                format!("Invalid value: {path:?}: segment[{i}] may not be empty"),
            ));
        } else if !crate::admit::is_subdomain(step) {
            causes.push((
                format!("{at}.path"),
                format!("Invalid value: {path:?}: segment[{i}]: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
            ));
        }
    }
}

/// `validateAdmissionReviewVersions`: at least one, no duplicates, DNS-1035 labels,
/// and one this server sends (`v1`, `v1beta1`).
fn validate_review_versions(versions: Option<&Value>, at: &str, causes: &mut Vec<Cause>) {
    let at = format!("{at}.admissionReviewVersions");
    let versions = list(versions);
    if versions.is_empty() {
        causes.push((at, "Required value: must specify one of v1, v1beta1".into()));
        return;
    }
    let mut seen = HashSet::new();
    let mut accepted = false;
    for (i, version) in versions.iter().enumerate() {
        let text = version.as_str().unwrap_or_default();
        if !seen.insert(text) {
            causes.push((
                format!("{at}[{i}]"),
                format!("Invalid value: {version}: duplicate version"),
            ));
            continue;
        }
        if !is_dns1035_label(text) {
            causes.push((
                format!("{at}[{i}]"),
                format!("Invalid value: {version}: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"),
            ));
        }
        accepted |= super::REVIEW_VERSIONS.contains(&text);
    }
    if !accepted {
        causes.push((
            at,
            format!(
                "Invalid value: {}: must include at least one of v1, v1beta1",
                Value::Array(versions.to_vec())
            ),
        ));
    }
}

fn is_dns1035_label(text: &str) -> bool {
    text.len() <= 63
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && text.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
