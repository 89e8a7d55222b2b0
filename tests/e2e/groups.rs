//! Group conversations and linked accounts across Slack, Teams and Matrix:
//! the real daemon between the Slack simulator, the Teams simulator and
//! Synapse (the fixture of tests/e2e/three.rs).
//!
//! - A portal joining a Slack group DM, a Teams group chat and a Matrix room,
//!   two people writing on each side: every message once on every platform
//!   with its author, thread replies kept where there are threads, an edit
//!   and a reaction, and a SIGKILL with messages written while the daemon
//!   was down.
//! - People who linked their own accounts (`switchboard login` through the
//!   admin API while the daemon runs): what they write appears as
//!   themselves where linked and as a puppet elsewhere, their linked posts'
//!   echoes are not relayed back, and their edits and deletions follow,
//!   across a SIGKILL with messages written while the daemon was down.
//!   Matrix has no double puppets (the Matrix bridge always posts as a
//!   ghost), so on Matrix everyone from elsewhere is a ghost.
//!
//! Fails (never skips) when Synapse cannot be started.

use crate::slack::{SlackPerson, slack_login};
use crate::support::metric;
use crate::teams::{ANN, BOB, SERVICE, author, content};
use crate::three::{Three, ThreeConfig};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchboard_matrix::testing::MatrixUser;
use switchboard_teams::auth::Secret;
use switchboard_teams::client::Bearer;

/// Where a portal's Teams side is.
enum TeamsSide {
    /// A chat (no threads).
    Chat(String),
    /// Contoso/General (threads as replies under a root).
    General,
}

/// One portal's conversation on each platform, and the people's views of it.
struct Sides<'a> {
    three: &'a Three,
    slack: String,
    teams: TeamsSide,
    room: String,
}

