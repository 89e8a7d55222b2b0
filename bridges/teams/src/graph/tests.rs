//! Unit and property tests for Graph payload parsing.

use super::*;
use proptest::prelude::*;
use serde_json::json;
use switchboard_model::{CallState, Inline, MemberChange};

fn bridge() -> BridgeId {
    BridgeId::new("teams:test")
}

fn ctx<'a>(bridge: &'a BridgeId, ours: &'a [String]) -> ParseContext<'a> {
    ParseContext {
        our_users: ours,
        ..ParseContext::new(bridge)
    }
}

fn channel_message() -> Value {
    json!({
        "id": "1616990032035",
        "replyToId": null,
        "etag": "1616990032035",
        "messageType": "message",
        "createdDateTime": "2021-03-29T03:53:52.035Z",
        "lastModifiedDateTime": "2021-03-29T03:53:52.035Z",
        "lastEditedDateTime": null,
        "deletedDateTime": null,
        "chatId": null,
        "from": {"application": null, "device": null,
                 "user": {"id": "aad-1", "displayName": "Robin Kline", "userIdentityType": "aadUser"}},
        "body": {"contentType": "html", "content": "<div>Hello <at id=\"0\">Jane</at></div>"},
        "channelIdentity": {"teamId": "team-1", "channelId": "19:c@thread.tacv2"},
        "attachments": [],
        "mentions": [{"id": 0, "mentionText": "Jane",
                      "mentioned": {"user": {"id": "aad-2", "displayName": "Jane Smith"}}}],
        "reactions": []
    })
}

fn events(parsed: Result<Parsed, Rejected>) -> Vec<Inbound> {
    match parsed {
        Ok(Parsed::Events(list)) => list,
        other => panic!("expected events, got {other:?}"),
    }
}

#[test]
fn parses_a_channel_root_message() {
    let b = bridge();
    let list = events(parse_message(&channel_message(), &ctx(&b, &[])));
    assert_eq!(list.len(), 1);
    let ev = &list[0];
    assert_eq!(ev.origin.channel.as_str(), "team-1/19:c@thread.tacv2");
    assert_eq!(ev.at, Timestamp(1_616_990_032_035));
    assert_eq!(
        ev.event.as_str(),
        "team-1/19:c@thread.tacv2|1616990032035|1616990032035|message"
    );
    assert_eq!(ev.sender.person.user.as_str(), "aad-1");
    assert!(!ev.sender.is_ours);
    let InboundKind::Message { id, message } = &ev.kind else {
        panic!("message")
    };
    assert_eq!(id.as_str(), "1616990032035");
    assert_eq!(message.thread_root, None);
    assert_eq!(
        message.body,
        RichText::builder()
            .text("Hello ")
            .inline(Inline::UserMention {
                bridge: b.clone(),
                user: "aad-2".into(),
                name: "Jane".into()
            })
            .build()
    );
}

#[test]
fn replies_edits_deletes_and_ours() {
    let b = bridge();
    let ours = vec!["aad-1".to_owned()];
    let mut reply = channel_message();
    reply["id"] = json!("1616990099999");
    reply["replyToId"] = json!("1616990032035");
    let list = events(parse_message(&reply, &ctx(&b, &ours)));
    assert!(list[0].sender.is_ours);
    let InboundKind::Message { id, message } = &list[0].kind else {
        panic!("message")
    };
    assert_eq!(id.as_str(), "1616990032035/1616990099999");
    assert_eq!(
        split_message_id(id),
        (Some("1616990032035"), "1616990099999")
    );
    assert_eq!(
        message.thread_root.as_ref().map(MessageId::as_str),
        Some("1616990032035")
    );

    let mut edited = reply.clone();
    edited["lastEditedDateTime"] = json!("2021-03-29T04:00:00Z");
    let list = events(parse_message(&edited, &ctx(&b, &[])));
    assert!(
        matches!(&list[0].kind, InboundKind::Edit { target, .. } if target.as_str() == "1616990032035/1616990099999")
    );

    let mut deleted = reply.clone();
    deleted["deletedDateTime"] = json!("2021-03-29T05:00:00Z");
    deleted["body"] = json!({"contentType": "html", "content": ""});
    let list = events(parse_message(&deleted, &ctx(&b, &[])));
    assert!(matches!(&list[0].kind, InboundKind::Delete { .. }));

    // The relay marker makes any post ours.
    let mut marked = channel_message();
    marked["body"]["content"] = json!(format!(
        "<p>hi</p>{}",
        relay_marker_html(DEFAULT_RELAY_MARKER, "op-1")
    ));
    let list = events(parse_message(&marked, &ctx(&b, &[])));
    assert!(list[0].sender.is_ours);
    let mut typed = channel_message();
    typed["body"]["content"] = json!("<p>itemid=&quot;switchboard-relay:x switchboard-relay</p>");
    assert!(
        !events(parse_message(&typed, &ctx(&b, &[])))[0]
            .sender
            .is_ours
    );
    let InboundKind::Message { message, .. } = &list[0].kind else {
        panic!("message")
    };
    assert_eq!(message.body, RichText::plain("hi"));
}

