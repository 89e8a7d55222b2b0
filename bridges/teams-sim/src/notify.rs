//! Change notifications for Teams messages: subscriptions, the validation handshake,
//! delivery with retries, and lifecycle notifications.
//!
//! * Teams chatMessage notifications:
//!   <https://learn.microsoft.com/graph/teams-changenotifications-chatmessage>
//! * Creating a subscription and the handshake:
//!   <https://learn.microsoft.com/graph/api/subscription-post-subscriptions> and
//!   <https://learn.microsoft.com/graph/change-notifications-delivery-webhooks#notificationurl-validation>
//!   — Graph POSTs `{notificationUrl}?validationToken=…` and wants 200 `text/plain` echoing
//!   the decoded token within 10 s, otherwise the create call fails with 400.
//! * Lifecycle notifications: <https://learn.microsoft.com/graph/change-notifications-lifecycle-events>
//!
//! * Per user: `/users/{id}/chats/getAllMessages`, every chat the user is a member of
//!   (application `Chat.Read.All`, or delegated `Chat.Read` for the signed-in user's own
//!   chats), matched against the chat's members when each change happens.
//!
//! * Notifications with resource data (`includeResourceData`, `encryptedContent`):
//!   <https://learn.microsoft.com/graph/change-notifications-with-resource-data> — the
//!   subscription's certificate is checked at creation ([`crate::rich`]); `created` and
//!   `updated` notifications then carry the message as `GET` renders it, encrypted; `deleted`
//!   ones carry no resource data.
//!
//! Not simulated: the `validationTokens` of rich notifications (none are sent) and the
//! slow-endpoint throttling (10 % slow → delayed, 15 % → dropped).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::graph::need;
use crate::limits::Class;
use crate::rich::Encryption;
use crate::state::{Change, Principal, Scope, State as Tenant, Subscription, Watch};
use crate::util::{GraphError, guid, iso_ms, json_response, lock, now_ms, parse_iso, pct};
use crate::{Counters, Sim, SimError};

/// The longest lifetime of a Teams chatMessage subscription: 4,320 minutes (three days).
pub const MAX_EXPIRATION_MS: u64 = 4320 * 60 * 1000;
/// Beyond one hour a `lifecycleNotificationUrl` is required.
pub const LIFECYCLE_REQUIRED_AFTER_MS: u64 = 60 * 60 * 1000;

/// Subscription routes.
pub fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route("/v1.0/subscriptions", post(create).get(list))
        .route(
            "/v1.0/subscriptions/{id}",
            get(get_one).patch(renew).delete(delete),
        )
        .route("/v1.0/subscriptions/{id}/reauthorize", post(reauthorize))
}

/// A subscription as Graph renders it.
pub fn render(s: &Subscription) -> Value {
    json!({
        "id": s.id,
        "resource": s.resource,
        "applicationId": s.application_id,
        "changeType": s.change_types.join(","),
        "clientState": s.client_state,
        "notificationUrl": s.notification_url,
        "notificationQueryOptions": null,
        "lifecycleNotificationUrl": s.lifecycle_url,
        "expirationDateTime": iso_ms(s.expires_ms),
        "creatorId": s.creator_id,
        "includeResourceData": s.encryption.is_some(),
        "latestSupportedTlsVersion": "v1_2",
        "encryptionCertificate": s.encryption.as_ref().map(|e| e.certificate.as_str()),
        "encryptionCertificateId": s.encryption.as_ref().map(|e| e.certificate_id.as_str()),
        "notificationUrlAppId": null,
        "notificationContentType": "application/json",
    })
}

