//! The Slack connector against the Slack simulator: the model's conformance
//! suite, inbound events of every kind, and outbound operations as Slack
//! shows them.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use switchboard_model::testing::{ConformanceHarness, run_conformance};
use switchboard_model::{
    Bridge, BridgeContext, BridgeError, BridgeState, ChannelId, Inbound, InboundKind, InboundSink,
    MessageId, bridge::InboundEnvelope,
};
use switchboard_slack::bridge::SlackBridge;
use switchboard_slack::config::{InboundMode, SlackConfig};
use switchboard_slack::ratelimit::RateLimiter;
use switchboard_slack::web::{SlackApi, Token};
use switchboard_slack_sim::commands::CommandOutcome;
use switchboard_slack_sim::seed::{AppSeed, ChannelSeed, Seed, UserSeed};
use switchboard_slack_sim::{SimConfig, SlackSim};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// A simulator with two people and a channel the bot is in.
async fn sim() -> SlackSim {
    sim_with(SimConfig::default()).await
}

async fn sim_with(config: SimConfig) -> SlackSim {
    let seed = Seed {
        users: vec![
            UserSeed {
                name: "alice".into(),
                real_name: Some("Alice Liddell".into()),
                ..UserSeed::default()
            },
            UserSeed {
                name: "bob".into(),
                real_name: Some("Bob Ross".into()),
                ..UserSeed::default()
            },
        ],
        channels: vec![
            ChannelSeed {
                name: "general".into(),
                members: vec!["alice".into(), "bob".into(), "@bot".into()],
                purpose: Some("Company-wide announcements".into()),
                ..ChannelSeed::default()
            },
            ChannelSeed {
                name: "random".into(),
                members: vec!["alice".into(), "@bot".into()],
                ..ChannelSeed::default()
            },
        ],
        app: AppSeed {
            slash_commands: Some(vec!["/switchboard".into()]),
            ..AppSeed::default()
        },
        ..Seed::default()
    };
    SlackSim::start(SimConfig {
        seed: Some(seed),
        ..config
    })
    .await
    .expect("simulator starts")
}

fn bridge(sim: &SlackSim) -> Arc<SlackBridge> {
    let seeded = sim.seeded();
    let mut config = SlackConfig::new(
        "slack:sim".into(),
        format!("{}/api", sim.base_url()),
        Token::new(seeded.bot_token.clone()),
        InboundMode::Socket {
            app_token: Token::new(seeded.app_token.clone()),
        },
    );
    config.rate_limits = false;
    SlackBridge::new(config).expect("bridge")
}

/// A person acting through the ordinary Web API with their own token.
struct Person {
    api: SlackApi,
    token: Token,
}

impl Person {
    fn new(sim: &SlackSim, name: &str) -> Self {
        let api = SlackApi::new(
            format!("{}/api", sim.base_url()),
            Arc::new(RateLimiter::new(false)),
        )
        .expect("api");
        Person {
            api,
            token: Token::new(sim.seeded().user_tokens[name].clone()),
        }
    }

    async fn call(&self, method: &str, args: Value) -> Value {
        self.api
            .call(method, &self.token, args, None)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    async fn post(&self, channel: &str, text: &str) -> String {
        let v = self
            .call(
                "chat.postMessage",
                json!({ "channel": channel, "text": text }),
            )
            .await;
        v["ts"].as_str().expect("ts").to_owned()
    }
}

struct SimHarness {
    sim: SlackSim,
    bridge: Arc<SlackBridge>,
    alice: Person,
}

#[async_trait]
impl ConformanceHarness for SimHarness {
    fn bridge(&self) -> Arc<dyn Bridge> {
        self.bridge.clone()
    }

    fn channel(&self) -> ChannelId {
        ChannelId::new(self.sim.seeded().channels["general"].clone())
    }

    fn missing_channel(&self) -> ChannelId {
        ChannelId::new("C0MISSING0")
    }

