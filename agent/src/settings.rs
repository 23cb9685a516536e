//! The agent's configuration file (mounted from a ConfigMap): the apps it serves, where
//! their credentials, the API token and the webhook secrets are, and defaults. Parsed
//! and validated before any I/O; unknown fields are errors with the file and line, so
//! a typo never silently does nothing.
//!
//! ```yaml
//! historyLimit: 50         # history entries kept per app
//! defaults:
//!   maxPrunePercent: 50    # largest share of an app one sync may prune
//!   forcePrune: false      # prune past it
//! apps:
//!   - name: demo
//!     repo: https://github.com/example/gitops.git
//!     ref: main            # branch, tag, commit, or semver range over tags
//!     path: example-repo
//! ```
//!
//! Pruning guards: `forcePrune` / `maxPrunePercent` in `defaults` win over the agent's
//! `--force-prune` / `--max-prune-percent`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Namespace of the sync history, rollout state and the leader Lease (default:
    /// the agent's own).
    pub history_namespace: Option<String>,
    /// Elect a leader among replicas through a Lease; only the leader writes.
    #[serde(default)]
    pub leader_election: bool,
    /// History entries kept per app, 1 to [`MAX_HISTORY_LIMIT`] (default: the bound
    /// the history already holds, else [`crate::history::DEFAULT_LIMIT`]).
    #[serde(default, deserialize_with = "history_limit")]
    pub history_limit: Option<usize>,
    #[serde(default)]
    pub api: Api,
    #[serde(default)]
    pub webhooks: Webhooks,
    #[serde(default)]
    pub defaults: Defaults,
    pub apps: Vec<AppSpec>,
}

/// A key of a Secret in the agent's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKey {
    pub name: String,
    pub key: String,
}

/// The HTTP API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Api {
    /// The bearer token `POST /api/v1/...` requires; without it those requests are
    /// refused (403), reads stay open.
    pub token_secret: Option<SecretKey>,
}

/// The webhook receivers; each is enabled only with its secret.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhooks {
    pub github: Option<Receiver>,
    pub gitlab: Option<Receiver>,
    pub generic: Option<Receiver>,
}

/// One webhook receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    pub secret: SecretKey,
}

/// Defaults for every app (each field may be left out).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Defaults {
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub git_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub health_timeout: Duration,
    /// Prune past `maxPrunePercent` (default: the agent's `--force-prune`).
    pub force_prune: Option<bool>,
    /// Largest share (percent) of an app's objects one sync may prune (default: the
    /// agent's `--max-prune-percent`, 50).
    #[serde(deserialize_with = "percent")]
    pub max_prune_percent: Option<u8>,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            interval: Duration::from_mins(1),
            git_timeout: Duration::from_mins(1),
            health_timeout: Duration::from_mins(10),
            force_prune: None,
            max_prune_percent: None,
        }
    }
}

/// One app: where it lives in Git and how it is synced.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSpec {
    pub name: String,
    /// Clone URL (https, ssh) or local path.
    pub repo: String,
    /// Branch, tag, commit, or semver range over tags.
    #[serde(rename = "ref", default = "main")]
    pub reference: String,
    #[serde(default = "root")]
    pub path: PathBuf,
    /// Namespace for objects that name none (wins over the app's gitsync.yaml).
    pub namespace: Option<String>,
    #[serde(default = "yes")]
    pub prune: bool,
    /// Prune past `maxPrunePercent` (default: `defaults.forcePrune`).
    pub force_prune: Option<bool>,
    /// Largest share (percent) of the app's objects one sync may prune without
    /// `forcePrune` (default: `defaults.maxPrunePercent`).
    #[serde(default, deserialize_with = "percent")]
    pub max_prune_percent: Option<u8>,
    #[serde(default)]
    pub self_heal: bool,
    /// Take over fields other managers own (server-side apply force).
    #[serde(default)]
    pub force: bool,
    #[serde(default, deserialize_with = "some_duration")]
    pub interval: Option<Duration>,
    #[serde(default, deserialize_with = "some_duration")]
    pub git_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "some_duration")]
    pub health_timeout: Option<Duration>,
    /// `${VAR}` values (win over the app's gitsync.yaml).
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Directories of the repository (from its root) whose StrategyPolicy documents
    /// the app may use beside the built-in ones and its own, e.g. `[policies]`.
    #[serde(default)]
    pub policies: Vec<PathBuf>,
    /// A Secret in the agent's namespace with `token` (and `username`) for HTTPS, or
    /// `sshPrivateKey` and `knownHosts` for SSH.
    pub credentials: Option<Credentials>,
}

/// Where an app's Git credentials are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub secret: String,
}

fn main() -> String {
    "main".to_owned()
}

fn root() -> PathBuf {
    PathBuf::from(".")
}

fn yes() -> bool {
    true
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    gitsync_core::duration::parse(&text).map_err(serde::de::Error::custom)
}

fn some_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// A share in percent: 0 to 100.
fn percent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let value = u64::deserialize(d)?;
    match u8::try_from(value) {
        Ok(p) if p <= 100 => Ok(Some(p)),
        _ => Err(serde::de::Error::custom(format!(
            "a percentage is 0 to 100, got {value}"
        ))),
    }
}

