//! Which remote ref a source's `reference` names, decided from the refs the remote
//! advertises: a branch, else a tag, else a semver range over tags, else a commit sha.
//! Also where each kind lands in the cache and the one refspec that fetches it.

use git2::Oid;

use super::{Error, Result, is_sha, semver_ref};

/// The advertised ref a reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Branch {
        name: String,
        oid: Oid,
    },
    /// A tag, named exactly or chosen from a semver range.
    Tag {
        name: String,
        oid: Oid,
    },
    /// A commit sha (or prefix): not advertised, so every branch and tag is fetched
    /// unless the cache already holds it.
    Commit(String),
}

impl Target {
    /// Picks the target of `reference` among the advertised `(name, oid)` refs.
    pub fn pick(url: &str, reference: &str, advertised: &[(String, Oid)]) -> Result<Self> {
        let find = |name: &str| advertised.iter().find(|(n, _)| n == name).map(|(_, o)| *o);
        if let Some(oid) = find(&format!("refs/heads/{reference}")) {
            return Ok(Self::branch(reference, oid));
        }
        if let Some(oid) = find(&format!("refs/tags/{reference}")) {
            return Ok(Self::tag(reference, oid));
        }
        if let Some(range) = semver_ref::range(reference) {
            return Self::in_range(url, range, advertised);
        }
        if is_sha(reference) {
            return Ok(Self::Commit(reference.to_owned()));
        }
        Err(Error::UnknownRef {
            url: url.to_owned(),
            reference: reference.to_owned(),
        })
    }

    fn in_range(url: &str, range: &str, advertised: &[(String, Oid)]) -> Result<Self> {
        let req = semver_ref::parse(range).map_err(|source| Error::BadRange {
            range: range.to_owned(),
            source,
        })?;
        let tags: Vec<(&str, Oid)> = advertised
            .iter()
            .filter_map(|(name, oid)| Some((name.strip_prefix("refs/tags/")?, *oid)))
            .filter(|(name, _)| !name.ends_with("^{}"))
            .collect();
        let chosen = semver_ref::best(&req, tags.iter().map(|(name, _)| *name));
        let (tag, oid) = chosen
            .and_then(|chosen| tags.iter().find(|(name, _)| *name == chosen))
            .ok_or_else(|| Error::NoTagInRange {
                url: url.to_owned(),
                range: range.to_owned(),
            })?;
        Ok(Self::tag(tag, *oid))
    }

    fn branch(name: &str, oid: Oid) -> Self {
        Self::Branch {
            name: name.to_owned(),
            oid,
        }
    }

    fn tag(name: &str, oid: Oid) -> Self {
        Self::Tag {
            name: name.to_owned(),
            oid,
        }
    }

    /// Where the target is kept in the cache (`None` for a commit).
    pub fn local_ref(&self) -> Option<String> {
        match self {
            Self::Branch { name, .. } => Some(format!("refs/remotes/origin/{name}")),
            Self::Tag { name, .. } => Some(format!("refs/tags/{name}")),
            Self::Commit(_) => None,
        }
    }

    /// The oid the remote advertises for the target.
    pub fn advertised(&self) -> Option<Oid> {
        match self {
            Self::Branch { oid, .. } | Self::Tag { oid, .. } => Some(*oid),
            Self::Commit(_) => None,
        }
    }

    /// The refspecs that fetch the target and nothing else.
    pub fn refspecs(&self) -> Vec<String> {
        match self {
            Self::Branch { name, .. } => {
                vec![format!("+refs/heads/{name}:refs/remotes/origin/{name}")]
            }
            Self::Tag { name, .. } => vec![format!("+refs/tags/{name}:refs/tags/{name}")],
            Self::Commit(_) => vec![
                "+refs/heads/*:refs/remotes/origin/*".to_owned(),
                "+refs/tags/*:refs/tags/*".to_owned(),
            ],
        }
    }

    pub fn tag_name(&self) -> Option<&str> {
        match self {
            Self::Tag { name, .. } => Some(name),
            Self::Branch { .. } | Self::Commit(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ads(names: &[&str]) -> Vec<(String, Oid)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let oid = Oid::from_str(&format!("{:040x}", i + 1)).expect("oid");
                ((*n).to_owned(), oid)
            })
            .collect()
    }

    #[test]
    fn branches_beat_tags_beat_ranges_beat_shas() {
        let refs = ads(&[
            "HEAD",
            "refs/heads/main",
            "refs/heads/1.x",
            "refs/tags/main",
            "refs/tags/v1.4.0",
            "refs/tags/v1.4.0^{}",
            "refs/tags/v1.5.0",
        ]);
        let pick = |r: &str| Target::pick("u", r, &refs);
        assert!(matches!(pick("main"), Ok(Target::Branch { .. })));
        assert!(
            matches!(pick("1.x"), Ok(Target::Branch { .. })),
            "existing name first"
        );
        assert_eq!(
            pick("~1.4").expect("range").tag_name(),
            Some("v1.4.0"),
            "highest in range"
        );
        assert_eq!(pick("^1").expect("range").tag_name(), Some("v1.5.0"));
        assert_eq!(pick("^1").expect("range").advertised(), Some(refs[6].1));
        assert!(matches!(pick("abc1234"), Ok(Target::Commit(_))));
        assert!(
            matches!(pick("1.4.0"), Err(Error::UnknownRef { .. })),
            "exact only"
        );
        assert!(matches!(pick("^7"), Err(Error::NoTagInRange { .. })));
        assert!(matches!(pick(">=banana"), Err(Error::BadRange { .. })));
    }

    #[test]
    fn refspecs_fetch_only_the_target() {
        let refs = ads(&["refs/tags/v1.0.0"]);
        let tag = Target::pick("u", "^1", &refs).expect("tag");
        assert_eq!(tag.refspecs(), ["+refs/tags/v1.0.0:refs/tags/v1.0.0"]);
        assert_eq!(tag.local_ref().as_deref(), Some("refs/tags/v1.0.0"));
    }
}
