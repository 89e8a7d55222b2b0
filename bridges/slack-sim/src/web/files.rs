//! Files: the three-step external upload (`files.getUploadURLExternal` → POST the raw bytes
//! to `upload_url` without auth → `files.completeUploadExternal`), `files.info`, and the
//! authenticated `url_private` downloads.
//!
//! Upload flow: <https://docs.slack.dev/messaging/working-with-files#upload>; the share shows
//! up as a `file_share` message with full file objects in `files[]`
//! (`conformance/slack/events/message/file_share.real-capture.json`).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::chat::{author_for, postable_channel};
use super::{ApiError, ApiResult, Ctx, Reply, authenticate, can_see};
use crate::events::Emit;
use crate::ids::{Ts, now_secs, random_lower, slack_id, uuid_v4};
use crate::render;
use crate::state::{File, NewMessage, State};
use crate::{Sim, lock};

fn missing(field: &str) -> ApiError {
    ApiError::InvalidArguments(vec![format!("[ERROR] missing required field: {field}")])
}

// files.getUploadURLExternal — https://docs.slack.dev/reference/methods/files.getUploadURLExternal
/// Reserves a file id and hands out a one-time `upload_url`.
pub fn get_upload_url_external(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let filename = ctx
        .args
        .nonempty("filename")
        .ok_or_else(|| missing("filename"))?;
    let length = match ctx.args.int("length") {
        None => return Err(missing("length")),
        Some(Err(())) => {
            return Err(ApiError::InvalidArguments(vec![
                "[ERROR] must be a number [json-pointer:/length]".into(),
            ]));
        }
        Some(Ok(0)) => return Err("missing_argument".into()),
        Some(Ok(n)) if n < 0 => {
            return Err(ApiError::InvalidArguments(vec![
                "[ERROR] must be greater than 0 [json-pointer:/length]".into(),
            ]));
        }
        Some(Ok(n)) => u64::try_from(n).unwrap_or(0),
    };
    let alt_txt = ctx.args.str("alt_txt");
    if alt_txt.as_ref().is_some_and(|a| a.chars().count() > 1000) {
        return Err("alt_txt_too_large".into());
    }
    let mut st = lock(&ctx.sim.state);
    let id = slack_id("F");
    let ticket = random_lower(32);
    st.files.insert(
        id.clone(),
        File {
            id: id.clone(),
            name: filename.clone(),
            title: filename,
            declared_len: length,
            bytes: None,
            user: c.user.clone(),
            created: now_secs(),
            completed: false,
            shares: Vec::new(),
            alt_txt,
            snippet_type: ctx.args.nonempty("snippet_type"),
        },
    );
    st.uploads.insert(ticket.clone(), id.clone());
    Ok(Reply::json(json!({
        "upload_url": format!("{}/upload/v1/{ticket}", st.base_url),
        "file_id": id,
    })))
}

