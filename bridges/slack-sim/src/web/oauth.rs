//! OAuth v2 installation (<https://docs.slack.dev/authentication/installing-with-oauth>):
//! `GET /oauth/v2/authorize` shows an approval page; approving as a chosen person
//! (`/oauth/v2/authorize/approve?…&user=U…`, link or form POST) redirects to `redirect_uri`
//! with `code` and `state`; `oauth.v2.access` exchanges the code for the bot token and the
//! person's user token (`authed_user`).
//!
//! The approval page stands in for Slack's consent screen, where a real browser session
//! would say who approves; tests pick the person explicitly.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::{ApiError, ApiResult, Ctx, Reply};
use crate::ids::{bot_token, now_secs, random_lower, user_token};
use crate::state::{Grant, Principal, State, Token};
use crate::{Sim, lock};

fn split_scopes(s: Option<&String>) -> Vec<String> {
    s.map(|s| {
        s.split([',', ' '])
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn error_page(code: &str) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        format!(
            "<!DOCTYPE html><html><body><h1>Something went wrong</h1><p id=\"error\">{}</p></body></html>",
            html_escape(code)
        ),
    )
}

fn params(query: Option<&str>, body: &[u8]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for src in [query.map(str::as_bytes).unwrap_or_default(), body] {
        if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(src) {
            map.extend(pairs);
        }
    }
    map
}

/// Validates client_id and redirect_uri against the app.
fn check_client(st: &State, p: &HashMap<String, String>) -> Result<(), &'static str> {
    if p.get("client_id").map(String::as_str) != Some(st.app.client_id.as_str()) {
        return Err("invalid_client_id");
    }
    if let Some(uri) = p.get("redirect_uri")
        && !st.app.redirect_urls.is_empty()
        && !st
            .app
            .redirect_urls
            .iter()
            .any(|r| uri.starts_with(r.as_str()))
    {
        return Err("bad_redirect_uri");
    }
    Ok(())
}

