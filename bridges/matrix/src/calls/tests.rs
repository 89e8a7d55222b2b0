//! Each inbound mapping from events shaped as Synapse delivers them in an
//! application-service transaction, and the outbound widget and notice.

use super::*;
use crate::format::{self, FormatContext};
use switchboard_model::MemoryCursors;

const ROOM: &str = "!portal:example.org";

fn alice() -> Person {
    Person::new(
        BridgeId::new("matrix:example"),
        UserId::new("@alice:example.org"),
        "Alice",
    )
}

fn bob() -> Person {
    Person::new(
        BridgeId::new("matrix:example"),
        UserId::new("@bob:example.org"),
        "Bob",
    )
}

/// A state event as Synapse puts it in a transaction.
fn state(id: &str, kind: &str, key: &str, sender: &str, ts: u64, content: Value) -> RoomEvent {
    RoomEvent::from_json(&json!({
        "type": kind,
        "room_id": ROOM,
        "sender": sender,
        "content": content,
        "state_key": key,
        "origin_server_ts": ts,
        "unsigned": {"age": 12},
        "event_id": id,
        "user_id": sender,
    }))
    .expect("valid event")
}

fn jitsi_widget() -> Value {
    json!({
        "type": "jitsi",
        "url": "https://app.element.io/jitsi.html#conferenceDomain=$domain&conferenceId=$conferenceId&isAudioOnly=$isAudioOnly&displayName=$matrix_display_name&avatarUrl=$matrix_avatar_url&userId=$matrix_user_id&roomId=$matrix_room_id&theme=$theme",
        "name": "Jitsi",
        "data": {"domain": "meet.element.io", "conferenceId": "JitsiAbcDef123", "isAudioOnly": false},
        "creatorUserId": "@alice:example.org",
        "id": "jitsi_@alice:example.org_1700000000000",
    })
}

const JITSI_KEY: &str = "jitsi_@alice:example.org_1700000000000";

#[test]
fn a_jitsi_widget_starts_and_its_removal_ends_the_call() {
    let memory = MemoryCursors::default();
    let added = state(
        "$w1",
        WIDGETS,
        JITSI_KEY,
        "@alice:example.org",
        1_700_000_000_000,
        jitsi_widget(),
    );
    let call = inbound(&added, &alice(), &memory).expect("a call");
    assert_eq!(call.state, CallState::Started);
    assert_eq!(call.provider, CallProvider::Jitsi);
    assert_eq!(
        call.join_url.as_deref(),
        Some("https://meet.element.io/JitsiAbcDef123")
    );
    assert_eq!(call.title.as_deref(), Some("Jitsi"));
    assert_eq!(call.started_by, Some(alice()));
    assert_eq!(
        call.call.as_str(),
        format!("matrix:{ROOM}/widget/{JITSI_KEY}")
    );
    // The same event again (a transaction the relay did not store): the same answer.
    assert_eq!(inbound(&added, &alice(), &memory), Some(call.clone()));
    // Sent again unchanged as a new event: nothing to report.
    let same = state(
        "$w1b",
        WIDGETS,
        JITSI_KEY,
        "@alice:example.org",
        1_700_000_001_000,
        jitsi_widget(),
    );
    assert_eq!(inbound(&same, &alice(), &memory), None);

    let removed = RoomEvent::from_json(&json!({
        "type": WIDGETS, "room_id": ROOM, "sender": "@bob:example.org", "content": {},
        "state_key": JITSI_KEY, "origin_server_ts": 1_700_000_245_000u64, "event_id": "$w2",
        "unsigned": {"replaces_state": "$w1b", "prev_content": jitsi_widget(),
                     "prev_sender": "@alice:example.org", "age": 3},
    }))
    .expect("valid");
    let ended = inbound(&removed, &bob(), &memory).expect("the end");
    assert_eq!(ended.call, call.call);
    assert_eq!(
        ended.state,
        CallState::Ended {
            duration: Some(Duration::from_secs(245))
        }
    );
    assert_eq!(ended.started_by, Some(alice()));
    assert_eq!(inbound(&removed, &bob(), &memory), Some(ended));
    // Removed again, or a widget never seen: ignored.
    let again = state("$w3", WIDGETS, JITSI_KEY, "@bob:example.org", 1, json!({}));
    assert_eq!(inbound(&again, &bob(), &memory), None);
    let unknown = state("$w4", WIDGETS, "other", "@bob:example.org", 1, json!({}));
    assert_eq!(inbound(&unknown, &bob(), &memory), None);

    // The same widget id added again later is a new call.
    let readded = state(
        "$w5",
        WIDGETS,
        JITSI_KEY,
        "@alice:example.org",
        1_700_000_900_000,
        jitsi_widget(),
    );
    let second = inbound(&readded, &alice(), &memory).expect("a call");
    assert_eq!(second.state, CallState::Started);
    assert_eq!(
        second.call.as_str(),
        format!("matrix:{ROOM}/widget/{JITSI_KEY}~$w5")
    );
}

