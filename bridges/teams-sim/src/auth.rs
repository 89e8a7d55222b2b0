//! The Microsoft identity platform (v2.0 endpoints), as far as a bridge uses it.
//!
//! * Client credentials:
//!   <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>
//! * Device code: <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code>
//! * Refresh tokens:
//!   <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#refresh-the-access-token>
//!   — here every redemption rotates the refresh token and the old one stops working.
//!
//! Tokens are opaque random strings mapped to (app | delegated user, scopes, expiry); they
//! are not JWTs (no id_token either). Errors use the identity platform's shape:
//! `{"error","error_description":"AADSTSnnnn: …","error_codes":[n],"timestamp","trace_id",
//! "correlation_id"}` with status 400 (401 for a bad client secret).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::seed::DEFAULT_DELEGATED_SCOPES;
use crate::state::{DeviceCode, Principal, Refresh};
use crate::util::{guid, iso_secs, json_response, lock, now_ms, opaque};
use crate::{Sim, SimError};

/// Identity-platform routes.
pub fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(devicecode))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route(
            "/devicelogin",
            get(devicelogin_page).post(devicelogin_submit),
        )
}

/// An identity-platform error answer.
fn aad_error(status: StatusCode, error: &str, code: u64, description: &str) -> Response {
    let trace = guid();
    json_response(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {trace} Timestamp: {}Z", iso_secs(now_ms()).replace('T', " ")),
            "error_codes": [code],
            "timestamp": format!("{}Z", iso_secs(now_ms()).replace('T', " ")),
            "trace_id": trace,
            "correlation_id": guid(),
        }),
    )
}

fn bad(error: &str, code: u64, description: &str) -> Response {
    aad_error(StatusCode::BAD_REQUEST, error, code, description)
}

/// Checks the `{tenant}` path segment.
fn tenant_ok(sim: &Sim, tenant: &str) -> Result<(), Box<Response>> {
    let st = lock(&sim.state);
    if tenant.eq_ignore_ascii_case(&st.tenant_id)
        || ["common", "organizations"].contains(&tenant.to_ascii_lowercase().as_str())
    {
        Ok(())
    } else {
        Err(Box::new(bad(
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        )))
    }
}

/// Strips a resource prefix: `https://graph.microsoft.com/Chat.ReadWrite` → `Chat.ReadWrite`.
fn short_scope(s: &str) -> String {
    s.rsplit_once('/').map_or(s, |(_, tail)| tail).to_string()
}

