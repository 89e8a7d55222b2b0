//! Schema validation of every Web API response the simulator gives, success and error, against
//! Slack's 2021 OpenAPI spec (`$SWITCHBOARD_CONFORMANCE_DIR/slack/openapi/web-api/
//! slack_web_openapi_v2.json`). Methods newer than the spec are checked against the docs
//! examples under `conformance/slack/web/<method>/`.
//!
//! Where the old spec contradicts newer documented behaviour or real captures, the newer
//! source wins and the difference is listed below as a named exception with its reason;
//! every violation must be explained by one, and every exception must still be needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use crate::jsonschema::{Validator, Violation};
use crate::support::*;

/// A documented difference between the 2021 spec and what Slack does now.
struct Exception {
    id: &'static str,
    /// Methods it applies to (`*` = all).
    methods: &'static [&'static str],
    /// JSON-pointer glob (`*` = one segment, `**` = any number).
    pointer: &'static str,
    keyword: &'static str,
    reason: &'static str,
}

const ALL: &[&str] = &["*"];

const EXCEPTIONS: &[Exception] = &[
    Exception {
        id: "X1-missing-scope-fields",
        methods: ALL,
        pointer: "/{needed,provided}",
        keyword: "additionalProperties",
        reason: "missing_scope errors carry `needed` and `provided` (web/_errors/missing_scope.json; every shape.java-sdk-json-logs.json lists them); the spec's error schemas forbid extra keys.",
    },
    Exception {
        id: "X2-warnings-and-metadata",
        methods: ALL,
        pointer: "/{warning,response_metadata}",
        keyword: "additionalProperties",
        reason: "`warning` + `response_metadata.warnings/messages` (web/_errors/message_truncated.warning.docs.json, conversations.join/success.docs.json) and `response_metadata.next_cursor` on history pages (conversations.history/success.docs.json) are newer than the spec.",
    },
    Exception {
        id: "X3-context-team-id",
        methods: ALL,
        pointer: "**/context_team_id",
        keyword: "additionalProperties",
        reason: "conversation objects carry `context_team_id` (conversations.info/success.real-capture.public_channel.json and .im.json).",
    },
    Exception {
        id: "X4-conversation-updated",
        methods: ALL,
        pointer: "**/updated",
        keyword: "additionalProperties",
        reason: "conversation objects carry `updated`, in milliseconds (conversations.info/success.real-capture.*.json, conversations.list/success.docs.json).",
    },
    Exception {
        id: "X5-user-fields",
        methods: ALL,
        pointer: "**/{is_email_confirmed,who_can_share_contact_card}",
        keyword: "additionalProperties",
        reason: "user objects carry `is_email_confirmed` and `who_can_share_contact_card` (events/other/user_change.docs.json, users.info/shape.java-sdk-json-logs.json).",
    },
    Exception {
        id: "X6-profile-fields",
        methods: ALL,
        pointer: "**/profile/{status_emoji_display_info,huddle_state,huddle_state_expiration_ts,huddle_state_call_id}",
        keyword: "additionalProperties",
        reason: "profiles carry `status_emoji_display_info` and the huddle state (users.profile.get/success.docs.json, calls/user_huddle_changed.event.docs.json).",
    },
    Exception {
        id: "X7-message-fields",
        methods: ALL,
        pointer: "**/{app_id,edited,metadata,is_locked,root,hidden,room,no_notifications,channel}",
        keyword: "additionalProperties",
        reason: "messages carry `app_id` (bot posts), `edited`, `metadata`, `is_locked`, `root` (thread_broadcast), `hidden` (tombstones), and huddle threads `room`/`no_notifications`/`channel` (chat.update/success.real-capture.json, events/message/*.json, calls/huddle_thread.*.json); objs_message forbids them.",
    },
    Exception {
        id: "X8-replies-message-fields",
        methods: &["conversations.replies"],
        pointer: "/messages/*/{blocks,bot_id,bot_profile,client_msg_id,subtype}",
        keyword: "additionalProperties",
        reason: "the spec's conversations.replies item schemas are narrower than objs_message; real replies carry blocks, bot_id, bot_profile, client_msg_id, subtype (conversations.replies/success.ossans_navi-test.359.json and .479.json).",
    },
    Exception {
        id: "X9-chat-update-blocks",
        methods: &["chat.update"],
        pointer: "/message/blocks",
        keyword: "type",
        reason: "the spec types chat.update's `message.blocks` as an object; blocks are an array, as chat.update/success.real-capture.json shows.",
    },
    Exception {
        id: "X10-empty-history",
        methods: &["conversations.history"],
        pointer: "/messages",
        keyword: "minItems",
        reason: "an empty page is `messages: []` (the docs.slack.dev output schema for conversations.history has minItems 0).",
    },
    Exception {
        id: "X11-team-fields",
        methods: &["team.info"],
        pointer: "/team/{url,is_verified}",
        keyword: "additionalProperties",
        reason: "team objects carry `url` and `is_verified` (team.info/shape.java-sdk-json-logs.json).",
    },
    Exception {
        id: "X12-file-fields",
        methods: ALL,
        pointer: "**/{file_access,lines,lines_more,preview_is_truncated}",
        keyword: "additionalProperties",
        reason: "file objects carry `file_access`, `lines`, `lines_more`, `preview_is_truncated` (files.info/file_object.real-capture.json).",
    },
    Exception {
        id: "X13-file-shares",
        methods: ALL,
        pointer: "**/shares/{public,private}/*",
        keyword: "additionalProperties",
        reason: "`shares.public/private` map channel ids to share lists (files.info/success.docs.json); the spec forbids every key there.",
    },
];

