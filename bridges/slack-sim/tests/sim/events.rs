//! Event generation: what each change sends, in the shapes of real captures
//! (`conformance/slack/events/…`), and to whom.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_slack_sim::UserPatch;
use switchboard_slack_sim::seed::ChannelSeed;

use crate::support::*;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Fields in our envelope that the 2022 captures lack but newer real payloads carry
/// (`events/message/bot_message.real-capture.subtype.json`, 2024).
const NEWER_ENVELOPE_FIELDS: [&str; 2] = ["context_team_id", "context_enterprise_id"];

/// Compares our envelope and inner event key sets with a real capture.
fn same_keys_as_capture(ours: &Value, capture: &Path, inner_extra: &[&str]) {
    let cap = read_json(capture);
    let mut want = keys(&cap);
    want.extend(NEWER_ENVELOPE_FIELDS.iter().map(|s| s.to_string()));
    assert_eq!(keys(ours), want, "envelope keys vs {}", capture.display());
    let mut want_ev = keys(&cap["event"]);
    want_ev.extend(inner_extra.iter().map(|s| s.to_string()));
    assert_eq!(
        keys(&ours["event"]),
        want_ev,
        "event keys vs {}",
        capture.display()
    );
    assert_eq!(
        keys(&ours["authorizations"][0]),
        keys(&cap["authorizations"][0])
    );
}

