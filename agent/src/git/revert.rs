//! Rolling an app back in Git (`gitsync rollback APP --to REV`): one new commit on top
//! of the branch's tip whose tree is the tip's, except that the app's directory is
//! exactly what it was at REV; pushed to the branch like any other change, so Git stays
//! the source of truth. Also reads which commit a rollback (or a `git revert`) undid.
//!
//! The work happens in a non-bare clone in a scratch directory, reused across calls.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use git2::build::CheckoutBuilder;
use git2::{AutotagOption, Commit, ObjectType, Oid, PushOptions, Repository, Signature};

use super::transport::Session;
use super::{Access, Error, Result, cache_name, check_relative, is_root, is_sha, normalize};

/// Who the rollback commit is by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

/// What to roll back, where to, and how to reach the repository.
#[derive(Debug, Clone)]
pub struct Rollback {
    pub url: String,
    pub branch: String,
    /// The app's directory in the repository.
    pub path: PathBuf,
    /// Any commit-ish: a sha or its prefix, a tag, `HEAD~2` (relative to the tip).
    pub to: String,
    pub access: Access,
    pub author: Author,
}

/// The trailer naming the commit a rollback returns an app to.
const TRAILER: &str = "Gitsync-Rollback-To";

/// Commits the app's directory as it was at `rollback.to` on top of the branch and
/// pushes it; returns the new commit's sha. Errors with [`Error::AlreadyAt`] when the
/// directory already matches, and [`Error::Push`] (carrying the commands to do it by
/// hand) when the push fails.
pub fn revert_to(rollback: &Rollback, scratch: &Path) -> Result<String> {
    check_relative(&rollback.path)?;
    let dir = scratch.join(cache_name(&rollback.url));
    let repo = open_clone(&dir)?;
    let session = Session::open(&rollback.url, &rollback.access)?;
    let tip = fetch_tip(&repo, &session, rollback)?;
    let tip = repo
        .find_commit(tip)
        .map_err(scratch_error(&dir, "read the tip"))?;
    let target = repo
        .revparse_single(&rollback.to)
        .and_then(|o| o.peel_to_commit())
        .map_err(|_| Error::UnknownRef {
            url: rollback.url.clone(),
            reference: rollback.to.clone(),
        })?;
    let entry = app_entry(&target, &rollback.path)?;
    let tree = spliced_tree(&repo, &tip, entry, &rollback.path)
        .map_err(scratch_error(&dir, "build the tree"))?;
    if tree == tip.tree_id() {
        return Err(Error::AlreadyAt {
            path: rollback.path.display().to_string(),
            revision: rollback.to.clone(),
        });
    }
    let message = Message::new(rollback, &target);
    let commit = commit(&repo, rollback, &tip, tree, &message.text())
        .map_err(scratch_error(&dir, "commit"))?;
    push(&repo, &session, rollback).map_err(|reason| Error::Push {
        url: rollback.url.clone(),
        branch: rollback.branch.clone(),
        reason,
        commands: message.commands(rollback),
    })?;
    Ok(commit.to_string())
}

fn scratch_error(dir: &Path, action: &'static str) -> impl Fn(git2::Error) -> Error {
    let path = dir.display().to_string();
    move |source| Error::Scratch {
        action,
        path: path.clone(),
        source,
    }
}

fn open_clone(dir: &Path) -> Result<Repository> {
    Repository::open(dir)
        .or_else(|_| Repository::init(dir))
        .map_err(scratch_error(dir, "open"))
}

/// Fetches the branch (and tags, so `--to v1.2` resolves) and points the local branch
/// and HEAD at its tip, so `HEAD~2` counts from there.
fn fetch_tip(repo: &Repository, session: &Session<'_>, rollback: &Rollback) -> Result<Oid> {
    let branch = &rollback.branch;
    let fetch_error = |source| Error::Fetch {
        url: rollback.url.clone(),
        reference: branch.clone(),
        source,
    };
    let mut remote = repo.remote_anonymous(session.url()).map_err(fetch_error)?;
    let mut options = session.fetch_options();
    options.download_tags(AutotagOption::None);
    let refspecs = [
        format!("+refs/heads/{branch}:refs/remotes/origin/{branch}"),
        "+refs/tags/*:refs/tags/*".to_owned(),
    ];
    remote
        .fetch(&refspecs, Some(&mut options), None)
        .map_err(|e| session.error(e, fetch_error))?;
    let tip = repo
        .refname_to_id(&format!("refs/remotes/origin/{branch}"))
        .map_err(|_| Error::UnknownRef {
            url: rollback.url.clone(),
            reference: branch.clone(),
        })?;
    let local = format!("refs/heads/{branch}");
    repo.reference(&local, tip, true, "gitsync rollback: branch tip")
        .and_then(|_| repo.set_head(&local))
        .map_err(scratch_error(repo.path(), "reset the branch"))?;
    Ok(tip)
}

