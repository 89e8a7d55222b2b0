//! What the Teams connector's integration tests share: a seeded simulator
//! tenant, identity settings, a Graph client and device-code sign-in.

#![allow(dead_code)]

use std::sync::Mutex;
use std::time::Duration;
use switchboard_model::{BridgeId, LinkedAccount, LinkedAccounts, Person, UserId};
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

/// One linked account: `person` → the Teams account of `tokens` (refresh
/// token rotations are kept).
#[derive(Debug)]
pub struct OneLinked {
    person: Person,
    user: UserId,
    token: Mutex<String>,
}

impl OneLinked {
    pub fn new(person: Person, tokens: &DelegatedTokens) -> Self {
        OneLinked {
            person,
            user: UserId::new(tokens.user_id.clone()),
            token: Mutex::new(tokens.refresh_token.expose().to_owned()),
        }
    }
}

impl LinkedAccounts for OneLinked {
    fn account_for(&self, bridge: &BridgeId, user: &UserId) -> Option<LinkedAccount> {
        (*bridge == self.person.bridge && *user == self.person.user).then(|| LinkedAccount {
            user: self.user.clone(),
            token: self.token.lock().map(|t| t.clone()).unwrap_or_default(),
        })
    }

    fn token_of(&self, user: &UserId) -> Option<String> {
        (*user == self.user).then(|| self.token.lock().map(|t| t.clone()).unwrap_or_default())
    }

    fn update_token(&self, user: &UserId, token: &str) -> Result<(), String> {
        if *user != self.user {
            return Err("unknown account".into());
        }
        *self.token.lock().map_err(|e| e.to_string())? = token.to_owned();
        Ok(())
    }
}
