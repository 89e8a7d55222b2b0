//! The daemon with the Teams connector against the Graph simulator
//! (`bridges/teams-sim`) and the Slack connector against the Slack simulator:
//! `switchboard login teams` (device code) for the service account and for a
//! person, relaying both ways through one portal, and a revoked login that is
//! marked for re-authentication while its owner's messages still arrive
//! through the service account.

use crate::slack::{SlackPerson, SlackSetup};
use crate::support::*;
use serde_json::{Value, json};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;
use switchboard_slack_sim::SimConfig as SlackSimConfig;
use switchboard_teams::auth::Secret;
use switchboard_teams::client::{Bearer, GraphClient};
use switchboard_teams_sim::seed::Seed;
use switchboard_teams_sim::{SimConfig, TeamsSim};

pub(crate) const SERVICE: &str = "switchboard@contoso.test";
pub(crate) const BOB: &str = "bob@contoso.test";
pub(crate) const ANN: &str = "ann@contoso.test";
pub(crate) const BRIDGE: &str = "teams:contoso";

/// Both simulators on the Slack setup's runtime, and a config joining Slack
/// channel `room0` with the Teams channel Contoso/General.
pub(crate) struct TeamsSetup {
    pub slack: SlackSetup,
    pub sim: TeamsSim,
    pub team: String,
    /// Contoso/General.
    pub channel: String,
    /// Contoso/General, then Contoso/Channel1, Contoso/Channel2… (one per
    /// Slack channel `room{i}`).
    pub channels: Vec<String>,
    admin_api: bool,
    /// Change notifications to the daemon's listener, with reconciliation
    /// slowed to ten minutes (so only notifications can be fast).
    pub notifications: bool,
    /// The reconciliation interval with notifications on (ten minutes).
    pub reconcile_interval: String,
    /// Lines added to the Teams bridge's block.
    pub teams_extra: String,
    /// Lines added to the Slack bridge's block.
    pub slack_extra: String,
}

impl TeamsSetup {
    pub(crate) fn new() -> Self {
        TeamsSetup::with(1, SlackSimConfig::default(), SimConfig::default())
    }

    /// `channels` Slack channels (`room0`…) and as many Teams channels
    /// (General, then `Channel1`…), the simulators started with these
    /// configurations (seeds and device-code timing set here).
    pub(crate) fn with(channels: usize, slack: SlackSimConfig, teams: SimConfig) -> Self {
        let slack = SlackSetup::new(channels, slack);
        let extra: Vec<Value> = (1..channels)
            .map(|i| json!({"displayName": format!("Channel{i}")}))
            .collect();
        let seed: Seed = serde_json::from_value(json!({
            "users": [
                {"displayName": "Switchboard Relay", "userPrincipalName": SERVICE},
                {"displayName": "Bob Builder", "userPrincipalName": BOB},
                {"displayName": "Ann Lee", "userPrincipalName": ANN}
            ],
            "teams": [{"displayName": "Contoso", "owners": [SERVICE], "members": [BOB, ANN],
                       "channels": extra}]
        }))
        .expect("seed");
        let sim = slack
            .rt
            .block_on(TeamsSim::start(SimConfig {
                seed: Some(seed),
                device_code_interval: Duration::from_secs(1),
                ..teams
            }))
            .expect("Teams simulator starts");
        let (team, channel) = sim.seeded().channels["Contoso/General"].clone();
        let channels = (0..channels)
            .map(|i| match i {
                0 => channel.clone(),
                i => sim.seeded().channels[&format!("Contoso/Channel{i}")]
                    .1
                    .clone(),
            })
            .collect();
        TeamsSetup {
            slack,
            sim,
            team,
            channel,
            channels,
            admin_api: false,
            notifications: false,
            reconcile_interval: "10m".into(),
            teams_extra: String::new(),
            slack_extra: String::new(),
        }
    }

    pub(crate) fn setup(&self) -> &Setup {
        &self.slack.setup
    }

    pub(crate) fn room(&self) -> String {
        self.slack.channels[0].clone()
    }