/// The id and file mode of the app's path in `target`.
fn app_entry(target: &Commit<'_>, path: &Path) -> Result<(Oid, i32)> {
    if is_root(path) {
        return Ok((target.tree_id(), 0o040_000));
    }
    let entry = target
        .tree()
        .and_then(|tree| tree.get_path(path))
        .map_err(|_| Error::MissingPath {
            path: path.display().to_string(),
            commit: target.id().to_string(),
        })?;
    Ok((entry.id(), entry.filemode()))
}

/// The tip's tree with the app's path replaced by `entry`.
fn spliced_tree(
    repo: &Repository,
    tip: &Commit<'_>,
    entry: (Oid, i32),
    path: &Path,
) -> Result<Oid, git2::Error> {
    if is_root(path) {
        return Ok(entry.0);
    }
    let parts: Vec<String> = normalize(path)
        .unwrap_or_default()
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    replace(repo, Some(&tip.tree()?), &parts, entry)
}

/// Writes `tree` with the entry at `parts` set to `entry`, creating directories.
fn replace(
    repo: &Repository,
    tree: Option<&git2::Tree<'_>>,
    parts: &[String],
    entry: (Oid, i32),
) -> Result<Oid, git2::Error> {
    let mut builder = repo.treebuilder(tree)?;
    match parts {
        [] => return Ok(entry.0),
        [name] => {
            builder.insert(name, entry.0, entry.1)?;
        }
        [name, rest @ ..] => {
            let sub = tree
                .and_then(|t| t.get_name(name))
                .filter(|e| e.kind() == Some(ObjectType::Tree))
                .map(|e| repo.find_tree(e.id()))
                .transpose()?;
            let id = replace(repo, sub.as_ref(), rest, entry)?;
            builder.insert(name, id, 0o040_000)?;
        }
    }
    builder.write()
}

fn commit(
    repo: &Repository,
    rollback: &Rollback,
    tip: &Commit<'_>,
    tree: Oid,
    message: &str,
) -> Result<Oid, git2::Error> {
    let signature = Signature::now(&rollback.author.name, &rollback.author.email)?;
    let tree = repo.find_tree(tree)?;
    let branch = format!("refs/heads/{}", rollback.branch);
    let commit = repo.commit(
        Some(&branch),
        &signature,
        &signature,
        message,
        &tree,
        &[tip],
    )?;
    repo.checkout_head(Some(CheckoutBuilder::new().force()))?;
    Ok(commit)
}

/// Pushes the branch; the error is why it failed (network, auth, or the server's
/// refusal, such as a hook).
fn push(repo: &Repository, session: &Session<'_>, rollback: &Rollback) -> Result<(), String> {
    let refused = RefCell::new(None);
    let mut callbacks = session.callbacks();
    callbacks.push_update_reference(|_, status| {
        if let Some(status) = status {
            *refused.borrow_mut() = Some(status.to_owned());
        }
        Ok(())
    });
    let mut options = PushOptions::new();
    options
        .remote_callbacks(callbacks)
        .proxy_options(Session::proxy_options());
    let branch = format!("refs/heads/{}", rollback.branch);
    let pushed = repo
        .remote_anonymous(session.url())
        .and_then(|mut remote| remote.push(&[format!("{branch}:{branch}")], Some(&mut options)));
    drop(options);
    if let Err(e) = pushed {
        let error = session.error(e, |source| Error::Network {
            url: rollback.url.clone(),
            source,
        });
        return Err(chain(&error));
    }
    match refused.into_inner() {
        Some(status) => Err(format!("the server refused the update: {status}")),
        None => Ok(()),
    }
}

/// An error and its sources, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The rollback commit's message parts.
struct Message {
    subject: String,
    body: String,
    target: String,
}

