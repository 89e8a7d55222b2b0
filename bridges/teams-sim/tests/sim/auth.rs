//! Identity platform: client credentials, device code, refresh rotation, token expiry.

use std::time::Duration;

use serde_json::json;
use switchboard_teams_sim::SimConfig;

use crate::support::*;

async fn poll_dc(sim: &switchboard_teams_sim::TeamsSim, client_id: &str, code: &str) -> Answer {
    form(
        &sim.token_url(),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", client_id),
            ("device_code", code),
        ],
    )
    .await
}

async fn new_dc(url: &str, client_id: &str, scope: &str) -> Answer {
    form(url, &[("client_id", client_id), ("scope", scope)]).await
}

#[tokio::test]
async fn client_credentials_gives_an_app_token_that_reads() {
    let sim = start().await;
    let s = sim.seeded();
    let r = form(
        &sim.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &s.client_id),
            ("client_secret", &s.client_secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert!(r.body.get("refresh_token").is_none());
    let tok = r.body["access_token"].as_str().expect("token");
    let (team, ch) = general(&sim);
    let list = call(
        "GET",
        &format!("{}/teams/{team}/channels/{ch}/messages", sim.graph_url()),
        Some(tok),
        None,
    )
    .await;
    assert_eq!(list.status, 200, "{:?}", list.body);

    // Wrong secret → 401 invalid_client with the identity platform's shape.
    let bad = form(
        &sim.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &s.client_id),
            ("client_secret", "nope"),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.body["error"], "invalid_client");
    assert_eq!(bad.body["error_codes"], json!([7000215]));
    assert!(
        bad.body["error_description"]
            .as_str()
            .expect("desc")
            .starts_with("AADSTS7000215:")
    );
    for k in ["timestamp", "trace_id", "correlation_id"] {
        assert!(bad.body.get(k).is_some(), "{k}");
    }
    // Missing /.default → invalid_scope.
    let bad = form(
        &sim.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &s.client_id),
            ("client_secret", &s.client_secret),
            ("scope", "User.Read"),
        ],
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"], "invalid_scope");
    sim.shutdown().await;
}