    pub(crate) fn write_config(&self) {
        let s = self.setup();
        let admin = if self.admin_api {
            "admin_token_file = \"admin-token\""
        } else {
            ""
        };
        let text = format!(
            "[store]\npath = \"store\"\nkey_file = \"store.key\"\n\n\
             [http]\nlisten = \"{listen}\"\n{admin}\n\n\
             [relay]\ninitial_backoff = \"100ms\"\nmax_backoff = \"1s\"\nmax_attempts = 50\ndrain_grace = \"30s\"\n\n\
             {bridges}\
             [[portal]]\nname = \"general\"\nmembers = [\"{slack}\", \"{teams}\"]\n",
            listen = s.listen,
            bridges = self.bridge_blocks(),
            slack = self.slack_member(),
            teams = self.teams_member(),
        );
        std::fs::write(s.config_path(), text).expect("config");
    }

    /// Writes the secrets the bridges read and returns the `[[bridge]]`
    /// blocks of `slack:sim` and `teams:contoso`.
    pub(crate) fn bridge_blocks(&self) -> String {
        let s = self.setup();
        let slack_seeded = self.slack.sim.seeded();
        let teams_seeded = self.sim.seeded();
        std::fs::write(s.path("bot-token"), &slack_seeded.bot_token).expect("token");
        std::fs::write(s.path("app-token"), &slack_seeded.app_token).expect("token");
        std::fs::write(s.path("teams-secret"), &teams_seeded.client_secret).expect("secret");
        std::fs::write(s.path("admin-token"), "admin-s3cret").expect("admin token");
        std::fs::write(s.path("client-secret"), &slack_seeded.client_secret).expect("secret");
        std::fs::write(s.path("client-state"), "e2e-client-state-0123456789").expect("state");
        let notifications = if self.notifications {
            format!(
                "[bridge.notifications]\npublic_url = \"http://{}\"\nclient_state_file = \"client-state\"\n\
                 reconcile_interval = \"{}\"\n\n",
                s.listen, self.reconcile_interval
            )
        } else {
            String::new()
        };
        format!(
            "[[bridge]]\nid = \"slack:sim\"\ntype = \"slack\"\napi_url = \"{slack}/api\"\n\
             bot_token_file = \"bot-token\"\napp_token_file = \"app-token\"\nrate_limits = false\n{slack_extra}\n\n\
             [[bridge]]\nid = \"{BRIDGE}\"\ntype = \"teams\"\ngraph_url = \"{graph}\"\nlogin_url = \"{login}\"\n\
             tenant = \"{tenant}\"\nclient_id = \"{client}\"\nclient_secret_file = \"teams-secret\"\n\
             poll_interval = \"300ms\"\nrate_limits = false\n{extra}\n{notifications}",
            extra = self.teams_extra,
            slack_extra = self.slack_extra,
            slack = self.slack.sim.base_url(),
            graph = self.sim.graph_url(),
            login = self.sim.login_url(),
            tenant = teams_seeded.tenant_id,
            client = teams_seeded.client_id,
        )
    }

    /// The portal member of Slack channel `room0`.
    pub(crate) fn slack_member(&self) -> String {
        format!("slack:sim/{}", self.room())
    }

    /// The portal member of Teams channel Contoso/General.
    pub(crate) fn teams_member(&self) -> String {
        self.teams_member_of(&self.channel)
    }

    /// The portal member of Teams channel `channel` of Contoso.
    pub(crate) fn teams_member_of(&self, channel: &str) -> String {
        format!("{BRIDGE}/{}/{channel}", self.team)
    }

    /// `switchboard login teams --bridge teams:contoso <who>`, signed in as
    /// `user` through the simulator once the CLI has printed its code.
    pub(crate) fn login(&self, who: &[&str], user: &str) -> String {
        let mut login = Command::new(binary())
            .args(["login", "teams", "--bridge", BRIDGE, "--timeout", "60"])
            .args(who)
            .arg("--config")
            .arg(self.setup().config_path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("login starts");
        let stdout = login.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let prompt = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.starts_with("To sign in, open "))
            .expect("the sign-in prompt");
        let (uri, code) = prompt
            .strip_prefix("To sign in, open ")
            .and_then(|rest| rest.split_once(" and enter the code "))
            .expect("prompt shape");
        assert_eq!(uri, format!("{}/devicelogin", self.sim.base_url()));
        self.sim
            .complete_device_code(code.trim(), user)
            .expect("the person signs in");
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let done = login.wait_with_output().expect("login ends");
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        rest.join("\n")
    }