/// The delegated scopes a request for `scope` grants.
fn granted_scopes(requested: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in requested.split_whitespace() {
        let s = short_scope(s);
        if ["offline_access", "openid", "profile", "email"].contains(&s.as_str()) {
            continue;
        }
        if s == ".default" {
            for d in DEFAULT_DELEGATED_SCOPES {
                if !out.iter().any(|x| x == d) {
                    out.push((*d).to_string());
                }
            }
        } else if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() {
        out.push("User.Read".into());
    }
    out
}

/// `POST /{tenant}/oauth2/v2.0/devicecode` —
/// <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code#device-authorization-request>
async fn devicecode(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    if let Err(r) = tenant_ok(&sim, &tenant) {
        return *r;
    }
    let Ok(Form(f)) = form else {
        return bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(client_id) = f.get("client_id") else {
        return bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(scope) = f.get("scope") else {
        return bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    let mut st = lock(&sim.state);
    if *client_id != st.client_id {
        let t = st.tenant_id.clone();
        return bad(
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{t}'."
            ),
        );
    }
    let device_code = opaque(64);
    let user_code = opaque(9).to_ascii_uppercase().replace(['-', '_'], "X");
    let lifetime = sim.timing.device_code_lifetime;
    let interval = sim.timing.device_code_interval;
    st.device_codes.insert(
        device_code.clone(),
        DeviceCode {
            user_code: user_code.clone(),
            client_id: client_id.clone(),
            scopes: scope.split_whitespace().map(str::to_string).collect(),
            expires_ms: now_ms() + u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX / 2),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(5000),
            last_poll_ms: None,
            completed_by: None,
            declined: false,
        },
    );
    let verification_uri = format!("{}/devicelogin", sim.base);
    json_response(
        StatusCode::OK,
        json!({
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": verification_uri,
            "expires_in": lifetime.as_secs(),
            "interval": interval.as_secs().max(1),
            "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."),
        }),
    )
}

/// Completes or declines a pending device-code sign-in (the person's side of the flow).
pub fn complete_device_code(
    sim: &Sim,
    user_code: &str,
    user: &str,
    decline: bool,
) -> Result<(), SimError> {
    let mut st = lock(&sim.state);
    let user_id = if decline {
        String::new()
    } else {
        st.resolve_user(user)
            .map(|u| u.id.clone())
            .ok_or_else(|| SimError::NotFound(format!("user {user:?}")))?
    };
    let now = now_ms();
    let dc = st
        .device_codes
        .values_mut()
        .find(|d| d.user_code.eq_ignore_ascii_case(user_code))
        .ok_or_else(|| SimError::NotFound(format!("user code {user_code:?}")))?;
    if dc.expires_ms <= now {
        return Err(SimError::Invalid("the code has expired".into()));
    }
    if dc.completed_by.is_some() || dc.declined {
        return Err(SimError::Invalid("the code was already used".into()));
    }
    if decline {
        dc.declined = true;
    } else {
        dc.completed_by = Some(user_id);
    }
    Ok(())
}

/// Builds a delegated token answer (with a fresh refresh token when `offline_access`).
fn delegated_answer(
    sim: &Sim,
    client_id: &str,
    user: &str,
    scopes: Vec<String>,
    offline: bool,
) -> Response {
    let mut st = lock(&sim.state);
    let principal = Principal::Delegated {
        client_id: client_id.to_string(),
        user: user.to_string(),
        scopes: scopes.clone(),
    };
    let (access, secs) = sim.issue_token(&mut st, principal);
    let mut scope_str: Vec<String> = scopes
        .iter()
        .map(|s| format!("https://graph.microsoft.com/{s}"))
        .collect();
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": secs,
        "ext_expires_in": secs,
        "access_token": access,
    });
    if offline {
        scope_str.push("offline_access".into());
        let rt = format!("0.sim.{}", opaque(64));
        st.refresh.insert(
            rt.clone(),
            Refresh {
                client_id: client_id.to_string(),
                user: user.to_string(),
                scopes,
            },
        );
        if let Some(o) = body.as_object_mut() {
            o.insert("refresh_token".into(), Value::String(rt));
        }
    }
    if let Some(o) = body.as_object_mut() {
        o.insert("scope".into(), Value::String(scope_str.join(" ")));
    }
    json_response(StatusCode::OK, body)
}

