//! Slack, Teams and Matrix together: the daemon with the Slack connector
//! against the Slack simulator, the Teams connector against the Graph
//! simulator and the Matrix bridge against a real Synapse, with portals
//! each joining Slack channel `room{i}`, a Teams channel of Contoso
//! (General, then `Channel{i}`) and a Matrix portal room (alias
//! `#switchboard_{name}`). The Teams service account is signed in before the
//! daemon starts, and alice joins every portal room once it is ready.
//!
//! Optionally: more people on Slack and Matrix (the Matrix ones invited to
//! every portal room and joined), a portal `group` joining a Slack group DM
//! (mpim), a Teams group chat and a Matrix room, and the daemon's admin API
//! with Slack's OAuth configured for `switchboard login`.
//!
//! Used by the calls tests (one portal), the fault tests (several) and the
//! group and linked-account tests.

use crate::matrix::{Homeserver, WAIT};
use crate::slack::SlackPerson;
use crate::support::*;
use crate::teams::{ANN, BOB, SERVICE, TeamsSetup};
use serde_json::json;
use std::time::{Duration, Instant};
use switchboard_matrix::testing::MatrixUser;
use switchboard_slack_sim::SimConfig as SlackSimConfig;
use switchboard_teams_sim::SimConfig as TeamsSimConfig;
use switchboard_teams_sim::seed::ChatSeed;

/// The name of the group portal ([`ThreeConfig::group`]).
pub(crate) const GROUP: &str = "group";

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
    /// More Slack people (handle, full name), each with a user token and
    /// in every portal channel.
    pub slack_people: Vec<(&'static str, &'static str)>,
    /// More Matrix people (localpart, display name), invited to every
    /// portal room with alice and joined once the daemon is ready.
    pub matrix_people: Vec<(&'static str, &'static str)>,
    /// A portal [`GROUP`] joining a Slack group DM of the bot, alice and
    /// every one of `slack_people`, a Teams group chat of the service
    /// account, Bob and Ann, and a Matrix portal room.
    pub group: bool,
    /// The daemon's admin API (token `admin-s3cret`) and Slack's OAuth, for
    /// `switchboard login` while the daemon runs.
    pub logins: bool,
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
            slack_people: Vec::new(),
            matrix_people: Vec::new(),
            group: false,
            logins: false,
        }
    }
}

/// The group portal's conversations ([`ThreeConfig::group`]).
pub(crate) struct Group {
    /// The Slack group DM (`conversations.open` by the bot).
    pub slack: String,
    /// The Teams group chat.
    pub teams: String,
    /// The Matrix portal room.
    pub room: String,
}

