//! `switchboard demo`: the daemon joining a simulated Slack, a simulated
//! Microsoft Teams and — when Synapse is installed — a throw-away Synapse,
//! all in this process or on loopback, with a scripted conversation between
//! people on every side printed side by side as it happens, then a summary
//! (relayed per direction, latency, and the check that nothing was lost or
//! doubled). With `--interactive`, the user then writes as a person on any
//! side.
//!
//! - [`sides`]: the people's actions through each platform's API, and each
//!   platform's view read back from it
//! - [`script`]: the conversation, the waits and the final check
//! - [`view`]: messages as shown, and the columns
//! - [`matrix`]: Synapse, the registration, the Matrix person
//! - [`interactive`]: the `--interactive` loop
//!
//! Everything lives in one temporary directory (the store, the generated
//! configuration, Synapse's files), removed at the end.

mod interactive;
mod matrix;
mod script;
mod sides;
mod view;

use crate::Controls;
use anyhow::{Context, bail};
use serde_json::json;
use sides::{Sides, SlackSide, TeamsSide};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use switchboard_model::BridgeId;
use switchboard_slack_sim::SlackSim;
use switchboard_teams_sim::TeamsSim;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What `switchboard demo` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Play the scripted conversation (and check it).
    pub script: bool,
    /// Then let the user write as a person on any side.
    pub interactive: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            script: true,
            interactive: false,
        }
    }
}

const SLACK: &str = "slack:demo";
const TEAMS: &str = "teams:demo";
/// The Teams service account (it posts what comes from elsewhere).
const SERVICE: &str = "switchboard@contoso.test";
/// How long the daemon, the Slack socket and the Teams sign-in may take.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The demo was stopped with Ctrl-C (after stopping everything it started).
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// What has been started, so that it can be stopped whatever happens.
#[derive(Default)]
struct Running {
    shutdown: CancellationToken,
    daemon: Option<JoinHandle<anyhow::Result<()>>>,
    sides: Option<Sides>,
    /// Slack and Teams before the daemon runs (then they move into `sides`).
    slack: Option<SlackSim>,
    teams: Option<TeamsSim>,
    /// Synapse's directory once its start was attempted.
    synapse_dir: Option<std::path::PathBuf>,
}

/// Runs the demo. Errors when something does not start in time, or when
/// the conversation does not arrive whole; Ctrl-C stops everything.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("switchboard-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut running = Running::default();
    let outcome = tokio::select! {
        outcome = play(&mut running, dir.path(), options) => outcome,
        signal = tokio::signal::ctrl_c() => match signal {
            Ok(()) => Err(Interrupted.into()),
            Err(e) => Err(anyhow::anyhow!("cannot listen for Ctrl-C: {e}")),
        },
    };
    if let Err(e) = stop(running).await {
        eprintln!("demo: while stopping: {e:#}");
    }
    outcome
}

