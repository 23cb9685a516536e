//! Semver ranges over tags: `reference: "~1.2"` follows the highest tag in the range.
//!
//! The rule, applied only when no branch or tag has exactly the reference's name: a
//! reference is a range when it starts with `semver:`, contains any of `^ ~ < > = * ,`
//! or whitespace, or is a dotted version with an `x` part (`1.x`, `v1.2.X`). A plain
//! `1.2.3` is an exact tag name, never a range. Tags are read as versions with an
//! optional `v` prefix (`v1.2.3`, `1.2.3`); other tags are ignored. Pre-releases match
//! only when the range names a pre-release of the same version (Cargo's rule).

use semver::{Version, VersionReq};

/// The range `reference` spells, when it looks like one (see the module docs).
pub fn range(reference: &str) -> Option<&str> {
    if let Some(range) = reference.strip_prefix("semver:") {
        return Some(range.trim());
    }
    let operators = |c: char| "^~<>=*,".contains(c) || c.is_whitespace();
    (reference.contains(operators) || has_x_part(reference)).then_some(reference)
}

/// `1.x`, `v1.2.X`: numeric dotted parts, at least one of them a wildcard `x`.
fn has_x_part(reference: &str) -> bool {
    let parts: Vec<&str> = strip_v(reference).split('.').collect();
    let number = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    let wild = |p: &&str| *p == "x" || *p == "X";
    parts.first().is_some_and(number)
        && parts.iter().any(wild)
        && parts.iter().all(|p| number(p) || wild(p))
}

fn strip_v(text: &str) -> &str {
    text.strip_prefix(['v', 'V'])
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(text)
}

/// Parses a range, allowing a `v` before each version (`>=v1.0, <v2`).
pub fn parse(range: &str) -> Result<VersionReq, semver::Error> {
    let mut cleaned = String::with_capacity(range.len());
    let mut previous = ' ';
    for (i, c) in range.char_indices() {
        let next_is_digit = range[i + c.len_utf8()..].starts_with(|d: char| d.is_ascii_digit());
        let after_operator = "^~<>=, ".contains(previous);
        if !(matches!(c, 'v' | 'V') && next_is_digit && after_operator) {
            cleaned.push(c);
        }
        previous = c;
    }
    VersionReq::parse(&cleaned)
}

/// The tag whose version is the highest in `range`; on equal versions the first name
/// in byte order wins, so the choice is stable.
pub fn best<'t>(range: &VersionReq, tags: impl IntoIterator<Item = &'t str>) -> Option<&'t str> {
    tags.into_iter()
        .filter_map(|tag| Some((Version::parse(strip_v(tag)).ok()?, tag)))
        .filter(|(version, _)| range.matches(version))
        .max_by(|(va, ta), (vb, tb)| va.cmp(vb).then_with(|| tb.cmp(ta)))
        .map(|(_, tag)| tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_told_from_names() {
        for r in [
            "~1.2",
            "^1.0",
            ">=1.0.0, <2.0.0",
            "1.x",
            "v1.2.X",
            "*",
            "semver:1.2.3",
        ] {
            assert!(range(r).is_some(), "{r}");
        }
        for r in [
            "main",
            "1.2.3",
            "v1.2.3",
            "fix-x",
            "x",
            "release/1.x-rc",
            "feature.x",
        ] {
            assert!(range(r).is_none(), "{r}");
        }
        assert_eq!(range("semver: ^1"), Some("^1"));
    }

    fn pick(range: &str, tags: &[&'static str]) -> Option<&'static str> {
        best(&parse(range).expect(range), tags.iter().copied())
    }

    #[test]
    fn the_highest_matching_tag_wins_and_prereleases_need_naming() {
        let tags = [
            "v1.0.0",
            "v1.2.0",
            "v1.2.7",
            "1.3.0",
            "v2.0.0-rc.1",
            "v1.2.8-beta.1",
            "latest",
            "v2.0",
        ];
        assert_eq!(pick("~1.2", &tags), Some("v1.2.7"));
        assert_eq!(pick("^1.0", &tags), Some("1.3.0"));
        assert_eq!(pick(">=1.0.0, <2.0.0", &tags), Some("1.3.0"));
        assert_eq!(pick("1.x", &tags), Some("1.3.0"));
        assert_eq!(pick(">=v1.2, <v1.3", &tags), Some("v1.2.7"));
        assert_eq!(pick("^2", &tags), None, "pre-release not named");
        assert_eq!(pick(">=2.0.0-rc.1", &tags), Some("v2.0.0-rc.1"));
        assert_eq!(pick("^3", &tags), None);
    }

    #[test]
    fn equal_versions_pick_a_stable_name() {
        assert_eq!(pick("^1", &["v1.0.0", "1.0.0"]), Some("1.0.0"));
        assert_eq!(pick("^1", &["1.0.0", "v1.0.0"]), Some("1.0.0"));
    }
}