/// `GET /oauth/v2/authorize` — the consent page, listing whom to approve as.
pub async fn authorize(AxState(sim): AxState<Arc<Sim>>, RawQuery(query): RawQuery) -> Response {
    let p = params(query.as_deref(), &[]);
    let st = lock(&sim.state);
    if let Err(code) = check_client(&st, &p) {
        return error_page(code);
    }
    let keep: Vec<(String, String)> = ["client_id", "scope", "user_scope", "redirect_uri", "state"]
        .iter()
        .filter_map(|k| p.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect();
    let base_q = serde_urlencoded::to_string(&keep).unwrap_or_default();
    let hidden: String = keep
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    let mut people = String::new();
    for u in st
        .users
        .iter()
        .filter(|u| !u.is_bot && !u.deleted && u.id != crate::state::SLACKBOT)
    {
        people.push_str(&format!(
            "<li><a class=\"approve\" href=\"/oauth/v2/authorize/approve?{base_q}&amp;user={id}\">Allow as {name} ({id})</a></li>",
            id = html_escape(&u.id),
            name = html_escape(&u.real_name),
        ));
    }
    let scopes = html_escape(p.get("scope").map(String::as_str).unwrap_or(""));
    let user_scopes = html_escape(p.get("user_scope").map(String::as_str).unwrap_or(""));
    html(
        StatusCode::OK,
        format!(
            "<!DOCTYPE html><html><head><title>{app} is requesting permission to access the {team} Slack workspace</title></head><body>\
             <h1>{app} is requesting permission to access the {team} Slack workspace</h1>\
             <p>Bot scopes: <code id=\"scope\">{scopes}</code></p><p>User scopes: <code id=\"user_scope\">{user_scopes}</code></p>\
             <ul>{people}</ul>\
             <form method=\"post\" action=\"/oauth/v2/authorize/approve\">{hidden}<input name=\"user\" placeholder=\"U…\"><button type=\"submit\">Allow</button></form>\
             </body></html>",
            app = html_escape(&st.app.name),
            team = html_escape(&st.team.name),
        ),
    )
}

/// `GET|POST /oauth/v2/authorize/approve` — approve as `user` (or `deny=1`): 302 to the
/// redirect URI with `code` and `state` (or `error=access_denied`).
pub async fn approve(
    AxState(sim): AxState<Arc<Sim>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let p = params(query.as_deref(), &body);
    let mut st = lock(&sim.state);
    if let Err(code) = check_client(&st, &p) {
        return error_page(code);
    }
    let redirect = p
        .get("redirect_uri")
        .cloned()
        .or_else(|| st.app.redirect_urls.first().cloned());
    let state_param = p.get("state").cloned().unwrap_or_default();
    let denied = p.get("deny").is_some_and(|v| v == "1" || v == "true");
    let result: Vec<(&str, String)> = if denied {
        vec![("error", "access_denied".into()), ("state", state_param)]
    } else {
        let Some(user) = p
            .get("user")
            .and_then(|u| st.user(u))
            .filter(|u| !u.is_bot && !u.deleted)
        else {
            return error_page("invalid_user");
        };
        let code = format!("{}.{}.{}", now_secs(), random_lower(12), random_lower(40));
        let grant = Grant {
            user: user.id.clone(),
            scope: split_scopes(p.get("scope")),
            user_scope: split_scopes(p.get("user_scope")),
            redirect_uri: p.get("redirect_uri").cloned(),
            expires: now_secs() + 600,
        };
        st.grants.insert(code.clone(), grant);
        vec![("code", code), ("state", state_param)]
    };
    let Some(redirect) = redirect else {
        // No redirect URL at all: show the code, as a manual install would.
        let q = serde_urlencoded::to_string(&result).unwrap_or_default();
        return html(
            StatusCode::OK,
            format!(
                "<!DOCTYPE html><html><body><p id=\"result\">{}</p></body></html>",
                html_escape(&q)
            ),
        );
    };
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let location = format!(
        "{redirect}{sep}{}",
        serde_urlencoded::to_string(&result).unwrap_or_default()
    );
    let mut r = (StatusCode::FOUND, "").into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn basic_credentials(ctx: &Ctx<'_>) -> Option<(String, String)> {
    let auth = ctx.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = auth.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

// oauth.v2.access — https://docs.slack.dev/reference/methods/oauth.v2.access
/// Exchanges a code for the bot token (top level) and the person's token (`authed_user`).
pub fn access(ctx: &Ctx<'_>) -> ApiResult {
    let (client_id, client_secret) = match basic_credentials(ctx) {
        Some(c) => c,
        None => (
            ctx.args.str("client_id").unwrap_or_default(),
            ctx.args.str("client_secret").unwrap_or_default(),
        ),
    };
    if ctx
        .args
        .str("grant_type")
        .is_some_and(|g| g != "authorization_code")
    {
        return Err("unsupported_grant_type".into());
    }
    let mut st = lock(&ctx.sim.state);
    if client_id != st.app.client_id {
        return Err("invalid_client_id".into());
    }
    if client_secret != st.app.client_secret {
        return Err("bad_client_secret".into());
    }
    let code = ctx.args.nonempty("code").ok_or("invalid_code")?;
    let grant = st.grants.remove(&code).ok_or("invalid_code")?;
    if grant.expires < now_secs() {
        return Err("invalid_code".into());
    }
    if grant.redirect_uri.is_some() && ctx.args.str("redirect_uri") != grant.redirect_uri {
        return Err(ApiError::from("bad_redirect_uri"));
    }
    let mut body = json!({
        "app_id": st.app.id,
        "authed_user": {"id": grant.user},
        "team": {"id": st.team.id, "name": st.team.name},
        "enterprise": null,
        "is_enterprise_install": false,
    });
    if !grant.scope.is_empty() {
        let existing = st
            .tokens
            .iter()
            .find(|(_, t)| t.principal == Principal::Bot && !t.revoked)
            .map(|(k, _)| k.clone());
        let token = existing.unwrap_or_else(|| {
            let t = bot_token();
            st.tokens.insert(
                t.clone(),
                Token {
                    principal: Principal::Bot,
                    scopes: Vec::new(),
                    revoked: false,
                },
            );
            t
        });
        let scopes = {
            let t = st.tokens.get_mut(&token).ok_or("internal_error")?;
            for s in &grant.scope {
                if !t.scopes.contains(s) {
                    t.scopes.push(s.clone());
                }
            }
            t.scopes.sort();
            t.scopes.join(",")
        };
        body["access_token"] = json!(token);
        body["token_type"] = json!("bot");
        body["scope"] = json!(scopes);
        body["bot_user_id"] = json!(st.app.bot_user_id);
    }
    if !grant.user_scope.is_empty() {
        let token = user_token();
        let mut scopes = grant.user_scope.clone();
        scopes.sort();
        scopes.dedup();
        st.tokens.insert(
            token.clone(),
            Token {
                principal: Principal::User(grant.user.clone()),
                scopes: scopes.clone(),
                revoked: false,
            },
        );
        body["authed_user"] = json!({
            "id": grant.user,
            "scope": scopes.join(","),
            "access_token": token,
            "token_type": "user",
        });
    }
    Ok(Reply::json(body))
}
