//! Slash commands (<https://docs.slack.dev/interactivity/implementing-slash-commands>): what
//! happens when a person types `/command text` in a conversation.
//!
//! Only commands the app declares (its manifest's `features.slash_commands`, here
//! [`crate::state::App::slash_commands`]) are delivered, and only while its bot token holds
//! the `commands` scope; anything else is "not a valid command" to the person. The
//! command's fields (`token`, `team_id`, `team_domain`, `channel_id`, `channel_name`,
//! `user_id`, `user_name`, `command`, `text`, `api_app_id`, `is_enterprise_install`,
//! `response_url`, `trigger_id`, all strings) reach the app:
//!
//! - with a request URL set: as a signed `application/x-www-form-urlencoded` POST to it. A
//!   2xx answer within the push timeout acknowledges; its body is what the person sees (empty:
//!   nothing; JSON: its `text` and `response_type`; anything else: the text itself). Slack
//!   does not retry commands: a timeout shows `operation_timeout`, an error answer
//!   `http_client_error`/`http_service_error`, a failed connection `dispatch_failed`;
//! - otherwise over Socket Mode: as a `slash_commands` envelope whose `payload` is those
//!   fields as a JSON object, with `accepts_response_payload: true`. The ack
//!   (`{"envelope_id", "payload"?}`) must come within the ack timeout; its `payload` is
//!   what the person sees. No ack in time shows `operation_timeout`, no open connection
//!   `dispatch_failed`. [`crate::SlackSim::redeliver_slash_command`] sends an envelope
//!   again with the same `envelope_id` (a lost ack), for at-least-once tests.
//!
//! The `response_url` is served (`POST /commands/{team}/{n}/{secret}`, JSON or a form
//! `payload`): what it receives is recorded as a further reply.
//!
//! Every invocation is kept as a [`SlashCommand`] so tests can assert what the person saw.
//! `in_channel` replies are recorded, not posted into the conversation.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::events::{Hub, Outbound};
use crate::ids::{now_secs, random_hex, random_lower, uuid_v4};
use crate::state::{Kind, State};
use crate::{Sim, SimError, lock};

/// The scope an app needs for its slash commands.
pub const COMMANDS_SCOPE: &str = "commands";

/// How a command reached the app.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// A `slash_commands` envelope.
    SocketMode,
    /// A form POST to the request URL.
    Http,
}

/// Where an invocation stands.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum CommandOutcome {
    /// Delivered, not acknowledged yet.
    Pending,
    /// The app acknowledged in time.
    Acknowledged,
    /// The person saw `/command failed with the error "{error}"`.
    Failed {
        /// Slack's error code (`operation_timeout`, `dispatch_failed`, …).
        error: String,
    },
}

/// A message the app showed in answer to a command.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommandReply {
    /// `ephemeral` (only the person sees it, the default) or `in_channel`.
    pub response_type: String,
    /// The message text (empty when only blocks were sent).
    pub text: String,
    /// `ack` (Socket Mode ack payload), `http` (the request URL's answer) or
    /// `response_url`.
    pub via: String,
    /// The reply as the app sent it.
    pub raw: Value,
}

/// One invocation of a slash command.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlashCommand {
    /// Its `trigger_id`, which also names it in the admin API.
    pub trigger_id: String,
    /// `/command`.
    pub command: String,
    /// What followed the command.
    pub text: String,
    /// Who ran it.
    pub user_id: String,
    /// Where.
    pub channel_id: String,
    /// The fields the app received, in Slack's order.
    pub payload: Vec<(String, String)>,
    /// How it was delivered.
    pub transport: Transport,
    /// The Socket Mode envelope id.
    pub envelope_id: Option<String>,
    /// Envelopes or POSTs sent (more than one only through redelivery).
    pub deliveries: u32,
    /// Acknowledged, pending or failed.
    pub outcome: CommandOutcome,
    /// Every reply, in order.
    pub replies: Vec<CommandReply>,
}

