//! JSON renderings of stored objects in Slack's shapes: messages (as events and as API
//! results), users and profiles, conversations (as seen by a given viewer), files, calls,
//! huddle rooms, the team, bot profiles.
//!
//! Shapes are taken from real captures in `conformance/slack/` (MercuryTechnologies golden
//! files, ossans_navi, SDK fixtures) and the object pages under
//! <https://docs.slack.dev/reference/objects/>.

use serde_json::{Map, Value, json};

use crate::state::{Author, Call, Channel, File, Huddle, Kind, Message, SLACKBOT, State, User};

/// Where a message rendering goes: events omit per-viewer fields such as `subscribed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum For {
    /// Inside an Events API payload.
    Event,
    /// In a Web API result (history, replies, postMessage's `message`).
    Api,
}

fn avatar(st: &State, u: &User, size: u32) -> String {
    match &u.avatar_url {
        Some(url) => url.clone(),
        None => format!(
            "{}/avatars/{}_{size}.png",
            st.base_url,
            if u.is_bot { "bot" } else { "default" }
        ),
    }
}

/// Twelve hex digits derived from the avatar URL (Slack's `avatar_hash`).
fn avatar_hash(u: &User) -> String {
    let src = u.avatar_url.clone().unwrap_or_else(|| u.id.clone());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in src.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("g{:011x}", h & 0x0fff_ffff_ffff)
}

/// The `profile` object of a user (`users.profile.get`, `users.info`).
pub fn profile(st: &State, u: &User) -> Value {
    let (first, last) = match u.real_name.split_once(' ') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (u.real_name.clone(), String::new()),
    };
    let mut p = json!({
        "title": "",
        "phone": "",
        "skype": "",
        "real_name": u.real_name,
        "real_name_normalized": u.real_name,
        "display_name": u.display_name,
        "display_name_normalized": u.display_name,
        "fields": {},
        "status_text": "",
        "status_emoji": "",
        "status_emoji_display_info": [],
        "status_expiration": 0,
        "avatar_hash": avatar_hash(u),
        "first_name": first,
        "last_name": last,
        "image_24": avatar(st, u, 24),
        "image_32": avatar(st, u, 32),
        "image_48": avatar(st, u, 48),
        "image_72": avatar(st, u, 72),
        "image_192": avatar(st, u, 192),
        "image_512": avatar(st, u, 512),
        "status_text_canonical": "",
        "team": st.team.id,
    });
    if u.avatar_url.is_some() {
        p["image_original"] = json!(avatar(st, u, 1024));
        p["is_custom_image"] = json!(true);
    }
    if !u.is_bot && u.id != SLACKBOT {
        p["email"] = json!(u.email);
        match &u.huddle {
            Some((call, exp)) => {
                p["huddle_state"] = json!("in_a_huddle");
                p["huddle_state_expiration_ts"] = json!(exp);
                p["huddle_state_call_id"] = json!(call);
            }
            None => {
                p["huddle_state"] = json!("default_unset");
                p["huddle_state_expiration_ts"] = json!(0);
            }
        }
    }
    if let Some(b) = &u.bot_id {
        p["bot_id"] = json!(b);
        p["api_app_id"] = json!(u.app_id.clone().unwrap_or_default());
        p["always_active"] = json!(true);
    }
    p
}

/// A user object (`users.info`, `users.list`, `user_change`).
pub fn user(st: &State, u: &User) -> Value {
    json!({
        "id": u.id,
        "team_id": st.team.id,
        "name": u.name,
        "deleted": u.deleted,
        "color": u.color,
        "real_name": u.real_name,
        "tz": u.tz,
        "tz_label": tz_label(&u.tz),
        "tz_offset": tz_offset(&u.tz),
        "profile": profile(st, u),
        "is_admin": u.is_admin,
        "is_owner": false,
        "is_primary_owner": false,
        "is_restricted": false,
        "is_ultra_restricted": false,
        "is_bot": u.is_bot,
        "is_app_user": false,
        "updated": u.updated,
        "is_email_confirmed": !u.is_bot,
        "who_can_share_contact_card": "EVERYONE",
    })
}

fn tz_label(tz: &str) -> &'static str {
    match tz {
        "Europe/London" => "Greenwich Mean Time",
        "Europe/Berlin" | "Europe/Paris" => "Central European Time",
        "Asia/Tokyo" => "Japan Standard Time",
        "America/New_York" => "Eastern Standard Time",
        _ => "Pacific Standard Time",
    }
}

fn tz_offset(tz: &str) -> i64 {
    match tz {
        "Europe/London" => 0,
        "Europe/Berlin" | "Europe/Paris" => 3600,
        "Asia/Tokyo" => 32400,
        "America/New_York" => -18000,
        _ => -28800,
    }
}

