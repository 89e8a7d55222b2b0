//! The admin API (`/_admin/…`, JSON): what Slack itself does, and what people can only do in
//! Slack's own clients — people otherwise act through the ordinary Web API with their own
//! tokens. It creates people and channels, issues user tokens (what an install does), runs
//! huddles and slash commands, sets the rate-limit
//! mode, injects faults, sends Socket Mode disconnect frames, sets the Events API request
//! URL, and reads counters. Answers are `{"ok":true,…}` or HTTP 4xx with
//! `{"ok":false,"error":…}`. When the simulator has an admin token, requests must carry it
//! as `Authorization: Bearer …`.
//!
//! | method | path | body |
//! |---|---|---|
//! | GET | `/_admin/seeded` | – (ids and tokens seeded so far) |
//! | POST | `/_admin/seed` | a [`Seed`] |
//! | POST | `/_admin/users` | a [`UserSeed`] |
//! | POST | `/_admin/users/{id}/profile` | a [`UserPatch`] |
//! | POST | `/_admin/users/{id}/message_app` | `{"text"}` → `{"channel", "ts"}` (the person writes to the app in its Messages tab) |
//! | GET | `/_admin/users/{id}/app_im` | – (`{"channel", "messages"}`: their IM with the bot, opened if needed) |
//! | POST | `/_admin/channels` | a [`ChannelSeed`] |
//! | POST | `/_admin/channels/{id}/join` | `{"user", "inviter"?}` |
//! | POST | `/_admin/channels/{id}/leave` | `{"user"}` |
//! | POST | `/_admin/channels/{id}/rename` | `{"name"}` |
//! | POST | `/_admin/channels/{id}/archive` | `{"archived": bool}` |
//! | GET | `/_admin/channels/{id}/messages` | – (stored messages, oldest first) |
//! | POST | `/_admin/tokens` | `{"user", "scopes"?}` → `{"token"}` |
//! | POST | `/_admin/tokens/revoke` | `{"token"}` |
//! | POST | `/_admin/bot_scopes` | `{"scopes": [...]}` |
//! | POST | `/_admin/huddles` | `{"channel", "user"}` → `{"id", "ts"}` |
//! | POST | `/_admin/huddles/{id}/join` | `{"user"}` |
//! | POST | `/_admin/huddles/{id}/end` | – |
//! | POST | `/_admin/slash_commands` | `{"channel", "user", "command", "text"?}` → `{"trigger_id"}` |
//! | GET | `/_admin/slash_commands` | – (every invocation with its outcome and replies) |
//! | POST | `/_admin/slash_commands/{trigger_id}/redeliver` | – (same envelope again) |
//! | GET/POST | `/_admin/ratelimit` | `{"mode": "off"/"relaxed"/"strict", "body": "json"/"empty"}` |
//! | GET/POST | `/_admin/faults` | a [`FaultConfig`] |
//! | POST | `/_admin/faults/refuse` | `{"ms"}` |
//! | GET | `/_admin/socket` | – (`{"connections"}`) |
//! | POST | `/_admin/socket/disconnect` | `{"reason"}` |
//! | POST | `/_admin/events/request_url` | `{"url": "…" or null}` |
//! | POST | `/_admin/delivery` | `{"ack_timeout_ms"?, "max_retries"?, "push_timeout_ms"?, "push_retry_delays_ms"?}` |
//! | GET | `/_admin/counters` | – |

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::FaultConfig;
use crate::ratelimit::{Body429, Mode};
use crate::seed::{ChannelSeed, Seed, UserSeed};
use crate::{Sim, SimError, UserPatch, lock};

/// An admin failure: status and message.
#[derive(Debug)]
struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"ok": false, "error": self.1}))).into_response()
    }
}

type Result<T> = std::result::Result<T, AdminError>;

fn fail(status: StatusCode, error: impl Into<String>) -> AdminError {
    AdminError(status, error.into())
}

fn sim_err(e: SimError) -> AdminError {
    match e {
        SimError::NotFound(m) => fail(StatusCode::NOT_FOUND, m),
        SimError::Invalid(m) => fail(StatusCode::BAD_REQUEST, m),
    }
}

