//! Web API behaviour: every method's success and main errors, tokens and scopes, bodies,
//! pagination, size limits, files and calls.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn auth_test_for_each_token_type_and_auth_errors() {
    let sim = start().await;
    let t = tokens(&sim);
    let bot = call(&sim, "auth.test", &t.bot, json!({})).await;
    assert_ok(&bot);
    assert_eq!(bot["user_id"], BOT);
    assert_eq!(bot["bot_id"], "B0SIMBOT001");
    assert_eq!(bot["team_id"], "T0SIMTEAM01");
    assert_eq!(bot["url"], "https://acme.slack.com/");
    let alice = call(&sim, "auth.test", &t.alice, json!({})).await;
    assert_eq!(alice["user_id"], ALICE);
    assert_eq!(alice["user"], "alice");
    assert!(alice.get("bot_id").is_none());
    let app = call(&sim, "auth.test", &t.app, json!({})).await;
    assert_eq!(
        app,
        json!({"ok": true, "app_name": "Switchboard", "app_id": "A0SIMAPP001"})
    );

    assert_err(&call(&sim, "auth.test", "", json!({})).await, "not_authed");
    assert_err(
        &call(&sim, "auth.test", "xoxb-nope", json!({})).await,
        "invalid_auth",
    );
    sim.revoke_token(&t.carol).expect("revoke");
    assert_err(
        &call(&sim, "auth.test", &t.carol, json!({})).await,
        "token_revoked",
    );
    // A deactivated person's token.
    let dave = sim.issue_user_token("dave", None).expect("token");
    assert_err(
        &call(&sim, "auth.test", &dave, json!({})).await,
        "account_inactive",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn token_types_and_scopes_are_enforced() {
    let sim = start().await;
    let t = tokens(&sim);
    // xapp only for apps.connections.open (and auth.test, above).
    for m in ["users.list", "chat.postMessage", "conversations.list"] {
        assert_err(
            &call(&sim, m, &t.app, json!({"channel": GENERAL, "text": "x"})).await,
            "not_allowed_token_type",
        );
    }
    assert_err(
        &call(&sim, "apps.connections.open", &t.bot, json!({})).await,
        "not_allowed_token_type",
    );
    assert_err(
        &call(&sim, "apps.connections.open", &t.alice, json!({})).await,
        "not_allowed_token_type",
    );
    // The app token must be in the header, not a POST parameter.
    let r = call_raw(
        &sim,
        "apps.connections.open",
        None,
        Some("application/x-www-form-urlencoded"),
        &format!("token={}", t.app),
    )
    .await;
    assert_err(&r.json::<Value>().await.expect("json"), "missing_args");
    let ok = call_json_empty(&sim, "apps.connections.open", &t.app).await;
    assert_ok(&ok);
    assert!(
        ok["url"]
            .as_str()
            .expect("url")
            .starts_with("ws://127.0.0.1:")
    );

    // missing_scope carries needed and provided.
    sim.set_bot_scopes(&["channels:read", "chat:write"]);
    let r = call(&sim, "users.list", &t.bot, json!({})).await;
    assert_eq!(
        r,
        json!({"ok": false, "error": "missing_scope", "needed": "users:read", "provided": "channels:read,chat:write"})
    );
    // Type-dependent scopes: private channels need groups:read.
    let r = call(
        &sim,
        "conversations.info",
        &t.bot,
        json!({"channel": SECRET}),
    )
    .await;
    assert_eq!(r["needed"], "groups:read");
    let r = call(
        &sim,
        "conversations.list",
        &t.bot,
        json!({"types": "public_channel,im"}),
    )
    .await;
    assert_eq!(r["needed"], "im:read");
    // Per-message identity needs chat:write.customize.
    let r = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "hi", "username": "Zed"}),
    )
    .await;
    assert_eq!(r["needed"], "chat:write.customize");
    // A bot outside a public channel needs chat:write.public to post there.
    let r = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": RANDOM, "text": "hi"}),
    )
    .await;
    assert_err(&r, "not_in_channel");
    let limited = sim
        .issue_user_token("alice", Some(&["chat:write"]))
        .expect("token");
    let r = call(
        &sim,
        "conversations.history",
        &limited,
        json!({"channel": GENERAL}),
    )
    .await;
    assert_eq!(r["needed"], "channels:history");
    assert_eq!(r["provided"], "chat:write");
    sim.shutdown().await;
}

