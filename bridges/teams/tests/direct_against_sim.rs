//! One-on-one chats with the service account against the Graph simulator:
//! commands (by notification, by reconciliation, once when both see them),
//! direct portals relaying normally, `open_direct` finding the chat again,
//! `find_people` searching the directory, and the author line in a direct
//! portal.

mod common;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use common::{config, graph, sign_in};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use switchboard_model::bridge::InboundEnvelope;
use switchboard_model::testing::NoMedia;
use switchboard_model::{
    Bridge, BridgeContext, BridgeError, BridgeId, BridgeState, ChannelId, CursorStore,
    HttpEndpoint, HttpRequest, Inbound, InboundKind, InboundSink, MemoryCursors, Message, OpId,
    Origin, OutboundKind, OutboundOp, Person, RichText, UserId,
};
use switchboard_teams::auth::Secret;
use switchboard_teams::bridge::{NotificationSettings, TeamsBridge, TeamsConfig};
use switchboard_teams::client::Bearer;
use switchboard_teams::graph::crypto::NotificationKey;
use switchboard_teams_sim::seed::Seed;
use switchboard_teams_sim::{SimConfig, TeamsSim};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const SERVICE: &str = "switchboard@contoso.test";
const BOB: &str = "bob@contoso.test";
const CLIENT_STATE: &str = "another-long-random-client-state-42";

/// Users with fixed ids, so that the directory's order (by id) is known:
/// the service account comes first.
fn seed() -> Seed {
    serde_json::from_str(
        r#"{
        "users": [
            {"id": "00000000-0000-4000-8000-000000000001", "displayName": "Switchboard Relay", "userPrincipalName": "switchboard@contoso.test"},
            {"id": "00000000-0000-4000-8000-000000000002", "displayName": "Bob Builder", "userPrincipalName": "bob@contoso.test"},
            {"id": "00000000-0000-4000-8000-000000000003", "displayName": "Sam Able", "userPrincipalName": "sam@contoso.test"},
            {"id": "00000000-0000-4000-8000-000000000004", "displayName": "Sue Baker", "userPrincipalName": "sue@contoso.test"},
            {"id": "00000000-0000-4000-8000-000000000005", "displayName": "Stan Cole", "userPrincipalName": "stan@contoso.test"},
            {"id": "00000000-0000-4000-8000-000000000006", "displayName": "Ann Other", "userPrincipalName": "aother@contoso.test"}
        ],
        "teams": [{"displayName": "Contoso", "owners": ["switchboard@contoso.test"],
                   "members": ["bob@contoso.test"]}]
    }"#,
    )
    .expect("seed parses")
}

/// A test key pair (not a secret), shared with the simulator's tests.
fn test_key() -> Arc<NotificationKey> {
    Arc::new(
        NotificationKey::from_pem(include_str!(
            "../../teams-sim/tests/fixtures/rich-notifications.pem"
        ))
        .expect("the test key reads"),
    )
}

type Endpoints = Arc<Vec<(String, Arc<dyn HttpEndpoint>)>>;

/// Forwards every request to the bridge's endpoints, as the daemon does.
async fn forward(State(endpoints): State<Endpoints>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let Some((_, endpoint)) = endpoints.iter().find(|(p, _)| path.starts_with(p.as_str())) else {
        return (axum::http::StatusCode::NOT_FOUND, "no endpoint").into_response();
    };
    let answer = endpoint
        .handle(HttpRequest::new(
            parts.method.as_str(),
            path,
            parts.uri.query().unwrap_or(""),
            Vec::new(),
            body.to_vec(),
        ))
        .await;
    let mut response = Response::builder().status(answer.status);
    for (k, v) in &answer.headers {
        response = response.header(k, v);
    }
    response
        .body(axum::body::Body::from(answer.body))
        .unwrap_or_else(|_| Response::new(axum::body::Body::empty()))
}

struct Harness {
    sim: TeamsSim,
    bridge: Arc<TeamsBridge>,
    cursors: Arc<MemoryCursors>,
    /// Bob's one-on-one chat with the service account.
    chat: ChannelId,
}

struct Running {
    relay: mpsc::Receiver<InboundEnvelope>,
    shutdown: CancellationToken,
    runner: tokio::task::JoinHandle<Result<(), BridgeError>>,
    state: watch::Receiver<BridgeState>,
    _channels: watch::Sender<Vec<ChannelId>>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.runner.await.expect("joins").expect("stops cleanly");
    }
}

impl Harness {
    /// A bridge with change notifications when `reconcile` is `Some` (the
    /// reconciliation interval), else polling every 100 ms alone.
    async fn start(reconcile: Option<Duration>) -> Harness {
        Self::start_with(reconcile, false).await
    }

