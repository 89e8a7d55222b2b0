//! One portal across Slack, Teams and Matrix, the real daemon between the
//! Slack simulator, the Teams simulator and Synapse: a message with
//! formatting, its edit, a thread reply, a reaction and a deletion, started
//! on each platform, arrive on both others with the right author, in the
//! right thread, with the daemon SIGKILLed and restarted half-way.
//!
//! Fails (never skips) when Synapse cannot be started.

use crate::matrix::Homeserver;
use crate::support::*;
use crate::teams::{BOB, TeamsSetup, content};
use crate::three::{Three, ThreeConfig};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchboard_teams::auth::Secret;
use switchboard_teams::client::Bearer;

const WAIT: Duration = Duration::from_secs(30);

/// The three platforms (tests/e2e/three.rs), one portal (`general`)
/// joining them.
pub(crate) struct OnePortal {
    pub t: TeamsSetup,
    pub hs: Homeserver,
    /// The portal's Matrix room, alice (of Matrix) joined.
    pub room: String,
}

impl OnePortal {
    /// Starts the simulators, Synapse and the daemon; Matrix's alice joins
    /// the portal room.
    pub(crate) fn start() -> (OnePortal, Daemon) {
        let (three, daemon) = Three::start(ThreeConfig::default());
        let Three {
            t, hs, mut rooms, ..
        } = three;
        let room = rooms.remove(0);
        (OnePortal { t, hs, room }, daemon)
    }

    /// Polls `find`; on a timeout fails with the daemon's log.
    pub(crate) fn wait<T>(&self, what: &str, find: impl FnMut() -> Option<T>) -> T {
        crate::three::wait_logged(self.t.setup(), what, find)
    }

    /// The portal room's events, oldest first, as Matrix's alice sees them.
    pub(crate) fn matrix_events(&self) -> Vec<Value> {
        let mut events = self
            .t
            .slack
            .rt
            .block_on(self.hs.alice.messages(&self.room))
            .expect("read the room");
        events.reverse();
        events
    }

    /// The Matrix message (not an edit) whose body contains `text`.
    fn matrix_message(&self, text: &str) -> Option<Value> {
        self.matrix_events().into_iter().find(|e| {
            e["type"] == "m.room.message"
                && e["content"]["m.relates_to"]["rel_type"] != "m.replace"
                && e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains(text))
        })
    }

    fn matrix_send(&self, content: Value) -> String {
        self.t
            .slack
            .rt
            .block_on(
                self.hs
                    .alice
                    .send_event(&self.room, "m.room.message", content),
            )
            .expect("send in Matrix")
    }

    /// The Slack message whose text contains `text`.
    fn slack_message(&self, text: &str) -> Option<Value> {
        self.t
            .slack
            .sim
            .messages(&self.t.room())
            .into_iter()
            .find(|m| m["text"].as_str().is_some_and(|t| t.contains(text)))
    }

    /// The Teams root or reply whose HTML contains `text`.
    fn teams_any(&self, text: &str) -> Option<Value> {
        for root in self.t.teams_messages() {
            if content(&root).contains(text) {
                return Some(root);
            }
            let id = root["id"].as_str().unwrap_or_default().to_owned();
            if let Some(reply) = self
                .t
                .teams_replies(&id)
                .into_iter()
                .find(|r| content(r).contains(text))
            {
                return Some(reply);
            }
        }
        None
    }

    /// Bob does `action` (softDelete, setReaction…) on his Teams message.
    fn teams_action(&self, message: &str, action: &str, body: Value) {
        let token = Secret::new(self.t.sim.delegated_token(BOB).expect("token"));
        let id = self.t.sim.seeded().users[BOB].clone();
        self.t
            .slack
            .rt
            .block_on(self.t.graph().post_json(
                &format!("{}/{message}/{action}", self.t.messages_path()),
                Bearer::User(&token, &id),
                &body,
            ))
            .unwrap_or_else(|e| panic!("{action}: {e}"));
    }
}

