//! Change notifications: handshake, delivery with clientState, retries, faults, lifecycle.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_teams_sim::SimConfig;
use switchboard_teams_sim::limits::FaultConfig;

use crate::support::*;

async fn subscribe(
    sim: &switchboard_teams_sim::TeamsSim,
    tok: &str,
    resource: &str,
    url: &str,
    lifecycle: Option<&str>,
    minutes: i64,
) -> Answer {
    let mut body = json!({
        "changeType": "created,updated,deleted",
        "notificationUrl": url,
        "resource": resource,
        "expirationDateTime": in_secs(minutes * 60),
        "clientState": "s3cr3t-state",
    });
    if let Some(l) = lifecycle {
        body["lifecycleNotificationUrl"] = json!(l);
    }
    call(
        "POST",
        &format!("{}/subscriptions", sim.graph_url()),
        Some(tok),
        Some(body),
    )
    .await
}

fn quick() -> SimConfig {
    SimConfig {
        retry_delays: vec![Duration::from_millis(20), Duration::from_millis(20)],
        delivery_timeout: Duration::from_millis(500),
        validation_timeout: Duration::from_millis(500),
        ..SimConfig::default()
    }
}

async fn post(sim: &switchboard_teams_sim::TeamsSim, tok: &str, text: &str) -> Value {
    let (team, ch) = general(sim);
    let r = call(
        "POST",
        &format!("{}/teams/{team}/channels/{ch}/messages", sim.graph_url()),
        Some(tok),
        Some(json!({"body": {"content": text}})),
    )
    .await;
    assert_eq!(r.status, 201);
    r.body
}