/// The team object (`team.info`).
pub fn team(st: &State) -> Value {
    json!({
        "id": st.team.id,
        "name": st.team.name,
        "url": format!("https://{}.slack.com/", st.team.domain),
        "domain": st.team.domain,
        "email_domain": st.team.email_domain,
        "icon": {
            "image_34": format!("{}/avatars/team_34.png", st.base_url),
            "image_44": format!("{}/avatars/team_44.png", st.base_url),
            "image_68": format!("{}/avatars/team_68.png", st.base_url),
            "image_88": format!("{}/avatars/team_88.png", st.base_url),
            "image_102": format!("{}/avatars/team_102.png", st.base_url),
            "image_132": format!("{}/avatars/team_132.png", st.base_url),
            "image_230": format!("{}/avatars/team_230.png", st.base_url),
            "image_default": true,
        },
        "is_verified": false,
        "avatar_base_url": format!("{}/avatars/", st.base_url),
    })
}

/// The app's `bot_profile` as attached to its messages.
pub fn bot_profile(st: &State) -> Value {
    json!({
        "id": st.app.bot_id,
        "deleted": false,
        "name": st.app.name,
        "updated": st.app.updated,
        "app_id": st.app.id,
        "icons": {
            "image_36": format!("{}/avatars/bot_36.png", st.base_url),
            "image_48": format!("{}/avatars/bot_48.png", st.base_url),
            "image_72": format!("{}/avatars/bot_72.png", st.base_url),
        },
        "team_id": st.team.id,
    })
}

/// A conversation object as `viewer` sees it (`is_member`, the DM's `user`).
/// `full` adds `num_members` (conversations.list, or `include_num_members`).
pub fn channel(st: &State, ch: &Channel, viewer: &str, num_members: bool) -> Value {
    let mut o = Map::new();
    match ch.kind {
        Kind::Im => {
            let other = ch
                .members
                .iter()
                .find(|m| *m != viewer)
                .or(ch.members.first())
                .cloned()
                .unwrap_or_default();
            let deleted = st.user(&other).is_some_and(|u| u.deleted);
            o.insert("id".into(), json!(ch.id));
            o.insert("created".into(), json!(ch.created));
            o.insert("is_archived".into(), json!(ch.archived));
            o.insert("is_im".into(), json!(true));
            o.insert("is_org_shared".into(), json!(false));
            o.insert("context_team_id".into(), json!(st.team.id));
            o.insert("updated".into(), json!(ch.updated_ms));
            o.insert("user".into(), json!(other));
            o.insert("is_user_deleted".into(), json!(deleted));
            o.insert("priority".into(), json!(0));
            return Value::Object(o);
        }
        Kind::Public | Kind::Private | Kind::Mpim => {}
    }
    let legacy_group = ch.kind == Kind::Private && ch.id.starts_with('G');
    let topic = |t: &crate::state::Topic| json!({"value": t.value, "creator": t.creator, "last_set": t.last_set});
    o.insert("id".into(), json!(ch.id));
    o.insert("name".into(), json!(ch.name));
    o.insert(
        "is_channel".into(),
        json!(matches!(ch.kind, Kind::Public | Kind::Private) && !legacy_group),
    );
    o.insert("is_group".into(), json!(legacy_group));
    o.insert("is_im".into(), json!(false));
    o.insert("is_mpim".into(), json!(ch.kind == Kind::Mpim));
    o.insert("is_private".into(), json!(ch.kind != Kind::Public));
    o.insert("created".into(), json!(ch.created));
    o.insert("is_archived".into(), json!(ch.archived));
    o.insert("is_general".into(), json!(ch.is_general));
    o.insert("unlinked".into(), json!(0));
    o.insert("name_normalized".into(), json!(ch.name));
    o.insert("is_shared".into(), json!(false));
    o.insert("is_org_shared".into(), json!(false));
    o.insert("is_pending_ext_shared".into(), json!(false));
    o.insert("pending_shared".into(), json!([]));
    o.insert("context_team_id".into(), json!(st.team.id));
    o.insert("updated".into(), json!(ch.updated_ms));
    o.insert("parent_conversation".into(), Value::Null);
    o.insert("creator".into(), json!(ch.creator));
    o.insert("is_ext_shared".into(), json!(false));
    o.insert("shared_team_ids".into(), json!([st.team.id]));
    o.insert("pending_connected_team_ids".into(), json!([]));
    if !viewer.is_empty() {
        o.insert("is_member".into(), json!(ch.is_member(viewer)));
    }
    o.insert("topic".into(), topic(&ch.topic));
    o.insert("purpose".into(), topic(&ch.purpose));
    o.insert("previous_names".into(), json!(ch.previous_names));
    if num_members {
        o.insert("num_members".into(), json!(ch.members.len()));
    }
    Value::Object(o)
}

