//! Shared helpers: a seeded simulator, Web API calls (form, JSON), a Socket Mode client, and
//! the conformance corpus location.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_slack_sim::seed::Seed;
use switchboard_slack_sim::{SimConfig, SlackSim};
use tokio_tungstenite::tungstenite::Message;

/// The workspace most tests use.
pub fn seed() -> Seed {
    serde_json::from_value(json!({
        "team": {"id": "T0SIMTEAM01", "name": "Acme", "domain": "acme"},
        "app": {"app_id": "A0SIMAPP001", "name": "Switchboard", "bot_name": "switchboard",
                "bot_user_id": "U0SIMBOT001", "bot_id": "B0SIMBOT001",
                "signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
                "client_id": "1111.2222", "client_secret": "s3cr3t",
                "redirect_urls": ["http://127.0.0.1/"]},
        "users": [
            {"id": "U0ALICE0001", "name": "alice", "real_name": "Alice Liddell", "display_name": "alice",
             "avatar_url": "https://example.com/alice.png"},
            {"id": "U0BOB000001", "name": "bob", "real_name": "Bob Builder"},
            {"id": "U0CAROL0001", "name": "carol", "real_name": "Carol Danvers"},
            {"id": "U0DAVE00001", "name": "dave", "deleted": true},
            {"id": "U0OTHERBOT1", "name": "otherbot", "is_bot": true}
        ],
        "channels": [
            {"id": "C0GENERAL01", "name": "general", "members": ["alice", "bob", "carol", "@bot"], "is_general": true},
            {"id": "C0RANDOM001", "name": "random", "members": ["alice", "bob"]},
            {"id": "C0SECRET001", "name": "secret", "private": true, "members": ["alice", "@bot"]},
            {"id": "C0LOCKED001", "name": "locked", "private": true, "members": ["bob"]},
            {"id": "C0ARCHIVE01", "name": "old", "members": ["alice", "@bot"], "archived": true}
        ]
    }))
    .expect("test seed")
}

pub const GENERAL: &str = "C0GENERAL01";
pub const RANDOM: &str = "C0RANDOM001";
pub const SECRET: &str = "C0SECRET001";
pub const LOCKED: &str = "C0LOCKED001";
pub const ARCHIVED: &str = "C0ARCHIVE01";
pub const ALICE: &str = "U0ALICE0001";
pub const BOB: &str = "U0BOB000001";
pub const BOT: &str = "U0SIMBOT001";

/// A simulator with the test seed and short delivery timings.
pub async fn start() -> SlackSim {
    start_with(|_| {}).await
}

/// Like [`start`], adjusting the config first.
pub async fn start_with(f: impl FnOnce(&mut SimConfig)) -> SlackSim {
    let mut cfg = SimConfig {
        seed: Some(seed()),
        ack_timeout: Duration::from_millis(300),
        push_timeout: Duration::from_millis(500),
        push_retry_delays: vec![
            Duration::ZERO,
            Duration::from_millis(50),
            Duration::from_millis(50),
        ],
        warning_close_after: Duration::from_millis(200),
        ..SimConfig::default()
    };
    f(&mut cfg);
    SlackSim::start(cfg).await.expect("simulator starts")
}

pub struct Tokens {
    pub bot: String,
    pub app: String,
    pub alice: String,
    pub bob: String,
    pub carol: String,
}