    async fn post_as_person(&self, channel: &ChannelId, text: &str) {
        self.alice.post(channel.as_str(), text).await;
    }

    async fn message_text(&self, channel: &ChannelId, id: &MessageId) -> Option<String> {
        let history = self
            .alice
            .call(
                "conversations.history",
                json!({ "channel": channel.as_str(), "limit": 1000 }),
            )
            .await;
        history["messages"]
            .as_array()?
            .iter()
            .find(|m| m["ts"].as_str() == Some(id.as_str()))
            .and_then(|m| m["text"].as_str())
            .map(str::to_owned)
    }

    async fn message_count(&self, channel: &ChannelId) -> usize {
        let history = self
            .alice
            .call(
                "conversations.history",
                json!({ "channel": channel.as_str(), "limit": 1000 }),
            )
            .await;
        history["messages"].as_array().map_or(0, Vec::len)
    }
}

#[tokio::test]
async fn passes_the_conformance_suite_against_the_simulator() {
    let sim = sim().await;
    let harness = SimHarness {
        bridge: bridge(&sim),
        alice: Person::new(&sim, "alice"),
        sim,
    };
    run_conformance(&harness).await;
}

/// The bridge running against the simulator, with what it pushes.
struct Running {
    rx: mpsc::Receiver<InboundEnvelope>,
    stop: CancellationToken,
    state: watch::Receiver<BridgeState>,
    task: tokio::task::JoinHandle<Result<(), switchboard_model::BridgeError>>,
}

fn run(bridge: Arc<SlackBridge>, channels: Vec<ChannelId>) -> Running {
    let (sink, rx) = InboundSink::channel(64);
    let stop = CancellationToken::new();
    let (state_tx, state) = watch::channel(BridgeState::Connecting);
    let (_tx, channels) = watch::channel(channels);
    let ctx = BridgeContext::new(sink, stop.clone(), state_tx).with_channels(channels);
    let task = tokio::spawn(async move { bridge.run(ctx).await });
    Running {
        rx,
        stop,
        state,
        task,
    }
}

impl Running {
    /// The next event the bridge pushes (acknowledged as stored).
    async fn next(&mut self) -> Inbound {
        let (event, ack) = tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("an event within 10 s")
            .expect("the bridge is running");
        let _ = ack.send(Ok(()));
        event
    }

    /// Every event pushed within `d` (each acknowledged as stored).
    async fn quiet(&mut self, d: Duration) -> Vec<Inbound> {
        let mut out = Vec::new();
        while let Ok(Some((event, ack))) = tokio::time::timeout(d, self.rx.recv()).await {
            let _ = ack.send(Ok(()));
            out.push(event);
        }
        out
    }

    async fn connected(&mut self) {
        tokio::time::timeout(
            Duration::from_secs(10),
            self.state.wait_for(|s| *s == BridgeState::Connected),
        )
        .await
        .expect("connected within 10 s")
        .expect("state channel open");
    }