fn ok(v: Value) -> Response {
    let mut body = json!({"ok": true});
    if let (Value::Object(b), Value::Object(extra)) = (&mut body, v) {
        b.extend(extra);
    }
    Json(body).into_response()
}

fn authorize(sim: &Sim, headers: &HeaderMap) -> Result<()> {
    let want = lock(&sim.options).admin_token.clone();
    let Some(want) = want else {
        return Ok(());
    };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Bearer "));
    if got == Some(want.as_str()) {
        Ok(())
    } else {
        Err(fail(StatusCode::UNAUTHORIZED, "admin token required"))
    }
}

/// Parses a JSON body (empty = `{}`), answering 400 on junk instead of panicking.
fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// A handle built from the shared state, to reuse [`crate::SlackSim`]'s methods.
fn handle(sim: &Arc<Sim>) -> crate::SlackSim {
    crate::SlackSim::from_inner(sim.clone())
}

macro_rules! admin {
    ($name:ident, |$sim:ident, $path:ident : $pty:ty, $bytes:ident| $body:block) => {
        async fn $name(
            AxState(sim): AxState<Arc<Sim>>,
            Path(path): Path<$pty>,
            headers: HeaderMap,
            bytes: axum::body::Bytes,
        ) -> Response {
            fn run($sim: &Arc<Sim>, $path: $pty, $bytes: &[u8]) -> Result<Value> $body
            if let Err(e) = authorize(&sim, &headers) {
                return e.into_response();
            }
            match run(&sim, path, &bytes) {
                Ok(v) => ok(v),
                Err(e) => e.into_response(),
            }
        }
    };
    ($name:ident, |$sim:ident, $bytes:ident| $body:block) => {
        async fn $name(
            AxState(sim): AxState<Arc<Sim>>,
            headers: HeaderMap,
            bytes: axum::body::Bytes,
        ) -> Response {
            fn run($sim: &Arc<Sim>, $bytes: &[u8]) -> Result<Value> $body
            if let Err(e) = authorize(&sim, &headers) {
                return e.into_response();
            }
            match run(&sim, &bytes) {
                Ok(v) => ok(v),
                Err(e) => e.into_response(),
            }
        }
    };
}

admin!(seeded, |sim, _b| {
    Ok(json!({"seeded": lock(&sim.seeded).clone()}))
});

admin!(seed, |sim, b| {
    let s: Seed = body(b)?;
    let r = handle(sim).seed(&s).map_err(sim_err)?;
    Ok(json!({"seeded": r}))
});

admin!(add_user, |sim, b| {
    let spec: UserSeed = body(b)?;
    let id = handle(sim).add_user(spec).map_err(sim_err)?;
    let st = lock(&sim.state);
    let user = st
        .user(&id)
        .map(|u| crate::render::user(&st, u))
        .unwrap_or(Value::Null);
    Ok(json!({"id": id, "user": user}))
});

admin!(update_user, |sim, id: String, b| {
    let patch: UserPatch = body(b)?;
    handle(sim).update_user(&id, patch).map_err(sim_err)?;
    Ok(json!({}))
});

admin!(add_channel, |sim, b| {
    let spec: ChannelSeed = body(b)?;
    let id = handle(sim).add_channel(spec).map_err(sim_err)?;
    let st = lock(&sim.state);
    let ch = st
        .channel(&id)
        .map(|c| crate::render::channel(&st, c, "", true))
        .unwrap_or(Value::Null);
    Ok(json!({"id": id, "channel": ch}))
});

#[derive(Deserialize)]
struct UserArg {
    user: String,
    inviter: Option<String>,
}

admin!(join, |sim, id: String, b| {
    let a: UserArg = body(b)?;
    let joined = handle(sim)
        .join_channel(&id, &a.user, a.inviter.as_deref())
        .map_err(sim_err)?;
    Ok(json!({"joined": joined}))
});

admin!(leave, |sim, id: String, b| {
    let a: UserArg = body(b)?;
    let left = handle(sim).leave_channel(&id, &a.user).map_err(sim_err)?;
    Ok(json!({"left": left}))
});

#[derive(Deserialize)]
struct NameArg {
    name: String,
}

