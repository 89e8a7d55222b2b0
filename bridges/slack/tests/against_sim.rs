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
async fn a_direct_portal_s_im_relays_messages_both_ways_with_names_and_icons() {
    let sim = sim().await;
    let bridge = bridge(&sim);
    let alice = Person::new(&sim, "alice");
    let bot_user = sim.seeded().bot_user_id.clone();
    // Alice's IM with the bot, as open_direct gives it for a direct portal.
    let with = switchboard_model::Person::new("teams:t".into(), "u-yan".into(), "Yan Tiersen")
        .with_avatar("https://example.com/yan.png");
    let alice_id = switchboard_model::UserId::new(sim.seeded().users["alice"].clone());
    let dm = bridge
        .open_direct(&alice_id, &with)
        .await
        .expect("conversations.open")
        .expect("Slack has IMs");
    let dm = dm.as_str().to_owned();
    assert!(dm.starts_with('D'), "{dm}");
    let theirs = alice
        .call("conversations.open", json!({ "users": bot_user }))
        .await;
    assert_eq!(theirs["channel"]["id"], dm.as_str(), "the same IM");
    // The IM is a portal channel: what Alice writes there is relayed.
    let mut running = run(bridge.clone(), vec![ChannelId::new(dm.clone())]);
    running.connected().await;
    alice.post(&dm, "just between us").await;
    let ev = running.next().await;
    assert_eq!(ev.origin.channel.as_str(), dm);
    assert!(
        matches!(&ev.kind, InboundKind::Message { message, .. } if message.body.to_plain() == "just between us"),
        "{ev:?}"
    );
    // Even a text that reads like a command is a message here.
    sim.message_app("alice", "help").expect("alice writes");
    let ev = running.next().await;
    assert!(
        matches!(&ev.kind, InboundKind::Message { message, .. } if message.body.to_plain() == "help"),
        "{ev:?}"
    );
    // The other person answers there, by name and icon, as in channels.
    let puppet = bridge.ensure_puppet(&with).await.expect("puppet");
    let op = switchboard_model::OutboundOp::new(
        "dm-answer".into(),
        ChannelId::new(dm.clone()),
        switchboard_model::OutboundKind::Send {
            message: switchboard_model::Message::text("hello from Teams"),
        },
    )
    .with_author(Some(puppet));
    bridge
        .deliver(&op, &switchboard_model::testing::NoMedia)
        .await
        .expect("posted in the DM");
    let seen = sim.app_im_messages("alice").expect("alice's IM");
    let answer = seen
        .iter()
        .find(|m| m["text"] == "hello from Teams")
        .unwrap_or_else(|| panic!("the answer is in Alice's IM: {seen:?}"));
    assert_eq!(answer["username"], "Yan Tiersen (Teams)");
    assert_eq!(answer["icons"]["image_64"], "https://example.com/yan.png");
    assert_eq!(answer["subtype"], "bot_message");
    // Its echo is ours.
    let echo = running.next().await;
    assert!(echo.sender.is_ours, "{echo:?}");
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

    // Help and no text: usage, no event; a title-less call still counts.
    for text in ["help", ""] {
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

/// A connector whose settings `f` adjusts first.
fn bridge_with(sim: &SlackSim, f: impl FnOnce(&mut SlackConfig)) -> Arc<SlackBridge> {
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
    f(&mut config);
    SlackBridge::new(config).expect("bridge")
}

fn command_text(ev: &Inbound) -> Option<&str> {
    match &ev.kind {
        InboundKind::Command { text, .. } => Some(text),
        _ => None,
    }
}

#[tokio::test]
async fn slash_commands_other_than_call_come_from_the_person_s_im_with_the_bot() {
    use switchboard_slack::events::command::{COMMAND_REPLY, USAGE};
    let sim = sim().await;
    let general = sim.seeded().channels["general"].clone();
    let random = sim.seeded().channels["random"].clone();
    let alice = sim.seeded().users["alice"].clone();
    let bridge = bridge(&sim);
    let mut running = run(bridge.clone(), vec![ChannelId::new(general.clone())]);
    running.connected().await;
    // Typed in a public channel that is a portal: still answered privately.
    let trigger = sim
        .run_slash_command(&general, "alice", "/switchboard", "  dm bob ")
        .expect("alice runs the command");
    let (ev, stored) = tokio::time::timeout(Duration::from_secs(10), running.rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("the bridge is running");
    assert_eq!(command_text(&ev), Some("dm bob"), "{ev:?}");
    let im = sim.app_im("alice").expect("alice's IM with the bot");
    assert_eq!(ev.origin.channel.as_str(), im, "the origin is Alice's IM");
    assert_ne!(ev.origin.channel.as_str(), general);
    assert_eq!(ev.event.as_str(), format!("slash:{trigger}"));
    assert_eq!(ev.sender.person.user.as_str(), alice);
    assert_eq!(ev.sender.person.display_name, "Alice Liddell");
    assert!(!ev.sender.is_ours);
    // Answered only once stored, saying where the answer goes.
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
    assert_eq!(done.seen(), vec![COMMAND_REPLY.to_string()]);
    assert_eq!(done.replies[0].response_type, "ephemeral");
    // Redelivered: answered again, no second event.
    sim.redeliver_slash_command(&trigger).expect("redelivered");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sim.slash_command(&trigger).expect("recorded").replies.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "second ack");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(running.quiet(Duration::from_millis(300)).await.is_empty());
    // Another command from another channel: the same IM.
    sim.run_slash_command(&random, "alice", "/switchboard", "portal list")
        .expect("runs");
    let ev = running.next().await;
    assert_eq!(command_text(&ev), Some("portal list"));
    assert_eq!(ev.origin.channel.as_str(), im);
    // Bob's commands go to Bob's IM.
    sim.run_slash_command(&general, "bob", "/switchboard", "logins")
        .expect("runs");
    let ev = running.next().await;
    assert_eq!(command_text(&ev), Some("logins"));
    assert_eq!(
        ev.origin.channel.as_str(),
        sim.app_im("bob").expect("bob's IM")
    );
    // Help: the usage, listing every command, and no event.
    let t = sim
        .run_slash_command(&general, "bob", "/switchboard", "help")
        .expect("runs");
    let c = sim
        .wait_for_slash_command(&t, Duration::from_secs(5))
        .await
        .expect("answered");
    assert_eq!(c.seen(), vec![USAGE.to_string()]);
    for listed in [
        "call [title]",
        "dm <name>",
        "portal list",
        "logins",
        "calls",
    ] {
        assert!(c.seen()[0].contains(listed), "{listed}");
    }
    assert!(running.quiet(Duration::from_millis(300)).await.is_empty());
    running.stop().await;
}

#[tokio::test]
async fn a_message_to_the_bot_in_an_im_that_is_no_portal_is_one_command_and_its_answer_is_nothing()
{
    let sim = sim().await;
    let general = ChannelId::new(sim.seeded().channels["general"].clone());
    let bridge = bridge(&sim);
    let cursors: Arc<dyn switchboard_model::CursorStore> =
        Arc::new(switchboard_model::MemoryCursors::default());
    let (sink, mut rx) = InboundSink::channel(64);
    let stop = CancellationToken::new();
    let (state_tx, mut state) = watch::channel(BridgeState::Connecting);
    let (_portals, channels) = watch::channel(vec![general.clone()]);
    let ctx = BridgeContext::new(sink, stop.clone(), state_tx)
        .with_channels(channels)
        .with_cursors(cursors.clone());
    let task = tokio::spawn({
        let bridge = bridge.clone();
        async move { bridge.run(ctx).await }
    });
    state
        .wait_for(|s| *s == BridgeState::Connected)
        .await
        .expect("connected");

    let (im, ts) = sim.message_app("alice", "dm Bob Ross").expect("writes");
    let (ev, ack) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("in time")
        .expect("event");
    assert_eq!(command_text(&ev), Some("dm Bob Ross"), "{ev:?}");
    assert_eq!(ev.origin.channel.as_str(), im);
    assert_eq!(ev.event.as_str(), format!("im-command:{im}:{ts}"));
    assert_eq!(ev.sender.person.display_name, "Alice Liddell");
    assert!(!ev.sender.is_ours);
    let _ = ack.send(Ok(()));
    // Once stored, the IM's cursor is past the command.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cursors.get(&ChannelId::new(im.clone())).as_deref() != Some(ts.as_str()) {
        assert!(tokio::time::Instant::now() < deadline, "cursor moved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The relay's answer in the IM (a notice from the bot) and a relayed
    // post there are ours: nothing comes back.
    let notice = switchboard_model::OutboundOp::new(
        "answer-1".into(),
        ChannelId::new(im.clone()),
        switchboard_model::OutboundKind::Send {
            message: switchboard_model::Message::text("Found Bob Ross on Teams.")
                .with_style(switchboard_model::MessageStyle::Notice),
        },
    );
    bridge
        .deliver(&notice, &switchboard_model::testing::NoMedia)
        .await
        .expect("answered");
    // Edits of and reactions to a command are no commands either.
    let alice = Person::new(&sim, "alice");
    alice
        .call(
            "chat.update",
            json!({ "channel": im, "ts": ts, "text": "dm Bob" }),
        )
        .await;
    alice
        .call(
            "reactions.add",
            json!({ "channel": im, "timestamp": ts, "name": "thumbsup" }),
        )
        .await;
    let mut extra = Vec::new();
    while let Ok(Some((ev, ack))) =
        tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
    {
        let _ = ack.send(Ok(()));
        extra.push(ev);
    }
    assert!(extra.is_empty(), "nothing more from the IM: {extra:?}");
    assert!(
        sim.app_im_messages("alice")
            .expect("IM")
            .iter()
            .any(|m| m["text"] == "Found Bob Ross on Teams."),
        "the answer is in Alice's IM"
    );

    // A refused event is not acknowledged; Slack's redelivery carries the
    // same command id, so the relay can drop whichever copy it has.
    let (_, ts2) = sim.message_app("alice", "calls").expect("writes");
    let (ev, ack) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("in time")
        .expect("event");
    assert_eq!(command_text(&ev), Some("calls"));
    let first = ev.event.clone();
    let _ = ack.send(Err(switchboard_model::bridge::IntakeError::NotStored(
        "disk full".into(),
    )));
    let (again, ack) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("redelivered within Slack's ack deadline")
        .expect("event");
    assert_eq!(command_text(&again), Some("calls"));
    assert_eq!(again.event, first);
    assert_eq!(again.event.as_str(), format!("im-command:{im}:{ts2}"));
    let _ = ack.send(Ok(()));
    stop.cancel();
    task.await.expect("joins").expect("ok");

    // After a restart with the IM still no portal: nothing is replayed.
    let rerun = |portals: Vec<ChannelId>| {
        let (sink, rx) = InboundSink::channel(64);
        let stop = CancellationToken::new();
        let (state_tx, state) = watch::channel(BridgeState::Connecting);
        let (tx, channels) = watch::channel(portals);
        let ctx = BridgeContext::new(sink, stop.clone(), state_tx)
            .with_channels(channels)
            .with_cursors(cursors.clone());
        let bridge = bridge_with(&sim, |_| {});
        let task = tokio::spawn(async move { bridge.run(ctx).await });
        (rx, stop, state, tx, task)
    };
    let (mut rx, stop, mut state, _tx, task) = rerun(vec![general.clone()]);
    state
        .wait_for(|s| *s == BridgeState::Connected)
        .await
        .expect("connected");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err(),
        "no command runs twice after a restart"
    );
    stop.cancel();
    task.await.expect("joins").expect("ok");
    // After `dm` made the IM a direct portal: catch-up starts after the
    // commands, which are never relayed as messages; new messages are.
    let (mut rx, stop, mut state, _tx, task) =
        rerun(vec![general.clone(), ChannelId::new(im.clone())]);
    state
        .wait_for(|s| *s == BridgeState::Connected)
        .await
        .expect("connected");
    sim.message_app("alice", "hello Bob").expect("writes");
    let (ev, ack) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("in time")
        .expect("event");
    let _ = ack.send(Ok(()));
    assert!(
        matches!(&ev.kind, InboundKind::Message { message, .. } if message.body.to_plain() == "hello Bob"),
        "only the new message: {ev:?}"
    );
    stop.cancel();
    task.await.expect("joins").expect("ok");
}

#[tokio::test]
async fn over_http_an_im_command_delivered_twice_is_submitted_once() {
    use switchboard_model::HttpRequest;
    let sim = sim().await;
    let seeded = sim.seeded().clone();
    let alice = seeded.users["alice"].clone();
    let im = sim.app_im("alice").expect("IM");
    let bridge = bridge_with(&sim, |c| {
        c.mode = InboundMode::Events {
            signing_secret: Token::new(seeded.signing_secret.clone()),
            path: "/slack/sim/events".into(),
        }
    });
    let endpoint = bridge
        .http_endpoints()
        .pop()
        .expect("the Events API endpoint")
        .1;
    let mut running = run(bridge.clone(), vec![]);
    running.connected().await;
    let body = |event_id: &str| {
        json!({
            "token": "vt", "team_id": seeded.team_id, "api_app_id": seeded.app_id,
            "type": "event_callback", "event_id": event_id, "event_time": 1_700_000_000,
            "event": {
                "type": "message", "channel": im, "channel_type": "im", "user": alice,
                "text": "portal list", "ts": "1700000000.000100", "event_ts": "1700000000.000100",
                "client_msg_id": "5b2c8ab0-0000-4000-8000-000000000001"
            }
        })
        .to_string()
    };
    let request = |body: String, retry: Option<&str>| {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            .to_string();
        let sig = switchboard_slack::signature::sign(
            seeded.signing_secret.as_bytes(),
            &ts,
            body.as_bytes(),
        );
        let mut headers = vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Slack-Request-Timestamp".into(), ts),
            ("X-Slack-Signature".into(), sig),
        ];
        if let Some(n) = retry {
            headers.push(("X-Slack-Retry-Num".into(), n.into()));
            headers.push(("X-Slack-Retry-Reason".into(), "http_timeout".into()));
        }
        HttpRequest::new("POST", "/slack/sim/events", "", headers, body.into_bytes())
    };
    let first = tokio::spawn({
        let endpoint = endpoint.clone();
        let req = request(body("Ev0IMCMD01"), None);
        async move { endpoint.handle(req).await }
    });
    let ev = running.next().await;
    assert_eq!(command_text(&ev), Some("portal list"));
    assert_eq!(ev.origin.channel.as_str(), im);
    assert_eq!(
        ev.event.as_str(),
        format!("im-command:{im}:1700000000.000100")
    );
    assert_eq!(first.await.expect("joins").status, 200);
    // Slack's retry (same event id), and the same message under another id.
    let again = tokio::spawn({
        let endpoint = endpoint.clone();
        let (retry, other) = (
            request(body("Ev0IMCMD01"), Some("1")),
            request(body("Ev0IMCMD02"), None),
        );
        async move {
            let retry = endpoint.handle(retry).await.status;
            let other = endpoint.handle(other).await.status;
            (retry, other)
        }
    });
    let extra = running.quiet(Duration::from_millis(500)).await;
    assert!(extra.is_empty(), "the command is submitted once: {extra:?}");
    let (retry, other) = tokio::time::timeout(Duration::from_secs(5), again)
        .await
        .expect("answered")
        .expect("joins");
    assert_eq!((retry, other), (200, 200));
    running.stop().await;
}

#[tokio::test]
async fn open_direct_gives_the_same_im_again_and_maps_slack_s_errors() {
    let sim = sim().await;
    let bridge = bridge(&sim);
    let bob = switchboard_model::UserId::new(sim.seeded().users["bob"].clone());
    let with = switchboard_model::Person::new("matrix:m".into(), "@ann:m".into(), "Ann");
    let first = bridge
        .open_direct(&bob, &with)
        .await
        .expect("opened")
        .expect("an IM");
    assert!(first.as_str().starts_with('D'), "{first}");
    let again = bridge.open_direct(&bob, &with).await.expect("found");
    assert_eq!(again.as_ref(), Some(&first));
    // Slack itself gives the same IM to a connector that never asked before.
    let fresh = bridge_with(&sim, |_| {});
    let other = fresh.open_direct(&bob, &with).await.expect("found");
    assert_eq!(other.as_ref(), Some(&first));
    assert_eq!(sim.app_im("bob").expect("bob"), first.as_str());
    // Someone Slack does not know.
    let nobody = bridge
        .open_direct(&switchboard_model::UserId::new("U0NOBODY01"), &with)
        .await;
    assert!(
        matches!(nobody, Err(BridgeError::NotFound { .. })),
        "{nobody:?}"
    );
    // A deactivated account: refused for good.
    let gone = sim
        .add_user(UserSeed {
            name: "gone".into(),
            deleted: true,
            ..UserSeed::default()
        })
        .expect("added");
    let refused = bridge
        .open_direct(&switchboard_model::UserId::new(gone), &with)
        .await;
    assert!(
        matches!(refused, Err(BridgeError::Permanent { .. })),
        "{refused:?}"
    );
    // Without im:write: a permanent error, not a retry loop.
    sim.set_bot_scopes(&["chat:write", "users:read"]);
    let carol = sim
        .add_user(UserSeed {
            name: "carol".into(),
            ..UserSeed::default()
        })
        .expect("added");
    let scope = bridge
        .open_direct(&switchboard_model::UserId::new(carol), &with)
        .await;
    assert!(
        matches!(scope, Err(BridgeError::Permanent { .. })),
        "{scope:?}"
    );
}

#[tokio::test]
async fn find_people_searches_names_across_pages_and_skips_bots_and_the_deactivated() {
    let sim = sim().await;
    let add = |name: &str, f: &dyn Fn(&mut UserSeed)| {
        let mut u = UserSeed {
            name: name.into(),
            ..UserSeed::default()
        };
        f(&mut u);
        sim.add_user(u).expect("added")
    };
    let carol = add("carol", &|u| {
        u.real_name = Some("Carol Danvers".into());
        u.display_name = Some("Caz".into());
        u.avatar_url = Some("https://example.com/caz.png".into());
    });
    add("robobot", &|u| u.is_bot = true);
    add("bobby", &|u| {
        u.real_name = Some("Bobby Tables".into());
        u.deleted = true;
    });
    // Enough people for users.list to need three pages of 200.
    for n in 0..420 {
        add(&format!("person{n:03}"), &|_| {});
    }
    let zed = add("zlast", &|u| u.real_name = Some("Zed Last".into()));
    let bridge = bridge(&sim);
    let names = |people: &[switchboard_model::Person]| -> Vec<String> {
        people.iter().map(|p| p.display_name.clone()).collect()
    };
    // By real name, any case; the bot "robobot" and deactivated "bobby" are left out.
    let found = bridge.find_people("BOB", 10).await.expect("search");
    assert_eq!(names(&found), ["Bob Ross"]);
    let bob = &found[0];
    assert_eq!(bob.user.as_str(), sim.seeded().users["bob"]);
    assert_eq!(bob.bridge.as_str(), "slack:sim");
    assert!(!bob.is_bot);
    assert_eq!(
        names(&bridge.find_people("ross", 10).await.expect("search")),
        ["Bob Ross"]
    );
    // By display name, named and pictured as a sender would be.
    let found = bridge.find_people("caz", 10).await.expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].user.as_str(), carol);
    assert_eq!(found[0].display_name, "Caz");
    assert_eq!(
        found[0].avatar.as_deref(),
        Some("https://example.com/caz.png")
    );
    assert_eq!(
        names(&bridge.find_people("danvers", 10).await.expect("search")),
        ["Caz"]
    );
    // By handle, on the last page.
    let found = bridge.find_people("zlast", 10).await.expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].user.as_str(), zed);
    assert_eq!(found[0].display_name, "Zed Last");
    // At most `limit`; nobody for Slackbot, the bot user or nothing.
    assert_eq!(
        bridge.find_people("person", 5).await.expect("search").len(),
        5
    );
    assert_eq!(
        bridge
            .find_people("person", 1000)
            .await
            .expect("search")
            .len(),
        420
    );
    assert!(
        bridge
            .find_people("slackbot", 10)
            .await
            .expect("search")
            .is_empty()
    );
    assert!(bridge.find_people("", 10).await.expect("search").is_empty());
    assert!(
        bridge
            .find_people("bobby", 10)
            .await
            .expect("search")
            .is_empty()
    );
    // The directory is cached: someone new shows up only once it is read again.
    add("newcomer", &|_| {});
    assert!(
        bridge
            .find_people("newcomer", 10)
            .await
            .expect("search")
            .is_empty()
    );
    let uncached = bridge_with(&sim, |c| c.directory_ttl = Duration::ZERO);
    assert_eq!(
        uncached
            .find_people("newcomer", 10)
            .await
            .expect("search")
            .len(),
        1
    );
    // The exact match comes first.
    add("carolyn", &|u| u.real_name = Some("Carolyn Keene".into()));
    let found = uncached.find_people("carol", 10).await.expect("search");
    assert_eq!(names(&found), ["Caz", "Carolyn Keene"]);
}

