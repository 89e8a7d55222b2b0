//! The relay against two in-memory platforms. Most tests run on paused time,
//! so retry and rate-limit timings are exact and nothing waits for real.

use super::*;
use crate::config::{PortalMember, ReactionFallback};
use crate::store::{MemoryStore, SledStore, Store};
use std::time::Duration;
use switchboard_model::testing::{EchoMode, MemoryBridge, MemoryPlatform};
use switchboard_model::{
    BridgeContext, BridgeError, BridgeState, Capabilities, EventId, Inbound, InboundKind, Message,
    MessageId, Origin, Person, RichText, Sender,
};
use tokio::sync::watch;
use tokio::time::Instant;

fn relay_config() -> RelayConfig {
    RelayConfig {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(30),
        drain_grace: Duration::from_secs(10),
        dependency_wait: Duration::from_secs(60),
        reaction_fallback: ReactionFallback::Notice,
        dead_letter_notices: true,
        jitsi_url: "https://meet.example.test".to_owned(),
        admins: Vec::new(),
    }
}

fn portal(name: &str, members: &[(&str, &str)]) -> PortalConfig {
    PortalConfig {
        name: name.to_owned(),
        members: members
            .iter()
            .map(|(b, c)| PortalMember {
                bridge: (*b).into(),
                channel: (*c).into(),
            })
            .collect(),
        calls: Default::default(),
    }
}

struct Harness {
    relay: Relay,
    a: MemoryPlatform,
    b: MemoryPlatform,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
    db: Db,
}

struct Options {
    caps_a: Capabilities,
    caps_b: Capabilities,
    config: RelayConfig,
    portals: Vec<PortalConfig>,
    store: Arc<dyn Store>,
    space: Option<Arc<crate::store::space::SpaceGuard>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            caps_a: Capabilities::full(),
            caps_b: Capabilities::full(),
            config: relay_config(),
            portals: vec![portal(
                "general",
                &[("mem:a", "general"), ("mem:b", "general")],
            )],
            store: Arc::new(MemoryStore::new()),
            space: None,
        }
    }
}

fn start(opts: Options) -> Harness {
    start_with(
        opts,
        MemoryPlatform::new("mem:a"),
        MemoryPlatform::new("mem:b"),
    )
}

fn start_with(opts: Options, a: MemoryPlatform, b: MemoryPlatform) -> Harness {
    let db = Db::open(opts.store).expect("db");
    let metrics = Arc::new(Metrics::new());
    let bridge_a: Arc<dyn Bridge> = Arc::new(MemoryBridge::new(a.clone(), opts.caps_a));
    let bridge_b: Arc<dyn Bridge> = Arc::new(MemoryBridge::new(b.clone(), opts.caps_b));
    let relay = Relay::start(RelaySetup {
        db: db.clone(),
        bridges: vec![bridge_a.clone(), bridge_b.clone()],
        portals: opts.portals,
        config: opts.config,
        dedup_retention: Duration::from_secs(3600),
        metrics: metrics.clone(),
        space: opts.space,
        secrets: None,
    })
    .expect("relay starts");
    let stop = CancellationToken::new();
    for bridge in [bridge_a, bridge_b] {
        let (state, _) = watch::channel(BridgeState::Connecting);
        let ctx = BridgeContext::new(relay.sink(), stop.clone(), state);
        tokio::spawn(async move { bridge.run(ctx).await });
    }
    Harness {
        relay,
        a,
        b,
        stop,
        metrics,
        db,
    }
}

impl Harness {
    async fn stop(self) {
        self.stop.cancel();
        self.relay.shutdown().await.expect("clean shutdown");
    }
}

