//! A throw-away Synapse homeserver for tests and `switchboard demo` (feature
//! `testing`), and a small client-server helper that drives it as a person
//! would.
//!
//! [`Synapse::start`] installs Synapse 1.163.2 into a venv when it is missing
//! (`scripts/synapse.sh install`, once per process), then starts one in a
//! fresh temporary directory with its own free loopback port, sqlite database
//! and registration shared secret. [`Synapse::restart`] stops and starts it
//! again on the same port and database; dropping it stops it. Set
//! `SWITCHBOARD_SYNAPSE_KEEP=1` to keep the directory (config, logs,
//! database) after the test.
//!
//! [`MatrixUser`] is a person (or the application service, or one of its
//! ghosts through identity assertion) talking to the homeserver with plain
//! `reqwest` and JSON: send, redact, react, join, invite, read messages,
//! upload.
//!
//! The start, stop and restart calls block for a second or two (they run the
//! script); in an async test that serves the application service from the
//! same runtime, use the `_async` variants so the runtime keeps serving.
//! [`Synapse::start_within`] never installs anything and gives up after a
//! deadline (the demo uses it: Synapse is optional there).

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The Synapse version the script installs.
pub const SYNAPSE_VERSION: &str = "1.163.2";

/// What can go wrong starting or talking to the test homeserver. Never holds
/// a token or the shared secret.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Synapse could not be installed (no python3, no venv module, no PyPI).
    #[error(
        "cannot install Synapse {SYNAPSE_VERSION} for the tests (scripts/synapse.sh install): {0}"
    )]
    Install(String),
    /// `scripts/synapse.sh` failed; its stderr (with the end of Synapse's
    /// logs) is included.
    #[error("`scripts/synapse.sh {command}` failed ({status}):\n{stderr}")]
    Script {
        /// The subcommand and its arguments.
        command: String,
        /// How it exited.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A local file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The request did not get an answer (connection refused, timeout…).
    #[error("{method} {path}: {source}")]
    Http {
        /// The HTTP method.
        method: String,
        /// The request path (no query, no token).
        path: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The homeserver answered with an error.
    #[error("{method} {path}: HTTP {status} {errcode}: {error}")]
    Matrix {
        /// The HTTP method.
        method: String,
        /// The request path (no query, no token).
        path: String,
        /// The HTTP status.
        status: u16,
        /// The Matrix `errcode` (`M_EXCLUSIVE`, …), empty when the body had none.
        errcode: String,
        /// The Matrix `error` text, or the start of a non-JSON body.
        error: String,
    },
    /// An answer that was not what the API promises.
    #[error("{context}: unexpected answer: {detail}")]
    Unexpected {
        /// What was being done.
        context: String,
        /// What was wrong.
        detail: String,
    },
}

impl HarnessError {
    /// The Matrix `errcode` when the homeserver answered with an error.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            HarnessError::Matrix { errcode, .. } => Some(errcode),
            _ => None,
        }
    }

    /// The HTTP status when the homeserver answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            HarnessError::Matrix { status, .. } => Some(*status),
            _ => None,
        }
    }

    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }

    fn unexpected(context: impl Into<String>, detail: impl Into<String>) -> Self {
        HarnessError::Unexpected {
            context: context.into(),
            detail: detail.into(),
        }
    }
}

type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// The workspace's root: the first ancestor of this crate holding
/// `scripts/synapse.sh`.
fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("scripts/synapse.sh").is_file())
        .unwrap_or(manifest)
        .to_path_buf()
}

fn script() -> PathBuf {
    repo_root().join("scripts/synapse.sh")
}

/// Where the venv is: `SWITCHBOARD_SYNAPSE_VENV` (relative paths from the
/// repository's root, as the script takes them) or `<repo>/target/synapse-venv`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("SWITCHBOARD_SYNAPSE_VENV") {
        Some(dir) if !dir.is_empty() => repo_root().join(dir),
        _ => repo_root().join("target/synapse-venv"),
    }
}

/// Whether the pinned Synapse is installed in the venv (its dist-info is
/// there; the script writes it last).
fn synapse_installed() -> bool {
    let venv = venv_dir();
    if !venv.join("bin/python").exists() {
        return false;
    }
    let dist_info = format!("matrix_synapse-{SYNAPSE_VERSION}.dist-info");
    let Ok(libs) = std::fs::read_dir(venv.join("lib")) else {
        return false;
    };
    libs.flatten().any(|python| {
        python
            .path()
            .join("site-packages")
            .join(&dist_info)
            .is_dir()
    })
}

