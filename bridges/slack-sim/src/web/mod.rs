//! The Web API front door: `GET`/`POST {base}/api/{method}` with form-encoded, JSON (an empty
//! JSON body included) or query arguments, the token from `Authorization: Bearer` or the
//! `token` argument, and Slack's envelope — `{"ok":true,…}` / `{"ok":false,"error":…}` with
//! HTTP 200, `warning` + `response_metadata.warnings`, `response_metadata.messages` for
//! `invalid_arguments`, `missing_scope` with `needed`/`provided`, HTTP 429 + `Retry-After`.
//!
//! References: <https://docs.slack.dev/apis/web-api/> (calling conventions, JSON bodies and
//! the Authorization header), the common error list (`conformance/slack/web/_errors/common_errors.docs.json`)
//! and <https://docs.slack.dev/apis/web-api/rate-limits>. Each method handler lives in the
//! file for its family and names its documentation page.

pub mod auth;
pub mod calls;
pub mod chat;
pub mod conversations;
pub mod files;
pub mod oauth;
pub mod reactions;
pub mod users;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::faults::Action;
use crate::ratelimit::{Body429, Tier};
use crate::server::ConnCtl;
use crate::state::{Channel, Principal, State};
use crate::{Sim, lock};

/// A failed call, rendered as `{"ok":false,"error":…}`.
#[derive(Debug)]
pub enum ApiError {
    /// A plain error code.
    Code(String),
    /// `missing_scope` with the scope that was needed (`provided` is filled in).
    MissingScope(String),
    /// `invalid_arguments` with `response_metadata.messages`.
    InvalidArguments(Vec<String>),
}

impl From<&str> for ApiError {
    fn from(code: &str) -> Self {
        ApiError::Code(code.to_string())
    }
}

/// A successful call: the body (without `ok`) and any warnings (code, message).
#[derive(Debug, Default)]
pub struct Reply {
    /// Result fields.
    pub body: Map<String, Value>,
    /// Warnings as (code, `[WARN] …` message).
    pub warnings: Vec<(String, String)>,
}

impl Reply {
    /// A reply from a JSON object literal (anything else yields an empty body).
    pub fn json(v: Value) -> Self {
        Reply {
            body: match v {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            warnings: Vec::new(),
        }
    }

    /// Adds a warning.
    pub fn warn(mut self, code: &str, message: &str) -> Self {
        self.warnings.push((code.to_string(), message.to_string()));
        self
    }
}

/// The outcome of a handler.
pub type ApiResult = Result<Reply, ApiError>;

/// The caller behind a token.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Whom the token speaks for.
    pub principal: Principal,
    /// The acting user id (the bot user for bot tokens; empty for app tokens).
    pub user: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

impl Caller {
    /// A bot token.
    pub fn is_bot(&self) -> bool {
        self.principal == Principal::Bot
    }

    /// Whether a scope was granted.
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// `missing_scope` unless `scope` was granted.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::MissingScope(scope.to_string()))
        }
    }
}

/// Call arguments from the query string and the body.
#[derive(Clone, Debug, Default)]
pub struct Args {
    map: Map<String, Value>,
}

impl Args {
    /// Arguments from a JSON object (tests and in-process calls).
    pub fn from_map(map: Map<String, Value>) -> Self {
        Args { map }
    }

    /// The raw value.
    pub fn raw(&self, k: &str) -> Option<&Value> {
        self.map.get(k).filter(|v| !v.is_null())
    }

