//! Socket Mode with a real WebSocket client: hello, envelopes, acks, redelivery, disconnect
//! frames, the ten-connection cap, round robin, pings, one-time tickets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

#[tokio::test]
async fn hello_envelope_ack() {
    let sim = start().await;
    let t = tokens(&sim);
    let (mut ws, hello) = connect(&sim).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["num_connections"], 1);
    assert_eq!(hello["connection_info"]["app_id"], "A0SIMAPP001");
    assert!(hello["debug_info"]["host"].is_string());
    assert!(hello["debug_info"]["approximate_connection_time"].is_number());
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "hi bot"}),
    )
    .await;
    let raw = next_text_within(&mut ws, Duration::from_secs(2))
        .await
        .expect("envelope");
    let env: Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(env["type"], "events_api");
    assert_eq!(env["accepts_response_payload"], false);
    assert_eq!(env["retry_attempt"], 0);
    assert_eq!(env["retry_reason"], "");
    assert_eq!(env["envelope_id"].as_str().expect("id").len(), 36);
    let p = &env["payload"];
    assert_eq!(p["type"], "event_callback");
    assert_eq!(p["event"]["text"], "hi bot");
    assert_eq!(p["event"]["user"], ALICE);
    assert_eq!(p["event"]["channel"], GENERAL);
    assert!(p["event_id"].as_str().expect("event_id").starts_with("Ev"));
    ack(&mut ws, &env).await;
    assert!(
        sim.wait_for_counters(|c| c.events_delivered == 1, Duration::from_secs(2))
            .await
    );
    let c = sim.counters();
    assert_eq!(c.sockets_opened, 1);
    // Acked: nothing is redelivered.
    assert!(
        next_json_within(&mut ws, Duration::from_millis(600))
            .await
            .is_none()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn events_wait_for_a_connection() {
    let sim = start().await;
    let t = tokens(&sim);
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "before connect"}),
    )
    .await;
    let (mut ws, _) = connect(&sim).await;
    let env = next_message(&mut ws, None).await;
    assert_eq!(env["payload"]["event"]["text"], "before connect");
    sim.shutdown().await;
}

#[tokio::test]
async fn unacked_envelopes_are_redelivered_then_dropped() {
    let sim = start().await;
    let t = tokens(&sim);
    let (mut ws, _) = connect(&sim).await;
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "ack me later"}),
    )
    .await;
    let first = next_json(&mut ws).await.expect("first");
    let second = next_json(&mut ws).await.expect("redelivery");
    assert_eq!(second["retry_attempt"], 1);
    assert_eq!(second["retry_reason"], "timeout");
    assert_eq!(second["payload"]["event_id"], first["payload"]["event_id"]);
    assert_ne!(second["envelope_id"], first["envelope_id"]);
    ack(&mut ws, &second).await;
    assert!(
        next_json_within(&mut ws, Duration::from_millis(600))
            .await
            .is_none()
    );

    // Never acked: the first attempt plus three retries, then dropped.
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "never acked"}),
    )
    .await;
    let mut attempts = Vec::new();
    while let Some(env) = next_json_within(&mut ws, Duration::from_millis(900)).await {
        attempts.push(env["retry_attempt"].as_u64().expect("attempt"));
    }
    assert_eq!(attempts, [0, 1, 2, 3]);
    let c = sim.counters();
    assert_eq!(c.events_dropped, 1);
    assert_eq!(c.events_redelivered, 4);
    assert_eq!(c.events_delivered, 1);
    sim.shutdown().await;
}

