//! [`MatrixBridge`] against a real Synapse (the harness of feature
//! `testing`): the model's conformance suite, then what a Matrix user does
//! reaching the relay as the right inbound events, and what the relay asks
//! appearing in Matrix from the right ghost.
//!
//! The application-service endpoint is served by a tiny HTTP/1.1 server in
//! this file on a loopback port that the registration names.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchboard_matrix::config::{Token, default_ghost_templates};
use switchboard_matrix::registration::Registration;
use switchboard_matrix::testing::{MatrixUser, Synapse};
use switchboard_matrix::{MatrixBridge, MatrixConfig};
use switchboard_model::testing::{ConformanceHarness, NoMedia, run_conformance};
use switchboard_model::{
    Attachment, Bridge, BridgeContext, BridgeError, BridgeId, BridgeState, CallEvent, CallId,
    CallProvider, CallState, ChannelId, HttpEndpoint, HttpRequest, Inbound, InboundKind,
    InboundSink, MediaSource, Message, MessageId, OpId, Origin, OutboundKind, OutboundOp, Person,
    UserId,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

/// Serves `endpoint` on `listener`: HTTP/1.1, `Content-Length` bodies, keep-alive.
async fn serve(listener: TcpListener, endpoint: Arc<dyn HttpEndpoint>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(connection(stream, endpoint.clone()));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn connection(mut stream: TcpStream, endpoint: Arc<dyn HttpEndpoint>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let start = head_end + 4;
        while buf.len() < start + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[start..start + length].to_vec();
        buf.drain(..start + length);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let response = endpoint
            .handle(HttpRequest::new(method, path, query, headers, body))
            .await;
        let mut out = format!(
            "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
            response.status,
            response.body.len()
        );
        for (k, v) in &response.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&response.body);
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

fn token(label: &str) -> String {
    format!(
        "{label}_{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

fn config(synapse: &Synapse, as_token: &str, hs_token: &str, invite: Vec<String>) -> MatrixConfig {
    let mut ghost_templates = default_ghost_templates();
    ghost_templates.push(("conformance".into(), "conformance_{instance}_{user}".into()));
    MatrixConfig {
        id: BridgeId::new("matrix:test"),
        homeserver_url: synapse.base_url.clone(),
        server_name: synapse.server_name.clone(),
        appservice_id: "switchboard-test".into(),
        as_token: Token::new(as_token),
        hs_token: Token::new(hs_token),
        sender_localpart: "switchboard".into(),
        ghost_templates,
        alias_template: "switchboard_{name}".into(),
        invite,
        max_upload: 10 * 1024 * 1024,
        public_url: None,
    }
}

/// A Synapse with our registration, a person (alice), the bridge and its
/// endpoint served.
struct Setup {
    synapse: Synapse,
    bridge: Arc<MatrixBridge>,
    alice: MatrixUser,
    hs_token: String,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Setup {
        Setup::start_with(None).await
    }

    /// As [`Setup::start`], but nothing answers at the registration's URL:
    /// the homeserver can push no transaction at all.
    async fn start_unreachable() -> Setup {
        Setup::start_serving(None, false).await
    }

    /// As [`Setup::start`], with the bridge's `public_url` set to
    /// `public_url`; only the application-service endpoint is served over
    /// HTTP (tests call the others directly).
    async fn start_with(public_url: Option<String>) -> Setup {
        Setup::start_serving(public_url, true).await
    }

    async fn start_serving(public_url: Option<String>, serve_endpoint: bool) -> Setup {
        let dir = tempfile::tempdir().expect("temporary directory");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let as_token = token("as");
        let hs_token = token("hs");
        let path: PathBuf = dir.path().join("registration.yaml");

        // Synapse picks its port (and so its server name) when it starts:
        // start it with a stand-in registration, then write the real one and
        // restart it.
        let mut stand_in = Registration::for_config(
            &MatrixConfig {
                server_name: "stand-in.invalid".into(),
                ..config_without_synapse(&as_token, &hs_token)
            },
            &url,
        );
        stand_in.url = url.clone();
        std::fs::write(&path, stand_in.to_yaml()).expect("write the registration");
        let mut synapse = Synapse::start_async(std::slice::from_ref(&path))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need Synapse (python3 with venv: {}): {e}",
                    Synapse::available()
                )
            });
        let alice = synapse.user("alice").await.expect("register alice");
        let config = MatrixConfig {
            public_url: public_url.clone(),
            ..config(&synapse, &as_token, &hs_token, vec![alice.user_id.clone()])
        };
        let registration = Registration::for_config(&config, &url);
        std::fs::write(&path, registration.to_yaml()).expect("write the registration");
        assert_eq!(
            Registration::from_yaml(&std::fs::read_to_string(&path).expect("read"))
                .expect("parses"),
            registration
        );
        synapse.restart_async().await.expect("restart Synapse");

        let bridge = MatrixBridge::new(config, url);
        let endpoints = bridge.http_endpoints();
        assert_eq!(endpoints.len(), 1 + usize::from(public_url.is_some()));
        if serve_endpoint {
            tokio::spawn(serve(listener, endpoints[0].1.clone()));
        } else {
            drop(listener);
        }
        Setup {
            synapse,
            bridge,
            alice,
            hs_token,
            _dir: dir,
        }
    }

    /// Runs the bridge with a context whose events arrive on the returned
    /// receiver (acknowledged as stored at once).
    async fn run(
        &self,
        channels: Vec<ChannelId>,
    ) -> (CancellationToken, mpsc::UnboundedReceiver<Inbound>) {
        let (sink, mut relay) = InboundSink::channel(256);
        let shutdown = CancellationToken::new();
        let (state_tx, mut state) = watch::channel(BridgeState::Connecting);
        let (channels_tx, channels_rx) = watch::channel(channels);
        let ctx = BridgeContext::new(sink, shutdown.clone(), state_tx).with_channels(channels_rx);
        // Keep the sender alive as long as the run.
        let keep = shutdown.clone();
        tokio::spawn(async move {
            keep.cancelled().await;
            drop(channels_tx);
        });
        let bridge = self.bridge.clone();
        tokio::spawn(async move { bridge.run(ctx).await });
        tokio::time::timeout(WAIT, state.wait_for(|s| *s == BridgeState::Connected))
            .await
            .expect("Connected in time")
            .expect("run is alive");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some((event, ack)) = relay.recv().await {
                let _: Result<(), _> = ack.send(Ok(()));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        (shutdown, rx)
    }

    async fn room(&self, channel: &ChannelId) -> String {
        self.bridge
            .room_for(channel)
            .await
            .expect("the portal room")
    }

    /// GET on the client-server API as alice.
    async fn get_as_alice(&self, path: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.synapse.base_url))
            .bearer_auth(&self.alice.token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON")
    }
}

fn config_without_synapse(as_token: &str, hs_token: &str) -> MatrixConfig {
    MatrixConfig {
        id: BridgeId::new("matrix:test"),
        homeserver_url: "http://127.0.0.1:9".into(),
        server_name: "stand-in.invalid".into(),
        appservice_id: "switchboard-test".into(),
        as_token: Token::new(as_token),
        hs_token: Token::new(hs_token),
        sender_localpart: "switchboard".into(),
        ghost_templates: default_ghost_templates(),
        alias_template: "switchboard_{name}".into(),
        invite: Vec::new(),
        max_upload: 0,
        public_url: None,
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The next inbound event, skipping none.
async fn next(rx: &mut mpsc::UnboundedReceiver<Inbound>) -> Inbound {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an inbound event in time")
        .expect("the relay side is open")
}

struct Harness {
    setup: Setup,
    channel: ChannelId,
}

#[async_trait]
impl ConformanceHarness for Harness {
    fn bridge(&self) -> Arc<dyn Bridge> {
        self.setup.bridge.clone()
    }

    fn channel(&self) -> ChannelId {
        self.channel.clone()
    }

    fn missing_channel(&self) -> ChannelId {
        ChannelId::new(format!("!doesnotexist:{}", self.setup.synapse.server_name))
    }

    async fn post_as_person(&self, channel: &ChannelId, text: &str) {
        let room = self.setup.room(channel).await;
        self.setup.alice.join(&room).await.expect("alice joins");
        self.setup
            .alice
            .send_text(&room, text)
            .await
            .expect("alice posts");
    }

    async fn message_text(&self, channel: &ChannelId, id: &MessageId) -> Option<String> {
        let room = self.setup.room(channel).await;
        self.setup.alice.join(&room).await.expect("alice joins");
        let event = self.setup.alice.event(&room, id.as_str()).await.ok()?;
        let mut body = event["content"]["body"].as_str()?.to_owned();
        // The newest edit, if any.
        let edits = self
            .setup
            .get_as_alice(&format!(
                "/_matrix/client/v1/rooms/{}/relations/{}/m.replace?dir=b&limit=1",
                enc(&room),
                enc(id.as_str())
            ))
            .await;
        if let Some(new) = edits["chunk"][0]["content"]["m.new_content"]["body"].as_str() {
            body = new.to_owned();
        }
        Some(body)
    }

    async fn message_count(&self, channel: &ChannelId) -> usize {
        let room = self.setup.room(channel).await;
        self.setup.alice.join(&room).await.expect("alice joins");
        let events = self.setup.alice.messages(&room).await.expect("messages");
        events
            .iter()
            .filter(|e| e["type"] == "m.room.message")
            .filter(|e| e["content"]["body"].is_string())
            .filter(|e| e["content"]["m.relates_to"]["rel_type"] != "m.replace")
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_synapse() {
    let setup = Setup::start().await;
    setup.bridge.health_check().await.expect("health check");
    // A run in the background from the start, so the homeserver's pushes
    // are answered (and it does not back off) while the suite delivers; the
    // suite's own run takes the endpoint over for its inbound check.
    let (background, _events) = setup.run(Vec::new()).await;
    let channel = ChannelId::new(format!(
        "#switchboard_conformance:{}",
        setup.synapse.server_name
    ));
    let harness = Harness { setup, channel };
    run_conformance(&harness).await;
    background.cancel();
}

/// Serves one file for outbound attachments.
struct OneFile(Vec<u8>);

#[async_trait]
impl MediaSource for OneFile {
    async fn fetch(&self, _: &BridgeId, _: &Attachment) -> Result<Vec<u8>, BridgeError> {
        Ok(self.0.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_user_and_the_relay_talk_through_the_bridge() {
    let setup = Setup::start().await;
    let server = setup.synapse.server_name.clone();
    let channel = ChannelId::new(format!("#switchboard_general:{server}"));
    let queried = ChannelId::new(format!("#switchboard_queried:{server}"));
    // Both portals are configured: `run` sets them up, and a person joining
    // one by alias makes the homeserver ask us about it (whichever comes
    // first creates it, once).
    let (shutdown, mut rx) = setup.run(vec![channel.clone(), queried.clone()]).await;
    let alice = &setup.alice;
    let mut joined = None;
    for _ in 0..50 {
        match alice.join(queried.as_str()).await {
            Ok(room) => {
                joined = Some(room);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let joined = joined.expect("alice joins a configured portal by its alias");
    assert_eq!(setup.room(&queried).await, joined);
    let room = setup.room(&channel).await;
    alice.join(&room).await.expect("alice joins the portal");
    let origin = Origin::new("matrix:test", channel.as_str());

    // Inbound: message, edit, reply, thread reply, reaction and its removal,
    // redaction, image.
    let first = alice.send_text(&room, "first").await.expect("send");
    let got = next(&mut rx).await;
    assert_eq!(got.origin, origin);
    assert_eq!(got.event.as_str(), first);
    assert_eq!(got.sender.person.user.as_str(), alice.user_id);
    assert!(!got.sender.is_ours);
    match &got.kind {
        InboundKind::Message { id, message } => {
            assert_eq!(id.as_str(), first);
            assert_eq!(message.body.to_plain(), "first");
        }
        other => panic!("expected a message, got {other:?}"),
    }

    alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "* first!",
                   "m.new_content": {"msgtype": "m.text", "body": "first!"},
                   "m.relates_to": {"rel_type": "m.replace", "event_id": first}}),
        )
        .await
        .expect("edit");
    match next(&mut rx).await.kind {
        InboundKind::Edit { target, message } => {
            assert_eq!(target.as_str(), first);
            assert_eq!(message.body.to_plain(), "first!");
        }
        other => panic!("expected an edit, got {other:?}"),
    }

    alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "a reply",
                   "m.relates_to": {"m.in_reply_to": {"event_id": first}}}),
        )
        .await
        .expect("reply");
    match next(&mut rx).await.kind {
        InboundKind::Message { message, .. } => {
            assert_eq!(message.reply_to, Some(MessageId::new(first.clone())));
            assert_eq!(message.body.to_plain(), "a reply");
        }
        other => panic!("expected a reply, got {other:?}"),
    }

    alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "in the thread",
                   "m.relates_to": {"rel_type": "m.thread", "event_id": first,
                                    "is_falling_back": true,
                                    "m.in_reply_to": {"event_id": first}}}),
        )
        .await
        .expect("thread reply");
    match next(&mut rx).await.kind {
        InboundKind::Message { message, .. } => {
            assert_eq!(message.thread_root, Some(MessageId::new(first.clone())));
            assert_eq!(message.reply_to, None);
        }
        other => panic!("expected a thread message, got {other:?}"),
    }

    let reaction = alice.react(&room, &first, "👍").await.expect("react");
    assert_eq!(
        next(&mut rx).await.kind,
        InboundKind::Reaction {
            target: MessageId::new(first.clone()),
            key: "👍".into(),
            added: true
        }
    );
    alice.redact(&room, &reaction, None).await.expect("unreact");
    assert_eq!(
        next(&mut rx).await.kind,
        InboundKind::Reaction {
            target: MessageId::new(first.clone()),
            key: "👍".into(),
            added: false
        }
    );
    alice.redact(&room, &first, None).await.expect("delete");
    assert_eq!(
        next(&mut rx).await.kind,
        InboundKind::Delete {
            target: MessageId::new(first.clone())
        }
    );

    let png = b"\x89PNG\r\n\x1a\nnot really a png".to_vec();
    let mxc = alice
        .upload(png.clone(), "image/png")
        .await
        .expect("upload");
    alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.image", "body": "cat.png", "url": mxc,
                   "info": {"mimetype": "image/png", "size": png.len()}}),
        )
        .await
        .expect("image");
    let attachment = match next(&mut rx).await.kind {
        InboundKind::Message { message, .. } => {
            assert_eq!(message.attachments.len(), 1);
            message.attachments[0].clone()
        }
        other => panic!("expected an image, got {other:?}"),
    };
    assert_eq!(attachment.url, mxc);
    assert_eq!(attachment.name, "cat.png");
    assert_eq!(attachment.mime, "image/png");
    assert_eq!(attachment.size, Some(png.len() as u64));
    assert_eq!(
        setup
            .bridge
            .fetch_media(&attachment)
            .await
            .expect("download"),
        png
    );

    // Outbound: a Slack person's message, reply and image appear from their
    // ghost with their name; the ghost's echoes never come back inbound.
    let person = Person::new(
        BridgeId::new("slack:acme"),
        UserId::new("U0ALICE"),
        "Alice Slack",
    );
    let puppet = setup
        .bridge
        .ensure_puppet(&person)
        .await
        .expect("ensure_puppet");
    let ghost = format!("@slack_acme_u0alice:{}", setup.synapse.server_name);
    assert_eq!(puppet.user.as_str(), ghost);
    assert_eq!(puppet.display_name, "Alice Slack (Slack)");
    let op = |name: &str, kind| {
        OutboundOp::on_behalf(
            OpId::new(format!("scenario-{name}")),
            channel.clone(),
            Origin::new("slack:acme", "C1"),
            person.clone(),
            Some(puppet.clone()),
            kind,
        )
    };
    let sent = setup
        .bridge
        .deliver(
            &op(
                "hello",
                OutboundKind::Send {
                    message: Message::text("hello from slack"),
                },
            ),
            &NoMedia,
        )
        .await
        .expect("send");
    let hello = sent.ids[0].as_str().to_owned();
    let event = alice.event(&room, &hello).await.expect("the event");
    assert_eq!(event["sender"], ghost.as_str());
    assert_eq!(event["content"]["body"], "hello from slack");
    let profile = setup
        .get_as_alice(&format!("/_matrix/client/v3/profile/{}", enc(&ghost)))
        .await;
    assert_eq!(profile["displayname"], "Alice Slack (Slack)");

    // A restarted bridge (nothing in memory) delivering the same op again:
    // the transaction id makes the homeserver hand back the same event.
    let restarted = MatrixBridge::new(
        setup.bridge.config().clone(),
        "http://127.0.0.1:9".to_owned(),
    );
    let again = restarted
        .deliver(
            &op(
                "hello",
                OutboundKind::Send {
                    message: Message::text("hello from slack"),
                },
            ),
            &NoMedia,
        )
        .await
        .expect("send again");
    assert_eq!(again, sent, "a replayed op must not post twice");

    let replied = setup
        .bridge
        .deliver(
            &op(
                "reply",
                OutboundKind::Send {
                    message: Message::text("a thread answer")
                        .in_thread(MessageId::new(hello.clone())),
                },
            ),
            &NoMedia,
        )
        .await
        .expect("thread reply");
    let event = alice
        .event(&room, replied.ids[0].as_str())
        .await
        .expect("the event");
    assert_eq!(event["content"]["m.relates_to"]["rel_type"], "m.thread");
    assert_eq!(event["content"]["m.relates_to"]["event_id"], hello.as_str());

    let file = setup
        .bridge
        .deliver(
            &op(
                "file",
                OutboundKind::Send {
                    message: Message::text("").with_attachment(
                        Attachment::new("F1", "photo.png", "image/png", "slack://F1")
                            .with_size(png.len() as u64),
                    ),
                },
            ),
            &OneFile(png.clone()),
        )
        .await
        .expect("file");
    assert_eq!(file.ids.len(), 1);
    let event = alice
        .event(&room, file.ids[0].as_str())
        .await
        .expect("the event");
    assert_eq!(event["sender"], ghost.as_str());
    assert_eq!(event["content"]["msgtype"], "m.image");
    assert_eq!(event["content"]["body"], "photo.png");

    // A marker from alice: everything before it (the ghost's echoes) was dropped.
    let marker = alice.send_text(&room, "marker").await.expect("send");
    let got = next(&mut rx).await;
    assert_eq!(
        got.event.as_str(),
        marker,
        "a ghost's echo reached the relay: {got:?}"
    );
    shutdown.cancel();
}