    /// A string argument; numbers and booleans are taken in their text form.
    pub fn str(&self, k: &str) -> Option<String> {
        match self.raw(k)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A non-empty string argument.
    pub fn nonempty(&self, k: &str) -> Option<String> {
        self.str(k).filter(|s| !s.trim().is_empty())
    }

    /// A boolean: `true`/`false`, `1`/`0`, `"true"`/`"false"`.
    pub fn bool(&self, k: &str) -> Option<bool> {
        match self.raw(k)? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => Some(n.as_f64().is_some_and(|f| f != 0.0)),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" | "" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// An integer; `Some(Err(()))` when present but not a number.
    pub fn int(&self, k: &str) -> Option<Result<i64, ()>> {
        let v = self.raw(k)?;
        Some(match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .ok_or(()),
            Value::String(s) if s.trim().is_empty() => return None,
            Value::String(s) => s.trim().parse::<i64>().map_err(|_| ()),
            _ => Err(()),
        })
    }

    /// A JSON argument: a string holding JSON (form bodies) or a structured value (JSON
    /// bodies). `Some(Err(()))` when the string does not parse.
    pub fn json(&self, k: &str) -> Option<Result<Value, ()>> {
        Some(match self.raw(k)? {
            Value::String(s) if s.trim().is_empty() => return None,
            Value::String(s) => serde_json::from_str(s).map_err(|_| ()),
            other => Ok(other.clone()),
        })
    }
}

/// Which token types a method accepts.
#[derive(Clone, Copy, Debug)]
pub struct Tokens {
    bot: bool,
    user: bool,
    app: bool,
}

const BOT_USER: Tokens = Tokens {
    bot: true,
    user: true,
    app: false,
};
const ANY: Tokens = Tokens {
    bot: true,
    user: true,
    app: true,
};
const APP_ONLY: Tokens = Tokens {
    bot: false,
    user: false,
    app: true,
};

/// Everything a handler needs.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The simulator.
    pub sim: &'a Sim,
    /// Who calls (absent only for methods that take no token).
    pub caller: Option<&'a Caller>,
    /// Arguments.
    pub args: &'a Args,
    /// The method name.
    pub method: &'static str,
    /// Request headers (for HTTP Basic client credentials in oauth.v2.access).
    pub headers: &'a HeaderMap,
}

impl Ctx<'_> {
    /// The caller; methods needing a token always have one by the time handlers run.
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller.ok_or_else(|| "not_authed".into())
    }
}

