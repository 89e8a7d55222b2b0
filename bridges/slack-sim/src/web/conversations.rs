//! `conversations.*`: listing, info, members, history, thread replies, joining, opening DMs.
//!
//! Visibility follows Slack: public channels are visible to every token; private channels,
//! DMs and group DMs only to members (`channel_not_found` otherwise). Reading a public
//! channel's history with a bot token requires membership (`not_in_channel`); user tokens
//! may read public channels they are not in. Scopes depend on the conversation type
//! (`channels:`, `groups:`, `im:`, `mpim:` + `read` / `history`).

use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, Caller, Ctx, Reply, decode_cursor, encode_cursor, limit,
    require_kind_scope, visible_channel,
};
use crate::ids::Ts;
use crate::lock;
use crate::render::{self, For};
use crate::state::{Channel, Kind, Message, State};

fn parse_types(s: Option<String>) -> Result<Vec<Kind>, ApiError> {
    let s = s.unwrap_or_else(|| "public_channel".into());
    let mut out = Vec::new();
    for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let k = match t {
            "public_channel" => Kind::Public,
            "private_channel" => Kind::Private,
            "im" => Kind::Im,
            "mpim" => Kind::Mpim,
            _ => return Err("invalid_types".into()),
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    if out.is_empty() {
        out.push(Kind::Public);
    }
    Ok(out)
}

// conversations.list — https://docs.slack.dev/reference/methods/conversations.list
/// Conversations of the requested `types` the caller can see, cursor-paginated
/// (`next_cursor` is `""` on the last page).
pub fn list(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let types = parse_types(ctx.args.str("types"))?;
    for k in &types {
        c.require(&format!("{}:read", k.scope_prefix()))?;
    }
    let limit = limit(ctx.args, 100, 1000, true)?;
    let exclude_archived = ctx.args.bool("exclude_archived") == Some(true);
    let st = lock(&ctx.sim.state);
    let all: Vec<&Channel> = st
        .channels
        .iter()
        .filter(|ch| types.contains(&ch.kind))
        .filter(|ch| super::can_see(c, ch))
        .filter(|ch| !(exclude_archived && ch.archived))
        .collect();
    let start = match ctx.args.nonempty("cursor") {
        Some(cur) => {
            let id = decode_cursor(&cur, "team:")?;
            all.iter()
                .position(|ch| ch.id == id)
                .ok_or("invalid_cursor")?
        }
        None => 0,
    };
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|ch| render::channel(&st, ch, &c.user, ch.kind != Kind::Im))
        .collect();
    let next = all
        .get(start + limit)
        .map(|ch| encode_cursor(&format!("team:{}", ch.id)))
        .unwrap_or_default();
    Ok(Reply::json(
        json!({"channels": page, "response_metadata": {"next_cursor": next}}),
    ))
}

// conversations.info — https://docs.slack.dev/reference/methods/conversations.info
/// One conversation as the caller sees it.
pub fn info(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let st = lock(&ctx.sim.state);
    let ch = visible_channel(&st, c, ctx.args.nonempty("channel").as_deref())?;
    require_kind_scope(c, ch, "read")?;
    let mut obj = render::channel(
        &st,
        ch,
        &c.user,
        ctx.args.bool("include_num_members") == Some(true),
    );
    if ch.kind == Kind::Im {
        obj["is_open"] = json!(true);
        obj["last_read"] = json!("0000000000.000000");
    }
    if ctx.args.bool("include_locale") == Some(true) {
        obj["locale"] = json!("en-US");
    }
    Ok(Reply::json(json!({"channel": obj})))
}

// conversations.members — https://docs.slack.dev/reference/methods/conversations.members
/// Member ids, cursor-paginated.
pub fn members(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let limit = limit(ctx.args, 100, 1000, true)?;
    let st = lock(&ctx.sim.state);
    let ch = visible_channel(&st, c, ctx.args.nonempty("channel").as_deref())?;
    require_kind_scope(c, ch, "read")?;
    let start = match ctx.args.nonempty("cursor") {
        Some(cur) => {
            let id = decode_cursor(&cur, "{user_id: ")?;
            let id = id.strip_suffix('}').ok_or("invalid_cursor")?;
            ch.members
                .iter()
                .position(|m| m == id)
                .ok_or("invalid_cursor")?
        }
        None => 0,
    };
    let page: Vec<&String> = ch.members.iter().skip(start).take(limit).collect();
    let next = ch
        .members
        .get(start + limit)
        .map(|m| encode_cursor(&format!("{{user_id: {m}}}")))
        .unwrap_or_default();
    Ok(Reply::json(
        json!({"members": page, "response_metadata": {"next_cursor": next}}),
    ))
}