impl Message {
    fn new(rollback: &Rollback, target: &Commit<'_>) -> Self {
        let full = target.id().to_string();
        let short = &full[..7];
        let path = rollback.path.display();
        let summary = target.summary().ok().flatten().unwrap_or_default();
        Self {
            subject: format!("Roll back {path} to {short}"),
            body: format!("{short} {summary}\n\n{TRAILER}: {full}"),
            target: full,
        }
    }

    fn text(&self) -> String {
        format!("{}\n\n{}\n", self.subject, self.body)
    }

    /// The same rollback with the git command line.
    fn commands(&self, rollback: &Rollback) -> String {
        by_hand(
            rollback,
            None,
            &self.target,
            &format!("{} -m {}", quote(&self.subject), quote(&self.body)),
        )
    }
}

/// A rollback with the git command line when gitsync could not fetch the repository
/// itself (no credentials for it on this machine, say): the person's git resolves REV
/// in a fresh clone and the commit carries the same trailer.
pub fn commands_by_hand(rollback: &Rollback) -> String {
    let subject = format!("Roll back {} to {}", rollback.path.display(), rollback.to);
    let resolve = format!(
        "to=$(git rev-parse --verify {})",
        quote(&format!("{}^{{commit}}", rollback.to))
    );
    by_hand(
        rollback,
        Some(&resolve),
        "\"$to\"",
        &format!("{} -m \"{TRAILER}: $to\"", quote(&subject)),
    )
}

/// Clone, check out the branch, run `prepare` (if any: REV may be relative to the
/// branch's tip), replace the app's directory with `target`'s (a shell word), commit
/// with `message` (the arguments after the first `-m`), push.
fn by_hand(rollback: &Rollback, prepare: Option<&str>, target: &str, message: &str) -> String {
    let path = quote(&rollback.path.display().to_string());
    let branch = quote(&rollback.branch);
    [
        Some(format!(
            "git clone {} gitsync-rollback",
            quote(&rollback.url)
        )),
        Some("cd gitsync-rollback".to_owned()),
        Some(format!("git checkout {branch}")),
        prepare.map(str::to_owned),
        Some(format!("git rm -r -q --ignore-unmatch -- {path}")),
        Some(format!("git checkout {target} -- {path}")),
        Some(format!("git commit -m {message}")),
        Some(format!("git push origin HEAD:{branch}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("\n")
}

/// Quotes `text` for a POSIX shell when it needs it.
fn quote(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-~^".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The commit a message rolls back to: its `Gitsync-Rollback-To:` trailer, or the sha
/// in a `git revert` message's `This reverts commit <sha>.`
pub fn rollback_target(message: &str) -> Option<String> {
    let trailer = message.lines().rev().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let value = value.trim();
        (key.trim().eq_ignore_ascii_case(TRAILER) && is_sha(value)).then_some(value)
    });
    let reverted = || {
        message.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("This reverts commit ")?;
            let sha = rest.split(|c: char| !c.is_ascii_hexdigit()).next()?;
            is_sha(sha).then_some(sha)
        })
    };
    trailer.or_else(reverted).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_target_reads_trailers_and_revert_messages() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let ours = format!("Roll back app to 0123456\n\n0123456 one\n\n{TRAILER}: {sha}\n");
        assert_eq!(rollback_target(&ours).as_deref(), Some(sha));
        let lower = format!("x\n\ngitsync-rollback-to:   {sha}");
        assert_eq!(rollback_target(&lower).as_deref(), Some(sha));
        let revert = format!("Revert \"one\"\n\nThis reverts commit {sha}.\n");
        assert_eq!(rollback_target(&revert).as_deref(), Some(sha));
        let merge = format!("Revert\n\nThis reverts commit {sha}, reversing\nchanges.");
        assert_eq!(rollback_target(&merge).as_deref(), Some(sha));
        assert_eq!(rollback_target("fix: thing\n\nThis reverts nothing."), None);
        assert_eq!(rollback_target(&format!("{TRAILER}: not-a-sha")), None);
    }

    #[test]
    fn quoting_keeps_plain_words_and_wraps_the_rest() {
        assert_eq!(quote("apps/web"), "apps/web");
        assert_eq!(quote("it's here"), r"'it'\''s here'");
        assert_eq!(quote(""), "''");
    }
}