type Handler = fn(&Ctx<'_>) -> ApiResult;

/// One Web API method.
#[derive(Clone, Copy)]
pub struct Method {
    /// Method name.
    pub name: &'static str,
    /// Rate-limit tier.
    pub tier: Tier,
    /// Whether JSON bodies are read (the method's "JSON-encoded bodies" support).
    pub json: bool,
    /// Accepted token types; `None` for methods without a token (oauth.v2.access).
    tokens: Option<Tokens>,
    /// Scope checked before the handler runs (bot, user); `None` when the handler decides.
    scope: Option<(&'static str, &'static str)>,
    handler: Handler,
}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Method")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

macro_rules! m {
    ($name:literal, $tier:ident, $json:literal, $tokens:expr, $scope:expr, $h:path) => {
        Method {
            name: $name,
            tier: Tier::$tier,
            json: $json,
            tokens: $tokens,
            scope: $scope,
            handler: $h,
        }
    };
}

/// Every implemented method, with tier, JSON support and token types from
/// `conformance/slack/web/<method>/docs.slack.dev.reference.json`.
pub static METHODS: &[Method] = &[
    m!("auth.test", T4, true, Some(ANY), None, auth::auth_test),
    m!(
        "team.info",
        T3,
        true,
        Some(BOT_USER),
        Some(("team:read", "team:read")),
        auth::team_info
    ),
    m!(
        "apps.connections.open",
        T3,
        true,
        Some(APP_ONLY),
        None,
        auth::apps_connections_open
    ),
    m!(
        "users.info",
        T4,
        false,
        Some(BOT_USER),
        Some(("users:read", "users:read")),
        users::users_info
    ),
    m!(
        "users.list",
        T2,
        false,
        Some(BOT_USER),
        Some(("users:read", "users:read")),
        users::users_list
    ),
    m!(
        "users.profile.get",
        T4,
        false,
        Some(BOT_USER),
        Some(("users.profile:read", "users.profile:read")),
        users::users_profile_get
    ),
    m!(
        "conversations.list",
        T2,
        false,
        Some(BOT_USER),
        None,
        conversations::list
    ),
    m!(
        "conversations.info",
        T3,
        false,
        Some(BOT_USER),
        None,
        conversations::info
    ),
    m!(
        "conversations.members",
        T4,
        false,
        Some(BOT_USER),
        None,
        conversations::members
    ),
    m!(
        "conversations.history",
        T3,
        true,
        Some(BOT_USER),
        None,
        conversations::history
    ),
    m!(
        "conversations.replies",
        T3,
        false,
        Some(BOT_USER),
        None,
        conversations::replies
    ),
    m!(
        "conversations.join",
        T3,
        true,
        Some(BOT_USER),
        Some(("channels:join", "channels:write")),
        conversations::join
    ),
    m!(
        "conversations.open",
        T3,
        true,
        Some(BOT_USER),
        None,
        conversations::open
    ),
    m!(
        "chat.postMessage",
        PostMessage,
        true,
        Some(BOT_USER),
        Some(("chat:write", "chat:write")),
        chat::post_message
    ),
    m!(
        "chat.update",
        T3,
        true,
        Some(BOT_USER),
        Some(("chat:write", "chat:write")),
        chat::update
    ),
    m!(
        "chat.delete",
        T3,
        true,
        Some(BOT_USER),
        Some(("chat:write", "chat:write")),
        chat::delete
    ),
    m!(
        "chat.getPermalink",
        T4,
        false,
        Some(BOT_USER),
        None,
        chat::get_permalink
    ),
    m!(
        "reactions.add",
        T3,
        true,
        Some(BOT_USER),
        Some(("reactions:write", "reactions:write")),
        reactions::add
    ),
    m!(
        "reactions.remove",
        T2,
        true,
        Some(BOT_USER),
        Some(("reactions:write", "reactions:write")),
        reactions::remove
    ),
    m!(
        "files.getUploadURLExternal",
        T4,
        false,
        Some(BOT_USER),
        Some(("files:write", "files:write")),
        files::get_upload_url_external
    ),
    m!(
        "files.completeUploadExternal",
        T4,
        true,
        Some(BOT_USER),
        Some(("files:write", "files:write")),
        files::complete_upload_external
    ),
    m!(
        "files.info",
        T4,
        false,
        Some(BOT_USER),
        Some(("files:read", "files:read")),
        files::info
    ),
    m!(
        "calls.add",
        T3,
        true,
        Some(BOT_USER),
        Some(("calls:write", "calls:write")),
        calls::add
    ),
    m!(
        "calls.update",
        T3,
        true,
        Some(BOT_USER),
        Some(("calls:write", "calls:write")),
        calls::update
    ),
    m!(
        "calls.end",
        T3,
        true,
        Some(BOT_USER),
        Some(("calls:write", "calls:write")),
        calls::end
    ),
    m!(
        "calls.info",
        T3,
        true,
        Some(BOT_USER),
        Some(("calls:read", "calls:read")),
        calls::info
    ),
    m!(
        "calls.participants.add",
        T3,
        true,
        Some(BOT_USER),
        Some(("calls:write", "calls:write")),
        calls::participants_add
    ),
    m!(
        "calls.participants.remove",
        T3,
        true,
        Some(BOT_USER),
        Some(("calls:write", "calls:write")),
        calls::participants_remove
    ),
    m!(
        "oauth.v2.access",
        Unlimited,
        false,
        None,
        None,
        oauth::access
    ),
];

/// Looks a method up by name.
pub fn method(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// A JSON response with Slack's content type.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn error_body(e: ApiError, caller: Option<&Caller>) -> Value {
    match e {
        ApiError::Code(c) => json!({"ok": false, "error": c}),
        ApiError::MissingScope(needed) => json!({
            "ok": false,
            "error": "missing_scope",
            "needed": needed,
            "provided": caller.map(|c| c.scopes.join(",")).unwrap_or_default(),
        }),
        ApiError::InvalidArguments(messages) => json!({
            "ok": false,
            "error": "invalid_arguments",
            "response_metadata": {"messages": messages},
        }),
    }
}

/// Adds `ok`, `warning` and `response_metadata.warnings/messages` to a reply.
fn success_body(reply: Reply, mut extra_warnings: Vec<(String, String)>) -> Value {
    let mut body = reply.body;
    let mut warnings = reply.warnings;
    warnings.append(&mut extra_warnings);
    let mut out = Map::new();
    out.insert("ok".into(), json!(true));
    out.append(&mut body);
    if !warnings.is_empty() {
        let codes: Vec<&str> = warnings.iter().map(|(c, _)| c.as_str()).collect();
        out.insert("warning".into(), json!(codes.join(",")));
        let rm = out.entry("response_metadata").or_insert_with(|| json!({}));
        if let Value::Object(rm) = rm {
            rm.insert("warnings".into(), json!(codes));
            let msgs: Vec<&str> = warnings.iter().map(|(_, m)| m.as_str()).collect();
            rm.insert("messages".into(), json!(msgs));
        }
    }
    Value::Object(out)
}

/// Parsed request: arguments, the token and where it came from, body warnings.
struct Parsed {
    args: Args,
    token: Option<String>,
    header_token: bool,
    warnings: Vec<(String, String)>,
}

fn form_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, ()> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes).map_err(|_| ())
}

