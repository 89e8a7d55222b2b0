//! The directory and chat creation: `GET /users` filtering and paging, `POST /chats`
//! (one-on-one chats found again, malformed bodies refused), `GET /me/chats` options, and
//! the per-user chat-message subscription.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_teams_sim::TeamsSim;
use switchboard_teams_sim::seed::UserSeed;

use crate::support::*;

fn member(sim: &TeamsSim, user: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.aadUserConversationMember",
        "roles": ["owner"],
        "user@odata.bind": format!("https://graph.microsoft.com/v1.0/users('{}')", sim.seeded().users[user]),
    })
}

async fn create_chat(sim: &TeamsSim, token: &str, body: Value) -> Answer {
    call(
        "POST",
        &format!("{}/chats", sim.graph_url()),
        Some(token),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn post_chats_returns_the_existing_one_on_one_chat() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let body =
        json!({"chatType": "oneOnOne", "members": [member(&sim, ADELE), member(&sim, CAROL)]});
    let first = create_chat(&sim, &adele, body.clone()).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(first.body["chatType"], "oneOnOne");
    assert_eq!(
        first.body["@odata.context"],
        format!("{}/$metadata#chats/$entity", sim.graph_url())
    );
    let id = first.body["id"].as_str().expect("id").to_owned();
    assert!(
        id.starts_with("19:") && id.ends_with("@unq.gbl.spaces"),
        "{id}"
    );

    // Again, and with the members the other way round: the same chat.
    let again = create_chat(&sim, &adele, body).await;
    assert_eq!(
        (again.status, again.body["id"].as_str()),
        (201, Some(id.as_str()))
    );
    let carol = sim.delegated_token(CAROL).expect("token");
    let reversed =
        json!({"chatType": "oneOnOne", "members": [member(&sim, CAROL), member(&sim, ADELE)]});
    let theirs = create_chat(&sim, &carol, reversed).await;
    assert_eq!(theirs.body["id"].as_str(), Some(id.as_str()));

    // The seeded chat of Adele and Bob is found too, not doubled.
    let ab = json!({"chatType": "oneOnOne", "members": [member(&sim, ADELE), member(&sim, BOB)]});
    let found = create_chat(&sim, &adele, ab).await;
    assert_eq!(found.body["id"].as_str(), Some(chat(&sim).as_str()));

    // Members may post into it; it lists among Carol's chats.
    let r = call(
        "POST",
        &format!("{}/chats/{id}/messages", sim.graph_url()),
        Some(&carol),
        Some(json!({"body": {"content": "hi"}})),
    )
    .await;
    assert_eq!(r.status, 201);
    let mine = call(
        "GET",
        &format!("{}/me/chats", sim.graph_url()),
        Some(&carol),
        None,
    )
    .await;
    let ids: Vec<&str> = mine.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);

    // A group chat is new every time.
    let group = json!({"chatType": "group", "topic": "Plans",
        "members": [member(&sim, ADELE), member(&sim, BOB), member(&sim, CAROL)]});
    let g1 = create_chat(&sim, &adele, group.clone()).await;
    let g2 = create_chat(&sim, &adele, group).await;
    assert_eq!((g1.status, g2.status), (201, 201));
    assert_eq!(g1.body["topic"], "Plans");
    assert_ne!(g1.body["id"], g2.body["id"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn post_chats_refuses_malformed_bodies_with_graphs_error_shape() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let url = format!("{}/chats", sim.graph_url());
    let bad = [
        json!({"members": [member(&sim, ADELE), member(&sim, BOB)]}),
        json!({"chatType": "channel", "members": [member(&sim, ADELE), member(&sim, BOB)]}),
        json!({"chatType": "oneOnOne"}),
        json!({"chatType": "oneOnOne", "members": [member(&sim, ADELE)]}),
        json!({"chatType": "oneOnOne", "members": [member(&sim, ADELE), member(&sim, ADELE)]}),
        json!({"chatType": "oneOnOne", "members": [member(&sim, ADELE), {"roles": ["owner"], "user@odata.bind": "x"}]}),
        json!({"chatType": "oneOnOne", "members": [member(&sim, ADELE),
            {"@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": ["owner"]}]}),
        json!([1, 2]),
    ];
    for body in bad {
        let r = call("POST", &url, Some(&adele), Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        assert_eq!(r.body["error"]["code"], "BadRequest", "{body}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(
            r.body["error"]["innerError"]["request-id"].is_string(),
            "{:?}",
            r.body
        );
    }
    let not_json = call_raw_post(&url, &adele, "{not json").await;
    assert_eq!(not_json, 400);

    // Someone else's chat cannot be made with a delegated token; unknown people are 404.
    let others =
        json!({"chatType": "oneOnOne", "members": [member(&sim, BOB), member(&sim, CAROL)]});
    assert_eq!(create_chat(&sim, &adele, others).await.status, 403);
    let ghost = json!({"chatType": "oneOnOne", "members": [member(&sim, ADELE), {
        "@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": ["owner"],
        "user@odata.bind": "https://graph.microsoft.com/v1.0/users('nobody')"}]});
    assert_eq!(create_chat(&sim, &adele, ghost).await.status, 404);
    // Nothing was created by any of it.
    let mine = call(
        "GET",
        &format!("{}/me/chats", sim.graph_url()),
        Some(&adele),
        None,
    )
    .await;
    assert_eq!(
        mine.body["value"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        mine.body
    );
    let app = sim.app_token();
    let r = create_chat(
        &sim,
        &app,
        json!({"chatType": "oneOnOne", "members": [member(&sim, ADELE), member(&sim, CAROL)]}),
    )
    .await;
    assert_eq!(r.status, 403, "the app has no Chat.Create: {:?}", r.body);
    sim.shutdown().await;
}

async fn call_raw_post(url: &str, token: &str, body: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("answers")
        .status()
        .as_u16()
}

fn names(v: &Value) -> Vec<String> {
    v["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|u| u["displayName"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn users_filter_by_display_name_or_upn_prefix_and_page() {
    let sim = start().await;
    for i in 0..5 {
        sim.add_user(&UserSeed {
            id: None,
            display_name: format!("Ann Example {i}"),
            user_principal_name: format!("ann{i}@contoso.test"),
            mail: None,
            photo: None,
        })
        .expect("user");
    }
    sim.add_user(&UserSeed {
        id: None,
        display_name: "Zed O'Brien".into(),
        user_principal_name: "zed@contoso.test".into(),
        mail: None,
        photo: None,
    })
    .expect("user");
    let app = sim.app_token();
    let users = format!("{}/users", sim.graph_url());

    let r = call(
        "GET",
        &format!("{users}?$filter=startswith(displayName,'ADELE')"),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(names(&r.body), vec!["Adele Vance"], "case-insensitive");
    assert_eq!(
        r.body["@odata.context"],
        format!("{}/$metadata#users", sim.graph_url())
    );

    let r = call(
        "GET",
        &format!(
            "{users}?$filter=startswith(displayName,'x') or startswith(userPrincipalName,'bob')"
        ),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(names(&r.body), vec!["Bob Builder"]);

    let r = call(
        "GET",
        &format!("{users}?$filter=startswith(displayName,'Zed O''B')"),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(names(&r.body), vec!["Zed O'Brien"], "quotes are doubled");

    // Paging: five Anns, two a page, with absolute next links that keep the filter.
    let mut got = Vec::new();
    let mut next = Some(format!(
        "{users}?$filter=startswith(displayName,'ann')&$top=2"
    ));
    let mut pages = 0;
    while let Some(url) = next.take() {
        let r = call("GET", &url, Some(&app), None).await;
        assert_eq!(r.status, 200, "{url}: {:?}", r.body);
        assert!(r.body["value"].as_array().expect("value").len() <= 2);
        got.extend(names(&r.body));
        next = r.body["@odata.nextLink"].as_str().map(str::to_owned);
        if let Some(n) = &next {
            assert!(n.starts_with(&users), "{n}");
        }
        pages += 1;
    }
    assert_eq!(pages, 3);
    got.sort();
    assert_eq!(
        got,
        (0..5)
            .map(|i| format!("Ann Example {i}"))
            .collect::<Vec<_>>()
    );

    // Without a filter: everyone; bad options are refused.
    let r = call("GET", &users, Some(&app), None).await;
    assert_eq!(names(&r.body).len(), 9);
    let r = call(
        "GET",
        &format!("{users}?$filter=jobTitle eq 'x'"),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (400, Some("Request_UnsupportedQuery"))
    );
    let r = call("GET", &format!("{users}?$top=0"), Some(&app), None).await;
    assert_eq!(r.status, 400);
    let r = call(
        "GET",
        &format!("{users}?$skiptoken=forged"),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    // A delegated reader needs User.ReadBasic.All (granted by the default sign-in).
    let adele = sim.delegated_token(ADELE).expect("token");
    let r = call(
        "GET",
        &format!("{users}?$filter=startswith(displayName,'bob')"),
        Some(&adele),
        None,
    )
    .await;
    assert_eq!(names(&r.body), vec!["Bob Builder"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn my_chats_filter_order_and_expand_the_last_message() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let ac = sim.direct_chat(ADELE, CAROL).expect("chat");
    assert_eq!(
        sim.direct_chat(CAROL, ADELE).expect("chat"),
        ac,
        "found again"
    );
    sim.post_chat_message_as(CAROL, &ac, "<p>first</p>")
        .expect("posts");
    sim.post_chat_message_as(ADELE, &chat(&sim), "<p>newer</p>")
        .expect("posts");
    let url = format!(
        "{}/me/chats?$filter=chatType eq 'oneOnOne'&$orderby=lastMessagePreview/createdDateTime desc&$expand=lastMessagePreview&$top=1",
        sim.graph_url()
    );
    let r = call("GET", &url, Some(&adele), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let first = &r.body["value"][0];
    assert_eq!(
        first["id"].as_str(),
        Some(chat(&sim).as_str()),
        "newest first"
    );
    assert_eq!(
        first["lastMessagePreview"]["body"]["content"],
        "<p>newer</p>"
    );
    let next = r.body["@odata.nextLink"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let r = call("GET", &next, Some(&adele), None).await;
    assert_eq!(r.body["value"][0]["id"].as_str(), Some(ac.as_str()));
    assert_eq!(
        r.body["value"][0]["lastMessagePreview"]["from"]["user"]["displayName"],
        "Carol Outsider"
    );
    assert!(r.body["@odata.nextLink"].is_null());
    let bad = call(
        "GET",
        &format!("{}/me/chats?$orderby=topic", sim.graph_url()),
        Some(&adele),
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
    // GET /chats/{id}?$expand=members names both.
    let app = sim.app_token();
    let r = call(
        "GET",
        &format!("{}/chats/{ac}?$expand=members", sim.graph_url()),
        Some(&app),
        None,
    )
    .await;
    let members: Vec<&str> = r.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["userId"].as_str())
        .collect();
    assert_eq!(members.len(), 2);
    assert!(members.contains(&sim.seeded().users[CAROL].as_str()));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_user_chats_subscription_sees_every_chat_of_that_user() {
    let sim = start_with(switchboard_teams_sim::SimConfig {
        retry_delays: vec![Duration::from_millis(20)],
        ..switchboard_teams_sim::SimConfig::default()
    })
    .await;
    let hook = hook(Mode::Good).await;
    let app = sim.app_token();
    let carol_id = sim.seeded().users[CAROL].clone();
    let body = |resource: String| {
        json!({
            "changeType": "created",
            "notificationUrl": hook.url,
            "resource": resource,
            "expirationDateTime": in_secs(30 * 60),
            "clientState": "s3cr3t-state",
        })
    };
    let subs = format!("{}/subscriptions", sim.graph_url());
    let r = call(
        "POST",
        &subs,
        Some(&app),
        Some(body(format!("/users/{carol_id}/chats/getAllMessages"))),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // Delegated: for one's own chats only.
    let adele = sim.delegated_token(ADELE).expect("token");
    let r = call(
        "POST",
        &subs,
        Some(&adele),
        Some(body(format!("/users/{carol_id}/chats/getAllMessages"))),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(
        "POST",
        &subs,
        Some(&app),
        Some(body("/users/nobody/chats/getAllMessages".into())),
    )
    .await;
    assert_eq!(r.status, 404);

    // Carol's new chat with Adele is covered from its first message; Adele and Bob's is not.
    let ac = sim.direct_chat(ADELE, CAROL).expect("chat");
    sim.post_chat_message_as(ADELE, &chat(&sim), "<p>not Carol's</p>")
        .expect("posts");
    let id = sim
        .post_chat_message_as(ADELE, &ac, "<p>to Carol</p>")
        .expect("posts");
    let items = hook.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hook.items().len(), 1, "{items:?}");
    assert_eq!(
        items[0]["resource"],
        format!("chats('{ac}')/messages('{id}')")
    );
    assert_eq!(items[0]["changeType"], "created");
    sim.shutdown().await;
}
