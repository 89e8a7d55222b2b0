//! Output key sets compared with real Graph payloads in `conformance/teams/` (read through
//! `SWITCHBOARD_CONFORMANCE_DIR`; skipped with a note when unset, failing when set but
//! missing).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_teams_sim::SimConfig;

use crate::support::*;

fn dir() -> Option<PathBuf> {
    match std::env::var_os("SWITCHBOARD_CONFORMANCE_DIR") {
        None => {
            println!(
                "note: SWITCHBOARD_CONFORMANCE_DIR is not set; conformance comparisons skipped"
            );
            None
        }
        Some(d) => {
            let p = PathBuf::from(d).join("teams");
            assert!(
                p.is_dir(),
                "SWITCHBOARD_CONFORMANCE_DIR is set but {} is missing",
                p.display()
            );
            Some(p)
        }
    }
}

fn load(p: PathBuf) -> Value {
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().filter(|k| !k.starts_with('@')).cloned().collect())
        .unwrap_or_default()
}

/// Every chatMessage object (has messageType and body) anywhere in `v`.
fn messages(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(o) => {
            if o.contains_key("messageType") && o.contains_key("body") && o.contains_key("etag") {
                out.push(v.clone());
            }
            o.values().for_each(|x| messages(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| messages(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn chat_message_keys_match_graph_examples() {
    let Some(d) = dir() else { return };
    let mut samples = Vec::new();
    for f in [
        "graph/examples-2023/chatmessage-get.examples.json",
        "graph/examples-2021/channel-list-messages.examples.json",
        "graph/examples-2023/chat-list-messages.examples.json",
        "graph/system-messages/call-started.json",
        "graph/system-messages/call-ended.json",
    ] {
        messages(&load(d.join(f)), &mut samples);
    }
    assert!(samples.len() >= 5, "found {} samples", samples.len());
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let (team, ch) = general(&sim);
    let r = call(
        "POST",
        &format!("{}/teams/{team}/channels/{ch}/messages", sim.graph_url()),
        Some(&adele),
        Some(json!({"body": {"content": "x"}})),
    )
    .await;
    let ours = keys(&r.body);
    let mut union = BTreeSet::new();
    for s in &samples {
        let theirs: BTreeSet<String> = keys(s).into_iter().filter(|k| k != "onBehalfOf").collect();
        let missing: Vec<_> = theirs.difference(&ours).collect();
        assert!(
            missing.is_empty(),
            "keys Graph sends that we lack: {missing:?}"
        );
        union.extend(keys(s));
    }
    let extra: Vec<_> = ours.difference(&union).collect();
    assert!(
        extra.is_empty(),
        "keys we send that Graph does not: {extra:?}"
    );
    // from.user and reactions' identity sets.
    assert_eq!(
        keys(&r.body["from"]["user"]),
        ["displayName", "id", "userIdentityType"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn system_message_event_details_match() {
    let Some(d) = dir() else { return };
    let sim = start().await;
    let (team, ch) = general(&sim);
    let s = sim.start_meeting(&team, &ch, ADELE).expect("start");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let e = sim.end_meeting(&team, &ch).expect("end");
    let app = sim.app_token();
    for (id, file) in [(s, "call-started.json"), (e, "call-ended.json")] {
        let ours = call(
            "GET",
            &format!(
                "{}/teams/{team}/channels/{ch}/messages/{id}",
                sim.graph_url()
            ),
            Some(&app),
            None,
        )
        .await
        .body;
        let theirs = load(d.join("graph/system-messages").join(file));
        assert_eq!(
            ours["eventDetail"]["@odata.type"],
            theirs["eventDetail"]["@odata.type"]
        );
        assert_eq!(
            keys(&ours["eventDetail"]),
            keys(&theirs["eventDetail"]),
            "{file}"
        );
        assert_eq!(
            keys(&ours["eventDetail"]["initiator"]),
            keys(&theirs["eventDetail"]["initiator"])
        );
        assert_eq!(ours["body"], theirs["body"]);
        assert_eq!(ours["from"], Value::Null);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn observed_app_post_error_is_reproduced_verbatim() {
    let Some(d) = dir() else { return };
    let obs = load(d.join("graph/errors-throttling/observed-error-responses.json"));
    let ex = obs["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .find(|e| {
            e["scenario"]
                .as_str()
                .is_some_and(|s| s.contains("Application-only"))
        })
        .expect("app-only example")
        .clone();
    let sim = start().await;
    let r = call(
        "POST",
        &format!("{}/chats/{}/messages", sim.graph_url(), chat(&sim)),
        Some(&sim.app_token()),
        Some(json!({"body": {"content": "x"}})),
    )
    .await;
    assert_eq!(u64::from(r.status), ex["status"].as_u64().expect("status"));
    assert_eq!(r.body["error"]["code"], ex["body"]["error"]["code"]);
    assert_eq!(r.body["error"]["message"], ex["body"]["error"]["message"]);
    assert_eq!(
        keys(&r.body["error"]["innerError"]),
        keys(&ex["body"]["error"]["innerError"])
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn notification_and_lifecycle_keys_match_payloads() {
    let Some(d) = dir() else { return };
    let p = d.join("notifications/payloads");
    let theirs = load(p.join("chatmessage-notification-without-resource-data.json"));
    let life = load(p.join("lifecycle-reauthorizationRequired.json"));
    let sim = start_with(SimConfig {
        retry_delays: vec![],
        ..SimConfig::default()
    })
    .await;
    let hook = hook(Mode::Good).await;
    let life_hook = crate::support::hook(Mode::Good).await;
    let app = sim.app_token();
    let r = call(
        "POST",
        &format!("{}/subscriptions", sim.graph_url()),
        Some(&app),
        Some(json!({
            "changeType": "created", "notificationUrl": hook.url,
            "lifecycleNotificationUrl": life_hook.url,
            "resource": "/teams/getAllMessages", "expirationDateTime": in_secs(600),
            "clientState": "x"})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // Subscription keys: everything Graph's renew answer has.
    let sub_doc = load(p.join("subscription-create-and-renew.json"));
    let missing: Vec<_> = keys(&sub_doc["renew"]["response"]["body"])
        .difference(&keys(&r.body))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "subscription keys missing: {missing:?}");
    let adele = sim.delegated_token(ADELE).expect("token");
    let (team, ch) = general(&sim);
    call(
        "POST",
        &format!("{}/teams/{team}/channels/{ch}/messages", sim.graph_url()),
        Some(&adele),
        Some(json!({"body": {"content": "x"}})),
    )
    .await;
    let items = hook.wait_for(1).await;
    assert_eq!(keys(&items[0]), keys(&theirs));
    assert_eq!(
        items[0]["resourceData"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<BTreeSet<_>>()),
        theirs["resourceData"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<BTreeSet<_>>())
    );
    sim.trigger_lifecycle(
        r.body["id"].as_str().expect("id"),
        "reauthorizationRequired",
    )
    .await
    .expect("lifecycle");
    let l = life_hook.wait_for(1).await;
    assert_eq!(keys(&l[0]), keys(&life["value"][0]));
    sim.shutdown().await;
}

#[tokio::test]
async fn throttling_body_matches_the_documented_sample() {
    let Some(d) = dir() else { return };
    let raw = std::fs::read_to_string(d.join("graph/errors-throttling/429-too-many-requests.http"))
        .expect("429 sample");
    let json_start = raw.find('{').expect("json body");
    let theirs: Value = serde_json::from_str(&raw[json_start..]).expect("json");
    let sim = start_with(SimConfig {
        rate_limit: switchboard_teams_sim::limits::Mode::Strict,
        ..SimConfig::default()
    })
    .await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let url = format!("{}/chats/{}/messages", sim.graph_url(), chat(&sim));
    let mut got = None;
    for _ in 0..5 {
        let r = call(
            "POST",
            &url,
            Some(&adele),
            Some(json!({"body": {"content": "x"}})),
        )
        .await;
        if r.status == 429 {
            got = Some(r);
            break;
        }
    }
    let r = got.expect("throttled");
    assert_eq!(keys(&r.body["error"]), keys(&theirs["error"]));
    let ours_inner = keys(&r.body["error"]["innerError"]);
    for k in keys(&theirs["error"]["innerError"]) {
        assert!(ours_inner.contains(&k), "innerError.{k}");
    }
    assert_eq!(r.body["error"]["message"], theirs["error"]["message"]);
    sim.shutdown().await;
}

/// `POST /chats`: Graph's documented requests (a one-on-one and a group chat) are accepted
/// with the users rebound to the simulator's, and the answers carry the documented keys.
#[tokio::test]
async fn chat_creation_accepts_the_documented_requests() {
    let Some(d) = dir() else { return };
    let examples = load(d.join("graph/examples-2021/chat-post.examples.json"));
    let list = examples["examples"].as_array().expect("examples");
    assert!(list.len() >= 2);
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let ours = [ADELE, BOB, CAROL].map(|u| sim.seeded().users[u].clone());
    for example in list {
        let mut body = example["request"]["body"].clone();
        let members = body["members"].as_array_mut().expect("members");
        for (member, user) in members.iter_mut().zip(ours.iter()) {
            let bind = member["user@odata.bind"].as_str().expect("bind");
            // Only the id differs from the documented bind.
            let (prefix, _) = bind.split_once("users('").expect("users('…')");
            member["user@odata.bind"] = json!(format!("{prefix}users('{user}')"));
        }
        let r = call(
            "POST",
            &format!("{}/chats", sim.graph_url()),
            Some(&adele),
            Some(body),
        )
        .await;
        let expected = &example["response"];
        assert_eq!(
            u64::from(r.status),
            expected["status"].as_u64().expect("status"),
            "{}: {:?}",
            example["name"],
            r.body
        );
        let missing: Vec<String> = keys(&expected["body"])
            .difference(&keys(&r.body))
            .cloned()
            .collect();
        assert!(
            missing.is_empty(),
            "{}: missing {missing:?}",
            example["name"]
        );
        assert_eq!(r.body["chatType"], expected["body"]["chatType"]);
        assert_eq!(r.body["topic"], expected["body"]["topic"]);
    }
    sim.shutdown().await;
}
