//! `auth.test`, `team.info` and `apps.connections.open`: who a token is, which workspace it
//! belongs to, and the Socket Mode URL for app-level tokens.

use serde_json::json;

use super::{ApiResult, Ctx, Reply};
use crate::lock;
use crate::state::Principal;

// auth.test — https://docs.slack.dev/reference/methods/auth.test
/// Bot tokens report the bot user and `bot_id`; user tokens the person; app-level tokens
/// only the app (as the real `success.app_token` capture shows).
pub fn auth_test(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let st = lock(&ctx.sim.state);
    let url = format!("https://{}.slack.com/", st.team.domain);
    Ok(match &c.principal {
        Principal::App => Reply::json(json!({"app_name": st.app.name, "app_id": st.app.id})),
        Principal::Bot => {
            let name = st.user(&c.user).map(|u| u.name.clone()).unwrap_or_default();
            Reply::json(json!({
                "url": url,
                "team": st.team.name,
                "user": name,
                "team_id": st.team.id,
                "user_id": c.user,
                "bot_id": st.app.bot_id,
                "is_enterprise_install": false,
            }))
        }
        Principal::User(u) => {
            let name = st.user(u).map(|u| u.name.clone()).unwrap_or_default();
            Reply::json(json!({
                "url": url,
                "team": st.team.name,
                "user": name,
                "team_id": st.team.id,
                "user_id": u,
                "is_enterprise_install": false,
            }))
        }
    })
}

// team.info — https://docs.slack.dev/reference/methods/team.info
/// The caller's workspace; asking for another team gives `team_not_found`.
pub fn team_info(ctx: &Ctx<'_>) -> ApiResult {
    let st = lock(&ctx.sim.state);
    if let Some(t) = ctx.args.nonempty("team")
        && t != st.team.id
    {
        return Err("team_not_found".into());
    }
    Ok(Reply::json(json!({"team": crate::render::team(&st)})))
}

// apps.connections.open — https://docs.slack.dev/reference/methods/apps.connections.open
/// A one-time Socket Mode URL: `ws://127.0.0.1:PORT/link/?ticket=…&app_id=…`.
pub fn apps_connections_open(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    c.require("connections:write")?;
    let mut st = lock(&ctx.sim.state);
    let ticket = crate::ids::uuid_v4();
    let now = crate::ids::now_secs();
    st.tickets.retain(|_, exp| *exp > now);
    st.tickets.insert(ticket.clone(), now + 300);
    let ws_base = st.base_url.replacen("http://", "ws://", 1);
    Ok(Reply::json(json!({
        "url": format!("{ws_base}/link/?ticket={ticket}&app_id={}", st.app.id),
    })))
}