/// A file object (`files.info`, `files[]` of a file_share message).
pub fn file(st: &State, f: &File) -> Value {
    let (filetype, mimetype, pretty) = file_type(&f.name);
    let url_name = url_escape(&f.name);
    let mut o = json!({
        "id": f.id,
        "created": f.created,
        "timestamp": f.created,
        "name": f.name,
        "title": f.title,
        "mimetype": mimetype,
        "filetype": filetype,
        "pretty_type": pretty,
        "user": f.user,
        "user_team": st.team.id,
        "editable": false,
        "size": f.bytes.as_ref().map_or(f.declared_len, |b| b.len() as u64),
        "mode": "hosted",
        "is_external": false,
        "external_type": "",
        "is_public": f.shares.iter().any(|(c, _)| st.channel(c).is_some_and(|c| c.kind == Kind::Public)),
        "public_url_shared": false,
        "display_as_bot": false,
        "username": "",
        "url_private": format!("{}/files-pri/{}-{}/{}", st.base_url, st.team.id, f.id, url_name),
        "url_private_download": format!("{}/files-pri/{}-{}/download/{}", st.base_url, st.team.id, f.id, url_name),
        "permalink": format!("https://{}.slack.com/files/{}/{}/{}", st.team.domain, f.user, f.id, url_name),
        "permalink_public": format!("https://slack-files.com/{}-{}-{}", st.team.id, f.id, &crate::ids::random_hex(10)),
        "comments_count": 0,
        "is_starred": false,
        "has_rich_preview": false,
        "file_access": "visible",
    });
    let mut public = Map::new();
    let mut private = Map::new();
    let (mut channels, mut groups, mut ims) = (Vec::new(), Vec::new(), Vec::new());
    for (c, ts) in &f.shares {
        let Some(ch) = st.channel(c) else { continue };
        let share = json!([{
            "reply_users": [],
            "reply_users_count": 0,
            "reply_count": 0,
            "ts": ts.to_string(),
            "channel_name": ch.name,
            "team_id": st.team.id,
            "share_user_id": f.user,
            "source": "UNKNOWN",
        }]);
        match ch.kind {
            Kind::Public => {
                public.insert(c.clone(), share);
                channels.push(c.clone());
            }
            Kind::Private => {
                private.insert(c.clone(), share);
                groups.push(c.clone());
            }
            Kind::Im | Kind::Mpim => {
                private.insert(c.clone(), share);
                ims.push(c.clone());
            }
        }
    }
    if !f.shares.is_empty() {
        let mut shares = Map::new();
        if !public.is_empty() {
            shares.insert("public".into(), Value::Object(public));
        }
        if !private.is_empty() {
            shares.insert("private".into(), Value::Object(private));
        }
        o["shares"] = Value::Object(shares);
    }
    o["channels"] = json!(channels);
    o["groups"] = json!(groups);
    o["ims"] = json!(ims);
    if let Some(alt) = &f.alt_txt {
        o["alt_txt"] = json!(alt);
    }
    if mimetype.starts_with("text/")
        && let Some(b) = &f.bytes
    {
        let text = String::from_utf8_lossy(b);
        o["preview"] = json!(text.chars().take(300).collect::<String>());
        o["lines"] = json!(text.lines().count());
        o["lines_more"] = json!(0);
        o["preview_is_truncated"] = json!(text.chars().count() > 300);
    }
    o
}

fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// (filetype, mimetype, pretty_type) from a file name's extension.
pub fn file_type(name: &str) -> (&'static str, &'static str, &'static str) {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => ("png", "image/png", "PNG"),
        "jpg" | "jpeg" => ("jpg", "image/jpeg", "JPEG"),
        "gif" => ("gif", "image/gif", "GIF"),
        "pdf" => ("pdf", "application/pdf", "PDF"),
        "txt" => ("text", "text/plain", "Plain Text"),
        "md" => ("markdown", "text/plain", "Markdown (raw)"),
        "json" => ("json", "application/json", "JSON"),
        "mp4" => ("mp4", "video/mp4", "MPEG 4 Video"),
        "zip" => ("zip", "application/zip", "Zip"),
        _ => ("binary", "application/octet-stream", "Binary"),
    }
}