    /// [`Harness::start`], with encrypted resource data when `rich`.
    async fn start_with(reconcile: Option<Duration>, rich: bool) -> Harness {
        let sim = TeamsSim::start(SimConfig {
            seed: Some(seed()),
            retry_delays: vec![Duration::from_millis(200)],
            device_code_interval: Duration::from_millis(50),
            ..SimConfig::default()
        })
        .await
        .expect("sim starts");
        let service = sign_in(&sim, SERVICE).await;
        let mut config = config(&sim, Some(service));
        if let Some(every) = reconcile {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("listener");
            let public_url = format!("http://{}", listener.local_addr().expect("addr"));
            config = TeamsConfig {
                poll_interval: every,
                reconcile_interval: every,
                notifications: Some(NotificationSettings {
                    public_url,
                    client_state: Secret::new(CLIENT_STATE),
                    lifetime: Duration::from_secs(3 * 24 * 3600),
                    renew_before: Duration::from_secs(12 * 3600),
                    encryption: rich.then(test_key),
                }),
                ..config
            };
            let bridge = TeamsBridge::with_graph(config.clone(), graph(&sim)).expect("bridge");
            let endpoints = Arc::new(bridge.http_endpoints());
            let app = axum::Router::new().fallback(forward).with_state(endpoints);
            tokio::spawn(async move { axum::serve(listener, app).await });
            let chat = ChannelId::new(sim.direct_chat(BOB, SERVICE).expect("chat"));
            return Harness {
                sim,
                bridge,
                cursors: Arc::new(MemoryCursors::default()),
                chat,
            };
        }
        let bridge = TeamsBridge::with_graph(config, graph(&sim)).expect("bridge");
        let chat = ChannelId::new(sim.direct_chat(BOB, SERVICE).expect("chat"));
        Harness {
            sim,
            bridge,
            cursors: Arc::new(MemoryCursors::default()),
            chat,
        }
    }

    /// Runs `bridge` with these portal channels, once it is connected.
    async fn run(&self, bridge: &Arc<TeamsBridge>, portals: Vec<ChannelId>) -> Running {
        let mut run = self.start_run(bridge, portals);
        tokio::time::timeout(
            Duration::from_secs(15),
            run.state.wait_for(|s| *s == BridgeState::Connected),
        )
        .await
        .expect("connected in time")
        .expect("still running");
        run
    }

    fn start_run(&self, bridge: &Arc<TeamsBridge>, portals: Vec<ChannelId>) -> Running {
        let (sink, relay) = InboundSink::channel(1024);
        let shutdown = CancellationToken::new();
        let (state_tx, state) = watch::channel(BridgeState::Connecting);
        let (channels_tx, channels) = watch::channel(portals);
        let ctx = BridgeContext::new(sink, shutdown.clone(), state_tx)
            .with_channels(channels)
            .with_cursors(self.cursors.clone() as Arc<dyn CursorStore>);
        let b = bridge.clone();
        let runner = tokio::spawn(async move { b.run(ctx).await });
        Running {
            relay,
            shutdown,
            runner,
            state,
            _channels: channels_tx,
        }
    }

    fn user(&self, upn: &str) -> String {
        self.sim.seeded().users[upn].clone()
    }

    /// Bob writes into his chat with the service account through Graph,
    /// addressing it with an @mention first.
    async fn bob_writes(&self, text: &str) -> String {
        let token = Secret::new(self.sim.delegated_token(BOB).expect("bob's token"));
        let bob = self.user(BOB);
        let posted = graph(&self.sim)
            .post_json(
                &format!("/chats/{}/messages", self.chat),
                Bearer::User(&token, &bob),
                &json!({
                    "body": {"contentType": "html",
                             "content": format!("<p><at id=\"0\">Switchboard Relay</at> {text}</p>")},
                    "mentions": [{"id": 0, "mentionText": "Switchboard Relay",
                                  "mentioned": {"user": {"id": self.user(SERVICE),
                                  "displayName": "Switchboard Relay", "userIdentityType": "aadUser"}}}],
                }),
            )
            .await
            .expect("bob posts");
        posted["id"].as_str().expect("id").to_owned()
    }
}

/// Every event for `within`, acknowledged as stored.
async fn collect_for(
    relay: &mut mpsc::Receiver<InboundEnvelope>,
    within: Duration,
) -> Vec<Inbound> {
    collect_until(relay, |_| false, within).await
}