#[tokio::test]
async fn under_slack_s_rate_limits_the_directory_and_ims_say_rate_limited() {
    use switchboard_slack_sim::ratelimit::Mode;
    let sim = sim().await;
    let mut people = Vec::new();
    for n in 0..450 {
        people.push(
            sim.add_user(UserSeed {
                name: format!("person{n:03}"),
                ..UserSeed::default()
            })
            .expect("added"),
        );
    }
    sim.set_rate_limit_mode(Mode::Strict);
    // The connector's own limits keep users.list (Tier 2) under Slack's.
    let paced = bridge_with(&sim, |c| c.rate_limits = true);
    assert_eq!(
        paced
            .find_people("person", 1000)
            .await
            .expect("search")
            .len(),
        450
    );
    // Without them, Slack answers 429 sooner or later: a bridge that has
    // read the directory once keeps searching that copy…
    let eager = bridge_with(&sim, |c| c.directory_ttl = Duration::ZERO);
    for _ in 0..8 {
        assert_eq!(
            eager
                .find_people("person001", 10)
                .await
                .expect("the copy")
                .len(),
            1
        );
    }
    // …one that never has says so, and the relay retries later.
    let fresh = bridge(&sim);
    let limited = fresh.find_people("person", 10).await;
    assert!(
        matches!(limited, Err(BridgeError::RateLimited { .. })),
        "{limited:?}"
    );
    // conversations.open is Tier 3: the 51st IM in a minute is refused the same way.
    let with = switchboard_model::Person::new("teams:t".into(), "u".into(), "Yan");
    let mut outcome = Ok(None);
    for user in people.iter().take(60) {
        let user = switchboard_model::UserId::new(user.clone());
        outcome = fresh.open_direct(&user, &with).await;
        if outcome.is_err() {
            break;
        }
    }
    assert!(
        matches!(outcome, Err(BridgeError::RateLimited { .. })),
        "{outcome:?}"
    );
}