async fn receiver(status: u16) -> (String, Arc<Mutex<Vec<(HeaderMap, Bytes)>>>) {
    let got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                if v["type"] == "url_verification" {
                    return (
                        axum::http::StatusCode::OK,
                        v["challenge"].as_str().unwrap_or("").to_string(),
                    );
                }
                g.lock().expect("lock").push((headers, body));
                (
                    axum::http::StatusCode::from_u16(status).expect("status"),
                    String::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/events"), got)
}

#[tokio::test]
async fn socket_payload_is_byte_identical_to_the_pushed_body() {
    let sim = start_with(|c| c.ack_timeout = Duration::from_secs(1)).await;
    let t = tokens(&sim);
    let (mut ws, _) = connect(&sim).await;
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "same bytes, ünïcödé 🎉"}),
    )
    .await;
    let raw = next_text_within(&mut ws, Duration::from_secs(2))
        .await
        .expect("envelope");
    // Switch to push mode before the ack deadline: the redelivery goes to the request URL,
    // carrying the very payload the socket envelope carried.
    let (url, got) = receiver(200).await;
    sim.set_request_url(Some(&url)).await.expect("url verified");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pushed = got
        .lock()
        .expect("lock")
        .first()
        .map(|(_, b)| b.clone())
        .expect("pushed");
    let start = raw.find("\"payload\":").expect("payload key") + "\"payload\":".len();
    let end = raw.find(",\"type\":\"events_api\"").expect("after payload");
    assert_eq!(
        &raw[start..end],
        std::str::from_utf8(&pushed).expect("utf8")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn disconnect_frames_for_each_reason() {
    let sim = start().await;
    for reason in ["refresh_requested", "warning"] {
        let (mut ws, _) = connect(&sim).await;
        assert_eq!(sim.disconnect_sockets(reason), 1);
        let f = next_json(&mut ws).await.expect("disconnect frame");
        assert_eq!(f["type"], "disconnect");
        assert_eq!(f["reason"], reason);
        assert!(f["debug_info"]["host"].is_string());
        // The socket is then closed by the server (warning: after the grace period).
        let closed = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "{reason}: socket closed");
    }
    // too_many_websockets: ten sockets are fine, the eleventh is turned away.
    let mut socks = Vec::new();
    for i in 0..10 {
        let (ws, hello) = connect(&sim).await;
        assert_eq!(hello["num_connections"], i + 1);
        socks.push(ws);
    }
    let t = tokens(&sim);
    let open = call_json_empty(&sim, "apps.connections.open", &t.app).await;
    let (mut eleventh, _) = tokio_tungstenite::connect_async(open["url"].as_str().expect("url"))
        .await
        .expect("connect");
    let f = next_json(&mut eleventh).await.expect("frame");
    assert_eq!(f["type"], "disconnect");
    assert_eq!(f["reason"], "too_many_websockets");
    assert_eq!(f["connection_info"]["app_id"], "A0SIMAPP001");
    assert!(
        next_json(&mut eleventh).await.is_none(),
        "closed after the frame"
    );
    assert_eq!(sim.socket_count(), 10);
    assert_eq!(sim.counters().sockets_refused, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn events_are_spread_round_robin_and_pings_answered() {
    let sim = start().await;
    let t = tokens(&sim);
    let (mut a, _) = connect(&sim).await;
    let (mut b, hello) = connect(&sim).await;
    assert_eq!(hello["num_connections"], 2);
    assert!(sim.wait_for_sockets(2, Duration::from_secs(1)).await);
    for i in 0..4 {
        call(
            &sim,
            "chat.postMessage",
            &t.alice,
            json!({"channel": GENERAL, "text": format!("m{i}")}),
        )
        .await;
    }
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    while let Some(env) = next_json_within(&mut a, Duration::from_millis(200)).await {
        ack(&mut a, &env).await;
        got_a.push(
            env["payload"]["event"]["text"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    while let Some(env) = next_json_within(&mut b, Duration::from_millis(200)).await {
        ack(&mut b, &env).await;
        got_b.push(
            env["payload"]["event"]["text"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    assert_eq!(got_a.len(), 2, "{got_a:?} / {got_b:?}");
    assert_eq!(got_b.len(), 2, "{got_a:?} / {got_b:?}");
    // Pings get pongs.
    a.send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(Ok(Message::Pong(p))) = a.next().await {
                return p;
            }
        }
    })
    .await
    .expect("pong");
    assert_eq!(&pong[..], b"are you there");
    // Exactly one pong per ping.
    let extra = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            match a.next().await {
                Some(Ok(Message::Pong(_))) => return true,
                Some(Ok(_)) => {}
                _ => return false,
            }
        }
    })
    .await;
    assert!(
        extra.is_err() || extra == Ok(false),
        "a second pong arrived"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn tickets_are_single_use() {
    let sim = start().await;
    let t = tokens(&sim);
    let open = call_json_empty(&sim, "apps.connections.open", &t.app).await;
    let url = open["url"].as_str().expect("url").to_string();
    assert!(
        url.contains("/link/?ticket=") && url.contains("&app_id=A0SIMAPP001"),
        "{url}"
    );
    let (_ws, _) = tokio_tungstenite::connect_async(url.clone())
        .await
        .expect("first use");
    assert!(
        tokio_tungstenite::connect_async(url).await.is_err(),
        "second use refused"
    );
    sim.shutdown().await;
}