// files.completeUploadExternal — https://docs.slack.dev/reference/methods/files.completeUploadExternal
/// Finishes uploads and, with `channel_id` (or `channels`), shares them in a `file_share`
/// message (threaded with `thread_ts`, captioned by `initial_comment`).
pub fn complete_upload_external(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let files = match ctx.args.json("files") {
        None => return Err(missing("files")),
        Some(Ok(Value::Array(a))) if !a.is_empty() => a,
        Some(_) => {
            return Err(ApiError::InvalidArguments(vec![
                "[ERROR] must provide an array of file objects [json-pointer:/files]".into(),
            ]));
        }
    };
    let mut wanted: Vec<(String, Option<String>)> = Vec::new();
    for f in &files {
        let Some(id) = f.get("id").and_then(Value::as_str) else {
            return Err(ApiError::InvalidArguments(vec![
                "[ERROR] missing required field: id [json-pointer:/files/0]".into(),
            ]));
        };
        wanted.push((
            id.to_string(),
            f.get("title").and_then(Value::as_str).map(str::to_string),
        ));
    }
    let mut channels: Vec<String> = Vec::new();
    if let Some(ch) = ctx.args.nonempty("channel_id") {
        channels.push(ch);
    }
    if let Some(list) = ctx.args.nonempty("channels") {
        channels.extend(
            list.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    if channels.len() > 100 {
        return Err("channels_limit_exceeded".into());
    }
    let comment = ctx.args.str("initial_comment").filter(|s| !s.is_empty());
    let blocks = if comment.is_some() {
        None
    } else {
        super::chat::parse_blocks(ctx).map_err(|_| ApiError::from("invalid_blocks"))?
    };
    let thread_ts = ctx.args.nonempty("thread_ts").and_then(|s| Ts::parse(&s));
    let author = author_for(ctx, c)?;
    ctx.sim.mutate(|st, out| {
        for (id, _) in &wanted {
            let f = st.files.get(id).ok_or("file_not_found")?;
            if f.user != c.user {
                return Err("access_denied".into());
            }
            if f.bytes.is_none() {
                return Err("file_not_found".into());
            }
        }
        let mut targets = Vec::new();
        for ch in &channels {
            targets.push(postable_channel(st, c, ch)?);
        }
        let ids: Vec<String> = wanted.iter().map(|(id, _)| id.clone()).collect();
        for (id, title) in &wanted {
            if let Some(f) = st.files.get_mut(id) {
                f.completed = true;
                if let Some(t) = title {
                    f.title = t.clone();
                }
            }
        }
        for channel in &targets {
            let nm = NewMessage {
                author: author.clone(),
                text: comment.clone().unwrap_or_default(),
                blocks: blocks.clone(),
                attachments: None,
                thread_ts,
                broadcast: false,
                client_msg_id: (!c.is_bot()).then(uuid_v4),
                metadata: None,
                files: ids.clone(),
                subtype: Some("file_share".into()),
                room: None,
                inviter: None,
            };
            // Shares are recorded before posting so the event's file objects list them.
            let next_hint = st.clock.next();
            for id in &ids {
                if let Some(f) = st.files.get_mut(id) {
                    f.shares.push((channel.clone(), next_hint));
                }
            }
            let ts = st.post(channel, nm, out).ok_or("channel_not_found")?;
            for id in &ids {
                if let Some(f) = st.files.get_mut(id)
                    && let Some(s) = f
                        .shares
                        .iter_mut()
                        .find(|(c, t)| c == channel && *t == next_hint)
                {
                    s.1 = ts;
                }
                let ev_ts = st.clock.next().to_string();
                st.emit(
                    out,
                    Emit::channel(
                        "file_shared",
                        Some("files:read"),
                        channel,
                        json!({
                            "type": "file_shared",
                            "channel_id": channel,
                            "file_id": id,
                            "user_id": c.user,
                            "file": {"id": id},
                            "event_ts": ev_ts,
                        }),
                    ),
                );
            }
        }
        let rendered: Vec<Value> = ids
            .iter()
            .filter_map(|id| st.files.get(id))
            .map(|f| render::file(st, f))
            .collect();
        Ok(Reply::json(json!({"files": rendered})))
    })
}

/// Can `user` see file `f` (owner, or shared where they can see)?
fn file_visible(st: &State, c: &super::Caller, f: &File) -> bool {
    f.user == c.user
        || f.shares
            .iter()
            .any(|(ch, _)| st.channel(ch).is_some_and(|ch| can_see(c, ch)))
}

// files.info — https://docs.slack.dev/reference/methods/files.info
/// A file object.
pub fn info(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let st = lock(&ctx.sim.state);
    let id = ctx.args.nonempty("file").ok_or("file_not_found")?;
    let f = st.files.get(&id).ok_or("file_not_found")?;
    if !file_visible(&st, c, f) {
        return Err("file_not_found".into());
    }
    Ok(Reply::json(json!({
        "file": render::file(&st, f),
        "comments": [],
        "response_metadata": {"next_cursor": ""},
    })))
}

/// Extracts the first file part of a multipart body (binary-safe), if it is one.
fn multipart_file(headers: &HeaderMap, body: &[u8]) -> Option<Vec<u8>> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    if !ct.to_ascii_lowercase().starts_with("multipart/form-data") {
        return None;
    }
    let boundary = ct
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?;
    let delim = format!("--{}", boundary.trim_matches('"'));
    let find = |hay: &[u8], needle: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut pos = find(body, delim.as_bytes(), 0)?;
    loop {
        let head_start = pos + delim.len();
        let head_end = find(body, b"\r\n\r\n", head_start)?;
        let head = String::from_utf8_lossy(&body[head_start..head_end]);
        let next = find(body, delim.as_bytes(), head_end + 4)?;
        if head.contains("filename=") {
            let end = next.saturating_sub(2).max(head_end + 4);
            return Some(body[head_end + 4..end].to_vec());
        }
        pos = next;
    }
}

/// `POST /upload/v1/{ticket}` — the upload URL: raw bytes, no Authorization, answers
/// `OK - <length>` like files.slack.com.
pub async fn upload(
    AxState(sim): AxState<Arc<Sim>>,
    Path(ticket): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bytes = multipart_file(&headers, &body).unwrap_or_else(|| body.to_vec());
    let mut st = lock(&sim.state);
    let Some(id) = st.uploads.remove(&ticket) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let len = bytes.len();
    if let Some(f) = st.files.get_mut(&id) {
        f.bytes = Some(bytes);
    }
    (StatusCode::OK, format!("OK - {len}")).into_response()
}

const LOGIN_PAGE: &str = "<!DOCTYPE html><html><head><title>Slack</title></head><body>\
<h1>Sign in to your workspace</h1><p>You need to sign in to see this file.</p></body></html>";

/// `GET /files-pri/{team}-{file}/[download/]{name}` — `url_private` downloads. Like Slack,
/// a request without a valid token (and `files:read`) gets the HTML sign-in page with
/// status 200, not the file.
pub async fn download(
    AxState(sim): AxState<Arc<Sim>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    let login = || {
        let mut r = Response::new(Body::from(LOGIN_PAGE));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_string);
    let st = lock(&sim.state);
    let Some(caller) = token.and_then(|t| authenticate(&st, &t).ok()) else {
        return login();
    };
    if !caller.has("files:read") {
        return login();
    }
    let file_id = rest
        .split('/')
        .next()
        .and_then(|seg| seg.split_once('-'))
        .map(|(_, f)| f.to_string())
        .unwrap_or_default();
    let Some(f) = st.files.get(&file_id) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    if !file_visible(&st, &caller, f) {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let (_, mime, _) = render::file_type(&f.name);
    let body = f.bytes.clone().unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    if let Ok(v) = HeaderValue::from_str(mime) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}