admin!(rename, |sim, id: String, b| {
    let a: NameArg = body(b)?;
    handle(sim).rename_channel(&id, &a.name).map_err(sim_err)?;
    Ok(json!({}))
});

#[derive(Deserialize)]
struct ArchiveArg {
    archived: bool,
}

admin!(archive, |sim, id: String, b| {
    let a: ArchiveArg = body(b)?;
    handle(sim).set_archived(&id, a.archived).map_err(sim_err)?;
    Ok(json!({}))
});

admin!(messages, |sim, id: String, _b| {
    Ok(json!({"messages": handle(sim).messages(&id)}))
});

#[derive(Deserialize)]
struct TextArg {
    text: String,
}

admin!(message_app, |sim, id: String, b| {
    let a: TextArg = body(b)?;
    let (channel, ts) = handle(sim).message_app(&id, &a.text).map_err(sim_err)?;
    Ok(json!({"channel": channel, "ts": ts}))
});

admin!(app_im, |sim, id: String, _b| {
    let h = handle(sim);
    let channel = h.app_im(&id).map_err(sim_err)?;
    Ok(json!({"channel": channel, "messages": h.messages(&channel)}))
});

#[derive(Deserialize)]
struct TokenArg {
    user: String,
    scopes: Option<Vec<String>>,
}

admin!(issue_token, |sim, b| {
    let a: TokenArg = body(b)?;
    let scopes: Option<Vec<&str>> = a
        .scopes
        .as_ref()
        .map(|s| s.iter().map(String::as_str).collect());
    let token = handle(sim)
        .issue_user_token(&a.user, scopes.as_deref())
        .map_err(sim_err)?;
    Ok(json!({"token": token}))
});

#[derive(Deserialize)]
struct RevokeArg {
    token: String,
}

admin!(revoke, |sim, b| {
    let a: RevokeArg = body(b)?;
    handle(sim).revoke_token(&a.token).map_err(sim_err)?;
    Ok(json!({}))
});

#[derive(Deserialize)]
struct ScopesArg {
    scopes: Vec<String>,
}

admin!(bot_scopes, |sim, b| {
    let a: ScopesArg = body(b)?;
    let s: Vec<&str> = a.scopes.iter().map(String::as_str).collect();
    handle(sim).set_bot_scopes(&s);
    Ok(json!({}))
});

#[derive(Deserialize)]
struct HuddleArg {
    channel: String,
    user: String,
}

admin!(start_huddle, |sim, b| {
    let a: HuddleArg = body(b)?;
    let (id, ts) = handle(sim)
        .start_huddle(&a.channel, &a.user)
        .map_err(sim_err)?;
    Ok(json!({"id": id, "ts": ts}))
});

admin!(join_huddle, |sim, id: String, b| {
    let a: UserArg = body(b)?;
    handle(sim).join_huddle(&id, &a.user).map_err(sim_err)?;
    Ok(json!({}))
});

admin!(end_huddle, |sim, id: String, _b| {
    handle(sim).end_huddle(&id).map_err(sim_err)?;
    Ok(json!({}))
});

#[derive(Deserialize)]
struct CommandArg {
    channel: String,
    user: String,
    command: String,
    #[serde(default)]
    text: String,
}

admin!(run_command, |sim, b| {
    let a: CommandArg = body(b)?;
    let trigger_id = handle(sim)
        .run_slash_command(&a.channel, &a.user, &a.command, &a.text)
        .map_err(sim_err)?;
    Ok(json!({"trigger_id": trigger_id}))
});

admin!(list_commands, |sim, _b| {
    Ok(json!({"slash_commands": handle(sim).slash_commands()}))
});

admin!(redeliver_command, |sim, id: String, _b| {
    handle(sim).redeliver_slash_command(&id).map_err(sim_err)?;
    Ok(json!({}))
});

#[derive(Deserialize)]
struct RateArg {
    mode: Option<Mode>,
    body: Option<Body429>,
}

admin!(ratelimit, |sim, b| {
    let a: RateArg = body(b)?;
    if let Some(m) = a.mode {
        sim.limits.set_mode(m);
    }
    if let Some(x) = a.body {
        sim.limits.set_body(x);
    }
    Ok(json!({"mode": sim.limits.mode(), "body": sim.limits.body()}))
});