#[tokio::test]
async fn user_and_app_messages_match_real_captures() {
    let sim = start().await;
    let t = tokens(&sim);
    let (mut ws, _) = connect(&sim).await;
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "dgsfklsdgf"}),
    )
    .await;
    let user_msg = next_message(&mut ws, None).await["payload"].clone();
    let ev = &user_msg["event"];
    assert_eq!(ev["user"], ALICE);
    assert_eq!(ev["channel_type"], "channel");
    assert_eq!(ev["ts"], ev["event_ts"]);
    assert_eq!(
        ev["blocks"][0]["elements"][0]["elements"][0],
        json!({"type": "text", "text": "dgsfklsdgf"})
    );
    assert_eq!(user_msg["authorizations"][0]["user_id"], BOT);
    assert_eq!(user_msg["authorizations"][0]["is_bot"], true);
    assert!(
        user_msg["event_context"]
            .as_str()
            .expect("ctx")
            .starts_with("4-")
    );
    assert_eq!(user_msg["token"], sim.seeded().verification_token);

    // The app's own post comes back too (no subtype; bot_id/app_id/bot_profile), here as a thread reply.
    let parent = ev["ts"].as_str().expect("ts").to_string();
    call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "TEST", "thread_ts": parent}),
    )
    .await;
    let bot_msg = next_message(&mut ws, None).await["payload"].clone();
    assert_eq!(bot_msg["event"]["bot_id"], "B0SIMBOT001");
    assert_eq!(bot_msg["event"]["parent_user_id"], ALICE);
    assert_eq!(bot_msg["event"]["thread_ts"], parent);

    // A per-message identity post is a classic bot_message.
    call(&sim, "chat.postMessage", &t.bot, json!({"channel": GENERAL, "text": "relayed", "username": "Reacji Channeler", "icon_emoji": ":bulb:"})).await;
    let classic = next_message(&mut ws, Some("bot_message")).await["payload"].clone();
    assert_eq!(classic["event"]["icons"], json!({"emoji": "bulb"}));

    // A DM from a person.
    let dm =
        call(&sim, "conversations.open", &t.alice, json!({"users": BOT})).await["channel"]["id"]
            .clone();
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": dm, "text": "test"}),
    )
    .await;
    let im = next_message(&mut ws, None).await["payload"].clone();
    assert_eq!(im["event"]["channel_type"], "im");

    let Some(dir) = conformance() else { return };
    let m = dir.join("events/message");
    same_keys_as_capture(&user_msg, &m.join("plain.real-capture.channel.json"), &[]);
    same_keys_as_capture(&im, &m.join("plain.real-capture.im.json"), &[]);
    same_keys_as_capture(
        &bot_msg,
        &m.join("bot_message.real-capture.app_bot_no_subtype.thread_reply.json"),
        &[],
    );
    // The capture shows only `icons.emoji` and the username; it is another app, so it has no
    // `user` either.
    same_keys_as_capture(
        &classic,
        &m.join("bot_message.real-capture.subtype.json"),
        &[],
    );
    let cap = read_json(&m.join("bot_message.real-capture.app_bot_no_subtype.thread_reply.json"));
    assert_eq!(
        keys(&bot_msg["event"]["bot_profile"]),
        keys(&cap["event"]["bot_profile"])
    );
    assert_eq!(
        keys(&bot_msg["event"]["bot_profile"]["icons"]),
        keys(&cap["event"]["bot_profile"]["icons"])
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn edits_deletes_and_tombstones() {
    let sim = start().await;
    let t = tokens(&sim);
    let (mut ws, _) = connect(&sim).await;
    let p = call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "This message will be deleted"}),
    )
    .await;
    let ts = p["ts"].as_str().expect("ts").to_string();
    next_message(&mut ws, None).await;
    call(
        &sim,
        "chat.update",
        &t.alice,
        json!({"channel": GENERAL, "ts": ts, "text": "edited"}),
    )
    .await;
    let changed = next_message(&mut ws, Some("message_changed")).await["payload"].clone();
    let ev = &changed["event"];
    assert_eq!(ev["hidden"], true);
    assert_eq!(ev["message"]["ts"], ts);
    assert_ne!(ev["ts"], ts, "the outer ts is the edit event's own");
    assert_eq!(ev["message"]["text"], "edited");
    assert_eq!(ev["message"]["edited"]["user"], ALICE);
    assert_eq!(
        ev["previous_message"]["text"],
        "This message will be deleted"
    );
    assert!(ev["previous_message"].get("edited").is_none());
    call(
        &sim,
        "chat.delete",
        &t.alice,
        json!({"channel": GENERAL, "ts": ts}),
    )
    .await;
    let deleted = next_message(&mut ws, Some("message_deleted")).await["payload"].clone();
    assert_eq!(deleted["event"]["deleted_ts"], ts);
    assert_eq!(deleted["event"]["hidden"], true);
    assert_eq!(deleted["event"]["previous_message"]["text"], "edited");

    // A thread parent with replies becomes a tombstone.
    let parent = call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "hi hi!"}),
    )
    .await;
    let pts = parent["ts"].as_str().expect("ts").to_string();
    let reply = call(
        &sim,
        "chat.postMessage",
        &t.bob,
        json!({"channel": GENERAL, "text": "a reply", "thread_ts": pts}),
    )
    .await;
    let rts = reply["ts"].as_str().expect("ts").to_string();
    call(
        &sim,
        "chat.delete",
        &t.alice,
        json!({"channel": GENERAL, "ts": pts}),
    )
    .await;
    let tomb = next_message(&mut ws, Some("message_changed")).await["payload"].clone();
    let tm = &tomb["event"]["message"];
    assert_eq!(tm["subtype"], "tombstone");
    assert_eq!(tm["user"], "USLACKBOT");
    assert_eq!(tm["text"], "This message was deleted.");
    assert_eq!(tm["hidden"], true);
    assert_eq!(tm["reply_count"], 1);
    assert_eq!(tm["ts"], pts);
    assert_eq!(tomb["event"]["previous_message"]["text"], "hi hi!");
    assert_eq!(tomb["event"]["previous_message"]["reply_count"], 1);
    // History shows the tombstone; replies still there.
    let h = call(
        &sim,
        "conversations.history",
        &t.alice,
        json!({"channel": GENERAL, "limit": 1}),
    )
    .await;
    assert_eq!(h["messages"][0]["subtype"], "tombstone");
    // Deleting the last reply removes the tombstone too.
    call(
        &sim,
        "chat.delete",
        &t.bob,
        json!({"channel": GENERAL, "ts": rts}),
    )
    .await;
    let d1 = next_message(&mut ws, Some("message_deleted")).await["payload"]["event"].clone();
    assert_eq!(d1["deleted_ts"], rts);
    assert_eq!(d1["previous_message"]["thread_ts"], pts);
    assert_eq!(d1["previous_message"]["parent_user_id"], ALICE);
    let d2 = next_message(&mut ws, Some("message_deleted")).await["payload"]["event"].clone();
    assert_eq!(d2["deleted_ts"], pts);

    let Some(dir) = conformance() else { return };
    let m = dir.join("events/message");
    same_keys_as_capture(&deleted, &m.join("message_deleted.real-capture.json"), &[]);
    let cap = read_json(&m.join("message_changed.real-capture.json"));
    assert_eq!(keys(&changed["event"]), keys(&cap["event"]));
    let java = read_json(&m.join("message_changed.java-sdk-test.tombstone_with_replies.json"));
    assert_eq!(keys(&tomb["event"]), keys(&java));
    assert_eq!(keys(&tomb["event"]["message"]), keys(&java["message"]));
    sim.shutdown().await;
}