fn glob(pattern: &str, pointer: &str) -> bool {
    fn go(p: &[&str], s: &[&str]) -> bool {
        match (p.split_first(), s.split_first()) {
            (None, None) => true,
            (Some((&"**", rest)), _) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            (Some((ph, pr)), Some((sh, sr))) => {
                let alternatives = ph.strip_prefix('{').and_then(|x| x.strip_suffix('}'));
                let seg_ok = *ph == "*"
                    || ph == sh
                    || alternatives.is_some_and(|alts| alts.split(',').any(|a| a == *sh));
                seg_ok && go(pr, sr)
            }
            _ => false,
        }
    }
    let split = |x: &'_ str| -> Vec<String> {
        let x = x.strip_prefix('/').unwrap_or(x);
        if x.is_empty() {
            Vec::new()
        } else {
            x.split('/').map(str::to_string).collect()
        }
    };
    let p = split(pattern);
    let s = split(pointer);
    let p: Vec<&str> = p.iter().map(String::as_str).collect();
    let s: Vec<&str> = s.iter().map(String::as_str).collect();
    go(&p, &s)
}

/// Newer error codes are allowed when the current docs list them for the method (or as a
/// common error). Returns the docs' name for the rule when it applies.
fn documented_error(dir: &Path, method: &str, code: &str) -> bool {
    let common = read_json(&dir.join("web/_errors/common_errors.docs.json"));
    if common["errors"].get(code).is_some() {
        return true;
    }
    let docs = dir.join(format!("web/{method}/docs.slack.dev.reference.json"));
    docs.exists() && read_json(&docs)["errors"].get(code).is_some()
}

struct Sample {
    method: &'static str,
    body: Value,
}

