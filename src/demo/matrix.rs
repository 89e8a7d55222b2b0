//! The demo's Matrix side: a throw-away Synapse on loopback when one is
//! installed (`scripts/synapse.sh install`, as `./scripts/test.sh` does),
//! with Switchboard's application-service registration, and a person who
//! joins the portal room.

use super::sides::MatrixSide;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use switchboard_matrix::config::{MatrixConfig, Token, default_ghost_templates};
use switchboard_matrix::registration::{Registration, regex_escape};
use switchboard_matrix::testing::{self, MatrixUser, Synapse};

/// The Matrix bridge's id in the demo's configuration.
pub const BRIDGE: &str = "matrix:demo";

/// How long Synapse may take to start before the demo goes on without it.
pub const START_WITHIN: Duration = Duration::from_secs(60);

/// Synapse's server name is `localhost:<port>`, and it picks its port when
/// it starts: the registration claims the namespaces on any port.
const STAND_IN_SERVER: &str = "localhost:0";

/// Why the demo runs without Matrix, when it does: `None` when Synapse is
/// installed.
pub fn unavailable() -> Option<String> {
    if testing::installed() {
        None
    } else {
        Some(format!(
            "Synapse is not installed in {} (run ./scripts/test.sh once, or scripts/synapse.sh install)",
            testing::venv_dir().display()
        ))
    }
}

/// A started homeserver, before the daemon runs.
#[derive(Debug)]
pub struct Homeserver {
    /// The homeserver.
    pub synapse: Synapse,
    /// The person on it.
    pub person: MatrixUser,
    /// Their display name.
    pub name: String,
    /// The `[[bridge]]` table of the Matrix bridge.
    pub bridge_toml: String,
    /// The portal room's alias (the bridge creates the room).
    pub alias: String,
}

/// Writes the registration and the token files into `dir`, starts Synapse
/// in `dir/synapse` (giving up after [`START_WITHIN`]) and registers the
/// person `localpart` named `name`. `appservice_url` is where the daemon
/// listens.
pub async fn start(
    dir: &Path,
    appservice_url: &str,
    localpart: &str,
    name: &str,
) -> anyhow::Result<Homeserver> {
    let as_token = format!(
        "demo-as-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let hs_token = format!(
        "demo-hs-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    write_private(&dir.join("matrix.as-token"), &as_token)?;
    write_private(&dir.join("matrix.hs-token"), &hs_token)?;
    let mut registration = Registration::for_config(
        &MatrixConfig {
            id: BRIDGE.into(),
            homeserver_url: "http://127.0.0.1:9".into(),
            server_name: STAND_IN_SERVER.into(),
            appservice_id: "switchboard".into(),
            as_token: Token::new(as_token),
            hs_token: Token::new(hs_token),
            sender_localpart: "switchboard".into(),
            ghost_templates: default_ghost_templates(),
            alias_template: "switchboard_{name}".into(),
            invite: Vec::new(),
            max_upload: 1,
            public_url: None,
        },
        appservice_url,
    );
    let any_port = format!(":{}", regex_escape(STAND_IN_SERVER));
    for entry in registration
        .users
        .iter_mut()
        .chain(registration.aliases.iter_mut())
    {
        entry.regex = entry.regex.replace(&any_port, ":localhost:[0-9]+");
    }
    let registration_file = dir.join("matrix-registration.yaml");
    write_private(&registration_file, &registration.to_yaml())?;

    let synapse = Synapse::start_within(&synapse_dir(dir), &[registration_file], START_WITHIN)
        .await
        .context("starting Synapse")?;
    let person = synapse
        .user_named(localpart, name)
        .await
        .with_context(|| format!("cannot register {localpart} on Synapse"))?;
    let bridge_toml = format!(
        "[[bridge]]\nid = \"{BRIDGE}\"\ntype = \"matrix\"\nhomeserver_url = \"{}\"\n\
         server_name = \"{}\"\nappservice_url = \"{appservice_url}\"\n\
         as_token_file = \"matrix.as-token\"\nhs_token_file = \"matrix.hs-token\"\n\
         invite = [\"{}\"]\n\n",
        synapse.base_url, synapse.server_name, person.user_id
    );
    let alias = format!("#switchboard_general:{}", synapse.server_name);
    Ok(Homeserver {
        synapse,
        person,
        name: name.to_owned(),
        bridge_toml,
        alias,
    })
}

/// Where Synapse lives inside the demo's directory.
pub fn synapse_dir(dir: &Path) -> PathBuf {
    dir.join("synapse")
}

/// Once the daemon runs: the person joins the portal room (created by the
/// bridge and the person invited), retried until `within` has passed.
pub async fn join(hs: Homeserver, within: Duration) -> anyhow::Result<MatrixSide> {
    let deadline = Instant::now() + within;
    let room = loop {
        match hs.person.join(&hs.alias).await {
            Ok(room) => break room,
            Err(e) if Instant::now() >= deadline => {
                return Err(anyhow::anyhow!(
                    "could not join the portal room {} within {} s: {e}",
                    hs.alias,
                    within.as_secs()
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    Ok(MatrixSide {
        synapse: hs.synapse,
        person: hs.person,
        name: hs.name,
        room,
    })
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
