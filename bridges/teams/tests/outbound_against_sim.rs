//! The Teams connector's outbound side against the Graph simulator: long
//! messages split into parts (and their edits), inline images as
//! `hostedContents` and files as links, downloading inline images, and call
//! cards with a Teams meeting.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_model::testing::NoMedia;
use switchboard_model::{
    Attachment, Bridge, BridgeError, BridgeId, CallEvent, CallId, CallProvider, CallState,
    ChannelId, MediaSource, Message, MessageId, OpId, Origin, OutboundKind, OutboundOp, Person,
    RichText, UserId,
};
use switchboard_teams::auth::Secret;
use switchboard_teams::bridge::{TeamsBridge, TeamsConfig};
use switchboard_teams::client::Bearer;
use switchboard_teams::html;
use switchboard_teams_sim::{SimConfig, TeamsSim};

mod common;
use common::{SERVICE, config, graph, seed, sign_in};

struct Harness {
    sim: TeamsSim,
    bridge: Arc<TeamsBridge>,
    config: TeamsConfig,
    channel: ChannelId,
    messages: String,
}

impl Harness {
    async fn start() -> Harness {
        let sim = TeamsSim::start(SimConfig {
            seed: Some(seed()),
            ..SimConfig::default()
        })
        .await
        .expect("sim starts");
        let (team, channel_id) = sim.seeded().channels["Contoso/General"].clone();
        let channel = ChannelId::new(format!("{team}/{channel_id}"));
        let service = sign_in(&sim, SERVICE).await;
        let config = TeamsConfig {
            poll_interval: Duration::from_secs(60),
            ..config(&sim, Some(service))
        };
        let bridge = TeamsBridge::with_graph(config.clone(), graph(&sim)).expect("bridge");
        Harness {
            messages: format!("/teams/{team}/channels/{channel_id}/messages"),
            sim,
            bridge,
            config,
            channel,
        }
    }

    fn app(&self) -> Secret {
        Secret::new(self.sim.app_token())
    }

    async fn get(&self, id: &MessageId) -> Value {
        graph(&self.sim)
            .get_json(
                &format!("{}/{}", self.messages, id.as_str()),
                Bearer::App(&self.app()),
            )
            .await
            .expect("message")
    }

    async fn all(&self) -> Vec<Value> {
        graph(&self.sim)
            .get_all(&self.messages, Bearer::App(&self.app()), 10_000)
            .await
            .expect("list")
    }

    fn op(&self, id: &str, kind: OutboundKind) -> OutboundOp {
        let alice = Person::new(BridgeId::new("slack:acme"), UserId::new("U1"), "Alice");
        OutboundOp::new(OpId::new(id), self.channel.clone(), kind)
            .with_origin(Some(Origin::new("slack:acme", "C1")), Some(alice))
    }
}

