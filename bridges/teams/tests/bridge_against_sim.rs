//! [`TeamsBridge`] against the Graph simulator (`bridges/teams-sim`): the
//! model's conformance suite, inbound edits/deletes/reactions through delta
//! polling, echoes, and outbound that never needs the application token.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use switchboard_model::testing::{ConformanceHarness, NoMedia, run_conformance};
use switchboard_model::{
    Bridge, BridgeContext, BridgeError, BridgeId, BridgeState, ChannelId, Inbound, InboundKind,
    InboundSink, Message, MessageId, OpId, Origin, OutboundKind, OutboundOp, Person, UserId,
};
use switchboard_teams::auth::Secret;
use switchboard_teams::bridge::{TeamsBridge, TeamsConfig};
use switchboard_teams::client::Bearer;
use switchboard_teams::html;
use switchboard_teams_sim::{SimConfig, TeamsSim};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

mod common;
use common::{BOB, OneLinked, SERVICE, config, graph, seed, sign_in};

/// A simulator, a bridge on it and the General channel.
struct SimHarness {
    sim: TeamsSim,
    bridge: Arc<TeamsBridge>,
    config: TeamsConfig,
    cursors: Arc<switchboard_model::MemoryCursors>,
    channel: ChannelId,
    team: String,
    channel_id: String,
}

impl SimHarness {
    async fn start(client_secret: Option<&str>) -> SimHarness {
        let sim = TeamsSim::start(SimConfig {
            seed: Some(seed()),
            ..SimConfig::default()
        })
        .await
        .expect("sim starts");
        let (team, channel_id) = sim.seeded().channels["Contoso/General"].clone();
        let channel = ChannelId::new(format!("{team}/{channel_id}"));
        let service = sign_in(&sim, SERVICE).await;
        let defaults = config(&sim, Some(service));
        let config = TeamsConfig {
            client_secret: client_secret.map_or(defaults.client_secret.clone(), Secret::new),
            watch: vec![channel.clone()],
            ..defaults
        };
        let bridge = TeamsBridge::with_graph(config.clone(), graph(&sim)).expect("bridge");
        SimHarness {
            sim,
            bridge,
            config,
            cursors: Arc::default(),
            channel,
            team,
            channel_id,
        }
    }

    fn messages_path(&self) -> String {
        format!("/teams/{}/channels/{}/messages", self.team, self.channel_id)
    }