fn is_deleted(m: &Value) -> bool {
    m.get("deletedDateTime").is_some_and(|d| !d.is_null())
}

#[test]
fn every_event_kind_relays_in_every_direction_across_three_platforms() {
    let started = Instant::now();
    let (p, mut daemon) = OnePortal::start();
    let alice = p.t.slack.alice();
    let room = p.t.room();
    let bot = format!("@switchboard:{}", p.hs.synapse.server_name);

    // ----- from Slack -----
    let s1 = p.t.slack.post(&alice, &room, "S1 *bold* from Slack");
    let s1_teams = p.wait("S1 in Teams", || p.teams_any("S1"));
    assert!(content(&s1_teams).contains("Alice Liddell"), "{s1_teams}");
    assert!(
        content(&s1_teams).contains("<b>bold</b>"),
        "{}",
        content(&s1_teams)
    );
    let s1_matrix = p.wait("S1 in Matrix", || p.matrix_message("S1"));
    assert_eq!(
        s1_matrix["content"]["formatted_body"],
        "S1 <strong>bold</strong> from Slack"
    );
    let slack_ghost = s1_matrix["sender"].as_str().expect("sender").to_owned();
    assert!(slack_ghost.contains("slack_"), "a ghost: {slack_ghost}");
    let s1_event = s1_matrix["event_id"].as_str().expect("id").to_owned();

    p.t.slack_call(
        &alice,
        "chat.update",
        json!({"channel": room, "ts": s1, "text": "S1 edited from Slack"}),
    );
    p.t.slack_call(
        &alice,
        "chat.postMessage",
        json!({"channel": room, "thread_ts": s1, "text": "S1 thread reply"}),
    );
    p.t.slack_call(
        &alice,
        "reactions.add",
        json!({"channel": room, "timestamp": s1, "name": "+1"}),
    );
    let s2 = p.t.slack.post(&alice, &room, "S2 to be deleted");
    p.wait("S2 in Matrix", || p.matrix_message("S2 to be deleted"));
    p.wait("S2 in Teams", || p.teams_any("S2 to be deleted"));
    p.t.slack_call(&alice, "chat.delete", json!({"channel": room, "ts": s2}));

    p.wait("the Slack edit in Teams", || {
        p.teams_any("S1 edited from Slack")
            .filter(|m| m["id"] == s1_teams["id"])
    });
    p.wait("the Slack edit in Matrix", || {
        p.matrix_events().into_iter().find(|e| {
            e["content"]["m.relates_to"]["rel_type"] == "m.replace"
                && e["content"]["m.relates_to"]["event_id"] == s1_event.as_str()
                && e["content"]["m.new_content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("S1 edited from Slack"))
        })
    });
    let root_id = s1_teams["id"].as_str().expect("id").to_owned();
    p.wait("the Slack reply under its root in Teams", || {
        p.t.teams_replies(&root_id)
            .into_iter()
            .find(|r| content(r).contains("S1 thread reply"))
    });
    p.wait("the Slack reply in the Matrix thread", || {
        p.matrix_message("S1 thread reply").filter(|e| {
            e["content"]["m.relates_to"]["rel_type"] == "m.thread"
                && e["content"]["m.relates_to"]["event_id"] == s1_event.as_str()
        })
    });
    p.wait("the Slack reaction in Matrix", || {
        p.matrix_events().into_iter().find(|e| {
            e["type"] == "m.reaction"
                && e["content"]["m.relates_to"]["event_id"] == s1_event.as_str()
                && e["content"]["m.relates_to"]["key"] == "👍"
        })
    });
    p.wait("the Slack reaction in Teams", || {
        p.t.teams_messages()
            .into_iter()
            .find(|m| m["id"] == root_id.as_str())
            .filter(|m| m["reactions"].as_array().is_some_and(|r| !r.is_empty()))
    });
    p.wait("the Slack delete in Teams", || {
        p.t.teams_messages()
            .into_iter()
            .find(|m| is_deleted(m) || content(m).is_empty())
            .filter(|_| p.teams_any("S2 to be deleted").is_none())
    });
    p.wait("the Slack delete in Matrix", || {
        p.matrix_message("S2 to be deleted").is_none().then_some(())
    });

    // A SIGKILL and a restart half-way.
    daemon.kill9();
    let mut daemon = p.t.setup().spawn();
    daemon.wait_ready(WAIT);

    // ----- from Teams -----
    let t1 =
        p.t.as_person(BOB, None, "<p>T1 <i>italic</i> from Teams</p>");
    let t1_id = t1["id"].as_str().expect("id").to_owned();
    let t1_slack = p.wait("T1 in Slack", || p.slack_message("T1 _italic_ from Teams"));
    assert!(
        t1_slack["username"]
            .as_str()
            .is_some_and(|u| u.contains("Bob Builder")),
        "{t1_slack}"
    );
    let t1_matrix = p.wait("T1 in Matrix", || p.matrix_message("T1"));
    assert_eq!(
        t1_matrix["content"]["formatted_body"],
        "T1 <em>italic</em> from Teams"
    );
    assert!(
        t1_matrix["sender"]
            .as_str()
            .is_some_and(|s| s.contains("teams_")),
        "a Teams ghost: {t1_matrix}"
    );
    let t1_event = t1_matrix["event_id"].as_str().expect("id").to_owned();
    p.t.as_person(BOB, Some(&t1_id), "<p>T1 edited from Teams</p>");
    p.t.reply_as(BOB, &t1_id, "<p>T1 thread reply</p>");
    p.teams_action(&t1_id, "setReaction", json!({"reactionType": "like"}));
    p.wait("the Teams edit in Slack", || {
        p.slack_message("T1 edited from Teams")
            .filter(|m| m["ts"] == t1_slack["ts"])
    });
    p.wait("the Teams edit in Matrix", || {
        p.matrix_events().into_iter().find(|e| {
            e["content"]["m.relates_to"]["rel_type"] == "m.replace"
                && e["content"]["m.relates_to"]["event_id"] == t1_event.as_str()
        })
    });
    p.wait("the Teams reply in the Slack thread", || {
        p.slack_message("T1 thread reply")
            .filter(|m| m["thread_ts"] == t1_slack["ts"])
    });
    p.wait("the Teams reply in the Matrix thread", || {
        p.matrix_message("T1 thread reply").filter(|e| {
            e["content"]["m.relates_to"]["rel_type"] == "m.thread"
                && e["content"]["m.relates_to"]["event_id"] == t1_event.as_str()
        })
    });
    p.wait("the Teams reaction in Slack", || {
        p.slack_message("T1 edited from Teams")
            .filter(|m| m["reactions"].as_array().is_some_and(|r| !r.is_empty()))
    });
    p.wait("the Teams reaction in Matrix", || {
        p.matrix_events().into_iter().find(|e| {
            e["type"] == "m.reaction"
                && e["content"]["m.relates_to"]["event_id"] == t1_event.as_str()
        })
    });
    let t2 = p.t.as_person(BOB, None, "<p>T2 to be deleted</p>");
    p.wait("T2 in Slack", || p.slack_message("T2 to be deleted"));
    p.wait("T2 in Matrix", || p.matrix_message("T2 to be deleted"));
    p.teams_action(t2["id"].as_str().expect("id"), "softDelete", json!({}));
    p.wait("the Teams delete in Slack", || {
        p.slack_message("T2 to be deleted").is_none().then_some(())
    });
    p.wait("the Teams delete in Matrix", || {
        p.matrix_message("T2 to be deleted").is_none().then_some(())
    });

    // ----- from Matrix -----
    let m1 = p.matrix_send(json!({
        "msgtype": "m.text", "body": "M1 **strong** from Matrix",
        "format": "org.matrix.custom.html",
        "formatted_body": "M1 <strong>strong</strong> from Matrix",
    }));
    let m1_slack = p.wait("M1 in Slack", || p.slack_message("M1 *strong* from Matrix"));
    assert!(
        m1_slack["username"]
            .as_str()
            .is_some_and(|u| u.contains("alice")),
        "{m1_slack}"
    );
    let m1_teams = p.wait("M1 in Teams", || p.teams_any("M1"));
    assert!(content(&m1_teams).contains("<b>strong</b>"), "{m1_teams}");
    let m1_teams_id = m1_teams["id"].as_str().expect("id").to_owned();
    p.matrix_send(json!({
        "msgtype": "m.text", "body": "* M1 edited from Matrix",
        "m.new_content": {"msgtype": "m.text", "body": "M1 edited from Matrix"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": m1},
    }));
    p.matrix_send(json!({
        "msgtype": "m.text", "body": "M1 thread reply",
        "m.relates_to": {"rel_type": "m.thread", "event_id": m1, "is_falling_back": true,
                         "m.in_reply_to": {"event_id": m1}},
    }));
    p.t.slack
        .rt
        .block_on(p.hs.alice.react(&p.room, &m1, "👍"))
        .expect("react");
    p.wait("the Matrix edit in Slack", || {
        p.slack_message("M1 edited from Matrix")
            .filter(|m| m["ts"] == m1_slack["ts"])
    });
    p.wait("the Matrix edit in Teams", || {
        p.teams_any("M1 edited from Matrix")
            .filter(|m| m["id"] == m1_teams_id.as_str())
    });
    p.wait("the Matrix reply in the Slack thread", || {
        p.slack_message("M1 thread reply")
            .filter(|m| m["thread_ts"] == m1_slack["ts"])
    });
    p.wait("the Matrix reply under its root in Teams", || {
        p.t.teams_replies(&m1_teams_id)
            .into_iter()
            .find(|r| content(r).contains("M1 thread reply"))
    });
    p.wait("the Matrix reaction in Slack", || {
        p.slack_message("M1 edited from Matrix")
            .filter(|m| m["reactions"].as_array().is_some_and(|r| !r.is_empty()))
    });
    p.wait("the Matrix reaction in Teams", || {
        p.t.teams_messages()
            .into_iter()
            .find(|m| m["id"] == m1_teams_id.as_str())
            .filter(|m| m["reactions"].as_array().is_some_and(|r| !r.is_empty()))
    });
    let m2 = p.matrix_send(json!({"msgtype": "m.text", "body": "M2 to be deleted"}));
    p.wait("M2 in Slack", || p.slack_message("M2 to be deleted"));
    p.wait("M2 in Teams", || p.teams_any("M2 to be deleted"));
    p.t.slack
        .rt
        .block_on(p.hs.alice.redact(&p.room, &m2, None))
        .expect("redact");
    p.wait("the Matrix delete in Slack", || {
        p.slack_message("M2 to be deleted").is_none().then_some(())
    });
    p.wait("the Matrix delete in Teams", || {
        p.teams_any("M2 to be deleted").is_none().then_some(())
    });

    // Exactly once everywhere, and no echo: each text appears once.
    std::thread::sleep(Duration::from_secs(1));
    for text in [
        "S1 edited from Slack",
        "T1 edited from Teams",
        "M1 edited from Matrix",
    ] {
        let in_slack =
            p.t.slack
                .sim
                .messages(&room)
                .into_iter()
                .filter(|m| m["text"].as_str().is_some_and(|t| t.contains(text)))
                .count();
        assert_eq!(in_slack, 1, "{text} once in Slack");
        let in_teams =
            p.t.teams_messages()
                .into_iter()
                .filter(|m| content(m).contains(text))
                .count();
        assert_eq!(in_teams, 1, "{text} once in Teams");
    }
    let from_bot = p
        .matrix_events()
        .into_iter()
        .filter(|e| e["type"] == "m.room.message" && e["sender"] == bot.as_str())
        .count();
    assert_eq!(from_bot, 0, "everyone shown as a ghost in Matrix");
    daemon.kill9();
    eprintln!("three platforms, every kind, in {:?}", started.elapsed());
}