/// Polls `cond` every 10 ms (of paused or real time) until it holds.
async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn texts(p: &MemoryPlatform, channel: &str) -> Vec<String> {
    p.messages(channel)
        .into_iter()
        .filter(|m| !m.deleted)
        .map(|m| m.text)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn relays_in_order_per_portal_both_ways() {
    let h = start(Options {
        portals: (0..3)
            .map(|i| {
                portal(
                    &format!("p{i}"),
                    &[("mem:a", &format!("a{i}")), ("mem:b", &format!("b{i}"))],
                )
            })
            .collect(),
        ..Options::default()
    });
    for n in 0..20 {
        for i in 0..3 {
            h.a.post(&format!("a{i}"), "ann", "Ann", &format!("a{i}-{n}"))
                .expect("post");
        }
        h.b.post("b1", "bob", "Bob", &format!("b-{n}"))
            .expect("post");
    }
    until("all delivered", Duration::from_secs(30), || {
        (0..3).all(|i| {
            h.b.messages(&format!("b{i}"))
                .iter()
                .filter(|m| m.by_bridge)
                .count()
                == 20
        }) && h.a.messages("a1").iter().filter(|m| m.by_bridge).count() == 20
    })
    .await;
    for i in 0..3 {
        let relayed: Vec<String> =
            h.b.messages(&format!("b{i}"))
                .into_iter()
                .filter(|m| m.by_bridge)
                .map(|m| m.text)
                .collect();
        let expected: Vec<String> = (0..20).map(|n| format!("a{i}-{n}")).collect();
        assert_eq!(relayed, expected, "portal p{i} in order, each once");
    }
    let back: Vec<String> =
        h.a.messages("a1")
            .into_iter()
            .filter(|m| m.by_bridge)
            .map(|m| m.text)
            .collect();
    assert_eq!(back, (0..20).map(|n| format!("b-{n}")).collect::<Vec<_>>());
    // Shown as themselves.
    let m = &h.b.messages("b0")[0];
    assert_eq!(m.author_name, "Ann");
    assert_eq!(h.relay.outbox_depth(), 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn edit_and_reaction_before_delivery_are_applied_after_it() {
    let h = start(Options::default());
    // The target refuses everything for 3 s.
    h.b.fail_until(
        Instant::now() + Duration::from_secs(3),
        BridgeError::transient("down"),
    );
    let msg =
        h.a.post("general", "ann", "Ann", "first draft")
            .expect("post");
    let InboundKind::Message { id, .. } = &msg.kind else {
        panic!("a message")
    };
    h.a.edit("general", "ann", id, "final text").expect("edit");
    h.a.react("general", "ann", id, "👍", true).expect("react");
    until("edit and reaction applied", Duration::from_secs(60), || {
        h.b.messages("general")
            .first()
            .is_some_and(|m| m.text == "final text" && m.reactions.len() == 1)
    })
    .await;
    let m = &h.b.messages("general")[0];
    assert!(m.edited);
    assert_eq!(m.reactions[0].0, "👍");
    // Nothing was attempted out of order: every edit/react attempt came after the send succeeded.
    let attempts = h.b.attempts();
    let sent_at = attempts
        .iter()
        .find(|a| a.kind == "send" && a.is_ok())
        .expect("send succeeded")
        .at;
    assert!(
        attempts
            .iter()
            .filter(|a| a.kind != "send")
            .all(|a| a.at >= sent_at)
    );
    assert_eq!(h.b.messages("general").len(), 1, "nothing duplicated");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_edit_that_overtakes_its_message_waits_for_it() {
    let h = start(Options::default());
    let ann = Person::new("mem:a".into(), "ann".into(), "Ann");
    let origin = Origin::new("mem:a", "general");
    let id = MessageId::new("late-1");
    let edit = Inbound::new(
        origin.clone(),
        EventId::new("ev-edit"),
        Sender::new(ann.clone()),
        InboundKind::Edit {
            target: id.clone(),
            message: Message::text("edited"),
        },
    );
    h.a.inject(edit).expect("inject");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(h.b.messages("general").is_empty(), "nothing to edit yet");
    let message = Inbound::new(
        origin,
        EventId::new("ev-msg"),
        Sender::new(ann),
        InboundKind::Message {
            id,
            message: Message::text("original"),
        },
    );
    h.a.inject(message).expect("inject");
    until(
        "edit applied after the message",
        Duration::from_secs(10),
        || {
            h.b.messages("general")
                .first()
                .is_some_and(|m| m.text == "edited")
        },
    )
    .await;
    assert_eq!(h.b.messages("general").len(), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn rate_limited_target_gets_everything_afterwards_and_nothing_early() {
    let h = start(Options {
        portals: vec![
            portal("p1", &[("mem:a", "a1"), ("mem:b", "b1")]),
            portal("p2", &[("mem:a", "a2"), ("mem:b", "b2")]),
        ],
        ..Options::default()
    });
    let t0 = Instant::now();
    h.b.fail_until(
        t0 + Duration::from_secs(10),
        BridgeError::rate_limited(Duration::from_secs(2)),
    );
    for n in 0..25 {
        h.a.post("a1", "ann", "Ann", &format!("one-{n}"))
            .expect("post");
        h.a.post("a2", "ann", "Ann", &format!("two-{n}"))
            .expect("post");
    }
    until("all delivered", Duration::from_secs(60), || {
        h.b.messages("b1").len() == 25 && h.b.messages("b2").len() == 25
    })
    .await;
    assert_eq!(
        texts(&h.b, "b1"),
        (0..25).map(|n| format!("one-{n}")).collect::<Vec<_>>()
    );
    assert_eq!(
        texts(&h.b, "b2"),
        (0..25).map(|n| format!("two-{n}")).collect::<Vec<_>>()
    );
    // After each 429, no request to the bridge before its Retry-After.
    let attempts = h.b.attempts();
    let limited: Vec<Instant> = attempts
        .iter()
        .filter(|a| a.label() == "rate_limited")
        .map(|a| a.at)
        .collect();
    assert!(
        limited.len() >= 5,
        "the target was hit while limited ({} times)",
        limited.len()
    );
    for at in &limited {
        let early = attempts
            .iter()
            .filter(|a| a.at > *at && a.at < *at + Duration::from_secs(2))
            .count();
        assert_eq!(early, 0, "an attempt came before Retry-After elapsed");
    }
    assert!(
        attempts
            .iter()
            .filter(|a| a.is_ok())
            .all(|a| a.at >= t0 + Duration::from_secs(10))
    );
    assert!(
        h.metrics
            .render()
            .contains("switchboard_retried_total{bridge=\"mem:b\",error=\"rate_limited\"}")
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn permanent_error_dead_letters_with_a_notice_in_the_origin_channel() {
    let h = start(Options::default());
    h.b.fail_next(1, BridgeError::permanent("msg_too_long"));
    h.a.post("general", "ann", "Ann", "doomed").expect("post");
    h.a.post("general", "ann", "Ann", "fine").expect("post");
    until("notice posted", Duration::from_secs(10), || {
        h.a.messages("general")
            .iter()
            .any(|m| m.by_bridge && m.text.contains("not delivered"))
    })
    .await;
    let notice =
        h.a.messages("general")
            .into_iter()
            .find(|m| m.by_bridge)
            .expect("notice");
    assert_eq!(
        notice.text,
        "⚠️ A message was not delivered to mem:b: msg_too_long"
    );
    assert_eq!(
        texts(&h.b, "general"),
        ["fine"],
        "the next message still goes through"
    );
    assert!(
        h.metrics
            .render()
            .contains("switchboard_dead_lettered_total{bridge=\"mem:b\",error=\"permanent\"} 1")
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn transient_errors_retry_with_backoff_then_dead_letter() {
    let h = start(Options::default());
    h.b.fail_next(2, BridgeError::transient("connection reset"));
    h.a.post("general", "ann", "Ann", "eventually")
        .expect("post");
    until("delivered after retries", Duration::from_secs(10), || {
        texts(&h.b, "general") == ["eventually"]
    })
    .await;
    let attempts = h.b.attempts();
    assert_eq!(attempts.len(), 3);
    // Backoff: ~0.5 s then ~1 s, with ±20 % jitter.
    let gap1 = attempts[1].at - attempts[0].at;
    let gap2 = attempts[2].at - attempts[1].at;
    assert!(
        gap1 >= Duration::from_millis(400) && gap1 <= Duration::from_millis(600),
        "{gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(800) && gap2 <= Duration::from_millis(1200),
        "{gap2:?}"
    );

    // A target that never recovers is dead-lettered after max_attempts.
    h.b.fail_channel("general", BridgeError::transient("still down"));
    h.a.post("general", "ann", "Ann", "never").expect("post");
    until("dead letter notice", Duration::from_secs(120), || {
        h.a.messages("general")
            .iter()
            .any(|m| m.text.contains("not delivered"))
    })
    .await;
    let failures = h.b.attempts().iter().filter(|a| !a.is_ok()).count();
    assert_eq!(failures, 2 + 5, "five attempts for the second message");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn echoes_cause_no_loop_and_no_duplicate() {
    for mode in [EchoMode::AsPuppet, EchoMode::AsOurs] {
        let h = start(Options::default());
        h.a.set_echo(mode);
        h.b.set_echo(mode);
        for n in 0..10 {
            h.a.post("general", "ann", "Ann", &format!("a{n}"))
                .expect("post");
            h.b.post("general", "bob", "Bob", &format!("b{n}"))
                .expect("post");
        }
        until("all delivered", Duration::from_secs(30), || {
            h.a.messages("general").len() == 20 && h.b.messages("general").len() == 20
        })
        .await;
        // Let any echo loop show itself.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            h.a.messages("general").len(),
            20,
            "{mode:?}: no echo relayed back"
        );
        assert_eq!(
            h.b.messages("general").len(),
            20,
            "{mode:?}: no echo relayed back"
        );
        assert!(
            h.metrics.render().contains("reason=\"echo\""),
            "{mode:?}: echoes were seen and dropped"
        );
        h.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn platform_retries_are_deduplicated() {
    let h = start(Options::default());
    let ev = h.a.post("general", "ann", "Ann", "once").expect("post");
    until("delivered", Duration::from_secs(5), || {
        h.b.messages("general").len() == 1
    })
    .await;
    // The platform redelivers the same event (same event id), twice at once.
    let sink = h.relay.sink();
    let (r1, r2) = tokio::join!(sink.push(ev.clone()), sink.push(ev));
    assert!(
        r1.is_ok() && r2.is_ok(),
        "duplicates are acknowledged, not refused"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.b.messages("general").len(), 1);
    assert!(
        h.metrics
            .render()
            .contains("switchboard_dropped_total{bridge=\"mem:a\",reason=\"duplicate\"} 2")
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn puppets_are_ensured_once_and_refreshed_on_change() {
    let h = start(Options::default());
    for n in 0..5 {
        h.a.post("general", "ann", "Ann", &format!("{n}"))
            .expect("post");
        h.a.post("general", "cid", "Cid", &format!("{n}"))
            .expect("post");
    }
    until("delivered", Duration::from_secs(10), || {
        h.b.messages("general").len() == 10
    })
    .await;
    assert_eq!(h.b.puppet_calls(), 2, "one puppet per person");
    h.a.post("general", "ann", "Ann Smith", "renamed")
        .expect("post");
    until("delivered", Duration::from_secs(10), || {
        h.b.messages("general").len() == 11
    })
    .await;
    assert_eq!(h.b.puppet_calls(), 3, "a new name refreshes the puppet");
    assert_eq!(h.b.messages("general")[10].author_name, "Ann Smith");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn missing_capabilities_degrade_visibly() {
    let h = start(Options {
        caps_b: Capabilities::minimal(),
        ..Options::default()
    });
    let msg = h.a.post("general", "ann", "Ann", "hello").expect("post");
    let InboundKind::Message { id, .. } = &msg.kind else {
        panic!("a message")
    };
    h.a.edit("general", "ann", id, "hello again").expect("edit");
    h.a.react("general", "ann", id, "🎉", true).expect("react");
    h.a.delete("general", "ann", id).expect("delete");
    until("degraded forms delivered", Duration::from_secs(10), || {
        h.b.messages("general").len() == 3
    })
    .await;
    assert_eq!(
        texts(&h.b, "general"),
        ["hello", "✏️ edited: hello again", "ann reacted 🎉"],
        "edit as a follow-up, reaction as a notice, delete skipped"
    );
    assert_eq!(h.relay.outbox_depth(), 0);
    h.stop().await;

    let mut config = relay_config();
    config.reaction_fallback = ReactionFallback::Skip;
    let h = start(Options {
        caps_b: Capabilities::minimal(),
        config,
        ..Options::default()
    });
    let msg = h.a.post("general", "ann", "Ann", "hello").expect("post");
    let InboundKind::Message { id, .. } = &msg.kind else {
        panic!("a message")
    };
    h.a.react("general", "ann", id, "🎉", true).expect("react");
    h.a.post("general", "ann", "Ann", "after").expect("post");
    until("delivered", Duration::from_secs(10), || {
        h.b.messages("general").len() == 2
    })
    .await;
    assert_eq!(
        texts(&h.b, "general"),
        ["hello", "after"],
        "reaction skipped per config"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn replies_threads_reactions_and_deletes_map_across() {
    let h = start(Options::default());
    let root = h.a.post("general", "ann", "Ann", "root").expect("post");
    let InboundKind::Message { id: root_id, .. } = &root.kind else {
        panic!("a message")
    };
    let reply = Inbound::new(
        Origin::new("mem:a", "general"),
        EventId::new("ev-reply"),
        Sender::new(Person::new("mem:a".into(), "cid".into(), "Cid")),
        InboundKind::Message {
            id: MessageId::new("reply-1"),
            message: Message::text("in thread")
                .in_thread(root_id.clone())
                .in_reply_to(root_id.clone()),
        },
    );
    h.a.inject(reply).expect("inject");
    until("both delivered", Duration::from_secs(10), || {
        h.b.messages("general").len() == 2
    })
    .await;
    let on_b = h.b.messages("general");
    assert_eq!(
        on_b[1].thread_root.as_ref(),
        Some(&on_b[0].id),
        "thread root mapped to b's id"
    );
    assert_eq!(on_b[1].reply_to.as_ref(), Some(&on_b[0].id));

    // Bob reacts on b to the relayed copy: it maps back to Ann's original on a.
    h.b.react("general", "bob", &on_b[0].id, "👀", true)
        .expect("react");
    until("reaction on a", Duration::from_secs(10), || {
        h.a.messages("general")
            .iter()
            .any(|m| m.id == *root_id && m.reactions.len() == 1)
    })
    .await;
    h.b.react("general", "bob", &on_b[0].id, "👀", false)
        .expect("unreact");
    until("reaction removed on a", Duration::from_secs(10), || {
        h.a.messages("general")
            .iter()
            .any(|m| m.id == *root_id && m.reactions.is_empty())
    })
    .await;
    h.a.delete("general", "ann", root_id).expect("delete");
    until("deleted on b", Duration::from_secs(10), || {
        h.b.messages("general")[0].deleted
    })
    .await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn mentions_point_at_the_targets_identity() {
    let h = start(Options::default());
    // Bob speaks first on b, so b's Bob has a puppet on a.
    h.b.post("general", "bob", "Bob", "hi").expect("post");
    until("bob relayed", Duration::from_secs(10), || {
        h.a.messages("general").len() == 1
    })
    .await;
    let bob_puppet_on_a = h.a.messages("general")[0].author.clone();
    // Ann mentions Bob's puppet on a; on b the mention must be Bob himself.
    let body = RichText::builder()
        .text("hey ")
        .mention("mem:a".into(), bob_puppet_on_a, "Bob")
        .build();
    let ev = Inbound::new(
        Origin::new("mem:a", "general"),
        EventId::new("ev-mention"),
        Sender::new(Person::new("mem:a".into(), "ann".into(), "Ann")),
        InboundKind::Message {
            id: MessageId::new("m-mention"),
            message: Message::new(body),
        },
    );
    h.a.inject(ev).expect("inject");
    until("mention relayed", Duration::from_secs(10), || {
        h.b.messages("general").len() == 2
    })
    .await;
    let ops = h.b.deliveries();
    let last = ops.last().expect("a delivery");
    assert_eq!(last.text.as_deref(), Some("hey @Bob"));
    // The delivered op's body names bob on mem:b: checked through the store's view of the mapping.
    let bob = Person::new("mem:b".into(), "bob".into(), "Bob");
    assert!(h.db.puppet(&"mem:a".into(), &bob).expect("store").is_some());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn drain_waits_for_the_outbox_and_reload_adds_portals() {
    let h = start(Options::default());
    h.b.fail_until(
        Instant::now() + Duration::from_secs(3),
        BridgeError::rate_limited(Duration::from_secs(1)),
    );
    for n in 0..10 {
        h.a.post("general", "ann", "Ann", &format!("{n}"))
            .expect("post");
    }
    until("accepted", Duration::from_secs(5), || {
        h.relay.outbox_depth() == 10
    })
    .await;
    h.relay.stop_intake();
    assert!(
        h.relay.drain(Duration::from_secs(20)).await,
        "drained within the grace period"
    );
    assert_eq!(h.b.messages("general").len(), 10);
    h.stop().await;

    // A drain that cannot finish reports it.
    let h = start(Options::default());
    h.b.fail_channel(
        "general",
        BridgeError::rate_limited(Duration::from_secs(60)),
    );
    h.a.post("general", "ann", "Ann", "stuck").expect("post");
    until("accepted", Duration::from_secs(5), || {
        h.relay.outbox_depth() == 1
    })
    .await;
    assert!(!h.relay.drain(Duration::from_secs(2)).await);
    h.stop().await;

    // Reload: a new portal takes effect at once.
    let h = start(Options::default());
    h.a.post("sales", "ann", "Ann", "before").expect("post");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.b.messages("sales").is_empty(), "not a portal yet");
    h.relay
        .reload(
            &[
                portal("general", &[("mem:a", "general"), ("mem:b", "general")]),
                portal("sales", &[("mem:a", "sales"), ("mem:b", "sales")]),
            ],
            relay_config(),
        )
        .expect("reload");
    h.a.post("sales", "ann", "Ann", "after").expect("post");
    until("new portal relays", Duration::from_secs(5), || {
        texts(&h.b, "sales") == ["after"]
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn outbox_survives_a_restart_on_sled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = MemoryPlatform::new("mem:a");
    let b = MemoryPlatform::new("mem:b");
    {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("sled"));
        let h = start_with(
            Options {
                store,
                ..Options::default()
            },
            a.clone(),
            b.clone(),
        );
        b.fail_channel("general", BridgeError::transient("down"));
        for n in 0..5 {
            a.post("general", "ann", "Ann", &format!("{n}"))
                .expect("post");
        }
        until("accepted", Duration::from_secs(5), || {
            h.relay.outbox_depth() == 5
        })
        .await;
        h.stop().await;
    }
    b.clear_failures();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("sled reopens"));
    let h = start_with(
        Options {
            store,
            ..Options::default()
        },
        a.clone(),
        b.clone(),
    );
    until("delivered after restart", Duration::from_secs(10), || {
        b.messages("general").len() == 5
    })
    .await;
    assert_eq!(texts(&b, "general"), ["0", "1", "2", "3", "4"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_disk_refuses_intake_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let guard = Arc::new(crate::store::space::SpaceGuard::new(dir.path(), u64::MAX));
    let h = start(Options {
        space: Some(guard.clone()),
        ..Options::default()
    });
    let ev = Inbound::new(
        Origin::new("mem:a", "general"),
        EventId::new("ev-full"),
        Sender::new(Person::new("mem:a".into(), "ann".into(), "Ann")),
        InboundKind::Message {
            id: MessageId::new("m-full"),
            message: Message::text("wait for space"),
        },
    );
    let err = h
        .relay
        .sink()
        .push(ev.clone())
        .await
        .expect_err("refused while the disk is full");
    assert!(err.to_string().contains("below the minimum"), "{err}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(h.b.messages("general").is_empty(), "nothing relayed");
    // Space returns; the platform redelivers the same event.
    guard.set_min_free(0);
    h.relay.sink().push(ev).await.expect("accepted now");
    until("relayed once", Duration::from_secs(5), || {
        texts(&h.b, "general") == ["wait for space"]
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn mentions_become_native_only_where_puppets_are_accounts() {
    use crate::store::records::{OutboxEntry, PendingAction, PuppetRecord};
    use switchboard_model::{Inline, OutboundKind, PuppetRef};
    let db = Db::open(Arc::new(MemoryStore::new())).expect("db");
    let cid = Person::new("mem:a".into(), "cid".into(), "Cid");
    let record = PuppetRecord {
        puppet: PuppetRef::new("puppet-cid".into(), "Cid"),
        name_hash: 0,
        avatar_hash: 0,
    };
    db.put_puppet(&"mem:b".into(), &cid, &record)
        .expect("puppet");
    let body = RichText::builder()
        .text("ping ")
        .mention("mem:a".into(), "cid".into(), "Cid")
        .build();
    let entry = OutboxEntry {
        origin: Some(Origin::new("mem:a", "general")),
        sender: None,
        action: PendingAction::Send {
            group: 1,
            message: Message::new(body),
        },
        attempts: 0,
        enqueued_ms: 0,
        is_notice: false,
        maybe_delivered: false,
    };
    let key = crate::store::OutboxKey {
        portal: crate::store::PortalId::new("p"),
        seq: 1,
        bridge: "mem:b".into(),
        channel: "general".into(),
    };
    let mention_in = |caps: Capabilities| {
        let translator = translate::Translator {
            db: db.clone(),
            bridge: Arc::new(MemoryBridge::new(
                MemoryPlatform::new("mem:b"),
                caps.clone(),
            )),
            capabilities: caps,
            portals: portals::Portals::default(),
            reaction_fallback: ReactionFallback::Notice,
        };
        let (key, entry) = (key.clone(), entry.clone());
        async move {
            let prepared = translator
                .prepare(&key, &entry, false, &|_| false)
                .await
                .expect("prepared");
            let translate::Prepared::Deliver { op, .. } = prepared else {
                panic!("a delivery")
            };
            let OutboundKind::Send { mut message } = op.kind else {
                panic!("a send")
            };
            let mut found = None;
            message.body.for_each_inline_mut(&mut |i| {
                if let Inline::UserMention { bridge, user, .. } = i {
                    found = Some((bridge.to_string(), user.to_string()));
                }
            });
            found.expect("a mention")
        }
    };
    // Puppets are accounts: the mention points at Cid's puppet there.
    assert_eq!(
        mention_in(Capabilities::full()).await,
        ("mem:b".to_owned(), "puppet-cid".to_owned())
    );
    // A name per message: no account to point at; it stays Cid's own, shown as "@Cid".
    assert_eq!(
        mention_in(Capabilities::minimal()).await,
        ("mem:a".to_owned(), "cid".to_owned())
    );
}

fn members(list: &[&str]) -> Vec<String> {
    list.iter().map(|m| (*m).to_owned()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_linked_portal_relays_at_once_and_unlink_stops_it() {
    let h = start(Options::default());
    let mut watch_b = h.relay.channels_watch(&"mem:b".into());
    assert_eq!(*watch_b.borrow_and_update(), [ChannelId::new("general")]);
    let linked = h
        .relay
        .link_portal("sales", &members(&["mem:a/sales", "mem:b/sales-b"]))
        .expect("linked");
    assert_eq!(linked.source, PortalSource::Linked);
    assert!(watch_b.has_changed().expect("watch open"), "bridge b told");
    assert_eq!(
        *watch_b.borrow_and_update(),
        [ChannelId::new("general"), ChannelId::new("sales-b")]
    );
    h.a.post("sales", "ann", "Ann", "hello sales")
        .expect("post");
    h.b.post("sales-b", "bob", "Bob", "hi back").expect("post");
    until(
        "linked portal relays both ways",
        Duration::from_secs(5),
        || {
            texts(&h.b, "sales-b") == ["hi back", "hello sales"]
                && texts(&h.a, "sales") == ["hello sales", "hi back"]
        },
    )
    .await;
    assert_eq!(
        h.relay.portals(),
        [
            PortalInfo {
                name: "general".into(),
                members: vec![
                    ("mem:a".into(), "general".into()),
                    ("mem:b".into(), "general".into())
                ],
                source: PortalSource::Config,
            },
            PortalInfo {
                name: "sales".into(),
                members: vec![
                    ("mem:a".into(), "sales".into()),
                    ("mem:b".into(), "sales-b".into())
                ],
                source: PortalSource::Linked,
            },
        ]
    );
    let stored =
        h.db.portal(&PortalId::new("sales"))
            .expect("read")
            .expect("stored");
    assert_eq!(stored.source, PortalSource::Linked);

    h.relay.unlink_portal("sales").expect("unlinked");
    assert_eq!(*watch_b.borrow_and_update(), [ChannelId::new("general")]);
    assert_eq!(h.db.portal(&PortalId::new("sales")).expect("read"), None);
    h.a.post("sales", "ann", "Ann", "after unlink")
        .expect("post");
    h.a.post("general", "ann", "Ann", "still here")
        .expect("post");
    until("config portal still relays", Duration::from_secs(5), || {
        texts(&h.b, "general") == ["still here"]
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(texts(&h.b, "sales-b"), ["hi back", "hello sales"]);
    assert_eq!(h.relay.portals().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn linked_portals_survive_restarts_and_reloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = MemoryPlatform::new("mem:a");
    let b = MemoryPlatform::new("mem:b");
    {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("sled"));
        let h = start_with(
            Options {
                store,
                ..Options::default()
            },
            a.clone(),
            b.clone(),
        );
        h.relay
            .link_portal("sales", &members(&["mem:a/sales", "mem:b/sales"]))
            .expect("linked");
        h.relay
            .link_portal("ops", &members(&["mem:a/ops", "mem:b/ops"]))
            .expect("linked");
        h.stop().await;
    }
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("sled reopens"));
    let h = start_with(
        Options {
            store,
            ..Options::default()
        },
        a.clone(),
        b.clone(),
    );
    let names = |h: &Harness| -> Vec<(String, PortalSource)> {
        h.relay
            .portals()
            .into_iter()
            .map(|p| (p.name, p.source))
            .collect()
    };
    assert_eq!(
        names(&h),
        [
            ("general".to_owned(), PortalSource::Config),
            ("ops".to_owned(), PortalSource::Linked),
            ("sales".to_owned(), PortalSource::Linked),
        ]
    );
    a.post("sales", "ann", "Ann", "after restart")
        .expect("post");
    until("relayed after restart", Duration::from_secs(10), || {
        texts(&b, "sales") == ["after restart"]
    })
    .await;

    // A reload keeps linked portals; a config portal that takes a linked
    // one's name wins; a config portal that left the file is removed.
    h.relay
        .reload(
            &[portal(
                "ops",
                &[("mem:a", "ops-config"), ("mem:b", "ops-config")],
            )],
            relay_config(),
        )
        .expect("reload");
    assert_eq!(
        names(&h),
        [
            ("ops".to_owned(), PortalSource::Config),
            ("sales".to_owned(), PortalSource::Linked),
        ]
    );
    assert_eq!(h.db.portal(&PortalId::new("general")).expect("read"), None);
    assert_eq!(
        h.relay
            .unlink_portal("ops")
            .expect_err("config")
            .to_string(),
        "portal \"ops\" is defined in the config file; remove it there"
    );
    a.post("sales", "ann", "Ann", "after reload").expect("post");
    until("relayed after reload", Duration::from_secs(10), || {
        texts(&b, "sales") == ["after restart", "after reload"]
    })
    .await;
    // A config portal taking a linked one's channel wins too.
    h.relay
        .reload(
            &[portal("sales2", &[("mem:a", "sales"), ("mem:b", "x")])],
            relay_config(),
        )
        .expect("reload");
    assert_eq!(names(&h), [("sales2".to_owned(), PortalSource::Config)]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn linking_and_unlinking_report_what_is_wrong() {
    let h = start(Options::default());
    let link = |name: &str, list: &[&str]| h.relay.link_portal(name, &members(list));
    let err = link("x", &["mem:zz/c", "mem:b/c"]).expect_err("unknown bridge");
    assert!(matches!(err, PortalError::Invalid(_)), "{err:?}");
    assert!(
        err.to_string().contains("unknown bridge \"mem:zz\""),
        "{err}"
    );
    let err = link("x", &["mem:a/c"]).expect_err("one member");
    assert!(matches!(err, PortalError::Invalid(_)), "{err:?}");
    assert_eq!(err.to_string(), "a portal needs at least 2 members, got 1");
    let err = link("x", &["mem:a/c", "mem:a/c"]).expect_err("duplicate member");
    assert!(matches!(err, PortalError::Invalid(_)), "{err:?}");
    let err = link("x", &["mem:a/c", "no-slash"]).expect_err("bad member");
    assert!(matches!(err, PortalError::Invalid(_)), "{err:?}");
    assert!(
        err.to_string().contains("<bridge-id>/<channel-id>"),
        "{err}"
    );
    let err = link("bad name", &["mem:a/c", "mem:b/c"]).expect_err("bad name");
    assert!(matches!(err, PortalError::Invalid(_)), "{err:?}");
    let err = link("x", &["mem:a/c", "mem:b/general"]).expect_err("taken channel");
    assert!(matches!(err, PortalError::Conflict(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("\"mem:b/general\" is already in portal \"general\""),
        "{err}"
    );
    let err = link("general", &["mem:a/c", "mem:b/c"]).expect_err("config name");
    assert!(matches!(err, PortalError::Conflict(_)), "{err:?}");
    link("x", &["mem:a/c", "mem:b/c"]).expect("linked");
    let err = link("x", &["mem:a/d", "mem:b/d"]).expect_err("duplicate name");
    assert!(matches!(err, PortalError::Conflict(_)), "{err:?}");
    assert_eq!(err.to_string(), "portal \"x\" already exists");
    let err = link("y", &["mem:a/d", "mem:b/c"]).expect_err("linked channel");
    assert!(err.to_string().contains("already in portal \"x\""), "{err}");
    let err = h.relay.unlink_portal("general").expect_err("config portal");
    assert!(matches!(err, PortalError::Conflict(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("defined in the config file; remove it there"),
        "{err}"
    );
    let err = h.relay.unlink_portal("nope").expect_err("unknown");
    assert!(matches!(err, PortalError::NotFound(_)), "{err:?}");
    assert_eq!(err.to_string(), "no portal \"nope\"");
    // Nothing failed half-way: only the one good link exists.
    let names: Vec<String> = h.relay.portals().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["general", "x"]);
    h.stop().await;
}

// ----- portal rooms' names and topics -----

/// `mem:a` keeps its own channel names (like Slack), `mem:b` mirrors them
/// (like Matrix).
fn mirror_options(store: Arc<dyn Store>) -> Options {
    let mut caps_a = Capabilities::full();
    caps_a.mirrors_channel_info = false;
    Options {
        caps_a,
        store,
        ..Options::default()
    }
}

fn info_deliveries(p: &MemoryPlatform) -> Vec<switchboard_model::ChannelInfo> {
    p.deliveries()
        .into_iter()
        .filter(|d| d.kind == switchboard_model::testing::DeliveryKind::ChannelInfo)
        .map(|d| serde_json::from_str(d.text.as_deref().unwrap_or("")).expect("info JSON"))
        .collect()
}

fn channel_info_event(bridge: &str, id: &str, info: &switchboard_model::ChannelInfo) -> Inbound {
    Inbound::new(
        Origin::new(bridge, "general"),
        EventId::new(id),
        Sender::new(Person::new(bridge.into(), "ann".into(), "Ann")),
        InboundKind::ChannelInfo {
            name: info.name.clone(),
            topic: info.topic.clone(),
            avatar: info.avatar.clone(),
        },
    )
}

#[tokio::test]
async fn mirrored_rooms_take_the_channel_name_once_then_follow_renames() {
    use switchboard_model::ChannelInfo;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = MemoryPlatform::new("mem:a");
    let b = MemoryPlatform::new("mem:b");
    let first = ChannelInfo {
        name: Some("general".into()),
        topic: Some("Launch on Friday".into()),
        avatar: None,
    };
    a.set_channel_info("general", first.clone());
    {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("sled"));
        let h = start_with(mirror_options(store), a.clone(), b.clone());
        until("the room is named", Duration::from_secs(10), || {
            !info_deliveries(&b).is_empty()
        })
        .await;
        assert_eq!(info_deliveries(&b), std::slice::from_ref(&first));

        // A rename on the owning side reaches the mirror, by the bot.
        let renamed = ChannelInfo {
            name: Some("launch".into()),
            ..ChannelInfo::default()
        };
        a.inject(channel_info_event("mem:a", "ev-rename", &renamed))
            .expect("inject");
        until("the rename is mirrored", Duration::from_secs(10), || {
            info_deliveries(&b).len() == 2
        })
        .await;
        assert_eq!(info_deliveries(&b)[1], renamed);
        let by = b
            .deliveries()
            .into_iter()
            .find(|d| d.kind == switchboard_model::testing::DeliveryKind::ChannelInfo)
            .and_then(|d| d.author);
        assert_eq!(by, None, "set by the bridge itself, not a puppet");

        // A rename on the mirror never renames the owner's channel.
        let topic = ChannelInfo {
            topic: Some("ours".into()),
            ..ChannelInfo::default()
        };
        b.inject(channel_info_event("mem:b", "ev-topic", &topic))
            .expect("inject");
        a.post("general", "ann", "Ann", "marker").expect("post");
        until("the marker arrives", Duration::from_secs(10), || {
            texts(&b, "general") == ["marker"]
        })
        .await;
        assert!(
            a.attempts().iter().all(|x| x.kind != "channel_info"),
            "the owning side was never asked to rename"
        );
        h.stop().await;
    }
    // After a restart nobody is asked again: renames arrive as events.
    a.set_channel_info(
        "general",
        ChannelInfo {
            name: Some("changed-while-down".into()),
            ..ChannelInfo::default()
        },
    );
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("sled reopens"));
    let h = start_with(mirror_options(store), a.clone(), b.clone());
    a.post("general", "ann", "Ann", "after restart")
        .expect("post");
    until("relayed after restart", Duration::from_secs(10), || {
        texts(&b, "general").len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(info_deliveries(&b).len(), 2, "no second initial sync");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_channel_that_cannot_be_described_yet_is_asked_again() {
    use switchboard_model::ChannelInfo;
    let a = MemoryPlatform::new("mem:a");
    let b = MemoryPlatform::new("mem:b");
    a.set_channel_info(
        "general",
        ChannelInfo {
            name: Some("general".into()),
            ..ChannelInfo::default()
        },
    );
    // mem:a's token is wrong at first: channel_info fails.
    a.require_token("right");
    let bridge_a = MemoryBridge::new(a.clone(), {
        let mut c = Capabilities::full();
        c.mirrors_channel_info = false;
        c
    })
    .with_token("wrong");
    let bridge_b = MemoryBridge::new(b.clone(), Capabilities::full());
    let db = Db::open(Arc::new(MemoryStore::new())).expect("db");
    let relay = Relay::start(RelaySetup {
        db,
        bridges: vec![Arc::new(bridge_a), Arc::new(bridge_b)],
        portals: vec![portal(
            "general",
            &[("mem:a", "general"), ("mem:b", "general")],
        )],
        config: relay_config(),
        dedup_retention: Duration::from_secs(3600),
        metrics: Arc::new(Metrics::new()),
        space: None,
        secrets: None,
    })
    .expect("relay starts");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(info_deliveries(&b).is_empty(), "nothing known yet");
    a.require_token("wrong");
    until("asked again and named", Duration::from_secs(120), || {
        info_deliveries(&b).len() == 1
    })
    .await;
    relay.shutdown().await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_channel_refused_for_good_is_asked_again_at_the_next_start() {
    use switchboard_model::ChannelInfo;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = MemoryPlatform::new("mem:a");
    let b = MemoryPlatform::new("mem:b");
    a.set_channel_info(
        "general",
        ChannelInfo {
            name: Some("general".into()),
            ..ChannelInfo::default()
        },
    );
    a.remove_channel("general");
    {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("sled"));
        let h = start_with(mirror_options(store), a.clone(), b.clone());
        // Long past every retry of a failure worth retrying.
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(info_deliveries(&b).is_empty());
        h.stop().await;
    }
    a.restore_channel("general");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("sled reopens"));
    let h = start_with(mirror_options(store), a.clone(), b.clone());
    until("named at the next start", Duration::from_secs(10), || {
        info_deliveries(&b).len() == 1
    })
    .await;
    h.stop().await;
}

// ----- meetings on request -----

fn call_request(bridge: &str, id: &str, title: Option<&str>) -> Inbound {
    Inbound::new(
        Origin::new(bridge, "general"),
        EventId::new(id),
        Sender::new(Person::new(bridge.into(), "ann".into(), "Ann")),
        InboundKind::CallRequest {
            title: title.map(str::to_owned),
        },
    )
}

fn invites(p: &MemoryPlatform) -> Vec<String> {
    p.deliveries()
        .into_iter()
        .filter(|d| d.kind == switchboard_model::testing::DeliveryKind::Call)
        .filter_map(|d| d.text)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_meeting_asked_for_is_created_by_the_member_that_can_and_everyone_is_invited() {
    let mut caps_b = Capabilities::full();
    caps_b.creates_meetings = true;
    let h = start(Options {
        caps_b,
        ..Options::default()
    });
    h.a.inject(call_request("mem:a", "ev-call", Some("Design review")))
        .expect("inject");
    until("both invited", Duration::from_secs(10), || {
        invites(&h.a).len() == 1 && invites(&h.b).len() == 1
    })
    .await;
    let meetings = h.b.meetings();
    assert_eq!(meetings.len(), 1, "one meeting");
    assert_eq!(meetings[0].title, "Design review");
    assert_eq!(meetings[0].organiser.as_deref(), Some("Ann"));
    for side in [&h.a, &h.b] {
        let invite = &invites(side)[0];
        assert!(
            invite.contains("Ann started Design review")
                && invite.contains("https://meet.memory.test/mem_b/"),
            "{invite}"
        );
    }
    // A redelivered request changes nothing.
    h.a.inject(call_request("mem:a", "ev-call", Some("Design review")))
        .expect("inject");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.b.meetings().len(), 1);
    assert_eq!((invites(&h.a).len(), invites(&h.b).len()), (1, 1));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_a_meeting_provider_a_jitsi_room_is_shared() {
    let h = start(Options::default());
    h.b.inject(call_request("mem:b", "ev-jitsi", None))
        .expect("inject");
    until("both invited", Duration::from_secs(10), || {
        invites(&h.a).len() == 1 && invites(&h.b).len() == 1
    })
    .await;
    let (a, b) = (&invites(&h.a)[0], &invites(&h.b)[0]);
    assert_eq!(a, b, "the same room for everyone");
    let url = a.split("join: ").nth(1).expect("a link");
    let room = url
        .strip_prefix("https://meet.example.test/Switchboard")
        .expect("under the configured Jitsi URL");
    assert_eq!(room.len(), 32, "{room}");
    assert!(room.bytes().all(|c| c.is_ascii_hexdigit()));
    assert!(a.contains("Meeting in general"), "a default title: {a}");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_meeting_provider_that_fails_is_retried_and_creates_one_meeting() {
    let mut caps_b = Capabilities::full();
    caps_b.creates_meetings = true;
    let a = MemoryPlatform::new("mem:a");
    let b = MemoryPlatform::new("mem:b");
    // mem:b refuses its token at first: create_meeting fails (Auth, retried).
    b.require_token("later");
    let h = start_with(
        Options {
            caps_b,
            ..Options::default()
        },
        a.clone(),
        b.clone(),
    );
    a.inject(call_request("mem:a", "ev-retry", Some("Retro")))
        .expect("inject");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(b.meetings().is_empty() && invites(&a).is_empty());
    b.accept_any_token();
    until("invited after the retry", Duration::from_secs(120), || {
        invites(&a).len() == 1
    })
    .await;
    assert_eq!(b.meetings().len(), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn calls_turned_off_in_a_portal_are_neither_relayed_nor_started() {
    let mut general = portal("general", &[("mem:a", "general"), ("mem:b", "general")]);
    general.calls.relay = false;
    let h = start(Options {
        portals: vec![general],
        ..Options::default()
    });
    h.a.inject(call_request("mem:a", "ev-off", Some("Nope")))
        .expect("inject");
    let mut call = switchboard_model::CallEvent::new(
        switchboard_model::CallId::new("huddle-1"),
        switchboard_model::CallProvider::SlackHuddle,
        switchboard_model::CallState::Started,
    );
    call.join_url = Some("https://example.test/huddle".into());
    h.a.inject(Inbound::new(
        Origin::new("mem:a", "general"),
        EventId::new("ev-huddle"),
        Sender::new(Person::new("mem:a".into(), "ann".into(), "Ann")),
        InboundKind::Call(call),
    ))
    .expect("inject");
    until("the asker is told", Duration::from_secs(10), || {
        texts(&h.a, "general")
            .iter()
            .any(|t| t == "Calls are turned off for this conversation.")
    })
    .await;
    h.a.post("general", "ann", "Ann", "marker").expect("post");
    until("the marker arrives", Duration::from_secs(10), || {
        texts(&h.b, "general") == ["marker"]
    })
    .await;
    assert!(invites(&h.b).is_empty() && invites(&h.a).is_empty());
    h.stop().await;
}

fn huddle(state: switchboard_model::CallState, who: &str, id: &str) -> Inbound {
    let mut call = switchboard_model::CallEvent::new(
        switchboard_model::CallId::new("huddle-9"),
        switchboard_model::CallProvider::SlackHuddle,
        state,
    );
    call.title = Some("Huddle".into());
    call.join_url = Some("https://example.test/huddle-9".into());
    call.participants = vec![Person::new("mem:a".into(), who.into(), who)];
    call.started_by = Some(Person::new("mem:a".into(), who.into(), who));
    Inbound::new(
        Origin::new("mem:a", "general"),
        EventId::new(id),
        Sender::new(Person::new("mem:a".into(), who.into(), who)),
        InboundKind::Call(call),
    )
}

#[tokio::test]
async fn the_call_registry_follows_a_call_and_lists_each_invite() {
    use switchboard_model::CallState;
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("sled"));
    let h = start(Options {
        store,
        ..Options::default()
    });
    h.a.inject(huddle(CallState::Started, "ann", "ev-h1"))
        .expect("inject");
    h.a.inject(huddle(CallState::Updated, "bob", "ev-h2"))
        .expect("inject");
    until(
        "the invite is posted and updated",
        Duration::from_secs(10),
        || {
            h.b.deliveries()
                .iter()
                .filter(|d| d.kind == switchboard_model::testing::DeliveryKind::Call)
                .count()
                == 2
        },
    )
    .await;
    h.a.inject(huddle(
        CallState::Ended {
            duration: Some(Duration::from_secs(95)),
        },
        "ann",
        "ev-h3",
    ))
    .expect("inject");
    until("the end is shown", Duration::from_secs(10), || {
        invites(&h.b).last().is_some_and(|t| t.contains("1m 35s"))
    })
    .await;
    // The same end again under another event id (a catch-up after a
    // restart and the platform's redelivery): nothing is edited again.
    let edits_before = invites(&h.b).len();
    h.a.inject(huddle(
        CallState::Ended {
            duration: Some(Duration::from_secs(95)),
        },
        "ann",
        "ev-h3-again",
    ))
    .expect("inject");
    h.a.post("general", "ann", "Ann", "marker").expect("post");
    until("the marker arrives", Duration::from_secs(10), || {
        texts(&h.b, "general").iter().any(|t| t == "marker")
    })
    .await;
    assert_eq!(invites(&h.b).len(), edits_before, "the end is shown once");
    let calls = h.relay.calls().expect("registry");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call.id.as_str(), "huddle-9");
    assert_eq!(call.record.portal, "general");
    assert_eq!(
        call.record.state,
        CallState::Ended {
            duration: Some(Duration::from_secs(95))
        }
    );
    assert!(call.record.ended_ms.is_some());
    assert_eq!(
        call.record.started_by.as_ref().map(|p| p.user.as_str()),
        Some("ann")
    );
    let who: Vec<&str> = call
        .record
        .participants
        .iter()
        .map(|p| p.user.as_str())
        .collect();
    assert_eq!(who, ["ann", "bob"], "each participant once");
    // One invite, on the other member, edited twice (its id is the first post's).
    assert_eq!(call.invites.len(), 1, "{:?}", call.invites);
    let (bridge, channel, ids) = &call.invites[0];
    assert_eq!((bridge.as_str(), channel.as_str()), ("mem:b", "general"));
    let first_post =
        h.b.deliveries()
            .into_iter()
            .find(|d| d.kind == switchboard_model::testing::DeliveryKind::Call)
            .map(|d| d.ids)
            .expect("the invite");
    assert_eq!(ids, &first_post);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_meeting_asked_for_is_registered_with_its_asker_and_link() {
    let h = start(Options::default());
    h.a.inject(call_request("mem:a", "ev-reg", Some("Planning")))
        .expect("inject");
    until("both invited", Duration::from_secs(10), || {
        invites(&h.a).len() == 1 && invites(&h.b).len() == 1
    })
    .await;
    let calls = h.relay.calls().expect("registry");
    assert_eq!(calls.len(), 1);
    let r = &calls[0].record;
    assert_eq!(r.provider, switchboard_model::CallProvider::Jitsi);
    assert_eq!(r.title.as_deref(), Some("Planning"));
    assert_eq!(
        r.started_by.as_ref().map(|p| p.display_name.as_str()),
        Some("Ann")
    );
    assert!(
        r.join_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://meet.example.test/Switchboard"))
    );
    let mut members: Vec<String> = calls[0]
        .invites
        .iter()
        .map(|(b, c, _)| format!("{b}/{c}"))
        .collect();
    members.sort();
    assert_eq!(
        members,
        ["mem:a/general", "mem:b/general"],
        "the asker's channel too"
    );
    h.stop().await;
}

// ----- commands and direct portals (relay/commands.rs) -----

fn command(channel: &str, user: &str, name: &str, event: &str, text: &str) -> Inbound {
    Inbound::new(
        Origin::new("mem:a", channel),
        EventId::new(event),
        Sender::new(Person::new("mem:a".into(), user.into(), name)),
        InboundKind::Command {
            text: text.to_owned(),
            message: None,
        },
    )
}

/// What the bridge posted in `channel` of `p`, oldest first.
fn bot_texts(p: &MemoryPlatform, channel: &str) -> Vec<String> {
    p.messages(channel)
        .into_iter()
        .filter(|m| m.by_bridge)
        .map(|m| m.text)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn dm_opens_a_direct_portal_that_relays_both_ways_and_persists() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (a, b) = (MemoryPlatform::new("mem:a"), MemoryPlatform::new("mem:b"));
    b.add_person("u-bob", "Bob Builder");
    b.add_person("u-bobby", "Bobby Tables");
    let opts = || Options {
        store: store.clone(),
        ..Options::default()
    };
    let h = start_with(opts(), a.clone(), b.clone());
    // Two people match "bob": the answer lists both, and nothing opens.
    a.inject(command("dm-ann", "ann", "Ann Lee", "c1", "dm bob"))
        .expect("inject");
    until("the choice is answered", Duration::from_secs(10), || {
        !bot_texts(&a, "dm-ann").is_empty()
    })
    .await;
    let answer = &bot_texts(&a, "dm-ann")[0];
    assert!(answer.contains("Several people match"), "{answer}");
    assert!(answer.contains("dm mem:b/u-bob — Bob Builder"), "{answer}");
    assert!(
        answer.contains("dm mem:b/u-bobby — Bobby Tables"),
        "{answer}"
    );
    assert!(b.directs().is_empty());

    // The exact name opens the portal; both sides are told who is there.
    a.inject(command("dm-ann", "ann", "Ann Lee", "c2", "dm Bob Builder"))
        .expect("inject");
    until("both sides told", Duration::from_secs(10), || {
        bot_texts(&b, "dm-u-bob").len() == 1 && bot_texts(&a, "dm-ann").len() == 2
    })
    .await;
    assert_eq!(
        bot_texts(&b, "dm-u-bob")[0],
        "Ann Lee (Mem) started a direct conversation with you through Switchboard. Reply here to answer."
    );
    assert!(
        bot_texts(&a, "dm-ann")[1].starts_with("You are now connected with Bob Builder (Mem)."),
        "{:?}",
        bot_texts(&a, "dm-ann")
    );
    let opened = b.directs();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].0.as_str(), "u-bob");
    assert_eq!(opened[0].1.display_name, "Ann Lee");
    let portals = h.relay.portals();
    let direct = portals
        .iter()
        .find(|p| p.source == PortalSource::Direct)
        .expect("a direct portal");
    assert_eq!(
        direct.members,
        vec![
            ("mem:a".into(), "dm-ann".into()),
            ("mem:b".into(), "dm-u-bob".into())
        ]
    );

    // Replies flow both ways, as the people who wrote them.
    a.post("dm-ann", "ann", "Ann Lee", "hello Bob")
        .expect("post");
    b.post("dm-u-bob", "u-bob", "Bob Builder", "hi Ann")
        .expect("post");
    until("both relayed", Duration::from_secs(10), || {
        bot_texts(&b, "dm-u-bob").len() == 2 && bot_texts(&a, "dm-ann").len() == 3
    })
    .await;
    let to_bob = b.messages("dm-u-bob");
    let relayed = to_bob
        .iter()
        .find(|m| m.text == "hello Bob")
        .expect("relayed");
    assert_eq!(relayed.author_name, "Ann Lee");
    assert!(bot_texts(&a, "dm-ann").contains(&"hi Ann".to_owned()));

    // A redelivered command does nothing; asking again says so.
    a.inject(command("dm-ann", "ann", "Ann Lee", "c2", "dm Bob Builder"))
        .expect("inject");
    a.inject(command("dm-ann", "ann", "Ann Lee", "c3", "dm mem:b/u-bob"))
        .expect("inject");
    until("answered again", Duration::from_secs(10), || {
        bot_texts(&a, "dm-ann").len() == 4
    })
    .await;
    assert!(
        bot_texts(&a, "dm-ann")[3].starts_with("You are already connected with Bob Builder"),
        "{:?}",
        bot_texts(&a, "dm-ann")
    );
    assert_eq!(bot_texts(&b, "dm-u-bob").len(), 2, "nothing more for Bob");
    h.stop().await;

    // After a restart the portal is still there and still relays.
    let h = start_with(opts(), a.clone(), b.clone());
    assert!(
        h.relay
            .portals()
            .iter()
            .any(|p| p.source == PortalSource::Direct)
    );
    b.post("dm-u-bob", "u-bob", "Bob Builder", "still here")
        .expect("post");
    until("relayed after the restart", Duration::from_secs(10), || {
        bot_texts(&a, "dm-ann").contains(&"still here".to_owned())
    })
    .await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn dm_finds_nobody_and_retries_a_platform_that_failed_for_now() {
    let (a, b) = (MemoryPlatform::new("mem:a"), MemoryPlatform::new("mem:b"));
    b.add_person("bob", "Bob Builder");
    let h = start_with(Options::default(), a.clone(), b.clone());
    a.inject(command("dm-ann", "ann", "Ann", "c1", "dm zed"))
        .expect("inject");
    a.inject(command("dm-ann", "ann", "Ann", "c2", "dm"))
        .expect("inject");
    until("answered", Duration::from_secs(10), || {
        bot_texts(&a, "dm-ann").len() == 2
    })
    .await;
    assert_eq!(
        bot_texts(&a, "dm-ann"),
        vec![
            "Nobody matching \"zed\" on Mem (mem:b).".to_owned(),
            "Who with? Send dm <name>, e.g. dm Ann.".to_owned(),
        ]
    );
    // Opening Bob's side fails twice for now: the command is retried.
    b.fail_next(2, BridgeError::transient("try later"));
    a.inject(command("dm-ann", "ann", "Ann", "c3", "dm bob"))
        .expect("inject");
    until("opened after the retries", Duration::from_secs(30), || {
        bot_texts(&b, "dm-bob").len() == 1
    })
    .await;
    assert_eq!(b.directs().len(), 1, "opened once it worked");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn administration_from_a_chat_is_for_administrators_only() {
    let mut config = relay_config();
    config.admins = vec![("mem:a".into(), "root".into())];
    let (a, b) = (MemoryPlatform::new("mem:a"), MemoryPlatform::new("mem:b"));
    let h = start_with(
        Options {
            config,
            ..Options::default()
        },
        a.clone(),
        b.clone(),
    );
    a.inject(command("dm-ann", "ann", "Ann", "c1", "portal list"))
        .expect("inject");
    a.inject(command(
        "dm-ann",
        "ann",
        "Ann",
        "c2",
        "portal link x mem:a/s1 mem:b/s2",
    ))
    .expect("inject");
    a.inject(command("dm-ann", "ann", "Ann", "c3", "help"))
        .expect("inject");
    until("Ann answered", Duration::from_secs(10), || {
        bot_texts(&a, "dm-ann").len() == 3
    })
    .await;
    let ann = bot_texts(&a, "dm-ann");
    assert!(
        ann[0].starts_with("Only Switchboard's administrators"),
        "{ann:?}"
    );
    assert!(
        ann[1].starts_with("Only Switchboard's administrators"),
        "{ann:?}"
    );
    assert!(ann[2].contains("dm <name>"), "{ann:?}");
    assert_eq!(h.relay.portals().len(), 1, "nothing linked");

    a.inject(command(
        "ops",
        "root",
        "Root",
        "r1",
        "!switchboard portal link sales mem:a/s1 mem:b/s2",
    ))
    .expect("inject");
    a.inject(command("ops", "root", "Root", "r2", "portal list"))
        .expect("inject");
    a.inject(command(
        "ops",
        "root",
        "Root",
        "r3",
        "portal link bad mem:a/s1",
    ))
    .expect("inject");
    until("root answered", Duration::from_secs(10), || {
        bot_texts(&a, "ops").len() == 3
    })
    .await;
    let root = bot_texts(&a, "ops");
    assert_eq!(root[0], "Linked portal sales: mem:a/s1, mem:b/s2.");
    assert!(root[1].starts_with("2 portal(s):"), "{root:?}");
    assert!(
        root[1].contains("• general (config): mem:a/general, mem:b/general"),
        "{root:?}"
    );
    assert!(
        root[1].contains("• sales (linked): mem:a/s1, mem:b/s2"),
        "{root:?}"
    );
    assert!(
        root[2].starts_with("Not linked: a portal needs at least 2 members"),
        "{root:?}"
    );
    // The linked portal relays at once.
    a.post("s1", "ann", "Ann", "to sales").expect("post");
    until("relayed", Duration::from_secs(10), || {
        bot_texts(&b, "s2") == vec!["to sales".to_owned()]
    })
    .await;
    a.inject(command("ops", "root", "Root", "r4", "portal unlink sales"))
        .expect("inject");
    a.inject(command(
        "ops",
        "root",
        "Root",
        "r5",
        "portal unlink general",
    ))
    .expect("inject");
    a.inject(command("ops", "root", "Root", "r6", "logins"))
        .expect("inject");
    until("root answered again", Duration::from_secs(10), || {
        bot_texts(&a, "ops").len() == 6
    })
    .await;
    let root = bot_texts(&a, "ops");
    assert_eq!(root[3], "Unlinked portal sales.");
    assert!(root[4].contains("defined in the config file"), "{root:?}");
    assert!(root[5].starts_with("Logins are off"), "{root:?}");
    assert_eq!(h.relay.portals().len(), 1);
    h.stop().await;
}

/// Bob speaks in the shared portal, so he has a puppet on mem:a: its id.
async fn bobs_puppet_on_a(
    h: &Harness,
    a: &MemoryPlatform,
    b: &MemoryPlatform,
) -> switchboard_model::UserId {
    b.post("general", "bob", "Bob Builder", "hello all")
        .expect("post");
    until("relayed", Duration::from_secs(10), || {
        bot_texts(a, "general").len() == 1
    })
    .await;
    let bob = Person::new("mem:b".into(), "bob".into(), "Bob Builder");
    h.db.puppet(&"mem:a".into(), &bob)
        .expect("store")
        .expect("Bob's puppet on mem:a")
        .puppet
        .user
}

/// Carl opens a direct chat (`room` on mem:a) with `puppet`.
fn direct_chat(room: &str, event: &str, puppet: switchboard_model::UserId) -> Inbound {
    Inbound::new(
        Origin::new("mem:a", room),
        EventId::new(event),
        Sender::new(Person::new("mem:a".into(), "carl".into(), "Carl")),
        InboundKind::DirectChat { puppet },
    )
}

#[tokio::test(start_paused = true)]
async fn a_direct_chat_with_a_puppet_reaches_the_person_it_stands_for() {
    let (a, b) = (MemoryPlatform::new("mem:a"), MemoryPlatform::new("mem:b"));
    let h = start_with(Options::default(), a.clone(), b.clone());
    let puppet = bobs_puppet_on_a(&h, &a, &b).await;
    // Carl opens a direct chat with that puppet on mem:a.
    a.inject(direct_chat("room-carl-bob", "invite-1", puppet))
        .expect("inject");
    until("Bob told", Duration::from_secs(10), || {
        bot_texts(&b, "dm-bob").len() == 1
    })
    .await;
    assert_eq!(
        bot_texts(&b, "dm-bob")[0],
        "Carl (Mem) started a direct conversation with you through Switchboard. Reply here to answer."
    );
    assert!(
        bot_texts(&a, "room-carl-bob")[0]
            .starts_with("You are now connected with Bob Builder (Mem)."),
        "{:?}",
        bot_texts(&a, "room-carl-bob")
    );
    a.post("room-carl-bob", "carl", "Carl", "hi Bob")
        .expect("post");
    until("relayed to Bob", Duration::from_secs(10), || {
        bot_texts(&b, "dm-bob").contains(&"hi Bob".to_owned())
    })
    .await;
    h.stop().await;
}

/// `login <platform>`: the requester's own platform and unknown names get
/// the list of choices; without a store key nothing starts and the answer
/// says what is missing.
#[tokio::test(start_paused = true)]
async fn login_names_the_platforms_and_needs_a_store_key() {
    let (a, b) = (MemoryPlatform::new("mem:a"), MemoryPlatform::new("mem:b"));
    let h = start_with(Options::default(), a.clone(), b.clone());
    for (event, text) in [("l1", "login"), ("l2", "login mem:a"), ("l3", "login mem")] {
        a.inject(command("dm-ann", "ann", "Ann Lee", event, text))
            .expect("inject");
    }
    a.inject(command("dm-ann", "ann", "Ann Lee", "l4", "login mem:b"))
        .expect("inject");
    until("all answered", Duration::from_secs(10), || {
        bot_texts(&a, "dm-ann").len() == 4
    })
    .await;
    let answers = bot_texts(&a, "dm-ann");
    assert_eq!(answers[0], "Usage: login <platform>, one of: mem:b.");
    assert_eq!(
        answers[1],
        "No other platform \"mem:a\" here. Send login followed by one of: mem:b."
    );
    // "mem" names two bridges: not one of them.
    assert!(
        answers[2].starts_with("No other platform \"mem\""),
        "{answers:?}"
    );
    assert!(answers[3].contains("needs the store key"), "{answers:?}");
    h.stop().await;
}

/// What is written in a new direct chat at once, before its portal is set
/// up, is held behind the direct chat on its lane and relayed after it, in
/// order, with what follows; in a chat that never becomes a portal it is
/// dropped when its turn comes.
#[tokio::test(start_paused = true)]
async fn first_words_in_a_new_direct_chat_wait_for_its_portal() {
    let (a, b) = (MemoryPlatform::new("mem:a"), MemoryPlatform::new("mem:b"));
    let h = start_with(Options::default(), a.clone(), b.clone());
    let puppet = bobs_puppet_on_a(&h, &a, &b).await;
    a.inject(direct_chat("room-carl-bob", "invite-1", puppet))
        .expect("inject");
    for text in ["first words", "second words", "third words"] {
        a.post("room-carl-bob", "carl", "Carl", text).expect("post");
    }
    until("all relayed to Bob", Duration::from_secs(10), || {
        bot_texts(&b, "dm-bob").len() == 4
    })
    .await;
    assert_eq!(
        bot_texts(&b, "dm-bob")[1..],
        ["first words", "second words", "third words"],
        "after the notice, in order"
    );
    a.post("room-carl-bob", "carl", "Carl", "later words")
        .expect("post");
    until("the next one too", Duration::from_secs(10), || {
        bot_texts(&b, "dm-bob").len() == 5
    })
    .await;
    assert_eq!(bot_texts(&b, "dm-bob")[4], "later words");

    // A direct chat with somebody nobody knows becomes no portal: what was
    // written there is dropped, once its turn comes.
    a.inject(direct_chat(
        "room-carl-ghost",
        "invite-2",
        switchboard_model::UserId::new("nobody-known"),
    ))
    .expect("inject");
    a.post("room-carl-ghost", "carl", "Carl", "into the void")
        .expect("post");
    until("nothing left behind", Duration::from_secs(10), || {
        h.relay.outbox_depth() == 0
    })
    .await;
    assert_eq!(h.relay.portals().len(), 2, "{:?}", h.relay.portals());
    h.stop().await;
}

/// Written to the bot just after `dm`, before the connector knew the chat
/// had become a direct portal: the connector reports it as a command, and
/// the relay, finding a direct portal there and no command in the text,
/// relays the message instead of answering "I don't know the command".
#[tokio::test(start_paused = true)]
async fn a_message_written_just_after_dm_reaches_the_other_person() {
    let (a, b) = (MemoryPlatform::new("mem:a"), MemoryPlatform::new("mem:b"));
    b.add_person("u-bob", "Bob Builder");
    let h = start_with(Options::default(), a.clone(), b.clone());
    a.inject(command("dm-ann", "ann", "Ann Lee", "c1", "dm Bob Builder"))
        .expect("inject");
    let mut quick = command("dm-ann", "ann", "Ann Lee", "c2", "hello Bob, quickly");
    quick.kind = InboundKind::Command {
        text: "hello Bob, quickly".into(),
        message: Some((
            MessageId::new("m-quick"),
            Box::new(Message::text("hello Bob, quickly")),
        )),
    };
    a.inject(quick).expect("inject");
    // A real command right after is still a command.
    a.inject(command("dm-ann", "ann", "Ann Lee", "c3", "help"))
        .expect("inject");
    until("Bob has the message", Duration::from_secs(10), || {
        bot_texts(&b, "dm-u-bob").len() == 2
    })
    .await;
    assert_eq!(bot_texts(&b, "dm-u-bob")[1], "hello Bob, quickly");
    until("help answered", Duration::from_secs(10), || {
        bot_texts(&a, "dm-ann").len() == 2
    })
    .await;
    // Both answers, in either order: the notice of the new portal goes on
    // its lane, the answer to help on the commands lane.
    let answers = bot_texts(&a, "dm-ann");
    assert!(
        answers
            .iter()
            .any(|t| t.starts_with("You are now connected")),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|t| t.starts_with("Switchboard commands:")),
        "{answers:?}"
    );
    assert!(
        answers.iter().all(|t| !t.contains("I don't know")),
        "{answers:?}"
    );
    h.stop().await;
}
