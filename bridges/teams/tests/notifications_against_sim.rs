//! Change notifications against the Graph simulator: the endpoint on a real
//! loopback listener, subscriptions created, renewed and recreated, lifecycle
//! events, and faulty delivery (dropped, duplicated, delayed) reconciled into
//! exactly-once events.

mod common;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use common::{BOB, SERVICE, config, graph, seed, sign_in};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_model::bridge::InboundEnvelope;
use switchboard_model::{
    Bridge, BridgeContext, BridgeId, BridgeState, ChannelId, CursorStore, HttpEndpoint,
    HttpRequest, InboundKind, InboundSink, MemoryCursors,
};
use switchboard_teams::auth::Secret;
use switchboard_teams::bridge::{
    NotificationSettings, TeamsBridge, TeamsConfig, notification_path,
};
use switchboard_teams::client::Bearer;
use switchboard_teams::graph::crypto::NotificationKey;
use switchboard_teams_sim::limits::FaultConfig;
use switchboard_teams_sim::{SimConfig, TeamsSim};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const CLIENT_STATE: &str = "a-long-random-client-state-0123456789";

/// The bridge's endpoints by path prefix.
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
    let headers = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let answer = endpoint
        .handle(HttpRequest::new(
            parts.method.as_str(),
            path,
            parts.uri.query().unwrap_or(""),
            headers,
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
    channel: ChannelId,
    messages_path: String,
    listener: String,
    cursors: Arc<MemoryCursors>,
}

struct Settings {
    lifetime: Duration,
    renew_before: Duration,
    reconcile: Duration,
    rich: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lifetime: Duration::from_secs(3 * 24 * 3600),
            renew_before: Duration::from_secs(12 * 3600),
            reconcile: Duration::from_secs(600),
            rich: false,
        }
    }
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