    /// `switchboard login list`.
    fn list(&self) -> String {
        let out = Command::new(binary())
            .args(["login", "list", "--config"])
            .arg(self.setup().config_path())
            .output()
            .expect("login list");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn graph(&self) -> GraphClient {
        GraphClient::with_limits(self.sim.graph_url(), None).expect("graph client")
    }

    pub(crate) fn messages_path(&self) -> String {
        format!("/teams/{}/channels/{}/messages", self.team, self.channel)
    }

    /// The channel's root messages, as the app reads them.
    pub(crate) fn teams_messages(&self) -> Vec<Value> {
        let app = Secret::new(self.sim.app_token());
        self.slack
            .rt
            .block_on(
                self.graph()
                    .get_all(&self.messages_path(), Bearer::App(&app), 1000),
            )
            .expect("list messages")
    }

    /// The messages of chat `chat` (oldest first as Graph lists them), as
    /// the app reads them.
    pub(crate) fn chat_messages(&self, chat: &str) -> Vec<Value> {
        let app = Secret::new(self.sim.app_token());
        self.slack
            .rt
            .block_on(self.graph().get_all(
                &format!("/chats/{chat}/messages"),
                Bearer::App(&app),
                1000,
            ))
            .expect("list chat messages")
    }

    /// The replies under `root`.
    pub(crate) fn teams_replies(&self, root: &str) -> Vec<Value> {
        let app = Secret::new(self.sim.app_token());
        self.slack
            .rt
            .block_on(self.graph().get_all(
                &format!("{}/{root}/replies", self.messages_path()),
                Bearer::App(&app),
                1000,
            ))
            .expect("list replies")
    }

    /// The first root message whose HTML contains `text`.
    pub(crate) fn teams_message(&self, text: &str) -> Option<Value> {
        self.teams_messages()
            .into_iter()
            .find(|m| content(m).contains(text))
    }

    /// `user` replies under `root` with their own delegated token.
    pub(crate) fn reply_as(&self, user: &str, root: &str, html: &str) -> Value {
        let token = Secret::new(self.sim.delegated_token(user).expect("token"));
        let id = self.sim.seeded().users[user].clone();
        let body = json!({ "body": { "contentType": "html", "content": html } });
        self.slack
            .rt
            .block_on(self.graph().post_json(
                &format!("{}/{root}/replies", self.messages_path()),
                Bearer::User(&token, &id),
                &body,
            ))
            .expect("reply as a person")
    }

    /// `user` posts `body` (a chatMessage) in the channel with their own
    /// delegated token.
    pub(crate) fn post_as(&self, user: &str, body: &Value) -> Value {
        let token = Secret::new(self.sim.delegated_token(user).expect("token"));
        let id = self.sim.seeded().users[user].clone();
        self.slack
            .rt
            .block_on(self.graph().post_json(
                &self.messages_path(),
                Bearer::User(&token, &id),
                body,
            ))
            .expect("post as a person")
    }

    /// `user` acts through Graph with their own delegated token.
    pub(crate) fn as_person(&self, user: &str, patch: Option<&str>, html: &str) -> Value {
        let token = Secret::new(self.sim.delegated_token(user).expect("token"));
        let id = self.sim.seeded().users[user].clone();
        let body = json!({ "body": { "contentType": "html", "content": html } });
        let graph = self.graph();
        let bearer = Bearer::User(&token, &id);
        self.slack
            .rt
            .block_on(async {
                match patch {
                    Some(message) => {
                        graph
                            .patch_json(
                                &format!("{}/{message}", self.messages_path()),
                                bearer,
                                &body,
                            )
                            .await
                    }
                    None => graph.post_json(&self.messages_path(), bearer, &body).await,
                }
            })
            .expect("Graph call as a person")
    }

    pub(crate) fn slack_call(&self, who: &SlackPerson, method: &str, args: Value) -> Value {
        self.slack
            .rt
            .block_on(who.api.call(method, &who.token, args, None))
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// The Slack message whose text is exactly `text`.
    pub(crate) fn slack_message(&self, text: &str) -> Option<Value> {
        self.slack
            .sim
            .messages(&self.room())
            .into_iter()
            .find(|m| m["text"] == text)
    }

    pub(crate) fn user_id(&self, upn: &str) -> String {
        self.sim.seeded().users[upn].clone()
    }
}

pub(crate) fn content(m: &Value) -> &str {
    m.pointer("/body/content")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub(crate) fn author(m: &Value) -> &str {
    m.pointer("/from/user/id")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// No refresh token of the simulator's (`0.sim.…`) in clear in the store.
pub(crate) fn assert_no_token_in_clear(s: &Setup) {
    for entry in std::fs::read_dir(s.path("store")).expect("store dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                !bytes.windows(6).any(|w| w == b"0.sim."),
                "a refresh token in clear in {}",
                path.display()
            );
        }
    }
}

/// `switchboard login teams --service` with the daemon stopped: the service
/// account's refresh token lands in the store, sealed, and `login list`
/// (reading the store) shows it.
#[test]
fn the_service_account_signs_in_with_a_device_code() {
    let t = TeamsSetup::new();
    t.write_config();
    assert_eq!(t.list().trim(), "No logins stored.");
    let said = t.login(&["--service"], SERVICE);
    let service_id = t.user_id(SERVICE);
    assert!(said.contains(&format!("Signed in: {service_id}")), "{said}");
    let listed = t.list();
    assert_eq!(
        listed.trim(),
        format!("{BRIDGE}\tservice account\tas {service_id}\tok"),
        "{listed}"
    );
    assert_no_token_in_clear(t.setup());
    // Neither --service nor --for: refused by the command line.
    let out = Command::new(binary())
        .args(["login", "teams", "--bridge", BRIDGE, "--config"])
        .arg(t.setup().config_path())
        .output()
        .expect("runs");
    assert!(!out.status.success());
}

/// Slack ↔ Teams through one portal: a Slack message is posted in Teams by
/// the service account with an author line; what Bob writes in Teams (with
/// his own token) reaches Slack; edits both ways; a Slack thread reply lands
/// under its root in Teams.
#[test]
fn slack_and_teams_relay_both_ways() {
    let t = TeamsSetup::new();
    t.write_config();
    t.login(&["--service"], SERVICE);
    let mut daemon = t.setup().spawn();
    daemon.wait_ready(Duration::from_secs(30));
    let alice = t.slack.alice();
    let room = t.room();
    let service_id = t.user_id(SERVICE);

    // Slack → Teams, as the service account with the author line.
    let root_ts = t.slack.post(&alice, &room, "hello from Slack");
    wait_for("Slack → Teams", Duration::from_secs(20), || {
        t.teams_message("hello from Slack").is_some()
    });
    let posted = t.teams_message("hello from Slack").expect("posted");
    assert_eq!(author(&posted), service_id, "{posted}");
    assert!(
        content(&posted).contains("<b>Alice Liddell</b> (Slack): hello from Slack"),
        "{posted}"
    );

    // Teams → Slack: Bob posts with his own delegated token.
    let bob_post = t.as_person(BOB, None, "<p>hello from Teams</p>");
    let bob_id = bob_post["id"].as_str().expect("id").to_owned();
    wait_for("Teams → Slack", Duration::from_secs(20), || {
        t.slack_message("hello from Teams").is_some()
    });
    let relayed = t.slack_message("hello from Teams").expect("relayed");
    assert!(
        relayed["username"]
            .as_str()
            .is_some_and(|u| u.contains("Bob Builder")),
        "{relayed}"
    );

    // Edits both ways.
    t.as_person(BOB, Some(&bob_id), "<p>hello again from Teams</p>");
    wait_for("Teams edit → Slack", Duration::from_secs(20), || {
        t.slack_message("hello again from Teams").is_some()
    });
    t.slack_call(
        &alice,
        "chat.update",
        json!({ "channel": room, "ts": root_ts, "text": "hello from Slack, edited" }),
    );
    wait_for("Slack edit → Teams", Duration::from_secs(20), || {
        t.teams_message("hello from Slack, edited").is_some()
    });
    let edited = t
        .teams_message("hello from Slack, edited")
        .expect("edited in place");
    assert_eq!(edited["id"], posted["id"], "the same message, edited");

    // A Slack thread reply lands under its root in Teams.
    t.slack_call(
        &alice,
        "chat.postMessage",
        json!({ "channel": room, "text": "a reply in the thread", "thread_ts": root_ts }),
    );
    let root_id = posted["id"].as_str().expect("root id").to_owned();
    wait_for(
        "Slack reply → Teams reply",
        Duration::from_secs(20),
        || {
            t.teams_replies(&root_id)
                .iter()
                .any(|r| content(r).contains("a reply in the thread"))
        },
    );

    // Nothing echoed: Slack has only Bob's message from the bridge, and
    // Teams only the two posts (one root, one reply) from the service account.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        t.slack.relayed_to_slack(&room),
        ["hello again from Teams"],
        "no echo"
    );
    let roots = t.teams_messages();
    assert_eq!(roots.len(), 2, "{roots:?}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    assert_no_token_in_clear(t.setup());
    assert!(!t.setup().log().contains("0.sim."), "a token in the log");
}

/// A person links their Teams account while the daemon runs (admin API) and
/// their Slack messages appear in Teams as themselves; after an
/// administrator revokes their sessions, the next daemon's refresh is refused,
/// `login list` shows the login as needing re-authentication, and their
/// messages still arrive, through the service account with an author line.
#[test]
fn a_revoked_login_is_marked_and_falls_back_to_the_service_account() {
    let mut t = TeamsSetup::new();
    t.admin_api = true;
    t.write_config();
    // With an admin token but no daemon, logins go to the store.
    t.login(&["--service"], SERVICE);
    let mut daemon = t.setup().spawn();
    daemon.wait_ready(Duration::from_secs(30));
    let alice_slack = t.slack.sim.seeded().users["alice"].clone();
    let person = format!("slack:sim/{alice_slack}");
    // With the daemon running, through the admin API.
    let said = t.login(&["--for", &person], ANN);
    let ann_id = t.user_id(ANN);
    assert!(said.contains(&format!("as {ann_id}")), "{said}");
    let listed = t.list();
    assert!(
        listed.contains(&format!("{BRIDGE}\t{person}\tas {ann_id}\tok")),
        "{listed}"
    );

    let alice = t.slack.alice();
    let room = t.room();
    t.slack.post(&alice, &room, "as myself");
    wait_for("posted as Ann", Duration::from_secs(20), || {
        t.teams_message("as myself").is_some()
    });
    let own = t.teams_message("as myself").expect("posted");
    assert_eq!(author(&own), ann_id, "her own account: {own}");
    assert!(!content(&own).contains("<b>"), "no author line: {own}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));

    // An administrator revokes Ann's sessions while the daemon is down.
    let (refresh, _) = t.sim.revoke_tokens(ANN, true).expect("revoked");
    assert!(refresh >= 1);
    let mut daemon = t.setup().spawn();
    daemon.wait_ready(Duration::from_secs(30));
    t.slack.post(&alice, &room, "after the revocation");
    wait_for(
        "posted by the service account",
        Duration::from_secs(20),
        || t.teams_message("after the revocation").is_some(),
    );
    let fallback = t.teams_message("after the revocation").expect("posted");
    assert_eq!(author(&fallback), t.user_id(SERVICE), "{fallback}");
    assert!(
        content(&fallback).contains("<b>Alice Liddell</b> (Slack): after the revocation"),
        "{fallback}"
    );
    let listed = t.list();
    let ann_line = listed
        .lines()
        .find(|l| l.contains(&format!("as {ann_id}")))
        .unwrap_or_else(|| panic!("Ann listed: {listed}"));
    assert!(ann_line.contains("needs re-authentication: "), "{listed}");
    assert!(
        listed.contains(&format!(
            "{BRIDGE}\tservice account\tas {}\tok",
            t.user_id(SERVICE)
        )),
        "the service account goes on: {listed}"
    );
    // Later messages go the same way, and the log says it once.
    t.slack.post(&alice, &room, "still here");
    wait_for(
        "again by the service account",
        Duration::from_secs(20),
        || {
            t.teams_message("still here")
                .is_some_and(|m| author(&m) == t.user_id(SERVICE))
        },
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    let log = t.setup().log();
    assert_eq!(
        log.matches("A linked account needs its owner to sign in again")
            .count(),
        1,
        "{log}"
    );
    assert!(!log.contains("0.sim."), "a token in the log");
    assert_no_token_in_clear(t.setup());
    // The mark survives a restart: the store is read directly now.
    assert!(t.list().contains("needs re-authentication: "));
}

/// Change notifications through the daemon's own listener: the daemon
/// subscribes (answering Graph's validation), and with reconciliation slowed
/// to ten minutes a Teams message and a reply under it reach Slack within
/// seconds, the reply in the root's thread.
#[test]
fn teams_notifications_reach_the_daemon_and_replies_keep_their_thread() {
    let mut t = TeamsSetup::new();
    t.notifications = true;
    t.write_config();
    t.login(&["--service"], SERVICE);
    let mut daemon = t.setup().spawn();
    daemon.wait_ready(Duration::from_secs(30));
    // One subscription for the portal's channel, one for the service
    // account's chats (commands and direct messages), both to the daemon.
    let subs = t.sim.subscriptions();
    assert_eq!(subs.len(), 2, "{subs:?}");
    let chats = subs
        .iter()
        .filter(|s| {
            s["resource"]
                .as_str()
                .is_some_and(|r| r.ends_with("/chats/getAllMessages"))
        })
        .count();
    assert_eq!(chats, 1, "{subs:?}");
    for sub in &subs {
        assert_eq!(
            sub["notificationUrl"],
            format!("http://{}/teams/contoso/notifications", t.setup().listen)
        );
    }

    let root = t.as_person(BOB, None, "<p>notified root</p>");
    let root_id = root["id"].as_str().expect("id").to_owned();
    wait_for(
        "Teams → Slack by notification",
        Duration::from_secs(10),
        || t.slack_message("notified root").is_some(),
    );
    let slack_root = t.slack_message("notified root").expect("relayed");
    t.reply_as(BOB, &root_id, "<p>notified reply</p>");
    wait_for(
        "Teams reply → Slack thread",
        Duration::from_secs(10),
        || t.slack_message("notified reply").is_some(),
    );
    let slack_reply = t.slack_message("notified reply").expect("relayed");
    assert_eq!(slack_reply["thread_ts"], slack_root["ts"], "{slack_reply}");

    // Bad input on the notification endpoint: the documented answers, and
    // the daemon runs on.
    let listen = t.setup().listen;
    let path = "/teams/contoso/notifications";
    let post = |body: &str| http_post(listen, path, &[("Content-Type", "application/json")], body);
    let forged = json!({"value": [{
        "subscriptionId": subs[0]["id"], "clientState": "not-the-client-state",
        "changeType": "created", "tenantId": "whatever",
        "resource": format!("teams('{}')/channels('{}')/messages('1')", t.team, t.channel),
        "subscriptionExpirationDateTime": "2099-01-01T00:00:00Z"
    }]});
    assert_eq!(post(&forged.to_string()), Some(403), "wrong clientState");
    assert_eq!(post("{\"value\": ["), Some(400), "malformed JSON");
    assert_eq!(post("{\"value\": 7}"), Some(400), "not a batch");
    let huge = format!(
        "{{\"value\": [\"{}\"]}}",
        "x".repeat(switchboard_model::http::MAX_BODY + 1)
    );
    assert_eq!(post(&huge), Some(413), "over the body cap");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        t.slack_message("notified reply").is_some()
            && daemon.child.try_wait().ok().flatten().is_none(),
        "the daemon runs on"
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    assert!(
        !t.setup().log().contains("e2e-client-state"),
        "the client state in the log"
    );
}