async fn collect_until(
    relay: &mut mpsc::Receiver<InboundEnvelope>,
    done: impl Fn(&[Inbound]) -> bool,
    within: Duration,
) -> Vec<Inbound> {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    while !done(&out) {
        match tokio::time::timeout_at(deadline, relay.recv()).await {
            Ok(Some((event, stored))) => {
                let _ = stored.send(Ok(()));
                out.push(event);
            }
            Ok(None) | Err(_) => break,
        }
    }
    out
}

fn commands(events: &[Inbound]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            InboundKind::Command { text, .. } => Some((e.event.as_str().to_owned(), text.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_command_seen_by_notification_and_reconciliation_arrives_once() {
    let h = Harness::start(Some(Duration::from_millis(300))).await;
    let mut run = h.run(&h.bridge, Vec::new()).await;
    let direct: Vec<Value> = h
        .sim
        .subscriptions()
        .into_iter()
        .filter(|s| s["clientState"] == CLIENT_STATE)
        .collect();
    assert_eq!(direct.len(), 1, "{:?}", h.sim.subscriptions());
    assert_eq!(
        direct[0]["resource"],
        format!("/users/{}/chats/getAllMessages", h.user(SERVICE))
    );

    let id = h.bob_writes(" dm ann ").await;
    // Long enough for the notification and several reconciliation rounds.
    let events = collect_for(&mut run.relay, Duration::from_secs(2)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        commands(&events),
        vec![(format!("{}|{id}|command", h.chat), "dm ann".to_owned())]
    );
    let event = &events[0];
    assert_eq!(event.origin.channel, h.chat);
    assert_eq!(event.sender.person.user.as_str(), h.user(BOB));
    assert_eq!(event.sender.person.display_name, "Bob Builder");
    let counts = h.bridge.inbound_counts();
    assert_eq!(
        counts.events_by_notification + counts.events_by_reconcile,
        1,
        "{counts:?}"
    );
    assert!(
        counts.stale_skipped >= 1,
        "reconciliation saw it too: {counts:?}"
    );

    // The answer, posted by the service account, is no command; nor is
    // Bob's edit of his command.
    h.sim
        .post_chat_message_as(SERVICE, h.chat.as_str(), "<p>No one called ann.</p>")
        .expect("answer");
    let token = Secret::new(h.sim.delegated_token(BOB).expect("token"));
    graph(&h.sim)
        .patch_json(
            &format!("/chats/{}/messages/{id}", h.chat),
            Bearer::User(&token, &h.user(BOB)),
            &json!({"body": {"contentType": "html", "content": "<p>dm bob</p>"}}),
        )
        .await
        .expect("edit");
    let events = collect_for(&mut run.relay, Duration::from_millis(1500)).await;
    assert!(events.is_empty(), "{events:?}");
    run.stop().await;
}

#[tokio::test]
async fn reconciliation_alone_finds_commands_once_and_a_restart_repeats_the_same_event() {
    let h = Harness::start(None).await;
    // Written before the bridge ever ran: history, not a command.
    h.sim
        .post_chat_message_as(BOB, h.chat.as_str(), "<p>old</p>")
        .expect("posts");
    let mut run = h.run(&h.bridge, Vec::new()).await;
    let id = h
        .sim
        .post_chat_message_as(BOB, h.chat.as_str(), "<p>portal list</p>")
        .expect("posts");
    let events = collect_for(&mut run.relay, Duration::from_millis(1500)).await;
    let expected = (format!("{}|{id}|command", h.chat), "portal list".to_owned());
    assert_eq!(commands(&events), vec![expected.clone()], "{events:?}");
    assert_eq!(events.len(), 1);
    run.stop().await;

    // Another process with the same store: the command may be read again
    // (the relay's dedup drops it by its id), never as anything else.
    let again = TeamsBridge::with_graph(
        config(&h.sim, Some(sign_in(&h.sim, SERVICE).await)),
        graph(&h.sim),
    )
    .expect("bridge");
    // Its first round may hand the command over before it reports
    // Connected, so the events are taken as they come.
    let mut run = h.start_run(&again, Vec::new());
    let events = collect_for(&mut run.relay, Duration::from_millis(1500)).await;
    assert!(
        events
            .iter()
            .all(|e| commands(std::slice::from_ref(e)) == vec![expected.clone()]),
        "{events:?}"
    );
    run.stop().await;
}

#[tokio::test]
async fn a_direct_portal_relays_messages_instead() {
    let h = Harness::start(Some(Duration::from_millis(300))).await;
    let mut run = h.run(&h.bridge, vec![h.chat.clone()]).await;
    let id = h.bob_writes("hello ann").await;
    let events = collect_until(&mut run.relay, |e| !e.is_empty(), Duration::from_secs(5)).await;
    let more = collect_for(&mut run.relay, Duration::from_millis(800)).await;
    assert!(more.is_empty(), "once: {more:?}");
    assert_eq!(events.len(), 1, "{events:?}");
    let InboundKind::Message { id: got, message } = &events[0].kind else {
        panic!("a message, not {events:?}");
    };
    assert_eq!(got.as_str(), id);
    assert!(
        message.body.to_plain().ends_with("hello ann"),
        "{message:?}"
    );
    run.stop().await;
}

#[tokio::test]
async fn open_direct_finds_the_same_chat_twice() {
    let h = Harness::start(None).await;
    let ann = Person::new(BridgeId::new("slack:acme"), UserId::new("U1"), "Ann");
    let sam = UserId::new(h.user("sam@contoso.test"));
    let first = h.bridge.open_direct(&sam, &ann).await.expect("opens");
    let second = h.bridge.open_direct(&sam, &ann).await.expect("opens");
    let first = first.expect("Teams has direct chats");
    assert_eq!(Some(first.clone()), second);
    assert_eq!(
        first.as_str(),
        h.sim
            .direct_chat("sam@contoso.test", SERVICE)
            .expect("chat"),
        "the one-on-one chat of Sam and the service account"
    );
    // Bob's existing chat is found, not doubled.
    let bob = UserId::new(h.user(BOB));
    assert_eq!(
        h.bridge.open_direct(&bob, &ann).await.expect("opens"),
        Some(h.chat.clone())
    );
    // Nobody, or the service account itself, is an error that says so.
    let err = h
        .bridge
        .open_direct(&UserId::new("no-such-user"), &ann)
        .await
        .expect_err("unknown");
    assert!(matches!(err, BridgeError::NotFound { .. }), "{err:?}");
    let err = h
        .bridge
        .open_direct(&UserId::new(h.user(SERVICE)), &ann)
        .await
        .expect_err("itself");
    assert!(matches!(err, BridgeError::Permanent { .. }), "{err:?}");
}

#[tokio::test]
async fn find_people_by_name_or_upn_prefix_without_the_service_account() {
    let h = Harness::start(None).await;
    let names = |people: &[Person]| {
        people
            .iter()
            .map(|p| p.display_name.clone())
            .collect::<Vec<_>>()
    };
    let found = h.bridge.find_people("BOB", 10).await.expect("search");
    assert_eq!(names(&found), vec!["Bob Builder"]);
    assert_eq!(found[0].user.as_str(), h.user(BOB));
    assert_eq!(found[0].bridge.as_str(), "teams:contoso");
    // By UPN prefix only.
    let found = h.bridge.find_people("aoth", 10).await.expect("search");
    assert_eq!(names(&found), vec!["Ann Other"]);
    // "s…": the service account (first in the directory) is skipped, and
    // the third person is on Graph's second page (pages of `limit`).
    let found = h.bridge.find_people("s", 3).await.expect("search");
    assert_eq!(names(&found), vec!["Sam Able", "Sue Baker", "Stan Cole"]);
    let found = h.bridge.find_people("switch", 5).await.expect("search");
    assert!(found.is_empty(), "{found:?}");
    let found = h.bridge.find_people("o'b", 5).await.expect("quotes");
    assert!(found.is_empty(), "{found:?}");
    assert!(
        h.bridge
            .find_people("  ", 5)
            .await
            .expect("empty")
            .is_empty()
    );
}

#[tokio::test]
async fn a_message_relayed_into_a_direct_portal_carries_the_author_line() {
    let h = Harness::start(None).await;
    let ann = Person::new(BridgeId::new("slack:acme"), UserId::new("U1"), "Ann");
    let bob = UserId::new(h.user(BOB));
    let chat = h
        .bridge
        .open_direct(&bob, &ann)
        .await
        .expect("opens")
        .expect("a chat");
    let op = OutboundOp::new(
        OpId::new("dm.1"),
        chat.clone(),
        OutboundKind::Send {
            message: Message::new(RichText::plain("hi Bob")),
        },
    )
    .with_origin(Some(Origin::new("slack:acme", "D1")), Some(ann));
    let delivered = h.bridge.deliver(&op, &NoMedia).await.expect("sent");
    let app = Secret::new(h.sim.app_token());
    let posted = graph(&h.sim)
        .get_json(
            &format!("/chats/{chat}/messages/{}", delivered.ids[0].as_str()),
            Bearer::App(&app),
        )
        .await
        .expect("message");
    let content = posted["body"]["content"].as_str().unwrap_or("");
    assert!(
        content.starts_with("<p><b>Ann</b> (Slack): hi Bob"),
        "{content}"
    );
    assert_eq!(posted["from"]["user"]["id"], h.user(SERVICE));
}

#[tokio::test]
async fn encrypted_notifications_bring_commands_without_a_read() {
    // Reconciliation practically never runs: the notification alone.
    let h = Harness::start_with(Some(Duration::from_secs(600)), true).await;
    let mut run = h.run(&h.bridge, Vec::new()).await;
    let subs = h.sim.subscriptions();
    assert!(
        subs.iter().any(|s| s["resource"]
            .as_str()
            .is_some_and(|r| r.ends_with("/chats/getAllMessages"))
            && s["includeResourceData"] == true),
        "{subs:?}"
    );
    let id = h.bob_writes("logins").await;
    let events = collect_until(&mut run.relay, |e| !e.is_empty(), Duration::from_secs(5)).await;
    assert_eq!(
        commands(&events),
        vec![(format!("{}|{id}|command", h.chat), "logins".to_owned())]
    );
    let counts = h.bridge.inbound_counts();
    assert_eq!(counts.rich, 1, "decrypted, not read: {counts:?}");
    run.stop().await;
}

#[tokio::test]
async fn a_removed_chats_subscription_is_recreated_and_the_missed_command_arrives() {
    let h = Harness::start(Some(Duration::from_secs(600))).await;
    let mut run = h.run(&h.bridge, Vec::new()).await;
    let direct = |h: &Harness| -> Vec<String> {
        h.sim
            .subscriptions()
            .into_iter()
            .filter(|s| {
                s["resource"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("/chats/getAllMessages"))
            })
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect()
    };
    let before = direct(&h);
    assert_eq!(before.len(), 1);
    h.sim
        .trigger_lifecycle(&before[0], "subscriptionRemoved")
        .await
        .expect("lifecycle");
    // Written while Graph had no subscription for it (or just after).
    let id = h
        .sim
        .post_chat_message_as(BOB, h.chat.as_str(), "<p>calls</p>")
        .expect("posts");
    let events = collect_until(&mut run.relay, |e| !e.is_empty(), Duration::from_secs(5)).await;
    let more = collect_for(&mut run.relay, Duration::from_millis(500)).await;
    assert!(more.is_empty(), "{more:?}");
    assert_eq!(
        commands(&events),
        vec![(format!("{}|{id}|command", h.chat), "calls".to_owned())]
    );
    let counts = h.bridge.inbound_counts();
    assert_eq!(counts.subscriptions_recreated, 1, "{counts:?}");
    assert!(counts.resyncs >= 1, "{counts:?}");
    let after = direct(&h);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "a new subscription");
    run.stop().await;
}

#[tokio::test]
async fn a_group_chat_with_the_service_account_is_no_command_chat() {
    let h = Harness::start(Some(Duration::from_millis(300))).await;
    let mut run = h.run(&h.bridge, Vec::new()).await;
    let group = h
        .sim
        .add_chat(&switchboard_teams_sim::seed::ChatSeed {
            id: None,
            name: None,
            chat_type: Some("group".into()),
            topic: Some("Lunch".into()),
            members: vec![SERVICE.into(), BOB.into(), "sam@contoso.test".into()],
        })
        .expect("group chat");
    h.sim
        .post_chat_message_as(BOB, &group, "<p>help</p>")
        .expect("posts");
    let events = collect_for(&mut run.relay, Duration::from_millis(1500)).await;
    assert!(events.is_empty(), "{events:?}");
    let counts = h.bridge.inbound_counts();
    assert_eq!(
        counts.notifications, 1,
        "notified, then ignored: {counts:?}"
    );
    run.stop().await;
}

#[tokio::test]
async fn a_chat_that_becomes_a_portal_while_running_relays_its_new_messages() {
    let h = Harness::start(None).await;
    let run = h.run(&h.bridge, Vec::new()).await;
    run._channels
        .send(vec![h.chat.clone()])
        .expect("the portal is linked");
    // Give the watch a reconciliation round.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut run = run;
    let by_graph = h.bob_writes("by graph").await;
    let by_sim = h
        .sim
        .post_chat_message_as(BOB, h.chat.as_str(), "<p>by the simulator</p>")
        .expect("bob posts");
    let events = collect_until(&mut run.relay, |e| e.len() >= 2, Duration::from_secs(5)).await;
    let ids: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            InboundKind::Message { id, .. } => Some(id.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![by_graph, by_sim], "{events:?}");
    run.stop().await;
}