/// A call object (`calls.info`, `call.v1` inside call blocks).
pub fn call(c: &Call) -> Value {
    let mut o = json!({
        "id": c.id,
        "date_start": c.date_start,
        "external_unique_id": c.external_unique_id,
        "join_url": c.join_url,
        "users": c.users,
        "channels": c.channels,
    });
    if let Some(v) = &c.external_display_id {
        o["external_display_id"] = json!(v);
    }
    if let Some(v) = &c.desktop_app_join_url {
        o["desktop_app_join_url"] = json!(v);
    }
    if let Some(v) = &c.title {
        o["title"] = json!(v);
    }
    if let Some(v) = c.date_end {
        o["date_end"] = json!(v);
    }
    o
}

/// An expanded call block (what Slack stores for `{"type":"call","call_id":…}`).
fn call_block(st: &State, block: &Value, c: &Call) -> Value {
    let mut b = json!({
        "type": "call",
        "call_id": c.id,
        "block_id": block.get("block_id").cloned().unwrap_or_else(|| json!(crate::ids::block_id())),
        "api_decoration_available": false,
        "call": {
            "v1": {
                "id": c.id,
                "app_id": st.app.id,
                "app_icon_urls": {
                    "image_32": format!("{}/avatars/app_32.png", st.base_url),
                    "image_72": format!("{}/avatars/app_72.png", st.base_url),
                },
                "date_start": c.date_start,
                "active_participants": c.users,
                "all_participants": c.all_users,
                "display_id": c.external_display_id.clone().unwrap_or_default(),
                "join_url": c.join_url,
                "name": c.title.clone().unwrap_or_default(),
                "created_by": c.created_by,
                "date_end": c.date_end.unwrap_or(0),
                "channels": c.channels,
                "is_dm_call": false,
                "was_rejected": false,
                "was_missed": false,
                "was_accepted": false,
                "has_ended": c.date_end.is_some(),
            },
            "media_backend_type": "platform_call",
        },
    });
    if let Some(u) = &c.desktop_app_join_url {
        b["call"]["v1"]["desktop_app_join_url"] = json!(u);
    }
    b
}

/// A huddle's `room` object.
pub fn room(st: &State, h: &Huddle) -> Value {
    json!({
        "id": h.id,
        "name": "",
        "media_server": "",
        "created_by": h.created_by,
        "date_start": h.date_start,
        "date_end": h.date_end,
        "participants": h.participants,
        "participant_history": h.history,
        "participants_camera_on": [],
        "participants_camera_off": [],
        "participants_screenshare_on": [],
        "participants_screenshare_off": [],
        "canvas_thread_ts": h.ts.to_string(),
        "thread_root_ts": h.ts.to_string(),
        "channels": [h.channel],
        "is_dm_call": false,
        "was_rejected": false,
        "was_missed": false,
        "was_accepted": false,
        "has_ended": h.date_end != 0,
        "background_id": "GRADIENT_03",
        "canvas_background": "GRADIENT_03",
        "is_prewarmed": false,
        "is_scheduled": false,
        "attached_file_ids": [],
        "media_backend_type": "free_willy",
        "display_id": "",
        "external_unique_id": h.external_unique_id,
        "app_id": "A00",
        "call_family": "huddle",
        "pending_invitees": {},
        "last_invite_status_by_user": {},
        "huddle_link": format!("https://app.slack.com/huddle/{}/{}", st.team.id, h.channel),
    })
}