/// Reading messages: bots must be members even of public channels.
fn readable<'s>(
    st: &'s State,
    c: &Caller,
    channel: Option<String>,
) -> Result<&'s Channel, ApiError> {
    let ch = visible_channel(st, c, channel.as_deref())?;
    require_kind_scope(c, ch, "history")?;
    if c.is_bot() && !ch.is_member(&c.user) {
        return Err("not_in_channel".into());
    }
    Ok(ch)
}

fn ts_arg(ctx: &Ctx<'_>, name: &str, err: &'static str) -> Result<Option<Ts>, ApiError> {
    match ctx.args.nonempty(name) {
        None => Ok(None),
        Some(s) => Ts::parse(&s).map(Some).ok_or_else(|| err.into()),
    }
}

/// (oldest, latest, inclusive) filter.
fn in_range(ts: Ts, oldest: Option<Ts>, latest: Option<Ts>, inclusive: bool) -> bool {
    let lo = oldest.is_none_or(|o| if inclusive { ts >= o } else { ts > o });
    let hi = latest.is_none_or(|l| if inclusive { ts <= l } else { ts < l });
    lo && hi
}

fn cursor_ts(ctx: &Ctx<'_>) -> Result<Option<Ts>, ApiError> {
    match ctx.args.nonempty("cursor") {
        None => Ok(None),
        Some(c) => {
            let raw = decode_cursor(&c, "next_ts:")?;
            if raw.len() < 7 || !raw.bytes().all(|b| b.is_ascii_digit()) {
                return Err("invalid_cursor".into());
            }
            raw.parse::<u64>()
                .map(|v| Some(Ts(v)))
                .map_err(|_| "invalid_cursor".into())
        }
    }
}

fn render_all(st: &State, ch: &Channel, msgs: &[&Message]) -> Vec<Value> {
    msgs.iter()
        .map(|m| Value::Object(render::message(st, ch, m, For::Api)))
        .collect()
}

// conversations.history — https://docs.slack.dev/reference/methods/conversations.history
/// Top-level messages (and thread broadcasts), newest first, within `oldest`/`latest`;
/// `has_more` plus `response_metadata.next_cursor` while more remain.
pub fn history(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let st = lock(&ctx.sim.state);
    let ch = readable(&st, c, ctx.args.nonempty("channel"))?;
    let oldest = ts_arg(ctx, "oldest", "invalid_ts_oldest")?;
    let latest = ts_arg(ctx, "latest", "invalid_ts_latest")?;
    let inclusive = ctx.args.bool("inclusive") == Some(true);
    let limit = limit(ctx.args, 100, 999, false)?;
    let cursor = cursor_ts(ctx)?;
    let all: Vec<&Message> = ch
        .messages
        .values()
        .rev()
        .filter(|m| !m.is_reply() || m.subtype.as_deref() == Some("thread_broadcast"))
        .filter(|m| in_range(m.ts, oldest, latest, inclusive))
        .filter(|m| cursor.is_none_or(|cur| m.ts <= cur))
        .collect();
    let page: Vec<&Message> = all.iter().take(limit).copied().collect();
    let has_more = all.len() > limit;
    let mut body = json!({
        "messages": render_all(&st, ch, &page),
        "has_more": has_more,
        "pin_count": 0,
        "channel_actions_ts": null,
        "channel_actions_count": 0,
    });
    if has_more {
        let next = encode_cursor(&format!("next_ts:{}", all[limit].ts.permalink_form()));
        body["response_metadata"] = json!({"next_cursor": next});
    }
    Ok(Reply::json(body))
}