impl Harness {
    async fn start(settings: Settings) -> Harness {
        let sim = TeamsSim::start(SimConfig {
            seed: Some(seed()),
            retry_delays: vec![Duration::from_millis(200), Duration::from_millis(500)],
            device_code_interval: Duration::from_millis(50),
            ..SimConfig::default()
        })
        .await
        .expect("sim starts");
        let (team, channel_id) = sim.seeded().channels["Contoso/General"].clone();
        let channel = ChannelId::new(format!("{team}/{channel_id}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let public_url = format!("http://{}", listener.local_addr().expect("addr"));
        let service = sign_in(&sim, SERVICE).await;
        let config = TeamsConfig {
            // Long: reconciliation is what these tests switch on explicitly.
            poll_interval: settings.reconcile,
            watch: vec![channel.clone()],
            notifications: Some(NotificationSettings {
                public_url: public_url.clone(),
                client_state: Secret::new(CLIENT_STATE),
                lifetime: settings.lifetime,
                renew_before: settings.renew_before,
                encryption: settings.rich.then(test_key),
            }),
            reconcile_interval: settings.reconcile,
            ..config(&sim, Some(service))
        };
        let bridge = TeamsBridge::with_graph(config, graph(&sim)).expect("bridge");
        let endpoints = Arc::new(bridge.http_endpoints());
        assert_eq!(endpoints.len(), 1, "one endpoint prefix");
        let app = axum::Router::new().fallback(forward).with_state(endpoints);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Harness {
            sim,
            bridge,
            channel,
            messages_path: format!("/teams/{team}/channels/{channel_id}/messages"),
            listener: public_url,
            cursors: Arc::new(MemoryCursors::default()),
        }
    }

    async fn run(
        &self,
    ) -> (
        mpsc::Receiver<InboundEnvelope>,
        CancellationToken,
        tokio::task::JoinHandle<Result<(), switchboard_model::BridgeError>>,
    ) {
        self.run_on(vec![self.channel.clone()]).await
    }

    async fn run_on(
        &self,
        watched: Vec<ChannelId>,
    ) -> (
        mpsc::Receiver<InboundEnvelope>,
        CancellationToken,
        tokio::task::JoinHandle<Result<(), switchboard_model::BridgeError>>,
    ) {
        let (sink, relay) = InboundSink::channel(1024);
        let shutdown = CancellationToken::new();
        let (state_tx, mut state) = watch::channel(BridgeState::Connecting);
        let (_keep, channels) = watch::channel(watched);
        let ctx = BridgeContext::new(sink, shutdown.clone(), state_tx)
            .with_channels(channels)
            .with_cursors(self.cursors.clone() as Arc<dyn CursorStore>);
        let bridge = self.bridge.clone();
        let runner = tokio::spawn(async move { bridge.run(ctx).await });
        tokio::time::timeout(
            Duration::from_secs(15),
            state.wait_for(|s| *s == BridgeState::Connected),
        )
        .await
        .expect("connected in time")
        .expect("still running");
        (relay, shutdown, runner)
    }

    fn bob(&self) -> (Secret, String) {
        (
            Secret::new(self.sim.delegated_token(BOB).expect("bob's token")),
            self.sim.seeded().users[BOB].clone(),
        )
    }

    async fn bob_posts(&self, path_suffix: &str, text: &str) -> String {
        let (token, user) = self.bob();
        let posted = graph(&self.sim)
            .post_json(
                &format!("{}{path_suffix}", self.messages_path),
                Bearer::User(&token, &user),
                &json!({ "body": { "contentType": "html", "content": format!("<p>{text}</p>") } }),
            )
            .await
            .expect("bob posts");
        posted["id"].as_str().expect("id").to_owned()
    }

    /// The bridge's per-conversation subscriptions (without the one to the
    /// service account's chats, for commands: see [`Self::direct_subscriptions`]).
    fn our_subscriptions(&self) -> Vec<Value> {
        self.sim
            .subscriptions()
            .into_iter()
            .filter(|s| s["clientState"] == CLIENT_STATE && !is_direct(s))
            .collect()
    }

    /// The bridge's subscriptions to the service account's chats.
    fn direct_subscriptions(&self) -> Vec<Value> {
        self.sim
            .subscriptions()
            .into_iter()
            .filter(|s| s["clientState"] == CLIENT_STATE && is_direct(s))
            .collect()
    }

    async fn post_raw(&self, path_and_query: &str, body: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("{}{path_and_query}", self.listener))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("listener answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }
}

/// Whether a subscription is the one to every chat of the service account.
fn is_direct(subscription: &Value) -> bool {
    subscription["resource"]
        .as_str()
        .is_some_and(|r| r.ends_with("/chats/getAllMessages"))
}

/// Events until `deadline`, acknowledged as stored.
async fn collect_until(
    relay: &mut mpsc::Receiver<InboundEnvelope>,
    done: impl Fn(&[switchboard_model::Inbound]) -> bool,
    within: Duration,
) -> Vec<switchboard_model::Inbound> {
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

/// The bridge's counters once `ready` holds (they are bumped just after the
/// relay acknowledged the events).
async fn counts_when(
    bridge: &TeamsBridge,
    ready: impl Fn(&switchboard_teams::bridge::InboundCounts) -> bool,
) -> switchboard_teams::bridge::InboundCounts {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let counts = bridge.inbound_counts();
        if ready(&counts) || tokio::time::Instant::now() > deadline {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn message_ids(events: &[switchboard_model::Inbound]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            InboundKind::Message { id, .. } => Some(id.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn notifications_bring_messages_replies_and_edits_without_reconciliation() {
    let h = Harness::start(Settings::default()).await;
    let (mut relay, shutdown, runner) = h.run().await;
    let subs = h.our_subscriptions();
    assert_eq!(subs.len(), 1, "one subscription for the channel: {subs:?}");
    let direct = h.direct_subscriptions();
    assert_eq!(direct.len(), 1, "and one for commands: {direct:?}");
    assert_eq!(direct[0]["changeType"], "created");
    assert_eq!(
        subs[0]["notificationUrl"],
        format!(
            "{}{}",
            h.listener,
            notification_path(&BridgeId::new("teams:contoso"))
        )
    );
    assert!(
        subs[0]["lifecycleNotificationUrl"]
            .as_str()
            .is_some_and(|u| u.ends_with("/teams/contoso/lifecycle"))
    );

    let root = h.bob_posts("", "hello by notification").await;
    let events = collect_until(
        &mut relay,
        |e| !message_ids(e).is_empty(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(message_ids(&events), vec![root.clone()]);

    let reply = h.bob_posts(&format!("/{root}/replies"), "a reply").await;
    let events = collect_until(
        &mut relay,
        |e| !message_ids(e).is_empty(),
        Duration::from_secs(10),
    )
    .await;
    let InboundKind::Message { id, message } = &events.last().expect("reply").kind else {
        panic!("not a message: {events:?}");
    };
    assert_eq!(id.as_str(), format!("{root}/{reply}"));
    assert_eq!(
        message.thread_root.as_ref().map(|r| r.as_str()),
        Some(root.as_str())
    );

    let (token, user) = h.bob();
    graph(&h.sim)
        .patch_json(
            &format!("{}/{root}", h.messages_path),
            Bearer::User(&token, &user),
            &json!({ "body": { "contentType": "html", "content": "<p>edited</p>" } }),
        )
        .await
        .expect("edit");
    let events = collect_until(
        &mut relay,
        |e| e.iter().any(|e| matches!(e.kind, InboundKind::Edit { .. })),
        Duration::from_secs(10),
    )
    .await;
    assert!(events.iter().any(|e| matches!(&e.kind, InboundKind::Edit { target, message } if target.as_str() == root && message.body.to_plain() == "edited")));

    let counts = counts_when(&h.bridge, |c| c.events_by_notification >= 3).await;
    assert!(counts.events_by_notification >= 3, "{counts:?}");
    assert_eq!(
        counts.events_by_reconcile, 0,
        "reconciliation never ran: {counts:?}"
    );
    // The channel's and the service account's chats'.
    assert_eq!(counts.subscriptions_created, 2);
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

#[tokio::test]
async fn the_endpoint_echoes_validation_and_refuses_forgeries() {
    let h = Harness::start(Settings::default()).await;
    let (mut relay, shutdown, runner) = h.run().await;
    let path = notification_path(&BridgeId::new("teams:contoso"));

    let (status, body) = h
        .post_raw(
            &format!("{path}?validationToken=Validation%3A%20hello%20%26%20more"),
            "",
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "Validation: hello & more"));

    let forged = json!({"value": [{
        "subscriptionId": "x", "changeType": "created", "clientState": "guess",
        "resource": format!("teams('a')/channels('b')/messages('1')"),
        "resourceData": {"id": "1"}, "tenantId": h.sim.seeded().tenant_id,
    }]});
    let (status, _) = h.post_raw(&path, &forged.to_string()).await;
    assert_eq!(status, 403, "a wrong clientState is refused");
    let (status, _) = h.post_raw(&path, "{not json").await;
    assert_eq!(status, 400, "malformed bodies are refused");
    let (status, _) = h.post_raw(&path, r#"{"value": 5}"#).await;
    assert_eq!(status, 400);

    let other_tenant = json!({"value": [{
        "subscriptionId": "x", "changeType": "created", "clientState": CLIENT_STATE,
        "resource": "teams('a')/channels('b')/messages('1')",
        "resourceData": {"id": "1"}, "tenantId": "another-tenant",
    }]});
    let (status, _) = h.post_raw(&path, &other_tenant.to_string()).await;
    assert_eq!(status, 403, "another tenant's notification is refused");

    let counts = h.bridge.inbound_counts();
    assert_eq!(counts.refused, 2, "{counts:?}");
    assert_eq!(counts.notifications, 0);
    let events = collect_until(&mut relay, |_| false, Duration::from_millis(500)).await;
    assert!(events.is_empty(), "nothing relayed: {events:?}");
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

/// Drops 30 % of the notifications, duplicates 20 % and delays all of them;
/// every message must still arrive exactly once, the missing ones through
/// the delta round of a later notification or reconciliation, in the order
/// posted. Bounded by a message count, not by
/// wall-clock minutes.
#[tokio::test]
async fn faulty_notifications_are_reconciled_into_exactly_once() {
    const ROOTS: usize = 120;
    let h = Harness::start(Settings {
        reconcile: Duration::from_millis(700),
        ..Settings::default()
    })
    .await;
    let (mut relay, shutdown, runner) = h.run().await;
    h.sim.set_faults(FaultConfig {
        drop_rate: 0.3,
        duplicate_rate: 0.2,
        notification_delay_ms: 150,
        ..FaultConfig::default()
    });
    let mut expected = Vec::new();
    for i in 0..ROOTS {
        let root = h.bob_posts("", &format!("message {i}")).await;
        expected.push(root.clone());
        if i % 10 == 0 {
            let reply = h
                .bob_posts(&format!("/{root}/replies"), &format!("reply {i}"))
                .await;
            expected.push(format!("{root}/{reply}"));
        }
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let want = expected.len();
    let mut events = collect_until(
        &mut relay,
        |e| message_ids(e).len() >= want,
        Duration::from_secs(90),
    )
    .await;
    // Anything late would be a duplicate: keep listening a little.
    events.extend(collect_until(&mut relay, |_| false, Duration::from_secs(3)).await);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for id in message_ids(&events) {
        *seen.entry(id).or_default() += 1;
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    let duplicated: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let counts = counts_when(&h.bridge, |c| {
        c.events_by_notification + c.events_by_reconcile >= want as u64
    })
    .await;
    let sim = h.sim.counters();
    println!(
        "messages {want}: by notification {}, by reconciliation {}, stale skipped {}; simulator dropped {} and duplicated {} notifications",
        counts.events_by_notification,
        counts.events_by_reconcile,
        counts.stale_skipped,
        sim.notifications_fault_dropped,
        sim.notifications_duplicated
    );
    assert!(missing.is_empty(), "missing: {missing:?}");
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
    assert_eq!(seen.len(), want, "nothing unexpected");
    // A notified channel message is read by a delta round, which brings
    // whatever was not notified before it: everything arrives in order.
    assert_eq!(message_ids(&events), expected, "in the order posted");
    assert!(sim.notifications_fault_dropped > 0 && sim.notifications_duplicated > 0);
    assert!(counts.events_by_notification > 0, "{counts:?}");
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

/// "@Switchboard call Weekly sync" asks for one meeting, even though a
/// (late) notification and reconciliation both see the message, and an edit
/// of it asks nothing and relays nothing.
#[tokio::test]
async fn a_call_command_becomes_one_call_request() {
    let h = Harness::start(Settings {
        reconcile: Duration::from_millis(300),
        ..Settings::default()
    })
    .await;
    let (mut relay, shutdown, runner) = h.run().await;
    // Reconciliation sees the message first; the notification comes later.
    h.sim.set_faults(FaultConfig {
        notification_delay_ms: 1_500,
        duplicate_rate: 1.0,
        ..FaultConfig::default()
    });
    let service_id = h.sim.seeded().users[SERVICE].clone();
    let (token, user) = h.bob();
    let posted = graph(&h.sim)
        .post_json(
            &h.messages_path,
            Bearer::User(&token, &user),
            &json!({
                "body": {"contentType": "html",
                         "content": "<p><at id=\"0\">Switchboard Relay</at> call Weekly sync</p>"},
                "mentions": [{"id": 0, "mentionText": "Switchboard Relay",
                              "mentioned": {"user": {"id": service_id,
                                                     "displayName": "Switchboard Relay",
                                                     "userIdentityType": "aadUser"}}}]
            }),
        )
        .await
        .expect("bob posts");
    let id = posted["id"].as_str().expect("id").to_owned();
    let is_request =
        |e: &switchboard_model::Inbound| matches!(e.kind, InboundKind::CallRequest { .. });
    let mut events = collect_until(
        &mut relay,
        |e| e.iter().any(is_request),
        Duration::from_secs(10),
    )
    .await;
    // The late notification came (its delta round finds nothing new).
    let counts = counts_when(&h.bridge, |c| c.notifications >= 1).await;
    assert!(
        counts.notifications >= 1,
        "both paths saw the message: {counts:?}"
    );
    // An edit of the command: no second request, no edit relayed.
    graph(&h.sim)
        .patch_json(
            &format!("{}/{id}", h.messages_path),
            Bearer::User(&token, &user),
            &json!({"body": {"contentType": "html",
                             "content": "<p><at id=\"0\">Switchboard Relay</at> call Renamed</p>"},
                    "mentions": posted["mentions"].clone()}),
        )
        .await
        .expect("bob edits");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = h.bob_posts("", "an ordinary message").await;
    events.extend(
        collect_until(
            &mut relay,
            |e| message_ids(e).contains(&after),
            Duration::from_secs(10),
        )
        .await,
    );
    let requests: Vec<&switchboard_model::Inbound> =
        events.iter().filter(|e| is_request(e)).collect();
    assert_eq!(requests.len(), 1, "{events:?}");
    assert_eq!(
        requests[0].kind,
        InboundKind::CallRequest {
            title: Some("Weekly sync".into())
        }
    );
    assert_eq!(requests[0].sender.person.user.as_str(), user);
    assert!(!requests[0].sender.is_ours);
    assert_eq!(requests[0].origin.channel, h.channel);
    assert_eq!(
        events.len(),
        2,
        "the request and the ordinary message only: {events:?}"
    );
    assert_eq!(message_ids(&events), vec![after]);
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

#[tokio::test]
async fn subscriptions_are_renewed_before_they_expire() {
    let h = Harness::start(Settings {
        lifetime: Duration::from_secs(6),
        renew_before: Duration::from_secs(4),
        ..Settings::default()
    })
    .await;
    let (mut relay, shutdown, runner) = h.run().await;
    let first = h.our_subscriptions();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let later = h.our_subscriptions();
    assert_eq!(later.len(), 1, "still subscribed after the first lifetime");
    assert_eq!(later[0]["id"], first[0]["id"], "renewed, not recreated");
    assert_ne!(
        later[0]["expirationDateTime"],
        first[0]["expirationDateTime"]
    );
    let counts = h.bridge.inbound_counts();
    assert!(counts.subscriptions_renewed >= 1, "{counts:?}");
    // The channel's and the service account's chats', each once.
    assert_eq!(counts.subscriptions_created, 2);
    assert_eq!(h.direct_subscriptions().len(), 1);
    // And it still works.
    let id = h.bob_posts("", "after renewal").await;
    let events = collect_until(
        &mut relay,
        |e| !message_ids(e).is_empty(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(message_ids(&events), vec![id]);
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

#[tokio::test]
async fn a_removed_subscription_is_recreated_and_what_was_missed_arrives() {
    let h = Harness::start(Settings::default()).await;
    let (mut relay, shutdown, runner) = h.run().await;
    let sub = h.our_subscriptions()[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Graph removes the subscription: a message posted now is not notified.
    h.sim
        .trigger_lifecycle(&sub, "subscriptionRemoved")
        .await
        .expect("lifecycle");
    let id = h.bob_posts("", "while unsubscribed").await;
    let events = collect_until(
        &mut relay,
        |e| !message_ids(e).is_empty(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(message_ids(&events), vec![id]);
    let subs = h.our_subscriptions();
    assert_eq!(subs.len(), 1, "recreated");
    assert_ne!(subs[0]["id"].as_str(), Some(sub.as_str()));
    let counts = counts_when(&h.bridge, |c| c.resyncs >= 1).await;
    assert_eq!(counts.subscriptions_recreated, 1, "{counts:?}");
    assert!(counts.resyncs >= 1, "{counts:?}");
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

#[tokio::test]
async fn a_missed_lifecycle_event_triggers_a_catch_up_and_reauthorization_keeps_it() {
    let h = Harness::start(Settings::default()).await;
    let (mut relay, shutdown, runner) = h.run().await;
    let sub = h.our_subscriptions()[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Every notification is lost; only the catch-up can find the message.
    h.sim.set_faults(FaultConfig {
        drop_rate: 1.0,
        ..FaultConfig::default()
    });
    let id = h.bob_posts("", "lost notification").await;
    let quiet = collect_until(&mut relay, |_| false, Duration::from_millis(800)).await;
    assert!(quiet.is_empty(), "not notified: {quiet:?}");
    h.sim.set_faults(FaultConfig::default());
    h.sim
        .trigger_lifecycle(&sub, "missed")
        .await
        .expect("lifecycle");
    let events = collect_until(
        &mut relay,
        |e| !message_ids(e).is_empty(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(message_ids(&events), vec![id]);
    let counts = counts_when(&h.bridge, |c| c.events_by_reconcile >= 1).await;
    assert_eq!(counts.events_by_reconcile, 1, "{counts:?}");

    let before = h.bridge.inbound_counts().subscriptions_renewed;
    h.sim
        .trigger_lifecycle(&sub, "reauthorizationRequired")
        .await
        .expect("lifecycle");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.bridge.inbound_counts().subscriptions_renewed == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reauthorized in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.our_subscriptions()[0]["id"].as_str(), Some(sub.as_str()));
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

#[tokio::test]
async fn a_restart_reuses_the_subscription() {
    let h = Harness::start(Settings::default()).await;
    let (_relay, shutdown, runner) = h.run().await;
    let sub = h.our_subscriptions()[0]["id"].clone();
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
    let (mut relay, shutdown, runner) = h.run().await;
    assert_eq!(h.our_subscriptions().len(), 1);
    assert_eq!(
        h.our_subscriptions()[0]["id"],
        sub,
        "the stored one is reused"
    );
    let id = h.bob_posts("", "after restart").await;
    let events = collect_until(
        &mut relay,
        |e| !message_ids(e).is_empty(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(message_ids(&events), vec![id]);
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

/// Group chats: subscribed per chat, and read back by reconciliation when
/// every notification is lost; chat history from before is not replayed.
#[tokio::test]
async fn chats_arrive_by_notification_and_by_reconciliation() {
    let h = Harness::start(Settings {
        reconcile: Duration::from_millis(500),
        ..Settings::default()
    })
    .await;
    let chat = h
        .sim
        .add_chat(&switchboard_teams_sim::seed::ChatSeed {
            id: None,
            name: None,
            chat_type: Some("group".into()),
            topic: Some("Ops".into()),
            members: vec![SERVICE.into(), BOB.into()],
        })
        .expect("chat");
    let chat_channel = ChannelId::new(chat.clone());
    let bob_chats = |text: String| {
        let (token, user) = h.bob();
        let chat = chat.clone();
        let sim = &h.sim;
        async move {
            graph(sim)
                .post_json(
                    &format!("/chats/{chat}/messages"),
                    Bearer::User(&token, &user),
                    &json!({ "body": { "contentType": "html", "content": format!("<p>{text}</p>") } }),
                )
                .await
                .expect("bob chats")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        }
    };
    bob_chats("history".into()).await;
    let (mut relay, shutdown, runner) = h.run_on(vec![chat_channel.clone()]).await;
    let subs = h.our_subscriptions();
    assert_eq!(subs.len(), 2, "the configured channel and the chat");
    assert!(
        subs.iter()
            .any(|s| s["resource"] == format!("/chats/{chat}/messages")),
        "{subs:?}"
    );

    let first = bob_chats("by notification".into()).await;
    let events = collect_until(
        &mut relay,
        |e| !message_ids(e).is_empty(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(message_ids(&events), vec![first]);
    assert_eq!(events[0].origin.channel, chat_channel);

    h.sim.set_faults(FaultConfig {
        drop_rate: 1.0,
        ..FaultConfig::default()
    });
    let second = bob_chats("by reconciliation".into()).await;
    let mut events = collect_until(
        &mut relay,
        |e| !message_ids(e).is_empty(),
        Duration::from_secs(10),
    )
    .await;
    events.extend(collect_until(&mut relay, |_| false, Duration::from_millis(1500)).await);
    assert_eq!(message_ids(&events), vec![second], "once, and no history");
    let counts = counts_when(&h.bridge, |c| c.events_by_reconcile >= 1).await;
    assert_eq!(counts.events_by_reconcile, 1, "{counts:?}");
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

/// With a key, Graph sends the changed message encrypted to our
/// certificate: it is decrypted and relayed without reading it back.
#[tokio::test]
async fn rich_notifications_are_decrypted_without_a_read() {
    let h = Harness::start(Settings {
        rich: true,
        ..Settings::default()
    })
    .await;
    let (mut relay, shutdown, runner) = h.run().await;
    let subs = h.our_subscriptions();
    assert_eq!(subs[0]["includeResourceData"], true, "{subs:?}");
    let id = h.bob_posts("", "sealed for us").await;
    let events = collect_until(
        &mut relay,
        |e| !message_ids(e).is_empty(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(message_ids(&events), vec![id]);
    let InboundKind::Message { message, .. } = &events[0].kind else {
        unreachable!()
    };
    assert_eq!(message.body.to_plain(), "sealed for us");
    let counts = counts_when(&h.bridge, |c| c.rich >= 1).await;
    assert_eq!(counts.rich, 1, "{counts:?}");
    assert_eq!(counts.fetch_failures, 0);
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

/// The next event the bridge hands to the relay, not yet acknowledged.
async fn next_envelope(relay: &mut mpsc::Receiver<InboundEnvelope>) -> InboundEnvelope {
    tokio::time::timeout(Duration::from_secs(10), relay.recv())
        .await
        .expect("an event in time")
        .expect("the bridge runs")
}

/// Bob posts `n` roots while the relay holds back the acknowledgement of the
/// first one, so that the others come in one delta round. Returns their ids
/// and that first envelope, not acknowledged.
async fn burst_behind_a_held_event(
    h: &Harness,
    relay: &mut mpsc::Receiver<InboundEnvelope>,
    n: usize,
) -> (Vec<String>, InboundEnvelope) {
    let mut posted = vec![h.bob_posts("", "burst 0").await];
    let held = next_envelope(relay).await;
    for i in 1..n {
        posted.push(h.bob_posts("", &format!("burst {i}")).await);
    }
    (posted, held)
}

#[tokio::test]
async fn a_burst_is_handed_over_several_at_once_and_arrives_in_order() {
    const N: usize = 20;
    let h = Harness::start(Settings::default()).await;
    let (mut relay, shutdown, runner) = h.run().await;
    let (posted, (first, ack)) = burst_behind_a_held_event(&h, &mut relay, N).await;
    let mut got = message_ids(&[first]);
    let _ = ack.send(Ok(()));
    // The rest come in one round: handed over without waiting for each to
    // be stored.
    let mut unacknowledged = Vec::new();
    while unacknowledged.len() < N - 1 {
        let (event, ack) = next_envelope(&mut relay).await;
        got.extend(message_ids(&[event]));
        unacknowledged.push(ack);
    }
    for ack in unacknowledged {
        let _ = ack.send(Ok(()));
    }
    assert_eq!(got, posted, "every message once, in the order posted");
    let counts = counts_when(&h.bridge, |c| c.events_by_notification >= N as u64).await;
    assert_eq!(counts.events_by_notification, N as u64, "{counts:?}");
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}

#[tokio::test]
async fn a_refused_event_and_those_after_it_are_read_again_and_nothing_is_lost() {
    const N: usize = 5;
    const REFUSED: usize = 2;
    let h = Harness::start(Settings::default()).await;
    let (mut relay, shutdown, runner) = h.run().await;
    let (posted, (first, ack)) = burst_behind_a_held_event(&h, &mut relay, N).await;
    let mut first_ids = vec![first.event.clone()];
    let _ = ack.send(Ok(()));
    // The round of the others: the third message is refused, those around
    // it are stored.
    for (i, id) in posted.iter().enumerate().skip(1) {
        let (event, ack) = next_envelope(&mut relay).await;
        assert_eq!(message_ids(std::slice::from_ref(&event)), vec![id.clone()]);
        first_ids.push(event.event.clone());
        let answer = if i == REFUSED {
            Err(switchboard_model::IntakeError::NotStored(
                "disk full".into(),
            ))
        } else {
            Ok(())
        };
        let _ = ack.send(answer);
    }
    // A later message: its round starts from the delta link before the
    // refused one, and brings it again, with what came after it.
    let later = h.bob_posts("", "after the refusal").await;
    let again = collect_until(
        &mut relay,
        |e| message_ids(e).contains(&later),
        Duration::from_secs(10),
    )
    .await;
    let mut expected: Vec<String> = posted[REFUSED..].to_vec();
    expected.push(later);
    assert_eq!(
        message_ids(&again),
        expected,
        "from the refused message on, in order; nothing stored before it again"
    );
    assert_eq!(
        again[..N - REFUSED]
            .iter()
            .map(|e| e.event.clone())
            .collect::<Vec<_>>(),
        first_ids[REFUSED..].to_vec(),
        "the same event ids, so that the relay drops what it stored already"
    );
    shutdown.cancel();
    runner.await.expect("joins").expect("stops cleanly");
}
