//! The single-tenant install (deploy/namespaced): an agent confined with `--namespaces`
//! to the one namespace its Role covers. Between the agent and the local cluster sits a
//! proxy that answers 403 Forbidden, as the API server's RBAC would for a Role in
//! `demo` and the agent's own namespace, to every request outside them (discovery
//! apart); the agent must sync, prune and report with that alone, and refuse an
//! object outside its namespaces before writing anything.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{Agent, Cluster, commit_all, eventually, free_port, http, write_files};

const WAIT: Duration = Duration::from_mins(1);

/// The namespaces the agent's Roles cover.
const ALLOWED: [&str; 2] = ["demo", "gitsync-system"];

/// Whether a Role-only agent may make this request: discovery, and anything inside
/// the allowed namespaces (but not the Namespace objects themselves).
fn permitted(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let namespaced = match parts.as_slice() {
        ["api", "v1", "namespaces", ns, _, ..] | ["apis", _, _, "namespaces", ns, _, ..] => {
            Some(*ns)
        }
        _ => None,
    };
    if let Some(ns) = namespaced {
        return ALLOWED.contains(&ns);
    }
    // Discovery: /api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>, /version.
    matches!(
        parts.as_slice(),
        ["version" | "api" | "apis"] | ["api" | "apis", _] | ["apis", _, _]
    )
}

/// A forwarding proxy that refuses what [`permitted`] does not allow, recording it.
struct RbacProxy {
    port: u16,
    forbidden: Arc<Mutex<Vec<String>>>,
}

impl RbacProxy {
    fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let forbidden = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&forbidden);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, log) = (upstream.clone(), Arc::clone(&log));
                std::thread::spawn(move || relay(client, &upstream, &log));
            }
        });
        Self { port, forbidden }
    }

    fn forbidden(&self) -> Vec<String> {
        self.forbidden.lock().expect("log").clone()
    }
}

/// One request: refused with a 403 `Status`, or passed on with `Connection: close` so
/// that the next request comes on a new connection and is judged too.
fn relay(client: TcpStream, upstream: &str, forbidden: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let end = line == "\r\n";
        if !line.to_ascii_lowercase().starts_with("connection:") {
            head.push(line);
        }
        if end {
            break;
        }
    }
    let request = head.first().cloned().unwrap_or_default();
    let mut words = request.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let mut client = client;
    if !permitted(path) {
        forbidden
            .lock()
            .expect("log")
            .push(format!("{method} {path}"));
        let body = format!(
            r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"forbidden: {method} {path}","reason":"Forbidden","code":403}}"#
        );
        let reply = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(reply.as_bytes());
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let last = head.len() - 1;
    head.insert(last, "Connection: close\r\n".into());
    if server.write_all(head.concat().as_bytes()).is_err() {
        return;
    }
    // The request body (whatever the reader buffered, then the rest), while the answer
    // streams back (a watch answers for as long as it lasts).
    let mut to_server = server.try_clone().expect("clone");
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut to_server);
    });
    let mut answer = [0u8; 16 * 1024];
    while let Ok(n) = server.read(&mut answer) {
        if n == 0 || client.write_all(&answer[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

fn config_map(name: &str, namespace: Option<&str>) -> String {
    let namespace = namespace.map_or(String::new(), |ns| format!("  namespace: {ns}\n"));
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{namespace}data:\n  v: \"1\"\n"
    )
}

fn app(base: &str) -> serde_json::Value {
    let (_, body) = http(base, "GET", "/api/v1/apps/demo");
    serde_json::from_str(&body).unwrap_or_default()
}

#[test]
fn a_confined_agent_syncs_prunes_and_refuses_with_namespaced_rights_only() {
    let cluster = Cluster::start();
    let (code, body) = crate::support::http_json(
        &cluster.url,
        "POST",
        "/api/v1/namespaces",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"demo"}}"#,
    );
    assert_eq!(code, 201, "{body}");
    let proxy = RbacProxy::start(&cluster.url);
    let work = tempfile::tempdir().expect("tmp");
    let kubeconfig = work.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n",
            proxy.port
        ),
    )
    .expect("kubeconfig");

    let repo = work.path().join("repo");
    write_files(
        &repo,
        &[
            ("app/a.yaml", &config_map("a", None)),
            ("app/b.yaml", &config_map("b", Some("demo"))),
        ],
    );
    commit_all(&repo, "two config maps");
    let config = work.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "apps:\n  - {{name: demo, repo: '{}', path: app, namespace: demo, interval: 1s}}\n",
            repo.display()
        ),
    )
    .expect("config");
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let agent = Agent::start(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--listen",
        &listen,
        "--cache-dir",
        work.path().join("cache").to_str().expect("utf-8"),
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--namespaces",
        "demo",
    ]);
    let object = |name: &str| cluster.get(&format!("/api/v1/namespaces/demo/configmaps/{name}"));
    eventually(WAIT, "both synced", || {
        (object("a").is_some() && object("b").is_some() && app(&base)["sync"] == "Synced")
            .then_some(())
    });

    // Pruning lists the app's objects in its namespace only.
    std::fs::remove_file(repo.join("app/b.yaml")).expect("rm");
    commit_all(&repo, "b goes");
    eventually(WAIT, "b pruned", || object("b").is_none().then_some(()));

    // An object outside the namespace, and a cluster-scoped one: the sync fails before
    // any write, naming them; what was synced stays.
    write_files(
        &repo,
        &[
            (
                "app/a.yaml",
                &config_map("a", None).replace("\"1\"", "\"2\""),
            ),
            ("app/elsewhere.yaml", &config_map("x", Some("kube-system"))),
            (
                "app/ns.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n",
            ),
        ],
    );
    commit_all(&repo, "reaches out");
    let failed = eventually(WAIT, "the sync refused", || {
        let a = app(&base);
        a["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("outside the namespaces gitsync is confined to"))
            .then_some(a)
    });
    let error = failed["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("ConfigMap/kube-system/x") || error.contains("Namespace/other"),
        "{failed}"
    );
    assert_eq!(object("a").expect("a")["data"]["v"], "1", "nothing written");
    assert!(cluster.get("/api/v1/namespaces/other").is_none());
    assert!(
        cluster
            .get("/api/v1/namespaces/kube-system/configmaps/x")
            .is_none()
    );

    // All of it without a request a Role-only agent would be refused, except reading
    // its own Namespace (tolerated: the install creates it).
    let forbidden = proxy.forbidden();
    assert!(
        forbidden
            .iter()
            .all(|r| r == "GET /api/v1/namespaces/gitsync-system"),
        "{forbidden:#?}"
    );
    drop(agent);
}