fn content(m: &Value) -> &str {
    m.pointer("/body/content")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn deleted(m: &Value) -> bool {
    m.get("deletedDateTime").is_some_and(|d| !d.is_null())
}

/// About 100 KB of Teams HTML: 250 paragraphs, each with a mention-free
/// sentence and its number.
fn long_body(paragraphs: usize) -> RichText {
    let mut b = RichText::builder();
    for n in 0..paragraphs {
        b = b
            .bold(format!("Section {n}"))
            .text(format!(
                ": {} & <done>",
                "lorem ipsum dolor sit amet ".repeat(14)
            ))
            .paragraph();
    }
    b.build()
}

#[tokio::test]
async fn a_100_kb_message_is_posted_in_parts_and_edited_in_place() {
    let h = Harness::start().await;
    let body = long_body(250);
    assert!(html::render(&body, &h.config.id).0.len() > 100_000);
    let send = h.op(
        "sb1.a",
        OutboundKind::Send {
            message: Message::new(body.clone()),
        },
    );
    let delivered = h.bridge.deliver(&send, &NoMedia).await.expect("sent");
    let parts = delivered.ids.clone();
    assert!(parts.len() >= 5, "{} parts", parts.len());
    let mut text = String::new();
    for (n, id) in parts.iter().enumerate() {
        let m = h.get(id).await;
        let c = content(&m);
        assert!(c.len() <= 28 * 1024, "part {n} is {} bytes", c.len());
        assert!(
            c.starts_with("<p><b>Alice</b> (Slack): "),
            "part {n} has the author line"
        );
        let marker = if n == 0 {
            "switchboard-relay:sb1.a\"".to_owned()
        } else {
            format!("switchboard-relay:sb1.a#{}\"", n + 1)
        };
        assert!(c.contains(&marker), "part {n} carries {marker}");
        assert_eq!(c.contains(html::CONTINUED), n + 1 < parts.len());
        text.push_str(&html::parse(c, &[], &h.config.id).body.to_plain());
    }
    // In order, nothing lost, nothing doubled.
    let mut last = 0;
    for n in 0..250 {
        let at = text
            .find(&format!("Section {n}:"))
            .unwrap_or_else(|| panic!("section {n} arrived"));
        assert!(at >= last, "section {n} in order");
        last = at;
        assert_eq!(text.matches(&format!("Section {n}:")).count(), 1);
    }
    assert_eq!(h.all().await.len(), parts.len());

    // Delivering the same op again from a fresh process posts nothing new.
    let again = TeamsBridge::with_graph(h.config.clone(), graph(&h.sim)).expect("bridge");
    let redelivered = again
        .deliver(&send.clone().maybe_delivered(true), &NoMedia)
        .await
        .expect("redelivered");
    assert_eq!(redelivered.ids, parts);
    assert_eq!(h.all().await.len(), parts.len());

    // A short edit rewrites the first part and soft-deletes the rest.
    let edit = h.op(
        "sb2.a",
        OutboundKind::Edit {
            parts: parts.clone(),
            message: Message::text("Never mind, short version."),
        },
    );
    let done = h.bridge.deliver(&edit, &NoMedia).await.expect("edited");
    assert!(done.ids.is_empty());
    let first = h.get(&parts[0]).await;
    assert!(content(&first).contains("Never mind, short version."));
    assert!(!content(&first).contains(html::CONTINUED));
    for id in &parts[1..] {
        assert!(
            deleted(&h.get(id).await),
            "extra part {id:?} is soft-deleted"
        );
    }

    // A long edit again brings the parts back, in place.
    let body2 = long_body(240);
    let edit = h.op(
        "sb3.a",
        OutboundKind::Edit {
            parts: parts.clone(),
            message: Message::new(body2),
        },
    );
    h.bridge.deliver(&edit, &NoMedia).await.expect("edited");
    let mut text = String::new();
    for id in &parts {
        let m = h.get(id).await;
        assert!(!deleted(&m));
        assert!(m.get("lastEditedDateTime").is_some_and(|t| !t.is_null()));
        text.push_str(&html::parse(content(&m), &[], &h.config.id).body.to_plain());
    }
    assert!(text.contains("Section 239:"));
    assert!(!text.contains("Section 240:"));
    assert_eq!(h.all().await.len(), parts.len(), "no new posts from edits");

    // Deleting the message deletes every part.
    let delete = h.op(
        "sb4.a",
        OutboundKind::Delete {
            parts: parts.clone(),
        },
    );
    h.bridge.deliver(&delete, &NoMedia).await.expect("deleted");
    for id in &parts {
        assert!(deleted(&h.get(id).await));
    }
    h.sim.shutdown().await;
}

/// Files by attachment id.
struct Files(HashMap<String, Vec<u8>>);

#[async_trait]
impl MediaSource for Files {
    async fn fetch(&self, _origin: &BridgeId, a: &Attachment) -> Result<Vec<u8>, BridgeError> {
        self.0
            .get(&a.id)
            .cloned()
            .ok_or_else(|| BridgeError::not_found(format!("file {}", a.id)))
    }
}

fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..len).map(|i| (i % 251) as u8));
    bytes
}