/// Parses a `resource` into what it watches.
fn parse_resource(r: &str) -> Option<Watch> {
    let r = r.trim().trim_start_matches('/');
    let r = r.split('?').next().unwrap_or(r);
    let parts: Vec<&str> = r.split('/').collect();
    match parts.as_slice() {
        [t, g] if t.eq_ignore_ascii_case("teams") && g.eq_ignore_ascii_case("getAllMessages") => {
            Some(Watch::AllChannels)
        }
        [c, g] if c.eq_ignore_ascii_case("chats") && g.eq_ignore_ascii_case("getAllMessages") => {
            Some(Watch::AllChats)
        }
        [t, team, c, ch, m]
            if t.eq_ignore_ascii_case("teams")
                && c.eq_ignore_ascii_case("channels")
                && m.eq_ignore_ascii_case("messages") =>
        {
            Some(Watch::Channel(unquote(team), unquote(ch)))
        }
        [c, chat, m] if c.eq_ignore_ascii_case("chats") && m.eq_ignore_ascii_case("messages") => {
            Some(Watch::Chat(unquote(chat)))
        }
        [u, user, c, g]
            if u.eq_ignore_ascii_case("users")
                && c.eq_ignore_ascii_case("chats")
                && g.eq_ignore_ascii_case("getAllMessages") =>
        {
            Some(Watch::UserChats(unquote(user)))
        }
        _ => None,
    }
}

/// `19%3A…` → `19:…`; `('x')` forms → `x`.
fn unquote(s: &str) -> String {
    let s = s.trim_start_matches("('").trim_end_matches("')");
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn watch_matches(st: &Tenant, w: &Watch, scope: &Scope) -> bool {
    match (w, scope) {
        (Watch::AllChannels, Scope::Channel { .. }) | (Watch::AllChats, Scope::Chat { .. }) => true,
        (Watch::Channel(t, c), Scope::Channel { team, channel }) => t == team && c == channel,
        (Watch::Chat(c), Scope::Chat { chat }) => c == chat,
        (Watch::UserChats(user), scope @ Scope::Chat { .. }) => st.can_access(user, scope),
        _ => false,
    }
}

fn sub_error(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

/// Checks an expiration time against the Teams limits.
fn check_expiry(exp: u64, has_lifecycle: bool) -> Result<(), GraphError> {
    let now = now_ms();
    if exp <= now {
        return Err(sub_error("Subscription expiration must be in the future."));
    }
    if exp > now + MAX_EXPIRATION_MS {
        return Err(sub_error(
            "Subscription expiration can only be 4320 minutes in the future.",
        ));
    }
    if exp > now + LIFECYCLE_REQUIRED_AFTER_MS && !has_lifecycle {
        return Err(sub_error(
            "lifecycleNotificationUrl is a required property for subscription creation on this resource when the expirationDateTime value is set to greater than 1 hour",
        ));
    }
    Ok(())
}

/// Sends the validation request and checks the echo.
async fn validate_endpoint(sim: &Sim, url: &str) -> Result<(), GraphError> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        guid()
    );
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}validationToken={}", pct(&token));
    let fail = |why: &str| {
        sub_error(format!(
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request. ({why})"
        ))
    };
    let req = sim
        .http
        .post(&full)
        .header("content-type", "text/plain; charset=utf-8")
        .timeout(sim.timing.validation_timeout)
        .send();
    let resp = match req.await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Err(sub_error(
                "Subscription validation request timed out. Notification endpoint must respond with 200 OK to validation request within 10 seconds.",
            ));
        }
        Err(_) => return Err(fail("endpoint unreachable")),
    };
    if resp.status() != reqwest::StatusCode::OK {
        return Err(fail(&format!("status {}", resp.status().as_u16())));
    }
    let ct_ok = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/plain"));
    let body = resp.text().await.unwrap_or_default();
    if !ct_ok {
        return Err(fail("content type is not text/plain"));
    }
    if body != token {
        return Err(fail("the response did not echo the validation token"));
    }
    Ok(())
}

