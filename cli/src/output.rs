//! Everything the CLI prints: results to stdout (text or JSON), progress and errors to
//! stderr. The only module allowed to print.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal as _, Write as _};

use gitsync_core::diff::{Action, ObjectDiff};
use serde::Serialize;

use crate::args::Color;

/// Prints a value as pretty JSON on stdout (a closed pipe, as `| head` leaves it, is
/// not an error).
pub fn json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(mut text) => {
            text.push('\n');
            self::text(&text);
        }
        Err(e) => eprintln!("error: cannot encode output: {e}"),
    }
}

/// Prints text as is on stdout.
pub fn text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Prints a line on stdout (a closed pipe is not an error, as for [`text`]).
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Prints an error and its causes on stderr.
pub fn error(error: &anyhow::Error) {
    eprintln!("error: {error:#}");
}

/// Prints a progress or notice line on stderr.
pub fn note(text: &str) {
    eprintln!("{text}");
}

/// True when stderr is a terminal (progress lines are shown only then).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// True when stdout is a terminal (progress bars are drawn only then).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Whether to color stdout.
pub fn use_color(choice: Color) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// One object's diff: a header naming kind/namespace/name and the action, then the
/// unified diff (colored when asked).
pub fn object_diff(diff: &ObjectDiff, color: bool) -> String {
    let mut out = String::new();
    let source = diff
        .source
        .as_ref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let header = format!("=== {} {}{}", diff.action.as_str(), diff.id.short(), source);
    if color {
        out.push_str(&format!("{BOLD}{header}{RESET}\n"));
    } else {
        out.push_str(&header);
        out.push('\n');
    }
    if diff.action == Action::Unchanged {
        return out;
    }
    for line in diff.unified().lines() {
        let painted = if !color {
            line.to_owned()
        } else if line.starts_with("+++") || line.starts_with("---") {
            format!("{BOLD}{line}{RESET}")
        } else if line.starts_with('+') {
            format!("{GREEN}{line}{RESET}")
        } else if line.starts_with('-') {
            format!("{RED}{line}{RESET}")
        } else if line.starts_with("@@") {
            format!("{CYAN}{line}{RESET}")
        } else {
            line.to_owned()
        };
        out.push_str(&painted);
        out.push('\n');
    }
    out
}
