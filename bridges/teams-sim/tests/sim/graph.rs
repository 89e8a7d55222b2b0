//! Graph v1.0: messages as people, the application-token refusal, edits, deletes,
//! reactions, paging, delta, chats, meetings.

use serde_json::{Value, json};

use crate::support::*;

fn msgs(sim: &switchboard_teams_sim::TeamsSim) -> String {
    let (team, ch) = general(sim);
    format!("{}/teams/{team}/channels/{ch}/messages", sim.graph_url())
}

async fn post_as(url: &str, tok: &str, text: &str) -> Value {
    let r = call(
        "POST",
        url,
        Some(tok),
        Some(json!({"body": {"contentType": "html", "content": text}})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn app_token_message_post_is_refused_exactly_as_graph() {
    let sim = start().await;
    let app = sim.app_token();
    let body = json!({"body": {"content": "hi"}});
    for url in [
        msgs(&sim),
        format!("{}/chats/{}/messages", sim.graph_url(), chat(&sim)),
    ] {
        let r = call("POST", &url, Some(&app), Some(body.clone())).await;
        assert_eq!(r.status, 401, "{url}");
        assert_eq!(r.body["error"]["code"], "Unauthorized");
        assert_eq!(
            r.body["error"]["message"],
            "Message POST is allowed in application-only context only for import purposes. Refer to https://docs.microsoft.com/microsoftteams/platform/graph-api/import-messages/import-external-messages-to-teams for more details."
        );
    }
    // Nothing was stored.
    let list = call("GET", &msgs(&sim), Some(&app), None).await;
    assert_eq!(list.body["value"], json!([]));
    sim.shutdown().await;
}

#[tokio::test]
async fn delegated_post_appears_in_list_get_and_delta() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let m = post_as(&msgs(&sim), &adele, "<p>Hello</p>").await;
    let id = m["id"].as_str().expect("id");
    assert!(id.parse::<u64>().is_ok(), "ids are millisecond epochs");
    assert_eq!(m["from"]["user"]["displayName"], "Adele Vance");
    assert_eq!(m["from"]["user"]["userIdentityType"], "aadUser");
    assert_eq!(m["body"]["contentType"], "html");
    assert!(m["etag"].as_str().expect("etag").parse::<u64>().is_ok());
    assert_eq!(m["channelIdentity"]["teamId"], general(&sim).0);
    assert_eq!(m["replyToId"], Value::Null);
    assert_eq!(m["lastEditedDateTime"], Value::Null);

    let app = sim.app_token();
    let list = call("GET", &msgs(&sim), Some(&app), None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["value"][0]["id"], id);
    let one = call("GET", &format!("{}/{id}", msgs(&sim)), Some(&app), None).await;
    assert_eq!(one.body["body"]["content"], "<p>Hello</p>");
    let delta = call("GET", &format!("{}/delta", msgs(&sim)), Some(&app), None).await;
    assert_eq!(delta.status, 200);
    assert_eq!(delta.body["value"][0]["id"], id);
    assert!(delta.body["@odata.deltaLink"].as_str().is_some());

    // Percent-encoded channel ids work, as Graph's SDK sends them.
    let (team, ch) = general(&sim);
    let enc = ch.replace(':', "%3A").replace('@', "%40");
    let r = call(
        "GET",
        &format!(
            "{}/teams/{team}/channels/{enc}/messages/{id}",
            sim.graph_url()
        ),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn non_members_and_missing_scopes_are_forbidden() {
    let sim = start().await;
    let carol = sim.delegated_token(CAROL).expect("token");
    let r = call(
        "POST",
        &msgs(&sim),
        Some(&carol),
        Some(json!({"body": {"content": "x"}})),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"]["code"], "Forbidden");
    let weak = sim
        .delegated_token_with_scopes(ADELE, &["User.Read"])
        .expect("token");
    let r = call(
        "POST",
        &msgs(&sim),
        Some(&weak),
        Some(json!({"body": {"content": "x"}})),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .expect("msg")
            .starts_with(
                "Missing scope permissions on the request. API requires one of 'ChannelMessage.Send"
            )
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn edits_only_by_the_author_and_set_last_edited() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let bob = sim.delegated_token(BOB).expect("token");
    let m = post_as(&msgs(&sim), &adele, "v1").await;
    let url = format!("{}/{}", msgs(&sim), m["id"].as_str().expect("id"));
    let edit = json!({"body": {"contentType": "html", "content": "v2"}});
    let r = call("PATCH", &url, Some(&bob), Some(edit.clone())).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"]["code"], "Forbidden");
    let r = call("PATCH", &url, Some(&sim.app_token()), Some(edit.clone())).await;
    assert_eq!(r.status, 403);
    let r = call("PATCH", &url, Some(&adele), Some(edit)).await;
    assert_eq!(r.status, 204);
    let got = call("GET", &url, Some(&adele), None).await.body;
    assert_eq!(got["body"]["content"], "v2");
    assert!(got["lastEditedDateTime"].is_string());
    assert_ne!(got["etag"], m["etag"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn soft_delete_and_undo() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let bob = sim.delegated_token(BOB).expect("token");
    let m = post_as(&msgs(&sim), &bob, "oops").await;
    let url = format!("{}/{}", msgs(&sim), m["id"].as_str().expect("id"));
    // App tokens cannot delete.
    let r = call(
        "POST",
        &format!("{url}/softDelete"),
        Some(&sim.app_token()),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call("POST", &format!("{url}/softDelete"), Some(&bob), None).await;
    assert_eq!(r.status, 204);
    let got = call("GET", &url, Some(&bob), None).await.body;
    assert!(got["deletedDateTime"].is_string());
    assert_eq!(got["body"]["content"], "");
    // Adele owns the team and may undo.
    let r = call("POST", &format!("{url}/undoSoftDelete"), Some(&adele), None).await;
    assert_eq!(r.status, 204);
    let got = call("GET", &url, Some(&bob), None).await.body;
    assert_eq!(got["deletedDateTime"], Value::Null);
    assert_eq!(got["body"]["content"], "oops");
    sim.shutdown().await;
}

#[tokio::test]
async fn reactions_set_and_unset() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let bob = sim.delegated_token(BOB).expect("token");
    let m = post_as(&msgs(&sim), &adele, "react to me").await;
    let url = format!("{}/{}", msgs(&sim), m["id"].as_str().expect("id"));
    let r = call(
        "POST",
        &format!("{url}/setReaction"),
        Some(&bob),
        Some(json!({"reactionType": "👍"})),
    )
    .await;
    assert_eq!(r.status, 204);
    // Twice is still one reaction.
    call(
        "POST",
        &format!("{url}/setReaction"),
        Some(&bob),
        Some(json!({"reactionType": "👍"})),
    )
    .await;
    let got = call("GET", &url, Some(&bob), None).await.body;
    let rs = got["reactions"].as_array().expect("reactions");
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0]["reactionType"], "👍");
    assert_eq!(rs[0]["user"]["user"]["id"], sim.seeded().users[BOB]);
    assert!(rs[0]["createdDateTime"].is_string());
    assert_eq!(
        got["lastEditedDateTime"],
        Value::Null,
        "reactions are not edits"
    );
    let r = call(
        "POST",
        &format!("{url}/setReaction"),
        Some(&bob),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        "POST",
        &format!("{url}/unsetReaction"),
        Some(&bob),
        Some(json!({"reactionType": "👍"})),
    )
    .await;
    assert_eq!(r.status, 204);
    let got = call("GET", &url, Some(&bob), None).await.body;
    assert_eq!(got["reactions"], json!([]));
    sim.shutdown().await;
}

#[tokio::test]
async fn paging_with_next_link() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    for i in 0..5 {
        post_as(&msgs(&sim), &adele, &format!("m{i}")).await;
    }
    let mut seen = Vec::new();
    let mut url = format!("{}?$top=2", msgs(&sim));
    let mut pages = 0;
    loop {
        let r = call("GET", &url, Some(&adele), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        pages += 1;
        for v in r.body["value"].as_array().expect("value") {
            seen.push(v["body"]["content"].as_str().expect("c").to_string());
        }
        match r.body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with("http://"), "absolute links");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["m4", "m3", "m2", "m1", "m0"], "newest first");
    let r = call(
        "GET",
        &format!("{}?$top=51", msgs(&sim)),
        Some(&adele),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        "GET",
        &format!("{}?$skiptoken=forged", msgs(&sim)),
        Some(&adele),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn delta_returns_only_changes_after_the_delta_link() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let app = sim.app_token();
    let a = post_as(&msgs(&sim), &adele, "a").await;
    let b = post_as(&msgs(&sim), &adele, "b").await;
    let c = post_as(&msgs(&sim), &adele, "c").await;
    // First round, two per page.
    let mut url = format!("{}/delta?$top=2", msgs(&sim));
    let mut ids = Vec::new();
    let delta_link = loop {
        let r = call("GET", &url, Some(&app), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for v in r.body["value"].as_array().expect("value") {
            assert_eq!(v["@odata.type"], "#microsoft.graph.chatMessage");
            ids.push(v["id"].clone());
        }
        if let Some(n) = r.body["@odata.nextLink"].as_str() {
            assert!(n.contains("$skiptoken="));
            url = n.to_string();
        } else {
            break r.body["@odata.deltaLink"]
                .as_str()
                .expect("deltaLink")
                .to_string();
        }
    };
    assert_eq!(ids, [a["id"].clone(), b["id"].clone(), c["id"].clone()]);
    assert!(delta_link.contains("$deltatoken="));
    // Nothing changed → empty.
    let r = call("GET", &delta_link, Some(&app), None).await;
    assert_eq!(r.body["value"], json!([]));
    // Edit b, post d, reply under a (the root changes).
    let b_url = format!("{}/{}", msgs(&sim), b["id"].as_str().expect("id"));
    let r = call(
        "PATCH",
        &b_url,
        Some(&adele),
        Some(json!({"body": {"content": "b2"}})),
    )
    .await;
    assert_eq!(r.status, 204);
    let d = post_as(&msgs(&sim), &adele, "d").await;
    let reply_url = format!("{}/{}/replies", msgs(&sim), a["id"].as_str().expect("id"));
    let reply = post_as(&reply_url, &adele, "re: a").await;
    assert_eq!(reply["replyToId"], a["id"]);
    let r = call("GET", &delta_link, Some(&app), None).await;
    let got: Vec<Value> = r.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|v| v["id"].clone())
        .collect();
    assert_eq!(got, [b["id"].clone(), d["id"].clone(), a["id"].clone()]);
    // Replies list.
    let r = call("GET", &reply_url, Some(&app), None).await;
    assert_eq!(r.body["value"][0]["id"], reply["id"]);
    let r = call(
        "GET",
        &format!("{reply_url}/{}", reply["id"].as_str().expect("id")),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["replyToId"], a["id"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn chat_messages_post_edit_delete_react() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let bob = sim.delegated_token(BOB).expect("token");
    let carol = sim.delegated_token(CAROL).expect("token");
    let url = format!("{}/chats/{}/messages", sim.graph_url(), chat(&sim));
    let m = post_as(&url, &adele, "hi bob").await;
    assert_eq!(m["chatId"], chat(&sim));
    assert_eq!(m["channelIdentity"], Value::Null);
    let murl = format!("{url}/{}", m["id"].as_str().expect("id"));
    assert_eq!(call("GET", &url, Some(&carol), None).await.status, 403);
    assert_eq!(
        call(
            "PATCH",
            &murl,
            Some(&bob),
            Some(json!({"body": {"content": "x"}}))
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(
            "PATCH",
            &murl,
            Some(&adele),
            Some(json!({"body": {"content": "hi Bob"}}))
        )
        .await
        .status,
        204
    );
    assert_eq!(
        call(
            "POST",
            &format!("{murl}/setReaction"),
            Some(&bob),
            Some(json!({"reactionType": "❤️"}))
        )
        .await
        .status,
        204
    );
    assert_eq!(
        call("POST", &format!("{murl}/softDelete"), Some(&adele), None)
            .await
            .status,
        204
    );
    let got = call("GET", &murl, Some(&bob), None).await.body;
    assert!(got["deletedDateTime"].is_string());
    let list = call("GET", &url, Some(&sim.app_token()), None).await;
    assert_eq!(list.status, 200);
    let chats = call(
        "GET",
        &format!("{}/me/chats", sim.graph_url()),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(chats.body["value"][0]["chatType"], "oneOnOne");
    sim.shutdown().await;
}

#[tokio::test]
async fn directory_teams_channels_members_photo_and_meetings() {
    let sim = start().await;
    let app = sim.app_token();
    let adele = sim.delegated_token(ADELE).expect("token");
    let (team, ch) = general(&sim);
    let g = sim.graph_url();
    let t = call("GET", &format!("{g}/teams/{team}"), Some(&app), None).await;
    assert_eq!(t.body["displayName"], "Contoso");
    let c = call(
        "GET",
        &format!("{g}/teams/{team}/channels"),
        Some(&app),
        None,
    )
    .await;
    let names: Vec<&str> = c.body["value"]
        .as_array()
        .expect("v")
        .iter()
        .filter_map(|v| v["displayName"].as_str())
        .collect();
    assert!(names.contains(&"General") && names.contains(&"Dev"));
    let m = call(
        "GET",
        &format!("{g}/teams/{team}/channels/{ch}/members"),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(m.body["value"].as_array().expect("v").len(), 2);
    assert_eq!(
        m.body["value"][0]["@odata.type"],
        "#microsoft.graph.aadUserConversationMember"
    );
    let u = call(
        "GET",
        &format!("{g}/users/{}", sim.seeded().users[BOB]),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(u.body["displayName"], "Bob Builder");
    let p = call(
        "GET",
        &format!("{g}/users/{BOB}/photo/$value"),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(p.status, 404);
    assert_eq!(p.body["error"]["code"], "ImageNotFound");
    let r = call(
        "GET",
        &format!("{g}/teams/00000000-0000-4000-8000-000000000000"),
        Some(&app),
        None,
    )
    .await;
    assert_eq!(r.status, 404);

    // Online meetings: delegated only.
    let body =
        json!({"subject": "Sync", "startDateTime": in_secs(60), "endDateTime": in_secs(3660)});
    let r = call(
        "POST",
        &format!("{g}/me/onlineMeetings"),
        Some(&app),
        Some(body.clone()),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        "POST",
        &format!("{g}/me/onlineMeetings"),
        Some(&adele),
        Some(body),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(
        r.body["joinWebUrl"]
            .as_str()
            .expect("url")
            .starts_with("https://teams.microsoft.com/l/meetup-join/19%3Ameeting_")
    );
    assert!(
        r.body["chatInfo"]["threadId"]
            .as_str()
            .expect("t")
            .starts_with("19:meeting_")
    );

    // A channel meeting posts system messages.
    let start_id = sim.start_meeting(&team, &ch, ADELE).expect("start");
    let end_id = sim.end_meeting(&team, &ch).expect("end");
    let start_url = format!("{g}/teams/{team}/channels/{ch}/messages/{start_id}");
    let plain = call("GET", &start_url, Some(&app), None).await.body;
    assert_eq!(
        plain["messageType"], "unknownFutureValue",
        "evolvable enum without Prefer"
    );
    let s = call_h(
        "GET",
        &start_url,
        Some(&app),
        None,
        &[("Prefer", "include-unknown-enum-members")],
    )
    .await
    .body;
    assert_eq!(s["messageType"], "systemEventMessage");
    assert_eq!(s["from"], Value::Null);
    assert_eq!(s["body"]["content"], "<systemEventMessage/>");
    assert_eq!(
        s["eventDetail"]["@odata.type"],
        "#microsoft.graph.callStartedEventMessageDetail"
    );
    let e = call(
        "GET",
        &format!("{g}/teams/{team}/channels/{ch}/messages/{end_id}"),
        Some(&app),
        None,
    )
    .await
    .body;
    assert_eq!(
        e["eventDetail"]["@odata.type"],
        "#microsoft.graph.callEndedEventMessageDetail"
    );
    assert!(
        e["eventDetail"]["callDuration"]
            .as_str()
            .expect("d")
            .starts_with("PT")
    );
    assert_eq!(e["eventDetail"]["callId"], s["eventDetail"]["callId"]);
    assert!(sim.end_meeting(&team, &ch).is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn delta_filter_on_last_modified() {
    let sim = start().await;
    let adele = sim.delegated_token(ADELE).expect("token");
    post_as(&msgs(&sim), &adele, "old").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let cut = in_secs(0);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let new = post_as(&msgs(&sim), &adele, "new").await;
    let r = call(
        "GET",
        &format!("{}/delta?$filter=lastModifiedDateTime gt {cut}", msgs(&sim)),
        Some(&adele),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ids: Vec<Value> = r.body["value"]
        .as_array()
        .expect("v")
        .iter()
        .map(|v| v["id"].clone())
        .collect();
    assert_eq!(ids, [new["id"].clone()]);
    let r = call(
        "GET",
        &format!("{}/delta?$filter=id eq 1", msgs(&sim)),
        Some(&adele),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        "GET",
        &format!("{}/delta?$deltatoken=forged", msgs(&sim)),
        Some(&adele),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    sim.shutdown().await;
}

/// `createOrGet` (<https://learn.microsoft.com/graph/api/onlinemeeting-createorget>):
/// the caller's meeting with that `externalId` is returned (200) once it exists, else
/// created (201) with the subject asked for and the caller as organizer; `externalId`
/// is unique per organizer, not per tenant.
#[tokio::test]
async fn create_or_get_is_keyed_by_external_id_per_organizer() {
    let sim = start().await;
    let g = sim.graph_url();
    let url = format!("{g}/me/onlineMeetings/createOrGet");
    let adele = sim.delegated_token(ADELE).expect("adele");
    let bob = sim.delegated_token(BOB).expect("bob");
    let body = |subject: &str| {
        json!({"externalId": "req-1", "subject": subject,
               "startDateTime": in_secs(0), "endDateTime": in_secs(3600)})
    };

    let first = call("POST", &url, Some(&adele), Some(body("Design review"))).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(first.body["subject"], "Design review");
    assert_eq!(first.body["externalId"], "req-1");
    assert_eq!(
        first.body["participants"]["organizer"]["identity"]["user"]["id"],
        sim.seeded().users[ADELE].as_str()
    );

    let again = call("POST", &url, Some(&adele), Some(body("Another title"))).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.body["joinWebUrl"], first.body["joinWebUrl"]);
    assert_eq!(again.body["subject"], "Design review", "the existing one");

    let bobs = call("POST", &url, Some(&bob), Some(body("Design review"))).await;
    assert_eq!(bobs.status, 201, "another organizer, another meeting");
    assert_ne!(bobs.body["id"], first.body["id"]);
    assert_eq!(
        bobs.body["participants"]["organizer"]["identity"]["user"]["id"],
        sim.seeded().users[BOB].as_str()
    );

    let missing = call("POST", &url, Some(&adele), Some(json!({"subject": "x"}))).await;
    assert_eq!(missing.status, 400, "externalId is required");
    let app = sim.app_token();
    let refused = call("POST", &url, Some(&app), Some(body("x"))).await;
    assert_eq!(refused.status, 400, "delegated only: /me");

    let all = sim.online_meetings();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().any(|m| m["id"] == first.body["id"]));
    assert!(all.iter().any(|m| m["id"] == bobs.body["id"]));
}

#[tokio::test]
async fn the_tap_reports_each_stored_message_with_its_instant() {
    let sim = start().await;
    let mut tap = sim.tap_posts();
    let before = std::time::Instant::now();
    let adele = sim.delegated_token(ADELE).expect("token");
    let posted = post_as(&msgs(&sim), &adele, "<p>tapped</p>").await;
    let after = std::time::Instant::now();
    let seen = tap.try_recv().expect("the post is reported");
    assert_eq!(seen.id, posted["id"].as_str().expect("id"));
    assert_eq!(seen.content, "<p>tapped</p>");
    assert_eq!(
        seen.from.as_deref(),
        Some(sim.seeded().users[ADELE].as_str())
    );
    assert!(before <= seen.at && seen.at <= after);
    assert!(tap.try_recv().is_err(), "one report per message");
    sim.shutdown().await;
}
