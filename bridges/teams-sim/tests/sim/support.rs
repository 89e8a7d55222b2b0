//! Shared test helpers: a seeded simulator, a small Graph client and a webhook receiver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use switchboard_teams_sim::seed::Seed;
use switchboard_teams_sim::{SimConfig, TeamsSim};

pub const ADELE: &str = "adele@contoso.test";
pub const BOB: &str = "bob@contoso.test";
pub const CAROL: &str = "carol@contoso.test";

pub fn seed() -> Seed {
    serde_json::from_str(
        r#"{
        "tenantId": "2432b57b-0abd-43db-aa7b-16eadd115d34",
        "app": {"clientId": "11111111-2222-4333-8444-555555555555", "clientSecret": "s3cret"},
        "users": [
            {"displayName": "Adele Vance", "userPrincipalName": "adele@contoso.test"},
            {"displayName": "Bob Builder", "userPrincipalName": "bob@contoso.test"},
            {"displayName": "Carol Outsider", "userPrincipalName": "carol@contoso.test"}
        ],
        "teams": [{"displayName": "Contoso", "owners": ["adele@contoso.test"],
                   "members": ["bob@contoso.test"],
                   "channels": [{"displayName": "Dev"}]}],
        "chats": [{"name": "ab", "members": ["adele@contoso.test", "bob@contoso.test"]}]
    }"#,
    )
    .expect("seed parses")
}

pub async fn start() -> TeamsSim {
    start_with(SimConfig::default()).await
}

pub async fn start_with(cfg: SimConfig) -> TeamsSim {
    TeamsSim::start(SimConfig {
        seed: Some(seed()),
        ..cfg
    })
    .await
    .expect("sim starts")
}

/// (team id, channel id) of Contoso/General.
pub fn general(sim: &TeamsSim) -> (String, String) {
    sim.seeded().channels["Contoso/General"].clone()
}

pub fn chat(sim: &TeamsSim) -> String {
    sim.seeded().chats["ab"].clone()
}

/// A Graph answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

pub async fn call(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> Answer {
    call_h(method, url, token, body, &[]).await
}

pub async fn call_h(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let http = reqwest::Client::new();
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut rq = http.request(m, url);
    for (k, v) in headers {
        rq = rq.header(*k, *v);
    }
    if let Some(t) = token {
        rq = rq.bearer_auth(t);
    }
    if let Some(b) = body {
        rq = rq.json(&b);
    }
    let r = rq.send().await.expect("request sent");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn form(url: &str, fields: &[(&str, &str)]) -> Answer {
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("sent");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// How the webhook answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Echo validation tokens, 202 notifications.
    Good,
    /// Answer validation with 200 but a wrong body.
    NoEcho,
    /// Echo validation, fail notifications with 500.
    Failing,
}

#[derive(Debug)]
pub struct Hook {
    pub url: String,
    pub got: Arc<Mutex<Vec<Value>>>,
    pub validations: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct HookState {
    mode: Mode,
    got: Arc<Mutex<Vec<Value>>>,
    validations: Arc<Mutex<Vec<String>>>,
}

async fn hook_handler(
    State(s): State<HookState>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(tok) = q.get("validationToken") {
        s.validations.lock().expect("lock").push(tok.clone());
        return match s.mode {
            Mode::NoEcho => (StatusCode::OK, "hello").into_response(),
            _ => (StatusCode::OK, tok.clone()).into_response(),
        };
    }
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        s.got.lock().expect("lock").push(v);
    }
    match s.mode {
        Mode::Failing => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

pub async fn hook(mode: Mode) -> Hook {
    let got = Arc::new(Mutex::new(Vec::new()));
    let validations = Arc::new(Mutex::new(Vec::new()));
    let st = HookState {
        mode,
        got: got.clone(),
        validations: validations.clone(),
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook_handler))
        .with_state(st);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Hook {
        url: format!("http://{addr}/hook"),
        got,
        validations,
    }
}

impl Hook {
    pub fn items(&self) -> Vec<Value> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|v| v["value"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Waits until at least `n` notification items arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let items = self.items();
            if items.len() >= n {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.items()
    }
}

/// An ISO timestamp `secs` from now.
pub fn in_secs(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    switchboard_teams_sim::util::iso_ms((now + secs * 1000) as u64)
}