#[tokio::test]
async fn images_go_inline_and_other_files_become_links_or_notes() {
    let h = Harness::start().await;
    let cat = png(50_000);
    let files = Files(HashMap::from([
        ("F1".to_owned(), cat.clone()),
        ("F2".to_owned(), b"%PDF-1.7".to_vec()),
        ("F4".to_owned(), b"not really an image".to_vec()),
    ]));
    let message = Message::text("Look at this")
        .with_attachment(Attachment::new(
            "F1",
            "cat.png",
            "image/png",
            "https://files.slack.com/F1",
        ))
        .with_attachment(
            Attachment::new(
                "F2",
                "report.pdf",
                "application/pdf",
                "https://files.slack.com/F2/report.pdf",
            )
            .with_size(2_400_000),
        )
        .with_attachment(
            Attachment::new("F3", "huge.png", "image/png", "mxc://example.org/huge")
                .with_size(12_000_000),
        )
        .with_attachment(Attachment::new(
            "F4",
            "fake.png",
            "image/png",
            "mxc://example.org/fake",
        ))
        .with_attachment(Attachment::new(
            "F5",
            "gone.png",
            "image/png",
            "mxc://example.org/gone",
        ));
    let send = h.op("sb10.b", OutboundKind::Send { message });
    let delivered = h.bridge.deliver(&send, &files).await.expect("sent");
    assert_eq!(delivered.ids.len(), 1);
    let m = h.get(&delivered.ids[0]).await;
    let c = content(&m);
    // The image is stored by Graph and the body points at it.
    let src = c
        .split("<img src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an inline image");
    assert!(src.starts_with(&h.sim.graph_url()), "{src}");
    assert!(
        src.contains("/hostedContents/") && src.ends_with("/$value"),
        "{src}"
    );
    assert_eq!(c.matches("<img").count(), 1, "one image inline: {c}");
    // The rest are lines of text.
    assert!(
        c.contains("<a href=\"https://files.slack.com/F2/report.pdf\">report.pdf</a>"),
        "{c}"
    );
    let plain = html::parse(c, &[], &h.config.id).body.to_plain();
    for line in [
        "📎 report.pdf (https://files.slack.com/F2/report.pdf) (2.4 MB)",
        "📎 huge.png (12.0 MB) — not transferable",
        "📎 fake.png (19 bytes) — not transferable",
        "📎 gone.png — not transferable",
    ] {
        assert!(plain.contains(line), "{line:?} in {plain:?}");
    }

    // Inbound: the connector reports the image as an attachment and
    // downloads it with the application token.
    let list = switchboard_teams::graph::parse_message(
        &m,
        &switchboard_teams::graph::ParseContext::new(&h.config.id),
    );
    let events = list.expect("parses").into_events();
    let switchboard_model::InboundKind::Message { message, .. } = &events[0].kind else {
        panic!("a message");
    };
    assert_eq!(message.attachments.len(), 1);
    let bytes = h
        .bridge
        .fetch_media(&message.attachments[0])
        .await
        .expect("downloaded");
    assert_eq!(bytes, cat);
    // Unknown hosted content: 404; URLs elsewhere are never fetched.
    let mut unknown = message.attachments[0].clone();
    unknown.url = src.replace("/hostedContents/", "/hostedContents/bm9wZQ==x");
    assert!(matches!(
        h.bridge.fetch_media(&unknown).await,
        Err(BridgeError::NotFound { .. })
    ));
    let mut elsewhere = message.attachments[0].clone();
    elsewhere.url = "https://evil.example/v1.0/hostedContents/x/$value".into();
    assert!(matches!(
        h.bridge.fetch_media(&elsewhere).await,
        Err(BridgeError::Permanent { .. })
    ));

    // An edit keeps the image (Graph cannot add hosted contents in a PATCH).
    let edit = h.op(
        "sb11.b",
        OutboundKind::Edit {
            parts: delivered.ids.clone(),
            message: Message::text("Look at this cat").with_attachment(Attachment::new(
                "F1",
                "cat.png",
                "image/png",
                "https://files.slack.com/F1",
            )),
        },
    );
    h.bridge.deliver(&edit, &files).await.expect("edited");
    let m = h.get(&delivered.ids[0]).await;
    assert!(content(&m).contains("Look at this cat"));
    assert!(content(&m).contains(src), "the image stays");

    // Only pictures: a post with the image and the author line.
    let only = h.op(
        "sb12.b",
        OutboundKind::Send {
            message: Message::new(RichText::default()).with_attachment(Attachment::new(
                "F1",
                "cat.png",
                "image/png",
                "https://files.slack.com/F1",
            )),
        },
    );
    let d = h.bridge.deliver(&only, &files).await.expect("sent");
    let c = content(&h.get(&d.ids[0]).await).to_owned();
    assert!(c.starts_with("<p><b>Alice</b> (Slack):</p><p><img"), "{c}");
    h.sim.shutdown().await;
}

