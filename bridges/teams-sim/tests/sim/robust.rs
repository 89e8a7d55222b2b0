//! Bad input never crashes the simulator and gets Graph-shaped 4xx answers; sending rules.

use serde_json::json;
use switchboard_teams_sim::seed::Seed;
use switchboard_teams_sim::{SimConfig, TeamsSim};

use crate::support::*;

#[tokio::test]
async fn garbage_gets_4xx_never_5xx() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let (team, ch) = general(&sim);
    let g = sim.graph_url();
    let http = reqwest::Client::new();
    let urls = [
        format!("{g}/teams/{team}/channels/{ch}/messages"),
        format!("{g}/teams/{team}/channels/{ch}/messages/notanumber"),
        format!("{g}/teams/{team}/channels/{ch}/messages/99999999999999999999999/replies"),
        format!("{g}/teams/{team}/channels/{ch}/messages/1/setReaction"),
        format!("{g}/chats/%FF%FE/messages"),
        format!("{g}/subscriptions"),
        format!("{g}/me/onlineMeetings"),
        format!("{g}/nonsense/path"),
        format!(
            "{}/{}/oauth2/v2.0/token",
            sim.login_url(),
            sim.seeded().tenant_id
        ),
        format!("{}/nope/oauth2/v2.0/devicecode", sim.login_url()),
        format!("{}/_admin/meetings/start", sim.base_url()),
    ];
    let bodies: [&[u8]; 6] = [
        b"",
        b"{",
        b"[1,2]",
        b"null",
        b"\xff\xfe",
        br#"{"body":{"content":5}}"#,
    ];
    for u in &urls {
        for b in bodies {
            for m in ["POST", "PATCH", "GET"] {
                let r = http
                    .request(reqwest::Method::from_bytes(m.as_bytes()).expect("m"), u)
                    .bearer_auth(&adele)
                    .header("content-type", "application/json")
                    .body(b.to_vec())
                    .send()
                    .await
                    .expect("answer");
                assert!(r.status().as_u16() < 500, "{m} {u} -> {}", r.status());
            }
        }
    }
    // The server is still up.
    let r = call("GET", &format!("{g}/me"), Some(&adele), None).await;
    assert_eq!(r.status, 200);
    let r = call("GET", &format!("{g}/nonsense"), Some(&adele), None).await;
    assert!(r.body["error"]["code"].is_string());
    let r = call(
        "GET",
        &format!("{g}/chats/%FF%FE/messages"),
        Some(&adele),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "BadRequest");
    sim.shutdown().await;
}

#[tokio::test]
async fn sending_rules_mentions_attachments_size() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let (team, ch) = general(&sim);
    let url = format!("{}/teams/{team}/channels/{ch}/messages", sim.graph_url());
    let bob_id = sim.seeded().users[BOB].clone();
    let mention = json!([{"id": 0, "mentionText": "Bob",
        "mentioned": {"user": {"id": bob_id, "displayName": "Bob Builder", "userIdentityType": "aadUser"}}}]);
    let ok = call("POST", &url, Some(&adele), Some(json!({
        "body": {"contentType": "html", "content": "Hi <at id=\"0\">Bob</at>"}, "mentions": mention}))).await;
    assert_eq!(ok.status, 201, "{:?}", ok.body);
    assert_eq!(ok.body["mentions"][0]["mentionText"], "Bob");
    let bad = call(
        "POST",
        &url,
        Some(&adele),
        Some(json!({
        "body": {"contentType": "html", "content": "Hi Bob"}, "mentions": mention})),
    )
    .await;
    assert_eq!(bad.status, 400);
    let bad = call(
        "POST",
        &url,
        Some(&adele),
        Some(json!({
        "body": {"contentType": "html", "content": "<attachment id=\"a1\"></attachment>"}})),
    )
    .await;
    assert_eq!(bad.status, 400);
    let ok = call("POST", &url, Some(&adele), Some(json!({
        "body": {"contentType": "html", "content": "<attachment id=\"a1\"></attachment>"},
        "attachments": [{"id": "a1", "contentType": "reference", "contentUrl": "https://contoso.sharepoint.com/x.docx", "name": "x.docx"}]}))).await;
    assert_eq!(ok.status, 201);
    let big = "x".repeat(29 * 1024);
    let r = call(
        "POST",
        &url,
        Some(&adele),
        Some(json!({"body": {"content": big}})),
    )
    .await;
    assert_eq!(r.status, 413);
    let r = call(
        "POST",
        &url,
        Some(&adele),
        Some(json!({"body": {"contentType": "markdown", "content": "x"}})),
    )
    .await;
    assert_eq!(r.status, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_seeds_are_refused() {
    for s in [
        r#"{"teams":[{"displayName":"T","members":["ghost@x"]}]}"#,
        r#"{"users":[{"displayName":"A","userPrincipalName":"a@x"},{"displayName":"A2","userPrincipalName":"a@x"}]}"#,
        r#"{"users":[{"displayName":"A","userPrincipalName":"a@x","photo":"!!notbase64"}]}"#,
        r#"{"users":[{"displayName":"A","userPrincipalName":"a@x"}],"chats":[{"chatType":"oneOnOne","members":["a@x"]}]}"#,
    ] {
        let seed: Seed = serde_json::from_str(s).expect("parses");
        let r = TeamsSim::start(SimConfig {
            seed: Some(seed),
            ..SimConfig::default()
        })
        .await;
        let e = r.expect_err(s);
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{s}");
    }
    assert!(serde_json::from_str::<Seed>(r#"{"bogus":1}"#).is_err());
}

#[tokio::test]
async fn admin_adds_people_teams_and_members() {
    let sim = start().await;
    let b = sim.base_url();
    let r = call(
        "POST",
        &format!("{b}/_admin/users"),
        None,
        Some(json!({"displayName": "Dan", "userPrincipalName": "dan@contoso.test"})),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(
        "POST",
        &format!("{b}/_admin/teams"),
        None,
        Some(json!({"displayName": "Ops", "owners": ["dan@contoso.test"]})),
    )
    .await;
    let team = r.body["id"].as_str().expect("id").to_string();
    let r = call(
        "POST",
        &format!("{b}/_admin/teams/{team}/channels"),
        None,
        Some(json!({"displayName": "Alerts"})),
    )
    .await;
    let ch = r.body["id"].as_str().expect("id").to_string();
    assert!(ch.starts_with("19:") && ch.ends_with("@thread.tacv2"));
    let r = call(
        "POST",
        &format!("{b}/_admin/teams/{team}/members"),
        None,
        Some(json!({"user": BOB})),
    )
    .await;
    assert_eq!(r.status, 200);
    let bob = sim.delegated_token(BOB).expect("token");
    let r = call(
        "POST",
        &format!("{}/teams/{team}/channels/{ch}/messages", sim.graph_url()),
        Some(&bob),
        Some(json!({"body": {"content": "hi ops"}})),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = call(
        "POST",
        &format!("{b}/_admin/teams/{team}/members"),
        None,
        Some(json!({"user": "ghost"})),
    )
    .await;
    assert_eq!(r.status, 404);
    let t = call("GET", &format!("{b}/_admin/tenant"), None, None).await;
    assert_eq!(t.body["teams"].as_array().expect("teams").len(), 2);
    sim.shutdown().await;
}
