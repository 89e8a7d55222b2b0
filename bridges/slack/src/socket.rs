//! Socket Mode (https://docs.slack.dev/apis/events-api/using-socket-mode).
//!
//! `apps.connections.open` (with the app-level token) gives a WebSocket URL;
//! Slack's first frame is `hello`; each event then comes as an `events_api`
//! envelope whose payload is the Events API body, each slash command as a
//! `slash_commands` envelope (acked with the reply the person sees). We
//! acknowledge an envelope
//! (`{"envelope_id": …}`) only after the relay has stored its events, so an
//! envelope lost in a crash is redelivered by Slack. On `disconnect` the
//! replacement socket is opened while the old one is still read, and the old
//! one is read until Slack closes it: Slack spreads events over every open
//! connection, and an envelope left unread there would come back only after
//! its ack deadline, behind newer messages. While both are open, event
//! envelopes pass through [`crate::reorder`] to leave in the order they were
//! posted in. After every new connection (not
//! a replacement), the connector catches up from its cursors; and while the relay
//! refuses events (its disk is full), Slack gives up redelivering them after
//! a few tries, so the connector stops moving its cursors and catches up
//! again, every [`CATCH_UP_RETRY`], until a catch-up is stored.

use crate::bridge::SlackBridge;
use crate::direct::AfterStored;
use crate::events::{Payload, SocketFrame, parse_socket_frame};
use crate::reorder::{self, Reorder};
use crate::web::Token;
use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use switchboard_model::{BridgeContext, BridgeError, BridgeState};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How often a connection whose events the relay refused catches up again.
const CATCH_UP_RETRY: Duration = Duration::from_secs(2);

/// How a connection ended.
enum Ended {
    /// The daemon is stopping.
    Shutdown,
    /// The connection broke (and no replacement was up).
    Lost(String),
}

/// A replacement socket being opened.
type Connecting<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Socket, BridgeError>> + Send + 'a>>;

type Writer = futures_util::stream::SplitSink<Socket, Frame>;
type Reader = futures_util::stream::SplitStream<Socket>;

/// One open socket; `generation` tells whose acks are whose.
struct Conn {
    generation: u64,
    write: Writer,
    read: Reader,
}

impl Conn {
    fn new(socket: Socket, generation: u64) -> Self {
        let (write, read) = socket.split();
        Conn {
            generation,
            write,
            read,
        }
    }
}

/// A frame from a replaced socket, by generation; `None` once it ended.
type OldFrame = (
    u64,
    Option<Result<Frame, tokio_tungstenite::tungstenite::Error>>,
);

/// What a frame from a socket asks for.
enum Read {
    Nothing,
    Closed(String),
    Disconnect(String),
}

/// Runs Socket Mode until shutdown, reconnecting by itself.
pub(crate) async fn run(
    bridge: &SlackBridge,
    ctx: &BridgeContext,
    app_token: &Token,
) -> Result<(), BridgeError> {
    let id = &bridge.config.id;
    let mut backoff = Duration::from_secs(1);
    loop {
        if ctx.shutdown.is_cancelled() {
            return Ok(());
        }
        let connecting = tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(()),
            c = connect(bridge, app_token) => c,
        };
        let socket = match connecting {
            Ok(s) => s,
            Err(e @ BridgeError::Auth { .. }) => {
                ctx.set_state(BridgeState::BadCredentials(e.to_string()));
                return Err(e);
            }
            Err(e) => {
                ctx.set_state(BridgeState::TransientDisconnect(e.to_string()));
                tracing::warn!(bridge = %id, error = %e, retry_in_ms = backoff.as_millis(), "Socket Mode connection failed; retrying.");
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff.mul_f64(0.8 + fastrand::f64() * 0.4)) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        ctx.set_state(BridgeState::Connected);
        if let Err(e) = bridge.catch_up(ctx).await {
            tracing::warn!(bridge = %id, error = %e, "Catch-up failed; it is retried at the next connect.");
        }
        match serve(bridge, ctx, app_token, socket).await {
            Ended::Shutdown => return Ok(()),
            Ended::Lost(reason) => {
                ctx.set_state(BridgeState::TransientDisconnect(reason.clone()));
                tracing::warn!(bridge = %id, reason = %reason, "Socket Mode connection lost; reconnecting.");
            }
        }
    }
}