async fn samples() -> (switchboard_slack_sim::SlackSim, Vec<Sample>) {
    let sim = start().await;
    let t = tokens(&sim);
    let mut out = Vec::new();
    macro_rules! s {
        ($m:literal, $tok:expr, $args:expr) => {{
            let v = call(&sim, $m, $tok, $args).await;
            out.push(Sample {
                method: $m,
                body: v.clone(),
            });
            v
        }};
    }
    // Content of every kind.
    let p = s!(
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "hello <@U0BOB000001> :tada: *bold*"})
    );
    let pts = p["ts"].as_str().unwrap_or_default().to_string();
    s!(
        "chat.postMessage",
        &t.bob,
        json!({"channel": GENERAL, "text": "reply", "thread_ts": pts})
    );
    s!(
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "broadcast", "thread_ts": pts, "reply_broadcast": true})
    );
    s!(
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "from the app", "metadata": json!({"event_type": "relay", "event_payload": {"a": 1}}).to_string()})
    );
    s!(
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "puppet", "username": "Rita", "icon_emoji": ":cat:"})
    );
    s!(
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "x".repeat(40_010)})
    );
    let del = s!(
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "parent to delete"})
    );
    let dts = del["ts"].as_str().unwrap_or_default().to_string();
    s!(
        "chat.postMessage",
        &t.bob,
        json!({"channel": GENERAL, "text": "keeps the thread", "thread_ts": dts})
    );
    s!(
        "chat.delete",
        &t.alice,
        json!({"channel": GENERAL, "ts": dts})
    );
    let e = s!(
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "to edit"})
    );
    let ets = e["ts"].as_str().unwrap_or_default().to_string();
    s!(
        "chat.update",
        &t.alice,
        json!({"channel": GENERAL, "ts": ets, "text": "edited"})
    );
    s!(
        "reactions.add",
        &t.bob,
        json!({"channel": GENERAL, "timestamp": ets, "name": "heart"})
    );
    s!(
        "reactions.remove",
        &t.bob,
        json!({"channel": GENERAL, "timestamp": ets, "name": "heart"})
    );
    s!(
        "reactions.add",
        &t.bob,
        json!({"channel": GENERAL, "timestamp": ets, "name": "tada"})
    );
    s!(
        "chat.getPermalink",
        &t.bob,
        json!({"channel": GENERAL, "message_ts": ets})
    );
    let up = s!(
        "files.getUploadURLExternal",
        &t.alice,
        json!({"filename": "a.txt", "length": 5})
    );
    http()
        .post(up["upload_url"].as_str().unwrap_or_default())
        .body("hello")
        .send()
        .await
        .expect("upload");
    s!(
        "files.completeUploadExternal",
        &t.alice,
        json!({"files": json!([{"id": up["file_id"], "title": "A"}]).to_string(), "channel_id": GENERAL, "initial_comment": "file"})
    );
    s!("files.info", &t.alice, json!({"file": up["file_id"]}));
    let c = s!(
        "calls.add",
        &t.bot,
        json!({"external_unique_id": "e1", "join_url": "https://x.example/1", "created_by": ALICE})
    );
    let cid = c["call"]["id"].as_str().unwrap_or_default().to_string();
    s!(
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "call", "blocks": json!([{"type": "call", "call_id": cid}]).to_string()})
    );
    s!("calls.update", &t.bot, json!({"id": cid, "title": "T"}));
    s!(
        "calls.participants.add",
        &t.bot,
        json!({"id": cid, "users": json!([{"slack_id": BOB}]).to_string()})
    );
    s!(
        "calls.participants.remove",
        &t.bot,
        json!({"id": cid, "users": json!([{"slack_id": BOB}]).to_string()})
    );
    s!("calls.info", &t.bot, json!({"id": cid}));
    s!("calls.end", &t.bot, json!({"id": cid}));
    let (huddle, _) = sim.start_huddle(GENERAL, "alice").expect("huddle");
    sim.end_huddle(&huddle).expect("end");
    s!("conversations.join", &t.bot, json!({"channel": RANDOM}));
    s!("conversations.join", &t.bot, json!({"channel": RANDOM}));
    s!("conversations.open", &t.bot, json!({"users": ALICE}));
    let dm = s!(
        "conversations.open",
        &t.bot,
        json!({"users": ALICE, "return_im": true})
    );
    let mp = s!(
        "conversations.open",
        &t.alice,
        json!({"users": format!("{BOB},U0CAROL0001"), "return_im": true})
    );
    // Reads.
    s!("auth.test", &t.bot, json!({}));
    s!("auth.test", &t.alice, json!({}));
    s!("team.info", &t.bot, json!({}));
    s!("users.info", &t.bot, json!({"user": ALICE}));
    s!("users.info", &t.bot, json!({"user": BOT}));
    s!("users.info", &t.bot, json!({"user": "U0DAVE00001"}));
    s!("users.info", &t.bot, json!({"user": "USLACKBOT"}));
    s!("users.list", &t.bot, json!({}));
    s!("users.list", &t.bot, json!({"limit": 2}));
    s!("users.profile.get", &t.alice, json!({}));
    s!("users.profile.get", &t.bot, json!({"user": "U0OTHERBOT1"}));
    s!(
        "conversations.list",
        &t.bot,
        json!({"types": "public_channel,private_channel,im,mpim"})
    );
    s!(
        "conversations.list",
        &t.alice,
        json!({"types": "public_channel,private_channel,im,mpim", "limit": 2})
    );
    for ch in [GENERAL, SECRET] {
        s!(
            "conversations.info",
            &t.bot,
            json!({"channel": ch, "include_num_members": true})
        );
    }
    s!(
        "conversations.info",
        &t.bot,
        json!({"channel": dm["channel"]["id"]})
    );
    s!(
        "conversations.info",
        &t.alice,
        json!({"channel": mp["channel"]["id"]})
    );
    s!("conversations.members", &t.bot, json!({"channel": GENERAL}));
    s!(
        "conversations.members",
        &t.bot,
        json!({"channel": GENERAL, "limit": 2})
    );
    s!("conversations.history", &t.bot, json!({"channel": GENERAL}));
    s!(
        "conversations.history",
        &t.bot,
        json!({"channel": GENERAL, "limit": 2})
    );
    s!("conversations.history", &t.bot, json!({"channel": RANDOM}));
    s!(
        "conversations.history",
        &t.bot,
        json!({"channel": RANDOM, "oldest": "9999999999.000000"})
    );
    s!(
        "conversations.replies",
        &t.bot,
        json!({"channel": GENERAL, "ts": pts})
    );
    s!(
        "conversations.replies",
        &t.bot,
        json!({"channel": GENERAL, "ts": dts})
    );
    // Errors.
    s!("auth.test", "", json!({}));
    s!("auth.test", "xoxb-unknown", json!({}));
    s!("team.info", &t.bot, json!({"team": "T0OTHER0001"}));
    s!("users.info", &t.bot, json!({"user": "U0NOBODY001"}));
    s!("users.list", &t.bot, json!({"cursor": "bm9wZQ=="}));
    s!("users.profile.get", &t.bot, json!({"user": "U0NOBODY001"}));
    s!("conversations.list", &t.bot, json!({"types": "rooms"}));
    s!("conversations.list", &t.bot, json!({"cursor": "bm9wZQ=="}));
    s!("conversations.info", &t.bot, json!({"channel": LOCKED}));
    s!("conversations.members", &t.bot, json!({"channel": LOCKED}));
    s!(
        "conversations.members",
        &t.bot,
        json!({"channel": GENERAL, "cursor": "bm9wZQ=="})
    );
    s!("conversations.history", &t.bot, json!({"channel": LOCKED}));
    s!(
        "conversations.history",
        &t.bot,
        json!({"channel": ARCHIVED, "oldest": "x"})
    );
    s!(
        "conversations.replies",
        &t.bot,
        json!({"channel": GENERAL, "ts": "1.000001"})
    );
    s!("conversations.join", &t.bot, json!({"channel": SECRET}));
    s!("conversations.join", &t.carol, json!({"channel": ARCHIVED}));
    s!(
        "conversations.open",
        &t.bot,
        json!({"users": "U0NOBODY001"})
    );
    s!("chat.postMessage", &t.bot, json!({"channel": GENERAL}));
    s!(
        "chat.postMessage",
        &t.bot,
        json!({"channel": LOCKED, "text": "x"})
    );
    s!(
        "chat.postMessage",
        &t.carol,
        json!({"channel": RANDOM, "text": "x"})
    );
    s!(
        "chat.postMessage",
        &t.bot,
        json!({"channel": ARCHIVED, "text": "x"})
    );
    s!(
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "blocks": "[{}]"})
    );
    s!(
        "chat.update",
        &t.bob,
        json!({"channel": GENERAL, "ts": ets, "text": "x"})
    );
    s!(
        "chat.update",
        &t.alice,
        json!({"channel": GENERAL, "ts": ets, "text": "y".repeat(4_001)})
    );
    s!(
        "chat.update",
        &t.alice,
        json!({"channel": GENERAL, "ts": "1.000001", "text": "x"})
    );
    s!(
        "chat.delete",
        &t.bob,
        json!({"channel": GENERAL, "ts": ets})
    );
    s!(
        "chat.delete",
        &t.bob,
        json!({"channel": GENERAL, "ts": "1.000001"})
    );
    s!(
        "chat.getPermalink",
        &t.bob,
        json!({"channel": GENERAL, "message_ts": "1.000001"})
    );
    s!(
        "reactions.add",
        &t.bob,
        json!({"channel": GENERAL, "timestamp": ets, "name": "tada"})
    );
    s!(
        "reactions.add",
        &t.bob,
        json!({"channel": GENERAL, "timestamp": ets, "name": "Bad Name"})
    );
    s!(
        "reactions.remove",
        &t.bob,
        json!({"channel": GENERAL, "timestamp": ets, "name": "heart"})
    );
    s!("files.info", &t.alice, json!({"file": "F0NOPE00001"}));
    s!(
        "files.getUploadURLExternal",
        &t.alice,
        json!({"filename": "x", "length": 0})
    );
    s!("files.getUploadURLExternal", &t.alice, json!({"length": 3}));
    s!(
        "files.completeUploadExternal",
        &t.alice,
        json!({"files": json!([{"id": "F0NOPE00001"}]).to_string()})
    );
    s!("calls.info", &t.bot, json!({"id": "R0NOPE00001"}));
    s!("calls.end", &t.bot, json!({"id": cid}));
    s!("calls.update", &t.bot, json!({"id": "R0NOPE00001"}));
    s!(
        "calls.add",
        &t.bot,
        json!({"external_unique_id": "x", "join_url": "https://x", "created_by": "U0NOBODY001"})
    );
    s!("apps.connections.open", &t.bot, json!({}));
    out.push(Sample {
        method: "apps.connections.open",
        body: call_json_empty(&sim, "apps.connections.open", &t.app).await,
    });
    s!(
        "oauth.v2.access",
        "",
        json!({"client_id": "1111.2222", "client_secret": "s3cr3t", "code": "nope"})
    );
    sim.set_bot_scopes(&["chat:write"]);
    s!("users.list", &t.bot, json!({}));
    sim.set_rate_limit_mode(switchboard_slack_sim::ratelimit::Mode::Strict);
    for _ in 0..21 {
        let (status, body) = call_status(&sim, "users.list", &t.alice, json!({})).await;
        if status == 429 {
            out.push(Sample {
                method: "users.list",
                body,
            });
        }
    }
    (sim, out)
}