admin!(faults, |sim, b| {
    if !b.is_empty() {
        let f: FaultConfig = body(b)?;
        sim.faults.set(f);
    }
    Ok(json!({"faults": sim.faults.get()}))
});

#[derive(Deserialize)]
struct MsArg {
    ms: u64,
}

admin!(refuse, |sim, b| {
    let a: MsArg = body(b)?;
    sim.faults.refuse_for(Duration::from_millis(a.ms));
    Ok(json!({}))
});

admin!(socket_info, |sim, _b| {
    Ok(json!({"connections": sim.hub.socket_count()}))
});

#[derive(Deserialize)]
struct ReasonArg {
    reason: String,
}

admin!(disconnect, |sim, b| {
    let a: ReasonArg = body(b)?;
    let n = sim.disconnect_sockets(&a.reason);
    Ok(json!({"sockets": n}))
});

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeliveryArg {
    ack_timeout_ms: Option<u64>,
    max_retries: Option<u32>,
    push_timeout_ms: Option<u64>,
    push_retry_delays_ms: Option<Vec<u64>>,
}

admin!(delivery, |sim, b| {
    let a: DeliveryArg = body(b)?;
    let mut c = lock(&sim.hub.config);
    if let Some(v) = a.ack_timeout_ms {
        c.ack_timeout = Duration::from_millis(v);
    }
    if let Some(v) = a.max_retries {
        c.max_retries = v;
    }
    if let Some(v) = a.push_timeout_ms {
        c.push_timeout = Duration::from_millis(v);
    }
    if let Some(v) = a.push_retry_delays_ms {
        c.push_retry_delays = v.into_iter().map(Duration::from_millis).collect();
    }
    Ok(json!({}))
});

admin!(counters, |sim, _b| {
    Ok(json!({"counters": crate::counters_json(sim)}))
});

#[derive(Deserialize)]
struct UrlArg {
    url: Option<String>,
}

async fn request_url(
    AxState(sim): AxState<Arc<Sim>>,
    headers: HeaderMap,
    b: axum::body::Bytes,
) -> Response {
    if let Err(e) = authorize(&sim, &headers) {
        return e.into_response();
    }
    let a: UrlArg = match body(&b) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    match crate::set_request_url(&sim, a.url.as_deref()).await {
        Ok(()) => ok(json!({})),
        Err(e) => fail(
            StatusCode::BAD_REQUEST,
            format!("url_verification failed: {e}"),
        )
        .into_response(),
    }
}

/// The admin routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_admin/seeded", get(seeded))
        .route("/_admin/seed", post(seed))
        .route("/_admin/users", post(add_user))
        .route("/_admin/users/{id}/profile", post(update_user))
        .route("/_admin/users/{id}/message_app", post(message_app))
        .route("/_admin/users/{id}/app_im", get(app_im))
        .route("/_admin/channels", post(add_channel))
        .route("/_admin/channels/{id}/join", post(join))
        .route("/_admin/channels/{id}/leave", post(leave))
        .route("/_admin/channels/{id}/rename", post(rename))
        .route("/_admin/channels/{id}/archive", post(archive))
        .route("/_admin/channels/{id}/messages", get(messages))
        .route("/_admin/tokens", post(issue_token))
        .route("/_admin/tokens/revoke", post(revoke))
        .route("/_admin/bot_scopes", post(bot_scopes))
        .route("/_admin/huddles", post(start_huddle))
        .route("/_admin/huddles/{id}/join", post(join_huddle))
        .route("/_admin/huddles/{id}/end", post(end_huddle))
        .route(
            "/_admin/slash_commands",
            get(list_commands).post(run_command),
        )
        .route(
            "/_admin/slash_commands/{id}/redeliver",
            post(redeliver_command),
        )
        .route("/_admin/ratelimit", get(ratelimit).post(ratelimit))
        .route("/_admin/faults", get(faults).post(faults))
        .route("/_admin/faults/refuse", post(refuse))
        .route("/_admin/socket", get(socket_info))
        .route("/_admin/socket/disconnect", post(disconnect))
        .route("/_admin/events/request_url", post(request_url))
        .route("/_admin/delivery", post(delivery))
        .route("/_admin/counters", get(counters))
}