#[tokio::test]
async fn user_tokens_act_as_the_person() {
    let sim = start().await;
    let t = tokens(&sim);
    let r = call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "hello *world* <@U0BOB000001>"}),
    )
    .await;
    assert_ok(&r);
    let m = &r["message"];
    assert_eq!(m["user"], ALICE);
    assert!(m.get("bot_id").is_none());
    assert!(m["client_msg_id"].as_str().is_some_and(|s| s.len() == 36));
    let els = &m["blocks"][0]["elements"][0]["elements"];
    assert_eq!(m["blocks"][0]["type"], "rich_text");
    assert_eq!(
        els[1],
        json!({"type": "text", "text": "world", "style": {"bold": true}})
    );
    assert_eq!(els[3], json!({"type": "user", "user_id": BOB}));
    // Username overrides are ignored for people: it is their own message.
    let r = call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "x", "username": "Mallory"}),
    )
    .await;
    assert_eq!(r["message"]["user"], ALICE);
    assert!(r["message"].get("username").is_none());
    // People cannot post where they are not members, nor see private channels of others.
    let r = call(
        &sim,
        "chat.postMessage",
        &t.carol,
        json!({"channel": RANDOM, "text": "x"}),
    )
    .await;
    assert_err(&r, "not_in_channel");
    let r = call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": LOCKED, "text": "x"}),
    )
    .await;
    assert_err(&r, "channel_not_found");
    // …but may read public channels they are not in (bots may not).
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": RANDOM, "text": "in random"}),
    )
    .await;
    let r = call(
        &sim,
        "conversations.history",
        &t.carol,
        json!({"channel": RANDOM}),
    )
    .await;
    assert_ok(&r);
    assert_eq!(r["messages"][0]["text"], "in random");
    assert_err(
        &call(
            &sim,
            "conversations.history",
            &t.bot,
            json!({"channel": RANDOM}),
        )
        .await,
        "not_in_channel",
    );
    assert_err(
        &call(
            &sim,
            "conversations.history",
            &t.carol,
            json!({"channel": LOCKED}),
        )
        .await,
        "channel_not_found",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn post_message_shapes_and_errors() {
    let sim = start().await;
    let t = tokens(&sim);
    // App posts: no subtype, bot_id/app_id/bot_profile, user = bot user.
    let r = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "from the app"}),
    )
    .await;
    assert_ok(&r);
    assert_eq!(r["channel"], GENERAL);
    let m = &r["message"];
    assert!(m.get("subtype").is_none());
    assert_eq!(m["bot_id"], "B0SIMBOT001");
    assert_eq!(m["app_id"], "A0SIMAPP001");
    assert_eq!(m["user"], BOT);
    assert_eq!(m["bot_profile"]["name"], "Switchboard");
    assert!(m.get("client_msg_id").is_none());
    // Per-message identity: bot_message with username and icons; icon_emoji wins.
    let r = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "puppet", "username": "Remote Rita",
        "icon_url": "https://example.com/r.png", "icon_emoji": ":cat:"}),
    )
    .await;
    let m = &r["message"];
    assert_eq!(m["subtype"], "bot_message");
    assert_eq!(m["username"], "Remote Rita");
    assert_eq!(m["icons"], json!({"emoji": "cat"}));
    assert!(m.get("user").is_none());
    let r = call(&sim, "chat.postMessage", &t.bot, json!({"channel": GENERAL, "text": "p2", "username": "R", "icon_url": "https://example.com/r.png"})).await;
    assert_eq!(
        r["message"]["icons"],
        json!({"image_64": "https://example.com/r.png"})
    );
    // Channel by name and by user id (a DM).
    let r = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": "#general", "text": "by name"}),
    )
    .await;
    assert_eq!(r["channel"], GENERAL);
    let r = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": ALICE, "text": "dm"}),
    )
    .await;
    assert!(r["channel"].as_str().expect("channel").starts_with('D'));
    // Metadata is stored and returned.
    let md = json!({"event_type": "switchboard_relay", "event_payload": {"origin": "teams:1"}});
    let r = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "m", "metadata": md.to_string()}),
    )
    .await;
    assert_eq!(r["message"]["metadata"], md);
    // Errors.
    for (args, code) in [
        (json!({"channel": GENERAL}), "no_text"),
        (json!({"text": "x"}), "channel_not_found"),
        (
            json!({"channel": "C0NOPE00001", "text": "x"}),
            "channel_not_found",
        ),
        (json!({"channel": LOCKED, "text": "x"}), "channel_not_found"),
        (json!({"channel": ARCHIVED, "text": "x"}), "is_archived"),
        (
            json!({"channel": GENERAL, "blocks": "not json"}),
            "invalid_blocks_format",
        ),
        (
            json!({"channel": GENERAL, "blocks": "[{\"text\":1}]"}),
            "invalid_blocks",
        ),
        (
            json!({"channel": GENERAL, "text": "x", "metadata": "{"}),
            "invalid_metadata_format",
        ),
        (
            json!({"channel": GENERAL, "text": "x", "metadata": "{\"event_type\":\"a\"}"}),
            "invalid_metadata_schema",
        ),
        (
            json!({"channel": GENERAL, "text": "x", "markdown_text": "**y**"}),
            "markdown_text_conflict",
        ),
    ] {
        assert_err(
            &call(&sim, "chat.postMessage", &t.bot, args.clone()).await,
            code,
        );
    }
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"type": "section", "text": {"type": "mrkdwn", "text": i.to_string()}}))
        .collect();
    let r = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "blocks": Value::Array(many).to_string()}),
    )
    .await;
    assert_err(&r, "invalid_blocks");
    // Blocks are kept as given (with block ids added).
    let r = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "fallback",
        "blocks": "[{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":\"*hi*\"}}]"}),
    )
    .await;
    assert_eq!(r["message"]["blocks"][0]["type"], "section");
    assert!(r["message"]["blocks"][0]["block_id"].is_string());
    sim.shutdown().await;
}

#[tokio::test]
async fn long_text_is_truncated_on_post_and_refused_on_update() {
    let sim = start().await;
    let t = tokens(&sim);
    let long: String = "é".repeat(40_005);
    let r = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": long}),
    )
    .await;
    assert_ok(&r);
    assert_eq!(
        r["message"]["text"].as_str().expect("text").chars().count(),
        40_000
    );
    assert_eq!(r["warning"], "message_truncated");
    assert_eq!(
        r["response_metadata"]["warnings"],
        json!(["message_truncated"])
    );
    assert!(
        r["response_metadata"]["messages"][0]
            .as_str()
            .expect("msg")
            .starts_with("[WARN] Your message was truncated")
    );
    // Exactly 40,000 is not truncated.
    let exact: String = "a".repeat(40_000);
    let r = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": exact}),
    )
    .await;
    assert!(r.get("warning").is_none());
    let ts = r["ts"].as_str().expect("ts").to_string();
    let r = call(
        &sim,
        "chat.update",
        &t.bot,
        json!({"channel": GENERAL, "ts": ts, "text": "b".repeat(4_001)}),
    )
    .await;
    assert_err(&r, "msg_too_long");
    let r = call(
        &sim,
        "chat.update",
        &t.bot,
        json!({"channel": GENERAL, "ts": ts, "text": "b".repeat(4_000)}),
    )
    .await;
    assert_ok(&r);
    sim.shutdown().await;
}