fn parse_request(
    m: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Bytes,
) -> Result<Parsed, ApiError> {
    let mut map = Map::new();
    let mut token = None;
    if let Some(q) = query {
        for (k, v) in form_pairs(q.as_bytes()).map_err(|()| ApiError::from("invalid_form_data"))? {
            map.insert(k, Value::String(v));
        }
    }
    let mut warnings = Vec::new();
    let raw_ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    if !body.is_empty() {
        let Some(ct) = ctype.as_deref() else {
            return Err("missing_post_type".into());
        };
        let mime = ct.split(';').next().unwrap_or("").trim();
        match mime {
            "application/x-www-form-urlencoded" | "text/plain" => {
                for (k, v) in form_pairs(body).map_err(|()| ApiError::from("invalid_form_data"))? {
                    map.insert(k, Value::String(v));
                }
            }
            "application/json" => {
                let v: Value =
                    serde_json::from_slice(body).map_err(|_| ApiError::from("invalid_json"))?;
                let Value::Object(obj) = v else {
                    return Err("json_not_object".into());
                };
                if !ct.contains("charset") {
                    warnings.push((
                        "missing_charset".to_string(),
                        "[WARN] A Content-Type HTTP header was presented but did not declare a charset, such as a 'utf-8'".to_string(),
                    ));
                }
                if m.json {
                    // JSON bodies never carry the token: Slack reads it only from the header.
                    for (k, v) in obj {
                        if k != "token" {
                            map.insert(k, v);
                        }
                    }
                } else {
                    tracing::debug!(
                        method = m.name,
                        "JSON body ignored: this method reads form or query arguments only."
                    );
                }
            }
            "multipart/form-data" => {
                let boundary = raw_ctype
                    .split(';')
                    .filter_map(|p| p.trim().strip_prefix("boundary="))
                    .next()
                    .map(|b| b.trim_matches('"').to_string());
                let Some(boundary) = boundary else {
                    return Err("invalid_form_data".into());
                };
                for (k, v) in multipart_fields(body, &boundary)
                    .ok_or_else(|| ApiError::from("invalid_form_data"))?
                {
                    map.insert(k, Value::String(v));
                }
            }
            _ => return Err("invalid_post_type".into()),
        }
    }
    if let Some(Value::String(t)) = map.remove("token") {
        token = Some(t);
    }
    let mut header_token = false;
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let auth = auth.trim();
        if auth.len() > 7 && auth[..7].eq_ignore_ascii_case("bearer ") {
            token = Some(auth[7..].trim().to_string());
            header_token = true;
        }
    }
    Ok(Parsed {
        args: Args { map },
        token: token.filter(|t| !t.is_empty()),
        header_token,
        warnings,
    })
}