/// Whether Synapse can be started without installing anything: the script
/// is where this crate was built from and the venv holds the pinned Synapse.
pub fn installed() -> bool {
    script().is_file() && synapse_installed()
}

/// Runs `scripts/synapse.sh install` once per process when the venv lacks
/// the pinned Synapse.
fn ensure_installed() -> Result<()> {
    if synapse_installed() {
        return Ok(());
    }
    static INSTALL: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALL
        .get_or_init(|| {
            let command = script_command(&["install"]);
            let output = run_sync(command, "install").map_err(|e| e.to_string())?;
            check_output("install", output)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(HarnessError::Install)
}

fn script_command(args: &[&str]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(script())
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn run_sync(mut command: Command, what: &str) -> Result<Output> {
    command
        .output()
        .map_err(|e| HarnessError::io(format!("running scripts/synapse.sh {what}"), e))
}

async fn run_async(command: Command, what: &str) -> Result<Output> {
    tokio::process::Command::from(command)
        .output()
        .await
        .map_err(|e| HarnessError::io(format!("running scripts/synapse.sh {what}"), e))
}

/// The script's stdout when it succeeded, else a [`HarnessError::Script`].
fn check_output(what: &str, output: Output) -> Result<String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(HarnessError::Script {
            command: what.to_owned(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// What `scripts/synapse.sh start` prints.
#[derive(Debug, serde::Deserialize)]
struct StartInfo {
    base_url: String,
    server_name: String,
    port: u16,
    shared_secret_file: PathBuf,
}

fn parse_start(stdout: &str) -> Result<StartInfo> {
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with('{'))
        .ok_or_else(|| HarnessError::unexpected("scripts/synapse.sh start", "no JSON line"))?;
    serde_json::from_str(line)
        .map_err(|e| HarnessError::unexpected("scripts/synapse.sh start", e.to_string()))
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// A throw-away Synapse: its own directory, port, database and shared
/// secret. Stopped when dropped.
#[derive(Debug)]
pub struct Synapse {
    /// The client-server API's base URL, `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The server name, `localhost:<port>`: user ids are `@name:localhost:<port>`.
    pub server_name: String,
    /// The loopback port it listens on (kept across restarts).
    pub port: u16,
    /// Its directory: `homeserver.yaml`, `homeserver.log`, the database.
    pub dir: PathBuf,
    /// The file holding the registration shared secret.
    pub shared_secret_file: PathBuf,
    registrations: Vec<PathBuf>,
    running: bool,
    http: reqwest::Client,
    // Deleted when the harness goes (after Drop has stopped Synapse).
    _tempdir: Option<tempfile::TempDir>,
}

impl Synapse {
    /// Whether Synapse can be run here: it is installed already, or python3
    /// can create venvs to install it into. When false, [`Synapse::start`]
    /// fails with the reason.
    pub fn available() -> bool {
        if synapse_installed() {
            return true;
        }
        Command::new("python3")
            .args(["-c", "import venv, ensurepip"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Installs Synapse if needed, then starts one in a fresh temporary
    /// directory with these application service registration files.
    pub fn start(registrations: &[PathBuf]) -> Result<Synapse> {
        ensure_installed()?;
        let (tempdir, dir) = new_dir()?;
        let args = start_args(&dir, registrations);
        let output = run_sync(script_command(&as_strs(&args)), "start")?;
        let info = parse_start(&check_output("start", output)?)?;
        Ok(Synapse::from_info(info, dir, registrations, tempdir))
    }

    /// [`Synapse::start`] without blocking the async runtime.
    pub async fn start_async(registrations: &[PathBuf]) -> Result<Synapse> {
        tokio::task::spawn_blocking(ensure_installed)
            .await
            .map_err(|e| HarnessError::unexpected("installing Synapse", e.to_string()))??;
        let (tempdir, dir) = new_dir()?;
        let args = start_args(&dir, registrations);
        let output = run_async(script_command(&as_strs(&args)), "start").await?;
        let info = parse_start(&check_output("start", output)?)?;
        Ok(Synapse::from_info(info, dir, registrations, tempdir))
    }

    /// Starts Synapse in `dir` (created if missing) with these registration
    /// files, without installing it, giving up after `within`: then the
    /// script is killed and whatever it started is stopped. Stopped when
    /// dropped; `dir` is left in place.
    pub async fn start_within(
        dir: &Path,
        registrations: &[PathBuf],
        within: Duration,
    ) -> Result<Synapse> {
        if !installed() {
            return Err(HarnessError::Install(format!(
                "it is not installed in {}",
                venv_dir().display()
            )));
        }
        let args = start_args(dir, registrations);
        let mut command = tokio::process::Command::from(script_command(&as_strs(&args)));
        command.kill_on_drop(true);
        let output = match tokio::time::timeout(within, command.output()).await {
            Ok(output) => {
                output.map_err(|e| HarnessError::io("running scripts/synapse.sh start", e))?
            }
            Err(_) => {
                // The script was killed when its future was dropped; Synapse
                // may have started meanwhile (its pid is in `dir`).
                let _ = stop_dir(dir).await;
                return Err(HarnessError::unexpected(
                    "scripts/synapse.sh start",
                    format!("Synapse did not answer within {} s", within.as_secs()),
                ));
            }
        };
        let info = parse_start(&check_output("start", output)?)?;
        Ok(Synapse::from_info(
            info,
            dir.to_path_buf(),
            registrations,
            None,
        ))
    }

    fn from_info(
        info: StartInfo,
        dir: PathBuf,
        registrations: &[PathBuf],
        tempdir: Option<tempfile::TempDir>,
    ) -> Synapse {
        Synapse {
            base_url: info.base_url,
            server_name: info.server_name,
            port: info.port,
            dir,
            shared_secret_file: info.shared_secret_file,
            registrations: registrations.to_vec(),
            running: true,
            http: http_client(),
            _tempdir: tempdir,
        }
    }

    /// Stops it (SIGTERM, SIGKILL after 20 s). Stopping a stopped one does nothing.
    pub fn stop(&mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        let dir = self.dir.to_string_lossy().into_owned();
        let output = run_sync(script_command(&["stop", &dir]), "stop")?;
        check_output("stop", output)?;
        self.running = false;
        Ok(())
    }

    /// [`Synapse::stop`] without blocking the async runtime.
    pub async fn stop_async(&mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        let dir = self.dir.to_string_lossy().into_owned();
        let output = run_async(script_command(&["stop", &dir]), "stop").await?;
        check_output("stop", output)?;
        self.running = false;
        Ok(())
    }

    /// Stops it and starts it again in the same directory: same port,
    /// server name, database and shared secret.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let args = start_args(&self.dir, &self.registrations);
        let output = run_sync(script_command(&as_strs(&args)), "start")?;
        self.after_restart(output)
    }

    /// [`Synapse::restart`] without blocking the async runtime.
    pub async fn restart_async(&mut self) -> Result<()> {
        self.stop_async().await?;
        let args = start_args(&self.dir, &self.registrations);
        let output = run_async(script_command(&as_strs(&args)), "start").await?;
        self.after_restart(output)
    }

    fn after_restart(&mut self, output: Output) -> Result<()> {
        let info = parse_start(&check_output("start", output)?)?;
        self.running = true;
        if info.base_url != self.base_url || info.server_name != self.server_name {
            return Err(HarnessError::unexpected(
                "restarting Synapse",
                format!(
                    "it came back as {} ({}) instead of {} ({})",
                    info.base_url, info.server_name, self.base_url, self.server_name
                ),
            ));
        }
        Ok(())
    }

    /// Whether it was started and not stopped since.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The full user id of a localpart on this server.
    pub fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.server_name)
    }

    /// Registers a user through the shared-secret registration API
    /// (`/_synapse/admin/v1/register`): returns the user id and an access
    /// token. Works for any localpart outside the application services'
    /// exclusive namespaces (those fail with `M_EXCLUSIVE`).
    pub async fn register_user(
        &self,
        localpart: &str,
        password: &str,
        admin: bool,
    ) -> Result<(String, String)> {
        let secret = std::fs::read_to_string(&self.shared_secret_file)
            .map_err(|e| HarnessError::io("reading the registration shared secret", e))?;
        let path = ["_synapse", "admin", "v1", "register"];
        let nonce = send(
            &self.http,
            &self.base_url,
            None,
            Method::GET,
            &path,
            &[],
            Body::None,
        )
        .await?
        .get("nonce")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| HarnessError::unexpected("registration nonce", "no nonce"))?;
        let mac = registration_mac(secret.trim(), &nonce, localpart, password, admin)?;
        let body = json!({
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac,
        });
        let answer = send(
            &self.http,
            &self.base_url,
            None,
            Method::POST,
            &path,
            &[],
            Body::Json(body),
        )
        .await?;
        let user_id = str_field(&answer, "user_id", "shared-secret registration")?;
        let token = str_field(&answer, "access_token", "shared-secret registration")?;
        Ok((user_id, token))
    }

    /// Registers a (non-admin) user with a random password and returns it
    /// as a [`MatrixUser`].
    pub async fn user(&self, localpart: &str) -> Result<MatrixUser> {
        let password = format!("pw-{:016x}", fastrand::u64(..));
        let (user_id, token) = self.register_user(localpart, &password, false).await?;
        Ok(MatrixUser::new(&self.base_url, user_id, token))
    }

    /// Registers a (non-admin) user with a random password and a display
    /// name, and returns it as a [`MatrixUser`].
    pub async fn user_named(&self, localpart: &str, display_name: &str) -> Result<MatrixUser> {
        let user = self.user(localpart).await?;
        user.set_display_name(display_name).await?;
        Ok(user)
    }

    /// The application service's bot (`@sender_localpart:server`) acting with
    /// the `as_token`; [`MatrixUser::as_ghost`] turns it into one of its ghosts.
    pub fn appservice(&self, as_token: &str, sender_localpart: &str) -> MatrixUser {
        MatrixUser::new(&self.base_url, self.user_id(sender_localpart), as_token)
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("stopping the test Synapse in {}: {e}", self.dir.display());
        }
        if let Some(tempdir) = self._tempdir.take()
            && std::env::var_os("SWITCHBOARD_SYNAPSE_KEEP").is_some_and(|v| !v.is_empty())
        {
            eprintln!(
                "kept the test Synapse's directory {}",
                tempdir.keep().display()
            );
        }
    }
}

/// `scripts/synapse.sh stop DIR`: stops the Synapse started in `dir`, if
/// one runs there (for a start that was given up on or interrupted).
pub async fn stop_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let dir = dir.to_string_lossy().into_owned();
    let output = run_async(script_command(&["stop", &dir]), "stop").await?;
    check_output("stop", output).map(|_| ())
}

/// A fresh temporary directory (kept for the harness's life) and the
/// homeserver's directory inside it.
fn new_dir() -> Result<(Option<tempfile::TempDir>, PathBuf)> {
    let tempdir = tempfile::Builder::new()
        .prefix("switchboard-synapse-")
        .tempdir()
        .map_err(|e| HarnessError::io("creating a temporary directory for Synapse", e))?;
    let dir = tempdir.path().join("hs");
    Ok((Some(tempdir), dir))
}

fn start_args(dir: &Path, registrations: &[PathBuf]) -> Vec<String> {
    let mut args = vec!["start".to_owned(), dir.to_string_lossy().into_owned()];
    for registration in registrations {
        args.push("--registration".to_owned());
        args.push(registration.to_string_lossy().into_owned());
    }
    // Synapse stops by itself if this process dies without dropping it.
    args.push("--parent".to_owned());
    args.push(std::process::id().to_string());
    args
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// HMAC-SHA1 over `nonce\0user\0password\0admin|notadmin`, hex-encoded.
fn registration_mac(
    secret: &str,
    nonce: &str,
    user: &str,
    password: &str,
    admin: bool,
) -> Result<String> {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .map_err(|e| HarnessError::unexpected("registration MAC", e.to_string()))?;
    mac.update(nonce.as_bytes());
    mac.update(b"\0");
    mac.update(user.as_bytes());
    mac.update(b"\0");
    mac.update(password.as_bytes());
    mac.update(b"\0");
    mac.update(if admin { b"admin" } else { b"notadmin" });
    Ok(mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn str_field(value: &Value, field: &str, context: &str) -> Result<String> {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| HarnessError::unexpected(context, format!("no `{field}` in the answer")))
}

/// A unique transaction id for this process.
fn txn_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PREFIX: OnceLock<String> = OnceLock::new();
    let prefix =
        PREFIX.get_or_init(|| format!("sbt{}{:08x}", std::process::id(), fastrand::u32(..)));
    format!("{prefix}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>, String),
}

/// One client-server request; the JSON answer, or the Matrix error.
async fn send(
    http: &reqwest::Client,
    base_url: &str,
    auth: Option<(&str, Option<&str>)>,
    method: Method,
    segments: &[&str],
    query: &[(&str, &str)],
    body: Body,
) -> Result<Value> {
    let path = format!("/{}", segments.join("/"));
    let mut url = Url::parse(base_url)
        .map_err(|e| HarnessError::unexpected(format!("base URL {base_url}"), e.to_string()))?;
    url.path_segments_mut()
        .map_err(|()| HarnessError::unexpected(format!("base URL {base_url}"), "not a base"))?
        .pop_if_empty()
        .extend(segments);
    let mut request = http.request(method.clone(), url).query(query);
    if let Some((token, assert_user)) = auth {
        request = request.bearer_auth(token);
        if let Some(user_id) = assert_user {
            request = request.query(&[("user_id", user_id)]);
        }
    }
    request = match body {
        Body::None => request,
        Body::Json(value) => request.json(&value),
        Body::Bytes(bytes, content_type) => request
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes),
    };
    let http_error = |source| HarnessError::Http {
        method: method.to_string(),
        path: path.clone(),
        source,
    };
    let response = request.send().await.map_err(http_error)?;
    let status = response.status();
    let text = response.text().await.map_err(http_error)?;
    let value: Option<Value> = serde_json::from_str(&text).ok();
    if status.is_success() {
        return value.ok_or_else(|| {
            HarnessError::unexpected(format!("{method} {path}"), "the answer is not JSON")
        });
    }
    let field = |name: &str| {
        value
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Err(HarnessError::Matrix {
        method: method.to_string(),
        path,
        status: status.as_u16(),
        errcode: field("errcode").unwrap_or_default(),
        error: field("error").unwrap_or_else(|| {
            let mut start: String = text.chars().take(200).collect();
            if start.is_empty() {
                start = status
                    .canonical_reason()
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR.as_str())
                    .to_owned();
            }
            start
        }),
    })
}

const CLIENT: [&str; 3] = ["_matrix", "client", "v3"];

/// A Matrix user acting through the client-server API: a person, or the
/// application service (its `as_token`), or one of its ghosts (the
/// `as_token` with identity assertion, [`MatrixUser::as_ghost`]).
#[derive(Clone)]
pub struct MatrixUser {
    /// The full user id, `@ann:localhost:1234`.
    pub user_id: String,
    /// The access token (or the application service's `as_token`).
    pub token: String,
    /// The homeserver's base URL.
    pub base_url: String,
    /// Sent as `?user_id=` (identity assertion) when set: the token is an
    /// `as_token` acting as this ghost.
    pub asserted_user: Option<String>,
    http: reqwest::Client,
}

impl fmt::Debug for MatrixUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatrixUser")
            .field("user_id", &self.user_id)
            .field("token", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("asserted_user", &self.asserted_user)
            .finish()
    }
}

impl MatrixUser {
    /// A user with an access token on the homeserver at `base_url`.
    pub fn new(
        base_url: impl Into<String>,
        user_id: impl Into<String>,
        token: impl Into<String>,
    ) -> MatrixUser {
        MatrixUser {
            user_id: user_id.into(),
            token: token.into(),
            base_url: base_url.into(),
            asserted_user: None,
            http: http_client(),
        }
    }

    /// The same `as_token` acting as the ghost `user_id` (`?user_id=`).
    pub fn as_ghost(&self, user_id: impl Into<String>) -> MatrixUser {
        let user_id = user_id.into();
        MatrixUser {
            asserted_user: Some(user_id.clone()),
            user_id,
            ..self.clone()
        }
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Body,
    ) -> Result<Value> {
        let auth = Some((self.token.as_str(), self.asserted_user.as_deref()));
        send(
            &self.http,
            &self.base_url,
            auth,
            method,
            segments,
            query,
            body,
        )
        .await
    }

    async fn client(&self, method: Method, rest: &[&str], body: Body) -> Result<Value> {
        let segments: Vec<&str> = CLIENT.iter().chain(rest).copied().collect();
        self.call(method, &segments, &[], body).await
    }

    /// Sends any room event; returns its event id.
    pub async fn send_event(
        &self,
        room_id: &str,
        event_type: &str,
        content: Value,
    ) -> Result<String> {
        let txn = txn_id();
        let answer = self
            .client(
                Method::PUT,
                &["rooms", room_id, "send", event_type, &txn],
                Body::Json(content),
            )
            .await?;
        str_field(&answer, "event_id", "sending an event")
    }

    /// Sends a plain-text `m.text` message.
    pub async fn send_text(&self, room_id: &str, body: &str) -> Result<String> {
        let content = json!({ "msgtype": "m.text", "body": body });
        self.send_event(room_id, "m.room.message", content).await
    }

    /// Sends an `m.text` message with an HTML body (and its plain fallback).
    pub async fn send_html(&self, room_id: &str, plain: &str, html: &str) -> Result<String> {
        let content = json!({
            "msgtype": "m.text",
            "body": plain,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
        });
        self.send_event(room_id, "m.room.message", content).await
    }

    /// Redacts (deletes) an event; returns the redaction's event id.
    pub async fn redact(
        &self,
        room_id: &str,
        event_id: &str,
        reason: Option<&str>,
    ) -> Result<String> {
        let txn = txn_id();
        let body = match reason {
            Some(reason) => json!({ "reason": reason }),
            None => json!({}),
        };
        let answer = self
            .client(
                Method::PUT,
                &["rooms", room_id, "redact", event_id, &txn],
                Body::Json(body),
            )
            .await?;
        str_field(&answer, "event_id", "redacting an event")
    }

    /// Reacts to an event with `key` (an emoji); returns the reaction's event id.
    pub async fn react(&self, room_id: &str, event_id: &str, key: &str) -> Result<String> {
        let content = json!({
            "m.relates_to": { "rel_type": "m.annotation", "event_id": event_id, "key": key }
        });
        self.send_event(room_id, "m.reaction", content).await
    }

    /// Joins a room by id or alias; returns the room id.
    pub async fn join(&self, room_id_or_alias: &str) -> Result<String> {
        let answer = self
            .client(
                Method::POST,
                &["join", room_id_or_alias],
                Body::Json(json!({})),
            )
            .await?;
        str_field(&answer, "room_id", "joining a room")
    }

    /// Leaves a room.
    pub async fn leave(&self, room_id: &str) -> Result<()> {
        self.client(
            Method::POST,
            &["rooms", room_id, "leave"],
            Body::Json(json!({})),
        )
        .await
        .map(|_| ())
    }

    /// Creates a room (`body` as `/createRoom` takes it: `name`, `preset`,
    /// `invite`, `room_alias_name`, …); returns its id.
    pub async fn create_room(&self, body: Value) -> Result<String> {
        let answer = self
            .client(Method::POST, &["createRoom"], Body::Json(body))
            .await?;
        str_field(&answer, "room_id", "creating a room")
    }

    /// Invites a user into a room.
    pub async fn invite(&self, room_id: &str, user_id: &str) -> Result<()> {
        self.client(
            Method::POST,
            &["rooms", room_id, "invite"],
            Body::Json(json!({ "user_id": user_id })),
        )
        .await
        .map(|_| ())
    }

    /// The room's latest events (up to 100), newest first
    /// (`GET /rooms/{id}/messages?dir=b`).
    pub async fn messages(&self, room_id: &str) -> Result<Vec<Value>> {
        let segments: Vec<&str> = CLIENT
            .iter()
            .copied()
            .chain(["rooms", room_id, "messages"])
            .collect();
        let answer = self
            .call(
                Method::GET,
                &segments,
                &[("dir", "b"), ("limit", "100")],
                Body::None,
            )
            .await?;
        match answer.get("chunk") {
            Some(Value::Array(events)) => Ok(events.clone()),
            _ => Err(HarnessError::unexpected("reading messages", "no `chunk`")),
        }
    }

    /// Every event of the room this user may see, oldest first: pages of
    /// up to 1,000 forwards from the room's start
    /// (`GET /rooms/{id}/messages?dir=f`, without `from` since Matrix 1.3),
    /// at most `max_pages` of them.
    pub async fn all_messages(&self, room_id: &str, max_pages: usize) -> Result<Vec<Value>> {
        let segments: Vec<&str> = CLIENT
            .iter()
            .copied()
            .chain(["rooms", room_id, "messages"])
            .collect();
        let mut events = Vec::new();
        let mut from: Option<String> = None;
        for _ in 0..max_pages {
            let mut query = vec![("dir", "f"), ("limit", "1000")];
            if let Some(token) = from.as_deref() {
                query.push(("from", token));
            }
            let answer = self
                .call(Method::GET, &segments, &query, Body::None)
                .await?;
            match answer.get("chunk") {
                Some(Value::Array(chunk)) => events.extend(chunk.iter().cloned()),
                _ => return Err(HarnessError::unexpected("reading messages", "no `chunk`")),
            }
            match answer.get("end").and_then(Value::as_str) {
                Some(end) => from = Some(end.to_owned()),
                None => return Ok(events),
            }
        }
        Err(HarnessError::unexpected(
            "reading messages",
            format!("more than {max_pages} pages"),
        ))
    }

    /// One event by id.
    pub async fn event(&self, room_id: &str, event_id: &str) -> Result<Value> {
        self.client(
            Method::GET,
            &["rooms", room_id, "event", event_id],
            Body::None,
        )
        .await
    }

    /// The room's joined members and their display names
    /// (`GET /rooms/{id}/joined_members`): user id → display name (the
    /// user id when they set none).
    pub async fn joined_members(&self, room_id: &str) -> Result<Vec<(String, String)>> {
        let answer = self
            .client(
                Method::GET,
                &["rooms", room_id, "joined_members"],
                Body::None,
            )
            .await?;
        let Some(joined) = answer.get("joined").and_then(Value::as_object) else {
            return Err(HarnessError::unexpected("reading members", "no `joined`"));
        };
        Ok(joined
            .iter()
            .map(|(user, member)| {
                let name = member
                    .get("display_name")
                    .and_then(Value::as_str)
                    .unwrap_or(user);
                (user.clone(), name.to_owned())
            })
            .collect())
    }

    /// Sets the user's display name (`PUT /profile/{id}/displayname`).
    pub async fn set_display_name(&self, name: &str) -> Result<()> {
        self.client(
            Method::PUT,
            &["profile", &self.user_id, "displayname"],
            Body::Json(json!({ "displayname": name })),
        )
        .await
        .map(|_| ())
    }

    /// Uploads a file to the media repository; returns its `mxc://` URI.
    pub async fn upload(&self, bytes: Vec<u8>, content_type: &str) -> Result<String> {
        let answer = self
            .call(
                Method::POST,
                &["_matrix", "media", "v3", "upload"],
                &[],
                Body::Bytes(bytes, content_type.to_owned()),
            )
            .await?;
        str_field(&answer, "content_uri", "uploading a file")
    }

    /// With an application service's `as_token`: registers a user in its
    /// namespace (`m.login.application_service`); returns the user id.
    pub async fn register_appservice_user(&self, localpart: &str) -> Result<String> {
        let body = json!({ "type": "m.login.application_service", "username": localpart });
        let segments: Vec<&str> = CLIENT.iter().copied().chain(["register"]).collect();
        let answer = send(
            &self.http,
            &self.base_url,
            Some((self.token.as_str(), None)),
            Method::POST,
            &segments,
            &[],
            Body::Json(body),
        )
        .await?;
        str_field(
            &answer,
            "user_id",
            "registering an application service user",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_mac_matches_synapses_algorithm() {
        // Computed with Python: hmac.new(b"secret", b"abc\0ann\0pw\0notadmin", sha1).hexdigest()
        let mac = registration_mac("secret", "abc", "ann", "pw", false).expect("mac");
        assert_eq!(mac, EXPECTED_NOTADMIN);
    }

    const EXPECTED_NOTADMIN: &str = "830d9cf0ab0e9c0d0a3d30be0237b387b06f9d00";

    #[test]
    fn transaction_ids_are_unique() {
        let a = txn_id();
        let b = txn_id();
        assert_ne!(a, b);
    }

    #[test]
    fn the_script_is_found_from_the_manifest() {
        assert!(script().is_file(), "{}", script().display());
    }
}
