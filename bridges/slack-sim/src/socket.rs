//! Socket Mode (<https://docs.slack.dev/apis/events-api/using-socket-mode>): the WebSocket
//! behind the one-time URL from `apps.connections.open`. On connect Slack sends `hello`
//! (`num_connections`, `debug_info`, `connection_info.app_id`); events then arrive as
//! `events_api` envelopes (slash commands as `slash_commands` ones, see [`crate::commands`])
//! that the client acknowledges with `{"envelope_id": …}`, for commands with an optional
//! `payload` shown to the person. Unacked
//! envelopes are redelivered (see [`crate::events::Hub`]); `disconnect` frames carry
//! `warning`, `refresh_requested` or `too_many_websockets`; an app may hold at most ten
//! connections, and events are spread across them.
//!
//! Frame shapes: `conformance/slack/events/socket_mode/` (SDK test servers and fixtures).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::events::Outbound;
use crate::{Sim, lock};

/// The `disconnect` frame for `reason`.
pub fn disconnect_frame(reason: &str, app_id: &str, num_connections: Option<usize>) -> String {
    let mut f = json!({
        "type": "disconnect",
        "reason": reason,
        "debug_info": {"host": "applink-sim-1"},
    });
    if let Some(n) = num_connections {
        f["num_connections"] = json!(n);
        f["connection_info"] = json!({"app_id": app_id});
    }
    f.to_string()
}

/// `GET /link/?ticket=…&app_id=…` — upgrades to a Socket Mode connection. Tickets are
/// single-use and expire after five minutes; a bad ticket is refused before the upgrade.
pub async fn link(
    AxState(sim): AxState<Arc<Sim>>,
    Query(params): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let app_id = {
        let mut st = lock(&sim.state);
        let now = crate::ids::now_secs();
        let valid = params
            .get("ticket")
            .and_then(|t| st.tickets.remove(t))
            .is_some_and(|exp| exp > now);
        let app_ok = params.get("app_id").is_none_or(|a| *a == st.app.id);
        if !valid || !app_ok {
            return (StatusCode::UNAUTHORIZED, "invalid ticket").into_response();
        }
        st.app.id.clone()
    };
    ws.on_upgrade(move |socket| run(sim, socket, app_id))
}

async fn run(sim: Arc<Sim>, socket: WebSocket, app_id: String) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let max = lock(&sim.options).max_socket_connections;
    let Some((id, count)) = sim.hub.add_socket(tx, max) else {
        sim.counters.sockets_refused.fetch_add(1, Ordering::Relaxed);
        let frame = disconnect_frame("too_many_websockets", &app_id, Some(max));
        let _ = sink.send(Message::Text(frame.into())).await;
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "".into(),
            })))
            .await;
        return;
    };
    let hello = json!({
        "type": "hello",
        "num_connections": count,
        "debug_info": {"host": format!("applink-sim-{id}"), "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": app_id},
    });
    if sink
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        sim.hub.remove_socket(id);
        return;
    }
    sim.counters.sockets_opened.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(
        socket = id,
        connections = count,
        "Socket Mode connection open."
    );
    sim.hub.flush_waiting();
    let shutdown = sim.shutdown.clone();
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outbound::Text(t)) => {
                    if sink.send(Message::Text(t.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close) | None => {
                    let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
                    break;
                }
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let frame = serde_json::from_str::<Value>(t.as_str()).ok();
                    let envelope = frame
                        .as_ref()
                        .and_then(|v| v.get("envelope_id").and_then(Value::as_str).map(str::to_string));
                    match envelope {
                        Some(e) => {
                            let payload = frame.as_ref().and_then(|v| v.get("payload"));
                            if !sim.hub.ack(&e, payload) {
                                tracing::debug!(envelope_id = %e, "Ack for an unknown or already acknowledged envelope.");
                            }
                        }
                        None => tracing::debug!("Ignoring a Socket Mode frame without envelope_id."),
                    }
                }
                Some(Ok(Message::Ping(p))) => {
                    if sink.send(Message::Pong(p)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            () = shutdown.cancelled() => {
                let _ = sink.send(Message::Close(Some(CloseFrame { code: 1001, reason: "".into() }))).await;
                break;
            }
        }
    }
    sim.hub.remove_socket(id);
    tracing::debug!(socket = id, "Socket Mode connection closed.");
}