#[test]
fn a_jitsi_widget_without_data_falls_back_to_its_url() {
    let memory = MemoryCursors::default();
    let mut content = jitsi_widget();
    content["data"] = json!({"domain": "meet.example", "conferenceId": "Room 1"});
    let call = inbound(
        &state("$j", WIDGETS, "j", "@alice:example.org", 1, content.clone()),
        &alice(),
        &memory,
    )
    .expect("a call");
    assert_eq!(
        call.join_url.as_deref(),
        Some("https://meet.example/Room%201")
    );
    content.as_object_mut().expect("object").remove("data");
    let call = inbound(
        &state("$k", WIDGETS, "k", "@alice:example.org", 1, content),
        &alice(),
        &memory,
    )
    .expect("a call");
    // Every parameter needs the data or the viewer, except the room.
    assert_eq!(
        call.join_url.as_deref(),
        Some("https://app.element.io/jitsi.html#roomId=%21portal%3Aexample.org")
    );
}

#[test]
fn widget_urls_lose_the_viewers_placeholders() {
    let data = json!({"conferenceId": "c 1", "n": 3, "flag": true});
    let data = data.as_object();
    let resolve = |url: &str| resolve_widget_url(url, ROOM, "w1", data);
    assert_eq!(
        resolve(
            "https://x.example/app/$matrix_widget_id?user=$matrix_user_id&room=$matrix_room_id&theme=$org.matrix.msc2873.client_theme&c=$conferenceId&n=$n&f=$flag&plain=1&bare"
        ),
        Some(
            "https://x.example/app/w1?room=%21portal%3Aexample.org&c=c%201&n=3&f=true&plain=1&bare"
                .into()
        )
    );
    assert_eq!(
        resolve("https://x.example/$matrix_user_id/p#x=$matrix_display_name"),
        Some("https://x.example//p".into())
    );
    assert_eq!(
        resolve("https://x.example/p#/room/$matrix_room_id"),
        Some("https://x.example/p#/room/%21portal%3Aexample.org".into())
    );
    assert_eq!(
        resolve("https://x.example/cost?price=5$"),
        Some("https://x.example/cost?price=5$".into())
    );
    assert_eq!(resolve("javascript:alert(1)"), None);
    assert_eq!(resolve("https://x.example/a b"), None);
}

#[test]
fn widget_kinds() {
    let memory = MemoryCursors::default();
    let with = |id: &str, content: Value| {
        inbound(
            &state(id, WIDGETS, id, "@alice:example.org", 1, content),
            &alice(),
            &memory,
        )
    };
    let ec = with(
        "ec",
        json!({"type": "io.element.call", "url": "https://call.element.io/room?roomId=$matrix_room_id&userId=$matrix_user_id",
               "name": "Element Call", "data": {}}),
    )
    .expect("Element Call");
    assert_eq!(ec.provider, CallProvider::Other("Element Call".into()));
    assert_eq!(
        ec.join_url.as_deref(),
        Some("https://call.element.io/room?roomId=%21portal%3Aexample.org")
    );
    let custom = with(
        "custom",
        json!({"type": "m.custom", "url": "https://zoom.example/j/123", "name": "Zoom"}),
    )
    .expect("a custom widget");
    assert_eq!(custom.provider, CallProvider::MatrixWidget);
    assert_eq!(
        custom.join_url.as_deref(),
        Some("https://zoom.example/j/123")
    );
    assert_eq!(custom.title.as_deref(), Some("Zoom"));
    // Not calls: other widgets, and ours.
    assert_eq!(
        with(
            "pad",
            json!({"type": "m.etherpad", "url": "https://pad.example/p"})
        ),
        None
    );
    assert_eq!(
        with(
            "ours",
            json!({"type": "m.custom", "url": "https://x", "data": {"switchboard_call": "slack-huddle:R1"}})
        ),
        None
    );
    // A rename is an update.
    let renamed = with(
        "custom2",
        json!({"type": "m.custom", "url": "https://zoom.example/j/123", "name": "Standup"}),
    );
    assert!(renamed.is_some());
    let renamed = inbound(
        &state(
            "$rename",
            WIDGETS,
            "custom",
            "@alice:example.org",
            2,
            json!({"type": "m.custom", "url": "https://zoom.example/j/123", "name": "Standup"}),
        ),
        &alice(),
        &memory,
    )
    .expect("an update");
    assert_eq!(renamed.state, CallState::Updated);
    assert_eq!(renamed.call, custom.call);
    assert_eq!(renamed.title.as_deref(), Some("Standup"));
}