async fn play(running: &mut Running, dir: &Path, options: Options) -> anyhow::Result<()> {
    let matrix_missing = matrix::unavailable();
    match &matrix_missing {
        None => println!(
            "Switchboard demo: Slack, Microsoft Teams and Matrix joined by one portal, on this machine."
        ),
        Some(why) => {
            println!("{why}: running without Matrix.");
            println!(
                "Switchboard demo: Slack and Microsoft Teams joined by one portal, on this machine."
            );
        }
    }
    println!(
        "Temporary directory (store, configuration{}): {}",
        if matrix_missing.is_none() {
            ", homeserver"
        } else {
            ""
        },
        dir.display()
    );
    let started = Instant::now();

    let slack = start_slack().await?;
    let teams = start_teams().await?;
    let slack_channel = slack
        .seeded()
        .channels
        .get("general")
        .cloned()
        .context("the Slack simulator has no #general")?;
    let teams_channel = teams
        .seeded()
        .channels
        .get("Contoso/General")
        .cloned()
        .context("the Teams simulator has no Contoso/General")?;
    println!(
        "Slack simulator on {}, Teams simulator on {}.",
        slack.base_url(),
        teams.base_url()
    );
    let listen = free_loopback_port()?;
    write_secrets(dir, &slack, &teams)?;
    running.slack = Some(slack);
    running.teams = Some(teams);

    // Matrix, when Synapse is there and starts in time.
    let mut homeserver = None;
    if matrix_missing.is_none() {
        println!(
            "Starting Synapse on loopback (at most {} s)…",
            matrix::START_WITHIN.as_secs()
        );
        running.synapse_dir = Some(matrix::synapse_dir(dir));
        match matrix::start(dir, &format!("http://{listen}"), "mo", "Mo Reyes").await {
            Ok(hs) => {
                println!("Synapse {} is up.", hs.synapse.server_name);
                homeserver = Some(hs);
            }
            Err(e) => {
                println!("Synapse did not start: running without Matrix (Slack and Teams only).");
                for line in format!("{e:#}").lines().filter(|l| !l.trim().is_empty()) {
                    println!("  {line}");
                }
            }
        }
    }

    let (Some(slack), Some(teams)) = (running.slack.as_ref(), running.teams.as_ref()) else {
        bail!("the simulators are gone");
    };
    let config_text = config_toml(
        listen,
        slack,
        teams,
        &slack_channel,
        &teams_channel,
        homeserver.as_ref(),
    );
    std::fs::write(dir.join("switchboard.toml"), &config_text)
        .context("cannot write the configuration")?;
    let config =
        crate::config::from_toml_str(&config_text, &HashMap::new(), dir).map_err(|errors| {
            let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            anyhow::anyhow!(
                "the generated configuration is refused:\n  {}",
                lines.join("\n  ")
            )
        })?;
    sign_in_service_account(&config, teams).await?;
    wait_store_unlocked(&config.store.path, READY_WITHIN).await?;

    let (controls, _reload) = Controls::new(running.shutdown.clone());
    running.daemon = Some(tokio::spawn(crate::run(config, controls)));
    wait_ready(&mut running.daemon, listen).await?;
    if !slack.wait_for_sockets(1, READY_WITHIN).await {
        bail!(
            "the Slack connector did not connect within {} s",
            READY_WITHIN.as_secs()
        );
    }
    let matrix = match homeserver {
        Some(hs) => Some(matrix::join(hs, READY_WITHIN).await?),
        None => None,
    };

    let (Some(slack), Some(teams)) = (running.slack.take(), running.teams.take()) else {
        bail!("the simulators are gone");
    };
    let slack = SlackSide::new(
        slack,
        slack_channel,
        &[("ann", "Ann Lee"), ("cid", "Cid Moss")],
    )?;
    let teams = TeamsSide::new(
        teams,
        teams_channel,
        SERVICE,
        &[
            ("bob", "bob@contoso.test", "Bob Builder"),
            ("dee", "dee@contoso.test", "Dee Diaz"),
        ],
    )?;
    let sides = running.sides.insert(Sides {
        slack,
        teams,
        matrix,
    });
    let names: Vec<&str> = sides.active().iter().map(|s| s.name()).collect();
    println!(
        "Daemon ready after {:.1} s: {} in one portal.\n",
        started.elapsed().as_secs_f64(),
        and_list(&names)
    );
    if options.script {
        script::play(sides).await?;
    }
    if options.interactive {
        interactive::run(sides).await?;
    }
    Ok(())
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Stops the daemon (it drains), Synapse and the simulators.
async fn stop(running: Running) -> anyhow::Result<()> {
    running.shutdown.cancel();
    let mut result = Ok(());
    if let Some(daemon) = running.daemon {
        match tokio::time::timeout(Duration::from_secs(20), daemon).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => result = Err(e.context("the daemon failed")),
            Ok(Err(e)) => result = Err(anyhow::anyhow!("the daemon task failed: {e}")),
            Err(_) => result = Err(anyhow::anyhow!("the daemon did not stop within 20 s")),
        }
    }
    let (slack, teams, synapse) = match running.sides {
        Some(sides) => (
            Some(sides.slack.sim),
            Some(sides.teams.sim),
            sides.matrix.map(|m| m.synapse),
        ),
        None => (running.slack, running.teams, None),
    };
    if let Some(mut synapse) = synapse {
        if let Err(e) = synapse.stop_async().await {
            eprintln!("demo: stopping Synapse: {e}");
        }
    } else if let Some(dir) = &running.synapse_dir {
        // Started (or half-started) but never handed over.
        if let Err(e) = switchboard_matrix::testing::stop_dir(dir).await {
            eprintln!("demo: stopping Synapse: {e}");
        }
    }
    if let Some(teams) = teams {
        teams.shutdown().await;
    }
    if let Some(slack) = slack {
        slack.shutdown().await;
    }
    result
}

async fn start_slack() -> anyhow::Result<SlackSim> {
    let seed = serde_json::from_value(json!({
        "users": [
            {"name": "ann", "real_name": "Ann Lee"},
            {"name": "cid", "real_name": "Cid Moss"}
        ],
        "channels": [{"name": "general", "members": ["ann", "cid", "@bot"]}]
    }))
    .context("the Slack seed")?;
    SlackSim::start(switchboard_slack_sim::SimConfig {
        seed: Some(seed),
        ..Default::default()
    })
    .await
    .context("the Slack simulator did not start")
}

async fn start_teams() -> anyhow::Result<TeamsSim> {
    let seed = serde_json::from_value(json!({
        "users": [
            {"displayName": "Switchboard Relay", "userPrincipalName": SERVICE},
            {"displayName": "Bob Builder", "userPrincipalName": "bob@contoso.test"},
            {"displayName": "Dee Diaz", "userPrincipalName": "dee@contoso.test"}
        ],
        "teams": [{"displayName": "Contoso", "owners": [SERVICE],
                   "members": ["bob@contoso.test", "dee@contoso.test"]}]
    }))
    .context("the Teams seed")?;
    TeamsSim::start(switchboard_teams_sim::SimConfig {
        seed: Some(seed),
        device_code_interval: Duration::from_secs(1),
        ..Default::default()
    })
    .await
    .context("the Teams simulator did not start")
}