    /// The HTML of every root message in the channel.
    async fn channel_contents(&self) -> Vec<String> {
        graph(&self.sim)
            .get_all(&self.messages_path(), Bearer::App(&self.app()), 10_000)
            .await
            .expect("list")
            .iter()
            .filter_map(|m| {
                m.pointer("/body/content")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect()
    }

    fn app(&self) -> Secret {
        Secret::new(self.sim.app_token())
    }

    fn bob(&self) -> (Secret, String) {
        (
            Secret::new(self.sim.delegated_token(BOB).expect("bob's token")),
            self.sim.seeded().users[BOB].clone(),
        )
    }

    /// Bob posts `text`; returns the message id.
    async fn bob_posts(&self, text: &str) -> String {
        let (token, user) = self.bob();
        let posted = graph(&self.sim)
            .post_json(
                &self.messages_path(),
                Bearer::User(&token, &user),
                &json!({ "body": { "contentType": "html", "content": format!("<p>{text}</p>") } }),
            )
            .await
            .expect("bob posts");
        posted["id"].as_str().expect("id").to_owned()
    }

    async fn bob_acts(&self, path: &str, patch: bool, body: Value) {
        let (token, user) = self.bob();
        let g = graph(&self.sim);
        let path = format!("{}/{path}", self.messages_path());
        let result = if patch {
            g.patch_json(&path, Bearer::User(&token, &user), &body)
                .await
        } else {
            g.post_json(&path, Bearer::User(&token, &user), &body).await
        };
        result.expect("bob acts");
    }

    async fn get(&self, id: &MessageId) -> Option<Value> {
        let (root, id) = switchboard_teams::graph::split_message_id(id);
        let path = match root {
            Some(root) => format!("{}/{root}/replies/{id}", self.messages_path()),
            None => format!("{}/{id}", self.messages_path()),
        };
        graph(&self.sim)
            .get_json(&path, Bearer::App(&self.app()))
            .await
            .ok()
    }
}

#[async_trait]
impl ConformanceHarness for SimHarness {
    fn bridge(&self) -> Arc<dyn Bridge> {
        self.bridge.clone()
    }

    fn channel(&self) -> ChannelId {
        self.channel.clone()
    }

    fn missing_channel(&self) -> ChannelId {
        ChannelId::new("00000000-0000-0000-0000-000000000000/19:missing@thread.tacv2")
    }

    async fn post_as_person(&self, _channel: &ChannelId, text: &str) {
        self.bob_posts(text).await;
    }

    async fn message_text(&self, _channel: &ChannelId, id: &MessageId) -> Option<String> {
        let m = self.get(id).await?;
        if m.get("deletedDateTime").is_some_and(|d| !d.is_null()) {
            return None;
        }
        let content = m.pointer("/body/content")?.as_str()?;
        Some(
            html::parse(content, &[], &BridgeId::new("teams:contoso"))
                .body
                .to_plain(),
        )
    }

    async fn message_count(&self, _channel: &ChannelId) -> usize {
        graph(&self.sim)
            .get_all(&self.messages_path(), Bearer::App(&self.app()), 10_000)
            .await
            .expect("list")
            .iter()
            .filter(|m| m.get("deletedDateTime").is_none_or(Value::is_null))
            .count()
    }
}

#[tokio::test]
async fn conformance_against_the_simulator() {
    let h = SimHarness::start(None).await;
    run_conformance(&h).await;
    h.sim.shutdown().await;
}

/// Runs the bridge with the relay played by the test; returns the events
/// receiver and the shutdown token.
async fn run_bridge(
    h: &SimHarness,
) -> (
    mpsc::Receiver<switchboard_model::bridge::InboundEnvelope>,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), switchboard_model::BridgeError>>,
) {
    run_bridge_on(h, &h.bridge, true).await
}

/// Runs `bridge` on the harness's channel and cursors; waits until it is
/// connected if `wait` (not when its first round has events to hand over:
/// it reports Connected only once the test acknowledges them).
async fn run_bridge_on(
    h: &SimHarness,
    bridge: &Arc<TeamsBridge>,
    wait: bool,
) -> (
    mpsc::Receiver<switchboard_model::bridge::InboundEnvelope>,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), switchboard_model::BridgeError>>,
) {
    let (sink, relay) = InboundSink::channel(256);
    let shutdown = CancellationToken::new();
    let (state_tx, mut state) = watch::channel(BridgeState::Connecting);
    let (_channels_tx, channels) = watch::channel(vec![h.channel.clone()]);
    let ctx = BridgeContext::new(sink, shutdown.clone(), state_tx)
        .with_channels(channels)
        .with_cursors(h.cursors.clone() as Arc<dyn switchboard_model::CursorStore>);
    let bridge = bridge.clone();
    let runner = tokio::spawn(async move { bridge.run(ctx).await });
    if wait {
        tokio::time::timeout(
            Duration::from_secs(10),
            state.wait_for(|s| *s == BridgeState::Connected),
        )
        .await
        .expect("connected in time")
        .expect("still running");
    }
    (relay, shutdown, runner)
}

/// The next event matching `pred`, acknowledging every event as stored.
async fn next_event(
    relay: &mut mpsc::Receiver<switchboard_model::bridge::InboundEnvelope>,
    pred: impl Fn(&Inbound) -> bool,
) -> Inbound {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (event, stored) = tokio::time::timeout_at(deadline, relay.recv())
            .await
            .expect("event in time")
            .expect("bridge still pushing");
        let _ = stored.send(Ok(()));
        if pred(&event) {
            return event;
        }
    }
}