#[tokio::test]
async fn reactions_joins_channels_and_users() {
    let sim = start().await;
    let t = tokens(&sim);
    let (mut ws, _) = connect(&sim).await;
    let p = call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "x"}),
    )
    .await;
    let ts = p["ts"].as_str().expect("ts").to_string();
    call(
        &sim,
        "reactions.add",
        &t.bob,
        json!({"channel": GENERAL, "timestamp": ts, "name": "heart_eyes"}),
    )
    .await;
    let added = next_event(&mut ws, "reaction_added").await["payload"]["event"].clone();
    assert_eq!(added["user"], BOB);
    assert_eq!(added["reaction"], "heart_eyes");
    assert_eq!(
        added["item"],
        json!({"type": "message", "channel": GENERAL, "ts": ts})
    );
    assert_eq!(added["item_user"], ALICE);
    call(
        &sim,
        "reactions.remove",
        &t.bob,
        json!({"channel": GENERAL, "timestamp": ts, "name": "heart_eyes"}),
    )
    .await;
    let removed = next_event(&mut ws, "reaction_removed").await["payload"]["event"].clone();
    assert_eq!(keys(&removed), keys(&added));

    // Admin-made changes Slack itself would announce.
    let new_id = sim
        .add_channel(ChannelSeed {
            name: "launch".into(),
            members: vec!["alice".into(), "@bot".into()],
            ..ChannelSeed::default()
        })
        .expect("channel");
    let created = next_event(&mut ws, "channel_created").await["payload"].clone();
    assert_eq!(created["event"]["channel"]["id"], new_id);
    assert!(created.get("event_context").is_none());
    let joined = next_event(&mut ws, "member_joined_channel").await["payload"]["event"].clone();
    assert_eq!(joined["channel"], new_id);
    assert_eq!(joined["channel_type"], "C");
    sim.join_channel(&new_id, "bob", Some("alice"))
        .expect("join");
    let join_msg = next_message(&mut ws, Some("channel_join")).await["payload"]["event"].clone();
    assert_eq!(join_msg["user"], BOB);
    assert_eq!(join_msg["inviter"], ALICE);
    let joined = next_event(&mut ws, "member_joined_channel").await["payload"]["event"].clone();
    assert_eq!(joined["user"], BOB);
    assert_eq!(joined["inviter"], ALICE);
    sim.rename_channel(&new_id, "launch-2").expect("rename");
    let renamed = next_event(&mut ws, "channel_rename").await["payload"]["event"].clone();
    assert_eq!(renamed["channel"]["name"], "launch-2");
    sim.update_user(
        "bob",
        UserPatch {
            display_name: Some("bobby".into()),
            ..UserPatch::default()
        },
    )
    .expect("update");
    let change = next_event(&mut ws, "user_change").await["payload"]["event"].clone();
    assert_eq!(change["user"]["profile"]["display_name"], "bobby");

    let Some(dir) = conformance() else { return };
    let o = dir.join("events/other");
    let cap = read_json(&o.join("reaction_added.bolt-python-test.envelope.json"));
    assert_eq!(keys(&added), keys(&cap["event"]));
    let cap = read_json(&o.join("channel_created.real-capture.json"));
    assert_eq!(keys(&created["event"]), keys(&cap["event"]));
    assert_eq!(
        keys(&created["event"]["channel"]),
        keys(&cap["event"]["channel"])
    );
    let cap = read_json(&o.join("member_joined_channel.bolt-python-test.envelope.json"));
    assert_eq!(keys(&joined), keys(&cap["event"]));
    let cap = read_json(&o.join("channel_rename.java-sdk-test.json"));
    assert_eq!(keys(&renamed), keys(&cap));
    assert_eq!(keys(&renamed["channel"]), keys(&cap["channel"]));
    let cap = read_json(&dir.join("events/message/channel_join.real-capture.json"));
    assert_eq!(keys(&join_msg), keys(&cap["event"]));
    let cap = read_json(&o.join("user_change.docs.json"));
    assert_eq!(keys(&change), keys(&cap));
    sim.shutdown().await;
}