/// A media source whose first fetch fails (a transient error after the
/// text was posted), then serves a small file.
struct FailsOnce(std::sync::atomic::AtomicBool);

#[async_trait]
impl switchboard_model::MediaSource for FailsOnce {
    async fn fetch(
        &self,
        _origin: &switchboard_model::BridgeId,
        _attachment: &switchboard_model::Attachment,
    ) -> Result<Vec<u8>, BridgeError> {
        if self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Ok(b"file body".to_vec())
        } else {
            Err(BridgeError::transient("the origin's file server is away"))
        }
    }
}

fn send_op(id: &str, channel: &str, text: &str) -> switchboard_model::OutboundOp {
    switchboard_model::OutboundOp::new(
        id.into(),
        ChannelId::new(channel),
        switchboard_model::OutboundKind::Send {
            message: switchboard_model::Message::text(text),
        },
    )
    .queued_at(switchboard_model::Timestamp::now())
}

/// After a restart, an op the previous process posted is found by its
/// metadata however many messages people wrote since (the read goes back
/// by time, not by a count), ops it never posted are posted once, and a
/// retry inside one process finds the text its failed attempt posted even
/// when the relay did not flag the op.
#[tokio::test]
async fn a_retried_op_is_found_behind_any_number_of_newer_messages() {
    let sim = sim().await;
    let general = sim.seeded().channels["general"].clone();
    let before_crash = bridge(&sim);
    let posted = before_crash
        .deliver(
            &send_op("op-crash", &general, "posted before the crash"),
            &switchboard_model::testing::NoMedia,
        )
        .await
        .expect("posted");
    let alice = Person::new(&sim, "alice");
    for n in 0..450 {
        alice.post(&general, &format!("chatter {n}")).await;
    }

    let after_restart = bridge(&sim);
    let again = after_restart
        .deliver(
            &send_op("op-crash", &general, "posted before the crash").maybe_delivered(true),
            &switchboard_model::testing::NoMedia,
        )
        .await
        .expect("delivered");
    assert_eq!(again.ids, posted.ids, "found, not posted again");
    for n in 0..5 {
        after_restart
            .deliver(
                &send_op(
                    &format!("op-new-{n}"),
                    &general,
                    &format!("never posted {n}"),
                )
                .maybe_delivered(true),
                &switchboard_model::testing::NoMedia,
            )
            .await
            .expect("posted");
    }

    // Text posted, then the file's fetch fails: the retry (not flagged by
    // the relay, as after a rate limit) posts only what is missing.
    let mut with_file = send_op("op-file", &general, "with a file");
    if let switchboard_model::OutboundKind::Send { message } = &mut with_file.kind {
        message.attachments.push(switchboard_model::Attachment::new(
            "F1",
            "notes.txt",
            "text/plain",
            "https://files.example/notes.txt",
        ));
    }
    with_file.origin = Some(switchboard_model::Origin::new("memory:a", "c0"));
    let media = FailsOnce(std::sync::atomic::AtomicBool::new(false));
    after_restart
        .deliver(&with_file, &media)
        .await
        .expect_err("the fetch fails the first attempt");
    after_restart
        .deliver(&with_file, &media)
        .await
        .expect("the retry completes");

    let messages = sim.messages(&general);
    let count = |text: &str| messages.iter().filter(|m| m["text"] == text).count();
    assert_eq!(count("posted before the crash"), 1);
    for n in 0..5 {
        assert_eq!(count(&format!("never posted {n}")), 1, "op-new-{n}");
    }
    assert_eq!(count("with a file"), 1, "{messages:#?}");
}