#[tokio::test]
async fn inbound_message_edit_reaction_delete_arrive_by_delta_polling() {
    let h = SimHarness::start(None).await;
    // History before the first run is not replayed.
    h.bob_posts("old history").await;
    let (mut relay, shutdown, runner) = run_bridge(&h).await;

    let id = h.bob_posts("hello from bob").await;
    let msg = next_event(&mut relay, |e| {
        matches!(e.kind, InboundKind::Message { .. })
    })
    .await;
    let InboundKind::Message { id: got, message } = &msg.kind else {
        unreachable!()
    };
    assert_eq!(got.as_str(), id);
    assert_eq!(message.body.to_plain(), "hello from bob");
    assert_eq!(msg.origin, Origin::new("teams:contoso", h.channel.clone()));
    assert!(!msg.sender.is_ours);
    assert_eq!(
        msg.sender.person.user.as_str(),
        h.sim.seeded().users[BOB].as_str()
    );

    h.bob_acts(
        &id,
        true,
        json!({ "body": { "contentType": "html", "content": "<p>hello, edited</p>" } }),
    )
    .await;
    let edit = next_event(&mut relay, |e| matches!(e.kind, InboundKind::Edit { .. })).await;
    let InboundKind::Edit { target, message } = &edit.kind else {
        unreachable!()
    };
    assert_eq!(target.as_str(), id);
    assert_eq!(message.body.to_plain(), "hello, edited");

    h.bob_acts(
        &format!("{id}/setReaction"),
        false,
        json!({ "reactionType": "🎉" }),
    )
    .await;
    let reaction = next_event(&mut relay, |e| {
        matches!(e.kind, InboundKind::Reaction { .. })
    })
    .await;
    assert_eq!(
        reaction.kind,
        InboundKind::Reaction {
            target: MessageId::new(id.clone()),
            key: "🎉".into(),
            added: true
        }
    );

    h.bob_acts(&format!("{id}/softDelete"), false, json!({}))
        .await;
    let delete = next_event(&mut relay, |e| matches!(e.kind, InboundKind::Delete { .. })).await;
    assert_eq!(
        delete.kind,
        InboundKind::Delete {
            target: MessageId::new(id.clone())
        }
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), runner)
        .await
        .expect("stops in time")
        .expect("no panic")
        .expect("Ok on shutdown");
    h.sim.shutdown().await;
}

fn person() -> Person {
    Person::new(
        BridgeId::new("slack:acme"),
        UserId::new("U123"),
        "Alice Example",
    )
}

/// A person's own linked account posted a message (through an earlier run
/// of the connector, which this one does not remember); this run deletes it
/// for them. The deletion comes back without a body, so without the relay
/// marker, and must still be recognised as ours, not relayed back as the
/// person's own deletion.
#[tokio::test]
async fn a_deletion_made_through_a_linked_account_comes_back_as_ours() {
    let h = SimHarness::start(None).await;
    let bob = sign_in(&h.sim, BOB).await;
    h.bridge
        .set_accounts(Arc::new(OneLinked::new(person(), &bob)));
    let (mut relay, shutdown, runner) = run_bridge(&h).await;
    let id = h.bob_posts("posted for Alice before a restart").await;
    let native = next_event(&mut relay, |e| {
        matches!(e.kind, InboundKind::Message { .. })
    })
    .await;
    assert!(!native.sender.is_ours, "this run did not post it");

    let puppet = h.bridge.ensure_puppet(&person()).await.expect("puppet");
    assert!(puppet.is_linked_account, "{puppet:?}");
    let op = OutboundOp::on_behalf(
        OpId::new("delete-linked-1"),
        h.channel.clone(),
        Origin::new("slack:acme", "C1"),
        person(),
        Some(puppet),
        OutboundKind::Delete {
            parts: vec![MessageId::new(id.clone())],
        },
    );
    h.bridge.deliver(&op, &NoMedia).await.expect("deleted");
    assert!(
        h.get(&MessageId::new(id.clone()))
            .await
            .is_some_and(|m| !m["deletedDateTime"].is_null()),
        "deleted in Teams"
    );
    let echo = next_event(&mut relay, |e| matches!(e.kind, InboundKind::Delete { .. })).await;
    assert!(
        echo.sender.is_ours,
        "our own deletion is recognised: {echo:?}"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), runner)
        .await
        .expect("stops in time")
        .expect("no panic")
        .expect("Ok on shutdown");
    h.sim.shutdown().await;
}

