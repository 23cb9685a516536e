//! The status page at `/`: one server-rendered HTML document, no script and no build
//! step, that refreshes itself. It lists every app with its sync, health and drift
//! state, the rollout running with its step and weight, and the last syncs with
//! their diffs (Secrets are masked before diffs reach the registry). Every text from
//! the outside (commit messages, error messages, diffs) is escaped.

use std::fmt::Write as _;

use crate::git::short_commit;
use crate::registry::{AgentStatus, AppStatus};
use crate::rollouts::Rollout;

/// Seconds between refreshes.
pub const REFRESH_SECONDS: u32 = 5;

const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d2330;background:#f7f8fa}\
h1{font-size:1.3rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:0}\
.meta{color:#5b6475;margin-bottom:1rem}\
section.app{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:1rem;margin:0 0 1rem}\
.badge{display:inline-block;padding:0 .5rem;border-radius:9px;font-size:.85rem;margin-left:.4rem}\
.Synced,.Healthy,.Succeeded,.Completed{background:#dcf5e3;color:#135c2c}\
.OutOfSync,.Progressing,.Syncing,.Paused,.Switched,.Stale,.Suspended{background:#fff1cc;color:#6b4e00}\
.Failed,.Degraded,.Aborted,.RolledBack,.HealthTimeout,.PruneRefused{background:#fde0e0;color:#8a1c1c}\
.Unknown{background:#e8eaef;color:#39414f}\
table{border-collapse:collapse;margin:.5rem 0}td,th{text-align:left;padding:.15rem .8rem .15rem 0}\
pre{background:#0f1420;color:#d8dee9;padding:.6rem;overflow-x:auto;font-size:12px}\
.error{color:#8a1c1c}progress{width:12rem}";

/// The page for `agent` and its `apps`.
pub fn render(agent: &AgentStatus, apps: &[&AppStatus]) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>gitsync: {} apps</title><style>{STYLE}</style></head><body>",
        apps.len()
    );
    let role = if agent.leader {
        "leader".to_owned()
    } else {
        format!(
            "follower of {}",
            agent.leader_identity.as_deref().unwrap_or("nobody yet")
        )
    };
    let _ = write!(
        out,
        "<h1>gitsync</h1><div class=\"meta\">replica {} ({}) · {} apps · refreshes every {REFRESH_SECONDS}s</div>",
        esc(&agent.identity),
        esc(&role),
        apps.len()
    );
    for app in apps {
        app_section(&mut out, app);
    }
    out.push_str("</body></html>");
    out
}

fn badge(state: &str) -> String {
    let class: String = state.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("<span class=\"badge {class}\">{}</span>", esc(state))
}

fn app_section(out: &mut String, app: &AppStatus) {
    let drift = if app.drift.is_empty() {
        "no drift".to_owned()
    } else {
        format!("{} drifted", app.drift.len())
    };
    let _ = write!(
        out,
        "<section class=\"app\" id=\"app-{name}\"><h2>{name}{sync}{health}{stale}{suspended}</h2>\
         <div class=\"meta\">{repo} @ {reference} · {path} · {drift}</div>",
        name = esc(&app.name),
        sync = badge(&app.sync),
        health = badge(&app.health),
        stale = if app.stale.is_some() {
            badge("Stale")
        } else {
            String::new()
        },
        suspended = if app.suspended.is_some() {
            badge("Suspended")
        } else {
            String::new()
        },
        repo = esc(&app.repo),
        reference = esc(&app.reference),
        path = esc(&app.path),
    );
    out.push_str("<table>");
    if let Some(rev) = &app.revision {
        let _ = write!(
            out,
            "<tr><th>Revision</th><td><code>{}</code> {} — {}</td></tr>",
            esc(short_commit(&rev.commit)),
            esc(&rev.message),
            esc(&rev.author)
        );
    }
    if let Some(s) = &app.suspended {
        let _ = write!(
            out,
            "<tr><th>Suspended</th><td>{} since {} (resume with <code>gitsync resume {}</code>)</td></tr>",
            esc(&s.reason),
            esc(&s.since),
            esc(&app.name)
        );
    }
    if let Some(stale) = &app.stale {
        let _ = write!(
            out,
            "<tr><th>Stale</th><td class=\"error\">{}</td></tr>",
            esc(stale)
        );
    }
    if let Some(e) = &app.last_error {
        let _ = write!(
            out,
            "<tr><th>Error</th><td class=\"error\">{}</td></tr>",
            esc(e)
        );
    }
    for d in &app.drift {
        let _ = write!(out, "<tr><th>Drift</th><td>{}</td></tr>", esc(d));
    }
    out.push_str("</table>");
    for rollout in app.rollouts.iter().filter(|r| r.in_progress()) {
        rollout_block(out, rollout);
    }
    if !app.recent.is_empty() {
        out.push_str("<h3>Last syncs</h3><table><tr><th>When</th><th>Commit</th><th>Trigger</th><th>Result</th><th>Changes</th></tr>");
        for s in &app.recent {
            let _ = write!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.at),
                esc(short_commit(&s.commit)),
                esc(&s.trigger),
                badge(&s.result),
                esc(&s.summary)
            );
        }
        out.push_str("</table>");
        for s in &app.recent {
            let _ = write!(
                out,
                "<details><summary>Diff of {} ({})</summary><pre>{}</pre></details>",
                esc(short_commit(&s.commit)),
                esc(&s.at),
                esc(&s.diff.text())
            );
        }
    }
    out.push_str("</section>");
}

fn rollout_block(out: &mut String, r: &Rollout) {
    let step = if r.steps > 0 {
        format!("step {} of {}", r.state.step + 1, r.steps)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<div class=\"rollout\"><strong>Rollout</strong> {workload}: {strategy} ({policy}) {phase} \
         {step} · weight {weight}% <progress max=\"100\" value=\"{progress}\">{progress}%</progress>",
        workload = esc(&r.workload),
        strategy = esc(&r.state.strategy),
        policy = esc(&r.state.policy),
        phase = badge(&format!("{:?}", r.state.phase)),
        step = esc(&step),
        weight = r.state.weight,
        progress = r.progress,
    );
    if let Some(w) = &r.waiting {
        let _ = write!(out, " · waiting for {}", esc(w));
    }
    if r.awaiting_promote && r.waiting.is_none() {
        out.push_str(" · waiting for <code>gitsync promote</code>");
    }
    out.push_str("</div>");
}

/// HTML-escapes text for element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{RecentSync, Revision};

    fn app() -> AppStatus {
        AppStatus {
            name: "demo".into(),
            repo: "https://example.com/r.git".into(),
            reference: "main".into(),
            path: "example-repo".into(),
            sync: "OutOfSync".into(),
            health: "Healthy".into(),
            revision: Some(Revision {
                commit: "0123456789abcdef".into(),
                author: "A <a@x>".into(),
                message: "bump <script>alert(1)</script>".into(),
            }),
            drift: vec!["Deployment/demo/web: .spec.replicas (kubectl-edit)".into()],
            recent: vec![RecentSync {
                commit: "0123456789abcdef".into(),
                trigger: "agent".into(),
                result: "Succeeded".into(),
                at: "2026-11-23T10:00:00Z".into(),
                summary: "0 created, 1 updated, 0 replaced, 0 pruned".into(),
                diff: "-  image: web:1\n+  image: web:2\n".into(),
            }],
            ..AppStatus::default()
        }
    }

    #[test]
    fn lists_states_and_escapes_everything_from_outside() {
        let html = render(&AgentStatus::default(), &[&app()]);
        assert!(html.contains("<meta http-equiv=\"refresh\""));
        assert!(html.contains("badge OutOfSync"));
        assert!(html.contains("1 drifted"));
        assert!(html.contains("bump &lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains("+  image: web:2"));
    }
}
