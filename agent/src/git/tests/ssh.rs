//! SSH against a real `sshd` run as the current user on a loopback port, with its own
//! host key and an authorized client key. Skipped when sshd is not installed.

use std::io::Read as _;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

const SSHD: &str = "/usr/sbin/sshd";

/// A generated key pair: (private key file content, public key line).
fn keygen(dir: &Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
    let private = std::fs::read_to_string(&path).expect("key");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("pub");
    (private, public.trim().to_owned())
}

struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Sshd {
    /// Starts sshd with `host_key` (a file in `dir`) and `authorized` client keys.
    fn start(dir: &Path, host_key: &str, authorized: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        std::fs::write(dir.join("authorized_keys"), format!("{authorized}\n")).expect("keys");
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
             PidFile {pid}\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nLogLevel VERBOSE\n",
            host = dir.join(host_key).display(),
            keys = dir.join("authorized_keys").display(),
            pid = dir.join("sshd.pid").display(),
        );
        let config_path = dir.join("sshd_config");
        std::fs::write(&config_path, config).expect("config");
        let log = dir.join("sshd.log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(&config_path)
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .expect("sshd");
        let sshd = Self { child, port, log };
        sshd.wait_for_banner();
        sshd
    }

    /// Polls until sshd greets a connection, with a deadline.
    fn wait_for_banner(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("timeout");
                let mut banner = [0u8; 4];
                if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sshd did not start: {}", self.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn ssh_fetches_with_a_pinned_host_key_and_refuses_unknown_or_changed_ones() {
    if !Path::new(SSHD).exists() {
        eprintln!("skipping: sshd not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let cache = tempfile::tempdir().expect("tmp");
    let (_, host_pub) = keygen(dir.path(), "host_key");
    let (_, other_host_pub) = keygen(dir.path(), "other_host_key");
    let (client_key, client_pub) = keygen(dir.path(), "client_key");
    let (stranger_key, _) = keygen(dir.path(), "stranger_key");
    let sshd = Sshd::start(dir.path(), "host_key", &client_pub);

    let origin = dir.path().join("repo.git");
    let repo = Repository::init_bare(&origin).expect("init");
    commit(&repo, &[("app/a.yaml", "a: 1\n", false)], "one");
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        current_user(),
        sshd.port,
        origin.display()
    );
    let known = |public: &str| format!("[127.0.0.1]:{} {public}\n", sshd.port);
    let fetch = |private_key: &str, known_hosts: String| {
        let access = Access {
            auth: Auth::Ssh {
                private_key: private_key.to_owned(),
                passphrase: None,
                known_hosts,
            },
            timeout: Duration::from_secs(20),
            ca: None,
        };
        let source = Source {
            url: url.clone(),
            reference: "main".into(),
            path: PathBuf::from("app"),
            access,
        };
        Mirror::open(cache.path(), source).expect("open").fetch()
    };

    let rev = fetch(&client_key, known(&host_pub))
        .unwrap_or_else(|e| panic!("{e:?}\nsshd log:\n{}", sshd.log_text()));
    assert_eq!(rev.message, "one");

    let hashed = hash_known_hosts(dir.path(), &known(&host_pub));
    fetch(&client_key, hashed).expect("hashed known_hosts entry");

    let err = fetch(&client_key, known(&other_host_pub)).expect_err("changed");
    let expected = format!("host key for [127.0.0.1]:{} changed", sshd.port);
    assert!(err.to_string().starts_with(&expected), "{err}");
    assert!(!err.is_transient());

    let err = fetch(&client_key, String::new()).expect_err("empty known_hosts");
    let expected = format!("[127.0.0.1]:{} is not in known_hosts", sshd.port);
    assert!(err.to_string().starts_with(&expected), "{err}");

    let err = fetch(&stranger_key, known(&host_pub)).expect_err("unauthorized key");
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(!err.is_transient());
}

/// `known_hosts` with its host names hashed by `ssh-keygen -H`.
fn hash_known_hosts(dir: &Path, known_hosts: &str) -> String {
    let path = dir.join("known_hosts");
    std::fs::write(&path, known_hosts).expect("write");
    let status = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("ssh-keygen -H");
    assert!(status.success());
    let hashed = std::fs::read_to_string(&path).expect("read");
    assert!(hashed.starts_with("|1|"), "{hashed}");
    hashed
}