/// `PUT /rooms/{room}/state/{type}/{key}` with `token`; the event id.
async fn put_state(
    synapse: &Synapse,
    token: &str,
    room: &str,
    kind: &str,
    key: &str,
    content: &Value,
) -> String {
    let answer: Value = reqwest::Client::new()
        .put(format!(
            "{}/_matrix/client/v3/rooms/{}/state/{}/{}",
            synapse.base_url,
            enc(room),
            enc(kind),
            enc(key)
        ))
        .bearer_auth(token)
        .json(content)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    answer["event_id"]
        .as_str()
        .unwrap_or_else(|| panic!("state not set: {answer}"))
        .to_owned()
}

fn call_of(inbound: &Inbound) -> &CallEvent {
    match &inbound.kind {
        InboundKind::Call(call) => call,
        other => panic!("expected a call, got {other:?}"),
    }
}

/// The next inbound event not seen before (the relay drops repeats by
/// event id; this stand-in relay does not).
async fn next_new(
    rx: &mut mpsc::UnboundedReceiver<Inbound>,
    seen: &mut std::collections::HashSet<String>,
    wait: Duration,
) -> Inbound {
    loop {
        let got = tokio::time::timeout(wait, rx.recv())
            .await
            .expect("an inbound event in time")
            .expect("the relay side is open");
        if seen.insert(got.event.as_str().to_owned()) {
            return got;
        }
    }
}

