//! The admin API (`/_admin/…`): what only Teams itself (or a person at a keyboard) does —
//! add people, teams, channels and chats, finish device-code sign-ins, run channel meetings,
//! send lifecycle notifications, inject faults, read counters. Not part of Graph; binds with
//! the simulator on loopback and has no authentication.
//!
//! Meeting system messages follow `conformance/teams/graph/system-messages/call-started.json`
//! and `call-ended.json` (<https://learn.microsoft.com/graph/system-messages>).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::limits::{FaultConfig, Mode};
use crate::seed::{ChannelSeed, ChatSeed, TeamSeed, UserSeed};
use crate::state::{Call, Scope};
use crate::util::{guid, json_response, lock, now_ms};
use crate::{Sim, SimError, TeamsSim};

/// Admin routes.
pub fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route("/_admin/tenant", get(tenant))
        .route("/_admin/users", post(add_user))
        .route("/_admin/teams", post(add_team))
        .route("/_admin/teams/{team}/channels", post(add_channel))
        .route("/_admin/teams/{team}/members", post(add_member))
        .route("/_admin/chats", post(add_chat))
        .route("/_admin/chats/direct", post(direct_chat_route))
        .route(
            "/_admin/chats/{chat}/messages",
            post(post_chat_message_route),
        )
        .route("/_admin/device/complete", post(complete))
        .route("/_admin/device/decline", post(decline))
        .route("/_admin/tokens/delegated", post(delegated))
        .route("/_admin/tokens/app", post(app))
        .route("/_admin/tokens/expire", post(expire))
        .route("/_admin/tokens/revoke", post(revoke))
        .route("/_admin/meetings/start", post(meeting_start))
        .route("/_admin/meetings/end", post(meeting_end))
        .route("/_admin/subscriptions/{id}/lifecycle", post(lifecycle))
        .route("/_admin/faults", get(get_faults).post(set_faults))
        .route("/_admin/rate-limit", post(rate_limit))
        .route("/_admin/counters", get(counters))
}

fn err(e: &SimError) -> Response {
    let status = match e {
        SimError::Invalid(_) => StatusCode::BAD_REQUEST,
        SimError::NotFound(_) => StatusCode::NOT_FOUND,
    };
    json_response(status, json!({"error": e.to_string()}))
}

fn parse<T: DeserializeOwned>(b: &Bytes) -> Result<T, Box<Response>> {
    serde_json::from_slice(b).map_err(|e| Box::new(err(&SimError::Invalid(e.to_string()))))
}

fn field(v: &Value, k: &str) -> Result<String, Box<Response>> {
    v.get(k)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Box::new(err(&SimError::Invalid(format!("missing {k:?}")))))
}

fn id_answer(r: Result<String, SimError>) -> Response {
    match r {
        Ok(id) => json_response(StatusCode::OK, json!({"id": id})),
        Err(e) => err(&e),
    }
}

macro_rules! try_r {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}

fn handle(sim: &Arc<Sim>) -> TeamsSim {
    TeamsSim::from_inner(sim.clone())
}

