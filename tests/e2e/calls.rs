//! Calls and meetings across three platforms: the daemon with the Slack
//! connector against the Slack simulator, the Teams connector against the
//! Graph simulator and the Matrix bridge against a real Synapse, one portal
//! joining Slack channel `room0`, Teams channel Contoso/General and a Matrix
//! portal room. A call started on one side shows on each other side as one
//! invite with its join link (a card by the service account in Teams, a
//! `calls.add` call with a call block in Slack, a widget and a notice in
//! Matrix), and its end edits those invites; a meeting asked for with
//! `!call` in Matrix is created once, in Teams, and announced everywhere.
//!
//! Every test fails (never skips) when Synapse cannot be started.

use crate::matrix::{Homeserver, WAIT, wait_value};
use crate::support::*;
use crate::teams::{BOB, SERVICE, TeamsSetup, author, content};
use crate::three::{Three, ThreeConfig, show_log_if_panicking, spawn_ready};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard_model::call::format_duration;
use switchboard_slack_sim::state::Call as SlackCall;

/// Widgets (Element's integration manager format).
const WIDGETS: &str = "im.vector.modular.widgets";

/// The three platforms, the daemon's configuration, and the Matrix portal
/// room alice joined.
struct Calls {
    t: TeamsSetup,
    hs: Homeserver,
    /// The Matrix portal room's id.
    room: String,
}

impl Calls {
    /// Starts the simulators and Synapse, signs the Teams service account
    /// in, starts the daemon and has alice join the portal room.
    fn start() -> (Calls, Daemon) {
        Calls::start_with("")
    }

    /// As [`Calls::start`], with `portal` (lines) added to the portal's table.
    fn start_with(portal: &str) -> (Calls, Daemon) {
        let (three, daemon) = Three::start(ThreeConfig {
            portal_extra: portal.into(),
            ..ThreeConfig::default()
        });
        let Three {
            t, hs, mut rooms, ..
        } = three;
        let calls = Calls {
            t,
            hs,
            room: rooms.remove(0),
        };
        (calls, daemon)
    }

    fn setup(&self) -> &Setup {
        self.t.setup()
    }

    fn spawn_ready(&self) -> Daemon {
        spawn_ready(self.setup(), WAIT)
    }

    // ----- Slack -----

    fn slack_room(&self) -> String {
        self.t.room()
    }

    /// Every call registered with `calls.add`, as the simulator keeps it.
    fn slack_calls(&self) -> Vec<SlackCall> {
        self.t
            .slack
            .sim
            .inner()
            .mutate(|st, _| st.calls.values().cloned().collect())
    }

    /// What the bot posted in the Slack channel.
    fn slack_bot_messages(&self) -> Vec<Value> {
        self.t
            .slack
            .sim
            .messages(&self.slack_room())
            .into_iter()
            .filter(|m| m.get("bot_id").is_some())
            .collect()
    }

    /// The bot's messages showing Slack call `call` in a call block.
    fn slack_call_blocks(&self, call: &str) -> Vec<Value> {
        self.slack_bot_messages()
            .into_iter()
            .filter(|m| {
                m["blocks"].as_array().is_some_and(|blocks| {
                    blocks
                        .iter()
                        .any(|b| b["type"] == "call" && b["call_id"] == call)
                })
            })
            .collect()
    }

    /// (start, end) of a huddle, unix seconds (end 0 while it runs).
    fn huddle_times(&self, huddle: &str) -> (i64, i64) {
        self.t.slack.sim.inner().mutate(|st, _| {
            let h = &st.huddles[huddle];
            (h.date_start, h.date_end)
        })
    }

    /// Alice starts a huddle in the Slack channel; returns its id.
    fn start_huddle(&self) -> String {
        let _runtime = self.t.slack.rt.enter();
        let (huddle, _) = self
            .t
            .slack
            .sim
            .start_huddle(&self.slack_room(), "alice")
            .expect("huddle starts");
        huddle
    }

