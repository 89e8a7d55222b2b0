//! Direct messages with the app: `conversations.open` between the bot and a person, people
//! writing to the app in its Messages tab (`message` events with `channel_type: "im"`, only
//! with `message.im`), what the IM then holds, and the `users.list` directory page by page.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn conversations_open_gives_the_bot_one_im_per_person_from_either_side() {
    let sim = start().await;
    let t = tokens(&sim);
    // A new IM: just the id, no already_open.
    let r = call(&sim, "conversations.open", &t.bot, json!({"users": BOB})).await;
    assert_ok(&r);
    let im = r["channel"]["id"].as_str().expect("id").to_string();
    assert!(im.starts_with('D'), "{im}");
    assert_eq!(r["channel"].as_object().map(|o| o.len()), Some(1), "{r}");
    assert!(r.get("already_open").is_none(), "{r}");
    // Again: the same IM, said to be open already.
    let again = call(&sim, "conversations.open", &t.bot, json!({"users": BOB})).await;
    assert_eq!(again["channel"]["id"], im.as_str());
    assert_eq!(again["already_open"], true);
    assert_eq!(again["no_op"], true);
    // return_im: the whole conversation object.
    let full = call(
        &sim,
        "conversations.open",
        &t.bot,
        json!({"users": BOB, "return_im": true}),
    )
    .await;
    assert_eq!(full["channel"]["id"], im.as_str());
    assert_eq!(full["channel"]["is_im"], true);
    assert_eq!(full["channel"]["user"], BOB);
    // The person opening it from their side gets the same conversation.
    let theirs = call(&sim, "conversations.open", &t.bob, json!({"users": BOT})).await;
    assert_eq!(theirs["channel"]["id"], im.as_str());
    // Resuming by id.
    let resumed = call(&sim, "conversations.open", &t.bot, json!({"channel": im})).await;
    assert_eq!(resumed["channel"]["id"], im.as_str());
    assert_eq!(resumed["already_open"], true);
    // The helper finds the same IM.
    assert_eq!(sim.app_im("bob").expect("bob"), im);
    // Another person: another IM.
    let alice = call(&sim, "conversations.open", &t.bot, json!({"users": ALICE})).await;
    assert_ne!(alice["channel"]["id"], im.as_str());
}

#[tokio::test]
async fn conversations_open_refuses_unknown_and_deactivated_people_and_needs_im_write() {
    let sim = start().await;
    let t = tokens(&sim);
    assert_err(
        &call(&sim, "conversations.open", &t.bot, json!({})).await,
        "users_list_not_supplied",
    );
    assert_err(
        &call(
            &sim,
            "conversations.open",
            &t.bot,
            json!({"users": "U0NOBODY001"}),
        )
        .await,
        "user_not_found",
    );
    assert_err(
        &call(
            &sim,
            "conversations.open",
            &t.bot,
            json!({"users": "U0DAVE00001"}),
        )
        .await,
        "user_disabled",
    );
    sim.set_bot_scopes(&["chat:write", "im:history", "im:read"]);
    let r = call(&sim, "conversations.open", &t.bot, json!({"users": BOB})).await;
    assert_err(&r, "missing_scope");
    assert_eq!(r["needed"], "im:write");
}

#[tokio::test]
async fn a_person_writing_to_the_app_is_an_im_message_event_and_stays_in_the_im() {
    let sim = start().await;
    let t = tokens(&sim);
    let (mut ws, _) = connect(&sim).await;
    let (im, ts) = sim.message_app("alice", "dm bob").expect("alice writes");
    assert!(im.starts_with('D'), "{im}");
    let env = next_message(&mut ws, None).await;
    let ev = &env["payload"]["event"];
    assert_eq!(ev["channel"], im.as_str());
    assert_eq!(ev["channel_type"], "im");
    assert_eq!(ev["user"], ALICE);
    assert_eq!(ev["text"], "dm bob");
    assert_eq!(ev["ts"], ts.as_str());
    assert!(ev["client_msg_id"].is_string(), "{ev}");
    assert_eq!(ev["blocks"][0]["type"], "rich_text");
    // The same IM the bot gets from conversations.open.
    let r = call(&sim, "conversations.open", &t.bot, json!({"users": ALICE})).await;
    assert_eq!(r["channel"]["id"], im.as_str());

    // The bot answers there, once as itself and once as someone from elsewhere.
    call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": im, "text": "Looking for bob…"}),
    )
    .await;
    let answer = next_message(&mut ws, None).await;
    assert_eq!(answer["payload"]["event"]["bot_id"], "B0SIMBOT001");
    assert_eq!(answer["payload"]["event"]["channel_type"], "im");
    call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": im, "text": "hi Alice", "username": "Bob (Teams)",
               "icon_url": "https://example.com/bob.png"}),
    )
    .await;
    let relayed = next_message(&mut ws, Some("bot_message")).await;
    assert_eq!(relayed["payload"]["event"]["username"], "Bob (Teams)");

    // What Alice sees in that conversation, oldest first.
    let seen = sim.app_im_messages("alice").expect("alice");
    let texts: Vec<&str> = seen.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["dm bob", "Looking for bob…", "hi Alice"]);
    assert_eq!(seen[2]["username"], "Bob (Teams)");
    assert_eq!(seen[2]["icons"]["image_64"], "https://example.com/bob.png");
    // And through the Web API with her own token.
    let h = call(
        &sim,
        "conversations.history",
        &t.alice,
        json!({"channel": im}),
    )
    .await;
    assert_eq!(h["messages"].as_array().map(Vec::len), Some(3));
    // Bob has no IM with the app yet.
    assert!(sim.app_im_messages("bob").expect("bob").is_empty());
    // A deactivated person cannot write.
    assert!(sim.message_app("dave", "hello").is_err());
}