impl Sides<'_> {
    // ----- Slack -----

    fn slack_all(&self) -> Vec<Value> {
        self.three.t.slack.sim.messages(&self.slack)
    }

    /// The Slack message (root or reply) whose text contains `text`.
    fn slack_find(&self, text: &str) -> Option<Value> {
        self.slack_all()
            .into_iter()
            .find(|m| m["text"].as_str().is_some_and(|t| t.contains(text)))
    }

    fn slack_count(&self, text: &str) -> usize {
        self.slack_all()
            .iter()
            .filter(|m| m["text"].as_str().is_some_and(|t| t.contains(text)))
            .count()
    }

    fn slack_call(&self, who: &SlackPerson, method: &str, args: Value) -> Value {
        self.three.t.slack_call(who, method, args)
    }

    /// `who` posts `text` (in the thread of `thread`, if given); the ts.
    fn slack_post(&self, who: &SlackPerson, text: &str, thread: Option<&str>) -> String {
        let mut args = json!({"channel": self.slack, "text": text});
        if let Some(ts) = thread {
            args["thread_ts"] = json!(ts);
        }
        self.slack_call(who, "chat.postMessage", args)["ts"]
            .as_str()
            .expect("ts")
            .to_owned()
    }

    // ----- Teams -----

    fn teams_path(&self) -> String {
        match &self.teams {
            TeamsSide::Chat(chat) => format!("/chats/{chat}/messages"),
            TeamsSide::General => self.three.t.messages_path(),
        }
    }

    /// Every Teams message of the conversation (channel replies included).
    fn teams_all(&self) -> Vec<Value> {
        let t = &self.three.t;
        match &self.teams {
            TeamsSide::Chat(chat) => t.chat_messages(chat),
            TeamsSide::General => {
                let mut all = Vec::new();
                for root in t.teams_messages() {
                    let id = root["id"].as_str().unwrap_or_default().to_owned();
                    all.push(root);
                    all.extend(t.teams_replies(&id));
                }
                all
            }
        }
    }

    fn teams_find(&self, text: &str) -> Option<Value> {
        self.teams_all()
            .into_iter()
            .find(|m| content(m).contains(text))
    }

    fn teams_count(&self, text: &str) -> usize {
        self.teams_all()
            .iter()
            .filter(|m| content(m).contains(text))
            .count()
    }

    /// `user` (a UPN) acts through Graph with their own delegated token on
    /// `suffix` of the conversation's messages path.
    fn teams_as(&self, user: &str, method: &str, suffix: &str, body: Value) -> Value {
        let t = &self.three.t;
        let token = Secret::new(t.sim.delegated_token(user).expect("token"));
        let id = t.user_id(user);
        let graph = t.graph();
        let bearer = Bearer::User(&token, &id);
        let path = format!("{}{suffix}", self.teams_path());
        t.slack
            .rt
            .block_on(async {
                match method {
                    "PATCH" => graph.patch_json(&path, bearer, &body).await,
                    _ => graph.post_json(&path, bearer, &body).await,
                }
            })
            .unwrap_or_else(|e| panic!("{method} {path} as {user}: {e}"))
    }

    /// `user` posts `html`; the message id.
    fn teams_post(&self, user: &str, html: &str) -> String {
        let body = json!({"body": {"contentType": "html", "content": html}});
        self.teams_as(user, "POST", "", body)["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    fn teams_edit(&self, user: &str, id: &str, html: &str) {
        let body = json!({"body": {"contentType": "html", "content": html}});
        self.teams_as(user, "PATCH", &format!("/{id}"), body);
    }

    // ----- Matrix -----

    /// The room's messages (no edits), oldest first.
    fn matrix_messages(&self) -> Vec<Value> {
        self.three
            .matrix_events(&self.room)
            .into_iter()
            .filter(|e| {
                e["type"] == "m.room.message"
                    && e["content"]["m.relates_to"]["rel_type"] != "m.replace"
            })
            .collect()
    }

    fn matrix_find(&self, text: &str) -> Option<Value> {
        self.matrix_messages().into_iter().find(|e| {
            e["content"]["body"]
                .as_str()
                .is_some_and(|b| b.contains(text))
        })
    }

    fn matrix_count(&self, text: &str) -> usize {
        self.matrix_messages()
            .iter()
            .filter(|e| {
                e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains(text))
            })
            .count()
    }

    /// The edit (`m.replace`) of `event` whose new body contains `text`.
    fn matrix_edit(&self, event: &str, text: &str) -> Option<Value> {
        self.three.matrix_events(&self.room).into_iter().find(|e| {
            e["content"]["m.relates_to"]["rel_type"] == "m.replace"
                && e["content"]["m.relates_to"]["event_id"] == event
                && e["content"]["m.new_content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains(text))
        })
    }

    fn matrix_send(&self, who: &MatrixUser, content: Value) -> String {
        self.three
            .t
            .slack
            .rt
            .block_on(who.send_event(&self.room, "m.room.message", content))
            .expect("send in Matrix")
    }

    fn matrix_text(&self, who: &MatrixUser, text: &str) -> String {
        self.matrix_send(who, json!({"msgtype": "m.text", "body": text}))
    }

    /// How many edits in the room set a body containing `text`.
    fn matrix_edit_count(&self, text: &str) -> usize {
        self.three
            .matrix_events(&self.room)
            .iter()
            .filter(|e| {
                e["content"]["m.relates_to"]["rel_type"] == "m.replace"
                    && e["content"]["m.new_content"]["body"]
                        .as_str()
                        .is_some_and(|b| b.contains(text))
            })
            .count()
    }

    // ----- everywhere -----

    /// Edited to `text` once on each platform: Slack and Teams show the
    /// message's new text, Matrix has one edit event.
    fn assert_edited_once_everywhere(&self, texts: &[&str]) {
        for text in texts {
            assert_eq!(self.slack_count(text), 1, "{text} once in Slack");
            assert_eq!(self.teams_count(text), 1, "{text} once in Teams");
            assert_eq!(
                self.matrix_edit_count(text),
                1,
                "{text} edited once in Matrix"
            );
        }
    }

    /// `text` once on each platform, a second after everything arrived.
    fn assert_once_everywhere(&self, texts: &[&str]) {
        for text in texts {
            assert_eq!(self.slack_count(text), 1, "{text} once in Slack");
            assert_eq!(self.teams_count(text), 1, "{text} once in Teams");
            assert_eq!(self.matrix_count(text), 1, "{text} once in Matrix");
        }
    }
}

/// The Slack username of a puppet: `Name (Platform)`, posted by our bot.
fn assert_puppet(m: &Value, name: &str) {
    assert!(m.get("bot_id").is_some(), "posted by the app: {m}");
    assert_eq!(m["username"].as_str(), Some(name), "{m}");
}