    /// The huddle ends (everyone left); returns how long it took, as the
    /// invites should say it.
    fn end_huddle(&self, huddle: &str) -> String {
        {
            let _runtime = self.t.slack.rt.enter();
            self.t.slack.sim.end_huddle(huddle).expect("huddle ends");
        }
        let (start, end) = self.huddle_times(huddle);
        format!(
            "ended after {}",
            format_duration(Duration::from_secs(
                u64::try_from(end - start).expect("ends after it starts")
            ))
        )
    }

    fn huddle_link(&self) -> String {
        let team = self.t.slack.sim.inner().mutate(|st, _| st.team.id.clone());
        format!("https://app.slack.com/huddle/{team}/{}", self.slack_room())
    }

    // ----- Teams -----

    /// Call cards in the Teams channel (root messages about a call).
    fn teams_cards(&self) -> Vec<Value> {
        self.t
            .teams_messages()
            .into_iter()
            .filter(|m| content(m).contains("📞"))
            .collect()
    }

    /// The one call card, once there is one (more than one fails).
    fn teams_card(&self) -> Value {
        let card = wait_value("the call card in Teams", WAIT, || {
            self.teams_cards().into_iter().next()
        });
        let cards = self.teams_cards();
        assert_eq!(cards.len(), 1, "one card: {cards:#?}");
        assert_eq!(
            author(&card),
            self.t.user_id(SERVICE),
            "posted by the service account: {card}"
        );
        card
    }

    /// Posts in the Teams channel, by anyone, that are not call cards and
    /// not the simulator's system messages.
    fn teams_other_posts(&self) -> Vec<Value> {
        self.t
            .teams_messages()
            .into_iter()
            .filter(|m| m["messageType"] != "systemEventMessage" && !content(m).contains("📞"))
            .collect()
    }

    /// `POST {Teams simulator}/_admin/meetings/{action}`.
    fn teams_admin(&self, action: &str, body: &Value) -> Value {
        let (status, answer) = http_request(
            self.t.sim.addr(),
            "POST",
            &format!("/_admin/meetings/{action}"),
            &[],
            &body.to_string(),
        )
        .unwrap_or_else(|| panic!("no answer from the Teams simulator's admin API"));
        assert_eq!(status, 200, "{action}: {answer}");
        serde_json::from_str(&answer).expect("JSON answer")
    }

    // ----- Matrix -----

    fn bot(&self) -> String {
        self.hs.synapse.user_id("switchboard")
    }

    /// The portal room's latest events, oldest first.
    fn matrix_events(&self) -> Vec<Value> {
        let mut events = self
            .t
            .slack
            .rt
            .block_on(self.hs.alice.messages(&self.room))
            .expect("read the room");
        events.reverse();
        events
    }

    /// The bot's call notices (not their edits).
    fn matrix_notices(&self) -> Vec<Value> {
        self.matrix_events()
            .into_iter()
            .filter(|e| {
                e["type"] == "m.room.message"
                    && e["sender"] == self.bot().as_str()
                    && e["content"]["msgtype"] == "m.notice"
                    && e["content"]["m.relates_to"]["rel_type"] != "m.replace"
                    && e["content"]["body"]
                        .as_str()
                        .is_some_and(|b| b.contains("📞"))
            })
            .collect()
    }

    /// The one call notice, once there is one (more than one fails).
    fn matrix_notice(&self) -> Value {
        let notice = wait_value("the call notice in Matrix", WAIT, || {
            self.matrix_notices().into_iter().next()
        });
        let notices = self.matrix_notices();
        assert_eq!(notices.len(), 1, "one notice: {notices:#?}");
        notice
    }

    /// The edits of event `id`, oldest first.
    fn matrix_edits(&self, id: &str) -> Vec<Value> {
        self.matrix_events()
            .into_iter()
            .filter(|e| {
                e["content"]["m.relates_to"]["rel_type"] == "m.replace"
                    && e["content"]["m.relates_to"]["event_id"] == id
            })
            .collect()
    }