#[tokio::test]
async fn the_simulator_checks_hosted_contents_like_graph() {
    let h = Harness::start().await;
    let token = Secret::new(h.sim.delegated_token(SERVICE).expect("token"));
    let user = h.sim.seeded().users[SERVICE].clone();
    let g = graph(&h.sim);
    let b64 = "iVBORw0KGgo="; // the PNG signature
    let post = |body: Value| {
        let g = g.clone();
        let token = token.clone();
        let user = user.clone();
        let path = h.messages.clone();
        async move { g.post_json(&path, Bearer::User(&token, &user), &body).await }
    };
    // A body naming a temporary id that was not posted.
    let missing = post(json!({
        "body": {"contentType": "html", "content": "<img src=\"../hostedContents/2/$value\">"},
        "hostedContents": [{"@microsoft.graph.temporaryId": "1", "contentBytes": b64, "contentType": "image/png"}]
    }))
    .await;
    assert!(
        matches!(missing, Err(BridgeError::Permanent { .. })),
        "{missing:?}"
    );
    // An entry the body does not use.
    let unused = post(json!({
        "body": {"contentType": "html", "content": "<p>hi</p>"},
        "hostedContents": [{"@microsoft.graph.temporaryId": "1", "contentBytes": b64, "contentType": "image/png"}]
    }))
    .await;
    assert!(
        matches!(unused, Err(BridgeError::Permanent { .. })),
        "{unused:?}"
    );
    // Over the request limit.
    let huge = "A".repeat(5 * 1024 * 1024);
    let too_big = post(json!({
        "body": {"contentType": "html", "content": "<img src=\"../hostedContents/1/$value\">"},
        "hostedContents": [{"@microsoft.graph.temporaryId": "1", "contentBytes": huge, "contentType": "image/png"}]
    }))
    .await;
    assert!(too_big.is_err(), "a 5 MB request is refused");
    // A good one: 201, the listed id serves the bytes.
    let ok = post(json!({
        "body": {"contentType": "html", "content": "<img src=\"../hostedContents/1/$value\">"},
        "hostedContents": [{"@microsoft.graph.temporaryId": "1", "contentBytes": b64, "contentType": "image/png"}]
    }))
    .await
    .expect("posted");
    let id = ok["id"].as_str().expect("id");
    let listed = g
        .get_json(
            &format!("{}/{id}/hostedContents", h.messages),
            Bearer::App(&h.app()),
        )
        .await
        .expect("listed");
    let hc = listed["value"][0]["id"].as_str().expect("hosted id");
    assert!(content(&ok).contains(&format!("/messages/{id}/hostedContents/{hc}/$value")));
    let missing = g
        .get_json(
            &format!("{}/{id}/hostedContents/nope", h.messages),
            Bearer::App(&h.app()),
        )
        .await;
    assert!(matches!(missing, Err(BridgeError::NotFound { .. })));
    h.sim.shutdown().await;
}