/// Checks a response of a method absent from the 2021 spec against the docs reference
/// (`output.required` and property types) and the docs examples (same keys, same types).
fn check_against_docs(dir: &Path, s: &Sample) -> Vec<String> {
    let mut problems = Vec::new();
    let folder = dir.join("web").join(s.method);
    let docs = read_json(&folder.join("docs.slack.dev.reference.json"));
    if s.body["ok"] == false {
        let code = s.body["error"].as_str().unwrap_or("");
        if !documented_error(dir, s.method, code)
            && code != "invalid_arguments"
            && code != "not_allowed_token_type"
        {
            problems.push(format!("error {code} is not documented for {}", s.method));
        }
        return problems;
    }
    for r in docs["output"]["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if s.body.get(r).is_none() {
            problems.push(format!("missing required {r}"));
        }
    }
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    for ex in ["success.docs.json", "success.node-sdk-test.json"] {
        let p = folder.join(ex);
        if !p.exists() {
            continue;
        }
        let example = read_json(&p);
        for (k, v) in example.as_object().into_iter().flatten() {
            match s.body.get(k) {
                None => problems.push(format!("{ex}: missing {k}")),
                Some(ours) if kind(ours) != kind(v) => {
                    problems.push(format!("{ex}: {k} is {} not {}", kind(ours), kind(v)))
                }
                Some(_) => {}
            }
        }
    }
    problems
}