#[tokio::test]
async fn device_code_flow_pending_slow_down_completion_and_rotation() {
    let sim = start_with(SimConfig {
        device_code_interval: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let s = sim.seeded().clone();
    let dc_url = format!("{}/{}/oauth2/v2.0/devicecode", sim.login_url(), s.tenant_id);
    let dc = form(
        &dc_url,
        &[
            ("client_id", &s.client_id),
            (
                "scope",
                "https://graph.microsoft.com/.default offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(dc.status, 200, "{:?}", dc.body);
    for k in [
        "user_code",
        "device_code",
        "verification_uri",
        "interval",
        "expires_in",
        "message",
    ] {
        assert!(dc.body.get(k).is_some(), "{k}");
    }
    let device_code = dc.body["device_code"].as_str().expect("dc").to_string();
    let user_code = dc.body["user_code"].as_str().expect("uc").to_string();
    let r = poll_dc(&sim, &s.client_id, &device_code).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "authorization_pending");
    assert_eq!(r.body["error_codes"], json!([70016]));
    let r = poll_dc(&sim, &s.client_id, &device_code).await; // at once: faster than the interval
    assert_eq!(r.body["error"], "slow_down");

    sim.complete_device_code(&user_code, ADELE)
        .expect("sign in");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = poll_dc(&sim, &s.client_id, &device_code).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let access = r.body["access_token"].as_str().expect("at").to_string();
    let refresh = r.body["refresh_token"].as_str().expect("rt").to_string();
    assert!(
        r.body["scope"]
            .as_str()
            .expect("scope")
            .contains("ChannelMessage.Send")
    );

    // The token acts as Adele.
    let me = call(
        "GET",
        &format!("{}/me", sim.graph_url()),
        Some(&access),
        None,
    )
    .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["userPrincipalName"], ADELE);
    // The device code is spent.
    assert_eq!(poll_dc(&sim, &s.client_id, &device_code).await.status, 400);

    // Refresh: a new pair; the old refresh token stops working.
    let redeem = |rt: String| {
        let url = sim.token_url();
        let cid = s.client_id.clone();
        async move {
            form(
                &url,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &cid),
                    ("refresh_token", &rt),
                ],
            )
            .await
        }
    };
    let r2 = redeem(refresh.clone()).await;
    assert_eq!(r2.status, 200, "{:?}", r2.body);
    let refresh2 = r2.body["refresh_token"].as_str().expect("rt2").to_string();
    assert_ne!(refresh2, refresh);
    let again = redeem(refresh).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["error"], "invalid_grant");
    assert_eq!(redeem(refresh2).await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn device_code_expires_and_can_be_declined() {
    let sim = start_with(SimConfig {
        device_code_lifetime: Duration::from_millis(200),
        device_code_interval: Duration::from_millis(1),
        ..SimConfig::default()
    })
    .await;
    let s = sim.seeded().clone();
    let dc_url = format!("{}/{}/oauth2/v2.0/devicecode", sim.login_url(), s.tenant_id);
    let dc = new_dc(&dc_url, &s.client_id, "User.Read").await;
    let device_code = dc.body["device_code"].as_str().expect("dc").to_string();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let r = form(
        &sim.token_url(),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", &s.client_id),
            ("device_code", &device_code),
        ],
    )
    .await;
    assert_eq!(r.body["error"], "expired_token");
    assert!(
        sim.complete_device_code(dc.body["user_code"].as_str().expect("uc"), ADELE)
            .is_err()
    );

    // Declined through the admin API.
    let dc = new_dc(&dc_url, &s.client_id, "User.Read").await;
    let r = call(
        "POST",
        &format!("{}/_admin/device/decline", sim.base_url()),
        None,
        Some(json!({"user_code": dc.body["user_code"]})),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = form(
        &sim.token_url(),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", &s.client_id),
            ("device_code", dc.body["device_code"].as_str().expect("dc")),
        ],
    )
    .await;
    assert_eq!(r.body["error"], "authorization_declined");
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_completes_device_code() {
    let sim = start_with(SimConfig {
        device_code_interval: Duration::from_millis(1),
        ..SimConfig::default()
    })
    .await;
    let s = sim.seeded().clone();
    let dc = form(
        &format!("{}/{}/oauth2/v2.0/devicecode", sim.login_url(), s.tenant_id),
        &[
            ("client_id", &s.client_id),
            ("scope", "ChannelMessage.Send"),
        ],
    )
    .await;
    let r = call(
        "POST",
        &format!("{}/_admin/device/complete", sim.base_url()),
        None,
        Some(json!({"user_code": dc.body["user_code"], "user": BOB})),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = form(
        &sim.token_url(),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", &s.client_id),
            ("device_code", dc.body["device_code"].as_str().expect("dc")),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    // No offline_access → no refresh token.
    assert!(r.body.get("refresh_token").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn missing_unknown_and_expired_tokens_get_401() {
    let sim = start().await;
    let url = format!("{}/me", sim.graph_url());
    let r = call("GET", &url, None, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "InvalidAuthenticationToken");
    let r = call("GET", &url, Some("garbage"), None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "InvalidAuthenticationToken");
    let tok = sim.delegated_token(ADELE).expect("token");
    assert_eq!(call("GET", &url, Some(&tok), None).await.status, 200);
    assert!(sim.expire_token(&tok));
    let r = call("GET", &url, Some(&tok), None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(
        r.body["error"]["message"],
        "Access token has expired or is not yet valid."
    );
    for k in ["date", "request-id", "client-request-id"] {
        assert!(r.body["error"]["innerError"].get(k).is_some(), "{k}");
    }
    assert!(r.headers.get("www-authenticate").is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn short_token_lifetime_expires_by_itself() {
    let sim = start_with(SimConfig {
        token_lifetime: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    let tok = sim.app_token();
    let url = format!("{}/users/{ADELE}", sim.graph_url());
    assert_eq!(call("GET", &url, Some(&tok), None).await.status, 200);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(call("GET", &url, Some(&tok), None).await.status, 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn revoking_a_person_s_sessions_refuses_their_refresh_tokens() {
    let sim = start_with(SimConfig {
        device_code_interval: Duration::from_millis(1),
        ..SimConfig::default()
    })
    .await;
    let s = sim.seeded().clone();
    let dc_url = format!("{}/{}/oauth2/v2.0/devicecode", sim.login_url(), s.tenant_id);
    let dc = new_dc(&dc_url, &s.client_id, "User.Read offline_access").await;
    sim.complete_device_code(dc.body["user_code"].as_str().expect("uc"), ADELE)
        .expect("sign in");
    let r = poll_dc(
        &sim,
        &s.client_id,
        dc.body["device_code"].as_str().expect("dc"),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let refresh = r.body["refresh_token"].as_str().expect("rt").to_string();
    let access = r.body["access_token"].as_str().expect("at").to_string();

    let revoked = call(
        "POST",
        &format!("{}/_admin/tokens/revoke", sim.base_url()),
        None,
        Some(json!({"user": ADELE})),
    )
    .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert_eq!(
        revoked.body,
        json!({"refresh_tokens": 1, "access_tokens": 0})
    );
    let again = form(
        &sim.token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &s.client_id),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["error"], "invalid_grant");
    // The access token lives on until it expires, unless revoked as well.
    let me = |token: String| {
        let url = format!("{}/me", sim.graph_url());
        async move { call("GET", &url, Some(&token), None).await.status }
    };
    assert_eq!(me(access.clone()).await, 200);
    assert_eq!(sim.revoke_tokens(ADELE, true), Ok((0, 1)));
    assert_eq!(me(access).await, 401);
    assert!(sim.revoke_tokens("nobody@contoso.test", false).is_err());
    sim.shutdown().await;
}