/// The three platforms and the portal rooms alice joined.
pub(crate) struct Three {
    pub t: TeamsSetup,
    pub hs: Homeserver,
    /// The Matrix portal rooms' ids, one per portal.
    pub rooms: Vec<String>,
    /// [`ThreeConfig::slack_people`]: each one's id and them acting.
    pub slack_people: Vec<(String, SlackPerson)>,
    /// [`ThreeConfig::matrix_people`], joined to every portal room.
    pub matrix_people: Vec<MatrixUser>,
    /// The group portal, with [`ThreeConfig::group`].
    pub group: Option<Group>,
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
        if config.logins {
            t.slack_extra = crate::slack::oauth_lines(&t.slack.sim);
        }
        let hs = Homeserver::start(&t.slack.rt, t.setup());
        let matrix_people: Vec<MatrixUser> = config
            .matrix_people
            .iter()
            .map(|(localpart, name)| {
                t.slack
                    .rt
                    .block_on(hs.synapse.user_named(localpart, name))
                    .expect("register a Matrix person")
            })
            .collect();
        let slack_people: Vec<(String, SlackPerson)> = config
            .slack_people
            .iter()
            .map(|(name, real_name)| {
                let (id, person) = t.slack.add_person(name, real_name);
                for channel in &t.slack.channels {
                    t.slack
                        .sim
                        .join_channel(channel, &id, None)
                        .expect("a Slack person joins the portal channel");
                }
                (id, person)
            })
            .collect();
        let group = config.group.then(|| {
            let seeded = t.slack.sim.seeded();
            let mut users = vec![seeded.users["alice"].clone()];
            users.extend(slack_people.iter().map(|(id, _)| id.clone()));
            let bot = t.slack.person(seeded.bot_token.clone());
            let opened = t
                .slack
                .rt
                .block_on(bot.api.call(
                    "conversations.open",
                    &bot.token,
                    json!({"users": users.join(",")}),
                    None,
                ))
                .expect("the bot opens the group DM");
            let slack = opened["channel"]["id"]
                .as_str()
                .expect("the group DM's id")
                .to_owned();
            let teams = t
                .sim
                .add_chat(&ChatSeed {
                    chat_type: Some("group".into()),
                    topic: Some("Group chat".into()),
                    members: vec![SERVICE.into(), BOB.into(), ANN.into()],
                    ..ChatSeed::default()
                })
                .expect("the Teams group chat");
            (slack, teams)
        });
        let s = t.setup();
        let admin = if config.logins {
            "admin_token_file = \"admin-token\"\n"
        } else {
            ""
        };
        let invited: Vec<&str> = matrix_people.iter().map(|u| u.user_id.as_str()).collect();
        let mut text = format!(
            "[store]\npath = \"{store}\"\nkey_file = \"store.key\"\n{store_extra}\n\
             [http]\nlisten = \"{listen}\"\n{admin}\n[log]\nfilter = \"{filter}\"\n\n\
             [relay]\n{relay}\n{bridges}{matrix}",
            filter = crate::support::log_filter(),
            store = config.store_path.as_deref().unwrap_or("store"),
            store_extra = config.store_extra,
            listen = s.listen,
            relay = config.relay,
            bridges = t.bridge_blocks(),
            matrix = hs.bridge_block_inviting(&invited),
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
        if let Some((slack, teams)) = &group {
            text.push_str(&format!(
                "[[portal]]\nname = \"{GROUP}\"\nmembers = [\"slack:sim/{slack}\", \"{bridge}/{teams}\", \"{matrix}/{alias}\"]\n{extra}\n",
                bridge = crate::teams::BRIDGE,
                matrix = crate::matrix::BRIDGE,
                alias = hs.alias(GROUP),
                extra = config.portal_extra,
            ));
        }
        std::fs::write(s.config_path(), text).expect("write config");
        t.login(&["--service"], SERVICE);
        let mut three = Three {
            t,
            hs,
            rooms: Vec::new(),
            slack_people,
            matrix_people,
            group: None,
        };
        let daemon = three.spawn_ready();
        for i in 0..config.portals {
            let alias = three.hs.alias(&Three::portal_name(i));
            let room = three.hs.join(&three.t.slack.rt, three.t.setup(), &alias);
            three.join_others(&alias);
            three.rooms.push(room);
        }
        if let Some((slack, teams)) = group {
            let alias = three.hs.alias(GROUP);
            let room = three.hs.join(&three.t.slack.rt, three.t.setup(), &alias);
            three.join_others(&alias);
            three.group = Some(Group { slack, teams, room });
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

    /// The [`ThreeConfig::matrix_people`] join the portal room `alias`
    /// (alice has joined it, so it exists).
    fn join_others(&self, alias: &str) {
        for user in &self.matrix_people {
            crate::matrix::join_as(&self.t.slack.rt, user, self.setup(), alias);
        }
    }

    /// Starts the daemon and waits until `/ready` answers 200.
    pub(crate) fn spawn_ready(&self) -> Daemon {
        spawn_ready(self.setup(), WAIT)
    }

    /// Polls `find` until it gives a value; on a timeout ([`WAIT`]) fails
    /// with the end of the daemon's log.
    pub(crate) fn wait<T>(&self, what: &str, find: impl FnMut() -> Option<T>) -> T {
        wait_logged(self.setup(), what, find)
    }

    /// The events of Matrix room `room` (the latest 100), oldest first, as
    /// alice sees them.
    pub(crate) fn matrix_events(&self, room: &str) -> Vec<serde_json::Value> {
        let mut events = self
            .t
            .slack
            .rt
            .block_on(self.hs.alice.messages(room))
            .expect("read the room");
        events.reverse();
        events
    }

    /// The Matrix ghost of `user` of bridge `bridge`.
    pub(crate) fn ghost(&self, bridge: &str, user: &str) -> String {
        switchboard_matrix::ghosts::GhostNamer::new(
            &self.hs.synapse.server_name,
            "switchboard",
            &switchboard_matrix::config::default_ghost_templates(),
        )
        .user_id(
            &switchboard_model::BridgeId::new(bridge),
            &switchboard_model::UserId::new(user),
        )
        .expect("a ghost template")
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

/// Polls `find` until it gives a value; on a timeout ([`WAIT`]) fails with
/// the end of the daemon's log (without its Graph call lines).
pub(crate) fn wait_logged<T>(setup: &Setup, what: &str, mut find: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = find() {
            return found;
        }
        if Instant::now() >= deadline {
            let log = setup.log();
            let tail: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("Graph call."))
                .rev()
                .take(60)
                .collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!("timed out waiting for: {what}\n{}", tail.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Prints the end of the daemon's log when the test fails (on drop).
pub(crate) struct LogOnPanic<'a>(pub &'a Setup);

impl Drop for LogOnPanic<'_> {
    fn drop(&mut self) {
        show_log_if_panicking(self.0, 120);
    }
}

/// When the thread is panicking, prints the last `lines` of the daemon's log.
pub(crate) fn show_log_if_panicking(setup: &Setup, lines: usize) {
    if std::thread::panicking() {
        let log = setup.log();
        // SWITCHBOARD_E2E_LOG_DIR keeps the whole log of a failed test.
        if let Some(dir) = std::env::var_os("SWITCHBOARD_E2E_LOG_DIR") {
            let name = std::thread::current()
                .name()
                .unwrap_or("test")
                .replace("::", "-");
            let path = std::path::Path::new(&dir).join(format!("{name}.log"));
            match std::fs::write(&path, &log) {
                Ok(()) => eprintln!("the whole log: {}", path.display()),
                Err(e) => eprintln!("the log could not be kept at {}: {e}", path.display()),
            }
        }
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        eprintln!("--- the daemon's log (last {lines} lines) ---");
        for line in tail.into_iter().rev() {
            eprintln!("{line}");
        }
    }
}