    /// Widget state events in the room, oldest first.
    fn matrix_widgets(&self) -> Vec<Value> {
        self.matrix_events()
            .into_iter()
            .filter(|e| e["type"] == WIDGETS && e.get("state_key").is_some())
            .collect()
    }

    /// The widget events that added a call (non-empty content).
    fn matrix_widgets_added(&self) -> Vec<Value> {
        self.matrix_widgets()
            .into_iter()
            .filter(|e| e["content"].as_object().is_some_and(|c| !c.is_empty()))
            .collect()
    }

    /// Messages in the room that are neither call notices nor their edits
    /// (none must be relayed for a call).
    fn matrix_other_messages(&self) -> Vec<Value> {
        let notices: Vec<Value> = self
            .matrix_notices()
            .iter()
            .map(|n| n["event_id"].clone())
            .collect();
        self.matrix_events()
            .into_iter()
            .filter(|e| e["type"] == "m.room.message")
            .filter(|e| !notices.contains(&e["event_id"]))
            .filter(|e| !notices.contains(&e["content"]["m.relates_to"]["event_id"]))
            .filter(|e| e["sender"] != self.hs.alice.user_id.as_str())
            .collect()
    }

    /// Checks the Matrix side of a running call: one widget by the bot
    /// opening `join`, and one notice with `join` as a link. Returns the
    /// notice's event id and the widget's state key.
    fn matrix_started(&self, join: &str) -> (String, String) {
        let notice = self.matrix_notice();
        let body = notice["content"]["body"].as_str().unwrap_or_default();
        assert!(body.contains(join), "the join link in the notice: {notice}");
        let html = notice["content"]["formatted_body"]
            .as_str()
            .unwrap_or_default();
        assert!(
            html.contains(&format!("href=\"{}\"", html_escape(join))),
            "the join link as a link: {notice}"
        );
        let widget = wait_value("the call widget in Matrix", WAIT, || {
            self.matrix_widgets_added().into_iter().next()
        });
        let added = self.matrix_widgets_added();
        assert_eq!(added.len(), 1, "one widget: {added:#?}");
        assert_eq!(widget["sender"], self.bot().as_str(), "{widget}");
        assert_eq!(widget["content"]["url"], join, "{widget}");
        (
            notice["event_id"].as_str().expect("event id").to_owned(),
            widget["state_key"].as_str().expect("state key").to_owned(),
        )
    }