pub fn tokens(sim: &SlackSim) -> Tokens {
    let s = sim.seeded();
    Tokens {
        bot: s.bot_token.clone(),
        app: s.app_token.clone(),
        alice: s.user_tokens["alice"].clone(),
        bob: s.user_tokens["bob"].clone(),
        carol: s.user_tokens["carol"].clone(),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A form-encoded call with a Bearer token (booleans as the SDK sends them).
pub async fn call(sim: &SlackSim, method: &str, token: &str, args: Value) -> Value {
    let (status, body) = call_status(sim, method, token, args).await;
    assert_eq!(status, 200, "{method} answered HTTP {status}: {body}");
    body
}

/// Like [`call`], also returning the HTTP status.
pub async fn call_status(sim: &SlackSim, method: &str, token: &str, args: Value) -> (u16, Value) {
    let mut form: Vec<(String, String)> = Vec::new();
    if let Value::Object(m) = args {
        for (k, v) in m {
            let s = match v {
                Value::String(s) => s,
                Value::Bool(b) => {
                    if b {
                        "1".into()
                    } else {
                        "0".into()
                    }
                }
                other => other.to_string(),
            };
            form.push((k, s));
        }
    }
    let mut req = client()
        .post(sim.api_url(method))
        .header("Content-Type", "application/x-www-form-urlencoded");
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    let body = serde_urlencoded::to_string(&form).expect("form");
    let resp = req.body(body).send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// A JSON call (`application/json;charset=utf-8`, as the official SDK sends it).
pub async fn call_json(sim: &SlackSim, method: &str, token: &str, args: Value) -> Value {
    let resp = client()
        .post(sim.api_url(method))
        .bearer_auth(token)
        .header("Content-Type", "application/json;charset=utf-8")
        .body(args.to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("json body")
}

/// A raw call: content type and body as given.
pub async fn call_raw(
    sim: &SlackSim,
    method: &str,
    auth: Option<&str>,
    ctype: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut req = client().post(sim.api_url(method)).body(body.to_string());
    if let Some(t) = auth {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = ctype {
        req = req.header("Content-Type", ct);
    }
    req.send().await.expect("request")
}

pub fn http() -> reqwest::Client {
    client()
}

pub fn assert_ok(v: &Value) {
    assert_eq!(v["ok"], json!(true), "expected ok: {v}");
}

pub fn assert_err(v: &Value, code: &str) {
    assert_eq!(v["ok"], json!(false), "expected error {code}: {v}");
    assert_eq!(v["error"], json!(code), "{v}");
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a Socket Mode connection through apps.connections.open; returns it after `hello`.
pub async fn connect(sim: &SlackSim) -> (Ws, Value) {
    let t = tokens(sim);
    let open = call_json_empty(sim, "apps.connections.open", &t.app).await;
    assert_ok(&open);
    let url = open["url"].as_str().expect("url").to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    let hello = next_json(&mut ws).await.expect("hello");
    (ws, hello)
}

/// The SDK's no-argument call: an empty body labelled JSON.
pub async fn call_json_empty(sim: &SlackSim, method: &str, token: &str) -> Value {
    let r = call_raw(
        sim,
        method,
        Some(token),
        Some("application/json;charset=utf-8"),
        "",
    )
    .await;
    r.json().await.expect("json")
}

/// The next text frame as JSON (pings/pongs skipped), or None on close/timeout (2 s).
pub async fn next_json(ws: &mut Ws) -> Option<Value> {
    next_json_within(ws, Duration::from_secs(2)).await
}

pub async fn next_json_within(ws: &mut Ws, d: Duration) -> Option<Value> {
    next_text_within(ws, d)
        .await
        .and_then(|t| serde_json::from_str(&t).ok())
}

pub async fn next_text_within(ws: &mut Ws, d: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + d;
    loop {
        let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(t.to_string()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Next events_api envelope whose inner event has `event_type` (others are acked).
pub async fn next_event(ws: &mut Ws, event_type: &str) -> Value {
    loop {
        let env = next_json(ws)
            .await
            .unwrap_or_else(|| panic!("no {event_type} event arrived"));
        if env["type"] != "events_api" {
            continue;
        }
        ack(ws, &env).await;
        if env["payload"]["event"]["type"] == event_type {
            return env;
        }
    }
}

/// Next message-type event with the given subtype (None = plain message).
pub async fn next_message(ws: &mut Ws, subtype: Option<&str>) -> Value {
    loop {
        let env = next_event(ws, "message").await;
        let st = env["payload"]["event"]["subtype"].as_str();
        if st == subtype {
            return env;
        }
    }
}

pub async fn ack(ws: &mut Ws, env: &Value) {
    let id = env["envelope_id"].as_str().expect("envelope_id");
    ws.send(Message::Text(json!({"envelope_id": id}).to_string().into()))
        .await
        .expect("ack");
}

/// The conformance corpus: `$SWITCHBOARD_CONFORMANCE_DIR/slack`. Fails when the variable is
/// set but the folder is missing; returns None (after printing a note) when it is unset.
pub fn conformance() -> Option<PathBuf> {
    match std::env::var_os("SWITCHBOARD_CONFORMANCE_DIR") {
        None => {
            eprintln!(
                "note: SWITCHBOARD_CONFORMANCE_DIR is not set; skipping the conformance comparison"
            );
            None
        }
        Some(dir) => {
            let p = PathBuf::from(dir).join("slack");
            assert!(
                p.is_dir(),
                "SWITCHBOARD_CONFORMANCE_DIR is set but {} is missing",
                p.display()
            );
            Some(p)
        }
    }
}

pub fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
