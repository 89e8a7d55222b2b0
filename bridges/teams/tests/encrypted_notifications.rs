//! Change notifications with resource data, end to end against the Graph
//! simulator (`bridges/teams-sim`): the connector's generated key and
//! certificate, a subscription with `includeResourceData`, a real webhook on
//! loopback, and [`switchboard_teams::graph::crypto::decrypt`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchboard_teams::auth::{AppTokens, IdentityConfig, Secret};
use switchboard_teams::client::{Bearer, GraphClient};
use switchboard_teams::graph::crypto::{DecryptError, NotificationKey, decrypt};
use switchboard_teams::graph::{
    ChangeType, Notification, parse_notification_batch, validation_token,
};
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

type Bodies = Arc<Mutex<Vec<Vec<u8>>>>;

/// Echoes the validation token as `text/plain`; keeps notification bodies.
async fn webhook(State(bodies): State<Bodies>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    if let Some(token) = q.as_deref().and_then(validation_token) {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            token,
        )
            .into_response();
    }
    bodies.lock().expect("lock").push(body.to_vec());
    StatusCode::ACCEPTED.into_response()
}

async fn start_webhook() -> (String, Bodies) {
    let bodies: Bodies = Arc::default();
    let app = axum::Router::new()
        .route("/notify", axum::routing::post(webhook))
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/notify"), bodies)
}

/// Parsed notification items received so far, waiting for at least `n`.
async fn wait_for(bodies: &Bodies, n: usize) -> Vec<Notification> {
    for _ in 0..300 {
        let items: Vec<Notification> = bodies
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|b| parse_notification_batch(b).expect("parses").items)
            .collect();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} notifications arrived");
}

fn in_minutes(m: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    switchboard_teams_sim::util::iso_ms((now.as_millis() as u64) + m * 60_000)
}

#[tokio::test]
async fn rich_notifications_decrypt_to_the_message() {
    let sim = TeamsSim::start(SimConfig {
        seed: Some(seed()),
        ..SimConfig::default()
    })
    .await
    .expect("sim starts");
    let s = sim.seeded();
    let g = GraphClient::with_limits(sim.graph_url(), None).expect("client");
    let app = AppTokens::new(
        g.http().clone(),
        IdentityConfig {
            login_base: sim.login_url(),
            tenant: s.tenant_id.clone(),
            client_id: s.client_id.clone(),
            client_secret: Some(Secret::new(s.client_secret.clone())),
        },
    )
    .token()
    .await
    .expect("app token");
    let (team, channel) = s.channels["Contoso/General"].clone();
    let messages = format!("/teams/{team}/channels/{channel}/messages");

    // The key the daemon would keep in a file.
    let key = NotificationKey::generate().expect("key");
    let key = NotificationKey::from_pem(&key.to_pem().expect("pem")).expect("read back");

    let (url, bodies) = start_webhook().await;
    let mut request = json!({
        "changeType": "created,updated",
        "notificationUrl": url,
        "resource": messages,
        "expirationDateTime": in_minutes(30),
        "clientState": "secret-state",
    });
    if let (Some(r), Some(fields)) = (
        request.as_object_mut(),
        key.subscription_fields().as_object(),
    ) {
        r.extend(fields.clone());
    }
    let sub = g
        .post_json("/subscriptions", Bearer::App(&app), &request)
        .await
        .expect("subscription created");
    assert_eq!(sub["includeResourceData"], true);
    assert_eq!(sub["encryptionCertificateId"], key.certificate_id());

    // Adele posts with her own delegated token.
    let adele_id = s.users[ADELE].clone();
    let adele = Secret::new(sim.delegated_token(ADELE).expect("token"));
    let posted = g
        .post_json(
            &messages,
            Bearer::User(&adele, &adele_id),
            &json!({"body": {"contentType": "html", "content": "<p>for your eyes only</p>"}}),
        )
        .await
        .expect("delegated POST");
    let id = posted["id"].as_str().expect("id").to_owned();

    let items = wait_for(&bodies, 1).await;
    let Notification::Change {
        change_type,
        client_state,
        resource_id,
        encrypted_content,
        ..
    } = &items[0]
    else {
        panic!("a change notification: {:?}", items[0]);
    };
    assert_eq!(*change_type, ChangeType::Created);
    assert_eq!(client_state.as_deref(), Some("secret-state"));
    assert_eq!(resource_id.as_deref(), Some(id.as_str()));
    let content = encrypted_content.as_ref().expect("encryptedContent");
    assert_eq!(
        content.encryption_certificate_id.as_deref(),
        Some(key.certificate_id())
    );
    assert_eq!(
        content.encryption_certificate_thumbprint.as_deref(),
        Some(key.thumbprint().as_str())
    );
    let resource = decrypt(content, &key).expect("decrypts");

    // The same message GET returns.
    let got = g
        .get_json(&format!("{messages}/{id}"), Bearer::App(&app))
        .await
        .expect("GET");
    assert_eq!(resource["id"], got["id"]);
    assert_eq!(resource["body"], got["body"]);
    assert_eq!(resource["body"]["content"], "<p>for your eyes only</p>");
    // All of it: Graph's decrypted chatMessage adds empty `replies` and
    // `hostedContents` and has no `@odata.context`.
    let without = |v: &Value, keys: &[&str]| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            for k in keys {
                o.remove(*k);
            }
        }
        v
    };
    assert_eq!(
        without(&resource, &["replies", "hostedContents"]),
        without(&got, &["@odata.context"])
    );

    // Tampering in transit is caught.
    let mut tampered = content.clone();
    tampered.data_signature = Some("AAAA".into());
    assert_eq!(
        decrypt(&tampered, &key),
        Err(DecryptError::SignatureMismatch)
    );
    sim.shutdown().await;
}