#[tokio::test]
async fn im_messages_reach_only_an_app_that_subscribes_to_message_im() {
    let mut seed = seed();
    seed.app.bot_events = Some(vec!["message.channels".into()]);
    let sim = start_with(|c| c.seed = Some(seed)).await;
    let (mut ws, _) = connect(&sim).await;
    sim.message_app("alice", "anyone there?").expect("writes");
    assert!(
        next_json_within(&mut ws, Duration::from_millis(500))
            .await
            .is_none(),
        "no message.im subscription, no event"
    );
    // Channel messages still arrive.
    let t = tokens(&sim);
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "hello"}),
    )
    .await;
    let env = next_message(&mut ws, None).await;
    assert_eq!(env["payload"]["event"]["channel_type"], "channel");
}

#[tokio::test]
async fn the_admin_api_writes_to_the_app_and_reads_the_im() {
    let sim = start().await;
    let base = sim.base_url();
    let r: Value = http()
        .post(format!("{base}/_admin/users/alice/message_app"))
        .json(&json!({"text": "help"}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(r["ok"], true, "{r}");
    let im = r["channel"].as_str().expect("channel").to_string();
    let r: Value = http()
        .get(format!("{base}/_admin/users/{ALICE}/app_im"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(r["channel"], im.as_str());
    assert_eq!(r["messages"][0]["text"], "help");
}

#[tokio::test]
async fn users_list_pages_through_everyone_with_limit_and_next_cursor() {
    let sim = start().await;
    let t = tokens(&sim);
    let mut ids = Vec::new();
    let mut cursor = String::new();
    let mut pages = Vec::new();
    loop {
        let mut args = json!({"limit": 2});
        if !cursor.is_empty() {
            args["cursor"] = json!(cursor);
        }
        let r = call(&sim, "users.list", &t.bot, args).await;
        assert_ok(&r);
        let members = r["members"].as_array().expect("members").clone();
        assert!(members.len() <= 2, "{r}");
        pages.push(members.len());
        ids.extend(
            members
                .iter()
                .map(|u| u["id"].as_str().expect("id").to_owned()),
        );
        for u in &members {
            if u["id"] == "U0DAVE00001" {
                assert_eq!(u["deleted"], true);
            }
            if u["id"] == "U0OTHERBOT1" || u["id"] == BOT {
                assert_eq!(u["is_bot"], true, "{u}");
            }
            if u["id"] == ALICE {
                assert_eq!(u["profile"]["display_name"], "alice");
                assert_eq!(u["real_name"], "Alice Liddell");
            }
        }
        cursor = r["response_metadata"]["next_cursor"]
            .as_str()
            .expect("next_cursor on every page")
            .to_owned();
        if cursor.is_empty() {
            break;
        }
        assert!(pages.len() < 10, "the cursor never ends");
    }
    // Slackbot, the bot user and the five seeded people, each once.
    assert_eq!(ids.len(), 7, "{ids:?}");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 7);
    assert!(ids.iter().any(|i| i == "USLACKBOT"));
    assert_eq!(pages, [2, 2, 2, 1]);
    // Without a limit: everyone on one page.
    let all = call(&sim, "users.list", &t.bot, json!({})).await;
    assert_eq!(all["members"].as_array().map(Vec::len), Some(7));
    assert_eq!(all["response_metadata"]["next_cursor"], "");
    // A person added later shows up on the next read.
    sim.add_user(switchboard_slack_sim::seed::UserSeed {
        name: "erin".into(),
        ..Default::default()
    })
    .expect("added");
    let all = call(&sim, "users.list", &t.bot, json!({})).await;
    assert_eq!(all["members"].as_array().map(Vec::len), Some(8));
}