#[tokio::test]
async fn a_call_is_one_card_edited_until_it_ends() {
    let h = Harness::start().await;
    let alice = Person::new(BridgeId::new("slack:acme"), UserId::new("U1"), "Alice");
    let mut event = CallEvent::new(
        CallId::new("slack:huddle:H1"),
        CallProvider::SlackHuddle,
        CallState::Started,
    )
    .with_join_url("https://app.slack.com/huddle/T1/C1");
    event.started_by = Some(alice.clone());
    let start = h.op(
        "sb20.c",
        OutboundKind::Call {
            event: event.clone(),
            invite: Vec::new(),
        },
    );
    let d = h.bridge.deliver(&start, &NoMedia).await.expect("card");
    assert_eq!(d.ids.len(), 1);
    let card = d.ids.clone();
    let c = content(&h.get(&card[0]).await).to_owned();
    assert!(
        c.starts_with(
            "<p>📞 <b>Alice</b> started a call on Slack — <a href=\"https://app.slack.com/huddle/T1/C1\">Join</a> · <a href=\"https://teams.microsoft.com/l/meetup-join/"
        ),
        "{c}"
    );
    assert!(c.contains(">Join in Teams</a>"));
    let teams_link = |c: &str| {
        c.split("<a href=\"https://teams.microsoft.com/")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(str::to_owned)
    };
    let meeting = teams_link(&c).expect("a Teams link");

    // A retried start (another process) finds the card instead of posting again.
    let again = TeamsBridge::with_graph(h.config.clone(), graph(&h.sim)).expect("bridge");
    let d2 = again
        .deliver(&start.clone().maybe_delivered(true), &NoMedia)
        .await
        .expect("found");
    assert_eq!(d2.ids, card);

    // Participants join: the card is edited, with the same meeting.
    event.state = CallState::Updated;
    event.participants = vec![
        alice.clone(),
        Person::new(BridgeId::new("slack:acme"), UserId::new("U2"), "Bo"),
    ];
    let update = h.op(
        "sb21.c",
        OutboundKind::Call {
            event: event.clone(),
            invite: card.clone(),
        },
    );
    assert!(
        h.bridge
            .deliver(&update, &NoMedia)
            .await
            .expect("updated")
            .ids
            .is_empty()
    );
    let c = content(&h.get(&card[0]).await).to_owned();
    assert!(c.contains("<p>In the call (2): Alice, Bo</p>"), "{c}");
    assert_eq!(
        teams_link(&c),
        Some(meeting),
        "createOrGet finds the same meeting"
    );

    // The end: edited once more, with the duration and no join links.
    event.state = CallState::Ended {
        duration: Some(Duration::from_secs(3_723)),
    };
    let end = h.op(
        "sb22.c",
        OutboundKind::Call {
            event,
            invite: card.clone(),
        },
    );
    h.bridge.deliver(&end, &NoMedia).await.expect("ended");
    let c = content(&h.get(&card[0]).await).to_owned();
    assert!(
        c.starts_with("<p>📞 The call <b>Alice</b> started on Slack ended after 1h 02m 03s.</p>"),
        "{c}"
    );
    assert!(!c.contains("Join"));
    assert_eq!(h.all().await.len(), 1, "nothing posted twice");
    h.sim.shutdown().await;
}

/// Two people elsewhere react 👍: Teams shows one service-account 👍,
/// which stays until the last of them takes theirs back.
#[tokio::test]
async fn a_shared_reaction_stays_until_its_last_holder_removes_it() {
    let h = Harness::start().await;
    let sent = h
        .bridge
        .deliver(
            &h.op(
                "react-target",
                OutboundKind::Send {
                    message: Message::text("react to me"),
                },
            ),
            &NoMedia,
        )
        .await
        .expect("send");
    let target = sent.ids[0].clone();
    let by = |who: &str, id: &str, add: bool| {
        let person = Person::new(BridgeId::new("slack:acme"), UserId::new(who), who);
        let kind = if add {
            OutboundKind::React {
                target: target.clone(),
                key: "👍".into(),
            }
        } else {
            OutboundKind::Unreact {
                target: target.clone(),
                key: "👍".into(),
                reaction: None,
            }
        };
        OutboundOp::new(OpId::new(id), h.channel.clone(), kind)
            .with_origin(Some(Origin::new("slack:acme", "C1")), Some(person))
    };
    let thumbs = |m: &Value| {
        m["reactions"].as_array().map_or(0, |r| {
            r.iter().filter(|r| r["reactionType"] == "👍").count()
        })
    };
    for (op, want) in [
        (by("U1", "r1", true), 1),
        (by("U2", "r2", true), 1),
        (by("U1", "u1", false), 1),
        (by("U2", "u2", false), 0),
    ] {
        h.bridge.deliver(&op, &NoMedia).await.expect("reaction");
        assert_eq!(thumbs(&h.get(&target).await), want, "after {}", op.id);
    }
}