/// Opens a socket and waits for `hello`.
async fn connect(bridge: &SlackBridge, app_token: &Token) -> Result<Socket, BridgeError> {
    // apps.connections.open — https://docs.slack.dev/reference/methods/apps.connections.open
    let answer = bridge
        .api
        .call("apps.connections.open", app_token, json!({}), None)
        .await?;
    let url = answer
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| BridgeError::transient("apps.connections.open answered without a url"))?;
    let (mut socket, _) = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .map_err(|_| BridgeError::transient("Socket Mode connect timed out"))?
    .map_err(|e| BridgeError::transient(format!("Socket Mode connect failed: {e}")))?;
    let hello = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Frame::Text(text)) => match parse_socket_frame(text.as_str()) {
                    Ok(SocketFrame::Hello { .. }) => return Ok(()),
                    Ok(SocketFrame::Disconnect { reason }) => {
                        return Err(BridgeError::transient(format!(
                            "disconnected before hello: {reason}"
                        )));
                    }
                    _ => continue,
                },
                Ok(Frame::Close(_)) => {
                    return Err(BridgeError::transient("socket closed before hello"));
                }
                Ok(_) => continue,
                Err(e) => {
                    return Err(BridgeError::transient(format!(
                        "socket failed before hello: {e}"
                    )));
                }
            }
        }
        Err(BridgeError::transient("socket ended before hello"))
    })
    .await
    .map_err(|_| BridgeError::transient("no hello from Slack"))?;
    hello.map(|()| socket)
}

/// Reads envelopes until the connection ends; acks each once stored. A
/// `disconnect` from Slack opens a replacement while this socket is still
/// read; the replaced socket is then read beside the new one until Slack
/// closes it.
async fn serve(
    bridge: &SlackBridge,
    ctx: &BridgeContext,
    app_token: &Token,
    socket: Socket,
) -> Ended {
    let id = &bridge.config.id;
    let mut current = Conn::new(socket, 0);
    // Replaced sockets still open, read until Slack closes them (several
    // when Slack asks again before the first one closed).
    let mut old_reads: SelectAll<BoxStream<'static, OldFrame>> = SelectAll::new();
    let mut old_writes: HashMap<u64, Writer> = HashMap::new();
    // Generations of replaced sockets not yet closed; while any is, event
    // envelopes wait in `order` to be put back in order.
    let mut old_open: HashSet<u64> = HashSet::new();
    let mut order: Reorder<(u64, Utf8Bytes)> = Reorder::default();
    // Until when envelopes of the remaining socket are still sorted after
    // the last replaced one closed.
    let mut sorting_until = tokio::time::Instant::now();
    let mut replacing: Option<Connecting<'_>> = None;
    let (acks_tx, mut acks) = mpsc::channel::<(u64, String)>(1024);
    let ping_every = bridge.config.ping_interval;
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    let mut pending_acks = tokio::task::JoinSet::new();
    // Set when the relay refused an event on this connection: cursors stay
    // where they are and a catch-up is due.
    let refused = Arc::new(AtomicBool::new(false));
    let mut catch_up = tokio::time::interval(CATCH_UP_RETRY);
    catch_up.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ended = loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => break Ended::Shutdown,
            _ = catch_up.tick(), if refused.load(Ordering::Acquire) => {
                refused.store(false, Ordering::Release);
                match bridge.catch_up(ctx).await {
                    Ok(n) => tracing::info!(bridge = %id, messages = n, "Caught up on events the relay had refused."),
                    Err(e) => {
                        refused.store(true, Ordering::Release);
                        tracing::debug!(bridge = %id, error = %e, "Catch-up after refused events failed; trying again.");
                    }
                }
            }
            Some((generation, ack)) = acks.recv() => {
                // An ack goes back on the socket its envelope came by. When
                // that one closed meanwhile (the envelope waited in the
                // reorder window), it goes on the current one: an ack names
                // its envelope. Should Slack not take it there, it
                // redelivers, and the relay drops the repeat.
                let mut ack = Some(ack);
                if generation != current.generation
                    && let Some(old) = old_writes.get_mut(&generation)
                    && let Some(text) = ack.take()
                    && old.send(Frame::Text(text.clone().into())).await.is_err()
                {
                    old_writes.remove(&generation);
                    ack = Some(text);
                }
                if let Some(text) = ack
                    && let Err(e) = current.write.send(Frame::Text(text.into())).await
                {
                    break Ended::Lost(format!("ack not sent: {e}"));
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 3 {
                    break Ended::Lost("no frame from Slack for too long".into());
                }
                if let Err(e) = current.write.send(Frame::Ping(Vec::new().into())).await {
                    break Ended::Lost(format!("ping not sent: {e}"));
                }
            }
            () = async {
                match order.next_due() {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            }, if !order.is_empty() => {
                for (generation, text) in order.due(tokio::time::Instant::now()) {
                    on_frame(bridge, ctx, Some(Ok(Frame::Text(text))), generation, &acks_tx, &mut pending_acks, &refused).await;
                }
            }
            Some(replaced) = async { match replacing.as_mut() { Some(f) => Some(f.await), None => None } }, if replacing.is_some() => {
                replacing = None;
                match replaced {
                    Ok(socket) => {
                        let next = Conn::new(socket, current.generation + 1);
                        let old = std::mem::replace(&mut current, next);
                        let generation = old.generation;
                        old_writes.insert(generation, old.write);
                        old_open.insert(generation);
                        old_reads.push(
                            old.read
                                .map(move |f| (generation, Some(f)))
                                .chain(futures_util::stream::once(async move { (generation, None) }))
                                .boxed(),
                        );
                        last_heard = tokio::time::Instant::now();
                        ctx.set_state(BridgeState::Connected);
                        tracing::debug!(bridge = %id, "Replacement socket up; reading the old one until Slack closes it.");
                    }
                    Err(e) => {
                        tracing::warn!(bridge = %id, error = %e, "Replacement socket failed; the old one is read until it closes.");
                    }
                }
            }
            Some((generation, frame)) = old_reads.next(), if !old_reads.is_empty() => {
                let closed = match frame {
                    None => true,
                    Some(Ok(Frame::Text(text))) if reorder::is_event_envelope(&text) => {
                        tracing::trace!(bridge = %id, generation, "Envelope held from a replaced socket.");
                        order.hold(&text, (generation, text.clone()), tokio::time::Instant::now());
                        false
                    }
                    Some(frame) => matches!(
                        on_frame(bridge, ctx, Some(frame), generation, &acks_tx, &mut pending_acks, &refused).await,
                        Read::Closed(_)
                    ),
                };
                if closed && old_open.remove(&generation) {
                    tracing::trace!(bridge = %id, generation, held = order.len(), "Replaced socket closed.");
                    old_writes.remove(&generation);
                    // What the new socket carries may still be older than
                    // what the closed one gave last: keep sorting a while.
                    sorting_until = tokio::time::Instant::now() + reorder::WINDOW;
                }
            }
            frame = current.read.next() => {
                last_heard = tokio::time::Instant::now();
                let sorting = !old_open.is_empty() || last_heard < sorting_until;
                let frame = match frame {
                    Some(Ok(Frame::Text(text))) if sorting && reorder::is_event_envelope(&text) => {
                        tracing::trace!(bridge = %id, generation = current.generation, "Envelope held from the new socket.");
                        order.hold(&text, (current.generation, text.clone()), last_heard);
                        continue;
                    }
                    frame => frame,
                };
                if !sorting {
                    // One socket, and the others long closed: what waits
                    // goes first, then this socket's frames as they come.
                    for (generation, text) in order.drain() {
                        on_frame(bridge, ctx, Some(Ok(Frame::Text(text))), generation, &acks_tx, &mut pending_acks, &refused).await;
                    }
                }
                match on_frame(bridge, ctx, frame, current.generation, &acks_tx, &mut pending_acks, &refused).await {
                    Read::Nothing => {}
                    Read::Disconnect(reason) => {
                        if replacing.is_none() {
                            tracing::info!(bridge = %id, reason = %reason, "Slack asked for a new Socket Mode connection.");
                            replacing = Some(Box::pin(connect(bridge, app_token)));
                        }
                    }
                    Read::Closed(reason) => {
                        // A replacement under way takes over; else reconnect.
                        let Some(replacement) = replacing.take() else {
                            break Ended::Lost(reason);
                        };
                        let replaced = tokio::select! {
                            _ = ctx.shutdown.cancelled() => break Ended::Shutdown,
                            r = replacement => r,
                        };
                        match replaced {
                            Ok(socket) => {
                                current = Conn::new(socket, current.generation + 1);
                                last_heard = tokio::time::Instant::now();
                            }
                            Err(e) => break Ended::Lost(format!("{reason}; replacement failed: {e}")),
                        }
                    }
                }
            }
        }
    };
    // Acks still in flight are dropped with the sockets: Slack redelivers them.
    pending_acks.abort_all();
    ended
}