#[tokio::test]
async fn our_posts_carry_an_author_line_and_come_back_as_ours() {
    let h = SimHarness::start(None).await;
    let (mut relay, shutdown, runner) = run_bridge(&h).await;
    let puppet = h.bridge.ensure_puppet(&person()).await.expect("puppet");
    assert_eq!(puppet.display_name, "Alice Example (Slack)");
    let op = OutboundOp::on_behalf(
        OpId::new("echo-1"),
        h.channel.clone(),
        Origin::new("slack:acme", "C1"),
        person(),
        Some(puppet),
        OutboundKind::Send {
            message: Message::text("relayed text"),
        },
    );
    let sent = h.bridge.deliver(&op, &NoMedia).await.expect("delivered");
    let m = h.get(&sent.ids[0]).await.expect("posted");
    let content = m["body"]["content"].as_str().expect("content");
    assert!(
        content.contains("<b>Alice Example</b> (Slack): relayed text"),
        "{content}"
    );
    assert!(content.contains("switchboard-relay:echo-1"), "{content}");
    assert_eq!(
        m["from"]["user"]["id"].as_str(),
        h.bridge.service_user().as_deref(),
        "posted by the service account"
    );
    let echo = next_event(&mut relay, |e| {
        matches!(e.kind, InboundKind::Message { .. })
    })
    .await;
    assert!(echo.sender.is_ours, "our own post is recognised");

    // A reply goes under the root.
    let reply = OutboundOp::on_behalf(
        OpId::new("echo-2"),
        h.channel.clone(),
        Origin::new("slack:acme", "C1"),
        person(),
        None,
        OutboundKind::Send {
            message: Message::text("in the thread").in_thread(sent.ids[0].clone()),
        },
    );
    let replied = h.bridge.deliver(&reply, &NoMedia).await.expect("reply");
    let (root, _) = switchboard_teams::graph::split_message_id(&replied.ids[0]);
    assert_eq!(root, Some(sent.ids[0].as_str()));
    assert!(h.get(&replied.ids[0]).await.is_some());

    // An op that may have reached Graph before is found by its marker.
    let fresh = TeamsBridge::with_graph(
        TeamsConfig {
            id: BridgeId::new("teams:contoso"),
            graph_base: h.sim.graph_url(),
            login_base: h.sim.login_url(),
            tenant: h.sim.seeded().tenant_id.clone(),
            client_id: h.sim.seeded().client_id.clone(),
            client_secret: Secret::new(h.sim.seeded().client_secret.clone()),
            service_account: Some(sign_in(&h.sim, SERVICE).await),
            poll_interval: Duration::from_millis(100),
            watch: Vec::new(),
            notifications: None,
            reconcile_interval: Duration::from_secs(300),
        },
        graph(&h.sim),
    )
    .expect("bridge");
    let again = fresh
        .deliver(&op.clone().maybe_delivered(true), &NoMedia)
        .await
        .expect("found");
    assert_eq!(again, sent);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), runner)
        .await
        .expect("stops in time")
        .expect("no panic")
        .expect("Ok on shutdown");
    h.sim.shutdown().await;
}

/// Outbound never uses the application token: with app credentials that the
/// identity platform refuses, sends, edits, reactions and deletes still work
/// (any app-token use would fail), and the posts are from the service account.
#[tokio::test]
async fn outbound_never_uses_the_app_token() {
    let h = SimHarness::start(Some("wrong-secret")).await;
    assert!(
        h.bridge.health_check().await.is_err(),
        "app credentials are bad"
    );
    let puppet = h.bridge.ensure_puppet(&person()).await.expect("puppet");
    let op = |n: &str, kind| {
        OutboundOp::on_behalf(
            OpId::new(format!("noapp-{n}")),
            h.channel.clone(),
            Origin::new("slack:acme", "C1"),
            person(),
            Some(puppet.clone()),
            kind,
        )
    };
    let sent = h
        .bridge
        .deliver(
            &op(
                "send",
                OutboundKind::Send {
                    message: Message::text("no app token"),
                },
            ),
            &NoMedia,
        )
        .await
        .expect("send");
    let id = sent.ids[0].clone();
    h.bridge
        .deliver(
            &op(
                "edit",
                OutboundKind::Edit {
                    parts: vec![id.clone()],
                    message: Message::text("still none"),
                },
            ),
            &NoMedia,
        )
        .await
        .expect("edit");
    h.bridge
        .deliver(
            &op(
                "react",
                OutboundKind::React {
                    target: id.clone(),
                    key: "👍".into(),
                },
            ),
            &NoMedia,
        )
        .await
        .expect("react");
    let m = h.get(&id).await.expect("message");
    assert_eq!(
        m["from"]["user"]["id"].as_str(),
        h.bridge.service_user().as_deref()
    );
    assert!(m["from"]["application"].is_null());
    h.bridge
        .deliver(
            &op("delete", OutboundKind::Delete { parts: vec![id] }),
            &NoMedia,
        )
        .await
        .expect("delete");
    h.sim.shutdown().await;
}

