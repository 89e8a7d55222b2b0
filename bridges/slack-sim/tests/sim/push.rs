//! Events API push mode: signatures, url_verification, retries with their headers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use switchboard_slack_sim::push::sign;

use crate::support::*;

#[derive(Clone, Copy)]
enum Behaviour {
    Ok,
    Status(u16),
    StatusNoRetry(u16),
    Slow(Duration),
    NoChallenge,
}

type Log = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A request URL answering per `plan` (by request number, the last entry repeating).
async fn receiver(plan: Vec<Behaviour>) -> (String, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let plan = Arc::new(plan);
    let app = axum::Router::new().route(
        "/slack/events",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let l = l.clone();
            let plan = plan.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                if v["type"] == "url_verification" {
                    if matches!(plan.first(), Some(Behaviour::NoChallenge)) {
                        return (StatusCode::OK, "hello".to_string()).into_response();
                    }
                    // Answer in the JSON form the docs allow.
                    return axum::Json(json!({"challenge": v["challenge"]})).into_response();
                }
                let n = {
                    let mut g = l.lock().expect("lock");
                    g.push((headers, body));
                    g.len()
                };
                let b = plan
                    .get(n - 1)
                    .or(plan.last())
                    .copied()
                    .unwrap_or(Behaviour::Ok);
                match b {
                    Behaviour::Ok | Behaviour::NoChallenge => StatusCode::OK.into_response(),
                    Behaviour::Status(s) => {
                        StatusCode::from_u16(s).expect("status").into_response()
                    }
                    Behaviour::StatusNoRetry(s) => {
                        let mut r = StatusCode::from_u16(s).expect("status").into_response();
                        r.headers_mut()
                            .insert("X-Slack-No-Retry", "1".parse().expect("header"));
                        r
                    }
                    Behaviour::Slow(d) => {
                        tokio::time::sleep(d).await;
                        StatusCode::OK.into_response()
                    }
                }
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
    (format!("http://{addr}/slack/events"), log)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn signing_matches_slacks_documented_test_vector() {
    let Some(dir) = conformance() else { return };
    for f in [
        "signing/slack_docs_test_vector.json",
        "signing/derived_json_body_vector.json",
    ] {
        let v = read_json(&dir.join(f));
        let secret = v["signing_secret"].as_str().expect("secret");
        let ts = v["headers"]["X-Slack-Request-Timestamp"]
            .as_str()
            .expect("ts");
        let body = v["raw_body"].as_str().expect("body");
        assert_eq!(
            sign(secret, ts, body.as_bytes()),
            v["expected_signature"].as_str().expect("sig"),
            "{f}"
        );
        // A changed body no longer matches (the vector's negative case).
        assert_ne!(
            sign(secret, ts, format!("{body}------").as_bytes()),
            v["expected_signature"].as_str().expect("sig")
        );
    }
}

async fn wait_for(log: &Log, n: usize, within: Duration) -> Vec<(HeaderMap, Bytes)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = log.lock().expect("lock").clone();
        if got.len() >= n || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn signed_deliveries_after_url_verification() {
    let sim = start().await;
    let t = tokens(&sim);
    let (url, log) = receiver(vec![Behaviour::Ok]).await;
    sim.set_request_url(Some(&url)).await.expect("verified");
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "pushed"}),
    )
    .await;
    let got = wait_for(&log, 1, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 1);
    let (h, body) = &got[0];
    assert_eq!(header(h, "content-type"), Some("application/json"));
    let ts = header(h, "x-slack-request-timestamp").expect("timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(ts.parse::<u64>().expect("digits").abs_diff(now) < 60);
    let secret = &sim.seeded().signing_secret;
    assert_eq!(
        header(h, "x-slack-signature"),
        Some(sign(secret, ts, body).as_str())
    );
    assert!(header(h, "x-slack-retry-num").is_none());
    let v: Value = serde_json::from_slice(body).expect("json");
    assert_eq!(v["type"], "event_callback");
    assert_eq!(v["event"]["text"], "pushed");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.counters().events_delivered, 1);

    // A URL that does not echo the challenge is refused, and the old one stays.
    let (bad, _) = receiver(vec![Behaviour::NoChallenge]).await;
    let err = sim.set_request_url(Some(&bad)).await.expect_err("refused");
    assert!(err.contains("challenge"), "{err}");
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "still pushed"}),
    )
    .await;
    assert_eq!(wait_for(&log, 2, Duration::from_secs(2)).await.len(), 2);
    // Clearing the URL returns to Socket Mode.
    sim.set_request_url(None).await.expect("cleared");
    let (mut ws, _) = connect(&sim).await;
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "socket again"}),
    )
    .await;
    assert_eq!(
        next_message(&mut ws, None).await["payload"]["event"]["text"],
        "socket again"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn retries_on_errors_and_timeouts_with_headers() {
    let sim = start().await;
    let t = tokens(&sim);
    // 500 twice, then 200.
    let (url, log) = receiver(vec![
        Behaviour::Status(500),
        Behaviour::Status(503),
        Behaviour::Ok,
    ])
    .await;
    sim.set_request_url(Some(&url)).await.expect("verified");
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "retry me"}),
    )
    .await;
    let got = wait_for(&log, 3, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 3);
    assert!(header(&got[0].0, "x-slack-retry-num").is_none());
    assert_eq!(header(&got[1].0, "x-slack-retry-num"), Some("1"));
    assert_eq!(
        header(&got[1].0, "x-slack-retry-reason"),
        Some("http_error")
    );
    assert_eq!(header(&got[2].0, "x-slack-retry-num"), Some("2"));
    // Every attempt carries the same body and a valid signature of it.
    assert!(got.iter().all(|(_, b)| *b == got[0].1));
    let secret = sim.seeded().signing_secret.clone();
    for (h, b) in &got {
        let ts = header(h, "x-slack-request-timestamp").expect("ts");
        assert_eq!(
            header(h, "x-slack-signature"),
            Some(sign(&secret, ts, b).as_str())
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = sim.counters();
    assert_eq!(
        (c.events_delivered, c.events_redelivered, c.events_dropped),
        (1, 2, 0)
    );

    // Too slow (over the 500 ms test timeout): http_timeout; always failing: dropped after 3 retries.
    let (slow, slow_log) = receiver(vec![
        Behaviour::Slow(Duration::from_millis(900)),
        Behaviour::Status(500),
    ])
    .await;
    sim.set_request_url(Some(&slow)).await.expect("verified");
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "slow"}),
    )
    .await;
    let got = wait_for(&slow_log, 4, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 4);
    assert_eq!(
        header(&got[1].0, "x-slack-retry-reason"),
        Some("http_timeout")
    );
    assert_eq!(
        header(&got[2].0, "x-slack-retry-reason"),
        Some("http_error")
    );
    assert_eq!(header(&got[3].0, "x-slack-retry-num"), Some("3"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        wait_for(&slow_log, 5, Duration::from_millis(300))
            .await
            .len(),
        4,
        "no fifth attempt"
    );
    assert_eq!(sim.counters().events_dropped, 1);

    // X-Slack-No-Retry: 1 stops retries.
    let (nr, nr_log) = receiver(vec![Behaviour::StatusNoRetry(500)]).await;
    sim.set_request_url(Some(&nr)).await.expect("verified");
    call(
        &sim,
        "chat.postMessage",
        &t.alice,
        json!({"channel": GENERAL, "text": "no retry"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(nr_log.lock().expect("lock").len(), 1);
    assert_eq!(sim.counters().events_dropped, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_person_writing_to_the_app_is_pushed_as_a_signed_im_message() {
    let sim = start().await;
    let (url, log) = receiver(vec![Behaviour::Ok]).await;
    sim.set_request_url(Some(&url)).await.expect("verified");
    let (im, ts) = sim.message_app("bob", "portal list").expect("bob writes");
    let got = wait_for(&log, 1, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 1);
    let (h, body) = &got[0];
    let stamp = header(h, "x-slack-request-timestamp").expect("timestamp");
    assert_eq!(
        header(h, "x-slack-signature"),
        Some(sign("8f742231b10e8888abcd99yyyzzz85a5", stamp, body).as_str())
    );
    let v: Value = serde_json::from_slice(body).expect("json");
    assert_eq!(v["type"], "event_callback");
    assert_eq!(v["event"]["type"], "message");
    assert_eq!(v["event"]["channel"], im.as_str());
    assert_eq!(v["event"]["channel_type"], "im");
    assert_eq!(v["event"]["user"], BOB);
    assert_eq!(v["event"]["text"], "portal list");
    assert_eq!(v["event"]["ts"], ts.as_str());
}
