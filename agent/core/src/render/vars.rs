//! `${VAR}` substitution on a file's text before parsing (as Flux's post-build
//! substitution does): `${VAR}`, `${VAR:-default}`, and `$${VAR}` for a literal
//! `${VAR}`. An undefined variable without a default is an error at its line and column;
//! so is a value with a newline (it would shift every line number after it).

use std::collections::BTreeMap;

/// One substitution failure, 1-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Substitutes every variable in `text`.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, Vec<Failure>> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut failures = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        substitute_line(line, index + 1, vars, &mut out, &mut failures);
    }
    if failures.is_empty() {
        Ok(out)
    } else {
        Err(failures)
    }
}

fn substitute_line(
    line: &str,
    number: usize,
    vars: &BTreeMap<String, String>,
    out: &mut String,
    failures: &mut Vec<Failure>,
) {
    let mut rest = line;
    let mut consumed = 0;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let column = line[..consumed + at].chars().count() + 1;
        if tail.starts_with("$${") {
            out.push_str("${");
            consumed += at + 3;
            rest = &rest[at + 3..];
            continue;
        }
        let Some(body_start) = tail.strip_prefix("${") else {
            out.push('$');
            consumed += at + 1;
            rest = &rest[at + 1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            out.push_str("${");
            consumed += at + 2;
            rest = &rest[at + 2..];
            continue;
        };
        let body = &body_start[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if !is_name(name) {
            // Not ours (e.g. a shell expression): left as written.
            out.push_str("${");
            consumed += at + 2;
            rest = &rest[at + 2..];
            continue;
        }
        match vars.get(name).map(String::as_str).or(default) {
            Some(value) if value.contains('\n') => failures.push(Failure {
                line: number,
                column,
                message: format!("variable {name} has a newline in its value; use a single line"),
            }),
            Some(value) => out.push_str(value),
            None => failures.push(Failure {
                line: number,
                column,
                message: format!(
                    "variable {name} is not defined (set it in gitsync.yaml vars or with --var {name}=…, give a default with ${{{name}:-…}}, or write $${{{name}}} for a literal)"
                ),
            }),
        }
        let step = at + 2 + end + 1;
        consumed += step;
        rest = &rest[step..];
    }
    out.push_str(rest);
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("TAG".to_owned(), "1.2".to_owned())].into_iter().collect()
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        let out = substitute(
            "image: web:${TAG}\nlevel: ${LEVEL:-info}\nlit: $${TAG}\nsh: $HOME ${1}\n",
            &vars(),
        )
        .expect("ok");
        assert_eq!(
            out,
            "image: web:1.2\nlevel: info\nlit: ${TAG}\nsh: $HOME ${1}\n"
        );
    }

    #[test]
    fn undefined_variables_are_errors_with_positions() {
        let err = substitute("a: 1\nb: x-${MISSING}\n", &vars()).expect_err("undefined");
        assert_eq!(err.len(), 1);
        assert_eq!((err[0].line, err[0].column), (2, 6));
        assert!(err[0].message.contains("MISSING"));
    }

    #[test]
    fn multi_line_values_are_refused() {
        let v: BTreeMap<String, String> =
            [("X".to_owned(), "a\nb".to_owned())].into_iter().collect();
        assert!(substitute("x: ${X}\n", &v).is_err());
    }
}