#[test]
fn chats_attachments_and_quotes() {
    let b = bridge();
    let msg = json!({
        "id": "1", "chatId": "19:x@thread.v2", "messageType": "message",
        "replyToId": "0",
        "from": {"user": {"id": "u", "displayName": null}},
        "body": {"contentType": "html", "content": "Budget <attachment id=\"a1\"></attachment><img src=\"https://graph.microsoft.com/v1.0/chats/c/messages/1/hostedContents/hc1/$value\">"},
        "attachments": [
            {"id": "a1", "contentType": "reference", "contentUrl": "https://x.sharepoint.com/f/budget.docx", "name": "budget.docx"},
            {"id": "q", "contentType": "messageReference", "content": "{\"messageId\":\"42\",\"messagePreview\":\"hi\"}"},
            {"id": "c", "contentType": "application/vnd.microsoft.card.adaptive", "content": "{}"}
        ]
    });
    let list = events(parse_message(&msg, &ctx(&b, &[])));
    let InboundKind::Message { id, message } = &list[0].kind else {
        panic!("message")
    };
    // Chats have no threads: replyToId is not a thread root.
    assert_eq!(id.as_str(), "1");
    assert_eq!(message.thread_root, None);
    assert_eq!(message.reply_to.as_ref().map(MessageId::as_str), Some("42"));
    // The inline image is an attachment; the SharePoint file a link.
    assert_eq!(message.attachments.len(), 1);
    assert_eq!(message.attachments[0].id, "hc1");
    assert_eq!(
        message.body.to_plain(),
        "Budget\n\n📎 budget.docx (https://x.sharepoint.com/f/budget.docx)\n\n[card]"
    );
    assert!(message.body.blocks.iter().any(|b| matches!(b,
        switchboard_model::Block::Paragraph { content }
            if content.iter().any(|i| matches!(i,
                switchboard_model::Inline::Link { url, .. } if url == "https://x.sharepoint.com/f/budget.docx")))));
    assert_eq!(list[0].sender.person.display_name, "u");
}

#[test]
fn ignores_and_rejects_by_name() {
    let b = bridge();
    let c = ctx(&b, &[]);
    let mut typing = channel_message();
    typing["messageType"] = json!("typing");
    assert_eq!(
        parse_message(&typing, &c),
        Ok(Parsed::Ignored(IgnoreReason::UnsupportedMessageType(
            "typing".into()
        )))
    );
    let mut empty = channel_message();
    empty["body"]["content"] = json!("<div>&nbsp;</div>");
    assert_eq!(
        parse_message(&empty, &c),
        Ok(Parsed::Ignored(IgnoreReason::EmptyMessage))
    );
    assert_eq!(parse_message(&json!([]), &c), Err(Rejected::NotAnObject));
    assert_eq!(
        parse_message(&json!({"id": "1"}), &c),
        Err(Rejected::NoConversation)
    );
    assert_eq!(
        parse_message(&json!({"id": 5}), &c),
        Err(Rejected::WrongType {
            field: "id",
            expected: "a string"
        })
    );
    assert_eq!(IgnoreReason::EmptyMessage.label(), "empty_message");
    assert_eq!(Rejected::NoConversation.label(), "no_conversation");
}