impl SlashCommand {
    /// What the person saw, in order: each reply's text, or Slack's error line.
    pub fn seen(&self) -> Vec<String> {
        let mut out: Vec<String> = self.replies.iter().map(|r| r.text.clone()).collect();
        if let CommandOutcome::Failed { error } = &self.outcome {
            out.push(format!(
                "{} failed with the error \"{error}\"",
                self.command
            ));
        }
        out
    }

    /// The payload as the JSON object a Socket Mode envelope carries.
    pub fn payload_json(&self) -> Value {
        Value::Object(
            self.payload
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect::<Map<_, _>>(),
        )
    }

    fn field(&self, key: &str) -> Option<&str> {
        self.payload
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Checks a person's invocation and builds its record (not yet delivered).
fn invocation(
    st: &State,
    base_url: &str,
    channel: &str,
    user: &str,
    command: &str,
    text: &str,
) -> Result<SlashCommand, SimError> {
    let person = st
        .resolve_user(user)
        .ok_or_else(|| SimError::NotFound(format!("user {user}")))?;
    if person.is_bot || person.deleted {
        return Err(SimError::Invalid(format!(
            "{} cannot type commands",
            person.name
        )));
    }
    let ch = st
        .channel(channel)
        .ok_or_else(|| SimError::NotFound(format!("channel {channel}")))?;
    if !ch.is_member(&person.id) {
        return Err(SimError::Invalid(format!(
            "{} is not in {}",
            person.name, ch.id
        )));
    }
    let command = command.trim().to_lowercase();
    let scoped = st.tokens.values().any(|t| {
        t.principal == crate::state::Principal::Bot
            && !t.revoked
            && t.scopes.iter().any(|s| s == COMMANDS_SCOPE)
    });
    if !scoped || !st.app.slash_commands.contains(&command) {
        return Err(SimError::Invalid(format!(
            "{command} is not a valid command. In Slack, all messages that start with the \"/\" character are interpreted as commands."
        )));
    }
    let channel_name = match ch.kind {
        Kind::Public | Kind::Mpim => ch.name.clone(),
        Kind::Private => "privategroup".to_string(),
        Kind::Im => "directmessage".to_string(),
    };
    let trigger_id = format!(
        "{}.{}.{}",
        fastrand::u64(100_000_000_000..999_999_999_999),
        fastrand::u64(10_000_000_000..99_999_999_999),
        random_hex(32)
    );
    let response_url = format!(
        "{base_url}/commands/{}/{}/{}",
        st.team.id,
        fastrand::u64(100_000_000_000..999_999_999_999),
        random_lower(24)
    );
    let payload = [
        ("token", st.app.verification_token.clone()),
        ("team_id", st.team.id.clone()),
        ("team_domain", st.team.domain.clone()),
        ("channel_id", ch.id.clone()),
        ("channel_name", channel_name),
        ("user_id", person.id.clone()),
        ("user_name", person.name.clone()),
        ("command", command.clone()),
        ("text", text.to_string()),
        ("api_app_id", st.app.id.clone()),
        ("is_enterprise_install", "false".to_string()),
        ("response_url", response_url),
        ("trigger_id", trigger_id.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok(SlashCommand {
        trigger_id,
        command,
        text: text.to_string(),
        user_id: person.id.clone(),
        channel_id: ch.id.clone(),
        payload,
        transport: Transport::SocketMode,
        envelope_id: None,
        deliveries: 0,
        outcome: CommandOutcome::Pending,
        replies: Vec::new(),
    })
}

/// Runs `/command text` as `user` in `channel` and delivers it; returns its trigger id.
pub(crate) fn run(
    sim: &Arc<Sim>,
    channel: &str,
    user: &str,
    command: &str,
    text: &str,
) -> Result<String, SimError> {
    let mut cmd = {
        let st = lock(&sim.state);
        invocation(&st, &st.base_url, channel, user, command, text)?
    };
    let id = cmd.trigger_id.clone();
    match sim.hub.push_target() {
        Some((url, secret)) => {
            cmd.transport = Transport::Http;
            cmd.deliveries = 1;
            let form = serde_urlencoded::to_string(&cmd.payload)
                .map_err(|e| SimError::Invalid(format!("unencodable command: {e}")))?;
            lock(&sim.hub.commands).push(cmd);
            let hub = sim.hub.clone();
            let trigger = id.clone();
            sim.hub.spawn(async move {
                let outcome = post(&hub, &url, &secret, form).await;
                let mut list = lock(&hub.commands);
                if let Some(c) = list.iter_mut().find(|c| c.trigger_id == trigger) {
                    match outcome {
                        Ok(reply) => {
                            c.outcome = CommandOutcome::Acknowledged;
                            c.replies.extend(reply);
                        }
                        Err(error) => c.outcome = CommandOutcome::Failed { error },
                    }
                }
            });
        }
        None => {
            let envelope_id = uuid_v4();
            cmd.envelope_id = Some(envelope_id.clone());
            lock(&sim.hub.commands).push(cmd);
            send_envelope(sim, &id, &envelope_id, None);
        }
    }
    Ok(id)
}

/// Sends (or resends) a command's envelope; `retry` is the attempt number of a redelivery.
fn send_envelope(sim: &Arc<Sim>, trigger_id: &str, envelope_id: &str, retry: Option<u32>) {
    let hub = &sim.hub;
    let (frame, attempt) = {
        let mut list = lock(&hub.commands);
        let Some(c) = list.iter_mut().find(|c| c.trigger_id == trigger_id) else {
            return;
        };
        let mut frame = json!({
            "envelope_id": envelope_id,
            "payload": c.payload_json(),
            "type": "slash_commands",
            "accepts_response_payload": true,
        });
        if let Some(n) = retry {
            frame["retry_attempt"] = json!(n);
            frame["retry_reason"] = json!("timeout");
        }
        c.deliveries += 1;
        (frame.to_string(), c.deliveries)
    };
    if !hub.send_one(Outbound::Text(frame)) {
        set_outcome(hub, trigger_id, attempt, "dispatch_failed");
        return;
    }
    hub.counters.envelopes_sent.fetch_add(1, Ordering::Relaxed);
    let timeout = lock(&hub.config).ack_timeout;
    let h = hub.clone();
    let trigger = trigger_id.to_string();
    hub.spawn(async move {
        tokio::time::sleep(timeout).await;
        set_outcome(&h, &trigger, attempt, "operation_timeout");
    });
}

/// Fails a still pending command whose latest delivery is `attempt`.
fn set_outcome(hub: &Hub, trigger_id: &str, attempt: u32, error: &str) {
    let mut list = lock(&hub.commands);
    if let Some(c) = list
        .iter_mut()
        .find(|c| c.trigger_id == trigger_id && c.deliveries == attempt)
        && c.outcome == CommandOutcome::Pending
    {
        c.outcome = CommandOutcome::Failed {
            error: error.to_string(),
        };
    }
}

/// Sends a Socket Mode command's envelope again, same `envelope_id`.
pub(crate) fn redeliver(sim: &Arc<Sim>, trigger_id: &str) -> Result<(), SimError> {
    let (envelope_id, attempt) = {
        let list = lock(&sim.hub.commands);
        let c = list
            .iter()
            .find(|c| c.trigger_id == trigger_id)
            .ok_or_else(|| SimError::NotFound(format!("slash command {trigger_id}")))?;
        let e = c.envelope_id.clone().ok_or_else(|| {
            SimError::Invalid("only Socket Mode envelopes can be redelivered".into())
        })?;
        (e, c.deliveries)
    };
    send_envelope(sim, trigger_id, &envelope_id, Some(attempt));
    Ok(())
}

/// Records a Socket Mode ack for a command envelope. False when `envelope_id` is not one.
pub(crate) fn ack(hub: &Hub, envelope_id: &str, payload: Option<&Value>) -> bool {
    let mut list = lock(&hub.commands);
    let Some(c) = list
        .iter_mut()
        .find(|c| c.envelope_id.as_deref() == Some(envelope_id))
    else {
        return false;
    };
    match c.outcome {
        CommandOutcome::Failed { .. } => {
            tracing::debug!(envelope_id, "Late ack for a command the person saw fail.");
            return true;
        }
        CommandOutcome::Pending => c.outcome = CommandOutcome::Acknowledged,
        CommandOutcome::Acknowledged => {}
    }
    c.replies.extend(payload.and_then(|p| reply(p, "ack")));
    true
}

/// A reply from a JSON message (`text`, `response_type`); None when it shows nothing.
fn reply(v: &Value, via: &str) -> Option<CommandReply> {
    let obj = v.as_object()?;
    let text = obj
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if text.is_empty() && !obj.contains_key("blocks") {
        return None;
    }
    Some(CommandReply {
        response_type: obj
            .get("response_type")
            .and_then(Value::as_str)
            .unwrap_or("ephemeral")
            .to_string(),
        text,
        via: via.to_string(),
        raw: v.clone(),
    })
}

/// POSTs a command to the request URL, signed; the reply it answered with, or the error
/// code the person sees.
async fn post(
    hub: &Hub,
    url: &str,
    secret: &str,
    form: String,
) -> Result<Option<CommandReply>, String> {
    let ts = now_secs().to_string();
    let timeout = lock(&hub.config).push_timeout;
    hub.counters.push_attempts.fetch_add(1, Ordering::Relaxed);
    let resp = hub
        .http()
        .post(url)
        .timeout(timeout)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", &ts)
        .header(
            "X-Slack-Signature",
            crate::push::sign(secret, &ts, form.as_bytes()),
        )
        .header("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
        .body(form)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Err("operation_timeout".into()),
        Err(_) => return Err("dispatch_failed".into()),
    };
    let status = resp.status();
    if status.is_client_error() {
        return Err("http_client_error".into());
    }
    if !status.is_success() {
        return Err("http_service_error".into());
    }
    let body = match resp.text().await {
        Ok(b) => b,
        Err(e) if e.is_timeout() => return Err("operation_timeout".into()),
        Err(_) => return Err("dispatch_failed".into()),
    };
    let body = body.trim();
    if body.is_empty() {
        return Ok(None);
    }
    Ok(match serde_json::from_str::<Value>(body) {
        Ok(v @ Value::Object(_)) => reply(&v, "http"),
        _ => Some(CommandReply {
            response_type: "ephemeral".into(),
            text: body.to_string(),
            via: "http".into(),
            raw: Value::from(body),
        }),
    })
}

/// `POST /commands/{team}/{n}/{secret}`: a reply through a command's `response_url`
/// (JSON, or a form with a JSON `payload`). Slack allows five per command.
pub async fn response_url(
    AxState(sim): AxState<Arc<Sim>>,
    Path((team, n, secret)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let url = format!("{}/commands/{team}/{n}/{secret}", lock(&sim.state).base_url);
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let value: Option<Value> = if is_form {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
            .ok()
            .and_then(|f| f.into_iter().find(|(k, _)| k == "payload"))
            .and_then(|(_, p)| serde_json::from_str(&p).ok())
    } else {
        serde_json::from_slice(&body).ok()
    };
    let Some(value) = value else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    let mut list = lock(&sim.hub.commands);
    let Some(c) = list
        .iter_mut()
        .find(|c| c.field("response_url") == Some(url.as_str()))
    else {
        return (StatusCode::NOT_FOUND, "no_service").into_response();
    };
    if c.replies.iter().filter(|r| r.via == "response_url").count() >= 5 {
        return (StatusCode::NOT_FOUND, "used_url").into_response();
    }
    c.replies.extend(reply(&value, "response_url"));
    (StatusCode::OK, "ok").into_response()
}