// conversations.replies — https://docs.slack.dev/reference/methods/conversations.replies
/// A thread: the parent, then replies oldest first. `ts` may name the parent or any reply.
pub fn replies(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let st = lock(&ctx.sim.state);
    let ch = readable(&st, c, ctx.args.nonempty("channel"))?;
    let ts = ctx
        .args
        .nonempty("ts")
        .and_then(|s| Ts::parse(&s))
        .ok_or("thread_not_found")?;
    let m = ch.messages.get(&ts).ok_or("thread_not_found")?;
    let root_ts = m.thread_ts.unwrap_or(m.ts);
    let root = ch.messages.get(&root_ts);
    let oldest = ts_arg(ctx, "oldest", "invalid_ts_oldest")?;
    let latest = ts_arg(ctx, "latest", "invalid_ts_latest")?;
    let inclusive = ctx.args.bool("inclusive") == Some(true);
    let limit = limit(ctx.args, 1000, 1000, false)?;
    let cursor = cursor_ts(ctx)?;
    let mut all: Vec<&Message> = Vec::new();
    if cursor.is_none()
        && let Some(r) = root
    {
        all.push(r);
    }
    all.extend(
        ch.messages
            .values()
            .filter(|x| x.thread_ts == Some(root_ts) && x.ts != root_ts)
            .filter(|x| in_range(x.ts, oldest, latest, inclusive))
            .filter(|x| cursor.is_none_or(|cur| x.ts >= cur)),
    );
    if all.is_empty() {
        all.push(m);
    }
    let page: Vec<&Message> = all.iter().take(limit).copied().collect();
    let has_more = all.len() > limit;
    let mut body = json!({"messages": render_all(&st, ch, &page), "has_more": has_more});
    if has_more {
        let next = encode_cursor(&format!("next_ts:{}", all[limit].ts.permalink_form()));
        body["response_metadata"] = json!({"next_cursor": next});
    }
    Ok(Reply::json(body))
}

// conversations.join — https://docs.slack.dev/reference/methods/conversations.join
/// Joins a public channel; already a member → `warning: already_in_channel`.
pub fn join(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let channel = ctx.args.nonempty("channel").ok_or("channel_not_found")?;
    ctx.sim.mutate(|st, out| {
        let ch = st.channel(&channel).ok_or("channel_not_found")?;
        if ch.kind != Kind::Public {
            return Err(if ch.is_member(&c.user) || ch.kind == Kind::Private {
                "method_not_supported_for_channel_type".into()
            } else {
                "channel_not_found".into()
            });
        }
        if ch.archived {
            return Err("is_archived".into());
        }
        let joined = st.join(&channel, &c.user, None, out);
        let ch = st.channel(&channel).ok_or("channel_not_found")?;
        let reply = Reply::json(json!({"channel": render::channel(st, ch, &c.user, false)}));
        Ok(if joined {
            reply
        } else {
            reply.warn("already_in_channel", "[WARN] Already in channel")
        })
    })
}

// conversations.open — https://docs.slack.dev/reference/methods/conversations.open
/// Opens (or finds) a DM or group DM with `users`, or resumes one by `channel`.
pub fn open(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let return_im = ctx.args.bool("return_im") == Some(true);
    if let Some(id) = ctx.args.nonempty("channel") {
        let st = lock(&ctx.sim.state);
        let ch = st.channel(&id).ok_or("channel_not_found")?;
        if !matches!(ch.kind, Kind::Im | Kind::Mpim) {
            return Err("method_not_supported_for_channel_type".into());
        }
        if !ch.is_member(&c.user) {
            return Err("channel_not_found".into());
        }
        let chan = if return_im {
            render::channel(&st, ch, &c.user, false)
        } else {
            json!({"id": ch.id})
        };
        return Ok(Reply::json(
            json!({"no_op": true, "already_open": true, "channel": chan}),
        ));
    }
    let users = ctx
        .args
        .nonempty("users")
        .ok_or("users_list_not_supplied")?;
    let mut ids: Vec<String> = Vec::new();
    {
        let st = lock(&ctx.sim.state);
        for u in users.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let user = st.user(u).ok_or("user_not_found")?;
            if user.deleted {
                return Err("user_disabled".into());
            }
            if user.id != c.user && !ids.contains(&user.id) {
                ids.push(user.id.clone());
            }
        }
    }
    if ids.len() > 8 {
        return Err("too_many_users".into());
    }
    let scope = if ids.len() <= 1 {
        "im:write"
    } else {
        "mpim:write"
    };
    c.require(scope)?;
    ctx.sim.mutate(|st, _out| {
        let (id, existed) = match ids.len() {
            0 => st.open_im(&c.user, &c.user),
            1 => st.open_im(&c.user, &ids[0]),
            _ => {
                let mut all = vec![c.user.clone()];
                all.extend(ids.iter().cloned());
                st.open_mpim(&all)
            }
        };
        let ch = st.channel(&id).ok_or("channel_not_found")?;
        let chan = if return_im {
            render::channel(st, ch, &c.user, false)
        } else {
            json!({"id": id})
        };
        let mut body = json!({"channel": chan});
        if existed {
            body["no_op"] = json!(true);
            body["already_open"] = json!(true);
        }
        Ok(Reply::json(body))
    })
}
