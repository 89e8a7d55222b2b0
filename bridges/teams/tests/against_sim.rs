//! The Teams auth and Graph client against the Graph simulator
//! (`bridges/teams-sim`), over real HTTP on loopback.

use std::time::Duration;

use serde_json::json;
use switchboard_model::BridgeError;
use switchboard_teams::auth::{
    AppTokens, AuthError, DelegatedTokens, DeviceCodeLogin, IdentityConfig, PollOutcome, Secret,
};
use switchboard_teams::client::{Bearer, GraphClient};
use switchboard_teams_sim::limits::Mode;
use switchboard_teams_sim::seed::Seed;
use switchboard_teams_sim::{SimConfig, TeamsSim};

const ADELE: &str = "adele@contoso.test";

fn seed() -> Seed {
    serde_json::from_str(
        r#"{
        "users": [
            {"displayName": "Adele Vance", "userPrincipalName": "adele@contoso.test"},
            {"displayName": "Bob Builder", "userPrincipalName": "bob@contoso.test"}
        ],
        "teams": [{"displayName": "Contoso", "owners": ["adele@contoso.test"],
                   "members": ["bob@contoso.test"]}]
    }"#,
    )
    .expect("seed parses")
}

async fn start_with(cfg: SimConfig) -> TeamsSim {
    TeamsSim::start(SimConfig {
        seed: Some(seed()),
        ..cfg
    })
    .await
    .expect("sim starts")
}

fn identity(sim: &TeamsSim) -> IdentityConfig {
    let s = sim.seeded();
    IdentityConfig {
        login_base: sim.login_url(),
        tenant: s.tenant_id.clone(),
        client_id: s.client_id.clone(),
        client_secret: Some(Secret::new(s.client_secret.clone())),
    }
}

fn graph(sim: &TeamsSim) -> GraphClient {
    GraphClient::with_limits(sim.graph_url(), None).expect("client")
}

fn general_messages(sim: &TeamsSim) -> String {
    let (team, channel) = sim.seeded().channels["Contoso/General"].clone();
    format!("/teams/{team}/channels/{channel}/messages")
}