/// A loopback address with a port free right now, for the daemon: the
/// homeserver's registration names it before the daemon starts.
fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("cannot find a free port on 127.0.0.1")?;
    listener.local_addr().context("cannot find a free port")
}

/// The simulators' bot and app credentials, in files the configuration names.
fn write_secrets(dir: &Path, slack: &SlackSim, teams: &TeamsSim) -> anyhow::Result<()> {
    matrix::write_private(&dir.join("slack.bot-token"), &slack.seeded().bot_token)?;
    matrix::write_private(&dir.join("slack.app-token"), &slack.seeded().app_token)?;
    matrix::write_private(
        &dir.join("teams.client-secret"),
        &teams.seeded().client_secret,
    )
}

/// The generated configuration: the three bridges and one portal.
fn config_toml(
    listen: SocketAddr,
    slack: &SlackSim,
    teams: &TeamsSim,
    slack_channel: &str,
    (team, channel): &(String, String),
    homeserver: Option<&matrix::Homeserver>,
) -> String {
    let seeded = teams.seeded();
    let mut members = vec![
        format!("\"{SLACK}/{slack_channel}\""),
        format!("\"{TEAMS}/{team}/{channel}\""),
    ];
    if let Some(hs) = homeserver {
        members.push(format!("\"{}/{}\"", matrix::BRIDGE, hs.alias));
    }
    format!(
        "# Generated by `switchboard demo`.\n\
         [store]\npath = \"store\"\nkey_file = \"store.key\"\n\n\
         [http]\nlisten = \"{listen}\"\n\n\
         [relay]\ninitial_backoff = \"100ms\"\nmax_backoff = \"1s\"\ndrain_grace = \"5s\"\n\n\
         [[bridge]]\nid = \"{SLACK}\"\ntype = \"slack\"\napi_url = \"{slack_api}/api\"\n\
         bot_token_file = \"slack.bot-token\"\napp_token_file = \"slack.app-token\"\nrate_limits = false\n\n\
         [[bridge]]\nid = \"{TEAMS}\"\ntype = \"teams\"\ngraph_url = \"{graph}\"\nlogin_url = \"{login}\"\n\
         tenant = \"{tenant}\"\nclient_id = \"{client}\"\nclient_secret_file = \"teams.client-secret\"\n\
         poll_interval = \"300ms\"\nrate_limits = false\n\n\
         {matrix}\
         [[portal]]\nname = \"general\"\nmembers = [{members}]\n",
        slack_api = slack.base_url(),
        graph = teams.graph_url(),
        login = teams.login_url(),
        tenant = seeded.tenant_id,
        client = seeded.client_id,
        matrix = homeserver.map_or("", |hs| hs.bridge_toml.as_str()),
        members = members.join(", "),
    )
}

/// Signs the Teams service account in with the device-code flow, as
/// `switchboard login teams --service` does, the "person" completing it in
/// the simulator; the token is sealed in the store.
async fn sign_in_service_account(
    config: &crate::config::Config,
    teams: &TeamsSim,
) -> anyhow::Result<()> {
    let (codes, mut code) = tokio::sync::mpsc::unbounded_channel();
    let bridge = BridgeId::new(TEAMS);
    let login = crate::login::teams(config, &bridge, None, READY_WITHIN, |prompt| {
        let _ = codes.send(prompt.user_code.clone());
    });
    let person = async {
        let code = code.recv().await.context("the sign-in showed no code")?;
        teams
            .complete_device_code(&code, SERVICE)
            .map_err(|e| anyhow::anyhow!("the service account could not sign in: {e}"))
    };
    let (account, ()) =
        tokio::try_join!(login, person).context("the Teams service account did not sign in")?;
    drop(account);
    Ok(())
}

/// Waits until nothing holds the store's lock: the sign-in wrote to the
/// store, and sled lets go of its lock (`flock` on `db`) a moment after the
/// last handle is dropped.
async fn wait_store_unlocked(store: &Path, within: Duration) -> anyhow::Result<()> {
    use rustix::fs::{FlockOperation, flock};
    let db = store.join("db");
    let deadline = Instant::now() + within;
    loop {
        let free = match std::fs::File::open(&db) {
            // Released again when `file` is dropped.
            Ok(file) => flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok(),
            Err(_) => true,
        };
        if free {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the store {} was still locked after {} s",
                store.display(),
                within.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the daemon answers `/ready`, or fails (the daemon stopped,
/// or it took too long).
async fn wait_ready(
    daemon: &mut Option<JoinHandle<anyhow::Result<()>>>,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .context("cannot build an HTTP client")?;
    let deadline = Instant::now() + READY_WITHIN;
    let url = format!("http://{listen}/ready");
    loop {
        if daemon.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(finished) = daemon.take()
        {
            {
                match finished.await {
                    Ok(Err(e)) => return Err(e.context("the daemon stopped")),
                    Ok(Ok(())) => bail!("the daemon stopped before it was ready"),
                    Err(e) => bail!("the daemon task failed: {e}"),
                }
            }
        }
        if http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon was not ready within {} s",
                READY_WITHIN.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