#[test]
fn system_events() {
    let b = bridge();
    let c = ctx(&b, &[]);
    let base = json!({"id": "5", "chatId": "19:m@thread.v2", "messageType": "systemEventMessage",
        "createdDateTime": "2021-03-28T03:50:10.266Z", "from": null,
        "body": {"contentType": "html", "content": "<systemEventMessage/>"}});
    let mut ended = base.clone();
    ended["eventDetail"] = json!({"@odata.type": "#microsoft.graph.callEndedEventMessageDetail",
        "callId": "c1", "callDuration": "PT1M5S",
        "callParticipants": [{"participant": {"user": {"id": "p1", "displayName": "Adele"}}}],
        "initiator": {"user": {"id": "p1", "displayName": null}}});
    let list = events(parse_message(&ended, &c));
    let InboundKind::Call(call) = &list[0].kind else {
        panic!("call")
    };
    assert_eq!(call.call.as_str(), "teams-call:c1");
    assert_eq!(
        call.state,
        CallState::Ended {
            duration: Some(std::time::Duration::from_secs(65))
        }
    );
    assert_eq!(call.participants.len(), 1);
    assert_eq!(list[0].sender.person.user.as_str(), "p1");

    let mut added = base.clone();
    added["eventDetail"] = json!({"@odata.type": "#microsoft.graph.membersAddedEventMessageDetail",
        "members": [{"id": "m1", "displayName": null}, {"id": "m2", "displayName": "Two"}]});
    let list = events(parse_message(&added, &c));
    assert_eq!(list.len(), 2);
    assert!(list[1].event.as_str().ends_with("#1"));
    assert!(matches!(
        &list[1].kind,
        InboundKind::Member { change: MemberChange::Joined, person } if person.display_name == "Two"
    ));

    let mut other = base;
    other["eventDetail"] = json!({"@odata.type": "#microsoft.graph.tabUpdatedEventMessageDetail"});
    assert_eq!(
        parse_message(&other, &c),
        Ok(Parsed::Ignored(IgnoreReason::SystemEvent(
            "tabUpdatedEventMessageDetail".into()
        )))
    );
}

#[test]
fn diff_finds_edits_reactions_and_deletes() {
    let b = bridge();
    let c = ctx(&b, &[]);
    let v1 = channel_message();
    assert!(matches!(
        events(diff(None, &v1, &c))[0].kind,
        InboundKind::Message { .. }
    ));
    assert_eq!(
        diff(Some(&v1), &v1, &c),
        Ok(Parsed::Ignored(IgnoreReason::Unchanged))
    );
    let mut v2 = v1.clone();
    v2["etag"] = json!("2");
    v2["reactions"] = json!([
        {"reactionType": "like", "createdDateTime": "2021-03-29T04:00:00Z",
         "user": {"user": {"id": "r1", "displayName": "R"}}},
        {"reactionType": "💘", "user": {"user": {"id": "r2"}}}
    ]);
    let list = events(diff(Some(&v1), &v2, &c));
    assert_eq!(list.len(), 2);
    assert!(matches!(&list[0].kind, InboundKind::Reaction { key, added: true, .. } if key == "👍"));
    assert!(matches!(&list[1].kind, InboundKind::Reaction { key, added: true, .. } if key == "💘"));
    assert_ne!(list[0].event, list[1].event);

    let mut v3 = v2.clone();
    v3["etag"] = json!("3");
    v3["reactions"] = json!([]);
    v3["lastEditedDateTime"] = json!("2021-03-29T05:00:00Z");
    v3["body"]["content"] = json!("changed");
    let list = events(diff(Some(&v2), &v3, &c));
    assert_eq!(list.len(), 3);
    assert!(matches!(&list[0].kind, InboundKind::Edit { .. }));
    assert!(matches!(
        &list[1].kind,
        InboundKind::Reaction { added: false, .. }
    ));

    let mut v4 = v3.clone();
    v4["deletedDateTime"] = json!("2021-03-29T06:00:00Z");
    assert!(matches!(
        events(diff(Some(&v3), &v4, &c))[0].kind,
        InboundKind::Delete { .. }
    ));
    // Undelete re-posts.
    assert!(matches!(
        events(diff(Some(&v4), &v3, &c))[0].kind,
        InboundKind::Message { .. }
    ));
}