/// Handles one frame read from the socket of `generation`.
async fn on_frame(
    bridge: &SlackBridge,
    ctx: &BridgeContext,
    frame: Option<Result<Frame, tokio_tungstenite::tungstenite::Error>>,
    generation: u64,
    acks: &mpsc::Sender<(u64, String)>,
    pending: &mut tokio::task::JoinSet<()>,
    refused: &Arc<AtomicBool>,
) -> Read {
    let id = &bridge.config.id;
    let text = match frame {
        Some(Ok(Frame::Text(text))) => text,
        Some(Ok(Frame::Close(_))) | None => return Read::Closed("socket closed".into()),
        Some(Ok(_)) => return Read::Nothing,
        Some(Err(e)) => return Read::Closed(format!("socket failed: {e}")),
    };
    match parse_socket_frame(text.as_str()) {
        Ok(SocketFrame::Disconnect { reason }) => return Read::Disconnect(reason),
        Ok(SocketFrame::Envelope {
            envelope_id,
            kind,
            payload,
            accepts_response_payload,
            ..
        }) if kind == "slash_commands" => {
            handle_command(
                bridge,
                ctx,
                envelope_id,
                &payload,
                accepts_response_payload,
                (generation, acks),
                pending,
            )
            .await;
        }
        Ok(SocketFrame::Envelope {
            envelope_id,
            payload,
            ..
        }) => {
            handle_envelope(
                bridge,
                ctx,
                envelope_id,
                payload,
                (generation, acks),
                pending,
                refused,
            )
            .await;
        }
        Ok(SocketFrame::Hello { .. }) => {}
        Ok(other) => tracing::debug!(bridge = %id, frame = ?other, "Ignoring a Socket Mode frame."),
        Err(e) => {
            tracing::warn!(bridge = %id, reason = %e, "Ignoring a malformed Socket Mode frame.")
        }
    }
    Read::Nothing
}

