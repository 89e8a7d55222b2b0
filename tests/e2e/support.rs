//! Running the daemon as a child process and talking to it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchboard_model::testing::MemoryPlatform;

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard")
}

/// A free loopback port (bound, then released).
pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A scratch directory for a config with two memory bridges and portals
/// `p0`, `p1`… joining channels `c0`, `c1`… on both sides.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub listen: SocketAddr,
    pub extra: String,
    pub bridge_extra: String,
}

impl Setup {
    pub fn new() -> Self {
        Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            listen: free_port(),
            extra: String::new(),
            bridge_extra: String::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("config.toml")
    }

    /// Writes the config file (again), with `portals` portals.
    pub fn write_config(&self, portals: usize) {
        let mut text = format!(
            "[store]\npath = \"store\"\n\n[http]\nlisten = \"{}\"\n\n[log]\nfilter = \"{}\"\n\n[relay]\ninitial_backoff = \"50ms\"\nmax_backoff = \"1s\"\ndrain_grace = \"30s\"\n{}\n",
            self.listen,
            log_filter(),
            self.extra
        );
        for side in ["a", "b"] {
            text.push_str(&format!(
                "[[bridge]]\nid = \"memory:{side}\"\ntype = \"memory\"\nstate_dir = \"platform-{side}\"\n{}\n",
                self.bridge_extra
            ));
        }
        for i in 0..portals {
            text.push_str(&format!(
                "[[portal]]\nname = \"p{i}\"\nmembers = [\"memory:a/c{i}\", \"memory:b/c{i}\"]\n\n"
            ));
        }
        std::fs::write(self.config_path(), text).expect("write config");
    }

    pub fn platform(&self, side: &str) -> MemoryPlatform {
        MemoryPlatform::open(
            format!("memory:{side}"),
            &self.path(&format!("platform-{side}")),
        )
        .expect("open platform")
    }

    /// Starts the daemon; stderr goes to `daemon.log` in the scratch dir.
    pub fn spawn(&self) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("daemon.log"))
            .expect("log file");
        let child = Command::new(binary())
            .args(["run", "--config"])
            .arg(self.config_path())
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn switchboard");
        Daemon {
            child,
            listen: self.listen,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }
}

/// The daemon's log filter: `info`, or SWITCHBOARD_E2E_LOG_FILTER (e.g.
/// `debug` to study a failure).
pub fn log_filter() -> String {
    std::env::var("SWITCHBOARD_E2E_LOG_FILTER").unwrap_or_else(|_| "info".into())
}

/// A running daemon.
pub struct Daemon {
    pub child: Child,
    pub listen: SocketAddr,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/ready` answers 200.
    pub fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("daemon exited before it was ready: {status}");
            }
            if http_get(self.listen, "/ready").is_some_and(|(code, _)| code == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "daemon not ready in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for exit and returns the code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "daemon did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET: (status, body), or None if nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// One HTTP/1.1 request: (status, body), or None when nothing answers.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    s.write_all(request.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// A minimal HTTP/1.1 POST with extra headers: the status, or None.
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<u16> {
    http_request(addr, "POST", path, headers, body).map(|(code, _)| code)
}

/// Polls `cond` until it holds or `limit` passes.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Texts the bridge posted in `channel`, in platform order.
pub fn relayed(p: &MemoryPlatform, channel: &str) -> Vec<String> {
    p.messages(channel)
        .into_iter()
        .filter(|m| m.by_bridge)
        .map(|m| m.text)
        .collect()
}

pub fn metric(addr: SocketAddr, name_and_labels: &str) -> Option<f64> {
    let (_, body) = http_get(addr, "/metrics")?;
    body.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