    async fn stop(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("stops")
            .expect("joins");
        assert!(result.is_ok(), "{result:?}");
    }
}

#[tokio::test]
async fn people_s_messages_edits_threads_reactions_and_deletes_arrive() {
    let sim = sim().await;
    let general = sim.seeded().channels["general"].clone();
    let bridge = bridge(&sim);
    let mut running = run(bridge.clone(), vec![]);
    running.connected().await;
    let alice = Person::new(&sim, "alice");

    let ts = alice.post(&general, "hello *world* <@U0NOBODY>").await;
    let ev = running.next().await;
    assert_eq!(ev.origin.channel.as_str(), general);
    assert_eq!(ev.sender.person.display_name, "Alice Liddell");
    assert!(!ev.sender.is_ours);
    let InboundKind::Message { id, message } = &ev.kind else {
        panic!("a message: {ev:?}")
    };
    assert_eq!(id.as_str(), ts);
    assert!(
        message.body.to_plain().starts_with("hello world @"),
        "{}",
        message.body.to_plain()
    );

    let reply = alice
        .call(
            "chat.postMessage",
            json!({ "channel": general, "text": "in thread", "thread_ts": ts }),
        )
        .await;
    let ev = running.next().await;
    let InboundKind::Message { message, .. } = &ev.kind else {
        panic!("a reply: {ev:?}")
    };
    assert_eq!(
        message.thread_root.as_ref().map(MessageId::as_str),
        Some(ts.as_str())
    );
    let reply_ts = reply["ts"].as_str().expect("ts").to_owned();

    alice
        .call(
            "chat.update",
            json!({ "channel": general, "ts": ts, "text": "hello again" }),
        )
        .await;
    let ev = running.next().await;
    let InboundKind::Edit { target, message } = &ev.kind else {
        panic!("an edit: {ev:?}")
    };
    assert_eq!(target.as_str(), ts);
    assert_eq!(message.body.to_plain(), "hello again");

    alice
        .call(
            "reactions.add",
            json!({ "channel": general, "timestamp": ts, "name": "thumbsup" }),
        )
        .await;
    let ev = running.next().await;
    let InboundKind::Reaction { target, key, added } = &ev.kind else {
        panic!("a reaction: {ev:?}")
    };
    assert_eq!(
        (target.as_str(), key.as_str(), *added),
        (ts.as_str(), "👍", true)
    );

    alice
        .call("chat.delete", json!({ "channel": general, "ts": reply_ts }))
        .await;
    let ev = running.next().await;
    assert!(
        matches!(&ev.kind, InboundKind::Delete { target } if target.as_str() == reply_ts),
        "{ev:?}"
    );
    running.stop().await;
}

#[tokio::test]
async fn our_own_posts_come_back_marked_as_ours() {
    let sim = sim().await;
    let general = sim.seeded().channels["general"].clone();
    let bridge = bridge(&sim);
    let mut running = run(bridge.clone(), vec![]);
    running.connected().await;
    let op = switchboard_model::OutboundOp::new(
        "op-echo".into(),
        ChannelId::new(general.clone()),
        switchboard_model::OutboundKind::Send {
            message: switchboard_model::Message::text("from elsewhere"),
        },
    )
    .with_author(Some(switchboard_model::PuppetRef::new(
        "puppet:x".into(),
        "Zed (Teams)",
    )));
    bridge
        .deliver(&op, &switchboard_model::testing::NoMedia)
        .await
        .expect("posted");
    let ev = running.next().await;
    assert!(ev.sender.is_ours, "the echo of our own post: {ev:?}");
    running.stop().await;
}

#[tokio::test]
async fn messages_posted_while_away_are_caught_up_from_the_cursor() {
    let sim = sim().await;
    let general = ChannelId::new(sim.seeded().channels["general"].clone());
    let alice = Person::new(&sim, "alice");
    let cursors: Arc<dyn switchboard_model::CursorStore> =
        Arc::new(switchboard_model::MemoryCursors::default());
    // First run: establishes the cursor (no history replayed), sees one live message.
    {
        let (sink, mut rx) = InboundSink::channel(64);
        let stop = CancellationToken::new();
        let (state_tx, mut state) = watch::channel(BridgeState::Connecting);
        let (_tx, channels) = watch::channel(vec![general.clone()]);
        let ctx = BridgeContext::new(sink, stop.clone(), state_tx)
            .with_channels(channels)
            .with_cursors(cursors.clone());
        let bridge = bridge(&sim);
        let task = tokio::spawn(async move { bridge.run(ctx).await });
        state
            .wait_for(|s| *s == BridgeState::Connected)
            .await
            .expect("connected");
        alice.post(general.as_str(), "live").await;
        let (ev, ack) = rx.recv().await.expect("event");
        let _ = ack.send(Ok(()));
        assert!(matches!(ev.kind, InboundKind::Message { .. }));
        stop.cancel();
        task.await.expect("joins").expect("ok");
    }
    // Away: three messages nobody receives live.
    for n in 0..3 {
        alice
            .post(general.as_str(), &format!("while away {n}"))
            .await;
    }
    // Second run: they arrive by catch-up, in order.
    let (sink, mut rx) = InboundSink::channel(64);
    let stop = CancellationToken::new();
    let (state_tx, _state) = watch::channel(BridgeState::Connecting);
    let (_tx, channels) = watch::channel(vec![general.clone()]);
    let ctx = BridgeContext::new(sink, stop.clone(), state_tx)
        .with_channels(channels)
        .with_cursors(cursors.clone());
    let bridge = bridge(&sim);
    let task = tokio::spawn(async move { bridge.run(ctx).await });
    // The relay drops a message it already has by id, so a copy arriving both
    // by catch-up and by Slack's own redelivery is fine; missing one is not.
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < 3 {
        let (ev, ack) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("in time")
            .expect("event");
        let _ = ack.send(Ok(()));
        if let InboundKind::Message { id, message } = &ev.kind {
            seen.insert(id.to_string(), message.body.to_plain());
        }
    }
    let texts: Vec<&String> = seen.values().collect();
    assert_eq!(texts, ["while away 0", "while away 1", "while away 2"]);
    stop.cancel();
    task.await.expect("joins").expect("ok");
}

/// The relay refuses a message (its disk is full) for longer than Slack
/// keeps redelivering it, on a socket that stays connected: once the relay
/// accepts again, the connector's catch-up brings the message Slack gave up
/// on, and the cursor never moved past it.
#[tokio::test]
async fn a_message_slack_gave_up_on_while_the_relay_refused_it_is_caught_up() {
    let sim = sim_with(SimConfig {
        ack_timeout: Duration::from_millis(200),
        max_retries: 1,
        ..SimConfig::default()
    })
    .await;
    let general = ChannelId::new(sim.seeded().channels["general"].clone());
    let alice = Person::new(&sim, "alice");
    let cursors: Arc<dyn switchboard_model::CursorStore> =
        Arc::new(switchboard_model::MemoryCursors::default());
    let (sink, mut rx) = InboundSink::channel(64);
    let stop = CancellationToken::new();
    let (state_tx, mut state) = watch::channel(BridgeState::Connecting);
    let (_tx, channels) = watch::channel(vec![general.clone()]);
    let ctx = BridgeContext::new(sink, stop.clone(), state_tx)
        .with_channels(channels)
        .with_cursors(cursors.clone());
    let bridge = bridge(&sim);
    let task = tokio::spawn(async move { bridge.run(ctx).await });
    state
        .wait_for(|s| *s == BridgeState::Connected)
        .await
        .expect("connected");
    alice.post(general.as_str(), "before").await;
    let (_, ack) = rx.recv().await.expect("event");
    let _ = ack.send(Ok(()));

    // Refused (not stored) until Slack drops it.
    alice.post(general.as_str(), "while full").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.counters().events_dropped == 0 {
        if let Ok(Some((_, ack))) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await
        {
            let _ = ack.send(Err(switchboard_model::IntakeError::NotStored(
                "disk full".into(),
            )));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Slack gives up redelivering"
        );
    }
    let sockets = sim.counters().sockets_opened;

    // Accepted again: it arrives, without a reconnect.
    let (ev, ack) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("caught up in time")
        .expect("event");
    let _ = ack.send(Ok(()));
    let InboundKind::Message { message, .. } = &ev.kind else {
        panic!("a message: {ev:?}")
    };
    assert_eq!(message.body.to_plain(), "while full");
    assert_eq!(sim.counters().sockets_opened, sockets, "no reconnect");
    stop.cancel();
    task.await.expect("joins").expect("ok");
}

#[tokio::test]
async fn a_huddle_becomes_a_call_that_starts_and_ends() {
    let sim = sim().await;
    let general = sim.seeded().channels["general"].clone();
    let bridge = bridge(&sim);
    let mut running = run(bridge.clone(), vec![]);
    running.connected().await;
    let (huddle, _) = sim.start_huddle(&general, "alice").expect("huddle starts");
    let ev = loop {
        let ev = running.next().await;
        if matches!(ev.kind, InboundKind::Call(_)) {
            break ev;
        }
    };
    let InboundKind::Call(started) = &ev.kind else {
        unreachable!("matched above")
    };
    assert_eq!(
        started.provider,
        switchboard_model::CallProvider::SlackHuddle
    );
    assert_eq!(started.state, switchboard_model::CallState::Started);
    assert_eq!(
        started.started_by.as_ref().map(|p| p.display_name.as_str()),
        Some("Alice Liddell"),
        "the starter by name, not by id"
    );
    sim.end_huddle(&huddle).expect("huddle ends");
    let ended = loop {
        let ev = running.next().await;
        if let InboundKind::Call(call) = ev.kind
            && matches!(call.state, switchboard_model::CallState::Ended { .. })
        {
            break call;
        }
    };
    assert_eq!(ended.call, started.call, "the same call from start to end");
    running.stop().await;
}

#[tokio::test]
async fn a_call_invite_is_a_native_call_card_updated_then_ended() {
    use switchboard_model::{CallEvent, CallId, CallProvider, CallState, OutboundKind, OutboundOp};
    let sim = sim().await;
    let general = sim.seeded().channels["general"].clone();
    let bridge = bridge(&sim);
    let call = CallEvent::new(
        CallId::new("teams-meeting:1"),
        CallProvider::TeamsMeeting,
        CallState::Started,
    )
    .with_title("Weekly sync")
    .with_join_url("https://teams.example/join/1");
    let op = |id: &str, event: CallEvent, invite: Vec<MessageId>| {
        OutboundOp::new(
            id.into(),
            ChannelId::new(general.clone()),
            OutboundKind::Call { event, invite },
        )
    };
    let first = bridge
        .deliver(
            &op("call-1", call.clone(), vec![]),
            &switchboard_model::testing::NoMedia,
        )
        .await
        .expect("invite");
    assert_eq!(
        first.ids.len(),
        2,
        "the message and Slack's call id: {first:?}"
    );
    let card = sim
        .messages(&general)
        .into_iter()
        .find(|m| m["ts"].as_str() == Some(first.ids[0].as_str()))
        .expect("the invite message");
    let block = &card["blocks"][0];
    assert_eq!(block["type"], "call", "{card}");
    assert_eq!(block["call_id"].as_str(), Some(first.ids[1].as_str()));

    let mut ended = call.clone();
    ended.state = CallState::Ended {
        duration: Some(Duration::from_secs(1800)),
    };
    bridge
        .deliver(
            &op("call-2", ended, first.ids.clone()),
            &switchboard_model::testing::NoMedia,
        )
        .await
        .expect("ended");
    let api = SlackApi::new(
        format!("{}/api", sim.base_url()),
        Arc::new(RateLimiter::new(false)),
    )
    .expect("api");
    let info = api
        .call(
            "calls.info",
            &Token::new(sim.seeded().bot_token.clone()),
            json!({ "id": first.ids[1].as_str() }),
            None,
        )
        .await
        .expect("calls.info");
    assert!(
        info["call"]["date_end"].as_i64().unwrap_or(0) > 0,
        "the call is ended: {info}"
    );
    assert_eq!(
        sim.messages(&general).len(),
        1,
        "one card, updated, never a second post"
    );
}

#[tokio::test]
async fn a_call_without_a_link_is_one_notice_edited_when_it_ends() {
    use switchboard_model::{CallEvent, CallId, CallProvider, CallState, OutboundKind, OutboundOp};
    let sim = sim().await;
    let general = sim.seeded().channels["general"].clone();
    let bridge = bridge(&sim);
    let call = CallEvent::new(
        CallId::new("teams-meeting:2"),
        CallProvider::TeamsMeeting,
        CallState::Started,
    )
    .with_title("Channel meeting");
    let op = |id: &str, event: CallEvent, invite: Vec<MessageId>| {
        OutboundOp::new(
            id.into(),
            ChannelId::new(general.clone()),
            OutboundKind::Call { event, invite },
        )
    };
    let first = bridge
        .deliver(
            &op("nolink-1", call.clone(), vec![]),
            &switchboard_model::testing::NoMedia,
        )
        .await
        .expect("notice");
    assert_eq!(first.ids.len(), 1, "a notice, no call: {first:?}");
    let mut ended = call;
    ended.state = CallState::Ended {
        duration: Some(Duration::from_secs(65)),
    };
    bridge
        .deliver(
            &op("nolink-2", ended, first.ids.clone()),
            &switchboard_model::testing::NoMedia,
        )
        .await
        .expect("ended");
    let messages = sim.messages(&general);
    assert_eq!(messages.len(), 1, "edited, not posted again: {messages:?}");
    let text = messages[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("ended after 1m 05s"), "{text}");
}

#[tokio::test]
async fn a_reaction_slack_cannot_show_becomes_a_visible_note_in_the_thread() {
    use switchboard_model::{OutboundKind, OutboundOp, PuppetRef};
    let sim = sim().await;
    let general = sim.seeded().channels["general"].clone();
    let bridge = bridge(&sim);
    let alice = Person::new(&sim, "alice");
    let ts = alice.post(&general, "react to me").await;
    // "Plus sign" text is no emoji: Slack has no name for it.
    let op = OutboundOp::new(
        "react-odd".into(),
        ChannelId::new(general.clone()),
        OutboundKind::React {
            target: MessageId::new(ts.clone()),
            key: "+".into(),
        },
    )
    .with_author(Some(PuppetRef::new("puppet:x".into(), "Zed (Teams)")));
    bridge
        .deliver(&op, &switchboard_model::testing::NoMedia)
        .await
        .expect("degraded, not failed");
    let note = sim
        .messages(&general)
        .into_iter()
        .find(|m| {
            m["thread_ts"].as_str() == Some(ts.as_str()) && m["ts"].as_str() != Some(ts.as_str())
        })
        .expect("a note in the thread");
    assert_eq!(note["text"], "Zed (Teams) reacted +");
}

#[tokio::test]
async fn direct_messages_relay_like_channels() {
    let sim = sim().await;
    let bridge = bridge(&sim);
    let alice = Person::new(&sim, "alice");
    let bot_user = sim.seeded().bot_user_id.clone();
    // Alice opens a DM with the bot and writes there.
    let dm = alice
        .call("conversations.open", json!({ "users": bot_user }))
        .await;
    let dm = dm["channel"]["id"].as_str().expect("a DM id").to_owned();
    assert!(dm.starts_with('D'), "{dm}");
    let mut running = run(bridge.clone(), vec![]);
    running.connected().await;
    alice.post(&dm, "just between us").await;
    let ev = running.next().await;
    assert_eq!(ev.origin.channel.as_str(), dm);
    assert!(
        matches!(&ev.kind, InboundKind::Message { message, .. } if message.body.to_plain() == "just between us")
    );
    // And the bot answers there, as someone from elsewhere.
    let op = switchboard_model::OutboundOp::new(
        "dm-answer".into(),
        ChannelId::new(dm.clone()),
        switchboard_model::OutboundKind::Send {
            message: switchboard_model::Message::text("hello from Teams"),
        },
    )
    .with_author(Some(switchboard_model::PuppetRef::new(
        "puppet:y".into(),
        "Yan (Teams)",
    )));
    bridge
        .deliver(&op, &switchboard_model::testing::NoMedia)
        .await
        .expect("posted in the DM");
    assert!(
        sim.messages(&dm)
            .iter()
            .any(|m| m["text"] == "hello from Teams" && m["username"] == "Yan (Teams)")
    );
    running.stop().await;
}

#[tokio::test]
async fn a_channel_describes_itself_for_mirrored_rooms_and_a_dm_does_not() {
    let sim = sim().await;
    let bridge = bridge(&sim);
    let general = ChannelId::new(sim.seeded().channels["general"].clone());
    let info = bridge
        .channel_info(&general)
        .await
        .expect("conversations.info")
        .expect("a channel has a name");
    assert_eq!(info.name.as_deref(), Some("general"));
    assert_eq!(
        info.topic.as_deref(),
        Some("Company-wide announcements"),
        "no topic: the purpose"
    );
    assert_eq!(
        info.avatar, None,
        "the simulated workspace has Slack's default icon, which is not shown"
    );
    assert!(
        !bridge.capabilities().mirrors_channel_info,
        "Slack channels are never renamed from elsewhere"
    );
    let alice = Person::new(&sim, "alice");
    let bot_user = sim.seeded().bot_user_id.clone();
    let dm = alice
        .call("conversations.open", json!({ "users": bot_user }))
        .await;
    let dm = ChannelId::new(dm["channel"]["id"].as_str().expect("a DM id"));
    assert_eq!(bridge.channel_info(&dm).await.expect("info"), None);
    let missing = bridge.channel_info(&ChannelId::new("C0NOPE")).await;
    assert!(
        matches!(missing, Err(BridgeError::NotFound { .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn switchboard_call_is_one_call_request_acknowledged_with_an_ephemeral_reply() {
    use switchboard_slack::events::command::{CALL_REPLY, USAGE};
    let sim = sim().await;
    let general = sim.seeded().channels["general"].clone();
    let alice = sim.seeded().users["alice"].clone();
    let mut running = run(bridge(&sim), vec![]);
    running.connected().await;
    let trigger = sim
        .run_slash_command(&general, "alice", "/switchboard", "call Design review")
        .expect("alice runs the command");
    let (ev, stored) = tokio::time::timeout(Duration::from_secs(10), running.rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("the bridge is running");
    assert_eq!(
        ev.kind,
        InboundKind::CallRequest {
            title: Some("Design review".into())
        }
    );
    assert_eq!(ev.origin.bridge.as_str(), "slack:sim");
    assert_eq!(ev.origin.channel.as_str(), general);
    assert_eq!(ev.sender.person.user.as_str(), alice);
    assert_eq!(ev.sender.person.display_name, "Alice Liddell");
    assert!(!ev.sender.is_ours);
    // Not acknowledged to Slack before the relay stored it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sim.slash_command(&trigger).expect("recorded").outcome,
        CommandOutcome::Pending
    );
    let _ = stored.send(Ok(()));
    let done = sim
        .wait_for_slash_command(&trigger, Duration::from_secs(5))
        .await
        .expect("acknowledged in time");
    assert_eq!(done.outcome, CommandOutcome::Acknowledged);
    assert_eq!(done.seen(), vec![CALL_REPLY.to_string()]);
    assert_eq!(done.replies[0].response_type, "ephemeral");

    // The same envelope again: answered again, no second event.
    sim.redeliver_slash_command(&trigger).expect("redelivered");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sim.slash_command(&trigger).expect("recorded").replies.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "second ack");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sim.slash_command(&trigger).expect("recorded").seen(),
        vec![CALL_REPLY.to_string(), CALL_REPLY.to_string()]
    );
    let extra = running.quiet(Duration::from_millis(300)).await;
    assert!(
        !extra
            .iter()
            .any(|e| matches!(e.kind, InboundKind::CallRequest { .. })),
        "{extra:?}"
    );

    // Help and unknown words: usage, no event; a title-less call still counts.
    for text in ["help", "", "dance"] {
        let t = sim
            .run_slash_command(&general, "bob", "/switchboard", text)
            .expect("bob runs the command");
        let c = sim
            .wait_for_slash_command(&t, Duration::from_secs(5))
            .await
            .expect("answered");
        assert_eq!(c.seen(), vec![USAGE.to_string()], "{text:?}");
    }
    assert!(
        running.quiet(Duration::from_millis(300)).await.is_empty(),
        "no event for usage"
    );
    let random = sim.seeded().channels["random"].clone();
    sim.run_slash_command(&random, "alice", "/switchboard", "call")
        .expect("runs");
    let ev = running.next().await;
    assert_eq!(ev.kind, InboundKind::CallRequest { title: None });
    assert_eq!(ev.origin.channel.as_str(), random);
    running.stop().await;
}

#[tokio::test]
async fn over_http_a_signed_command_form_is_submitted_and_answered() {
    use switchboard_model::HttpRequest;
    use switchboard_slack::events::command::{CALL_REPLY, USAGE};
    let sim = sim().await;
    let seeded = sim.seeded().clone();
    let general = seeded.channels["general"].clone();
    let alice = seeded.users["alice"].clone();
    let mut config = SlackConfig::new(
        "slack:sim".into(),
        format!("{}/api", sim.base_url()),
        Token::new(seeded.bot_token.clone()),
        InboundMode::Events {
            signing_secret: Token::new(seeded.signing_secret.clone()),
            path: "/slack/sim/events".into(),
        },
    );
    config.rate_limits = false;
    let bridge = SlackBridge::new(config).expect("bridge");
    let endpoint = bridge
        .http_endpoints()
        .pop()
        .expect("the Events API endpoint")
        .1;
    let mut running = run(bridge.clone(), vec![]);
    running.connected().await;
    let form = |text: &str, trigger: &str| {
        format!(
            "token=vt&team_id={}&team_domain=sim&channel_id={general}&channel_name=general&user_id={alice}&user_name=alice&command=%2Fswitchboard&text={text}&api_app_id={}&is_enterprise_install=false&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1&trigger_id={trigger}",
            seeded.team_id, seeded.app_id
        )
    };
    let request = |body: &str, signature: Option<&str>| {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            .to_string();
        let sig = signature.map_or_else(
            || {
                switchboard_slack::signature::sign(
                    seeded.signing_secret.as_bytes(),
                    &ts,
                    body.as_bytes(),
                )
            },
            str::to_owned,
        );
        HttpRequest::new(
            "POST",
            "/slack/sim/events",
            "",
            vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("X-Slack-Request-Timestamp".into(), ts),
                ("X-Slack-Signature".into(), sig),
            ],
            body.as_bytes().to_vec(),
        )
    };
    // A bad signature is refused before anything is read.
    let refused = endpoint
        .handle(request(&form("call+x", "1.2.a"), Some("v0=00")))
        .await;
    assert_eq!(refused.status, 401);
    // The call: answered (with the reply) only once the relay stored it.
    let body = form("call+Design+review", "1.2.b");
    let handled = tokio::spawn({
        let endpoint = endpoint.clone();
        let req = request(&body, None);
        async move { endpoint.handle(req).await }
    });
    let ev = running.next().await;
    assert_eq!(
        ev.kind,
        InboundKind::CallRequest {
            title: Some("Design review".into())
        }
    );
    assert_eq!(ev.origin.channel.as_str(), general);
    assert_eq!(ev.sender.person.user.as_str(), alice);
    assert_eq!(ev.event.as_str(), "slash:1.2.b");
    let answer = handled.await.expect("joins");
    assert_eq!(answer.status, 200);
    let v: Value = serde_json::from_slice(&answer.body).expect("json");
    assert_eq!(v, json!({"response_type": "ephemeral", "text": CALL_REPLY}));
    // Help: the usage, no event.
    let answer = endpoint.handle(request(&form("help", "1.2.c"), None)).await;
    let v: Value = serde_json::from_slice(&answer.body).expect("json");
    assert_eq!(v["text"], USAGE);
    assert!(running.quiet(Duration::from_millis(300)).await.is_empty());
    running.stop().await;
}