/// After a `warning` disconnect Slack keeps the old socket open for a while
/// and spreads events over both connections (round robin). The connector
/// reads the old socket while its replacement opens and until Slack closes
/// it, so every message arrives once, in order, without waiting for a
/// redelivery after a missed ack.
#[tokio::test]
async fn a_replaced_socket_is_read_until_slack_closes_it() {
    const N: usize = 60;
    let sim = sim_with(SimConfig {
        warning_close_after: Duration::from_millis(1500),
        ack_timeout: Duration::from_millis(500),
        ..SimConfig::default()
    })
    .await;
    let general = sim.seeded().channels["general"].clone();
    let bridge = bridge(&sim);
    let mut running = run(bridge.clone(), vec![]);
    running.connected().await;
    // People write while the relay takes the events (as the daemon does).
    let writer = {
        let sim = sim.clone();
        tokio::spawn(async move {
            let alice = Person::new(&sim, "alice");
            let (mut sent, mut replaced) = (Vec::new(), 0);
            for n in 0..N {
                if n % 20 == 5 {
                    replaced += sim.disconnect_sockets("warning");
                }
                sent.push(alice.post(&general, &format!("m{n}")).await);
                // Spread over 2.4 s: old sockets close while people write.
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            (sent, replaced)
        })
    };
    let mut got = Vec::new();
    // The catch-up at the first connect may bring a message the socket
    // brings too; the relay drops such repeats by event id, so the first
    // sighting of each is what counts.
    let mut seen = std::collections::HashSet::new();
    while got.len() < N {
        let ev = running.next().await;
        if let InboundKind::Message { id, .. } = &ev.kind
            && seen.insert(id.as_str().to_owned())
        {
            got.push(id.as_str().to_owned());
        }
    }
    let (sent, replaced) = writer.await.expect("the writer ends");
    assert!(replaced >= 3, "{replaced} sockets told to reconnect");
    assert_eq!(got, sent, "every message, in order");
    assert_eq!(
        sim.counters().events_redelivered,
        0,
        "no envelope waited for its ack deadline"
    );
    running.stop().await;
}