/// `GET /_admin/tenant` — tenant, app credentials, users, teams, channels, chats.
async fn tenant(State(sim): State<Arc<Sim>>) -> Response {
    let st = lock(&sim.state);
    json_response(
        StatusCode::OK,
        json!({
            "tenantId": st.tenant_id,
            "clientId": st.client_id,
            "clientSecret": st.client_secret,
            "graphUrl": format!("{}/v1.0", sim.base),
            "loginUrl": sim.base,
            "users": st.users.values().map(|u| json!({"id": u.id, "displayName": u.display_name, "userPrincipalName": u.upn})).collect::<Vec<_>>(),
            "teams": st.teams.values().map(|t| json!({
                "id": t.id, "displayName": t.display_name,
                "channels": t.channels.values().map(|c| json!({"id": c.id, "displayName": c.display_name})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "chats": st.chats.values().map(|c| json!({"id": c.id, "chatType": c.chat_type, "topic": c.topic})).collect::<Vec<_>>(),
        }),
    )
}

/// `POST /_admin/users` with a [`UserSeed`].
async fn add_user(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let u: UserSeed = try_r!(parse(&b));
    id_answer(lock(&sim.state).add_user(&u))
}

/// `POST /_admin/teams` with a [`TeamSeed`].
async fn add_team(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let t: TeamSeed = try_r!(parse(&b));
    id_answer(lock(&sim.state).add_team(&t))
}

/// `POST /_admin/teams/{team}/channels` with a [`ChannelSeed`].
async fn add_channel(State(sim): State<Arc<Sim>>, Path(team): Path<String>, b: Bytes) -> Response {
    let c: ChannelSeed = try_r!(parse(&b));
    id_answer(lock(&sim.state).add_channel(&team, &c))
}

/// `POST /_admin/teams/{team}/members` `{"user","owner"}`.
async fn add_member(State(sim): State<Arc<Sim>>, Path(team): Path<String>, b: Bytes) -> Response {
    let v: Value = try_r!(parse(&b));
    let user = try_r!(field(&v, "user"));
    let owner = v.get("owner").and_then(Value::as_bool).unwrap_or(false);
    id_answer(lock(&sim.state).add_team_member(&team, &user, owner))
}

/// `POST /_admin/chats` with a [`ChatSeed`].
async fn add_chat(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let c: ChatSeed = try_r!(parse(&b));
    id_answer(lock(&sim.state).add_chat(&c))
}

/// `POST /_admin/device/complete` `{"user_code","user"}` — the person signs in.
async fn complete(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = try_r!(parse(&b));
    let (code, user) = (try_r!(field(&v, "user_code")), try_r!(field(&v, "user")));
    match crate::auth::complete_device_code(&sim, &code, &user, false) {
        Ok(()) => json_response(StatusCode::OK, json!({"ok": true})),
        Err(e) => err(&e),
    }
}

/// `POST /_admin/device/decline` `{"user_code"}` — the person declines.
async fn decline(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = try_r!(parse(&b));
    let code = try_r!(field(&v, "user_code"));
    match crate::auth::complete_device_code(&sim, &code, "", true) {
        Ok(()) => json_response(StatusCode::OK, json!({"ok": true})),
        Err(e) => err(&e),
    }
}

/// `POST /_admin/tokens/delegated` `{"user"}` → `{"access_token"}` (default delegated scopes).
async fn delegated(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = try_r!(parse(&b));
    let user = try_r!(field(&v, "user"));
    match handle(&sim).delegated_token(&user) {
        Ok(t) => json_response(StatusCode::OK, json!({"access_token": t})),
        Err(e) => err(&e),
    }
}

/// `POST /_admin/tokens/app` → `{"access_token"}`.
async fn app(State(sim): State<Arc<Sim>>) -> Response {
    json_response(
        StatusCode::OK,
        json!({"access_token": handle(&sim).app_token()}),
    )
}

/// `POST /_admin/tokens/expire` `{"token"}`.
async fn expire(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = try_r!(parse(&b));
    let t = try_r!(field(&v, "token"));
    json_response(
        StatusCode::OK,
        json!({"expired": handle(&sim).expire_token(&t)}),
    )
}

/// `POST /_admin/tokens/revoke` `{"user", "access_tokens"?: bool}` →
/// `{"refresh_tokens": n, "access_tokens": n}`: what an administrator's
/// "revoke sessions" (or a password change) does to a person — every refresh
/// token issued to them is refused from now on (`invalid_grant`); with
/// `access_tokens`, their delegated access tokens stop working too.
async fn revoke(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = try_r!(parse(&b));
    let user = try_r!(field(&v, "user"));
    let access = v
        .get("access_tokens")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match handle(&sim).revoke_tokens(&user, access) {
        Ok((refresh, access)) => json_response(
            StatusCode::OK,
            json!({"refresh_tokens": refresh, "access_tokens": access}),
        ),
        Err(e) => err(&e),
    }
}

/// `POST /_admin/meetings/start` `{"team","channel","organizer"}` → `{"id"}`.
async fn meeting_start(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = try_r!(parse(&b));
    let (t, c, o) = (
        try_r!(field(&v, "team")),
        try_r!(field(&v, "channel")),
        try_r!(field(&v, "organizer")),
    );
    id_answer(start_meeting(&sim, &t, &c, &o))
}

/// `POST /_admin/meetings/end` `{"team","channel"}` → `{"id"}`.
async fn meeting_end(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = try_r!(parse(&b));
    let (t, c) = (try_r!(field(&v, "team")), try_r!(field(&v, "channel")));
    id_answer(end_meeting(&sim, &t, &c))
}

/// `POST /_admin/subscriptions/{id}/lifecycle` `{"event"}`.
async fn lifecycle(State(sim): State<Arc<Sim>>, Path(id): Path<String>, b: Bytes) -> Response {
    let v: Value = try_r!(parse(&b));
    let ev = try_r!(field(&v, "event"));
    match crate::notify::trigger_lifecycle(&sim, &id, &ev).await {
        Ok(()) => json_response(StatusCode::OK, json!({"ok": true})),
        Err(e) => err(&e),
    }
}

/// `GET /_admin/faults`.
async fn get_faults(State(sim): State<Arc<Sim>>) -> Json<FaultConfig> {
    Json(sim.faults.get())
}

/// `POST /_admin/faults` with a [`FaultConfig`].
async fn set_faults(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let f: FaultConfig = try_r!(parse(&b));
    sim.faults.set(f.clone());
    json_response(StatusCode::OK, json!(f))
}

/// `POST /_admin/rate-limit` `{"mode":"off|relaxed|strict"}`.
async fn rate_limit(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = try_r!(parse(&b));
    let m: Mode = try_r!(
        serde_json::from_value(v.get("mode").cloned().unwrap_or(Value::Null))
            .map_err(|e| Box::new(err(&SimError::Invalid(e.to_string()))))
    );
    sim.limiter.set_mode(m);
    json_response(StatusCode::OK, json!({"mode": m}))
}

/// `GET /_admin/counters`.
async fn counters(State(sim): State<Arc<Sim>>) -> Response {
    json_response(StatusCode::OK, json!(sim.counters.snapshot()))
}

fn user_identity(user: &str) -> Value {
    json!({"application": null, "device": null,
           "user": {"id": user, "displayName": null, "userIdentityType": "aadUser"}})
}

/// ISO 8601 duration, `PT1H2M3S` / `PT59S`.
fn iso_duration(ms: u64) -> String {
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, s % 3600 / 60, s % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 || (h == 0 && m == 0) {
        out.push_str(&format!("{s}S"));
    }
    out
}

/// Starts a channel meeting: a `callStartedEventMessageDetail` system message.
pub fn start_meeting(
    sim: &Arc<Sim>,
    team: &str,
    channel: &str,
    organizer: &str,
) -> Result<String, SimError> {
    let (id, change) = {
        let mut st = lock(&sim.state);
        let scope = Scope::Channel {
            team: team.into(),
            channel: channel.into(),
        };
        if !st.scope_exists(&scope) {
            return Err(SimError::NotFound(format!("channel {team}/{channel}")));
        }
        let org = st
            .resolve_user(organizer)
            .map(|u| u.id.clone())
            .ok_or_else(|| SimError::NotFound(format!("user {organizer:?}")))?;
        let key = (team.to_string(), channel.to_string());
        if st.calls.contains_key(&key) {
            return Err(SimError::Invalid(
                "a meeting is already running here".into(),
            ));
        }
        let call_id = guid();
        st.calls.insert(
            key,
            Call {
                call_id: call_id.clone(),
                initiator: org.clone(),
                participants: vec![org.clone()],
                started_ms: now_ms(),
            },
        );
        let detail = json!({
            "@odata.type": "#microsoft.graph.callStartedEventMessageDetail",
            "callId": call_id,
            "callEventType": "meeting",
            "initiator": user_identity(&org),
        });
        st.insert_message(
            scope,
            None,
            None,
            "systemEventMessage",
            "html",
            "<systemEventMessage/>".into(),
            None,
            json!([]),
            json!([]),
            Some(detail),
            None,
        )
    };
    crate::notify::dispatch(sim, vec![change]);
    Ok(id)
}

/// Ends the channel meeting: a `callEndedEventMessageDetail` system message.
pub fn end_meeting(sim: &Arc<Sim>, team: &str, channel: &str) -> Result<String, SimError> {
    let (id, change) = {
        let mut st = lock(&sim.state);
        let call = st
            .calls
            .remove(&(team.to_string(), channel.to_string()))
            .ok_or_else(|| SimError::NotFound(format!("no meeting in {team}/{channel}")))?;
        let participants: Vec<Value> = call
            .participants
            .iter()
            .map(|p| {
                let mut ident = user_identity(p);
                if let Some(name) = st.users.get(p).map(|u| u.display_name.clone()) {
                    ident["user"]["displayName"] = json!(name);
                }
                json!({"participant": ident})
            })
            .collect();
        let detail = json!({
            "@odata.type": "#microsoft.graph.callEndedEventMessageDetail",
            "callId": call.call_id,
            "callDuration": iso_duration(now_ms().saturating_sub(call.started_ms)),
            "callEventType": "meeting",
            "callParticipants": participants,
            "initiator": user_identity(&call.initiator),
        });
        st.insert_message(
            Scope::Channel {
                team: team.into(),
                channel: channel.into(),
            },
            None,
            None,
            "systemEventMessage",
            "html",
            "<systemEventMessage/>".into(),
            None,
            json!([]),
            json!([]),
            Some(detail),
            None,
        )
    };
    crate::notify::dispatch(sim, vec![change]);
    Ok(id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::iso_duration(59_000), "PT59S");
        assert_eq!(super::iso_duration(3_723_000), "PT1H2M3S");
        assert_eq!(super::iso_duration(0), "PT0S");
    }
}

/// The one-on-one chat of two people (ids or UPNs), created when they have none yet, as
/// `POST /chats` would. Returns the chat id.
pub fn direct_chat(sim: &Arc<Sim>, a: &str, b: &str) -> Result<String, SimError> {
    let mut st = lock(&sim.state);
    let id_of = |st: &crate::state::State, key: &str| {
        st.resolve_user(key)
            .map(|u| u.id.clone())
            .ok_or_else(|| SimError::NotFound(format!("user {key:?}")))
    };
    let (a, b) = (id_of(&st, a)?, id_of(&st, b)?);
    if a == b {
        return Err(SimError::Invalid(
            "a oneOnOne chat needs two different people".into(),
        ));
    }
    if let Some(c) = st.one_on_one(&a, &b) {
        return Ok(c.id.clone());
    }
    st.add_chat(&ChatSeed {
        id: None,
        name: None,
        chat_type: Some("oneOnOne".into()),
        topic: None,
        members: vec![a, b],
    })
}

/// Posts an HTML message as `user` (id or UPN, a member) into chat `chat` and notifies
/// subscribers, as that person's `POST /chats/{id}/messages` would. Returns the message id.
pub fn post_chat_message_as(
    sim: &Arc<Sim>,
    user: &str,
    chat: &str,
    html: &str,
) -> Result<String, SimError> {
    let (id, change) = {
        let mut st = lock(&sim.state);
        let scope = Scope::Chat { chat: chat.into() };
        if !st.scope_exists(&scope) {
            return Err(SimError::NotFound(format!("chat {chat:?}")));
        }
        let from = st
            .resolve_user(user)
            .map(|u| u.id.clone())
            .ok_or_else(|| SimError::NotFound(format!("user {user:?}")))?;
        if !st.can_access(&from, &scope) {
            return Err(SimError::Invalid(format!(
                "{user:?} is not a member of {chat:?}"
            )));
        }
        st.insert_message(
            scope,
            None,
            Some(from),
            "message",
            "html",
            html.to_owned(),
            None,
            json!([]),
            json!([]),
            None,
            None,
        )
    };
    crate::notify::dispatch(sim, vec![change]);
    Ok(id)
}

#[derive(serde::Deserialize)]
struct DirectBody {
    users: [String; 2],
}

async fn direct_chat_route(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let body: DirectBody = match parse(&b) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match direct_chat(&sim, &body.users[0], &body.users[1]) {
        Ok(id) => json_response(StatusCode::OK, json!({"id": id})),
        Err(e) => err(&e),
    }
}

#[derive(serde::Deserialize)]
struct PostBody {
    user: String,
    html: String,
}

async fn post_chat_message_route(
    State(sim): State<Arc<Sim>>,
    Path(chat): Path<String>,
    b: Bytes,
) -> Response {
    let body: PostBody = match parse(&b) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match post_chat_message_as(&sim, &body.user, &chat, &body.html) {
        Ok(id) => json_response(StatusCode::CREATED, json!({"id": id})),
        Err(e) => err(&e),
    }
}
