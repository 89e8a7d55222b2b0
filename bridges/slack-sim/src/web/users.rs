//! `users.info`, `users.list` and `users.profile.get`: people, bots and deleted accounts with
//! their profiles and avatars.

use serde_json::{Value, json};

use super::{ApiResult, Ctx, Reply, decode_cursor, encode_cursor, limit};
use crate::lock;
use crate::render;

// users.info — https://docs.slack.dev/reference/methods/users.info
/// One user; `user_not_found` for unknown ids.
pub fn users_info(ctx: &Ctx<'_>) -> ApiResult {
    let st = lock(&ctx.sim.state);
    let id = ctx.args.nonempty("user").ok_or("user_not_found")?;
    let u = st.user(&id).ok_or("user_not_found")?;
    let mut user = render::user(&st, u);
    if ctx.args.bool("include_locale") == Some(true) {
        user["locale"] = json!("en-US");
    }
    Ok(Reply::json(json!({"user": user})))
}

// users.list — https://docs.slack.dev/reference/methods/users.list
/// Everyone (Slackbot, bots and deleted users included), paginated by cursor; the last page
/// carries `next_cursor: ""`.
pub fn users_list(ctx: &Ctx<'_>) -> ApiResult {
    let st = lock(&ctx.sim.state);
    let limit = limit(ctx.args, 1000, 1000, false)?;
    let start = match ctx.args.nonempty("cursor") {
        Some(c) => {
            let id = decode_cursor(&c, "user:")?;
            st.users
                .iter()
                .position(|u| u.id == id)
                .ok_or("invalid_cursor")?
        }
        None => 0,
    };
    let page: Vec<Value> = st
        .users
        .iter()
        .skip(start)
        .take(limit)
        .map(|u| {
            let mut v = render::user(&st, u);
            if ctx.args.bool("include_locale") == Some(true) {
                v["locale"] = json!("en-US");
            }
            v
        })
        .collect();
    let next = st
        .users
        .get(start + limit)
        .map(|u| encode_cursor(&format!("user:{}", u.id)))
        .unwrap_or_default();
    Ok(Reply::json(json!({
        "members": page,
        "cache_ts": crate::ids::now_secs(),
        "response_metadata": {"next_cursor": next},
    })))
}

// users.profile.get — https://docs.slack.dev/reference/methods/users.profile.get
/// A profile; the caller's own when `user` is absent.
pub fn users_profile_get(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let st = lock(&ctx.sim.state);
    let id = ctx.args.nonempty("user").unwrap_or_else(|| c.user.clone());
    let u = st.user(&id).ok_or("user_not_found")?;
    Ok(Reply::json(json!({"profile": render::profile(&st, u)})))
}