/// `POST /subscriptions` — <https://learn.microsoft.com/graph/api/subscription-post-subscriptions>
async fn create(
    State(sim): State<Arc<Sim>>,
    h: HeaderMap,
    b: Bytes,
) -> Result<Response, GraphError> {
    let pr = sim.gate(&h, Class::Other).await?;
    let body: Value = serde_json::from_slice(&b)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| GraphError::bad_request("Invalid request body."))?;
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let resource = s("resource").ok_or_else(|| sub_error("resource is a required property."))?;
    let change_type =
        s("changeType").ok_or_else(|| sub_error("changeType is a required property."))?;
    let notification_url =
        s("notificationUrl").ok_or_else(|| sub_error("notificationUrl is a required property."))?;
    let exp_s = s("expirationDateTime")
        .ok_or_else(|| sub_error("expirationDateTime is a required property."))?;
    let lifecycle_url = s("lifecycleNotificationUrl");
    let client_state = s("clientState");
    if client_state
        .as_ref()
        .is_some_and(|c| c.chars().count() > 128)
    {
        return Err(sub_error("clientState must be at most 128 characters."));
    }
    let encryption = match body.get("includeResourceData") {
        None | Some(Value::Null | Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(
            Encryption::from_request(
                s("encryptionCertificate").as_deref(),
                s("encryptionCertificateId").as_deref(),
            )
            .map_err(sub_error)?,
        ),
        Some(_) => return Err(sub_error("includeResourceData must be a boolean.")),
    };
    let mut change_types = Vec::new();
    for c in change_type.split(',').map(str::trim) {
        if !["created", "updated", "deleted"].contains(&c) {
            return Err(sub_error(format!("Invalid changeType '{c}'.")));
        }
        change_types.push(c.to_string());
    }
    for u in std::iter::once(&notification_url).chain(lifecycle_url.iter()) {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            return Err(sub_error(format!("Invalid notification URL '{u}'.")));
        }
    }
    let watch = parse_resource(&resource)
        .ok_or_else(|| sub_error(format!("Resource '{resource}' is not supported.")))?;
    let exp = parse_iso(&exp_s)
        .ok_or_else(|| sub_error("expirationDateTime is not a valid date-time."))?;
    check_expiry(exp, lifecycle_url.is_some())?;
    let (application_id, creator_id, watch) = {
        let st = lock(&sim.state);
        let watch = match watch {
            Watch::UserChats(key) => Watch::UserChats(
                st.resolve_user(&key)
                    .map(|u| u.id.clone())
                    .ok_or_else(|| GraphError::not_found(format!("User {key} was not found.")))?,
            ),
            other => other,
        };
        check_permission(&st, &pr, &watch)?;
        let app = st.client_id.clone();
        // One subscription per app per channel or chat.
        if matches!(watch, Watch::Channel(..) | Watch::Chat(_))
            && st
                .subscriptions
                .values()
                .any(|x| x.watch == watch && x.application_id == app && x.expires_ms > now_ms())
        {
            return Err(GraphError::new(
                StatusCode::FORBIDDEN,
                "ExtensionError",
                "Subscription quota exceeded: only one subscription per app per channel or chat is allowed.",
            ));
        }
        let creator = pr.user().map_or_else(|| app.clone(), str::to_string);
        (app, creator, watch)
    };
    validate_endpoint(&sim, &notification_url).await?;
    if let Some(l) = &lifecycle_url {
        validate_endpoint(&sim, l).await?;
    }
    let sub = Subscription {
        id: guid(),
        resource,
        watch,
        change_types,
        client_state,
        notification_url,
        lifecycle_url,
        expires_ms: exp,
        application_id,
        creator_id,
        encryption,
    };
    let mut v = render(&sub);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "@odata.context".into(),
            json!(format!("{}/v1.0/$metadata#subscriptions/$entity", sim.base)),
        );
    }
    lock(&sim.state).subscriptions.insert(sub.id.clone(), sub);
    Ok(json_response(StatusCode::CREATED, v))
}