/// Events the homeserver never pushes (here: it cannot reach the bridge at
/// all; with Synapse, also a transaction stranded when its recovery ends)
/// reach the relay all the same, in order: a transaction arriving after a
/// start is preceded by the events before it that were never pushed, and
/// the sweeps of the portal rooms find the rest. The bridge's own events
/// are never handed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_never_pushed_reach_the_relay_in_order() {
    let setup = Setup::start_unreachable().await;
    let server = setup.synapse.server_name.clone();
    let channel = ChannelId::new(format!("#switchboard_general:{server}"));
    let (shutdown, mut rx) = setup.run(vec![channel.clone()]).await;
    let room = setup.room(&channel).await;
    let alice = &setup.alice;
    alice.join(&room).await.expect("alice joins the portal");
    let first = alice
        .send_text(&room, "never pushed 1")
        .await
        .expect("send");
    let second = alice
        .send_text(&room, "never pushed 2")
        .await
        .expect("send");
    let third = alice.send_text(&room, "pushed 3").await.expect("send");

    // The homeserver pushes only the third (as after a stranded transaction).
    let mut event = alice.event(&room, &third).await.expect("the event");
    event["room_id"] = json!(room);
    let body = serde_json::to_vec(&json!({ "events": [event] })).expect("JSON");
    let endpoints = setup.bridge.http_endpoints();
    let response = endpoints[0]
        .1
        .handle(HttpRequest::new(
            "PUT",
            "/_matrix/app/v1/transactions/7",
            "",
            vec![(
                "authorization".to_owned(),
                format!("Bearer {}", setup.hs_token),
            )],
            body,
        ))
        .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let mut seen = std::collections::HashSet::new();
    let got = next_new(&mut rx, &mut seen, WAIT).await;
    assert_eq!(got.event.as_str(), first);
    assert!(
        matches!(&got.kind, InboundKind::Message { message, .. } if message.body.to_plain() == "never pushed 1"),
        "{got:?}"
    );
    assert_eq!(
        next_new(&mut rx, &mut seen, WAIT).await.event.as_str(),
        second
    );
    assert_eq!(
        next_new(&mut rx, &mut seen, WAIT).await.event.as_str(),
        third
    );

    // Never pushed, and no transaction after it: a sweep finds it (the
    // first or, if that ran already, the second).
    let reaction = alice
        .send_event(
            &room,
            "m.reaction",
            json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "👍"}}),
        )
        .await
        .expect("react");
    let got = next_new(&mut rx, &mut seen, Duration::from_secs(45)).await;
    assert_eq!(got.event.as_str(), reaction);
    assert!(
        matches!(got.kind, InboundKind::Reaction { added: true, .. }),
        "{got:?}"
    );
    // The room's other events (its creation, the bridge's own) are never
    // handed over.
    while let Ok(Some(got)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
        assert!(seen.contains(got.event.as_str()), "only repeats: {got:?}");
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_the_bridge() {
    let setup = Setup::start().await;
    let server = setup.synapse.server_name.clone();
    let channel = ChannelId::new(format!("#switchboard_calls:{server}"));
    let (shutdown, mut rx) = setup.run(vec![channel.clone()]).await;
    let room = setup.room(&channel).await;
    let alice = &setup.alice;
    alice.join(&room).await.expect("alice joins the portal");

    // The bot (creator, 100) lets alice manage widgets (state events need 50).
    let as_token = setup.bridge.config().as_token.expose().to_owned();
    let mut levels = setup
        .get_as_alice(&format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.power_levels/",
            enc(&room)
        ))
        .await;
    levels["users"][alice.user_id.as_str()] = json!(50);
    put_state(
        &setup.synapse,
        &as_token,
        &room,
        "m.room.power_levels",
        "",
        &levels,
    )
    .await;

    // Inbound: alice adds a Jitsi widget, then removes it.
    let key = format!("jitsi_{}_1700000000000", alice.user_id);
    let added = put_state(
        &setup.synapse,
        &alice.token,
        &room,
        "im.vector.modular.widgets",
        &key,
        &json!({
            "type": "jitsi",
            "url": "https://app.element.io/jitsi.html#conferenceDomain=$domain&conferenceId=$conferenceId&displayName=$matrix_display_name&userId=$matrix_user_id",
            "name": "Team call",
            "data": {"domain": "meet.example.org", "conferenceId": "SwitchboardTest", "isAudioOnly": false},
            "creatorUserId": alice.user_id,
            "id": key,
        }),
    )
    .await;
    let got = next(&mut rx).await;
    assert_eq!(got.event.as_str(), added);
    assert_eq!(got.origin, Origin::new("matrix:test", channel.as_str()));
    let started = call_of(&got).clone();
    assert_eq!(started.state, CallState::Started);
    assert_eq!(started.provider, CallProvider::Jitsi);
    assert_eq!(
        started.join_url.as_deref(),
        Some("https://meet.example.org/SwitchboardTest")
    );
    assert_eq!(started.title.as_deref(), Some("Team call"));
    assert_eq!(
        started.started_by.as_ref().map(|p| p.user.as_str()),
        Some(alice.user_id.as_str())
    );
    assert_eq!(started.call.as_str(), format!("matrix:{room}/widget/{key}"));

    let removed = put_state(
        &setup.synapse,
        &alice.token,
        &room,
        "im.vector.modular.widgets",
        &key,
        &json!({}),
    )
    .await;
    let got = next(&mut rx).await;
    assert_eq!(got.event.as_str(), removed);
    let ended = call_of(&got);
    assert_eq!(ended.call, started.call);
    assert!(
        matches!(ended.state, CallState::Ended { duration: Some(_) }),
        "{ended:?}"
    );

    // Outbound: a Slack huddle appears as a widget and a notice, both from the bot.
    let person = Person::new(BridgeId::new("slack:acme"), UserId::new("U0ANN"), "Ann");
    let puppet = setup
        .bridge
        .ensure_puppet(&person)
        .await
        .expect("ensure_puppet");
    assert!(setup.bridge.capabilities().native_calls);
    let huddle = |state| {
        let mut event = CallEvent::new(
            CallId::new("slack-huddle:R0TEST"),
            CallProvider::SlackHuddle,
            state,
        )
        .with_join_url("https://app.slack.com/huddle/T1/C1");
        event.started_by = Some(person.clone());
        event
    };
    let op = |name: &str, event: CallEvent, invite: Vec<MessageId>| {
        OutboundOp::on_behalf(
            OpId::new(format!("calls-{name}")),
            channel.clone(),
            Origin::new("slack:acme", "C1"),
            person.clone(),
            Some(puppet.clone()),
            OutboundKind::Call { event, invite },
        )
    };
    let start_op = op("start", huddle(CallState::Started), Vec::new());
    let delivered = setup
        .bridge
        .deliver(&start_op, &NoMedia)
        .await
        .expect("call started");
    assert_eq!(delivered.ids.len(), 1, "the notice is the invite");
    let notice_id = delivered.ids[0].clone();
    let bot = setup.bridge.bot().to_owned();
    let notice = alice
        .event(&room, notice_id.as_str())
        .await
        .expect("the notice");
    assert_eq!(notice["sender"], bot.as_str());
    assert_eq!(notice["content"]["msgtype"], "m.notice");
    assert_eq!(
        notice["content"]["body"],
        "📞 Ann started a Slack huddle — join: https://app.slack.com/huddle/T1/C1"
    );
    let widget_key = switchboard_matrix::calls::widget_key(&CallId::new("slack-huddle:R0TEST"));
    let widget_path = format!(
        "/_matrix/client/v3/rooms/{}/state/im.vector.modular.widgets/{}",
        enc(&room),
        enc(&widget_key)
    );
    let widget = setup.get_as_alice(&widget_path).await;
    assert_eq!(widget["type"], "m.custom");
    assert_eq!(widget["url"], "https://app.slack.com/huddle/T1/C1");
    assert_eq!(widget["name"], "Slack huddle by Ann");
    assert_eq!(widget["data"]["switchboard_call"], "slack-huddle:R0TEST");

    // Delivered again by a restarted bridge: nothing is posted twice.
    let restarted = MatrixBridge::new(
        setup.bridge.config().clone(),
        "http://127.0.0.1:9".to_owned(),
    );
    let again = restarted
        .deliver(&start_op, &NoMedia)
        .await
        .expect("started again");
    assert_eq!(again, delivered);

    // Participants edit the notice; the end edits it again and removes the widget.
    let mut update = huddle(CallState::Updated);
    update.participants = vec![
        person.clone(),
        Person::new(BridgeId::new("slack:acme"), UserId::new("U2"), "Bo"),
    ];
    let updated = setup
        .bridge
        .deliver(&op("update", update, vec![notice_id.clone()]), &NoMedia)
        .await
        .expect("updated");
    assert!(updated.ids.is_empty());
    let harness = Harness {
        setup,
        channel: channel.clone(),
    };
    assert_eq!(
        harness.message_text(&channel, &notice_id).await.as_deref(),
        Some(
            "📞 Ann started a Slack huddle — join: https://app.slack.com/huddle/T1/C1\nIn the call (2): Ann, Bo"
        )
    );
    let end = huddle(CallState::Ended {
        duration: Some(Duration::from_secs(245)),
    });
    harness
        .setup
        .bridge
        .deliver(&op("end", end, vec![notice_id.clone()]), &NoMedia)
        .await
        .expect("ended");
    assert_eq!(
        harness.message_text(&channel, &notice_id).await.as_deref(),
        Some("📞 Ann's Slack huddle ended after 4m 05s")
    );
    let widget = harness.setup.get_as_alice(&widget_path).await;
    assert_eq!(widget, json!({}), "the widget is removed");
    let edits = harness
        .setup
        .get_as_alice(&format!(
            "/_matrix/client/v1/rooms/{}/relations/{}/m.replace",
            enc(&room),
            enc(notice_id.as_str())
        ))
        .await;
    let editors: Vec<&str> = edits["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter_map(|e| e["sender"].as_str())
        .collect();
    assert_eq!(
        editors,
        vec![bot.as_str(), bot.as_str()],
        "edited by the bot, twice"
    );

    // None of the bot's widgets and notices came back inbound.
    let marker = harness
        .setup
        .alice
        .send_text(&room, "marker")
        .await
        .expect("send");
    let got = next(&mut rx).await;
    assert_eq!(
        got.event.as_str(),
        marker,
        "an echo reached the relay: {got:?}"
    );
    shutdown.cancel();
}

/// A long message as RichText: `paragraphs` paragraphs of about 270 bytes,
/// numbered, with formatting and a mention of `mentioned` (a Matrix user).
fn long_text(paragraphs: usize, mentioned: &str) -> switchboard_model::RichText {
    let mut b = switchboard_model::RichText::builder();
    for n in 0..paragraphs {
        b = b
            .text(format!("Paragraph {n}: "))
            .bold("important & <urgent>")
            .text(" — ")
            .mention(
                BridgeId::new("matrix:test"),
                UserId::new(mentioned),
                "Alice",
            )
            .text(" ".to_owned() + &"lorem ipsum dolor ".repeat(12))
            .paragraph();
    }
    b.build()
}

/// The paragraph numbers in `body`, in order.
fn paragraph_numbers(body: &str) -> Vec<usize> {
    body.split("Paragraph ")
        .skip(1)
        .filter_map(|rest| rest.split(':').next()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_message_is_split_edited_and_deleted_in_parts() {
    let setup = Setup::start().await;
    let server = setup.synapse.server_name.clone();
    let channel = ChannelId::new(format!("#switchboard_long:{server}"));
    let (shutdown, _rx) = setup.run(vec![channel.clone()]).await;
    let room = setup.room(&channel).await;
    let alice = &setup.alice;
    alice.join(&room).await.expect("alice joins the portal");
    let person = Person::new(
        BridgeId::new("slack:acme"),
        UserId::new("U0LONG"),
        "Long Talker",
    );
    let puppet = setup
        .bridge
        .ensure_puppet(&person)
        .await
        .expect("ensure_puppet");
    let ghost = puppet.user.as_str().to_owned();
    let op = |name: &str, kind| {
        OutboundOp::on_behalf(
            OpId::new(format!("long-{name}")),
            channel.clone(),
            Origin::new("slack:acme", "C1"),
            person.clone(),
            Some(puppet.clone()),
            kind,
        )
    };
    let ghost_messages = || async {
        alice
            .messages(&room)
            .await
            .expect("messages")
            .into_iter()
            .filter(|e| e["type"] == "m.room.message" && e["sender"] == ghost.as_str())
            .filter(|e| e["content"]["m.relates_to"]["rel_type"] != "m.replace")
            .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };

    // About 150 KB of text (twice that as body and HTML).
    let body = long_text(600, &alice.user_id);
    assert!(body.to_plain().len() > 150_000);
    let send = op(
        "send",
        OutboundKind::Send {
            message: Message::new(body.clone()),
        },
    );
    let sent = setup.bridge.deliver(&send, &NoMedia).await.expect("send");
    let count = sent.ids.len();
    assert!(count >= 4, "{count} parts");
    let mut numbers = Vec::new();
    for (i, id) in sent.ids.iter().enumerate() {
        let event = alice.event(&room, id.as_str()).await.expect("the part");
        assert_eq!(event["sender"], ghost.as_str(), "part {i} from the ghost");
        let text = event["content"]["body"].as_str().expect("a body");
        assert_eq!(text.ends_with("(continued…)"), i + 1 < count, "part {i}");
        assert!(
            serde_json::to_string(&event["content"])
                .expect("JSON")
                .len()
                <= 48_000
        );
        assert!(
            event["content"]["m.mentions"]["user_ids"][0] == alice.user_id.as_str(),
            "part {i} pings alice"
        );
        numbers.extend(paragraph_numbers(text));
    }
    assert_eq!(
        numbers,
        (0..600).collect::<Vec<_>>(),
        "every paragraph once, in order"
    );
    // In the room, the parts follow each other in order (newest first here).
    let mut in_room = ghost_messages().await;
    in_room.reverse();
    let ids: Vec<String> = sent.ids.iter().map(|id| id.as_str().to_owned()).collect();
    assert_eq!(in_room, ids);

    // A fresh bridge (nothing in memory) delivering the same op again posts
    // nothing new: every part has its own transaction id.
    let restarted = MatrixBridge::new(
        setup.bridge.config().clone(),
        "http://127.0.0.1:9".to_owned(),
    );
    let again = restarted
        .deliver(&send, &NoMedia)
        .await
        .expect("send again");
    assert_eq!(again, sent, "a replayed op must not post twice");
    assert_eq!(ghost_messages().await.len(), count);

    // Edited to about a third: the first parts are replaced, the rest redacted.
    let shorter = long_text(200, &alice.user_id);
    setup
        .bridge
        .deliver(
            &op(
                "edit",
                OutboundKind::Edit {
                    parts: sent.ids.clone(),
                    message: Message::new(shorter),
                },
            ),
            &NoMedia,
        )
        .await
        .expect("edit");
    let mut edited_numbers = Vec::new();
    let mut kept = 0;
    for (i, id) in sent.ids.iter().enumerate() {
        let event = alice.event(&room, id.as_str()).await.expect("the part");
        let redacted = event["content"].as_object().is_none_or(|c| c.is_empty());
        let edits = setup
            .get_as_alice(&format!(
                "/_matrix/client/v1/rooms/{}/relations/{}/m.replace?dir=b&limit=1",
                enc(&room),
                enc(id.as_str())
            ))
            .await;
        match edits["chunk"][0]["content"]["m.new_content"]["body"].as_str() {
            Some(new) if !redacted => {
                assert_eq!(kept, i, "edited parts come first");
                kept += 1;
                edited_numbers.extend(paragraph_numbers(new));
                let edit = &edits["chunk"][0];
                assert_eq!(edit["sender"], ghost.as_str());
                assert!(serde_json::to_string(&edit["content"]).expect("JSON").len() <= 48_000);
            }
            _ => assert!(redacted, "part {i} is neither edited nor redacted: {event}"),
        }
    }
    assert!(kept >= 1 && kept < count, "{kept} of {count} parts kept");
    assert_eq!(edited_numbers, (0..200).collect::<Vec<_>>());

    // Deleted: every part is redacted.
    setup
        .bridge
        .deliver(
            &op(
                "delete",
                OutboundKind::Delete {
                    parts: sent.ids.clone(),
                },
            ),
            &NoMedia,
        )
        .await
        .expect("delete");
    for id in &sent.ids {
        let event = alice.event(&room, id.as_str()).await.expect("the part");
        assert!(
            event["content"].as_object().is_none_or(|c| c.is_empty()),
            "{event}"
        );
    }
    shutdown.cancel();
}

/// A valid PNG of `size`×`size` RGB pixels (a gradient), with stored
/// (uncompressed) deflate blocks.
fn png(size: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_be_bytes());
        let mut typed = kind.to_vec();
        typed.extend_from_slice(data);
        out.extend_from_slice(&typed);
        out.extend_from_slice(&crc32(&typed).to_be_bytes());
    }
    let mut raw = Vec::new();
    for y in 0..size {
        raw.push(0); // filter: none
        for x in 0..size {
            raw.extend_from_slice(&[(x * 2) as u8, (y * 2) as u8, 0x80]);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = u16::try_from(block.len()).expect("a stored block");
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&size.to_be_bytes());
    ihdr.extend_from_slice(&size.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_avatars_are_served_from_authenticated_media_through_the_bridge() {
    let public_url = "https://switchboard.example.test";
    let setup = Setup::start_with(Some(public_url.to_owned())).await;
    let server = setup.synapse.server_name.clone();
    let channel = ChannelId::new(format!("#switchboard_avatars:{server}"));
    let (shutdown, mut rx) = setup.run(vec![channel.clone()]).await;
    let alice = &setup.alice;

    // Alice sets an avatar (freshly uploaded, so authenticated media only).
    let mxc = alice
        .upload(png(128), "image/png")
        .await
        .expect("upload the avatar");
    let (mxc_server, media_id) = mxc
        .strip_prefix("mxc://")
        .and_then(|rest| rest.split_once('/'))
        .expect("an mxc URI");
    let legacy = reqwest::Client::new()
        .get(format!(
            "{}/_matrix/media/v3/thumbnail/{}/{}?width=96&height=96&method=crop",
            setup.synapse.base_url,
            enc(mxc_server),
            enc(media_id)
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(
        legacy.status().as_u16(),
        404,
        "Synapse serves new media only with authentication"
    );
    let profile = reqwest::Client::new()
        .put(format!(
            "{}/_matrix/client/v3/profile/{}/avatar_url",
            setup.synapse.base_url,
            enc(&alice.user_id)
        ))
        .bearer_auth(&alice.token)
        .json(&json!({ "avatar_url": mxc }))
        .send()
        .await
        .expect("request");
    assert!(profile.status().is_success(), "set the avatar: {profile:?}");

    let room = setup.room(&channel).await;
    alice.join(&room).await.expect("alice joins the portal");
    let said = alice.send_text(&room, "hello").await.expect("send");
    let got = loop {
        let got = next(&mut rx).await;
        if got.event.as_str() == said {
            break got;
        }
    };
    let avatar = got
        .sender
        .person
        .avatar
        .clone()
        .expect("the inbound person has an avatar URL");
    let endpoint = setup
        .bridge
        .media_endpoint()
        .expect("the media endpoint")
        .clone();
    let prefix = format!("{public_url}{}", endpoint.prefix());
    assert_eq!(endpoint.prefix(), "/_matrix/app/media/");
    let rest = avatar
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{avatar} is under {prefix}"));
    let (path_tail, query) = rest.split_once('?').expect("a signature");
    assert_eq!(path_tail, format!("{}/{}", enc(mxc_server), enc(media_id)));
    assert!(query.starts_with("sig="), "{query}");
    assert!(
        !avatar.contains(&setup.synapse.base_url),
        "not the homeserver's URL"
    );

    // Through the endpoint: Synapse's authenticated thumbnail.
    let path = format!("{}{path_tail}", endpoint.prefix());
    let response = endpoint
        .handle(HttpRequest::new(
            "GET",
            &path,
            query,
            Vec::new(),
            Vec::new(),
        ))
        .await;
    assert_eq!(response.status, 200);
    let content_type = response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(content_type.starts_with("image/"), "{content_type}");
    assert!(
        response.body.starts_with(b"\x89PNG") || response.body.starts_with(b"\xFF\xD8"),
        "image bytes"
    );
    assert!(
        response
            .headers
            .iter()
            .any(|(k, v)| k == "cache-control" && v == "public, max-age=86400")
    );

    // A tampered signature, and a signature of other media: 404.
    let sig = query.strip_prefix("sig=").expect("sig");
    let flipped: String = sig
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == '0' { '1' } else { '0' }
            } else {
                c
            }
        })
        .collect();
    for query in [format!("sig={flipped}"), String::new()] {
        let response = endpoint
            .handle(HttpRequest::new(
                "GET",
                &path,
                &query,
                Vec::new(),
                Vec::new(),
            ))
            .await;
        assert_eq!(response.status, 404, "{query}");
        assert!(response.body.is_empty());
    }
    let other = format!(
        "{}{}/{}",
        endpoint.prefix(),
        enc(mxc_server),
        "SomethingElse"
    );
    let response = endpoint
        .handle(HttpRequest::new(
            "GET",
            &other,
            query,
            Vec::new(),
            Vec::new(),
        ))
        .await;
    assert_eq!(response.status, 404);
    shutdown.cancel();
}

/// Serves one PNG at any path, counting requests.
#[derive(Debug, Default)]
struct PictureServer {
    hits: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl HttpEndpoint for PictureServer {
    async fn handle(&self, _: switchboard_model::HttpRequest) -> switchboard_model::HttpResponse {
        self.hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut response =
            switchboard_model::HttpResponse::empty(200).with_header("content-type", "image/png");
        response.body = png(16);
        response
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_rooms_take_the_name_topic_and_avatar_of_the_channel() {
    let setup = Setup::start().await;
    let server = setup.synapse.server_name.clone();
    let channel = ChannelId::new(format!("#switchboard_named:{server}"));
    let (shutdown, _rx) = setup.run(vec![channel.clone()]).await;
    let room = setup.room(&channel).await;
    setup
        .alice
        .join(&room)
        .await
        .expect("alice joins the portal");

    let pictures = Arc::new(PictureServer::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let avatar_url = format!(
        "http://{}/channel.png",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(serve(listener, pictures.clone()));

    let info = switchboard_model::ChannelInfo {
        name: Some("Contoso / Launch".into()),
        topic: Some("Ship it on Friday".into()),
        avatar: Some(avatar_url.clone()),
    };
    let op = |id: &str| {
        OutboundOp::new(
            OpId::new(id),
            channel.clone(),
            OutboundKind::ChannelInfo { info: info.clone() },
        )
    };
    let state = |event_type: &'static str| {
        let setup = &setup;
        let room = room.clone();
        async move {
            setup
                .get_as_alice(&format!(
                    "/_matrix/client/v3/rooms/{}/state/{event_type}/",
                    enc(&room)
                ))
                .await
        }
    };
    let state_ids = || {
        let setup = &setup;
        let room = room.clone();
        async move {
            let all = setup
                .get_as_alice(&format!("/_matrix/client/v3/rooms/{}/state", enc(&room)))
                .await;
            let mut ids: Vec<(String, String)> = all
                .as_array()
                .expect("state events")
                .iter()
                .filter(|e| {
                    ["m.room.name", "m.room.topic", "m.room.avatar"]
                        .contains(&e["type"].as_str().unwrap_or(""))
                })
                .map(|e| {
                    (
                        e["type"].as_str().unwrap_or("").to_owned(),
                        e["event_id"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            ids.sort();
            ids
        }
    };

    setup
        .bridge
        .deliver(&op("info-1"), &NoMedia)
        .await
        .expect("channel info applied");
    assert_eq!(state("m.room.name").await["name"], "Contoso / Launch");
    let topic = state("m.room.topic").await;
    assert_eq!(topic["topic"], "Ship it on Friday");
    assert_eq!(topic["m.topic"]["m.text"][0]["body"], "Ship it on Friday");
    let avatar = state("m.room.avatar").await;
    let mxc = avatar["url"].as_str().expect("an avatar").to_owned();
    assert!(mxc.starts_with("mxc://"), "{avatar}");
    assert_eq!(avatar["info"]["mimetype"], "image/png");
    assert_eq!(pictures.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The picture is in the content repository.
    let media = reqwest::Client::new()
        .get(format!(
            "{}/_matrix/client/v1/media/download/{}",
            setup.synapse.base_url,
            mxc.trim_start_matches("mxc://")
        ))
        .bearer_auth(&setup.alice.token)
        .send()
        .await
        .expect("download");
    assert!(media.status().is_success());
    assert_eq!(media.bytes().await.expect("bytes").to_vec(), png(16));

    // The same details again (a retry, or a replay): no new state event, no
    // second fetch or upload.
    let before = state_ids().await;
    assert_eq!(before.len(), 3, "{before:?}");
    setup
        .bridge
        .deliver(&op("info-2"), &NoMedia)
        .await
        .expect("applied again");
    assert_eq!(state_ids().await, before, "nothing rewritten");
    assert_eq!(pictures.hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A rename changes the name alone.
    let rename = OutboundOp::new(
        OpId::new("info-3"),
        channel.clone(),
        OutboundKind::ChannelInfo {
            info: switchboard_model::ChannelInfo {
                name: Some("launch".into()),
                ..switchboard_model::ChannelInfo::default()
            },
        },
    );
    setup
        .bridge
        .deliver(&rename, &NoMedia)
        .await
        .expect("rename");
    assert_eq!(state("m.room.name").await["name"], "launch");
    assert_eq!(state("m.room.topic").await["topic"], "Ship it on Friday");

    // A room of alice's, where the bot was invited without power: the room
    // keeps its own name and the delivery still succeeds.
    let own = setup
        .alice
        .create_room(json!({"name": "Alice's room", "preset": "private_chat"}))
        .await
        .expect("alice creates a room");
    setup
        .alice
        .invite(&own, setup.bridge.bot())
        .await
        .expect("invite the bot");
    let own_channel = ChannelId::new(own.clone());
    let theirs = OutboundOp::new(
        OpId::new("info-4"),
        own_channel,
        OutboundKind::ChannelInfo { info: info.clone() },
    );
    setup
        .bridge
        .deliver(&theirs, &NoMedia)
        .await
        .expect("refused state is not a failed delivery");
    let name = setup
        .get_as_alice(&format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.name/",
            enc(&own)
        ))
        .await;
    assert_eq!(name["name"], "Alice's room");
    shutdown.cancel();
}

/// Synapse remembers transaction ids in memory only: after it restarts, an
/// op replayed by a restarted daemon (maybe delivered) finds its earlier
/// event by the transaction id in its content instead of posting again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_send_after_both_sides_restarted_posts_nothing_new() {
    let mut setup = Setup::start().await;
    let server = setup.synapse.server_name.clone();
    let channel = ChannelId::new(format!("#switchboard_replay:{server}"));
    let (shutdown, _rx) = setup.run(vec![channel.clone()]).await;
    let room = setup.room(&channel).await;
    setup
        .alice
        .join(&room)
        .await
        .expect("alice joins the portal");
    let person = Person::new(BridgeId::new("slack:acme"), UserId::new("U0REPLAY"), "Rita");
    let puppet = setup
        .bridge
        .ensure_puppet(&person)
        .await
        .expect("ensure_puppet");
    let op = OutboundOp::on_behalf(
        OpId::new("replay-1"),
        channel.clone(),
        Origin::new("slack:acme", "C1"),
        person.clone(),
        Some(puppet.clone()),
        OutboundKind::Send {
            message: Message::text("posted once"),
        },
    );
    let first = setup.bridge.deliver(&op, &NoMedia).await.expect("send");
    shutdown.cancel();

    setup
        .synapse
        .restart_async()
        .await
        .expect("Synapse restarts");
    let posted = |setup: &Setup| {
        let alice = setup.alice.clone();
        let room = room.clone();
        async move {
            alice
                .messages(&room)
                .await
                .expect("messages")
                .into_iter()
                .filter(|e| e["content"]["body"] == "posted once")
                .count()
        }
    };
    // A restarted daemon: a new bridge, nothing in memory.
    let again = MatrixBridge::new(setup.bridge.config().clone(), "http://127.0.0.1:9".into());
    let replayed = again
        .deliver(&op.clone().maybe_delivered(true), &NoMedia)
        .await
        .expect("replay");
    assert_eq!(replayed.ids, first.ids, "the earlier event is found");
    assert_eq!(posted(&setup).await, 1, "nothing posted twice");

    // The control: without the look-up, the restarted homeserver no longer
    // knows the transaction and posts it again.
    let blind = MatrixBridge::new(setup.bridge.config().clone(), "http://127.0.0.1:9".into());
    let doubled = blind.deliver(&op, &NoMedia).await.expect("send");
    assert_ne!(doubled.ids, first.ids);
    assert_eq!(posted(&setup).await, 2);
}