#[test]
fn element_call_membership_makes_the_participants() {
    let memory = MemoryCursors::default();
    let created = state(
        "$c1",
        RTC_CALL,
        "",
        "@alice:example.org",
        1_000,
        json!({"m.intent": "m.room", "m.type": "m.video", "m.name": "Weekly"}),
    );
    let started = inbound(&created, &alice(), &memory).expect("started");
    assert_eq!(started.state, CallState::Started);
    assert_eq!(started.provider, CallProvider::Other("Element Call".into()));
    assert_eq!(started.call.as_str(), format!("matrix:{ROOM}/rtc/room"));
    assert_eq!(started.title.as_deref(), Some("Weekly"));
    assert_eq!(
        started.join_url.as_deref(),
        Some("https://matrix.to/#/!portal:example.org")
    );

    let membership = |call: &str| {
        json!({"memberships": [{"application": "m.call", "call_id": call, "scope": "m.room",
                                "device_id": "DEV", "expires": 3_600_000,
                                "foci_active": [{"type": "livekit"}]}]})
    };
    let joined = |id: &str, who: &Person, ts: u64, content: Value| {
        let user = who.user.as_str();
        inbound(
            &state(id, RTC_MEMBER, user, user, ts, content),
            who,
            &memory,
        )
    };
    let a = joined("$m1", &alice(), 2_000, membership("")).expect("alice joins");
    assert_eq!(a.state, CallState::Updated);
    assert_eq!(a.participants, vec![alice()]);
    let b = joined("$m2", &bob(), 3_000, membership("")).expect("bob joins");
    assert_eq!(b.participants, vec![alice(), bob()]);
    // A refreshed membership (new expiry) changes nothing.
    assert_eq!(joined("$m3", &bob(), 4_000, membership("")), None);
    let left = joined("$m4", &alice(), 5_000, json!({"memberships": []})).expect("alice leaves");
    assert_eq!(left.state, CallState::Updated);
    assert_eq!(left.participants, vec![bob()]);
    let ended = joined("$m5", &bob(), 61_000, json!({})).expect("bob leaves");
    assert_eq!(
        ended.state,
        CallState::Ended {
            duration: Some(Duration::from_secs(60))
        }
    );
    assert_eq!(ended.call, started.call);
    assert_eq!(
        ended.participants,
        vec![alice(), bob()],
        "everyone who was in it"
    );
    // Replayed: the same answer; a late termination: nothing more.
    assert_eq!(
        joined("$m5", &bob(), 61_000, json!({})),
        Some(ended.clone())
    );
    let terminated = state(
        "$c2",
        RTC_CALL,
        "",
        "@alice:example.org",
        62_000,
        json!({"m.intent": "m.room", "m.terminated": "call_ended"}),
    );
    assert_eq!(inbound(&terminated, &alice(), &memory), None);

    // The next call in the room: the first member starts it, under a new id.
    let again = joined("$m6", &bob(), 100_000, membership("")).expect("a new call");
    assert_eq!(again.state, CallState::Started);
    assert_eq!(again.started_by, Some(bob()));
    assert_eq!(again.call.as_str(), format!("matrix:{ROOM}/rtc/room~$m6"));
    let ended = inbound(
        &state(
            "$c3",
            RTC_CALL,
            "",
            "@bob:example.org",
            130_000,
            json!({"m.terminated": "call_ended"}),
        ),
        &bob(),
        &memory,
    )
    .expect("terminated");
    assert_eq!(ended.call, again.call);
    assert!(matches!(ended.state, CallState::Ended { .. }));
}