/// Tenant-wide resources are application-only; per-channel/chat need read permission.
fn check_permission(st: &Tenant, pr: &Principal, w: &Watch) -> Result<(), GraphError> {
    match w {
        Watch::AllChannels | Watch::AllChats if pr.user().is_some() => Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "This resource supports application permissions only; delegated tokens are not supported.",
        )),
        Watch::AllChannels => need(pr, &[], &["ChannelMessage.Read.All"]),
        Watch::AllChats => need(pr, &[], &["Chat.Read.All"]),
        Watch::Channel(t, c) => {
            need(
                pr,
                &["ChannelMessage.Read.All"],
                &["ChannelMessage.Read.All", "ChannelMessage.Read.Group"],
            )?;
            access(
                st,
                pr,
                &Scope::Channel {
                    team: t.clone(),
                    channel: c.clone(),
                },
            )
        }
        Watch::Chat(c) => {
            need(
                pr,
                &["Chat.Read", "Chat.ReadWrite"],
                &["Chat.Read.All", "ChatMessage.Read.Chat"],
            )?;
            access(st, pr, &Scope::Chat { chat: c.clone() })
        }
        // Delegated (Chat.Read) for the signed-in user's own chats only, or the app
        // (Chat.Read.All) for anyone's.
        Watch::UserChats(user) => {
            need(
                pr,
                &["Chat.Read", "Chat.ReadWrite"],
                &["Chat.Read.All", "Chat.ReadWrite.All"],
            )?;
            match pr.user() {
                Some(me) if me != user => Err(GraphError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "A delegated subscription to a user's chats is supported for the signed-in user only.",
                )),
                _ => Ok(()),
            }
        }
    }
}

fn access(st: &Tenant, pr: &Principal, scope: &Scope) -> Result<(), GraphError> {
    if !st.scope_exists(scope) {
        return Err(GraphError::not_found("The resource was not found."));
    }
    match pr.user() {
        Some(u) if !st.can_access(u, scope) => Err(GraphError::forbidden()),
        _ => Ok(()),
    }
}

fn not_found(id: &str) -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("The object was not found: subscription {id}."),
    )
}

/// `GET /subscriptions` — <https://learn.microsoft.com/graph/api/subscription-list>
async fn list(State(sim): State<Arc<Sim>>, h: HeaderMap) -> Result<Response, GraphError> {
    sim.gate(&h, Class::OtherGet).await?;
    let mut st = lock(&sim.state);
    let now = now_ms();
    st.subscriptions.retain(|_, s| s.expires_ms > now);
    let v: Vec<Value> = st.subscriptions.values().map(render).collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"@odata.context": format!("{}/v1.0/$metadata#subscriptions", sim.base), "value": v}),
    ))
}

/// `GET /subscriptions/{id}` — <https://learn.microsoft.com/graph/api/subscription-get>
async fn get_one(
    State(sim): State<Arc<Sim>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    sim.gate(&h, Class::OtherGet).await?;
    let mut st = lock(&sim.state);
    let now = now_ms();
    st.subscriptions.retain(|_, s| s.expires_ms > now);
    let s = st.subscriptions.get(&id).ok_or_else(|| not_found(&id))?;
    Ok(json_response(StatusCode::OK, render(s)))
}

/// `PATCH /subscriptions/{id}` — <https://learn.microsoft.com/graph/api/subscription-update>
async fn renew(
    State(sim): State<Arc<Sim>>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Bytes,
) -> Result<Response, GraphError> {
    sim.gate(&h, Class::Other).await?;
    let body: Value =
        serde_json::from_slice(&b).map_err(|_| GraphError::bad_request("Invalid request body."))?;
    let exp = body
        .get("expirationDateTime")
        .and_then(Value::as_str)
        .and_then(parse_iso)
        .ok_or_else(|| sub_error("expirationDateTime is a required property."))?;
    let mut st = lock(&sim.state);
    let now = now_ms();
    st.subscriptions.retain(|_, s| s.expires_ms > now);
    let s = st
        .subscriptions
        .get_mut(&id)
        .ok_or_else(|| not_found(&id))?;
    check_expiry(exp, s.lifecycle_url.is_some())?;
    s.expires_ms = exp;
    Ok(json_response(StatusCode::OK, render(s)))
}