/// The most history entries kept per app: each is up to a few KiB, and one app's
/// history is one ConfigMap (at most 1 MiB).
pub const MAX_HISTORY_LIMIT: usize = 200;

fn history_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let value = u64::deserialize(d)?;
    match usize::try_from(value) {
        Ok(n) if (1..=MAX_HISTORY_LIMIT).contains(&n) => Ok(Some(n)),
        _ => Err(serde::de::Error::custom(format!(
            "historyLimit is 1 to {MAX_HISTORY_LIMIT}, got {value}"
        ))),
    }
}

/// A configuration that cannot be used, with where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

impl Settings {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: file.clone(),
            source,
        })?;
        Self::parse(&file, &text)
    }

    /// Parses and validates `text` (named `file` in errors).
    pub fn parse(file: &str, text: &str) -> Result<Self, Error> {
        let settings: Self =
            gitsync_core::yaml::parse_typed(file, text).map_err(|e| Error::Parse(e.to_string()))?;
        settings.validate().map_err(|message| Error::Invalid {
            file: file.to_owned(),
            message,
        })?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), String> {
        if self.apps.is_empty() {
            return Err("no apps: list at least one under `apps`".into());
        }
        let mut names = BTreeSet::new();
        for app in &self.apps {
            check_name(&app.name)?;
            if !names.insert(app.name.as_str()) {
                return Err(format!("app {:?} is declared twice", app.name));
            }
            if app.repo.trim().is_empty() {
                return Err(format!("app {:?}: repo is empty", app.name));
            }
            if app.interval.is_some_and(|i| i.is_zero()) {
                return Err(format!("app {:?}: interval must be above zero", app.name));
            }
        }
        Ok(())
    }

    /// How often `app` is fetched.
    pub fn interval(&self, app: &AppSpec) -> Duration {
        app.interval.unwrap_or(self.defaults.interval)
    }

    /// The bound of each Git operation of `app`.
    pub fn git_timeout(&self, app: &AppSpec) -> Duration {
        app.git_timeout.unwrap_or(self.defaults.git_timeout)
    }

    /// How long a sync of `app` waits for health.
    pub fn health_timeout(&self, app: &AppSpec) -> Duration {
        app.health_timeout.unwrap_or(self.defaults.health_timeout)
    }

    /// Whether a sync prunes past its share (`flag`: the agent's `--force-prune`, when
    /// the defaults do not say).
    pub fn force_prune(&self, app: &AppSpec, flag: bool) -> bool {
        app.force_prune
            .or(self.defaults.force_prune)
            .unwrap_or(flag)
    }

    /// The largest share of an app one sync may prune (`flag`: the agent's
    /// `--max-prune-percent`, when the defaults do not say).
    pub fn max_prune_percent(&self, app: &AppSpec, flag: u8) -> u8 {
        app.max_prune_percent
            .or(self.defaults.max_prune_percent)
            .unwrap_or(flag)
    }
}

/// App names become label values and ConfigMap name parts: a DNS-1123 label.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 53
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "app name {name:?} must be lowercase letters, digits and '-', at most 53 characters"
        ))
    }
}