/// `POST /{tenant}/oauth2/v2.0/token` — client credentials, device code and refresh token
/// grants.
async fn token(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let lat = sim.faults.get().latency_ms;
    if lat > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(lat)).await;
    }
    if let Err(r) = tenant_ok(&sim, &tenant) {
        return *r;
    }
    let Ok(Form(f)) = form else {
        return bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    };
    let Some(grant) = f.get("grant_type") else {
        return bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    };
    let Some(client_id) = f.get("client_id").cloned() else {
        return bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    {
        let st = lock(&sim.state);
        if client_id != st.client_id {
            return bad(
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{}'.",
                    st.tenant_id
                ),
            );
        }
    }
    match grant.as_str() {
        // https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow#first-case-access-token-request-with-a-shared-secret
        "client_credentials" => {
            let mut st = lock(&sim.state);
            if f.get("client_secret") != Some(&st.client_secret) {
                return aad_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
                );
            }
            let scope = f.get("scope").map(String::as_str).unwrap_or("");
            if !scope.ends_with("/.default") {
                return bad(
                    "invalid_scope",
                    1002012,
                    &format!(
                        "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                    ),
                );
            }
            let p = Principal::App {
                client_id: client_id.clone(),
                roles: st.app_roles.clone(),
            };
            let (tok, secs) = sim.issue_token(&mut st, p);
            json_response(
                StatusCode::OK,
                json!({"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok}),
            )
        }
        // https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code#authenticating-the-user
        "urn:ietf:params:oauth:grant-type:device_code" | "device_code" => {
            let Some(code) = f.get("device_code") else {
                return bad(
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'device_code'.",
                );
            };
            let now = now_ms();
            let (user, scopes) = {
                let mut st = lock(&sim.state);
                let Some(dc) = st.device_codes.get_mut(code) else {
                    return bad(
                        "bad_verification_code",
                        70000,
                        "Provided grant is invalid or malformed.",
                    );
                };
                if dc.client_id != client_id {
                    return bad(
                        "invalid_grant",
                        70000,
                        "Provided grant is invalid or malformed.",
                    );
                }
                if dc.expires_ms <= now {
                    return bad(
                        "expired_token",
                        70020,
                        "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
                    );
                }
                if dc.declined {
                    return bad(
                        "authorization_declined",
                        70000,
                        "The user declined the authorization request.",
                    );
                }
                let too_fast = dc
                    .last_poll_ms
                    .is_some_and(|last| now.saturating_sub(last) < dc.interval_ms);
                dc.last_poll_ms = Some(now);
                match dc.completed_by.clone() {
                    None if too_fast => {
                        return bad(
                            "slow_down",
                            70016,
                            "OAuth 2.0 device flow error. Authorization is pending. Continue polling, but more slowly.",
                        );
                    }
                    None => {
                        return bad(
                            "authorization_pending",
                            70016,
                            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                        );
                    }
                    Some(u) => {
                        let scopes = dc.scopes.clone();
                        st.device_codes.remove(code);
                        (u, scopes)
                    }
                }
            };
            let offline = scopes.iter().any(|s| s == "offline_access");
            let granted = granted_scopes(&scopes.join(" "));
            delegated_answer(&sim, &client_id, &user, granted, offline)
        }
        // https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#refresh-the-access-token
        "refresh_token" => {
            // Tokens from the device-code flow belong to a public client.
            if f.contains_key("client_secret") || f.contains_key("client_assertion") {
                return bad(
                    "invalid_client",
                    700025,
                    "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
                );
            }
            let Some(rt) = f.get("refresh_token") else {
                return bad(
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'refresh_token'.",
                );
            };
            let r = {
                let mut st = lock(&sim.state);
                match st.refresh.get(rt) {
                    Some(r) if r.client_id == client_id => st.refresh.remove(rt),
                    _ => None,
                }
            };
            let Some(r) = r else {
                return bad(
                    "invalid_grant",
                    70000,
                    "Provided grant is invalid or malformed. The refresh token is not valid or was already redeemed.",
                );
            };
            delegated_answer(&sim, &client_id, &r.user, r.scopes, true)
        }
        other => bad(
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{other}'."),
        ),
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` —
/// <https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri>
async fn openid_configuration(State(sim): State<Arc<Sim>>, Path(tenant): Path<String>) -> Response {
    if let Err(r) = tenant_ok(&sim, &tenant) {
        return *r;
    }
    let b = &sim.base;
    json_response(
        StatusCode::OK,
        json!({
            "token_endpoint": format!("{b}/{tenant}/oauth2/v2.0/token"),
            "device_authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/devicecode"),
            "authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/authorize"),
            "issuer": format!("{b}/{tenant}/v2.0"),
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "grant_types_supported": ["client_credentials", "urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
            "response_types_supported": ["code"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
        }),
    )
}

/// `GET /devicelogin` — the page a person opens to enter the code (`verification_uri`).
/// A plain form: user code and the user's UPN; no password.
async fn devicelogin_page() -> axum::response::Html<&'static str> {
    axum::response::Html(
        "<!doctype html><title>Sign in (Teams simulator)</title>\
         <form method=post><p>Code <input name=user_code></p>\
         <p>User (UPN or id) <input name=user></p><button>Sign in</button></form>",
    )
}

/// `POST /devicelogin` — the person signs in (form: `user_code`, `user`).
async fn devicelogin_submit(
    State(sim): State<Arc<Sim>>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return json_response(StatusCode::BAD_REQUEST, json!({"error": "bad form"}));
    };
    let (Some(code), Some(user)) = (f.get("user_code"), f.get("user")) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "user_code and user are required"}),
        );
    };
    match complete_device_code(&sim, code.trim(), user.trim(), false) {
        Ok(()) => axum::response::IntoResponse::into_response(axum::response::Html(
            "<!doctype html><p>You have signed in. You may close this window.</p>",
        )),
        Err(e) => json_response(StatusCode::BAD_REQUEST, json!({"error": e.to_string()})),
    }
}