    /// Waits for the Matrix side of an ended call: the notice edited in
    /// place to say it ended after `ended` (once, with `once`), the widget
    /// removed.
    fn matrix_ended(&self, notice: &str, widget: &str, ended: &str, once: bool) {
        let edit = wait_value("the notice edited to the end", WAIT, || {
            self.matrix_edits(notice).into_iter().find(|e| {
                e["content"]["m.new_content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("ended"))
            })
        });
        let body = edit["content"]["m.new_content"]["body"]
            .as_str()
            .unwrap_or_default();
        assert!(body.contains(ended), "{ended:?} in the edit: {edit}");
        assert_eq!(edit["sender"], self.bot().as_str());
        wait_for("the widget removed", WAIT, || {
            self.matrix_widgets().last().is_some_and(|w| {
                w["state_key"] == widget && w["content"].as_object().is_some_and(|c| c.is_empty())
            })
        });
        let notices = self.matrix_notices();
        assert_eq!(notices.len(), 1, "no second notice: {notices:#?}");
        let ends: Vec<Value> = self
            .matrix_edits(notice)
            .into_iter()
            .filter(|e| {
                e["content"]["m.new_content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("ended"))
            })
            .collect();
        if once {
            assert_eq!(ends.len(), 1, "the end told once: {ends:#?}");
        }
        for e in &ends {
            assert_eq!(
                e["content"]["m.new_content"], edit["content"]["m.new_content"],
                "every edit says the same end: {ends:#?}"
            );
        }
    }
}

impl Drop for Calls {
    fn drop(&mut self) {
        show_log_if_panicking(self.setup(), 80);
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The Teams card's HTML contains `<a href="{url}">`.
fn card_links_to(card: &Value, url: &str) -> bool {
    let html = content(card);
    html.contains(&format!("href=\"{}\"", html_escape(url)))
        || html.contains(&format!("href=\"{url}\""))
}

/// A huddle started in Slack: one card in Teams, one widget and one notice
/// in Matrix, each with the huddle's link; its end edits the card and the
/// notice to say how long it took and removes the widget.
#[test]
fn a_slack_huddle_shows_in_teams_and_matrix_until_it_ends() {
    let (c, mut daemon) = Calls::start();
    let join = c.huddle_link();
    let huddle = c.start_huddle();

    let card = c.teams_card();
    assert!(content(&card).contains("started a call on Slack"), "{card}");
    assert!(card_links_to(&card, &join), "the huddle's link: {card}");
    let (notice, widget) = c.matrix_started(&join);

    // Slack's end comes a second or more after its start, so the duration
    // says something.
    std::thread::sleep(Duration::from_millis(1100));
    let ended = c.end_huddle(&huddle);

    wait_for("the Teams card edited to the end", WAIT, || {
        c.teams_cards()
            .first()
            .is_some_and(|m| content(m).contains("ended"))
    });
    let cards = c.teams_cards();
    assert_eq!(cards.len(), 1, "no second card: {cards:#?}");
    assert_eq!(cards[0]["id"], card["id"], "the same card, edited");
    assert!(content(&cards[0]).contains(&ended), "{:#}", cards[0]);
    c.matrix_ended(&notice, &widget, &ended, true);

    // Nothing else was relayed anywhere: no text in Slack, no other post in
    // Teams or Matrix.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(c.slack_bot_messages(), Vec::<Value>::new(), "Slack");
    assert_eq!(c.teams_other_posts(), Vec::<Value>::new(), "Teams");
    assert_eq!(c.matrix_other_messages(), Vec::<Value>::new(), "Matrix");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
}

/// A Teams channel meeting started and ended through the simulator's admin
/// API (Teams posts its system messages): a native call in Slack
/// (`calls.add`, shown by a call block) and a widget and notice in Matrix,
/// each with the meeting's join link; the end ends the Slack call and edits
/// the Matrix notice.
#[test]
fn a_teams_meeting_shows_in_slack_and_matrix_until_it_ends() {
    let (c, mut daemon) = Calls::start();
    let t = &c.t;
    let started = c.teams_admin(
        "start",
        &json!({"team": t.team, "channel": t.channel, "organizer": BOB}),
    );
    assert!(started["id"].is_string(), "{started}");

    // The invites: in Slack a message with a call block for a call, in
    // Matrix a notice.
    wait_value("the invite in Slack", WAIT, || {
        c.slack_bot_messages().into_iter().next()
    });
    let notice = c.matrix_notice();
    eprintln!(
        "in Slack: {:#?}\nin Matrix: {notice:#}\nwidgets: {:#?}",
        c.slack_bot_messages(),
        c.matrix_widgets()
    );
    let calls = c.slack_calls();
    assert_eq!(
        calls.len(),
        1,
        "one Slack call (calls.add), shown by the invite: {:#?}",
        c.slack_bot_messages()
    );
    let call = calls[0].clone();
    let join = call.join_url.clone();
    // Graph gives a channel meeting no join link: the link opens the
    // meeting's message in Teams, where it shows its Join button.
    assert!(
        join.starts_with("https://teams.microsoft.com/l/message/"),
        "the meeting's link: {call:#?}"
    );
    assert!(call.channels.contains(&c.slack_room()), "{call:#?}");
    wait_for("the call block in Slack", WAIT, || {
        !c.slack_call_blocks(&call.id).is_empty()
    });
    assert_eq!(c.slack_call_blocks(&call.id).len(), 1);
    let (notice, widget) = c.matrix_started(&join);
    assert_eq!(notice, c.matrix_notice()["event_id"]);
    let body = c.matrix_notice()["content"]["body"].clone();
    assert!(
        body.as_str()
            .is_some_and(|b| b.contains("Bob Builder started")),
        "the organiser by name, not by id: {body}"
    );

    std::thread::sleep(Duration::from_millis(1100));
    c.teams_admin("end", &json!({"team": t.team, "channel": t.channel}));
    wait_for("the Slack call ended", WAIT, || {
        c.slack_calls().iter().all(|k| k.date_end.is_some())
    });
    c.matrix_ended(&notice, &widget, "ended after ", true);

    std::thread::sleep(Duration::from_secs(1));
    let calls = c.slack_calls();
    assert_eq!(calls.len(), 1, "still one Slack call: {calls:#?}");
    assert_eq!(c.slack_call_blocks(&call.id).len(), 1, "one call block");
    assert_eq!(
        c.slack_bot_messages().len(),
        1,
        "nothing else posted in Slack: {:#?}",
        c.slack_bot_messages()
    );
    assert_eq!(c.matrix_other_messages(), Vec::<Value>::new(), "Matrix");
    assert_eq!(c.teams_other_posts(), Vec::<Value>::new(), "Teams");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
}

/// `!call Standup` in the Matrix room: exactly one online meeting in Teams,
/// organised by the service account, and one invite with its join link in
/// Slack (a native call), in Teams (a card) and in Matrix (widget and
/// notice). The portal names no meeting provider, so the first member
/// whose platform creates meetings (Teams) creates it.
#[test]
fn a_meeting_asked_for_in_matrix_is_created_once_in_teams_and_announced_everywhere() {
    meeting_on_request("");
}

/// The same with the portal naming Teams as its meeting provider.
#[test]
fn a_meeting_asked_for_in_matrix_is_created_by_the_portal_s_meeting_provider() {
    meeting_on_request("meetings = \"teams:contoso\"\n");
}

/// `!call Standup` from Matrix in a portal with `portal` in its table.
/// `/switchboard call Standup` in Slack does the same.
#[test]
fn a_meeting_asked_for_in_slack_is_created_once_in_teams_and_announced_everywhere() {
    meeting_asked_by("", |c| {
        let room = c.slack_room();
        // The simulator delivers the command from its own tasks.
        let _runtime = c.t.slack.rt.enter();
        c.t.slack
            .sim
            .run_slash_command(&room, "alice", "/switchboard", "call Standup")
            .expect("alice runs the command");
        0
    });
}

/// "@Switchboard Relay call Standup" in Teams does the same, and the
/// message itself is not relayed.
#[test]
fn a_meeting_asked_for_in_teams_is_created_once_and_announced_everywhere() {
    meeting_asked_by("", |c| {
        let service = c.t.user_id(SERVICE);
        c.t.post_as(
            BOB,
            &json!({
                "body": {"contentType": "html",
                         "content": "<p><at id=\"0\">Switchboard Relay</at> call Standup</p>"},
                "mentions": [{"id": 0, "mentionText": "Switchboard Relay",
                              "mentioned": {"user": {"id": service,
                                                     "displayName": "Switchboard Relay",
                                                     "userIdentityType": "aadUser"}}}]
            }),
        );
        // Bob's own message stays in Teams, and goes nowhere else.
        1
    });
}

fn meeting_on_request(portal: &str) {
    meeting_asked_by(portal, |c| {
        c.t.slack
            .rt
            .block_on(c.hs.alice.send_text(&c.room, "!call Standup"))
            .expect("alice asks for a meeting");
        0
    });
}

/// `ask` asks for the meeting and says how many Teams posts it made itself.
fn meeting_asked_by(portal: &str, ask: impl FnOnce(&Calls) -> usize) {
    let (c, mut daemon) = Calls::start_with(portal);
    let teams_posts = ask(&c);

    let meeting = wait_value("the online meeting in Teams", WAIT, || {
        c.t.sim.online_meetings().into_iter().next()
    });
    assert_eq!(meeting["subject"], "Standup", "{meeting}");
    assert_eq!(
        meeting["participants"]["organizer"]["identity"]["user"]["id"],
        c.t.user_id(SERVICE).as_str(),
        "organised by the service account: {meeting}"
    );
    let join = meeting["joinWebUrl"]
        .as_str()
        .expect("joinWebUrl")
        .to_owned();

    // Slack: a native call with the meeting's link, shown by one call block.
    let call = wait_value("the call in Slack", WAIT, || {
        c.slack_calls().into_iter().next()
    });
    assert_eq!(call.join_url, join, "{call:#?}");
    assert_eq!(call.title.as_deref(), Some("Standup"), "{call:#?}");
    wait_for("the call block in Slack", WAIT, || {
        !c.slack_call_blocks(&call.id).is_empty()
    });
    // Teams: one card with the meeting's link.
    let card = c.teams_card();
    assert!(card_links_to(&card, &join), "the meeting's link: {card}");
    assert!(content(&card).contains("Standup"), "{card}");
    // Matrix, where it was asked for: a widget and a notice.
    c.matrix_started(&join);

    // Nothing doubles meanwhile.
    std::thread::sleep(Duration::from_secs(2));
    let meetings = c.t.sim.online_meetings();
    assert_eq!(meetings.len(), 1, "one meeting: {meetings:#?}");
    assert_eq!(c.slack_calls().len(), 1, "one Slack call");
    assert_eq!(c.slack_bot_messages().len(), 1, "one Slack message");
    assert_eq!(c.teams_cards().len(), 1, "one Teams card");
    assert_eq!(c.matrix_notices().len(), 1, "one Matrix notice");
    assert_eq!(c.matrix_widgets_added().len(), 1, "one Matrix widget");
    assert_eq!(c.teams_other_posts().len(), teams_posts, "Teams");
    assert_eq!(c.matrix_other_messages(), Vec::<Value>::new(), "Matrix");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
}

/// The daemon SIGKILLed while a Slack huddle runs (its invites posted), the
/// huddle ending while it is down: the restarted daemon edits every invite
/// to the end, and posts none twice.
#[test]
fn a_huddle_ending_while_the_daemon_is_killed_still_ends_everywhere() {
    let (c, mut daemon) = Calls::start();
    let join = c.huddle_link();
    let huddle = c.start_huddle();
    let card = c.teams_card();
    assert!(card_links_to(&card, &join), "{card}");
    let (notice, widget) = c.matrix_started(&join);
    let meetings = c.t.sim.online_meetings().len();

    daemon.kill9();
    std::thread::sleep(Duration::from_millis(1100));
    let ended = c.end_huddle(&huddle);
    let mut daemon = c.spawn_ready();

    wait_for("the Teams card edited to the end", WAIT, || {
        c.teams_cards()
            .first()
            .is_some_and(|m| content(m).contains("ended"))
    });
    // After the restart the end is reported twice (Slack redelivers the
    // edited huddle message, and the catch-up reads it); the call registry
    // recognises the second: the notice is edited to the end once.
    std::thread::sleep(Duration::from_secs(2));
    c.matrix_ended(&notice, &widget, &ended, true);
    let cards = c.teams_cards();
    assert_eq!(cards.len(), 1, "no second card: {cards:#?}");
    assert_eq!(cards[0]["id"], card["id"], "the same card, edited");
    assert!(content(&cards[0]).contains(&ended), "{:#}", cards[0]);
    assert_eq!(c.matrix_notices().len(), 1, "no second notice");
    assert_eq!(c.matrix_widgets_added().len(), 1, "no second widget");
    assert_eq!(
        c.t.sim.online_meetings().len(),
        meetings,
        "no second Teams meeting for the call"
    );
    assert_eq!(c.slack_bot_messages(), Vec::<Value>::new(), "Slack");
    assert_eq!(c.teams_other_posts(), Vec::<Value>::new(), "Teams");
    assert_eq!(c.matrix_other_messages(), Vec::<Value>::new(), "Matrix");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
}