/// A random-ish share of `interval` (up to 10%) added to each wait so that many apps
/// (and many agents) do not fetch in lockstep.
pub fn jitter(interval: Duration, seed: &str) -> Duration {
    use std::hash::{BuildHasher as _, RandomState};
    let nanos = RandomState::new().hash_one((seed, crate::now_ms()));
    let max = interval.as_millis() / 10;
    if max == 0 {
        return Duration::ZERO;
    }
    let ms = u128::from(nanos) % max;
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "\
historyNamespace: ops
leaderElection: true
api:
  tokenSecret: {name: gitsync-api, key: token}
webhooks:
  github: {secret: {name: hooks, key: github}}
defaults: {interval: 2m, gitTimeout: 20s, healthTimeout: 5m}
apps:
  - name: demo
    repo: https://example.com/r.git
    path: example-repo
    namespace: demo
    selfHeal: true
    policies: [policies]
  - name: tools
    repo: git@example.com:org/tools.git
    ref: '~1.2'
    interval: 30s
    prune: false
    credentials: {secret: git-ssh}
";

    #[test]
    fn parses_every_field_with_defaults() {
        let s = Settings::parse("config.yaml", FULL).expect("parse");
        assert_eq!(s.history_namespace.as_deref(), Some("ops"));
        assert!(s.leader_election);
        assert_eq!(s.apps.len(), 2);
        let demo = &s.apps[0];
        assert_eq!(demo.reference, "main");
        assert!(demo.prune && demo.self_heal);
        assert_eq!(s.interval(demo), Duration::from_mins(2));
        assert_eq!(demo.policies, [PathBuf::from("policies")]);
        assert_eq!(s.git_timeout(demo), Duration::from_secs(20));
        let tools = &s.apps[1];
        assert_eq!(tools.reference, "~1.2");
        assert_eq!(tools.path, PathBuf::from("."));
        assert_eq!(s.interval(tools), Duration::from_secs(30));
        assert!(!tools.prune);
        assert_eq!(
            tools.credentials.as_ref().map(|c| c.secret.as_str()),
            Some("git-ssh")
        );
        assert!(s.webhooks.github.is_some() && s.webhooks.gitlab.is_none());
    }

    #[test]
    fn unknown_fields_and_bad_values_name_the_file_and_line() {
        let text = "apps:\n  - name: demo\n    repo: r\n    selfheal: true\n";
        let err = Settings::parse("config.yaml", text).expect_err("typo");
        let msg = err.to_string();
        assert!(msg.contains("config.yaml:4"), "{msg}");
        assert!(msg.contains("selfheal"), "{msg}");

        let text = "apps:\n  - name: demo\n    repo: r\n    interval: soon\n";
        let msg = Settings::parse("config.yaml", text)
            .expect_err("bad")
            .to_string();
        assert!(msg.contains("config.yaml:4"), "{msg}");
    }

    #[test]
    fn rejects_duplicate_and_invalid_names_and_no_apps() {
        let twice = "apps:\n  - {name: a, repo: r}\n  - {name: a, repo: s}\n";
        let msg = Settings::parse("c.yaml", twice)
            .expect_err("dup")
            .to_string();
        assert!(msg.contains("declared twice"), "{msg}");
        let bad = "apps:\n  - {name: Demo_App, repo: r}\n";
        assert!(Settings::parse("c.yaml", bad).is_err());
        let none = "apps: []\n";
        let msg = Settings::parse("c.yaml", none)
            .expect_err("empty")
            .to_string();
        assert!(msg.contains("no apps"), "{msg}");
    }

    #[test]
    fn pruning_guards_in_defaults_win_over_the_flags() {
        let text = "defaults: {maxPrunePercent: 30}\napps:\n  - {name: a, repo: r}\n";
        let s = Settings::parse("c.yaml", text).expect("parse");
        let a = &s.apps[0];
        assert_eq!(s.max_prune_percent(a, 50), 30);
        assert!(!s.force_prune(a, false) && s.force_prune(a, true));
        let text = "defaults: {maxPrunePercent: 30}\napps:\n  - {name: a, repo: r, maxPrunePercent: 80, forcePrune: false}\n";
        let s2 = Settings::parse("c.yaml", text).expect("parse");
        assert_eq!(s2.max_prune_percent(&s2.apps[0], 50), 80);
        assert!(!s2.force_prune(&s2.apps[0], true), "the app wins");

        let plain = Settings::parse("c.yaml", "apps:\n  - {name: a, repo: r}\n").expect("parse");
        assert_eq!(plain.max_prune_percent(&plain.apps[0], 50), 50);
        assert_eq!(plain.max_prune_percent(&plain.apps[0], 20), 20);
        assert_eq!(plain.history_limit, None);

        let text = "defaults: {forcePrune: false}\napps:\n  - {name: a, repo: r}\n";
        let s = Settings::parse("c.yaml", text).expect("parse");
        assert!(
            !s.force_prune(&s.apps[0], true),
            "the configuration wins over the flag"
        );
        assert_eq!(
            s.defaults.health_timeout,
            Duration::from_mins(10),
            "the other defaults keep their values"
        );
    }

    #[test]
    fn shares_above_100_and_history_limits_out_of_range_name_the_line() {
        for bad in ["101", "300"] {
            let text =
                format!("defaults:\n  maxPrunePercent: {bad}\napps:\n  - {{name: a, repo: r}}\n");
            let msg = Settings::parse("c.yaml", &text).expect_err(bad).to_string();
            assert!(
                msg.contains("c.yaml:2") && msg.contains("0 to 100"),
                "{msg}"
            );
        }

        for bad in ["0", "201"] {
            let text = format!("historyLimit: {bad}\napps:\n  - {{name: a, repo: r}}\n");
            let msg = Settings::parse("c.yaml", &text).expect_err(bad).to_string();
            assert!(
                msg.contains("c.yaml:1") && msg.contains("historyLimit"),
                "{msg}"
            );
        }
        let text = "historyLimit: 3\napps:\n  - {name: a, repo: r}\n";
        assert_eq!(
            Settings::parse("c.yaml", text)
                .expect("parse")
                .history_limit,
            Some(3)
        );
    }

    /// The configuration the README shows is one the agent takes.
    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("```yaml\nhistoryNamespace:")
            .expect("the README's configuration")
            + "```yaml\n".len();
        let end = start + readme[start..].find("```").expect("its end");
        let s = Settings::parse("README.md", &readme[start..end]).expect("parse");
        assert_eq!(s.history_limit, Some(50));
        assert_eq!(s.defaults.max_prune_percent, Some(50));
        assert_eq!(s.defaults.force_prune, Some(false));
    }

    #[test]
    fn jitter_stays_within_a_tenth() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_mins(1), "a") < Duration::from_secs(6));
        }
        assert_eq!(jitter(Duration::from_millis(5), "a"), Duration::ZERO);
    }
}