#[test]
fn notifications_lifecycle_and_validation() {
    let body = br#"{"value":[{"subscriptionId":"s1","changeType":"created","clientState":"secret",
        "resource":"teams('t1')/channels('19:c@thread.tacv2')/messages('10')/replies('11')",
        "resourceData":{"id":"11"},"tenantId":"ten"},
        {"subscriptionId":"s1","lifecycleEvent":"reauthorizationRequired","clientState":"secret"}],
        "validationTokens":["jwt"]}"#;
    let batch = parse_notification_batch(body).expect("parses");
    assert_eq!(batch.validation_tokens, ["jwt"]);
    let Notification::Change {
        change_type,
        resource,
        resource_id,
        ..
    } = &batch.items[0]
    else {
        panic!("change")
    };
    assert_eq!(*change_type, ChangeType::Created);
    assert_eq!(resource_id.as_deref(), Some("11"));
    let r = parse_resource(resource).expect("resource");
    assert_eq!(
        r.channel_id().map(|c| c.to_string()).as_deref(),
        Some("t1/19:c@thread.tacv2")
    );
    assert_eq!(
        r.message_id().map(|m| m.to_string()).as_deref(),
        Some("10/11")
    );
    assert!(matches!(
        &batch.items[1],
        Notification::Lifecycle {
            event: LifecycleEvent::ReauthorizationRequired,
            ..
        }
    ));
    assert!(batch.items[0].is_for_tenant(Some("TEN")));
    assert!(!batch.items[0].is_for_tenant(Some("other")));
    assert!(client_state_matches(
        "secret",
        batch.items[0].client_state()
    ));
    assert!(!client_state_matches("secreT", Some("secret")));
    assert!(!client_state_matches("secret", None));
    assert_eq!(
        validation_token("validationToken=Validation%3a+Testing%20client").as_deref(),
        Some("Validation: Testing client")
    );
    assert_eq!(validation_token("a=b"), None);
    assert_eq!(
        parse_resource("/chats/19%3Ax%40thread.v2/messages/5")
            .and_then(|r| r.channel_id())
            .map(|c| c.to_string())
            .as_deref(),
        Some("19:x@thread.v2")
    );
    assert_eq!(
        parse_notifications(b"{}"),
        Err(Rejected::MissingField("value"))
    );
    assert!(matches!(
        parse_notifications(b"nope"),
        Err(Rejected::InvalidJson(_))
    ));
}

#[test]
fn delta_pages() {
    let page = parse_delta_page(br#"{"value":[{"id":"1"}],"@odata.deltaLink":"https://d"}"#)
        .expect("page");
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.delta_link.as_deref(), Some("https://d"));
    assert_eq!(page.next_link, None);
    assert_eq!(parse_delta_page(b"[]"), Err(Rejected::NotAnObject));
}

/// Arbitrary JSON values, biased towards chatMessage-like objects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9 <>#:/.'()-]{0,12}".prop_map(Value::from),
        Just(Value::from("systemEventMessage")),
        Just(Value::from("#microsoft.graph.callEndedEventMessageDetail")),
        Just(Value::from("2021-03-29T03:53:52.035Z")),
        Just(Value::from("PT1M")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("id".to_owned()),
                        Just("chatId".to_owned()),
                        Just("channelIdentity".to_owned()),
                        Just("teamId".to_owned()),
                        Just("channelId".to_owned()),
                        Just("messageType".to_owned()),
                        Just("body".to_owned()),
                        Just("content".to_owned()),
                        Just("contentType".to_owned()),
                        Just("from".to_owned()),
                        Just("user".to_owned()),
                        Just("eventDetail".to_owned()),
                        Just("@odata.type".to_owned()),
                        Just("callId".to_owned()),
                        Just("callDuration".to_owned()),
                        Just("members".to_owned()),
                        Just("reactions".to_owned()),
                        Just("reactionType".to_owned()),
                        Just("attachments".to_owned()),
                        Just("mentions".to_owned()),
                        Just("deletedDateTime".to_owned()),
                        Just("lastEditedDateTime".to_owned()),
                        Just("replyToId".to_owned()),
                        Just("value".to_owned()),
                        Just("subscriptionId".to_owned()),
                        Just("lifecycleEvent".to_owned()),
                        Just("changeType".to_owned()),
                        Just("resource".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn never_panics_on_json(a in json_value(), b in json_value()) {
        let bridge = bridge();
        let c = ctx(&bridge, &[]);
        let _ = parse_message(&a, &c);
        let _ = diff(Some(&a), &b, &c);
        let bytes = serde_json::to_vec(&a).unwrap_or_default();
        let _ = parse_notifications(&bytes);
        let _ = parse_delta_page(&bytes);
    }

    #[test]
    fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256), s in ".{0,64}") {
        let _ = parse_notifications(&bytes);
        let _ = parse_delta_page(&bytes);
        let _ = parse_resource(&s);
        let _ = validation_token(&s);
        let _ = time::parse_datetime(&s);
        let _ = time::parse_duration(&s);
    }
}