async fn sign_in(sim: &TeamsSim, user: &str) -> DelegatedTokens {
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

#[tokio::test]
async fn app_token_is_cached_shared_and_reads() {
    let sim = start_with(SimConfig::default()).await;
    let g = graph(&sim);
    let tokens = AppTokens::new(g.http().clone(), identity(&sim));
    // Concurrent callers share one request to the token endpoint.
    let (a, b, c) = tokio::join!(tokens.token(), tokens.token(), tokens.token());
    let a = a.expect("token");
    assert_eq!(a, b.expect("token"));
    assert_eq!(a, c.expect("token"));
    let again = tokens.token().await.expect("token");
    // The simulator mints a new opaque token per request: same token = cache.
    assert_eq!(a, again);
    assert_eq!(tokens.fetches(), 1);
    assert!(!format!("{a:?}").contains(a.expose()));

    let list = g
        .get_all(&general_messages(&sim), Bearer::App(&a), 100)
        .await
        .expect("app token reads");
    assert!(list.is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn app_token_is_replaced_before_it_expires() {
    let sim = start_with(SimConfig {
        token_lifetime: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await;
    let tokens = AppTokens::new(graph(&sim).http().clone(), identity(&sim));
    let first = tokens.token().await.expect("token");
    // 80 % of 2 s = 1.6 s.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let second = tokens.token().await.expect("token");
    assert_ne!(first, second);
    assert_eq!(tokens.fetches(), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_client_secret_is_an_auth_error() {
    let sim = start_with(SimConfig::default()).await;
    let mut id = identity(&sim);
    id.client_secret = Some(Secret::new("nope"));
    let tokens = AppTokens::new(graph(&sim).http().clone(), id);
    let e = tokens.token().await.expect_err("refused");
    assert!(matches!(&e, AuthError::Identity { error, .. } if error == "invalid_client"));
    assert!(matches!(BridgeError::from(e), BridgeError::Auth { .. }));
    sim.shutdown().await;
}

#[tokio::test]
async fn device_code_login_with_pending_then_completion() {
    let sim = start_with(SimConfig {
        device_code_interval: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let g = graph(&sim);
    let login = DeviceCodeLogin::new(
        g.http().clone(),
        identity(&sim),
        sim.graph_url(),
        "https://graph.microsoft.com/.default",
    );
    let code = login.start().await.expect("device code");
    assert!(code.message.contains(&code.user_code));
    assert!(!code.verification_uri.is_empty());
    assert!(matches!(
        login.poll_once(&code).await.expect("poll"),
        PollOutcome::Pending
    ));
    // Polling again at once is faster than the interval.
    assert!(matches!(
        login.poll_once(&code).await.expect("poll"),
        PollOutcome::SlowDown
    ));
    let poller = {
        let login = login.clone();
        let code = code.clone();
        tokio::spawn(async move { login.poll(&code).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    sim.complete_device_code(&code.user_code, ADELE)
        .expect("sign in");
    let tokens = poller.await.expect("join").expect("tokens");
    assert_eq!(tokens.user_id, sim.seeded().users[ADELE]);
    let me = g
        .get_json("/me", Bearer::User(&tokens.access.token, &tokens.user_id))
        .await
        .expect("me");
    assert_eq!(me["id"], tokens.user_id.as_str());
    sim.shutdown().await;
}

#[tokio::test]
async fn declined_device_code_is_a_clear_error() {
    let sim = start_with(SimConfig::default()).await;
    let login = DeviceCodeLogin::new(
        graph(&sim).http().clone(),
        identity(&sim),
        sim.graph_url(),
        "User.Read",
    );
    let code = login.start().await.expect("device code");
    sim.decline_device_code(&code.user_code).expect("decline");
    assert_eq!(
        login.poll_once(&code).await.expect_err("declined"),
        AuthError::Declined
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn refresh_rotates_and_the_old_refresh_token_is_refused() {
    let sim = start_with(SimConfig {
        device_code_interval: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let mut tokens = sign_in(&sim, ADELE).await;
    let stale = tokens.clone();
    tokens.refresh().await.expect("refresh");
    assert_ne!(tokens.refresh_token, stale.refresh_token);
    assert_ne!(tokens.access.token, stale.access.token);
    // The new one works again (and rotates again).
    let mut again = tokens.clone();
    again.refresh().await.expect("second refresh");
    // The old one is refused: the person must sign in again.
    let mut stale = stale;
    let e = stale
        .refresh()
        .await
        .expect_err("old refresh token refused");
    assert!(matches!(e, AuthError::ReauthenticationRequired(_)), "{e:?}");
    assert!(matches!(BridgeError::from(e), BridgeError::Auth { .. }));
    sim.shutdown().await;
}

#[tokio::test]
async fn expired_token_is_an_auth_error() {
    let sim = start_with(SimConfig::default()).await;
    let tok = sim.delegated_token(ADELE).expect("token");
    assert!(sim.expire_token(&tok));
    let tok = Secret::new(tok);
    let e = graph(&sim)
        .get_json("/me", Bearer::User(&tok, "adele"))
        .await
        .expect_err("expired");
    assert!(matches!(e, BridgeError::Auth { .. }), "{e:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn app_token_message_post_is_refused_as_permanent() {
    let sim = start_with(SimConfig::default()).await;
    let g = graph(&sim);
    let tokens = AppTokens::new(g.http().clone(), identity(&sim));
    let app = tokens.token().await.expect("token");
    let e = g
        .post_json(
            &general_messages(&sim),
            Bearer::App(&app),
            &json!({"body": {"contentType": "html", "content": "<p>hi</p>"}}),
        )
        .await
        .expect_err("app-only POST refused");
    // Graph's 401 "Unauthorized" here refuses the kind of token, not the
    // token: refreshing it would not help, so it is Permanent (see client.rs).
    match e {
        BridgeError::Permanent { reason } => {
            assert!(reason.contains("application-only context"), "{reason}");
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn delegated_post_appears_in_the_list_and_paging_follows_next_links() {
    let sim = start_with(SimConfig::default()).await;
    let g = graph(&sim);
    let adele_id = sim.seeded().users[ADELE].clone();
    let tok = Secret::new(sim.delegated_token(ADELE).expect("token"));
    let path = general_messages(&sim);
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = g
            .post_json(
                &path,
                Bearer::User(&tok, &adele_id),
                &json!({"body": {"contentType": "html", "content": format!("<p>hello {i}</p>")}}),
            )
            .await
            .expect("delegated POST");
        ids.push(m["id"].as_str().expect("id").to_owned());
    }
    let first_page = g
        .get_json(&format!("{path}?$top=2"), Bearer::User(&tok, &adele_id))
        .await
        .expect("page");
    assert!(first_page["@odata.nextLink"].is_string(), "{first_page}");
    let all = g
        .get_all(
            &format!("{path}?$top=2"),
            Bearer::User(&tok, &adele_id),
            100,
        )
        .await
        .expect("all pages");
    assert_eq!(all.len(), 5);
    for id in &ids {
        assert!(all.iter().any(|m| m["id"] == id.as_str()), "{id} listed");
    }
    let capped = g
        .get_all(&format!("{path}?$top=2"), Bearer::User(&tok, &adele_id), 3)
        .await
        .expect("capped");
    assert_eq!(capped.len(), 3);
    let missing = g
        .get_json(&format!("{path}/1"), Bearer::User(&tok, &adele_id))
        .await
        .expect_err("missing");
    assert!(
        matches!(missing, BridgeError::NotFound { .. }),
        "{missing:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn strict_throttling_gives_rate_limited_with_retry_after() {
    let sim = start_with(SimConfig {
        rate_limit: Mode::Strict,
        ..SimConfig::default()
    })
    .await;
    let g = graph(&sim);
    let tok = Secret::new(sim.app_token());
    let path = general_messages(&sim);
    let mut limited = None;
    for _ in 0..20 {
        match g.get_json(&path, Bearer::App(&tok)).await {
            Ok(_) => {}
            Err(e) => {
                limited = Some(e);
                break;
            }
        }
    }
    match limited {
        Some(BridgeError::RateLimited { retry_after }) => assert!(retry_after > Duration::ZERO),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(sim.counters().throttled >= 1);
    sim.shutdown().await;
}