/// Text fields of a multipart/form-data body (file parts are skipped).
fn multipart_fields(body: &[u8], boundary: &str) -> Option<Vec<(String, String)>> {
    let text = String::from_utf8_lossy(body);
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    for part in text.split(delim.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let (head, value) = part.split_once("\r\n\r\n")?;
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
        if disposition.contains("filename=") {
            continue;
        }
        let name = disposition
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("name="))
            .next()?
            .trim_matches('"')
            .to_string();
        out.push((
            name,
            value.strip_suffix("\r\n").unwrap_or(value).to_string(),
        ));
    }
    Some(out)
}

/// Resolves a token to its caller, or Slack's auth error.
pub fn authenticate(st: &State, token: &str) -> Result<Caller, ApiError> {
    let t = st
        .tokens
        .get(token)
        .ok_or_else(|| ApiError::from("invalid_auth"))?;
    if t.revoked {
        return Err("token_revoked".into());
    }
    let user = match &t.principal {
        Principal::Bot => st.app.bot_user_id.clone(),
        Principal::User(u) => {
            if st.user(u).is_none_or(|u| u.deleted) {
                return Err("account_inactive".into());
            }
            u.clone()
        }
        Principal::App => String::new(),
    };
    Ok(Caller {
        principal: t.principal.clone(),
        user,
        scopes: t.scopes.clone(),
    })
}

/// `/api/{method}` — every Web API call enters here.
pub async fn handle(
    AxState(sim): AxState<Arc<Sim>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    conn: Option<axum::Extension<ConnCtl>>,
    body: Bytes,
) -> Response {
    // Faults first: they stand for the network and Slack's servers, before any logic.
    let (latency, action) = sim.faults.plan(&name);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match action {
        Action::Serve => {}
        Action::Error(status) => {
            sim.counters.injected_5xx.fetch_add(1, Ordering::Relaxed);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, "Service Unavailable").into_response();
        }
        Action::Drop => {
            sim.counters
                .connections_dropped
                .fetch_add(1, Ordering::Relaxed);
            if let Some(axum::Extension(conn)) = conn {
                conn.kill();
                std::future::pending::<()>().await;
            }
            return (StatusCode::SERVICE_UNAVAILABLE, "").into_response();
        }
    }
    let Some(m) = method(&name) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"ok": false, "error": "unknown_method", "req_method": name}),
        );
    };
    let (status, body, retry_after) = call(&sim, m, &headers, query.as_deref(), &body);
    let mut resp = if status == StatusCode::TOO_MANY_REQUESTS && sim.limits.body() == Body429::Empty
    {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = status;
        r
    } else {
        json_response(status, &body)
    };
    if let Some(secs) = retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Runs one call: parse, authenticate, rate-limit, check scope, handle.