/// Posted by a person's own Slack account: their user id, no puppet name.
fn assert_own_slack(m: &Value, user: &str) {
    assert_eq!(m["user"].as_str(), Some(user), "their own account: {m}");
    assert!(
        m.get("username").is_none() && m.get("bot_id").is_none(),
        "not a puppet: {m}"
    );
}

/// Posted in Teams by the service account with the author line.
fn assert_service_line(three: &Three, m: &Value, line: &str) {
    assert_eq!(
        author(m),
        three.t.user_id(SERVICE),
        "the service account: {m}"
    );
    assert!(content(m).contains(line), "the author line {line}: {m}");
}

/// Prints the end of the daemon's log when the test fails.
struct LogOnFailure<'a>(&'a Three);

impl Drop for LogOnFailure<'_> {
    fn drop(&mut self) {
        self.0.show_log_if_panicking();
    }
}

fn is_deleted(m: &Value) -> bool {
    m.get("deletedDateTime").is_some_and(|d| !d.is_null()) || content(m).is_empty()
}

#[test]
fn group_dms_relay_between_people_on_three_platforms_through_a_restart() {
    let started = Instant::now();
    let (three, daemon) = Three::start(ThreeConfig {
        portals: 0,
        group: true,
        slack_people: vec![("carol", "Carol Chen")],
        matrix_people: vec![("mira", "Mira Matrix")],
        ..ThreeConfig::default()
    });
    let _log = LogOnFailure(&three);
    let mut daemon = Some(daemon);
    let group = three.group.as_ref().expect("the group portal");
    let sides = Sides {
        three: &three,
        slack: group.slack.clone(),
        teams: TeamsSide::Chat(group.teams.clone()),
        room: group.room.clone(),
    };
    let t = &three.t;
    let seeded = t.slack.sim.seeded();
    let (alice_s, alice_s_id) = (t.slack.alice(), seeded.users["alice"].clone());
    let (carol_id, carol) = &three.slack_people[0];
    let (alice_m, mira) = (&three.hs.alice, &three.matrix_people[0]);
    let (bob_id, ann_id) = (t.user_id(BOB), t.user_id(ANN));

    // The Slack group DM is an mpim of the bot and both Slack people; the
    // Teams chat a group chat.
    let info = sides.slack_call(
        &alice_s,
        "conversations.info",
        json!({"channel": group.slack}),
    );
    assert_eq!(info["channel"]["is_mpim"], true, "{info}");
    let chat = t.slack.rt.block_on(t.graph().get_json(
        &format!("/chats/{}", group.teams),
        Bearer::App(&Secret::new(t.sim.app_token())),
    ));
    assert_eq!(chat.expect("the chat")["chatType"], "group");

    // ----- two people on each side write -----
    let ga1 = sides.slack_post(&alice_s, "[ga1] hello from Slack's Alice", None);
    let ga2 = sides.slack_post(carol, "[ga2] hello from Slack's Carol", None);
    sides.teams_post(BOB, "<p>[gb1] hello from Teams' Bob</p>");
    let gb2 = sides.teams_post(ANN, "<p>[gb2] hello from Teams' Ann</p>");
    let gc1 = sides.matrix_text(alice_m, "[gc1] hello from Matrix's alice");
    sides.matrix_text(mira, "[gc2] hello from Matrix's Mira");

    // In Slack: Teams and Matrix people as puppets.
    for (tag, name) in [
        ("[gb1]", "Bob Builder (Teams)"),
        ("[gb2]", "Ann Lee (Teams)"),
        ("[gc1]", "alice (Matrix)"),
        ("[gc2]", "Mira Matrix (Matrix)"),
    ] {
        let m = three.wait(&format!("{tag} in Slack"), || sides.slack_find(tag));
        assert_puppet(&m, name);
    }
    // In Teams: everyone from elsewhere through the service account, named.
    for (tag, line) in [
        ("[ga1]", "<b>Alice Liddell</b> (Slack): "),
        ("[ga2]", "<b>Carol Chen</b> (Slack): "),
        ("[gc1]", "<b>alice</b> (Matrix): "),
        ("[gc2]", "<b>Mira Matrix</b> (Matrix): "),
    ] {
        let m = three.wait(&format!("{tag} in Teams"), || sides.teams_find(tag));
        assert_service_line(&three, &m, line);
    }
    // In Matrix: each person's own ghost.
    for (tag, ghost) in [
        ("[ga1]", three.ghost("slack:sim", &alice_s_id)),
        ("[ga2]", three.ghost("slack:sim", carol_id)),
        ("[gb1]", three.ghost(crate::teams::BRIDGE, &bob_id)),
        ("[gb2]", three.ghost(crate::teams::BRIDGE, &ann_id)),
    ] {
        let e = three.wait(&format!("{tag} in Matrix"), || sides.matrix_find(tag));
        assert_eq!(e["sender"], ghost.as_str(), "{tag}: {e}");
    }

    // ----- threads, an edit, a reaction -----
    // Carol answers Bob in a Slack thread; Mira answers Alice in a Matrix
    // thread. Teams chats have no threads: the answers arrive in the chat.
    let gb1_slack = sides.slack_find("[gb1]").expect("gb1 in Slack");
    let gb1_ts = gb1_slack["ts"].as_str().expect("ts").to_owned();
    sides.slack_post(carol, "[gt1] Carol answers Bob", Some(&gb1_ts));
    let ga1_event = sides.matrix_find("[ga1]").expect("ga1 in Matrix")["event_id"]
        .as_str()
        .expect("id")
        .to_owned();
    sides.matrix_send(
        mira,
        json!({
            "msgtype": "m.text", "body": "[gt2] Mira answers Alice",
            "m.relates_to": {"rel_type": "m.thread", "event_id": ga1_event,
                             "is_falling_back": true, "m.in_reply_to": {"event_id": ga1_event}},
        }),
    );
    let gb1_event = sides.matrix_find("[gb1]").expect("gb1 in Matrix")["event_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let gt1 = three.wait("Carol's answer in Bob's Matrix thread", || {
        sides.matrix_find("[gt1]")
    });
    assert_eq!(
        gt1["content"]["m.relates_to"]["rel_type"], "m.thread",
        "{gt1}"
    );
    assert_eq!(
        gt1["content"]["m.relates_to"]["event_id"],
        gb1_event.as_str()
    );
    assert_eq!(gt1["sender"], three.ghost("slack:sim", carol_id).as_str());
    let gt2 = three.wait("Mira's answer in Alice's Slack thread", || {
        sides.slack_find("[gt2]")
    });
    assert_eq!(gt2["thread_ts"].as_str(), Some(ga1.as_str()), "{gt2}");
    assert_puppet(&gt2, "Mira Matrix (Matrix)");
    for tag in ["[gt1]", "[gt2]"] {
        three.wait(&format!("{tag} in the Teams chat"), || {
            sides.teams_find(tag)
        });
    }

    // Ann edits her message in Teams; Mira reacts to Carol's in Matrix.
    sides.teams_edit(ANN, &gb2, "<p>[gb2] hello from Teams' Ann, edited</p>");
    let ga2_event = sides.matrix_find("[ga2]").expect("ga2 in Matrix")["event_id"]
        .as_str()
        .expect("id")
        .to_owned();
    t.slack
        .rt
        .block_on(mira.react(&sides.room, &ga2_event, "👍"))
        .expect("react");
    three.wait("Ann's edit in Slack", || {
        sides
            .slack_find("hello from Teams' Ann, edited")
            .filter(|m| m["ts"] == sides.slack_find("[gb2]").expect("gb2")["ts"])
    });
    let gb2_event = sides.matrix_find("[gb2]").expect("gb2 in Matrix")["event_id"]
        .as_str()
        .expect("id")
        .to_owned();
    three.wait("Ann's edit in Matrix", || {
        sides.matrix_edit(&gb2_event, "hello from Teams' Ann, edited")
    });
    let reacted = three.wait("Mira's reaction on Carol's Slack message", || {
        sides
            .slack_find("[ga2]")
            .filter(|m| m["ts"] == ga2.as_str())
            .filter(|m| m["reactions"].as_array().is_some_and(|r| !r.is_empty()))
    });
    assert_eq!(reacted["reactions"][0]["name"], "+1", "{reacted}");
    assert_eq!(reacted["reactions"][0]["count"], 1, "{reacted}");
    three.wait("Mira's reaction in Teams", || {
        sides
            .teams_find("[ga2]")
            .filter(|m| m["reactions"].as_array().is_some_and(|r| !r.is_empty()))
    });
    // Bob reacts in the Teams chat to Mira's message; Carol in Slack to Bob's.
    let gc2_teams = sides.teams_find("[gc2]").expect("gc2 in Teams")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    sides.teams_as(
        BOB,
        "POST",
        &format!("/{gc2_teams}/setReaction"),
        json!({"reactionType": "like"}),
    );
    sides.slack_call(
        carol,
        "reactions.add",
        json!({"channel": group.slack, "timestamp": gb1_ts, "name": "tada"}),
    );
    let gc2_event = sides.matrix_find("[gc2]").expect("gc2 in Matrix")["event_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let reacted = three.wait("Bob's Teams reaction in Matrix", || {
        three.matrix_events(&sides.room).into_iter().find(|e| {
            e["type"] == "m.reaction"
                && e["content"]["m.relates_to"]["event_id"] == gc2_event.as_str()
        })
    });
    assert_eq!(
        reacted["sender"],
        three.ghost(crate::teams::BRIDGE, &bob_id).as_str()
    );
    three.wait("Bob's Teams reaction in Slack", || {
        sides
            .slack_find("[gc2]")
            .filter(|m| m["reactions"].as_array().is_some_and(|r| !r.is_empty()))
    });
    let reacted = three.wait("Carol's Slack reaction in Matrix", || {
        three.matrix_events(&sides.room).into_iter().find(|e| {
            e["type"] == "m.reaction"
                && e["content"]["m.relates_to"]["event_id"] == gb1_event.as_str()
        })
    });
    assert_eq!(reacted["content"]["m.relates_to"]["key"], "🎉", "{reacted}");
    assert_eq!(
        reacted["sender"],
        three.ghost("slack:sim", carol_id).as_str()
    );
    three.wait("Carol's Slack reaction in Teams", || {
        sides
            .teams_find("[gb1]")
            .filter(|m| m["reactions"].as_array().is_some_and(|r| !r.is_empty()))
    });

    // ----- a SIGKILL; everyone writes while the daemon is down -----
    daemon.take().expect("the daemon").kill9();
    sides.slack_post(carol, "[gd1] Carol while it was down", None);
    sides.slack_post(&alice_s, "[gd2] Alice while it was down", Some(&ga1));
    sides.teams_post(BOB, "<p>[gd3] Bob while it was down</p>");
    sides.teams_post(ANN, "<p>[gd4] Ann while it was down</p>");
    sides.matrix_text(alice_m, "[gd5] alice while it was down");
    sides.matrix_text(mira, "[gd6] Mira while it was down");
    let _daemon = three.spawn_ready();
    for tag in ["[gd1]", "[gd2]", "[gd3]", "[gd4]", "[gd5]", "[gd6]"] {
        if !matches!(tag, "[gd1]" | "[gd2]") {
            three.wait(&format!("{tag} in Slack"), || sides.slack_find(tag));
        }
        if !matches!(tag, "[gd3]" | "[gd4]") {
            three.wait(&format!("{tag} in Teams"), || sides.teams_find(tag));
        }
        if !matches!(tag, "[gd5]" | "[gd6]") {
            three.wait(&format!("{tag} in Matrix"), || sides.matrix_find(tag));
        }
    }
    // Alice's reply written while the daemon was down kept its thread.
    let gd2 = sides.matrix_find("[gd2]").expect("gd2 in Matrix");
    assert_eq!(
        gd2["content"]["m.relates_to"]["event_id"],
        ga1_event.as_str()
    );
    assert_eq!(
        sides.slack_find("[gd6]").expect("gd6")["username"],
        "Mira Matrix (Matrix)"
    );

    // After the restart: an edit of a message from before it still finds
    // its copies.
    sides.slack_call(
        &alice_s,
        "chat.update",
        json!({"channel": group.slack, "ts": ga1, "text": "[ga1] hello again from Slack's Alice"}),
    );
    three.wait("Alice's edit in Teams", || {
        sides.teams_find("hello again from Slack's Alice")
    });
    three.wait("Alice's edit in Matrix", || {
        sides.matrix_edit(&ga1_event, "hello again from Slack's Alice")
    });
    // And a Matrix edit of a message from before it.
    sides.matrix_send(
        alice_m,
        json!({
            "msgtype": "m.text", "body": "* [gc1] hello again from Matrix's alice",
            "m.new_content": {"msgtype": "m.text", "body": "[gc1] hello again from Matrix's alice"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": gc1},
        }),
    );
    three.wait("alice's Matrix edit in Slack", || {
        sides.slack_find("hello again from Matrix's alice")
    });
    three.wait("alice's Matrix edit in Teams", || {
        sides.teams_find("hello again from Matrix's alice")
    });

    // Nothing lost, nothing doubled, nothing echoed.
    std::thread::sleep(Duration::from_secs(1));
    sides.assert_once_everywhere(&[
        "[ga1]", "[ga2]", "[gb1]", "[gb2]", "[gc1]", "[gc2]", "[gt1]", "[gt2]", "[gd1]", "[gd2]",
        "[gd3]", "[gd4]", "[gd5]", "[gd6]",
    ]);
    sides.assert_edited_once_everywhere(&[
        "hello again from Slack's Alice",
        "hello from Teams' Ann, edited",
        "hello again from Matrix's alice",
    ]);
    let bot = format!("@switchboard:{}", three.hs.synapse.server_name);
    assert!(
        sides
            .matrix_messages()
            .iter()
            .all(|e| e["sender"] != bot.as_str()),
        "everyone shown as a ghost in Matrix"
    );
    // Three reactions, each once on every platform.
    for tag in ["[ga2]", "[gb1]", "[gc2]"] {
        let in_teams = sides
            .teams_find(tag)
            .and_then(|m| m["reactions"].as_array().map(Vec::len));
        assert_eq!(in_teams, Some(1), "one reaction on {tag} in Teams");
        let in_slack = sides
            .slack_find(tag)
            .and_then(|m| m["reactions"].as_array().map(Vec::len));
        assert_eq!(in_slack, Some(1), "one reaction on {tag} in Slack");
    }
    let in_matrix = three
        .matrix_events(&sides.room)
        .iter()
        .filter(|e| e["type"] == "m.reaction")
        .count();
    assert_eq!(in_matrix, 3, "three reactions in Matrix");
    let slack_reactions = sides.slack_find("[ga2]").map(|m| m["reactions"].clone());
    assert_eq!(
        slack_reactions,
        Some(json!([{"name": "+1", "users": [seeded.bot_user_id], "count": 1}])),
        "one reaction in Slack, by the app"
    );
    eprintln!("group DMs on three platforms in {:?}", started.elapsed());
}