/// `DELETE /subscriptions/{id}` — <https://learn.microsoft.com/graph/api/subscription-delete>
async fn delete(
    State(sim): State<Arc<Sim>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    sim.gate(&h, Class::Other).await?;
    let mut st = lock(&sim.state);
    st.subscriptions.remove(&id).ok_or_else(|| not_found(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /subscriptions/{id}/reauthorize` —
/// <https://learn.microsoft.com/graph/api/subscription-reauthorize>
async fn reauthorize(
    State(sim): State<Arc<Sim>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    sim.gate(&h, Class::Other).await?;
    let st = lock(&sim.state);
    st.subscriptions.get(&id).ok_or_else(|| not_found(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Sends a notification for each matching subscription of each change (in the background).
pub fn dispatch(sim: &Arc<Sim>, changes: Vec<Change>) {
    let mut out: Vec<(String, Value)> = Vec::new();
    {
        let mut st = lock(&sim.state);
        let now = now_ms();
        st.subscriptions.retain(|_, s| s.expires_ms > now);
        for c in &changes {
            let resource = Tenant::resource_of(&c.scope, &c.id, c.reply_to.as_deref());
            for s in st.subscriptions.values() {
                if !watch_matches(&st, &s.watch, &c.scope)
                    || !s.change_types.iter().any(|t| t == c.change_type)
                {
                    continue;
                }
                let mut item = json!({
                    "subscriptionId": s.id,
                    "changeType": c.change_type,
                    "clientState": s.client_state,
                    "subscriptionExpirationDateTime": iso_ms(s.expires_ms),
                    "resource": resource,
                    "resourceData": {
                        "id": c.id,
                        "@odata.type": "#Microsoft.Graph.chatMessage",
                        "@odata.id": resource,
                    },
                    "tenantId": st.tenant_id,
                });
                if let Some(enc) = &s.encryption
                    && let Some(content) = encrypted_content(&st, enc, c)
                    && let Some(o) = item.as_object_mut()
                {
                    o.insert("encryptedContent".into(), content);
                }
                out.push((s.notification_url.clone(), json!({"value": [item]})));
            }
        }
    }
    for (url, payload) in out {
        let f = sim.faults.get();
        if sim.faults.roll(f.drop_rate) {
            Counters::inc(&sim.counters.notifications_fault_dropped);
            continue;
        }
        let copies = if sim.faults.roll(f.duplicate_rate) {
            Counters::inc(&sim.counters.notifications_duplicated);
            2
        } else {
            1
        };
        for _ in 0..copies {
            let sim2 = sim.clone();
            let (u, p) = (url.clone(), payload.clone());
            let delay = Duration::from_millis(f.notification_delay_ms);
            sim.tracker
                .spawn(async move { deliver(sim2, u, p, delay).await });
        }
    }
}

/// The `encryptedContent` of a `created` or `updated` change: the message as `GET` renders it
/// plus the empty `replies` and `hostedContents` of Graph's documented decrypted payload
/// (`conformance/teams/notifications/payloads/chatmessage-notification-decrypted-resource.json`).
/// `None` for `deleted` changes and for messages that are gone.
fn encrypted_content(st: &Tenant, enc: &Encryption, c: &Change) -> Option<Value> {
    if c.change_type == "deleted" {
        return None;
    }
    let m = st.find(&c.scope, &c.id, c.reply_to.as_deref())?;
    let mut v = st.render_message(m, false);
    if let Some(o) = v.as_object_mut() {
        o.insert("replies".into(), json!([]));
        o.insert("hostedContents".into(), json!([]));
    }
    match enc.encrypt(&v) {
        Ok(content) => Some(content),
        Err(e) => {
            tracing::warn!(error = %e, "Could not encrypt the resource data.");
            None
        }
    }
}

/// POSTs one notification, retrying non-2xx answers after each of the configured delays,
/// then dropping it.
async fn deliver(sim: Arc<Sim>, url: String, payload: Value, delay: Duration) {
    let stop = sim.shutdown.clone();
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => return,
        }
    }
    let delays = sim.timing.retry_delays.clone();
    for attempt in 0..=delays.len() {
        if attempt > 0 {
            Counters::inc(&sim.counters.notifications_retried);
            let d = delays.get(attempt - 1).copied().unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(d) => {}
                () = stop.cancelled() => return,
            }
        }
        Counters::inc(&sim.counters.notification_attempts);
        let r = sim
            .http
            .post(&url)
            .json(&payload)
            .timeout(sim.timing.delivery_timeout)
            .send();
        let ok = tokio::select! {
            r = r => r.is_ok_and(|r| r.status().is_success()),
            () = stop.cancelled() => return,
        };
        if ok {
            Counters::inc(&sim.counters.notifications_delivered);
            return;
        }
        tracing::debug!(attempt, "Notification delivery failed.");
    }
    Counters::inc(&sim.counters.notifications_dropped);
    tracing::warn!("Notification dropped after the last retry.");
}

/// Sends a lifecycle notification to the subscription's `lifecycleNotificationUrl`.
/// `subscriptionRemoved` also deletes the subscription.
pub async fn trigger_lifecycle(sim: &Arc<Sim>, id: &str, event: &str) -> Result<(), SimError> {
    if !["reauthorizationRequired", "subscriptionRemoved", "missed"].contains(&event) {
        return Err(SimError::Invalid(format!("lifecycle event {event:?}")));
    }
    let (url, payload) = {
        let mut st = lock(&sim.state);
        let s = st
            .subscriptions
            .get(id)
            .ok_or_else(|| SimError::NotFound(format!("subscription {id:?}")))?;
        let url = s.lifecycle_url.clone().ok_or_else(|| {
            SimError::Invalid("the subscription has no lifecycleNotificationUrl".into())
        })?;
        let payload = json!({"value": [{
            "subscriptionId": s.id,
            "subscriptionExpirationDateTime": iso_ms(s.expires_ms),
            "tenantId": st.tenant_id,
            "clientState": s.client_state,
            "lifecycleEvent": event,
        }]});
        if event == "subscriptionRemoved" {
            st.subscriptions.remove(id);
        }
        (url, payload)
    };
    Counters::inc(&sim.counters.lifecycle_sent);
    let sim2 = sim.clone();
    sim.tracker
        .spawn(async move { deliver(sim2, url, payload, Duration::ZERO).await });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources() {
        assert_eq!(
            parse_resource("/teams/getAllMessages"),
            Some(Watch::AllChannels)
        );
        assert_eq!(
            parse_resource("chats/getAllMessages"),
            Some(Watch::AllChats)
        );
        assert_eq!(
            parse_resource("/teams/t1/channels/19%3Aabc%40thread.tacv2/messages"),
            Some(Watch::Channel("t1".into(), "19:abc@thread.tacv2".into()))
        );
        assert_eq!(
            parse_resource("/chats/19:x@thread.v2/messages"),
            Some(Watch::Chat("19:x@thread.v2".into()))
        );
        assert_eq!(
            parse_resource("/users/u-1/chats/getAllMessages"),
            Some(Watch::UserChats("u-1".into()))
        );
        assert_eq!(
            parse_resource("/users/u%401/chats/getallmessages"),
            Some(Watch::UserChats("u@1".into()))
        );
        assert_eq!(parse_resource("/me/messages"), None);
        assert_eq!(unquote("%"), "%");
        assert_eq!(unquote("a%4"), "a%4");
        assert_eq!(unquote("%é1"), "%é1");
    }
}
