//! Slack, Teams and Matrix together: the daemon with the Slack connector
//! against the Slack simulator, the Teams connector against the Graph
//! simulator and the Matrix bridge against a real Synapse, with portals
//! each joining Slack channel `room{i}`, a Teams channel of Contoso
//! (General, then `Channel{i}`) and a Matrix portal room (alias
//! `#switchboard_{name}`). The Teams service account is signed in before the
//! daemon starts, and alice joins every portal room once it is ready.
//!
//! Used by the calls tests (one portal) and the fault tests (several).

use crate::matrix::{Homeserver, WAIT};
use crate::support::*;
use crate::teams::{SERVICE, TeamsSetup};
use std::time::{Duration, Instant};
use switchboard_slack_sim::SimConfig as SlackSimConfig;
use switchboard_teams_sim::SimConfig as TeamsSimConfig;

/// How to build the three platforms and the daemon's configuration.
pub(crate) struct ThreeConfig {
    /// Portals, each joining one channel per platform.
    pub portals: usize,
    pub slack: SlackSimConfig,
    pub teams: TeamsSimConfig,
    /// Lines for the `[store]` table (after `path`, unless `store_path` is set).
    pub store_extra: String,
    /// The store's path (default `store`, in the scratch directory).
    pub store_path: Option<String>,
    /// The `[relay]` table's lines.
    pub relay: String,
    /// Lines added to every `[[portal]]` table.
    pub portal_extra: String,
    /// Lines added to the Teams bridge's block.
    pub teams_extra: String,
    /// Teams change notifications to the daemon's listener, with
    /// reconciliation every so often (`"10m"`, `"5s"`…).
    pub notifications: Option<String>,
}

impl Default for ThreeConfig {
    fn default() -> Self {
        ThreeConfig {
            portals: 1,
            slack: SlackSimConfig::default(),
            teams: TeamsSimConfig::default(),
            store_extra: String::new(),
            store_path: None,
            relay: "initial_backoff = \"100ms\"\nmax_backoff = \"1s\"\nmax_attempts = 50\ndrain_grace = \"10s\"\n"
                .into(),
            portal_extra: String::new(),
            teams_extra: String::new(),
            notifications: None,
        }
    }
}

/// The three platforms and the portal rooms alice joined.
pub(crate) struct Three {
    pub t: TeamsSetup,
    pub hs: Homeserver,
    /// The Matrix portal rooms' ids, one per portal.
    pub rooms: Vec<String>,
}

impl Three {
    /// The name of portal `i`: `general`, then `p1`, `p2`…
    pub(crate) fn portal_name(i: usize) -> String {
        match i {
            0 => "general".into(),
            i => format!("p{i}"),
        }
    }

    /// Starts the simulators and Synapse, writes the configuration, signs
    /// the Teams service account in, starts the daemon and has alice join
    /// every portal room.
    pub(crate) fn start(config: ThreeConfig) -> (Three, Daemon) {
        let started = Instant::now();
        let mut t = TeamsSetup::with(config.portals, config.slack, config.teams);
        if let Some(interval) = config.notifications {
            t.notifications = true;
            t.reconcile_interval = interval;
        }
        t.teams_extra = config.teams_extra;
        let hs = Homeserver::start(&t.slack.rt, t.setup());
        let s = t.setup();
        let mut text = format!(
            "[store]\npath = \"{store}\"\nkey_file = \"store.key\"\n{store_extra}\n\
             [http]\nlisten = \"{listen}\"\n\n[log]\nfilter = \"info\"\n\n\
             [relay]\n{relay}\n{bridges}{matrix}",
            store = config.store_path.as_deref().unwrap_or("store"),
            store_extra = config.store_extra,
            listen = s.listen,
            relay = config.relay,
            bridges = t.bridge_blocks(),
            matrix = hs.bridge_block(),
        );
        for i in 0..config.portals {
            text.push_str(&format!(
                "[[portal]]\nname = \"{name}\"\nmembers = [\"slack:sim/{slack}\", \"{teams}\", \"{matrix}/{alias}\"]\n{extra}\n",
                name = Three::portal_name(i),
                slack = t.slack.channels[i],
                teams = t.teams_member_of(&t.channels[i]),
                matrix = crate::matrix::BRIDGE,
                alias = hs.alias(&Three::portal_name(i)),
                extra = config.portal_extra,
            ));
        }
        std::fs::write(s.config_path(), text).expect("write config");
        t.login(&["--service"], SERVICE);
        let mut three = Three {
            t,
            hs,
            rooms: Vec::new(),
        };
        let daemon = three.spawn_ready();
        for i in 0..config.portals {
            let alias = three.hs.alias(&Three::portal_name(i));
            let room = three.hs.join(&three.t.slack.rt, three.t.setup(), &alias);
            three.rooms.push(room);
        }
        eprintln!(
            "three platforms, {} portal(s) and the daemon ready in {:?}",
            config.portals,
            started.elapsed()
        );
        (three, daemon)
    }

    pub(crate) fn setup(&self) -> &Setup {
        self.t.setup()
    }

    /// Starts the daemon and waits until `/ready` answers 200.
    pub(crate) fn spawn_ready(&self) -> Daemon {
        spawn_ready(self.setup(), WAIT)
    }

    /// When the thread is panicking, prints the end of the daemon's log.
    pub(crate) fn show_log_if_panicking(&self) {
        show_log_if_panicking(self.setup(), 80);
    }
}

/// Starts the daemon of `setup` and waits until `/ready` answers 200.
pub(crate) fn spawn_ready(setup: &Setup, limit: Duration) -> Daemon {
    let mut daemon = setup.spawn();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = daemon.child.try_wait().expect("try_wait") {
            panic!("daemon exited before it was ready: {status}");
        }
        if http_get(daemon.listen, "/ready").is_some_and(|(code, _)| code == 200) {
            return daemon;
        }
        assert!(Instant::now() < deadline, "daemon not ready in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// When the thread is panicking, prints the last `lines` of the daemon's log.
pub(crate) fn show_log_if_panicking(setup: &Setup, lines: usize) {
    if std::thread::panicking() {
        let log = setup.log();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        eprintln!("--- the daemon's log (last {lines} lines) ---");
        for line in tail.into_iter().rev() {
            eprintln!("{line}");
        }
    }
}
