//! Slash commands: who may run what, delivery over Socket Mode and to the request URL, and
//! what the person sees.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use switchboard_slack_sim::SlackSim;
use switchboard_slack_sim::commands::{CommandOutcome, Transport};
use switchboard_slack_sim::push::sign;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;
use futures_util::SinkExt;

/// The test workspace with `/switchboard` declared.
async fn start_declared() -> SlackSim {
    start_with(|cfg| {
        if let Some(seed) = cfg.seed.as_mut() {
            seed.app.slash_commands = Some(vec!["/switchboard".into()]);
        }
    })
    .await
}

const FIELDS: [&str; 13] = [
    "token",
    "team_id",
    "team_domain",
    "channel_id",
    "channel_name",
    "user_id",
    "user_name",
    "command",
    "text",
    "api_app_id",
    "is_enterprise_install",
    "response_url",
    "trigger_id",
];

#[tokio::test]
async fn a_command_arrives_as_a_slash_commands_envelope_and_the_ack_payload_is_shown() {
    let sim = start_declared().await;
    let (mut ws, _) = connect(&sim).await;
    let id = sim
        .run_slash_command(GENERAL, "alice", "/switchboard", "call Design review")
        .expect("runs");
    let env = next_json(&mut ws).await.expect("an envelope");
    assert_eq!(env["type"], "slash_commands");
    assert_eq!(env["accepts_response_payload"], true);
    let p = &env["payload"];
    let keys: Vec<&str> = p
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = FIELDS.to_vec();
    want.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(p["command"], "/switchboard");
    assert_eq!(p["text"], "call Design review");
    assert_eq!(p["user_id"], ALICE);
    assert_eq!(p["user_name"], "alice");
    assert_eq!(p["channel_id"], GENERAL);
    assert_eq!(p["channel_name"], "general");
    assert_eq!(p["team_id"], "T0SIMTEAM01");
    assert_eq!(p["api_app_id"], "A0SIMAPP001");
    assert_eq!(p["token"], sim.seeded().verification_token.as_str());
    assert_eq!(p["trigger_id"], id.as_str());
    assert!(
        p["response_url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("{}/commands/", sim.base_url())))
    );
    // Pending until acked; the ack's payload is what the person sees.
    assert_eq!(
        sim.slash_command(&id).expect("recorded").outcome,
        CommandOutcome::Pending
    );
    let ack = json!({"envelope_id": env["envelope_id"], "payload": {"text": "On it", "response_type": "ephemeral"}});
    ws.send(Message::Text(ack.to_string().into()))
        .await
        .expect("ack");
    let done = sim
        .wait_for_slash_command(&id, Duration::from_secs(2))
        .await
        .expect("acknowledged");
    assert_eq!(done.outcome, CommandOutcome::Acknowledged);
    assert_eq!(done.transport, Transport::SocketMode);
    assert_eq!(done.seen(), vec!["On it".to_string()]);
    assert_eq!(done.replies[0].response_type, "ephemeral");
    // A follow-up through the response_url is a further reply.
    let url = p["response_url"].as_str().expect("url");
    let r = http()
        .post(url)
        .json(&json!({"text": "Meeting ready"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        sim.slash_command(&id).expect("recorded").seen(),
        vec!["On it".to_string(), "Meeting ready".to_string()]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn no_ack_in_time_shows_operation_timeout_and_redelivery_keeps_the_envelope_id() {
    let sim = start_declared().await;
    let (mut ws, _) = connect(&sim).await;
    let id = sim
        .run_slash_command(GENERAL, "bob", "/switchboard", "help")
        .expect("runs");
    let first = next_json(&mut ws).await.expect("an envelope");
    let failed = sim
        .wait_for_slash_command(&id, Duration::from_secs(2))
        .await
        .expect("resolved");
    assert_eq!(
        failed.outcome,
        CommandOutcome::Failed {
            error: "operation_timeout".into()
        }
    );
    assert_eq!(
        failed.seen(),
        vec!["/switchboard failed with the error \"operation_timeout\"".to_string()]
    );
    // Not retried by itself.
    assert!(
        next_json_within(&mut ws, Duration::from_millis(400))
            .await
            .is_none()
    );
    sim.redeliver_slash_command(&id).expect("redelivered");
    let again = next_json(&mut ws).await.expect("the envelope again");
    assert_eq!(again["envelope_id"], first["envelope_id"]);
    assert_eq!(again["payload"], first["payload"]);
    assert_eq!(again["retry_attempt"], 1);
    assert_eq!(sim.slash_command(&id).expect("recorded").deliveries, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn only_declared_commands_from_members_are_delivered() {
    let sim = start_declared().await;
    let err = sim
        .run_slash_command(GENERAL, "alice", "/other", "")
        .expect_err("not declared");
    assert!(err.to_string().contains("not a valid command"), "{err}");
    // Bob is not in #secret.
    assert!(
        sim.run_slash_command(SECRET, "bob", "/switchboard", "")
            .is_err()
    );
    // Without the commands scope the app has no commands.
    sim.set_bot_scopes(&["chat:write"]);
    assert!(
        sim.run_slash_command(GENERAL, "alice", "/switchboard", "")
            .is_err()
    );
    // Undeclared in a workspace that declares none.
    let plain = start().await;
    assert!(
        plain
            .run_slash_command(GENERAL, "alice", "/switchboard", "")
            .is_err()
    );
    // Nobody connected: the person sees dispatch_failed.
    sim.set_bot_scopes(&["chat:write", "commands"]);
    let id = sim
        .run_slash_command(SECRET, "alice", "/switchboard", "")
        .expect("runs");
    let c = sim
        .wait_for_slash_command(&id, Duration::from_secs(1))
        .await
        .expect("resolved");
    assert_eq!(c.payload_json()["channel_name"], "privategroup");
    assert_eq!(
        c.outcome,
        CommandOutcome::Failed {
            error: "dispatch_failed".into()
        }
    );
    sim.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test]
async fn over_http_a_command_is_a_signed_form_post_and_the_answer_is_shown() {
    type Log = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;
    let sim = start_declared().await;
    let log: Log = Arc::default();
    let l = log.clone();
    let app = axum::Router::new().route(
        "/slack/events",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let l = l.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                if v["type"] == "url_verification" {
                    return axum::Json(json!({"challenge": v["challenge"]}));
                }
                l.lock().expect("lock").push((headers, body));
                axum::Json(json!({"response_type": "ephemeral", "text": "Got it"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/slack/events",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    sim.set_request_url(Some(&url)).await.expect("verified");
    let id = sim
        .run_slash_command(GENERAL, "alice", "/switchboard", "call Design review")
        .expect("runs");
    let done = sim
        .wait_for_slash_command(&id, Duration::from_secs(2))
        .await
        .expect("resolved");
    assert_eq!(done.transport, Transport::Http);
    assert_eq!(done.outcome, CommandOutcome::Acknowledged);
    assert_eq!(done.seen(), vec!["Got it".to_string()]);
    let got = log.lock().expect("lock").clone();
    assert_eq!(got.len(), 1);
    let (h, body) = &got[0];
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    assert_eq!(
        header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let ts = header("x-slack-request-timestamp").expect("timestamp");
    assert_eq!(
        header("x-slack-signature"),
        Some(sign(&sim.seeded().signing_secret, ts, body).as_str())
    );
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).expect("form");
    let keys: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, FIELDS.to_vec());
    assert!(form.contains(&("text".into(), "call Design review".into())));
    assert!(form.contains(&("command".into(), "/switchboard".into())));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_runs_lists_and_redelivers_commands() {
    let sim = start_declared().await;
    let (mut ws, _) = connect(&sim).await;
    let r = http()
        .post(format!("{}/_admin/slash_commands", sim.base_url()))
        .json(&json!({"channel": GENERAL, "user": "alice", "command": "/switchboard", "text": "call"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.expect("json");
    let id = v["trigger_id"].as_str().expect("trigger_id").to_string();
    let env = next_json(&mut ws).await.expect("envelope");
    assert_eq!(env["payload"]["trigger_id"], id.as_str());
    ack(&mut ws, &env).await;
    let redo = http()
        .post(format!(
            "{}/_admin/slash_commands/{id}/redeliver",
            sim.base_url()
        ))
        .send()
        .await
        .expect("post");
    assert_eq!(redo.status().as_u16(), 200);
    assert_eq!(
        next_json(&mut ws).await.expect("again")["envelope_id"],
        env["envelope_id"]
    );
    let list: Value = http()
        .get(format!("{}/_admin/slash_commands", sim.base_url()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(list["slash_commands"][0]["trigger_id"], id.as_str());
    assert_eq!(
        list["slash_commands"][0]["outcome"]["state"],
        "acknowledged"
    );
    let bad = http()
        .post(format!("{}/_admin/slash_commands", sim.base_url()))
        .json(&json!({"channel": GENERAL, "user": "alice", "command": "/nope"}))
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status().as_u16(), 400);
    sim.shutdown().await;
}