#[tokio::test]
async fn only_channels_with_the_bot_and_only_granted_events() {
    let sim = start().await;
    let t = tokens(&sim);
    let (mut ws, _) = connect(&sim).await;
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": RANDOM, "text": "bot is not here"}),
    )
    .await;
    call(
        &sim,
        "chat.postMessage",
        &t.bob,
        json!({"channel": LOCKED, "text": "nor here"}),
    )
    .await;
    assert!(
        next_json_within(&mut ws, Duration::from_millis(300))
            .await
            .is_none()
    );
    call(
        &sim,
        "conversations.join",
        &t.bot,
        json!({"channel": RANDOM}),
    )
    .await;
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": RANDOM, "text": "now it is"}),
    )
    .await;
    let m = next_message(&mut ws, None).await;
    assert_eq!(m["payload"]["event"]["text"], "now it is");
    // Without reactions:read the app gets no reaction events.
    let ts = m["payload"]["event"]["ts"]
        .as_str()
        .expect("ts")
        .to_string();
    sim.set_bot_scopes(&[
        "channels:history",
        "chat:write",
        "reactions:write",
        "channels:join",
    ]);
    call(
        &sim,
        "reactions.add",
        &t.alice,
        json!({"channel": RANDOM, "timestamp": ts, "name": "tada"}),
    )
    .await;
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": RANDOM, "text": "after"}),
    )
    .await;
    let next = next_json(&mut ws).await.expect("event");
    assert_eq!(
        next["payload"]["event"]["type"], "message",
        "no reaction_added without reactions:read"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn huddles_start_and_end() {
    let sim = start().await;
    let (mut ws, _) = connect(&sim).await;
    let (room, ts) = sim.start_huddle(GENERAL, "alice").expect("huddle");
    let started = next_message(&mut ws, Some("huddle_thread")).await["payload"]["event"].clone();
    assert_eq!(started["user"], "USLACKBOT");
    assert_eq!(started["ts"], ts);
    assert_eq!(started["room"]["id"], room);
    assert_eq!(started["room"]["call_family"], "huddle");
    assert_eq!(started["room"]["date_end"], 0);
    assert_eq!(started["room"]["has_ended"], false);
    assert_eq!(started["room"]["participants"], json!([ALICE]));
    assert_eq!(started["room"]["thread_root_ts"], ts);
    assert_eq!(started["no_notifications"], true);
    let hc = next_event(&mut ws, "user_huddle_changed").await["payload"]["event"].clone();
    assert_eq!(hc["user"]["id"], ALICE);
    assert_eq!(hc["user"]["profile"]["huddle_state"], "in_a_huddle");
    assert_eq!(hc["user"]["profile"]["huddle_state_call_id"], room);
    let uc = next_event(&mut ws, "user_change").await["payload"]["event"].clone();
    assert_eq!(
        uc["user"], hc["user"],
        "user_change fires with the identical user"
    );
    sim.join_huddle(&room, "bob").expect("join");
    sim.end_huddle(&room).expect("end");
    let ended = next_message(&mut ws, Some("message_changed")).await["payload"]["event"].clone();
    assert_eq!(ended["message"]["subtype"], "huddle_thread");
    assert_eq!(ended["message"]["edited"]["user"], "USLACKBOT");
    assert_eq!(ended["message"]["room"]["has_ended"], true);
    assert!(
        ended["message"]["room"]["date_end"]
            .as_i64()
            .expect("date_end")
            > 0
    );
    assert_eq!(
        ended["message"]["room"]["participant_history"],
        json!([ALICE, BOB])
    );
    assert_eq!(ended["previous_message"]["room"]["has_ended"], false);
    assert_eq!(
        ended["previous_message"]["room"]["participants"],
        json!([ALICE, BOB])
    );
    let hc = next_event(&mut ws, "user_huddle_changed").await["payload"]["event"].clone();
    assert_eq!(hc["user"]["profile"]["huddle_state"], "default_unset");
    assert!(sim.end_huddle(&room).is_err(), "a huddle ends once");

    let Some(dir) = conformance() else { return };
    let doc = read_json(&dir.join("calls/huddle_thread.message.docs-conversation-object.json"));
    let mut ours = keys(&started);
    for k in ["event_ts", "channel_type"] {
        ours.remove(k);
    }
    assert_eq!(ours, keys(&doc["messages"][0]));
    let doc_room = keys(&doc["messages"][0]["room"]);
    let our_room = keys(&started["room"]);
    assert!(
        our_room.is_superset(&doc_room),
        "room keys missing: {:?}",
        doc_room.difference(&our_room).collect::<Vec<_>>()
    );
    let doc_ev = read_json(&dir.join("calls/user_huddle_changed.event.docs.json"));
    assert_eq!(keys(&hc), keys(&doc_ev));
    sim.shutdown().await;
}

#[tokio::test]
async fn file_share_event_matches_capture() {
    let sim = start().await;
    let t = tokens(&sim);
    let (mut ws, _) = connect(&sim).await;
    let r = call(
        &sim,
        "files.getUploadURLExternal",
        &t.alice,
        json!({"filename": "namenamename.txt", "length": 12}),
    )
    .await;
    http()
        .post(r["upload_url"].as_str().expect("url"))
        .body("hug a kitten")
        .send()
        .await
        .expect("upload");
    let files = json!([{"id": r["file_id"]}]).to_string();
    call(&sim, "files.completeUploadExternal", &t.alice, json!({"files": files, "channel_id": GENERAL, "initial_comment": "message message message"})).await;
    let share = next_message(&mut ws, Some("file_share")).await["payload"].clone();
    let ev = &share["event"];
    assert_eq!(ev["files"][0]["id"], r["file_id"]);
    assert_eq!(ev["files"][0]["preview"], "hug a kitten");
    assert_eq!(ev["user"], ALICE);
    let shared = next_event(&mut ws, "file_shared").await["payload"]["event"].clone();
    assert_eq!(shared["file_id"], r["file_id"]);
    assert_eq!(shared["channel_id"], GENERAL);

    let Some(dir) = conformance() else { return };
    same_keys_as_capture(
        &share,
        &dir.join("events/message/file_share.real-capture.json"),
        &[],
    );
    let cap = read_json(&dir.join("events/message/file_share.real-capture.json"));
    let want = keys(&cap["event"]["files"][0]);
    let ours = keys(&ev["files"][0]);
    // Our file objects carry every captured field except the snippet-only ones.
    let snippet_only: BTreeSet<String> = ["edit_link", "preview_highlight"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let missing: Vec<_> = want
        .difference(&ours)
        .filter(|k| !snippet_only.contains(*k))
        .collect();
    assert!(missing.is_empty(), "file fields missing: {missing:?}");
    let cap = read_json(&dir.join("events/other/file_shared.docs.json"));
    assert_eq!(keys(&shared), keys(&cap));
    sim.shutdown().await;
}