#[tokio::test]
async fn handshake_then_notifications_with_client_state() {
    let sim = start_with(quick()).await;
    let hook = hook(Mode::Good).await;
    let app = sim.app_token();
    let r = subscribe(&sim, &app, "/teams/getAllMessages", &hook.url, None, 30).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(hook.validations.lock().expect("lock").len(), 1);
    let tok = hook.validations.lock().expect("lock")[0].clone();
    assert!(tok.starts_with("Validation: "), "decoded token: {tok}");
    let sub_id = r.body["id"].as_str().expect("id").to_string();
    assert_eq!(r.body["clientState"], "s3cr3t-state");

    let adele = sim.delegated_token(ADELE).expect("token");
    let m = post(&sim, &adele, "hello").await;
    let items = hook.wait_for(1).await;
    assert_eq!(items.len(), 1);
    let n = &items[0];
    assert_eq!(n["subscriptionId"], sub_id);
    assert_eq!(n["changeType"], "created");
    assert_eq!(n["clientState"], "s3cr3t-state");
    assert_eq!(n["tenantId"], sim.seeded().tenant_id);
    assert_eq!(n["resourceData"]["id"], m["id"]);
    assert_eq!(
        n["resourceData"]["@odata.type"],
        "#Microsoft.Graph.chatMessage"
    );
    let (team, ch) = general(&sim);
    assert_eq!(
        n["resource"],
        format!(
            "teams('{team}')/channels('{ch}')/messages('{}')",
            m["id"].as_str().expect("id")
        )
    );
    assert_eq!(n["resourceData"]["@odata.id"], n["resource"]);

    // Edits and deletes notify as updated / deleted.
    let url = format!(
        "{}/teams/{team}/channels/{ch}/messages/{}",
        sim.graph_url(),
        m["id"].as_str().expect("id")
    );
    call(
        "PATCH",
        &url,
        Some(&adele),
        Some(json!({"body": {"content": "hello!"}})),
    )
    .await;
    call("POST", &format!("{url}/softDelete"), Some(&adele), None).await;
    let items = hook.wait_for(3).await;
    let kinds: Vec<&str> = items
        .iter()
        .filter_map(|i| i["changeType"].as_str())
        .collect();
    assert_eq!(kinds, ["created", "updated", "deleted"]);

    // Renew, list, delete.
    let g = sim.graph_url();
    let r = call(
        "PATCH",
        &format!("{g}/subscriptions/{sub_id}"),
        Some(&app),
        Some(json!({"expirationDateTime": in_secs(45 * 60)})),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call("GET", &format!("{g}/subscriptions"), Some(&app), None).await;
    assert_eq!(r.body["value"].as_array().expect("v").len(), 1);
    let r = call(
        "DELETE",
        &format!("{g}/subscriptions/{sub_id}"),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    post(&sim, &adele, "after delete").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hook.items().len(), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn endpoint_that_does_not_echo_is_refused() {
    let sim = start_with(quick()).await;
    let hook = hook(Mode::NoEcho).await;
    let r = subscribe(
        &sim,
        &sim.app_token(),
        "/teams/getAllMessages",
        &hook.url,
        None,
        30,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("validation request failed")
    );
    assert!(sim.subscriptions().is_empty());
    // Unreachable endpoint too.
    let r = subscribe(
        &sim,
        &sim.app_token(),
        "/teams/getAllMessages",
        "http://127.0.0.1:9/x",
        None,
        30,
    )
    .await;
    assert_eq!(r.status, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn expiration_limits_and_permissions() {
    let sim = start_with(quick()).await;
    let hook = hook(Mode::Good).await;
    let app = sim.app_token();
    // > 1 hour without lifecycleNotificationUrl.
    let r = subscribe(&sim, &app, "/teams/getAllMessages", &hook.url, None, 120).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .expect("m")
            .starts_with("lifecycleNotificationUrl is a required property")
    );
    // > 3 days.
    let r = subscribe(
        &sim,
        &app,
        "/teams/getAllMessages",
        &hook.url,
        Some(&hook.url),
        4321,
    )
    .await;
    assert_eq!(r.status, 400);
    // Within limits with a lifecycle URL: both URLs are validated.
    let r = subscribe(
        &sim,
        &app,
        "/teams/getAllMessages",
        &hook.url,
        Some(&hook.url),
        4000,
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(hook.validations.lock().expect("lock").len(), 2);
    // Tenant-wide resources are application-only.
    let adele = sim.delegated_token(ADELE).expect("token");
    let r = subscribe(&sim, &adele, "/chats/getAllMessages", &hook.url, None, 30).await;
    assert_eq!(r.status, 403);
    // A member may subscribe to a channel; one per app per channel.
    let (team, ch) = general(&sim);
    let res = format!("/teams/{team}/channels/{ch}/messages");
    assert_eq!(
        subscribe(&sim, &adele, &res, &hook.url, None, 30)
            .await
            .status,
        201
    );
    assert_eq!(
        subscribe(&sim, &app, &res, &hook.url, None, 30)
            .await
            .status,
        403
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn chat_subscription_only_sees_its_chat() {
    let sim = start_with(quick()).await;
    let hook = hook(Mode::Good).await;
    let app = sim.app_token();
    let res = format!("/chats/{}/messages", chat(&sim));
    assert_eq!(
        subscribe(&sim, &app, &res, &hook.url, None, 30)
            .await
            .status,
        201
    );
    let adele = sim.delegated_token(ADELE).expect("token");
    post(&sim, &adele, "channel message").await;
    let r = call(
        "POST",
        &format!("{}/chats/{}/messages", sim.graph_url(), chat(&sim)),
        Some(&adele),
        Some(json!({"body": {"content": "chat message"}})),
    )
    .await;
    assert_eq!(r.status, 201);
    let items = hook.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(hook.items().len(), 1);
    assert!(
        items[0]["resource"]
            .as_str()
            .expect("r")
            .starts_with("chats('19:")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_then_dropped() {
    let sim = start_with(quick()).await;
    let hook = hook(Mode::Failing).await;
    let app = sim.app_token();
    assert_eq!(
        subscribe(&sim, &app, "/teams/getAllMessages", &hook.url, None, 30)
            .await
            .status,
        201
    );
    let adele = sim.delegated_token(ADELE).expect("token");
    post(&sim, &adele, "doomed").await;
    let items = hook.wait_for(3).await;
    assert_eq!(items.len(), 3, "first try + 2 retries");
    for _ in 0..100 {
        if sim.counters().notifications_dropped == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c = sim.counters();
    assert_eq!(c.notifications_dropped, 1);
    assert_eq!(c.notifications_retried, 2);
    assert_eq!(c.notifications_delivered, 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hook.items().len(), 3, "no more after dropping");
    sim.shutdown().await;
}

#[tokio::test]
async fn fault_injection_drops_and_duplicates() {
    let sim = start_with(quick()).await;
    let hook = hook(Mode::Good).await;
    let app = sim.app_token();
    assert_eq!(
        subscribe(&sim, &app, "/teams/getAllMessages", &hook.url, None, 30)
            .await
            .status,
        201
    );
    let adele = sim.delegated_token(ADELE).expect("token");
    sim.set_faults(FaultConfig {
        drop_rate: 1.0,
        ..FaultConfig::default()
    });
    post(&sim, &adele, "dropped").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(hook.items().is_empty());
    assert_eq!(sim.counters().notifications_fault_dropped, 1);

    sim.set_faults(FaultConfig {
        duplicate_rate: 1.0,
        ..FaultConfig::default()
    });
    let m = post(&sim, &adele, "twice").await;
    let items = hook.wait_for(2).await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["resourceData"]["id"], m["id"]);
    assert_eq!(items[1]["resourceData"]["id"], m["id"]);

    // Delay through the admin API.
    let r = call(
        "POST",
        &format!("{}/_admin/faults", sim.base_url()),
        None,
        Some(json!({"notification_delay_ms": 200})),
    )
    .await;
    assert_eq!(r.status, 200);
    post(&sim, &adele, "late").await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(hook.items().len(), 2, "not yet");
    assert_eq!(hook.wait_for(3).await.len(), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn lifecycle_notifications() {
    let sim = start_with(quick()).await;
    let hook = hook(Mode::Good).await;
    let life = crate::support::hook(Mode::Good).await;
    let app = sim.app_token();
    let r = subscribe(
        &sim,
        &app,
        "/teams/getAllMessages",
        &hook.url,
        Some(&life.url),
        120,
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().expect("id").to_string();
    sim.trigger_lifecycle(&id, "reauthorizationRequired")
        .await
        .expect("lifecycle");
    let items = life.wait_for(1).await;
    assert_eq!(items[0]["lifecycleEvent"], "reauthorizationRequired");
    assert_eq!(items[0]["subscriptionId"], id);
    assert_eq!(items[0]["clientState"], "s3cr3t-state");
    let r = call(
        "POST",
        &format!("{}/subscriptions/{id}/reauthorize", sim.graph_url()),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(
        "POST",
        &format!("{}/_admin/subscriptions/{id}/lifecycle", sim.base_url()),
        None,
        Some(json!({"event": "subscriptionRemoved"})),
    )
    .await;
    assert_eq!(r.status, 200);
    let items = life.wait_for(2).await;
    assert_eq!(items[1]["lifecycleEvent"], "subscriptionRemoved");
    assert!(sim.subscriptions().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn renewal_limits_expiry_and_lifecycle_without_url() {
    let sim = start_with(quick()).await;
    let hook = hook(Mode::Good).await;
    let app = sim.app_token();
    let r = subscribe(&sim, &app, "/teams/getAllMessages", &hook.url, None, 30).await;
    let id = r.body["id"].as_str().expect("id").to_string();
    let g = sim.graph_url();
    // Beyond an hour needs a lifecycle URL, which cannot be added later.
    let r = call(
        "PATCH",
        &format!("{g}/subscriptions/{id}"),
        Some(&app),
        Some(json!({"expirationDateTime": in_secs(2 * 3600)})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        "PATCH",
        &format!("{g}/subscriptions/nope"),
        Some(&app),
        Some(json!({"expirationDateTime": in_secs(600)})),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(
        sim.trigger_lifecycle(&id, "reauthorizationRequired")
            .await
            .is_err()
    );
    assert!(sim.trigger_lifecycle(&id, "bogus").await.is_err());
    // An expired subscription is gone and gets nothing.
    let r = call(
        "PATCH",
        &format!("{g}/subscriptions/{id}"),
        Some(&app),
        Some(json!({"expirationDateTime": in_secs(1)})),
    )
    .await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let adele = sim.delegated_token(ADELE).expect("token");
    post(&sim, &adele, "nobody listens").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(hook.items().is_empty());
    let r = call("GET", &format!("{g}/subscriptions/{id}"), Some(&app), None).await;
    assert_eq!(r.status, 404);
    sim.shutdown().await;
}

/// The test key pair of `tests/fixtures/rich-notifications.pem`: (PKCS#8 DER of the private
/// key, base64 DER of the certificate).
fn rich_fixture() -> (Vec<u8>, String) {
    use base64::Engine as _;
    let pem = include_str!("../fixtures/rich-notifications.pem");
    let block = |label: &str| -> String {
        pem.lines()
            .skip_while(|l| *l != format!("-----BEGIN {label}-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect()
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(block("PRIVATE KEY"))
        .expect("key");
    (key, block("CERTIFICATE"))
}

/// Decrypts an `encryptedContent` as Graph's documentation says a subscriber does.
fn decrypt_content(ec: &Value, key_der: &[u8]) -> Value {
    use aes::Aes256;
    use base64::Engine as _;
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockDecryptMut, KeyIvInit};
    use hmac::{Hmac, Mac};
    use rsa::pkcs8::DecodePrivateKey;
    let b64 = |k: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(ec[k].as_str().expect("field"))
            .expect("base64")
    };
    let key = rsa::RsaPrivateKey::from_pkcs8_der(key_der).expect("key");
    let sym = key
        .decrypt(rsa::Oaep::new::<sha1::Sha1>(), &b64("dataKey"))
        .expect("RSA-OAEP");
    let mut data = b64("data");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&sym).expect("hmac");
    mac.update(&data);
    mac.verify_slice(&b64("dataSignature"))
        .expect("dataSignature");
    let plain = cbc::Decryptor::<Aes256>::new_from_slices(&sym, &sym[..16])
        .expect("aes")
        .decrypt_padded_mut::<Pkcs7>(&mut data)
        .expect("padding");
    serde_json::from_slice(plain).expect("json")
}

#[tokio::test]
async fn rich_notifications_carry_the_encrypted_message() {
    let sim = start_with(quick()).await;
    let hook = hook(Mode::Good).await;
    let app = sim.app_token();
    let g = sim.graph_url();
    let (key, cert) = rich_fixture();
    let body = |cert: Option<&str>, id: Option<&str>| {
        let mut b = json!({
            "changeType": "created,updated,deleted",
            "notificationUrl": hook.url,
            "resource": "/teams/getAllMessages",
            "expirationDateTime": in_secs(30 * 60),
            "clientState": "s3cr3t-state",
            "includeResourceData": true,
        });
        if let Some(c) = cert {
            b["encryptionCertificate"] = json!(c);
        }
        if let Some(i) = id {
            b["encryptionCertificateId"] = json!(i);
        }
        b
    };
    // Refusals: Graph's 400 InvalidRequest, before the handshake.
    let long_id = "x".repeat(129);
    for (c, i) in [
        (None, Some("k1")),
        (Some(cert.as_str()), None),
        (Some(cert.as_str()), Some(long_id.as_str())),
        (Some("bm90IGEgY2VydA=="), Some("k1")),
    ] {
        let r = call(
            "POST",
            &format!("{g}/subscriptions"),
            Some(&app),
            Some(body(c, i)),
        )
        .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.body["error"]["code"], "InvalidRequest");
    }
    assert!(hook.validations.lock().expect("lock").is_empty());

    let r = call(
        "POST",
        &format!("{g}/subscriptions"),
        Some(&app),
        Some(body(Some(&cert), Some("k1"))),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["includeResourceData"], true);
    assert_eq!(r.body["encryptionCertificateId"], "k1");
    assert_eq!(r.body["encryptionCertificate"], cert.as_str());

    let adele = sim.delegated_token(ADELE).expect("token");
    let m = post(&sim, &adele, "secret hello").await;
    let (team, ch) = general(&sim);
    let url = format!(
        "{g}/teams/{team}/channels/{ch}/messages/{}",
        m["id"].as_str().expect("id")
    );
    let items = hook.wait_for(1).await;
    let ec = &items[0]["encryptedContent"];
    assert_eq!(ec["encryptionCertificateId"], "k1");
    assert_eq!(
        ec["encryptionCertificateThumbprint"],
        "EC6A956ECA61791D359E5598AAE37A6C8EA644AD"
    );
    let got = call("GET", &url, Some(&app), None).await.body;
    let mut plain = decrypt_content(ec, &key);
    assert_eq!(plain["replies"], json!([]));
    assert_eq!(plain["hostedContents"], json!([]));
    if let Some(o) = plain.as_object_mut() {
        o.remove("replies");
        o.remove("hostedContents");
    }
    let mut expected = got.clone();
    if let Some(o) = expected.as_object_mut() {
        o.remove("@odata.context");
    }
    assert_eq!(plain, expected);

    // An edit carries the edited message; a delete carries no resource data.
    call(
        "PATCH",
        &url,
        Some(&adele),
        Some(json!({"body": {"content": "secret hello!"}})),
    )
    .await;
    call("POST", &format!("{url}/softDelete"), Some(&adele), None).await;
    let items = hook.wait_for(3).await;
    assert_eq!(items.len(), 3);
    let of = |kind: &str| {
        items
            .iter()
            .find(|i| i["changeType"] == kind)
            .expect("notified")
    };
    assert_eq!(
        decrypt_content(&of("updated")["encryptedContent"], &key)["body"]["content"],
        "secret hello!"
    );
    assert!(of("deleted").get("encryptedContent").is_none());
    sim.shutdown().await;
}