#[test]
fn element_call_membership_shapes() {
    // One membership per device (MSC4143), state key per device.
    let memory = MemoryCursors::default();
    let key = "_@alice:example.org_DEV1";
    let device = json!({"application": "m.call", "call_id": "", "scope": "m.room",
                        "device_id": "DEV1", "focus_active": {"type": "livekit"}});
    let first = inbound(
        &state("$d1", CALL_MEMBER, key, "@alice:example.org", 10, device),
        &alice(),
        &memory,
    )
    .expect("started by the first member");
    assert_eq!(first.state, CallState::Started);
    assert_eq!(first.started_by, Some(alice()));
    assert_eq!(first.participants, vec![alice()]);
    // A second device of the same person: nobody new.
    let other = json!({"application": "m.call", "call_id": "", "device_id": "DEV2"});
    assert_eq!(
        inbound(
            &state(
                "$d2",
                CALL_MEMBER,
                "_@alice:example.org_DEV2",
                "@alice:example.org",
                11,
                other
            ),
            &alice(),
            &memory,
        ),
        None
    );
    assert_eq!(
        inbound(
            &state("$d3", CALL_MEMBER, key, "@alice:example.org", 12, json!({})),
            &alice(),
            &memory
        ),
        None,
        "alice is still in through her other device"
    );
    let ended = inbound(
        &state(
            "$d4",
            CALL_MEMBER,
            "_@alice:example.org_DEV2",
            "@alice:example.org",
            20,
            json!({}),
        ),
        &alice(),
        &memory,
    )
    .expect("the last device left");
    assert!(matches!(ended.state, CallState::Ended { .. }));

    // Legacy MSC3401: m.calls with m.call_id; other applications are not calls.
    let memory = MemoryCursors::default();
    let legacy = json!({"m.calls": [{"m.call_id": "abc", "m.devices": [{"device_id": "D"}]}]});
    let call = inbound(
        &state(
            "$l1",
            RTC_MEMBER,
            "@alice:example.org",
            "@alice:example.org",
            1,
            legacy,
        ),
        &alice(),
        &memory,
    )
    .expect("started");
    assert_eq!(call.call.as_str(), format!("matrix:{ROOM}/rtc/abc"));
    let not_a_call = json!({"memberships": [{"application": "m.game", "call_id": ""}]});
    assert_eq!(
        inbound(
            &state(
                "$l2",
                RTC_MEMBER,
                "@bob:example.org",
                "@bob:example.org",
                2,
                not_a_call
            ),
            &bob(),
            &memory
        ),
        None
    );
}

