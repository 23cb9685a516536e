//! Watch: a stream of `{"type": …, "object": …}` lines per change (ADDED, MODIFIED,
//! DELETED), BOOKMARK events when asked, resuming after a resourceVersion from the
//! store's recent events, and an ERROR event with a 410 `Status` when that version is
//! older than what is retained, as the API server does. Bookmarks, when allowed, come
//! every minute and two seconds before the watch times out, as the watch cache sends
//! them.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::api::{ListOptions, Target};
use crate::store::{Key, Store, Stored, parse};

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change in the store.
#[derive(Debug)]
pub struct Event {
    pub resource_version: u64,
    pub key: Key,
    pub kind: EventType,
    /// The object as stored (see [`crate::store::parse`]).
    pub object: Stored,
    /// The object before a modification (to see it leave a label selector).
    pub previous: Option<Stored>,
}

/// Watch options from the query.
#[derive(Debug, Clone)]
pub struct Options {
    pub list: ListOptions,
    pub resource_version: Option<u64>,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub bookmark_every: Duration,
}

/// What one watcher sees of an event, if anything.
fn view(event: &Event, target: &Target, options: &ListOptions) -> Option<Value> {
    let res = target.resource;
    if event.key.group != res.group || event.key.plural != res.plural {
        return None;
    }
    if res.namespaced
        && let Some(ns) = &target.namespace
        && &event.key.namespace != ns
    {
        return None;
    }
    let matches = |o: &Value| options.labels.matches(o) && options.fields.matches(o);
    let object = parse(&event.object);
    let now = matches(&object);
    let before = event.previous.as_ref().is_some_and(|p| matches(&parse(p)));
    let kind = match (event.kind, before, now) {
        (EventType::Modified, true, false) => EventType::Deleted,
        (EventType::Modified, false, true) => EventType::Added,
        (_, _, false) => return None,
        (kind, _, true) => kind,
    };
    Some(json!({"type": kind.as_str(), "object": object}))
}

/// Starts a watch: the response body streaming events until the timeout.
pub fn start(store: &Store, target: Target, options: Options) -> Body {
    let mut initial: Vec<Value> = Vec::new();
    let since = match options.resource_version {
        // No version (or "0"): the current state as ADDED events, then changes.
        None | Some(0) => {
            let ns = if target.resource.namespaced {
                target.namespace.as_deref()
            } else {
                None
            };
            for object in store.list(target.resource.group, target.resource.plural, ns) {
                if options.list.labels.matches(&object) && options.list.fields.matches(&object) {
                    initial.push(json!({"type": "ADDED", "object": object}));
                }
            }
            store.resource_version()
        }
        Some(rv) => rv,
    };
    let (replay, receiver) = store.watch_from(since);
    let rv = store.resource_version();
    let Some(events) = replay else {
        let gone = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {since} ({rv})"),
            "reason": "Expired", "code": 410});
        initial.push(json!({"type": "ERROR", "object": gone}));
        return lines(initial, None, target, options, rv);
    };
    initial.extend(
        events
            .iter()
            .filter_map(|e| view(e, &target, &options.list)),
    );
    lines(initial, Some(receiver), target, options, rv)
}

struct State {
    pending: std::vec::IntoIter<Value>,
    receiver: Option<tokio::sync::broadcast::Receiver<Arc<Event>>>,
    target: Target,
    options: Options,
    deadline: tokio::time::Instant,
    last_rv: u64,
    bookmark: tokio::time::Interval,
    /// The bookmark just before the deadline is still to be sent.
    final_bookmark: bool,
}

/// How long before its deadline a watch gets its last bookmark.
const FINAL_BOOKMARK: Duration = Duration::from_secs(2);

fn lines(
    initial: Vec<Value>,
    receiver: Option<tokio::sync::broadcast::Receiver<Arc<Event>>>,
    target: Target,
    options: Options,
    rv: u64,
) -> Body {
    let first = tokio::time::Instant::now() + options.bookmark_every;
    let mut bookmark = tokio::time::interval_at(first, options.bookmark_every);
    bookmark.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let final_bookmark = options.bookmarks && options.timeout > FINAL_BOOKMARK;
    let state = State {
        pending: initial.into_iter(),
        receiver,
        deadline: tokio::time::Instant::now() + options.timeout,
        target,
        options,
        last_rv: rv,
        bookmark,
        final_bookmark,
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        if let Some(line) = state.pending.next() {
            return Some((Ok::<_, std::io::Error>(encode(&line)), state));
        }
        loop {
            let receiver = state.receiver.as_mut()?;
            let final_at = state
                .deadline
                .checked_sub(FINAL_BOOKMARK)
                .unwrap_or(state.deadline);
            tokio::select! {
                () = tokio::time::sleep_until(state.deadline) => return None,
                () = tokio::time::sleep_until(final_at), if state.final_bookmark => {
                    state.final_bookmark = false;
                    let line = bookmark_line(&state);
                    return Some((Ok(encode(&line)), state));
                }
                _ = state.bookmark.tick(), if state.options.bookmarks => {
                    let line = bookmark_line(&state);
                    return Some((Ok(encode(&line)), state));
                }
                received = receiver.recv() => match received {
                    Ok(event) => {
                        state.last_rv = event.resource_version;
                        if let Some(line) = view(&event, &state.target, &state.options.list) {
                            return Some((Ok(encode(&line)), state));
                        }
                    }
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return None,
                },
            }
        }
    });
    Body::from_stream(stream)
}

fn bookmark_line(state: &State) -> Value {
    let res = state.target.resource;
    json!({"type": "BOOKMARK", "object": {
        "kind": res.kind, "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": state.last_rv.to_string()}}})
}

fn encode(line: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(line).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
