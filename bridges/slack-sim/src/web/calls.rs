//! The Calls API: `calls.add`, `calls.update`, `calls.end`, `calls.info`,
//! `calls.participants.add` / `.remove`. A registered call shows in messages through a call
//! block (`{"type":"call","call_id":"R…"}`), which Slack expands to the full `call.v1`
//! object (`conformance/slack/calls/call_block.expanded.*.json`).

use serde_json::{Value, json};

use super::{ApiError, ApiResult, Ctx, Reply};
use crate::ids::{now_secs, slack_id};
use crate::state::{Call, State};
use crate::{lock, render};

fn missing(field: &str) -> ApiError {
    ApiError::InvalidArguments(vec![format!("[ERROR] missing required field: {field}")])
}

/// Parses `users` (JSON array of `{slack_id}` or `{external_id, display_name, avatar_url}`).
fn parse_users(st: &State, ctx: &Ctx<'_>, required: bool) -> Result<Vec<Value>, ApiError> {
    let v = match ctx.args.json("users") {
        None if required => return Err("missing_argument".into()),
        None => return Ok(Vec::new()),
        Some(Err(())) => return Err("bad_users".into()),
        Some(Ok(v)) => v,
    };
    let Value::Array(items) = v else {
        return Err("bad_users".into());
    };
    let mut out = Vec::new();
    for u in items {
        let Value::Object(o) = u else {
            return Err("bad_users".into());
        };
        if let Some(id) = o.get("slack_id").and_then(Value::as_str) {
            if st.user(id).is_none() {
                return Err("user_not_found".into());
            }
            out.push(json!({"slack_id": id}));
        } else if o.get("external_id").and_then(Value::as_str).is_some() {
            out.push(Value::Object(o));
        } else {
            return Err("bad_users".into());
        }
    }
    Ok(out)
}

fn same_user(a: &Value, b: &Value) -> bool {
    let key = |v: &Value| {
        v.get("slack_id")
            .or_else(|| v.get("external_id"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    key(a).is_some() && key(a) == key(b)
}

// calls.add — https://docs.slack.dev/reference/methods/calls.add
/// Registers a call and returns it (`R…` id).
pub fn add(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let external = ctx
        .args
        .nonempty("external_unique_id")
        .ok_or_else(|| missing("external_unique_id"))?;
    let join_url = ctx
        .args
        .nonempty("join_url")
        .ok_or_else(|| missing("join_url"))?;
    let date_start = match ctx.args.int("date_start") {
        None => now_secs(),
        Some(Ok(n)) if n > 0 => n,
        Some(_) => return Err("invalid_start_time".into()),
    };
    let mut st = lock(&ctx.sim.state);
    let created_by = match ctx.args.nonempty("created_by") {
        Some(u) if st.user(&u).is_some() => u,
        Some(_) => return Err("invalid_created_by".into()),
        None if c.is_bot() => return Err(missing("created_by")),
        None => c.user.clone(),
    };
    let users = parse_users(&st, ctx, false)?;
    let call = Call {
        id: slack_id("R"),
        external_unique_id: external,
        external_display_id: ctx.args.nonempty("external_display_id"),
        join_url,
        desktop_app_join_url: ctx.args.nonempty("desktop_app_join_url"),
        title: ctx.args.nonempty("title"),
        created_by,
        date_start,
        date_end: None,
        all_users: users.clone(),
        users,
        channels: Vec::new(),
    };
    let body = json!({"call": render::call(&call)});
    st.calls.insert(call.id.clone(), call);
    Ok(Reply::json(body))
}

fn with_call(
    ctx: &Ctx<'_>,
    active: bool,
    f: impl FnOnce(&State, &mut Call) -> Result<(), ApiError>,
) -> ApiResult {
    let id = ctx.args.nonempty("id").ok_or("invalid_call_id")?;
    let mut st = lock(&ctx.sim.state);
    let mut call = st.calls.get(&id).cloned().ok_or("invalid_call_id")?;
    if active && call.date_end.is_some() {
        return Err("inactive_call".into());
    }
    f(&st, &mut call)?;
    let body = json!({"call": render::call(&call)});
    st.calls.insert(id, call);
    Ok(Reply::json(body))
}

// calls.update — https://docs.slack.dev/reference/methods/calls.update
/// Changes title and join URLs.
pub fn update(ctx: &Ctx<'_>) -> ApiResult {
    with_call(ctx, false, |_, call| {
        if let Some(t) = ctx.args.nonempty("title") {
            call.title = Some(t);
        }
        if let Some(u) = ctx.args.nonempty("join_url") {
            call.join_url = u;
        }
        if let Some(u) = ctx.args.nonempty("desktop_app_join_url") {
            call.desktop_app_join_url = Some(u);
        }
        Ok(())
    })
}

// calls.end — https://docs.slack.dev/reference/methods/calls.end
/// Ends a call (`date_end` = start + `duration`, or now); `inactive_call` when already ended.
pub fn end(ctx: &Ctx<'_>) -> ApiResult {
    with_call(ctx, true, |_, call| {
        let end = match ctx.args.int("duration") {
            Some(Ok(d)) if d >= 0 => call.date_start + d,
            _ => now_secs(),
        };
        call.date_end = Some(end);
        call.users.clear();
        Ok(())
    })
}

// calls.info — https://docs.slack.dev/reference/methods/calls.info
/// A call.
pub fn info(ctx: &Ctx<'_>) -> ApiResult {
    with_call(ctx, false, |_, _| Ok(()))
}

// calls.participants.add — https://docs.slack.dev/reference/methods/calls.participants.add
/// Adds participants.
pub fn participants_add(ctx: &Ctx<'_>) -> ApiResult {
    with_call(ctx, true, |st, call| {
        for u in parse_users(st, ctx, true)? {
            if !call.users.iter().any(|x| same_user(x, &u)) {
                call.users.push(u.clone());
            }
            if !call.all_users.iter().any(|x| same_user(x, &u)) {
                call.all_users.push(u);
            }
        }
        Ok(())
    })
}

// calls.participants.remove — https://docs.slack.dev/reference/methods/calls.participants.remove
/// Removes participants.
pub fn participants_remove(ctx: &Ctx<'_>) -> ApiResult {
    with_call(ctx, true, |st, call| {
        for u in parse_users(st, ctx, true)? {
            call.users.retain(|x| !same_user(x, &u));
        }
        Ok(())
    })
}