#[tokio::test]
async fn update_delete_permalink_and_authorship() {
    let sim = start().await;
    let t = tokens(&sim);
    let r = call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "original"}),
    )
    .await;
    let ts = r["ts"].as_str().expect("ts").to_string();
    // Others cannot edit or delete it.
    assert_err(
        &call(
            &sim,
            "chat.update",
            &t.bob,
            json!({"channel": GENERAL, "ts": ts, "text": "x"}),
        )
        .await,
        "cant_update_message",
    );
    assert_err(
        &call(
            &sim,
            "chat.update",
            &t.bot,
            json!({"channel": GENERAL, "ts": ts, "text": "x"}),
        )
        .await,
        "cant_update_message",
    );
    assert_err(
        &call(
            &sim,
            "chat.delete",
            &t.bot,
            json!({"channel": GENERAL, "ts": ts}),
        )
        .await,
        "cant_delete_message",
    );
    assert_err(
        &call(
            &sim,
            "chat.update",
            &t.alice,
            json!({"channel": GENERAL, "ts": "1.000001", "text": "x"}),
        )
        .await,
        "message_not_found",
    );
    assert_err(
        &call(
            &sim,
            "chat.update",
            &t.alice,
            json!({"channel": GENERAL, "ts": ts}),
        )
        .await,
        "no_text",
    );
    let r = call(
        &sim,
        "chat.update",
        &t.alice,
        json!({"channel": GENERAL, "ts": ts, "text": "edited _now_"}),
    )
    .await;
    assert_ok(&r);
    assert_eq!(r["text"], "edited _now_");
    assert_eq!(r["ts"], ts);
    assert_eq!(r["message"]["edited"]["user"], ALICE);
    assert_eq!(
        r["message"]["blocks"][0]["elements"][0]["elements"][1]["style"],
        json!({"italic": true})
    );
    let p = call(
        &sim,
        "chat.getPermalink",
        &t.bob,
        json!({"channel": GENERAL, "message_ts": ts}),
    )
    .await;
    assert_eq!(
        p["permalink"],
        format!(
            "https://acme.slack.com/archives/{GENERAL}/p{}",
            ts.replace('.', "")
        )
    );
    assert_err(
        &call(
            &sim,
            "chat.getPermalink",
            &t.bob,
            json!({"channel": GENERAL, "message_ts": "1.000001"}),
        )
        .await,
        "message_not_found",
    );
    let r = call(
        &sim,
        "chat.delete",
        &t.alice,
        json!({"channel": GENERAL, "ts": ts}),
    )
    .await;
    assert_eq!(r, json!({"ok": true, "channel": GENERAL, "ts": ts}));
    assert_err(
        &call(
            &sim,
            "chat.delete",
            &t.alice,
            json!({"channel": GENERAL, "ts": ts}),
        )
        .await,
        "message_not_found",
    );
    // Bots edit their own messages; the edit is attributed to the bot id.
    let r = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "v1"}),
    )
    .await;
    let bts = r["ts"].as_str().expect("ts").to_string();
    let r = call(
        &sim,
        "chat.update",
        &t.bot,
        json!({"channel": GENERAL, "ts": bts, "text": "v2"}),
    )
    .await;
    assert_eq!(r["message"]["edited"]["user"], "B0SIMBOT001");
    assert!(
        r["message"]["edited"]["ts"]
            .as_str()
            .expect("ts")
            .ends_with(".000000")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn threads_history_and_replies() {
    let sim = start().await;
    let t = tokens(&sim);
    let parent = call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "parent"}),
    )
    .await;
    let pts = parent["ts"].as_str().expect("ts").to_string();
    let r1 = call(
        &sim,
        "chat.postMessage",
        &t.bob,
        json!({"channel": GENERAL, "text": "reply 1", "thread_ts": pts}),
    )
    .await;
    assert_eq!(r1["message"]["thread_ts"], pts);
    assert_eq!(r1["message"]["parent_user_id"], ALICE);
    // Replying to a reply lands in the parent's thread.
    let r1ts = r1["ts"].as_str().expect("ts").to_string();
    let r2 = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "reply 2", "thread_ts": r1ts, "reply_broadcast": true}),
    )
    .await;
    assert_eq!(r2["message"]["thread_ts"], pts);
    assert_eq!(r2["message"]["subtype"], "thread_broadcast");
    assert_eq!(r2["message"]["root"]["ts"], pts);
    let h = call(
        &sim,
        "conversations.history",
        &t.alice,
        json!({"channel": GENERAL}),
    )
    .await;
    let msgs = h["messages"].as_array().expect("messages");
    // Newest first; the plain reply is not in history, the broadcast is.
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["subtype"], "thread_broadcast");
    assert_eq!(msgs[1]["ts"], pts);
    assert_eq!(msgs[1]["reply_count"], 2);
    assert_eq!(msgs[1]["reply_users_count"], 2);
    assert_eq!(msgs[1]["reply_users"], json!([BOB, BOT]));
    assert_eq!(msgs[1]["latest_reply"], r2["ts"]);
    assert_eq!(h["has_more"], false);
    assert!(h.get("response_metadata").is_none());
    let rep = call(
        &sim,
        "conversations.replies",
        &t.alice,
        json!({"channel": GENERAL, "ts": r1ts}),
    )
    .await;
    let texts: Vec<&str> = rep["messages"]
        .as_array()
        .expect("m")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(texts, ["parent", "reply 1", "reply 2"]);
    assert_err(
        &call(
            &sim,
            "conversations.replies",
            &t.alice,
            json!({"channel": GENERAL, "ts": "1.000001"}),
        )
        .await,
        "thread_not_found",
    );
    assert_err(
        &call(
            &sim,
            "conversations.history",
            &t.alice,
            json!({"channel": GENERAL, "oldest": "abc"}),
        )
        .await,
        "invalid_ts_oldest",
    );
    assert_err(
        &call(
            &sim,
            "conversations.history",
            &t.alice,
            json!({"channel": GENERAL, "cursor": "!!"}),
        )
        .await,
        "invalid_cursor",
    );
    // oldest/latest bounds.
    let h = call(
        &sim,
        "conversations.history",
        &t.alice,
        json!({"channel": GENERAL, "oldest": pts}),
    )
    .await;
    assert_eq!(h["messages"].as_array().expect("m").len(), 1);
    let h = call(
        &sim,
        "conversations.history",
        &t.alice,
        json!({"channel": GENERAL, "oldest": pts, "inclusive": true}),
    )
    .await;
    assert_eq!(h["messages"].as_array().expect("m").len(), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn cursor_pagination_over_several_pages() {
    let sim = start().await;
    let t = tokens(&sim);
    // History: 7 messages, pages of 3 → 3 + 3 + 1.
    let mut posted = Vec::new();
    for i in 0..7 {
        let r = call(
            &sim,
            "chat.postMessage",
            &t.alice,
            json!({"channel": GENERAL, "text": format!("m{i}")}),
        )
        .await;
        posted.push(r["ts"].as_str().expect("ts").to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({"channel": GENERAL, "limit": 3});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let h = call(&sim, "conversations.history", &t.alice, args).await;
        pages += 1;
        for m in h["messages"].as_array().expect("m") {
            seen.push(m["ts"].as_str().expect("ts").to_string());
        }
        if h["has_more"] == true {
            let c = h["response_metadata"]["next_cursor"]
                .as_str()
                .expect("cursor")
                .to_string();
            assert!(!c.is_empty());
            cursor = Some(c);
        } else {
            break;
        }
    }
    assert_eq!(pages, 3);
    posted.reverse();
    assert_eq!(seen, posted);

    // users.list: 7 users (Slackbot, the bot user, 5 seeded) in pages of 3; last next_cursor "".
    let mut ids = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let r = call(
            &sim,
            "users.list",
            &t.bot,
            json!({"limit": 3, "cursor": cursor}),
        )
        .await;
        assert_ok(&r);
        pages += 1;
        ids.extend(
            r["members"]
                .as_array()
                .expect("m")
                .iter()
                .map(|u| u["id"].as_str().unwrap_or("").to_string()),
        );
        cursor = r["response_metadata"]["next_cursor"]
            .as_str()
            .expect("cursor")
            .to_string();
        if cursor.is_empty() {
            break;
        }
        // Opaque, base64-looking cursors.
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
            "{cursor}"
        );
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 7);
    assert!(ids.contains(&"USLACKBOT".to_string()));
    assert_err(
        &call(&sim, "users.list", &t.bot, json!({"cursor": "bm9wZQ=="})).await,
        "invalid_cursor",
    );

    // conversations.list with every type visible to alice, pages of 2.
    let mut names = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = call(
            &sim,
            "conversations.list",
            &t.alice,
            json!({"limit": 2, "cursor": cursor, "types": "public_channel,private_channel"}),
        )
        .await;
        names.extend(
            r["channels"]
                .as_array()
                .expect("c")
                .iter()
                .map(|c| c["name"].as_str().unwrap_or("").to_string()),
        );
        cursor = r["response_metadata"]["next_cursor"]
            .as_str()
            .expect("cursor")
            .to_string();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(names, ["general", "random", "secret", "old"]);

    // conversations.members in pages of 2.
    let r = call(
        &sim,
        "conversations.members",
        &t.bot,
        json!({"channel": GENERAL, "limit": 2}),
    )
    .await;
    assert_eq!(r["members"], json!([ALICE, BOB]));
    let c = r["response_metadata"]["next_cursor"]
        .as_str()
        .expect("c")
        .to_string();
    let r = call(
        &sim,
        "conversations.members",
        &t.bot,
        json!({"channel": GENERAL, "limit": 2, "cursor": c}),
    )
    .await;
    assert_eq!(r["members"], json!(["U0CAROL0001", BOT]));
    assert_eq!(r["response_metadata"]["next_cursor"], "");
    assert_err(
        &call(
            &sim,
            "conversations.members",
            &t.bot,
            json!({"channel": GENERAL, "limit": "many"}),
        )
        .await,
        "invalid_limit",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn conversations_list_info_join_open() {
    let sim = start().await;
    let t = tokens(&sim);
    let r = call(
        &sim,
        "conversations.list",
        &t.bot,
        json!({"types": "public_channel,private_channel"}),
    )
    .await;
    let chans = r["channels"].as_array().expect("channels");
    let names: Vec<&str> = chans
        .iter()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["general", "random", "secret", "old"],
        "the bot does not see #locked"
    );
    let random = chans
        .iter()
        .find(|c| c["name"] == "random")
        .expect("random");
    assert_eq!(random["is_member"], false);
    assert_eq!(random["num_members"], 2);
    let r = call(
        &sim,
        "conversations.list",
        &t.bot,
        json!({"exclude_archived": true}),
    )
    .await;
    assert_eq!(r["channels"].as_array().expect("c").len(), 2);
    assert_err(
        &call(
            &sim,
            "conversations.list",
            &t.bot,
            json!({"types": "rooms"}),
        )
        .await,
        "invalid_types",
    );

    let r = call(
        &sim,
        "conversations.info",
        &t.bot,
        json!({"channel": SECRET, "include_num_members": true}),
    )
    .await;
    assert_eq!(r["channel"]["is_private"], true);
    assert_eq!(r["channel"]["num_members"], 2);
    assert_err(
        &call(
            &sim,
            "conversations.info",
            &t.bot,
            json!({"channel": LOCKED}),
        )
        .await,
        "channel_not_found",
    );
    assert_err(
        &call(&sim, "conversations.info", &t.bot, json!({})).await,
        "channel_not_found",
    );

    // Join: public ok, again warns, private refused, archived refused.
    let r = call(
        &sim,
        "conversations.join",
        &t.bot,
        json!({"channel": RANDOM}),
    )
    .await;
    assert_ok(&r);
    assert_eq!(r["channel"]["is_member"], true);
    assert!(r.get("warning").is_none());
    let r = call(
        &sim,
        "conversations.join",
        &t.bot,
        json!({"channel": RANDOM}),
    )
    .await;
    assert_eq!(r["warning"], "already_in_channel");
    assert_eq!(
        r["response_metadata"]["warnings"],
        json!(["already_in_channel"])
    );
    assert_err(
        &call(
            &sim,
            "conversations.join",
            &t.bot,
            json!({"channel": SECRET}),
        )
        .await,
        "method_not_supported_for_channel_type",
    );
    assert_err(
        &call(
            &sim,
            "conversations.join",
            &t.carol,
            json!({"channel": ARCHIVED}),
        )
        .await,
        "is_archived",
    );
    assert_err(
        &call(
            &sim,
            "conversations.join",
            &t.bot,
            json!({"channel": "C0NOPE00001"}),
        )
        .await,
        "channel_not_found",
    );
    // The join left a channel_join message.
    let h = call(
        &sim,
        "conversations.history",
        &t.bot,
        json!({"channel": RANDOM}),
    )
    .await;
    assert_eq!(h["messages"][0]["subtype"], "channel_join");
    assert_eq!(
        h["messages"][0]["text"],
        format!("<@{BOT}> has joined the channel")
    );

    // Open a DM and a group DM.
    let r = call(&sim, "conversations.open", &t.bot, json!({"users": ALICE})).await;
    let dm = r["channel"]["id"].as_str().expect("id").to_string();
    assert!(dm.starts_with('D'));
    assert!(r.get("already_open").is_none());
    let r = call(
        &sim,
        "conversations.open",
        &t.bot,
        json!({"users": ALICE, "return_im": true}),
    )
    .await;
    assert_eq!(r["already_open"], true);
    assert_eq!(r["channel"]["id"], dm);
    assert_eq!(r["channel"]["user"], ALICE);
    assert_eq!(r["channel"]["is_im"], true);
    let r = call(
        &sim,
        "conversations.open",
        &t.alice,
        json!({"users": format!("{BOB},U0CAROL0001")}),
    )
    .await;
    let mpim = r["channel"]["id"].as_str().expect("id").to_string();
    let info = call(&sim, "conversations.info", &t.bob, json!({"channel": mpim})).await;
    assert_eq!(info["channel"]["is_mpim"], true);
    assert_eq!(info["channel"]["name"], "mpdm-alice--bob--carol-1");
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
    assert_err(
        &call(&sim, "conversations.open", &t.bot, json!({})).await,
        "users_list_not_supplied",
    );
    assert_err(
        &call(
            &sim,
            "conversations.open",
            &t.bot,
            json!({"channel": GENERAL}),
        )
        .await,
        "method_not_supported_for_channel_type",
    );
    // The person sees the DM from their side.
    let r = call(&sim, "conversations.list", &t.alice, json!({"types": "im"})).await;
    assert_eq!(r["channels"][0]["id"], dm);
    assert_eq!(r["channels"][0]["user"], BOT);
    sim.shutdown().await;
}

#[tokio::test]
async fn users_and_team() {
    let sim = start().await;
    let t = tokens(&sim);
    let r = call(&sim, "users.info", &t.bot, json!({"user": ALICE})).await;
    let u = &r["user"];
    assert_eq!(u["name"], "alice");
    assert_eq!(u["real_name"], "Alice Liddell");
    assert_eq!(u["profile"]["display_name"], "alice");
    assert_eq!(u["profile"]["image_72"], "https://example.com/alice.png");
    assert_eq!(u["is_bot"], false);
    let r = call(&sim, "users.info", &t.bot, json!({"user": "U0DAVE00001"})).await;
    assert_eq!(r["user"]["deleted"], true);
    let r = call(&sim, "users.info", &t.bot, json!({"user": "U0OTHERBOT1"})).await;
    assert_eq!(r["user"]["is_bot"], true);
    assert!(
        r["user"]["profile"]["bot_id"]
            .as_str()
            .is_some_and(|b| b.starts_with('B'))
    );
    let r = call(&sim, "users.info", &t.bot, json!({"user": BOT})).await;
    assert_eq!(r["user"]["profile"]["api_app_id"], "A0SIMAPP001");
    assert_err(
        &call(&sim, "users.info", &t.bot, json!({"user": "U0NOBODY001"})).await,
        "user_not_found",
    );
    assert_err(
        &call(&sim, "users.info", &t.bot, json!({})).await,
        "user_not_found",
    );
    let r = call(&sim, "users.profile.get", &t.alice, json!({})).await;
    assert_eq!(r["profile"]["real_name"], "Alice Liddell");
    let r = call(&sim, "users.profile.get", &t.bot, json!({"user": BOB})).await;
    assert_eq!(r["profile"]["real_name"], "Bob Builder");
    assert_err(
        &call(
            &sim,
            "users.profile.get",
            &t.bot,
            json!({"user": "U0NOBODY001"}),
        )
        .await,
        "user_not_found",
    );
    let r = call(&sim, "team.info", &t.bot, json!({})).await;
    assert_eq!(r["team"]["id"], "T0SIMTEAM01");
    assert_eq!(r["team"]["domain"], "acme");
    assert_err(
        &call(&sim, "team.info", &t.bot, json!({"team": "T0OTHER0001"})).await,
        "team_not_found",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn reactions_add_remove_and_errors() {
    let sim = start().await;
    let t = tokens(&sim);
    let r = call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "react to me"}),
    )
    .await;
    let ts = r["ts"].as_str().expect("ts").to_string();
    let add = |tok: String, name: &'static str| {
        let sim = &sim;
        let ts = ts.clone();
        async move {
            call(
                sim,
                "reactions.add",
                &tok,
                json!({"channel": GENERAL, "timestamp": ts, "name": name}),
            )
            .await
        }
    };
    assert_ok(&add(t.bob.clone(), "thumbsup").await);
    assert_ok(&add(t.bot.clone(), "thumbsup").await);
    assert_ok(&add(t.bob.clone(), "heart").await);
    assert_err(&add(t.bob.clone(), "thumbsup").await, "already_reacted");
    assert_err(&add(t.bob.clone(), ":thumbsup:").await, "invalid_name");
    assert_err(&add(t.bob.clone(), "").await, "invalid_name");
    let h = call(
        &sim,
        "conversations.history",
        &t.alice,
        json!({"channel": GENERAL, "limit": 1}),
    )
    .await;
    assert_eq!(
        h["messages"][0]["reactions"],
        json!([{"name": "thumbsup", "users": [BOB, BOT], "count": 2}, {"name": "heart", "users": [BOB], "count": 1}])
    );
    let rm = call(
        &sim,
        "reactions.remove",
        &t.bob,
        json!({"channel": GENERAL, "timestamp": ts, "name": "heart"}),
    )
    .await;
    assert_eq!(rm, json!({"ok": true}));
    assert_err(
        &call(
            &sim,
            "reactions.remove",
            &t.bob,
            json!({"channel": GENERAL, "timestamp": ts, "name": "heart"}),
        )
        .await,
        "no_reaction",
    );
    assert_err(
        &call(
            &sim,
            "reactions.add",
            &t.bob,
            json!({"channel": GENERAL, "timestamp": "1.000001", "name": "x"}),
        )
        .await,
        "message_not_found",
    );
    assert_err(
        &call(
            &sim,
            "reactions.add",
            &t.bob,
            json!({"channel": GENERAL, "name": "x"}),
        )
        .await,
        "no_item_specified",
    );
    assert_err(
        &call(
            &sim,
            "reactions.add",
            &t.bob,
            json!({"channel": GENERAL, "timestamp": "zz", "name": "x"}),
        )
        .await,
        "bad_timestamp",
    );
    assert_err(
        &call(
            &sim,
            "reactions.add",
            &t.alice,
            json!({"channel": LOCKED, "timestamp": ts, "name": "x"}),
        )
        .await,
        "channel_not_found",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn request_bodies_form_json_empty_query_and_malformed() {
    let sim = start().await;
    let t = tokens(&sim);
    // JSON, with structured blocks.
    let r = call_json(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "json",
        "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "hi"}}]}),
    )
    .await;
    assert_ok(&r);
    assert_eq!(r["message"]["blocks"][0]["type"], "section");
    // Empty body labelled JSON (the SDK's no-argument call).
    assert_ok(&call_json_empty(&sim, "auth.test", &t.bot).await);
    // Token as a form parameter; and as a query parameter with GET.
    let r = call_raw(
        &sim,
        "auth.test",
        None,
        Some("application/x-www-form-urlencoded"),
        &format!("token={}", t.bot),
    )
    .await;
    assert_ok(&r.json::<Value>().await.expect("json"));
    let r = http()
        .get(format!(
            "{}?token={}&user={ALICE}",
            sim.api_url("users.info"),
            t.bot
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(r.json::<Value>().await.expect("json")["user"]["id"], ALICE);
    // A token inside a JSON body is not read (Slack takes it from the header only).
    let r = call_raw(
        &sim,
        "auth.test",
        None,
        Some("application/json; charset=utf-8"),
        &json!({"token": t.bot}).to_string(),
    )
    .await;
    assert_err(&r.json::<Value>().await.expect("json"), "not_authed");
    // Methods without JSON support ignore JSON arguments.
    let r = call_raw(
        &sim,
        "users.info",
        Some(&t.bot),
        Some("application/json; charset=utf-8"),
        &json!({"user": ALICE}).to_string(),
    )
    .await;
    assert_err(&r.json::<Value>().await.expect("json"), "user_not_found");
    // JSON without a charset works, with Slack's warning.
    let r = call_raw(
        &sim,
        "auth.test",
        Some(&t.bot),
        Some("application/json"),
        "{}",
    )
    .await;
    let v: Value = r.json().await.expect("json");
    assert_ok(&v);
    assert_eq!(
        v["response_metadata"]["warnings"],
        json!(["missing_charset"])
    );
    // Malformed bodies.
    for (ct, body, code) in [
        (Some("application/json"), "{not json", "invalid_json"),
        (Some("application/json"), "[1,2]", "json_not_object"),
        (None, "a=b", "missing_post_type"),
        (Some("image/png"), "xx", "invalid_post_type"),
        (Some("application/json"), "\"str\"", "json_not_object"),
    ] {
        let r = call_raw(&sim, "chat.postMessage", Some(&t.bot), ct, body).await;
        assert_eq!(r.status().as_u16(), 200);
        assert_err(&r.json::<Value>().await.expect("json"), code);
    }
    // Wrong types never panic: numbers where strings go, arrays where strings go.
    let r = call_json(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": ["x"], "text": 5}),
    )
    .await;
    assert_err(&r, "channel_not_found");
    let r = call_json(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": 5, "thread_ts": {"a": 1}}),
    )
    .await;
    assert_ok(&r);
    assert_eq!(r["message"]["text"], "5");
    // multipart/form-data text fields.
    let body = "--XX\r\nContent-Disposition: form-data; name=\"channel\"\r\n\r\nC0GENERAL01\r\n--XX\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nmultipart\r\n--XX--\r\n";
    let r = call_raw(
        &sim,
        "chat.postMessage",
        Some(&t.bot),
        Some("multipart/form-data; boundary=XX"),
        body,
    )
    .await;
    assert_eq!(
        r.json::<Value>().await.expect("json")["message"]["text"],
        "multipart"
    );
    // Unknown methods.
    let r = call_raw(&sim, "chat.nope", Some(&t.bot), None, "").await;
    assert_eq!(r.status().as_u16(), 404);
    assert_err(&r.json::<Value>().await.expect("json"), "unknown_method");
    sim.shutdown().await;
}

#[tokio::test]
async fn files_upload_flow_info_and_download() {
    let sim = start().await;
    let t = tokens(&sim);
    let content = "hello from a file\n";
    let r = call(
        &sim,
        "files.getUploadURLExternal",
        &t.alice,
        json!({"filename": "notes.txt", "length": content.len()}),
    )
    .await;
    assert_ok(&r);
    let file_id = r["file_id"].as_str().expect("file_id").to_string();
    let url = r["upload_url"].as_str().expect("upload_url").to_string();
    assert!(url.starts_with(&sim.base_url()));
    // Completing before the bytes arrive fails.
    let files_arg = json!([{"id": file_id, "title": "My notes"}]).to_string();
    assert_err(
        &call(
            &sim,
            "files.completeUploadExternal",
            &t.alice,
            json!({"files": files_arg}),
        )
        .await,
        "file_not_found",
    );
    // Raw bytes, no Authorization.
    let up = http()
        .post(&url)
        .body(content)
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status().as_u16(), 200);
    assert_eq!(
        up.text().await.expect("text"),
        format!("OK - {}", content.len())
    );
    // Someone else cannot complete it.
    assert_err(
        &call(
            &sim,
            "files.completeUploadExternal",
            &t.bob,
            json!({"files": files_arg}),
        )
        .await,
        "access_denied",
    );
    let r = call(
        &sim,
        "files.completeUploadExternal",
        &t.alice,
        json!({"files": files_arg, "channel_id": GENERAL, "initial_comment": "see *this*"}),
    )
    .await;
    assert_ok(&r);
    assert_eq!(r["files"][0]["id"], file_id);
    assert_eq!(r["files"][0]["title"], "My notes");
    let h = call(
        &sim,
        "conversations.history",
        &t.bob,
        json!({"channel": GENERAL, "limit": 1}),
    )
    .await;
    let m = &h["messages"][0];
    assert_eq!(m["subtype"], "file_share");
    assert_eq!(m["upload"], true);
    assert_eq!(m["text"], "see *this*");
    assert_eq!(m["files"][0]["id"], file_id);
    assert_eq!(m["files"][0]["name"], "notes.txt");
    assert_eq!(m["files"][0]["mimetype"], "text/plain");
    let info = call(&sim, "files.info", &t.bob, json!({"file": file_id})).await;
    assert_eq!(info["file"]["size"], content.len());
    assert_eq!(info["file"]["channels"], json!([GENERAL]));
    let dl = info["file"]["url_private_download"]
        .as_str()
        .expect("url")
        .to_string();
    let got = http()
        .get(&dl)
        .bearer_auth(&t.bot)
        .send()
        .await
        .expect("download");
    assert_eq!(got.text().await.expect("text"), content);
    // Without a token Slack serves its HTML sign-in page (status 200), not the file.
    let got = http().get(&dl).send().await.expect("download");
    assert_eq!(got.status().as_u16(), 200);
    assert!(
        got.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html")
    );
    // Errors.
    assert_err(
        &call(&sim, "files.info", &t.bob, json!({"file": "F0NOPE00001"})).await,
        "file_not_found",
    );
    assert_err(
        &call(
            &sim,
            "files.getUploadURLExternal",
            &t.alice,
            json!({"filename": "x", "length": 0}),
        )
        .await,
        "missing_argument",
    );
    let r = call(
        &sim,
        "files.getUploadURLExternal",
        &t.alice,
        json!({"length": 3}),
    )
    .await;
    assert_err(&r, "invalid_arguments");
    assert_eq!(
        r["response_metadata"]["messages"][0],
        "[ERROR] missing required field: filename"
    );
    assert_err(
        &call(
            &sim,
            "files.completeUploadExternal",
            &t.alice,
            json!({"files": "nope"}),
        )
        .await,
        "invalid_arguments",
    );
    assert_err(
        &call(
            &sim,
            "files.completeUploadExternal",
            &t.alice,
            json!({"files": json!([{"id": "F0NOPE00001"}]).to_string()}),
        )
        .await,
        "file_not_found",
    );
    let bad_up = http()
        .post(format!("{}/upload/v1/nope", sim.base_url()))
        .body("x")
        .send()
        .await
        .expect("upload");
    assert_eq!(bad_up.status().as_u16(), 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn calls_lifecycle_and_call_blocks() {
    let sim = start().await;
    let t = tokens(&sim);
    let r = call(&sim, "calls.add", &t.bot, json!({"external_unique_id": "meet-1", "join_url": "https://meet.example/1",
        "title": "Standup", "created_by": ALICE, "users": json!([{"slack_id": ALICE}, {"external_id": "t-9", "display_name": "Tara (Teams)"}]).to_string()})).await;
    assert_ok(&r);
    let id = r["call"]["id"].as_str().expect("id").to_string();
    assert!(id.starts_with('R'));
    assert_eq!(r["call"]["title"], "Standup");
    assert_err(
        &call(
            &sim,
            "calls.add",
            &t.bot,
            json!({"external_unique_id": "x", "join_url": "https://x"}),
        )
        .await,
        "invalid_arguments",
    );
    assert_err(&call(&sim, "calls.add", &t.bot, json!({"external_unique_id": "x", "join_url": "https://x", "created_by": "U0NOBODY001"})).await, "invalid_created_by");
    let p = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "Join the call",
        "blocks": json!([{"type": "call", "call_id": id}]).to_string()}),
    )
    .await;
    let block = &p["message"]["blocks"][0];
    assert_eq!(block["type"], "call");
    assert_eq!(block["call"]["v1"]["join_url"], "https://meet.example/1");
    assert_eq!(block["call"]["media_backend_type"], "platform_call");
    assert_eq!(block["call"]["v1"]["channels"], json!([GENERAL]));
    let r = call(
        &sim,
        "calls.update",
        &t.bot,
        json!({"id": id, "title": "Standup (moved)"}),
    )
    .await;
    assert_eq!(r["call"]["title"], "Standup (moved)");
    let r = call(
        &sim,
        "calls.participants.add",
        &t.bot,
        json!({"id": id, "users": json!([{"slack_id": BOB}]).to_string()}),
    )
    .await;
    assert_eq!(r["call"]["users"].as_array().expect("u").len(), 3);
    let r = call(
        &sim,
        "calls.participants.remove",
        &t.bot,
        json!({"id": id, "users": json!([{"slack_id": ALICE}]).to_string()}),
    )
    .await;
    assert_eq!(r["call"]["users"].as_array().expect("u").len(), 2);
    let r = call(
        &sim,
        "calls.end",
        &t.bot,
        json!({"id": id, "duration": 600}),
    )
    .await;
    assert_eq!(
        r["call"]["date_end"].as_i64(),
        r["call"]["date_start"].as_i64().map(|s| s + 600)
    );
    assert_err(
        &call(&sim, "calls.end", &t.bot, json!({"id": id})).await,
        "inactive_call",
    );
    let r = call(&sim, "calls.info", &t.bot, json!({"id": id})).await;
    assert_eq!(r["call"]["id"], id);
    // The call block now shows the ended call.
    let h = call(
        &sim,
        "conversations.history",
        &t.bot,
        json!({"channel": GENERAL, "limit": 1}),
    )
    .await;
    assert_eq!(
        h["messages"][0]["blocks"][0]["call"]["v1"]["has_ended"],
        true
    );
    assert_err(
        &call(&sim, "calls.info", &t.bot, json!({"id": "R0NOPE00001"})).await,
        "invalid_call_id",
    );
    assert_err(
        &call(
            &sim,
            "calls.participants.add",
            &t.bot,
            json!({"id": id, "users": "[]"}),
        )
        .await,
        "inactive_call",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn junk_arguments_never_break_a_method() {
    let sim = start().await;
    let t = tokens(&sim);
    let names = [
        "channel",
        "ts",
        "text",
        "blocks",
        "attachments",
        "metadata",
        "thread_ts",
        "user",
        "users",
        "cursor",
        "limit",
        "types",
        "name",
        "timestamp",
        "file",
        "files",
        "filename",
        "length",
        "id",
        "duration",
        "oldest",
        "latest",
        "code",
        "client_id",
        "channel_id",
        "message_ts",
        "username",
        "icon_emoji",
        "reply_broadcast",
        "return_im",
    ];
    let junk = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1e300),
        json!(""),
        json!("\u{0}\u{ffff}"),
        json!("[{]"),
        json!([1, [2]]),
        json!({"a": {"b": []}}),
        json!("9".repeat(300)),
        json!("<@U0ALICE0001|x> *_~`"),
    ];
    let methods = [
        "auth.test",
        "team.info",
        "users.info",
        "users.list",
        "users.profile.get",
        "conversations.list",
        "conversations.info",
        "conversations.members",
        "conversations.history",
        "conversations.replies",
        "conversations.join",
        "conversations.open",
        "chat.postMessage",
        "chat.update",
        "chat.delete",
        "chat.getPermalink",
        "reactions.add",
        "reactions.remove",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
        "files.info",
        "calls.add",
        "calls.update",
        "calls.end",
        "calls.info",
        "calls.participants.add",
        "calls.participants.remove",
        "oauth.v2.access",
    ];
    for (i, m) in methods.iter().enumerate() {
        for (j, v) in junk.iter().enumerate() {
            let mut args = serde_json::Map::new();
            for (k, n) in names.iter().enumerate() {
                args.insert(n.to_string(), junk[(i + j + k) % junk.len()].clone());
            }
            args.insert("x".into(), v.clone());
            let body = Value::Object(args);
            for token in [&t.bot, &t.alice] {
                let r = call_raw(
                    &sim,
                    m,
                    Some(token),
                    Some("application/json; charset=utf-8"),
                    &body.to_string(),
                )
                .await;
                assert_eq!(r.status().as_u16(), 200, "{m} with {body}");
                let v: Value = r.json().await.expect("json");
                assert!(v["ok"].is_boolean(), "{m}: {v}");
                // The same as a form body (every value as text).
                let form: Vec<(String, String)> = body
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect();
                let r = call_raw(
                    &sim,
                    m,
                    Some(token),
                    Some("application/x-www-form-urlencoded"),
                    &serde_urlencoded::to_string(&form).expect("form"),
                )
                .await;
                assert_eq!(r.status().as_u16(), 200, "{m} form");
                assert!(r.json::<Value>().await.expect("json")["ok"].is_boolean());
            }
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn the_tap_reports_each_stored_message_with_its_instant() {
    let sim = start().await;
    let t = tokens(&sim);
    let mut tap = sim.tap_posts();
    let before = std::time::Instant::now();
    let mine = call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "from alice"}),
    )
    .await;
    assert_ok(&mine);
    let bots = call(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "from the app"}),
    )
    .await;
    assert_ok(&bots);
    let after = std::time::Instant::now();
    let first = tap.try_recv().expect("alice's post is reported");
    let second = tap.try_recv().expect("the app's post is reported");
    assert_eq!(
        (first.channel.as_str(), first.text.as_str(), first.by_app),
        (GENERAL, "from alice", false)
    );
    assert_eq!(first.ts.to_string(), mine["ts"].as_str().expect("ts"));
    assert_eq!(
        (second.text.as_str(), second.by_app),
        ("from the app", true)
    );
    assert!(before <= first.at && first.at <= second.at && second.at <= after);
    assert!(tap.try_recv().is_err(), "one report per message");
    sim.shutdown().await;
}