/// Parses an envelope, hands its events to the relay and queues the ack for
/// when they are stored. A refusal sets `refused` (and is not acked).
async fn handle_envelope(
    bridge: &SlackBridge,
    ctx: &BridgeContext,
    envelope_id: String,
    payload: impl AsRef<[u8]>,
    (generation, acks): (u64, &mpsc::Sender<(u64, String)>),
    pending: &mut tokio::task::JoinSet<()>,
    refused: &Arc<AtomicBool>,
) {
    let id = &bridge.config.id;
    let ack = (
        generation,
        json!({ "envelope_id": envelope_id }).to_string(),
    );
    tracing::trace!(bridge = %id, generation, envelope = %envelope_id, ts = ?reorder::payload_ts(payload.as_ref()), "Envelope read.");
    let events = match bridge.parse(payload.as_ref()).await {
        Ok(Payload::Events(events)) => events,
        Ok(Payload::AppRateLimited { minute }) => {
            tracing::warn!(bridge = %id, minute, "Slack is rate limiting event deliveries; catch-up will fill the gap.");
            let _ = acks.send(ack).await;
            return;
        }
        Ok(_) => {
            let _ = acks.send(ack).await;
            return;
        }
        Err(e) => {
            // Redelivery cannot fix a payload we cannot read: ack and report.
            tracing::warn!(bridge = %id, reason = %e, "Dropping an envelope whose payload does not parse.");
            let _ = acks.send(ack).await;
            return;
        }
    };
    let mut stored = Vec::new();
    for ev in events {
        let after = AfterStored::of(&ev);
        match ctx.inbound.submit(ev).await {
            Ok(s) => stored.push((s, after)),
            Err(e) => {
                tracing::warn!(bridge = %id, error = %e, "Relay refused an event; Slack will redeliver it.");
                refused.store(true, Ordering::Release);
                return;
            }
        }
    }
    let acks = acks.clone();
    let cursors = ctx.clone();
    let bridge = bridge.weak();
    let refused = refused.clone();
    pending.spawn(async move {
        for (s, after) in stored {
            if s.await.is_err() {
                // Not stored: no ack, Slack redelivers (a few times); the
                // catch-up brings it if Slack gives up first.
                refused.store(true, Ordering::Release);
                return;
            }
            // A cursor moved past a refused message would skip it: while
            // the relay refuses, the catch-up brings everything again.
            if refused.load(Ordering::Acquire) {
                continue;
            }
            match bridge.upgrade() {
                Some(bridge) => bridge.stored(Some(cursors.cursors()), after),
                None => after.advance(cursors.cursors()),
            }
        }
        let _ = acks.send(ack).await;
    });
}

/// A `slash_commands` envelope: submits its event (if any) and acks once it
/// is stored, with the reply as the ack's `payload` when Slack accepts one.
async fn handle_command(
    bridge: &SlackBridge,
    ctx: &BridgeContext,
    envelope_id: String,
    payload: &[u8],
    accepts_response_payload: bool,
    (generation, acks): (u64, &mpsc::Sender<(u64, String)>),
    pending: &mut tokio::task::JoinSet<()>,
) {
    let command = match bridge
        .parse_command(payload, false, Some(&envelope_id))
        .await
    {
        Ok(c) => c,
        Err(e) => {
            // Redelivery cannot fix it: ack and report (never the payload: it holds the token).
            tracing::warn!(bridge = %bridge.config.id, reason = %e, "Dropping a slash command that does not parse.");
            let _ = acks
                .send((
                    generation,
                    json!({ "envelope_id": envelope_id }).to_string(),
                ))
                .await;
            return;
        }
    };
    let reply = bridge.start_command(&ctx.inbound, command).await;
    let acks = acks.clone();
    pending.spawn(async move {
        let text = reply.await;
        let ack = if accepts_response_payload {
            json!({
                "envelope_id": envelope_id,
                "payload": crate::events::command::reply_json(&text),
            })
        } else {
            json!({ "envelope_id": envelope_id })
        };
        let _ = acks.send((generation, ack.to_string())).await;
    });
}