/// A message as Slack renders it. Events add `channel`, `event_ts` and `channel_type`
/// on top (see [`State::emit_message_event`]).
pub fn message(st: &State, ch: &Channel, m: &Message, purpose: For) -> Map<String, Value> {
    let mut o = Map::new();
    let tombstone = m.subtype.as_deref() == Some("tombstone");
    o.insert("type".into(), json!("message"));
    if let Some(s) = &m.subtype {
        o.insert("subtype".into(), json!(s));
    }
    o.insert("text".into(), json!(m.text));
    match &m.author {
        Author::User(u) => {
            o.insert("user".into(), json!(u));
        }
        Author::Slackbot => {
            o.insert("user".into(), json!(SLACKBOT));
        }
        Author::Bot { username, icons } => {
            o.insert("bot_id".into(), json!(st.app.bot_id));
            o.insert("app_id".into(), json!(st.app.id));
            if username.is_some() || icons.is_some() {
                // Per-message identity (chat:write.customize): a classic bot_message.
                o.insert(
                    "username".into(),
                    json!(username.clone().unwrap_or_else(|| st.app.name.clone())),
                );
                if let Some(i) = icons {
                    o.insert("icons".into(), Value::Object(i.clone()));
                }
            } else {
                o.insert("user".into(), json!(st.app.bot_user_id));
                o.insert("bot_profile".into(), bot_profile(st));
            }
        }
    }
    o.insert("ts".into(), json!(m.ts.to_string()));
    // Real captures carry `team` on ordinary messages and huddle threads, not on
    // channel_join, file_share, bot_message or tombstones.
    if matches!(
        m.subtype.as_deref(),
        None | Some("huddle_thread" | "thread_broadcast")
    ) {
        o.insert("team".into(), json!(st.team.id));
    }
    if let Some(c) = &m.client_msg_id {
        o.insert("client_msg_id".into(), json!(c));
    }
    if let Some(blocks) = &m.blocks {
        let rendered: Vec<Value> = blocks
            .iter()
            .map(|b| {
                let call = b
                    .get("type")
                    .and_then(Value::as_str)
                    .filter(|t| *t == "call")
                    .and_then(|_| b.get("call_id").and_then(Value::as_str))
                    .and_then(|id| st.calls.get(id));
                match call {
                    Some(c) => call_block(st, b, c),
                    None => b.clone(),
                }
            })
            .collect();
        o.insert("blocks".into(), Value::Array(rendered));
    }
    if let Some(a) = &m.attachments {
        o.insert("attachments".into(), a.clone());
    }
    if !m.files.is_empty() {
        let files: Vec<Value> = m
            .files
            .iter()
            .filter_map(|id| st.files.get(id))
            .map(|f| file(st, f))
            .collect();
        o.insert("files".into(), Value::Array(files));
        o.insert("upload".into(), json!(true));
        o.insert("display_as_bot".into(), json!(false));
    }
    if let Some(t) = m.thread_ts {
        o.insert("thread_ts".into(), json!(t.to_string()));
        if m.is_reply() {
            if let Some(p) = &m.parent_user_id {
                o.insert("parent_user_id".into(), json!(p));
            }
            if m.subtype.as_deref() == Some("thread_broadcast")
                && let Some(root) = ch.messages.get(&t)
            {
                o.insert(
                    "root".into(),
                    Value::Object(message(st, ch, root, For::Api)),
                );
            }
        } else if !m.replies.is_empty() {
            let mut users: Vec<&String> = Vec::new();
            for (_, u) in &m.replies {
                if !users.contains(&u) {
                    users.push(u);
                }
            }
            o.insert("reply_count".into(), json!(m.replies.len()));
            o.insert("reply_users_count".into(), json!(users.len()));
            o.insert(
                "latest_reply".into(),
                json!(
                    m.replies
                        .last()
                        .map(|(t, _)| t.to_string())
                        .unwrap_or_default()
                ),
            );
            o.insert("reply_users".into(), json!(users));
            o.insert("is_locked".into(), json!(false));
            if purpose == For::Api {
                o.insert("subscribed".into(), json!(false));
            }
        }
    }
    if tombstone {
        o.insert("hidden".into(), json!(true));
    }
    if let Some((user, ts)) = &m.edited {
        // Edits by the app carry the bot id, as in the chat.update real capture.
        let who = if *user == st.app.bot_user_id {
            st.app.bot_id.clone()
        } else {
            user.clone()
        };
        o.insert("edited".into(), json!({"user": who, "ts": ts.to_string()}));
    }
    if !m.reactions.is_empty() {
        let r: Vec<Value> = m
            .reactions
            .iter()
            .map(|r| json!({"name": r.name, "users": r.users, "count": r.users.len()}))
            .collect();
        o.insert("reactions".into(), Value::Array(r));
    }
    if let Some(md) = &m.metadata {
        o.insert("metadata".into(), md.clone());
    }
    if let Some(inv) = &m.inviter {
        o.insert("inviter".into(), json!(inv));
    }
    if let Some(room_id) = &m.room
        && let Some(h) = st.huddles.get(room_id)
    {
        let mut h = h.clone();
        h.ts = m.ts;
        o.insert("channel".into(), json!(ch.id));
        o.insert("room".into(), room(st, &h));
        o.insert("no_notifications".into(), json!(true));
        o.insert(
            "permalink".into(),
            json!(format!(
                "https://{}.slack.com/call/{}",
                st.team.domain, h.id
            )),
        );
    }
    o
}

/// A permalink to a message (`chat.getPermalink`).
pub fn permalink(st: &State, ch: &Channel, m: &Message) -> String {
    let base = format!(
        "https://{}.slack.com/archives/{}/p{}",
        st.team.domain,
        ch.id,
        m.ts.permalink_form()
    );
    match m.thread_ts.filter(|_| m.is_reply()) {
        Some(t) => format!("{base}?thread_ts={t}&cid={}", ch.id),
        None => base,
    }
}