#[test]
fn a_voip_invite_is_a_missed_call() {
    let memory = MemoryCursors::default();
    let invite = |id: &str, sdp: &str| {
        RoomEvent::from_json(&json!({
            "type": "m.call.invite", "room_id": ROOM, "sender": "@alice:example.org",
            "origin_server_ts": 5, "event_id": id, "unsigned": {"age": 1},
            "content": {"call_id": "1700000000abc", "party_id": "DEV", "version": "1",
                        "lifetime": 60000, "offer": {"type": "offer", "sdp": sdp}},
        }))
        .expect("valid")
    };
    let voice = inbound(
        &invite("$i1", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"),
        &alice(),
        &memory,
    )
    .expect("a call");
    assert_eq!(voice.state, CallState::Ended { duration: None });
    assert_eq!(
        voice.title.as_deref(),
        Some("Alice tried to call (Matrix voice call cannot be bridged)")
    );
    assert_eq!(voice.join_url, None);
    assert_eq!(voice.started_by, Some(alice()));
    assert_eq!(voice.provider, CallProvider::Other("Matrix call".into()));
    assert_eq!(
        voice.call.as_str(),
        format!("matrix:{ROOM}/voip/1700000000abc")
    );
    let video = inbound(
        &invite("$i2", "v=0\r\nm=audio 9 X\r\nm=video 9 X\r\n"),
        &alice(),
        &memory,
    )
    .expect("a call");
    assert_eq!(
        video.title.as_deref(),
        Some("Alice tried to call (Matrix video call cannot be bridged)")
    );
    // Not state; a hangup means nothing.
    let mut as_state = invite("$i3", "");
    as_state.state_key = Some(String::new());
    assert!(!is_call_event(&as_state.kind, true));
    assert!(!is_call_event("m.call.hangup", false));
}

#[test]
fn widget_keys_come_from_the_call_id() {
    let key = widget_key(&CallId::new("slack-huddle:R1/x_y"));
    assert_eq!(key, "switchboard_slack-huddle.3aR1.2fx.5fy");
    assert_eq!(key, widget_key(&CallId::new("slack-huddle:R1/x_y")));
    assert_ne!(key, widget_key(&CallId::new("slack-huddle:R1/x_z")));
    let long = CallId::new("x".repeat(500));
    let hashed = widget_key(&long);
    assert!(hashed.len() < 40, "{hashed}");
    assert_eq!(hashed, widget_key(&long));
}

fn huddle(state: CallState) -> CallEvent {
    let mut event = CallEvent::new(
        CallId::new("slack-huddle:R1"),
        CallProvider::SlackHuddle,
        state,
    )
    .with_join_url("https://app.slack.com/huddle/T1/C1");
    event.started_by = Some(Person::new(
        BridgeId::new("slack:acme"),
        UserId::new("U1"),
        "Alice",
    ));
    event
}

#[test]
fn outbound_widget_content() {
    let event = huddle(CallState::Started);
    let key = widget_key(&event.call);
    let content =
        widget_content(&event, "Alice", "@switchboard:example.org", &key).expect("a widget");
    assert_eq!(
        content,
        json!({"type": "m.custom", "url": "https://app.slack.com/huddle/T1/C1",
               "name": "Slack huddle by Alice",
               "data": {"switchboard_call": "slack-huddle:R1"},
               "creatorUserId": "@switchboard:example.org", "id": key})
    );
    // Our own widget never comes back as a call.
    let memory = MemoryCursors::default();
    let echo = state("$e", WIDGETS, &key, "@someone:example.org", 1, content);
    assert_eq!(inbound(&echo, &alice(), &memory), None);
    // No link (or not a web one): no widget.
    let mut no_link = huddle(CallState::Started);
    no_link.join_url = Some("javascript:alert(1)".into());
    assert_eq!(widget_content(&no_link, "Alice", "@b:e", "k"), None);
    no_link.join_url = None;
    assert_eq!(widget_content(&no_link, "Alice", "@b:e", "k"), None);
}

fn rendered(text: &RichText) -> format::Rendered {
    let bridge = BridgeId::new("matrix:example");
    let ghost_of = |_: &BridgeId, _: &UserId| None;
    let person_of_ghost = |_: &str| None;
    let ctx = FormatContext {
        bridge: &bridge,
        server_name: "example.org",
        ghost_of: &ghost_of,
        person_of_ghost: &person_of_ghost,
    };
    format::render(text, &ctx)
}

#[test]
fn outbound_notices() {
    let started = huddle(CallState::Started);
    let text = notice(&started, who(&started, None), None);
    assert_eq!(
        text.to_plain(),
        "📞 Alice started a Slack huddle — join: https://app.slack.com/huddle/T1/C1"
    );
    let html = rendered(&text);
    assert_eq!(
        html.body,
        "📞 Alice started a Slack huddle — join: https://app.slack.com/huddle/T1/C1"
    );
    assert!(
        html.formatted_body
            .as_deref()
            .is_some_and(|h| h.contains("<a href=\"https://app.slack.com/huddle/T1/C1\">")),
        "{html:?}"
    );

    let mut updated = huddle(CallState::Updated).with_title("Standup");
    updated.participants = vec![alice(), bob()];
    assert_eq!(
        notice(&updated, "Alice", None).to_plain(),
        "📞 Alice started a Slack huddle “Standup” — join: https://app.slack.com/huddle/T1/C1\nIn the call (2): Alice, Bob"
    );

    let ended = huddle(CallState::Ended {
        duration: Some(Duration::from_secs(245)),
    });
    assert_eq!(
        notice(&ended, "Alice", Some(Duration::from_secs(9))).to_plain(),
        "📞 Alice's Slack huddle ended after 4m 05s"
    );
    let unknown = huddle(CallState::Ended { duration: None });
    assert_eq!(
        notice(&unknown, "Alice", Some(Duration::from_secs(9))).to_plain(),
        "📞 Alice's Slack huddle ended after 9s"
    );
    assert_eq!(
        notice(&unknown, "Alice", None).to_plain(),
        "📞 Alice's Slack huddle has ended"
    );

    let mut teams = CallEvent::new(
        CallId::new("teams-call:1"),
        CallProvider::TeamsMeeting,
        CallState::Started,
    );
    let bo = bob();
    assert_eq!(who(&teams, Some(&bo)), "Bob");
    assert_eq!(who(&teams, None), "Someone");
    assert_eq!(
        notice(&teams, "Bob", None).to_plain(),
        "📞 Bob started a Teams meeting (no join link)"
    );
    teams.provider = CallProvider::Other("Element Call".into());
    assert_eq!(
        notice(&teams, "Bob", None).to_plain(),
        "📞 Bob started an Element Call (no join link)"
    );
    assert_eq!(
        provider_noun(&CallProvider::Other("Zoom".into())),
        "Zoom call"
    );
    assert_eq!(provider_noun(&CallProvider::Jitsi), "Jitsi call");
}