// ---------------------------------------------------------------- call commands

const SERVICE: &str = "aad-service";

/// A new channel message from `aad-1` whose HTML is `content`, mentioning
/// the service account as `<at id="0">` and Jane (`aad-2`) as `<at id="1">`.
fn command_message(content: &str) -> Value {
    let mut m = channel_message();
    m["body"]["content"] = json!(content);
    m["mentions"] = json!([
        {"id": 0, "mentionText": "Switchboard",
         "mentioned": {"user": {"id": SERVICE, "displayName": "Switchboard"}}},
        {"id": 1, "mentionText": "Jane",
         "mentioned": {"user": {"id": "aad-2", "displayName": "Jane Smith"}}}
    ]);
    m
}

fn command_ctx(bridge: &BridgeId) -> ParseContext<'_> {
    ParseContext {
        call_to: Some(SERVICE),
        ..ParseContext::new(bridge)
    }
}

/// What a new message with `content` becomes: `Some(title)` for a call
/// request, `None` for anything else.
fn requested(content: &str) -> Option<Option<String>> {
    let b = bridge();
    let events = parse_message(&command_message(content), &command_ctx(&b))
        .expect("parses")
        .into_events();
    assert_eq!(events.len(), 1, "{events:?}");
    match &events[0].kind {
        InboundKind::CallRequest { title } => Some(title.clone()),
        _ => None,
    }
}

#[test]
fn a_mention_of_the_service_account_then_call_asks_for_a_meeting() {
    assert_eq!(
        requested("<div><at id=\"0\">Switchboard</at> call Design review</div>"),
        Some(Some("Design review".into()))
    );
    assert_eq!(
        requested("<p><at id=\"0\">Switchboard</at>&nbsp;CALL  Weekly   sync </p>"),
        Some(Some("Weekly sync".into())),
        "any case, any spacing (HTML collapses runs of spaces)"
    );
    assert_eq!(
        requested("<p><at id=\"0\">Switchboard</at> call</p>"),
        Some(None),
        "no title"
    );
    assert_eq!(
        requested("<p><at id=\"0\">Switchboard</at> Call<br>notes below</p>"),
        Some(None),
        "the title is the rest of the first line only"
    );
}

#[test]
fn other_messages_are_not_call_requests() {
    for content in [
        "<p><at id=\"1\">Jane</at> call Design review</p>",
        "<p>call Design review</p>",
        "<p><at id=\"0\">Switchboard</at> recall the notes</p>",
        "<p><at id=\"0\">Switchboard</at> callback later</p>",
        "<p><at id=\"0\">Switchboard</at> please call me</p>",
        "<p><at id=\"0\">Switchboard</at></p>",
    ] {
        assert_eq!(requested(content), None, "{content}");
    }
}

#[test]
fn call_requests_have_one_id_per_message_and_come_from_the_author() {
    let b = bridge();
    let ctx = command_ctx(&b);
    let v1 = command_message("<p><at id=\"0\">Switchboard</at> call Design review</p>");
    let mut v2 = v1.clone();
    v2["etag"] = json!("1616990099999");
    v2["lastModifiedDateTime"] = json!("2021-03-29T03:55:00.000Z");
    let e1 = parse_message(&v1, &ctx).expect("parses").into_events();
    let e2 = parse_message(&v2, &ctx).expect("parses").into_events();
    assert_eq!(
        e1[0].event, e2[0].event,
        "the version does not change the id"
    );
    assert_eq!(
        e1[0].event.as_str(),
        "team-1/19:c@thread.tacv2|1616990032035|call_request"
    );
    assert_eq!(e1[0].sender.person.user.as_str(), "aad-1");
    assert!(!e1[0].sender.is_ours);
    assert_eq!(e1[0].origin.channel.as_str(), "team-1/19:c@thread.tacv2");
}