/// The simulator throttles with the 2021 Teams table (2 POSTs and 5 message
/// GETs per second per app) while the bridge polls every 100 ms and two
/// lanes deliver 20 posts without any client-side budget: 429s follow, and
/// still nothing is lost, nothing is posted twice, and no request comes back
/// before its `Retry-After`.
#[tokio::test]
async fn a_429_storm_on_the_tenant_budget_loses_nothing_and_retries_nothing_early() {
    const POSTS: usize = 20;
    const INBOUND: usize = 10;
    let h = SimHarness::start(None).await;
    let (mut relay, shutdown, runner) = run_bridge(&h).await;
    let mut inbound = Vec::new();
    for i in 0..INBOUND {
        inbound.push(h.bob_posts(&format!("inbound {i}")).await);
    }
    h.sim
        .set_rate_limit_mode(switchboard_teams_sim::limits::Mode::Strict);
    let puppet = h.bridge.ensure_puppet(&person()).await.expect("puppet");
    let lane = |lane: usize| {
        let bridge = h.bridge.clone();
        let channel = h.channel.clone();
        let puppet = puppet.clone();
        tokio::spawn(async move {
            let mut throttled = 0u32;
            for i in 0..POSTS / 2 {
                let op = OutboundOp::on_behalf(
                    OpId::new(format!("storm-{lane}-{i}")),
                    channel.clone(),
                    Origin::new("slack:acme", "C1"),
                    person(),
                    Some(puppet.clone()),
                    OutboundKind::Send {
                        message: Message::text(format!("storm {lane}-{i}")),
                    },
                );
                loop {
                    match bridge.deliver(&op, &NoMedia).await {
                        Ok(_) => break,
                        Err(switchboard_model::BridgeError::RateLimited { retry_after }) => {
                            // What the relay does: pause, then try again.
                            throttled += 1;
                            tokio::time::sleep(retry_after).await;
                        }
                        Err(e) => panic!("delivery failed: {e}"),
                    }
                }
            }
            throttled
        })
    };
    let lanes = [lane(0), lane(1)];
    let mut throttled_in_lanes = 0;
    for l in lanes {
        throttled_in_lanes += l.await.expect("lane");
    }
    eprintln!(
        "after lanes: {:?} {:?}",
        h.bridge.inbound_counts(),
        h.sim.counters()
    );
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < INBOUND && tokio::time::Instant::now() < deadline {
        let event = next_event(&mut relay, |e| {
            matches!(e.kind, InboundKind::Message { .. })
        })
        .await;
        if let InboundKind::Message { id, .. } = &event.kind
            && !event.sender.is_ours
        {
            got.push(id.as_str().to_owned());
        }
    }
    let counters = h.sim.counters();
    let early = h.sim.inner().limiter.early_retries();
    println!(
        "429 answers: {}, deliveries throttled: {throttled_in_lanes}, early retries: {early}",
        counters.throttled
    );
    h.sim
        .set_rate_limit_mode(switchboard_teams_sim::limits::Mode::Off);
    assert_eq!(got, inbound, "every inbound message once, in order");
    let posted: Vec<String> = graph(&h.sim)
        .get_all(&h.messages_path(), Bearer::App(&h.app()), 10_000)
        .await
        .expect("list")
        .iter()
        .filter_map(|m| {
            m.pointer("/body/content")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|c| c.contains("storm "))
        .collect();
    for lane in 0..2 {
        for i in 0..POSTS / 2 {
            let needle = format!("storm {lane}-{i}<");
            let n = posted.iter().filter(|c| c.contains(&needle)).count();
            assert_eq!(n, 1, "{needle} posted {n} times");
        }
    }
    assert!(counters.throttled > 0, "the storm happened");
    assert_eq!(early, 0, "no request before its Retry-After");
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

/// The bridge is stopped, Bob edits his message, a new bridge process
/// starts from the stored delta link with no versions in memory: the edit
/// still arrives (with the message, which the relay drops as known).
#[tokio::test]
async fn an_edit_made_while_stopped_arrives_after_a_restart() {
    let h = SimHarness::start(None).await;
    let (mut relay, shutdown, runner) = run_bridge(&h).await;
    let id = h.bob_posts("before the restart").await;
    next_event(&mut relay, |e| {
        matches!(e.kind, InboundKind::Message { .. })
    })
    .await;
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");

    h.bob_acts(
        &id,
        true,
        json!({ "body": { "contentType": "html", "content": "<p>edited while down</p>" } }),
    )
    .await;
    let restarted = TeamsBridge::with_graph(h.config.clone(), graph(&h.sim)).expect("bridge");
    let (mut relay, shutdown, runner) = run_bridge_on(&h, &restarted, false).await;
    let edit = next_event(&mut relay, |e| matches!(e.kind, InboundKind::Edit { .. })).await;
    let InboundKind::Edit { target, message } = &edit.kind else {
        unreachable!()
    };
    assert_eq!(target.as_str(), id);
    assert_eq!(message.body.to_plain(), "edited while down");
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

/// The simulator carries out 30 % of the calls and then breaks the
/// connection instead of answering, and answers 10 % with 503: the relay's
/// retries (flagged `maybe_delivered`) find what was posted by its relay
/// marker, so every post appears once, and polling loses nothing.
#[tokio::test]
async fn lost_answers_and_503s_neither_lose_nor_duplicate() {
    const POSTS: usize = 30;
    const INBOUND: usize = 8;
    let h = SimHarness::start(None).await;
    let (mut relay, shutdown, runner) = run_bridge(&h).await;
    let mut inbound = Vec::new();
    for i in 0..INBOUND {
        inbound.push(h.bob_posts(&format!("bob {i}")).await);
    }
    h.sim
        .set_faults(switchboard_teams_sim::limits::FaultConfig {
            disconnect_rate: 0.3,
            error_rate: 0.1,
            ..Default::default()
        });
    let puppet = h.bridge.ensure_puppet(&person()).await.expect("puppet");
    let mut retries = 0;
    for i in 0..POSTS {
        let op = OutboundOp::on_behalf(
            OpId::new(format!("lossy-{i}")),
            h.channel.clone(),
            Origin::new("slack:acme", "C1"),
            person(),
            Some(puppet.clone()),
            OutboundKind::Send {
                message: Message::text(format!("lossy {i}")),
            },
        );
        let mut attempt = 0;
        loop {
            // What the relay does: a retry may have been delivered.
            let op = op.clone().maybe_delivered(attempt > 0);
            match h.bridge.deliver(&op, &NoMedia).await {
                Ok(_) => break,
                Err(e) => {
                    assert!(attempt < 40, "{i} never delivered: {e}");
                    attempt += 1;
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    let mut got = Vec::new();
    while got.len() < INBOUND {
        let event = next_event(&mut relay, |e| {
            matches!(e.kind, InboundKind::Message { .. }) && !e.sender.is_ours
        })
        .await;
        if let InboundKind::Message { id, .. } = &event.kind {
            got.push(id.as_str().to_owned());
        }
    }
    let lost = h.sim.counters().injected_disconnects;
    h.sim
        .set_faults(switchboard_teams_sim::limits::FaultConfig::default());
    println!("{POSTS} posts: {retries} retries, {lost} answers lost");
    assert_eq!(got, inbound, "every inbound message once, in order");
    let posted = h.channel_contents().await;
    for i in 0..POSTS {
        let needle = format!("lossy {i}<");
        let n = posted.iter().filter(|c| c.contains(&needle)).count();
        assert_eq!(n, 1, "{needle} posted {n} times");
    }
    assert!(lost > 0, "answers were lost");
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

#[tokio::test]
async fn channels_and_chats_describe_themselves_for_mirrored_rooms() {
    let seed: switchboard_teams_sim::seed::Seed = serde_json::from_value(json!({
        "users": [
            {"displayName": "Switchboard Relay", "userPrincipalName": "switchboard@contoso.test"},
            {"displayName": "Bob Builder", "userPrincipalName": "bob@contoso.test"}
        ],
        "teams": [{"displayName": "Contoso", "owners": ["switchboard@contoso.test"],
                   "members": ["bob@contoso.test"],
                   "channels": [{"displayName": "Launch", "description": "Ship it on Friday"}]}],
        "chats": [
            {"chatType": "group", "topic": "Launch crew",
             "members": ["switchboard@contoso.test", "bob@contoso.test"]},
            {"name": "one", "chatType": "oneOnOne",
             "members": ["switchboard@contoso.test", "bob@contoso.test"]}
        ]
    }))
    .expect("seed");
    let sim = TeamsSim::start(SimConfig {
        seed: Some(seed),
        ..SimConfig::default()
    })
    .await
    .expect("sim starts");
    let bridge = TeamsBridge::with_graph(config(&sim, None), graph(&sim)).expect("bridge");
    assert!(
        !bridge.capabilities().mirrors_channel_info,
        "Teams channels are never renamed from elsewhere"
    );
    let seeded = sim.seeded();
    let (team, launch) = seeded.channels["Contoso/Launch"].clone();
    let info = bridge
        .channel_info(&ChannelId::new(format!("{team}/{launch}")))
        .await
        .expect("channel get")
        .expect("a channel has a name");
    assert_eq!(info.name.as_deref(), Some("Contoso / Launch"));
    assert_eq!(info.topic.as_deref(), Some("Ship it on Friday"));

    let group = ChannelId::new(seeded.chats["Launch crew"].clone());
    let info = bridge.channel_info(&group).await.expect("chat get");
    assert_eq!(info.and_then(|i| i.name).as_deref(), Some("Launch crew"));
    let one = ChannelId::new(seeded.chats["one"].clone());
    assert_eq!(bridge.channel_info(&one).await.expect("chat get"), None);

    let missing = bridge
        .channel_info(&ChannelId::new(format!("{team}/19:nope@thread.tacv2")))
        .await;
    assert!(
        matches!(missing, Err(BridgeError::NotFound { .. })),
        "{missing:?}"
    );
    sim.shutdown().await;
}

/// After a restart, an op the previous process posted is found by its relay
/// marker however many messages people wrote since (the channel is read
/// back by time, page by page, not a fixed count); ops it never posted are
/// posted once; and inside one process a retry the relay did not flag (as
/// after a rate limit) still finds what its lost answer had posted.
#[tokio::test]
async fn a_retried_op_is_found_behind_any_number_of_newer_messages() {
    let h = SimHarness::start(None).await;
    let puppet = h.bridge.ensure_puppet(&person()).await.expect("puppet");
    let op = |id: &str, text: &str| {
        OutboundOp::on_behalf(
            OpId::new(id),
            h.channel.clone(),
            Origin::new("slack:acme", "C1"),
            person(),
            Some(puppet.clone()),
            OutboundKind::Send {
                message: Message::text(text),
            },
        )
        .queued_at(switchboard_model::Timestamp::now())
    };
    let crash = op("op-crash", "posted before the crash");
    let sent = h.bridge.deliver(&crash, &NoMedia).await.expect("posted");
    for n in 0..70 {
        h.bob_posts(&format!("chatter {n}")).await;
    }

    let restarted = TeamsBridge::with_graph(h.config.clone(), graph(&h.sim)).expect("bridge");
    let again = restarted
        .deliver(&crash.clone().maybe_delivered(true), &NoMedia)
        .await
        .expect("found");
    assert_eq!(
        again, sent,
        "found behind 70 newer messages (two pages), not posted again"
    );
    for n in 0..3 {
        restarted
            .deliver(
                &op(&format!("op-new-{n}"), &format!("never posted {n}")).maybe_delivered(true),
                &NoMedia,
            )
            .await
            .expect("posted");
    }

    // The answer to the POST is lost after Graph carried it out.
    let lost = op("op-lost", "answer lost");
    h.sim
        .set_faults(switchboard_teams_sim::limits::FaultConfig {
            disconnect_rate: 1.0,
            ..Default::default()
        });
    restarted
        .deliver(&lost, &NoMedia)
        .await
        .expect_err("the answer never arrives");
    h.sim
        .set_faults(switchboard_teams_sim::limits::FaultConfig::default());
    restarted
        .deliver(&lost, &NoMedia)
        .await
        .expect("the retry finds it");

    let posted = h.channel_contents().await;
    let count = |text: &str| {
        let needle = format!("{text}<");
        posted.iter().filter(|c| c.contains(&needle)).count()
    };
    assert_eq!(count("posted before the crash"), 1);
    for n in 0..3 {
        assert_eq!(count(&format!("never posted {n}")), 1);
    }
    assert_eq!(count("answer lost"), 1);
    h.sim.shutdown().await;
}
