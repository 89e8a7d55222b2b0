//! What the Teams connector's integration tests share: a seeded simulator
//! tenant, identity settings, a Graph client and device-code sign-in.

#![allow(dead_code)]

use std::time::Duration;
use switchboard_model::BridgeId;
use switchboard_teams::auth::{DelegatedTokens, DeviceCodeLogin, IdentityConfig, Secret};
use switchboard_teams::bridge::TeamsConfig;
use switchboard_teams::client::GraphClient;
use switchboard_teams_sim::TeamsSim;
use switchboard_teams_sim::seed::Seed;

pub const SERVICE: &str = "switchboard@contoso.test";
pub const BOB: &str = "bob@contoso.test";

pub fn seed() -> Seed {
    serde_json::from_str(
        r#"{
        "users": [
            {"displayName": "Switchboard Relay", "userPrincipalName": "switchboard@contoso.test"},
            {"displayName": "Bob Builder", "userPrincipalName": "bob@contoso.test"}
        ],
        "teams": [{"displayName": "Contoso", "owners": ["switchboard@contoso.test"],
                   "members": ["bob@contoso.test"]}]
    }"#,
    )
    .expect("seed parses")
}

pub fn identity(sim: &TeamsSim) -> IdentityConfig {
    let s = sim.seeded();
    IdentityConfig {
        login_base: sim.login_url(),
        tenant: s.tenant_id.clone(),
        client_id: s.client_id.clone(),
        client_secret: Some(Secret::new(s.client_secret.clone())),
    }
}

pub fn graph(sim: &TeamsSim) -> GraphClient {
    GraphClient::with_limits(sim.graph_url(), None).expect("client")
}

pub async fn sign_in(sim: &TeamsSim, user: &str) -> DelegatedTokens {
    let g = graph(sim);
    let login = DeviceCodeLogin::new(
        g.http().clone(),
        identity(sim),
        sim.graph_url(),
        "https://graph.microsoft.com/.default",
    );
    let code = login.start().await.expect("device code");
    sim.complete_device_code(&code.user_code, user)
        .expect("sign in");
    login.poll(&code).await.expect("tokens")
}

/// A bridge `teams:contoso` on `sim`: polling every 100 ms, nothing watched
/// beyond the portal channels, no notifications. Tests override fields.
pub fn config(sim: &TeamsSim, service: Option<DelegatedTokens>) -> TeamsConfig {
    let s = sim.seeded();
    TeamsConfig {
        id: BridgeId::new("teams:contoso"),
        graph_base: sim.graph_url(),
        login_base: sim.login_url(),
        tenant: s.tenant_id.clone(),
        client_id: s.client_id.clone(),
        client_secret: Secret::new(s.client_secret.clone()),
        service_account: service,
        poll_interval: Duration::from_millis(100),
        watch: Vec::new(),
        notifications: None,
        reconcile_interval: Duration::from_secs(300),
    }
}