#[test]
fn edits_and_our_own_posts_are_not_call_requests() {
    let b = bridge();
    let ctx = command_ctx(&b);
    let mut edited = command_message("<p><at id=\"0\">Switchboard</at> call Design review</p>");
    edited["lastEditedDateTime"] = json!("2021-03-29T03:55:00.000Z");
    let events = parse_message(&edited, &ctx).expect("parses").into_events();
    assert!(
        matches!(events[0].kind, InboundKind::Edit { .. }),
        "{events:?}"
    );

    let ours = vec!["aad-1".to_owned()];
    let ctx = ParseContext {
        our_users: &ours,
        ..command_ctx(&b)
    };
    let own = command_message("<p><at id=\"0\">Switchboard</at> call Design review</p>");
    let events = parse_message(&own, &ctx).expect("parses").into_events();
    assert!(
        matches!(events[0].kind, InboundKind::Message { .. }),
        "{events:?}"
    );

    let without = ParseContext::new(&b);
    let events = parse_message(&own, &without).expect("parses").into_events();
    assert!(
        matches!(events[0].kind, InboundKind::Message { .. }),
        "no account to address, no commands: {events:?}"
    );
}

#[test]
fn a_name_split_into_several_mentions_still_addresses_the_account() {
    let mut m =
        command_message("<p><at id=\"0\">Switch</at>&nbsp;<at id=\"1\">Board</at> call Retro</p>");
    m["mentions"] = json!([
        {"id": 0, "mentionText": "Switch", "mentioned": {"user": {"id": SERVICE, "displayName": "Switch Board"}}},
        {"id": 1, "mentionText": "Board", "mentioned": {"user": {"id": SERVICE, "displayName": "Switch Board"}}}
    ]);
    let b = bridge();
    let events = parse_message(&m, &command_ctx(&b))
        .expect("parses")
        .into_events();
    assert_eq!(
        events[0].kind,
        InboundKind::CallRequest {
            title: Some("Retro".into())
        }
    );
}

#[test]
fn a_channel_meeting_links_to_its_message_and_a_chat_call_to_nothing() {
    let b = bridge();
    let started = |web_url: Value| {
        json!({
            "id": "1700000000000",
            "messageType": "systemEventMessage",
            "createdDateTime": "2023-11-14T22:13:20Z",
            "webUrl": web_url,
            "channelIdentity": {"teamId": "t1", "channelId": "19:c@thread.tacv2"},
            "from": null,
            "body": {"contentType": "html", "content": "<systemEventMessage/>"},
            "eventDetail": {
                "@odata.type": "#microsoft.graph.callStartedEventMessageDetail",
                "callId": "call-1",
                "initiator": {"user": {"id": "u1", "displayName": null}}
            }
        })
    };
    let link = "https://teams.microsoft.com/l/message/19%3Ac%40thread.tacv2/1700000000000";
    let list = events(parse_message(&started(json!(link)), &ctx(&b, &[])));
    let InboundKind::Call(call) = &list[0].kind else {
        panic!("a call: {list:?}")
    };
    assert_eq!(call.join_url.as_deref(), Some(link));
    let list = events(parse_message(&started(Value::Null), &ctx(&b, &[])));
    let InboundKind::Call(call) = &list[0].kind else {
        panic!("a call: {list:?}")
    };
    assert_eq!(call.join_url, None);
}

#[test]
fn relay_markers_are_read_back_from_posted_html() {
    let content = format!(
        "<p>one</p>{}<p>two</p>{}{}",
        relay_marker_html("switchboard", "sb1.2"),
        relay_marker_html("switchboard", "sb1.2#2"),
        relay_marker_html("other-relay", "x9"),
    );
    assert_eq!(
        relay_markers_in(&content, "switchboard"),
        vec!["sb1.2".to_owned(), "sb1.2#2".to_owned()]
    );
    let odd = relay_marker_html("a&b", "op\"<1>");
    assert_eq!(relay_markers_in(&odd, "a&b"), vec!["op\"<1>".to_owned()]);
    assert!(relay_markers_in("<p>itemid=\"switchboard:unterminated", "switchboard").is_empty());
}

#[test]
fn a_listed_message_s_last_change_falls_back_to_creation_then_id() {
    let t = |v: Value| last_changed(&v).map(|t| t.as_millis());
    assert_eq!(
        t(
            json!({"lastModifiedDateTime": "2026-01-01T00:00:01Z", "createdDateTime": "2026-01-01T00:00:00Z"})
        ),
        Some(1_767_225_601_000)
    );
    assert_eq!(
        t(json!({"createdDateTime": "2026-01-01T00:00:00.5Z"})),
        Some(1_767_225_600_500)
    );
    assert_eq!(t(json!({"id": "1767225600000"})), Some(1_767_225_600_000));
    assert_eq!(t(json!({"id": "not-a-time"})), None);
}