#[tokio::test]
async fn every_response_validates_against_the_2021_spec_or_newer_docs() {
    let Some(dir) = conformance() else { return };
    let spec = read_json(&dir.join("openapi/web-api/slack_web_openapi_v2.json"));
    let validator = Validator::new(&spec);
    let (sim, samples) = samples().await;
    let mut per_method: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut used: BTreeMap<&str, usize> = BTreeMap::new();
    let mut docs_errors: BTreeSet<String> = BTreeSet::new();
    let mut unexplained: Vec<String> = Vec::new();
    for s in &samples {
        let ok = s.body["ok"] == true;
        let e = per_method.entry(s.method).or_default();
        if ok {
            e.0 += 1
        } else {
            e.1 += 1
        }
        let Some(op) = spec["paths"]
            .get(format!("/{}", s.method))
            .and_then(|p| p.as_object())
            .and_then(|o| o.values().next())
        else {
            for p in check_against_docs(&dir, s) {
                unexplained.push(format!("{} (docs): {p}", s.method));
            }
            continue;
        };
        let schema = &op["responses"][if ok { "200" } else { "default" }]["schema"];
        for v in validator.validate(schema, &s.body) {
            let Violation {
                pointer,
                keyword,
                detail,
            } = &v;
            // Newer error codes are fine when the current docs document them.
            if *keyword == "enum" && pointer == "/error" {
                let code = s.body["error"].as_str().unwrap_or("");
                if documented_error(&dir, s.method, code) {
                    docs_errors.insert(format!("{}:{code}", s.method));
                    continue;
                }
            }
            let hit = EXCEPTIONS.iter().find(|x| {
                x.keyword == *keyword
                    && (x.methods.contains(&"*") || x.methods.contains(&s.method))
                    && glob(x.pointer, pointer)
            });
            if std::env::var_os("SCHEMA_DEBUG").is_some() {
                let last = pointer.rsplit('/').next().unwrap_or("");
                eprintln!(
                    "DBG {} {} {keyword} {last}",
                    hit.map_or("-", |x| x.id),
                    s.method
                );
            }
            match hit {
                Some(x) => *used.entry(x.id).or_default() += 1,
                None => unexplained.push(format!(
                    "{} {pointer} [{keyword}] {detail}\n    in {}",
                    s.method, s.body
                )),
            }
        }
    }
    println!("schema validation against slack_web_openapi_v2.json (and docs for newer methods):");
    for (m, (ok, err)) in &per_method {
        let source = if spec["paths"].get(format!("/{m}")).is_some() {
            "spec"
        } else {
            "docs"
        };
        println!("  {m:32} {ok:3} success, {err:3} error  ({source})");
    }
    println!("  {} responses validated", samples.len());
    println!(
        "  exception E-docs-error-codes: error codes absent from the spec's enums but documented now (web/<method>/docs.slack.dev.reference.json or web/_errors/common_errors.docs.json): {}",
        docs_errors.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    let mut ids: BTreeSet<&str> = BTreeSet::new();
    for x in EXCEPTIONS {
        if ids.insert(x.id) {
            println!(
                "  exception {:28} explained {:4} violations: {}",
                x.id,
                used.get(x.id).copied().unwrap_or(0),
                x.reason
            );
        }
    }
    assert!(
        unexplained.is_empty(),
        "{} unexplained violations:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
    let stale: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| !used.contains_key(id))
        .collect();
    assert!(
        stale.is_empty(),
        "exceptions no longer needed (remove them): {stale:?}"
    );
    sim.shutdown().await;
}
