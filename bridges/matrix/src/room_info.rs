//! A portal room's name, topic and avatar, taken from the channel it stands
//! for on another platform (`OutboundKind::ChannelInfo`).
//!
//! The bot sets `m.room.name`, `m.room.topic` and `m.room.avatar` state.
//! Each is read first and written only when it differs, so a retried or
//! replayed op adds no event. An avatar is fetched from its URL and uploaded
//! to the content repository; the state content keeps the URL it came from
//! (under [`SOURCE_KEY`]), so the same picture is not uploaded again. In a
//! room where the bot may not set state (a linked room whose admins kept that
//! power), the room keeps its own name, with a WARN.

use crate::client::{ApiError, MatrixClient, Method, enc};
use serde_json::{Value, json};
use switchboard_model::{BridgeError, ChannelInfo};

/// Where `m.room.avatar` content records the URL its picture came from.
pub const SOURCE_KEY: &str = "org.switchboard.source";

/// The largest room avatar fetched.
pub const AVATAR_CAP: u64 = 5 * 1024 * 1024;

fn state_path(room: &str, event_type: &str) -> String {
    format!(
        "/_matrix/client/v3/rooms/{}/state/{}/",
        enc(room),
        enc(event_type)
    )
}

/// Reads one state event's content; `None` when the room has none.
/// [`GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`](https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3roomsroomidstateeventtypestatekey)
async fn current(
    client: &MatrixClient,
    room: &str,
    event_type: &str,
) -> Result<Option<Value>, BridgeError> {
    match client
        .call(Method::Get, &state_path(room, event_type), None, None)
        .await
    {
        Ok(content) => Ok(Some(content)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into_bridge("read room state")),
    }
}

/// Writes one state event as the bot. `Ok(false)` when the bot may not.
async fn put(
    client: &MatrixClient,
    room: &str,
    event_type: &str,
    content: &Value,
) -> Result<bool, BridgeError> {
    match client
        .call(
            Method::Put,
            &state_path(room, event_type),
            None,
            Some(content),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.errcode() == Some("M_FORBIDDEN") => Ok(false),
        Err(e) => Err(e.into_bridge("set room state")),
    }
}

/// The text field of a state event's content, "" when absent.
fn field<'a>(content: Option<&'a Value>, key: &str) -> &'a str {
    content
        .and_then(|c| c.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Applies `info` to `room`: every part that is `Some` and differs.
pub async fn apply(
    client: &MatrixClient,
    room: &str,
    info: &ChannelInfo,
) -> Result<(), BridgeError> {
    let mut refused = Vec::new();
    for (event_type, key, wanted) in [
        ("m.room.name", "name", &info.name),
        ("m.room.topic", "topic", &info.topic),
    ] {
        let Some(wanted) = wanted else { continue };
        let now = current(client, room, event_type).await?;
        if field(now.as_ref(), key) == wanted.as_str() {
            continue;
        }
        let mut content = json!({ key: wanted });
        if event_type == "m.room.topic" {
            // The structured form of the topic (Matrix 1.15) beside the plain one.
            content["m.topic"] = json!({"m.text": [{"body": wanted, "mimetype": "text/plain"}]});
        }
        if !put(client, room, event_type, &content).await? {
            refused.push(event_type);
        }
    }
    if let Some(url) = &info.avatar {
        let now = current(client, room, "m.room.avatar").await?;
        if field(now.as_ref(), SOURCE_KEY) != url.as_str() && !set_avatar(client, room, url).await?
        {
            refused.push("m.room.avatar");
        }
    }
    if !refused.is_empty() {
        tracing::warn!(%room, events = ?refused, "The bot may not change this room's name, topic or avatar; it keeps its own.");
    }
    Ok(())
}

/// Fetches, uploads and sets a room avatar. `Ok(false)` when refused.
async fn set_avatar(client: &MatrixClient, room: &str, url: &str) -> Result<bool, BridgeError> {
    if url.is_empty() {
        return put(client, room, "m.room.avatar", &json!({})).await;
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(BridgeError::permanent(
            "a room avatar must be an http(s) URL",
        ));
    }
    let (bytes, mime) = client
        .fetch_url(url, AVATAR_CAP)
        .await
        .map_err(|e| match e {
            ApiError::Decode(why) => BridgeError::permanent(format!("room avatar: {why}")),
            other => other.into_bridge("fetch a room avatar"),
        })?;
    if !mime.starts_with("image/") {
        return Err(BridgeError::permanent(format!(
            "room avatar: not an image ({mime})"
        )));
    }
    let size = bytes.len();
    let mxc = client
        .upload(None, "avatar", &mime, bytes)
        .await
        .map_err(|e| e.into_bridge("upload a room avatar"))?;
    let content = json!({
        "url": mxc,
        "info": {"mimetype": mime, "size": size},
        SOURCE_KEY: url,
    });
    put(client, room, "m.room.avatar", &content).await
}