/// Returns (status, body, Retry-After seconds).
pub fn call(
    sim: &Sim,
    m: &'static Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Bytes,
) -> (StatusCode, Value, Option<u64>) {
    let ok = StatusCode::OK;
    let parsed = match parse_request(m, headers, query, body) {
        Ok(p) => p,
        Err(e) => return (ok, error_body(e, None), None),
    };
    let caller = match m.tokens {
        None => None,
        Some(allowed) => {
            let token = if m.name == "apps.connections.open" && !parsed.header_token {
                // The app-level token must travel in the Authorization header.
                None
            } else {
                parsed.token.clone()
            };
            let Some(token) = token else {
                let code = if m.name == "apps.connections.open" {
                    "missing_args"
                } else {
                    "not_authed"
                };
                return (ok, error_body(code.into(), None), None);
            };
            let caller = {
                let st = lock(&sim.state);
                authenticate(&st, &token)
            };
            let caller = match caller {
                Ok(c) => c,
                Err(e) => return (ok, error_body(e, None), None),
            };
            let allowed = match caller.principal {
                Principal::Bot => allowed.bot,
                Principal::User(_) => allowed.user,
                Principal::App => allowed.app,
            };
            if !allowed {
                return (ok, error_body("not_allowed_token_type".into(), None), None);
            }
            Some(caller)
        }
    };
    // Rate limits are per method, per app and workspace; chat.postMessage also per channel.
    let key = {
        let st = lock(&sim.state);
        format!("{}:{}", st.app.id, st.team.id)
    };
    let channel = if m.tier == Tier::PostMessage {
        parsed.args.str("channel")
    } else {
        None
    };
    if let Err(secs) = sim.limits.check(&key, m.name, m.tier, channel.as_deref()) {
        sim.counters.ratelimited.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"ok": false, "error": "ratelimited"}),
            Some(secs),
        );
    }
    if let (Some((bot, user)), Some(c)) = (m.scope, caller.as_ref()) {
        let needed = if c.is_bot() { bot } else { user };
        if let Err(e) = c.require(needed) {
            return (ok, error_body(e, Some(c)), None);
        }
    }
    let ctx = Ctx {
        sim,
        caller: caller.as_ref(),
        args: &parsed.args,
        method: m.name,
        headers,
    };
    match (m.handler)(&ctx) {
        Ok(reply) => (ok, success_body(reply, parsed.warnings), None),
        Err(e) => (ok, error_body(e, caller.as_ref()), None),
    }
}

// ---------------------------------------------------------------- shared helpers

/// Can `caller` see this conversation at all? Public channels are visible to everyone;
/// private ones, DMs and group DMs only to members.
pub fn can_see(caller: &Caller, ch: &Channel) -> bool {
    ch.kind == crate::state::Kind::Public || ch.is_member(&caller.user)
}

/// Looks up a conversation the caller can see, or `channel_not_found`.
pub fn visible_channel<'s>(
    st: &'s State,
    caller: &Caller,
    id: Option<&str>,
) -> Result<&'s Channel, ApiError> {
    let id = id.ok_or_else(|| ApiError::from("channel_not_found"))?;
    let ch = st
        .channel(id)
        .ok_or_else(|| ApiError::from("channel_not_found"))?;
    if !can_see(caller, ch) {
        return Err("channel_not_found".into());
    }
    Ok(ch)
}

/// Checks the type-dependent scope (`channels:history`, `groups:read`, …).
pub fn require_kind_scope(caller: &Caller, ch: &Channel, suffix: &str) -> Result<(), ApiError> {
    caller.require(&format!("{}:{suffix}", ch.kind.scope_prefix()))
}

/// Encodes an opaque, base64-looking cursor like Slack's (`dXNlcjpVMDYxTkZUVDI=` is
/// `user:U061NFTT2`).
pub fn encode_cursor(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Decodes a cursor made by [`encode_cursor`] with the expected `prefix`.
pub fn decode_cursor(cursor: &str, prefix: &str) -> Result<String, ApiError> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cursor.trim())
        .map_err(|_| ApiError::from("invalid_cursor"))?;
    let s = String::from_utf8(raw).map_err(|_| ApiError::from("invalid_cursor"))?;
    s.strip_prefix(prefix)
        .map(str::to_string)
        .ok_or_else(|| "invalid_cursor".into())
}

/// Reads `limit` with a default and a cap; `invalid_limit` for junk when `strict`.
pub fn limit(args: &Args, default: usize, max: usize, strict: bool) -> Result<usize, ApiError> {
    match args.int("limit") {
        None => Ok(default),
        Some(Ok(n)) if n <= 0 => Ok(default),
        Some(Ok(n)) => Ok(usize::try_from(n).unwrap_or(max).min(max)),
        Some(Err(())) if strict => Err("invalid_limit".into()),
        Some(Err(())) => Ok(default),
    }
}