#[test]
fn linked_accounts_post_as_their_owners_across_three_platforms() {
    let started = Instant::now();
    let (three, mut daemon) = Three::start(ThreeConfig {
        logins: true,
        slack_people: vec![("bob", "Bob Builder")],
        matrix_people: vec![("mira", "Mira Matrix")],
        ..ThreeConfig::default()
    });
    let _log = LogOnFailure(&three);
    let t = &three.t;
    let sides = Sides {
        three: &three,
        slack: t.room(),
        teams: TeamsSide::General,
        room: three.rooms[0].clone(),
    };
    let seeded = t.slack.sim.seeded();
    let (alice_s, alice_s_id) = (t.slack.alice(), seeded.users["alice"].clone());
    let (bob_s_id, bob_s) = &three.slack_people[0];
    let bob_t_id = t.user_id(BOB);
    let (alice_m, mira) = (&three.hs.alice, &three.matrix_people[0]);

    // Bob has an account on Slack and one on Teams and links each for the
    // other; Matrix's alice links Slack's Alice. All through the admin API.
    t.login(&["--for", &format!("slack:sim/{bob_s_id}")], BOB);
    slack_login(
        t.setup(),
        "slack:sim",
        &format!("{}/{bob_t_id}", crate::teams::BRIDGE),
        bob_s_id,
    );
    slack_login(
        t.setup(),
        "slack:sim",
        &format!("{}/{}", crate::matrix::BRIDGE, alice_m.user_id),
        &alice_s_id,
    );

    // ----- linked people write -----
    let l1 = sides.slack_post(bob_s, "[l1] Bob writes in Slack", None);
    let l2 = sides.teams_post(BOB, "<p>[l2] Bob writes in Teams</p>");
    let l3 = sides.matrix_text(alice_m, "[l3] alice writes in Matrix");
    let l1_teams = three.wait("[l1] in Teams", || sides.teams_find("[l1]"));
    assert_eq!(
        author(&l1_teams),
        bob_t_id,
        "as Bob's Teams account: {l1_teams}"
    );
    assert!(
        !content(&l1_teams).contains("<b>"),
        "no author line: {l1_teams}"
    );
    let l1_matrix = three.wait("[l1] in Matrix", || sides.matrix_find("[l1]"));
    assert_eq!(
        l1_matrix["sender"],
        three.ghost("slack:sim", bob_s_id).as_str()
    );
    let l2_slack = three.wait("[l2] in Slack", || sides.slack_find("[l2]"));
    assert_own_slack(&l2_slack, bob_s_id);
    let l2_matrix = three.wait("[l2] in Matrix", || sides.matrix_find("[l2]"));
    assert_eq!(
        l2_matrix["sender"],
        three.ghost(crate::teams::BRIDGE, &bob_t_id).as_str()
    );
    let l3_slack = three.wait("[l3] in Slack", || sides.slack_find("[l3]"));
    assert_own_slack(&l3_slack, &alice_s_id);
    let l3_teams = three.wait("[l3] in Teams", || sides.teams_find("[l3]"));
    assert_service_line(&three, &l3_teams, "<b>alice</b> (Matrix): ");

    // ----- people without a link: puppets -----
    sides.slack_post(&alice_s, "[l4] Alice writes in Slack", None);
    sides.teams_post(ANN, "<p>[l5] Ann writes in Teams</p>");
    sides.matrix_text(mira, "[l6] Mira writes in Matrix");
    let m = three.wait("[l4] in Teams", || sides.teams_find("[l4]"));
    assert_service_line(&three, &m, "<b>Alice Liddell</b> (Slack): ");
    let e = three.wait("[l4] in Matrix", || sides.matrix_find("[l4]"));
    assert_eq!(e["sender"], three.ghost("slack:sim", &alice_s_id).as_str());
    let m = three.wait("[l5] in Slack", || sides.slack_find("[l5]"));
    assert_puppet(&m, "Ann Lee (Teams)");
    three.wait("[l5] in Matrix", || sides.matrix_find("[l5]"));
    let m = three.wait("[l6] in Slack", || sides.slack_find("[l6]"));
    assert_puppet(&m, "Mira Matrix (Matrix)");
    let m = three.wait("[l6] in Teams", || sides.teams_find("[l6]"));
    assert_service_line(&three, &m, "<b>Mira Matrix</b> (Matrix): ");

    // Bob answers his own message in its Teams thread: in Slack, as him, in
    // the thread.
    three
        .t
        .reply_as(BOB, &l2, "<p>[l7] Bob answers in the Teams thread</p>");
    let l7 = three.wait("[l7] in Slack", || sides.slack_find("[l7]"));
    assert_own_slack(&l7, bob_s_id);
    assert_eq!(l7["thread_ts"], l2_slack["ts"], "{l7}");
    let l7_matrix = three.wait("[l7] in Matrix", || sides.matrix_find("[l7]"));
    assert_eq!(
        l7_matrix["content"]["m.relates_to"]["event_id"],
        l2_matrix["event_id"]
    );

    // The echoes of the linked posts were not relayed back.
    std::thread::sleep(Duration::from_secs(1));
    sides.assert_once_everywhere(&["[l1]", "[l2]", "[l3]", "[l4]", "[l5]", "[l6]", "[l7]"]);

    // ----- a SIGKILL; Bob writes on both sides while the daemon is down -----
    daemon.kill9();
    sides.slack_post(bob_s, "[l8] Bob in Slack while it was down", None);
    sides.teams_post(BOB, "<p>[l9] Bob in Teams while it was down</p>");
    let _daemon = three.spawn_ready();
    let l8 = three.wait("[l8] in Teams", || sides.teams_find("[l8]"));
    assert_eq!(author(&l8), bob_t_id, "as Bob's Teams account: {l8}");
    let l9 = three.wait("[l9] in Slack", || sides.slack_find("[l9]"));
    assert_own_slack(&l9, bob_s_id);
    three.wait("[l8] in Matrix", || sides.matrix_find("[l8]"));
    three.wait("[l9] in Matrix", || sides.matrix_find("[l9]"));

    // ----- edits of linked posts -----
    let l1_teams_id = l1_teams["id"].as_str().expect("id").to_owned();
    sides.slack_call(
        bob_s,
        "chat.update",
        json!({"channel": sides.slack, "ts": l1, "text": "[l1] Bob edits in Slack"}),
    );
    sides.teams_edit(BOB, &l2, "<p>[l2] Bob edits in Teams</p>");
    sides.matrix_send(
        alice_m,
        json!({
            "msgtype": "m.text", "body": "* [l3] alice edits in Matrix",
            "m.new_content": {"msgtype": "m.text", "body": "[l3] alice edits in Matrix"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": l3},
        }),
    );
    let edited = three.wait("Bob's Slack edit in Teams", || {
        sides
            .teams_find("Bob edits in Slack")
            .filter(|m| m["id"] == l1_teams_id.as_str())
    });
    assert_eq!(author(&edited), bob_t_id, "still as Bob: {edited}");
    three.wait("Bob's Slack edit in Matrix", || {
        sides.matrix_edit(
            l1_matrix["event_id"].as_str().expect("id"),
            "Bob edits in Slack",
        )
    });
    let edited = three.wait("Bob's Teams edit in Slack", || {
        sides
            .slack_find("Bob edits in Teams")
            .filter(|m| m["ts"] == l2_slack["ts"])
    });
    assert_own_slack(&edited, bob_s_id);
    three.wait("Bob's Teams edit in Matrix", || {
        sides.matrix_edit(
            l2_matrix["event_id"].as_str().expect("id"),
            "Bob edits in Teams",
        )
    });
    let edited = three.wait("alice's Matrix edit in Slack", || {
        sides
            .slack_find("alice edits in Matrix")
            .filter(|m| m["ts"] == l3_slack["ts"])
    });
    assert_own_slack(&edited, &alice_s_id);
    three.wait("alice's Matrix edit in Teams", || {
        sides
            .teams_find("alice edits in Matrix")
            .filter(|m| m["id"] == l3_teams["id"])
    });
    std::thread::sleep(Duration::from_secs(1));
    sides.assert_edited_once_everywhere(&[
        "Bob edits in Slack",
        "Bob edits in Teams",
        "alice edits in Matrix",
    ]);

    // ----- deletions of linked posts -----
    sides.slack_call(
        bob_s,
        "chat.delete",
        json!({"channel": sides.slack, "ts": l1}),
    );
    sides.teams_as(BOB, "POST", &format!("/{l2}/softDelete"), json!({}));
    t.slack
        .rt
        .block_on(alice_m.redact(&sides.room, &l3, None))
        .expect("redact");
    for tag in ["[l1]", "[l2]", "[l3]"] {
        three.wait(&format!("{tag} deleted everywhere"), || {
            (sides.slack_count(tag) == 0
                && sides.teams_count(tag) == 0
                && sides.matrix_count(tag) == 0)
                .then_some(())
        });
    }
    let deleted = sides
        .teams_all()
        .into_iter()
        .filter(|m| m["id"] == l1_teams_id.as_str() || m["id"] == l3_teams["id"])
        .filter(is_deleted)
        .count();
    assert_eq!(deleted, 2, "deleted in place in Teams");
    std::thread::sleep(Duration::from_secs(1));
    sides.assert_once_everywhere(&["[l4]", "[l5]", "[l6]", "[l7]", "[l8]", "[l9]"]);
    // What the restarted daemon delivered, per platform: each message, edit
    // and deletion once to each other platform, no echo relayed back.
    for (bridge, sends) in [
        ("slack:sim", 1.0),
        (crate::teams::BRIDGE, 1.0),
        (crate::matrix::BRIDGE, 2.0),
    ] {
        for (kind, n) in [("send", sends), ("edit", 2.0), ("delete", 2.0)] {
            let delivered = metric(
                three.setup().listen,
                &format!("switchboard_delivered_total{{bridge=\"{bridge}\",kind=\"{kind}\"}}"),
            );
            assert_eq!(delivered, Some(n), "{kind}s delivered to {bridge}");
        }
    }
    eprintln!(
        "linked accounts on three platforms in {:?}",
        started.elapsed()
    );
}
