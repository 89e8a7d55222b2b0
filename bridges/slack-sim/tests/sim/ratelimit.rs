//! Rate limits (429 + Retry-After, per-method tiers, chat.postMessage per channel) and fault
//! injection, driven through the admin API as a test harness would.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_slack_sim::faults::FaultConfig;
use switchboard_slack_sim::ratelimit::Mode;

use crate::support::*;

async fn admin(sim: &switchboard_slack_sim::SlackSim, path: &str, body: Value) -> Value {
    let r = http()
        .post(format!("{}/_admin/{path}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .expect("admin");
    r.json().await.expect("json")
}

#[tokio::test]
async fn strict_mode_answers_429_with_retry_after() {
    let sim = start().await;
    let t = tokens(&sim);
    // Off by default: far beyond any tier.
    for _ in 0..30 {
        assert_ok(&call(&sim, "users.list", &t.bot, json!({})).await);
    }
    let r = admin(&sim, "ratelimit", json!({"mode": "strict"})).await;
    assert_eq!(r["mode"], "strict");
    // users.list is Tier 2: 20 per minute.
    for _ in 0..20 {
        assert_ok(&call(&sim, "users.list", &t.bot, json!({})).await);
    }
    let resp = http()
        .post(sim.api_url("users.list"))
        .bearer_auth(&t.bot)
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        json!({"ok": false, "error": "ratelimited"})
    );
    // The budget is per method: users.info (Tier 4) still works, and the same app's user
    // tokens share users.list's budget (per app and workspace).
    assert_ok(&call(&sim, "users.info", &t.bot, json!({"user": ALICE})).await);
    let (status, _) = call_status(&sim, "users.list", &t.alice, json!({})).await;
    assert_eq!(status, 429);
    // An empty 429 body when configured so.
    admin(&sim, "ratelimit", json!({"body": "empty"})).await;
    let resp = http()
        .post(sim.api_url("users.list"))
        .bearer_auth(&t.bot)
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(resp.text().await.expect("text"), "");
    assert!(sim.counters().ratelimited >= 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn post_message_is_limited_per_channel() {
    let sim = start().await;
    let t = tokens(&sim);
    sim.set_rate_limit_mode(Mode::Strict);
    // A short burst passes, then about one message per second per channel.
    for i in 0..4 {
        let (s, _) = call_status(
            &sim,
            "chat.postMessage",
            &t.bot,
            json!({"channel": GENERAL, "text": format!("b{i}")}),
        )
        .await;
        assert_eq!(s, 200);
    }
    let resp = http()
        .post(sim.api_url("chat.postMessage"))
        .bearer_auth(&t.bot)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([("channel", GENERAL), ("text", "one too many")])
                .expect("form"),
        )
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    // Another channel has its own allowance.
    let (s, _) = call_status(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": SECRET, "text": "elsewhere"}),
    )
    .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _) = call_status(
        &sim,
        "chat.postMessage",
        &t.bot,
        json!({"channel": GENERAL, "text": "after a second"}),
    )
    .await;
    assert_eq!(s, 200);
    // The refused message was not stored.
    assert!(
        !sim.messages(GENERAL)
            .iter()
            .any(|m| m["text"] == "one too many")
    );
    // Relaxed: ten times the budget.
    sim.set_rate_limit_mode(Mode::Relaxed);
    for i in 0..30 {
        let (s, _) = call_status(
            &sim,
            "chat.postMessage",
            &t.bot,
            json!({"channel": GENERAL, "text": format!("r{i}")}),
        )
        .await;
        assert_eq!(s, 200, "relaxed burst {i}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_faults() {
    let sim = start().await;
    let t = tokens(&sim);
    // 5xx for one method only.
    let r = admin(
        &sim,
        "faults",
        json!({"error_rate": 1.0, "error_status": 503, "methods": ["users.list"]}),
    )
    .await;
    assert_eq!(r["faults"]["error_status"], 503);
    let (s, _) = call_status(&sim, "users.list", &t.bot, json!({})).await;
    assert_eq!(s, 503);
    assert_ok(&call(&sim, "auth.test", &t.bot, json!({})).await);
    // Latency.
    sim.set_faults(FaultConfig {
        latency_ms: 250,
        ..FaultConfig::default()
    });
    let t0 = Instant::now();
    assert_ok(&call(&sim, "auth.test", &t.bot, json!({})).await);
    assert!(t0.elapsed() >= Duration::from_millis(250));
    // Dropped mid-request: the client sees a broken connection, not an answer.
    sim.set_faults(FaultConfig {
        drop_rate: 1.0,
        ..FaultConfig::default()
    });
    let err = http()
        .post(sim.api_url("auth.test"))
        .bearer_auth(&t.bot)
        .send()
        .await;
    assert!(err.is_err(), "dropped: {err:?}");
    sim.set_faults(FaultConfig::default());
    assert_ok(&call(&sim, "auth.test", &t.bot, json!({})).await);
    // Refused connections for a while, then back.
    admin(&sim, "faults/refuse", json!({"ms": 300})).await;
    let fresh = reqwest::Client::new();
    let err = fresh
        .post(sim.api_url("auth.test"))
        .bearer_auth(&t.bot)
        .send()
        .await;
    assert!(err.is_err(), "refused: {err:?}");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let ok = reqwest::Client::new()
        .post(sim.api_url("auth.test"))
        .bearer_auth(&t.bot)
        .send()
        .await
        .expect("back");
    assert_eq!(ok.status().as_u16(), 200);
    let c = sim.counters();
    assert_eq!(c.injected_5xx, 1);
    assert_eq!(c.connections_dropped, 1);
    assert!(c.connections_refused >= 1);
    // Counters over the admin API.
    let r = http()
        .get(format!("{}/_admin/counters", sim.base_url()))
        .send()
        .await
        .expect("get");
    assert_eq!(
        r.json::<Value>().await.expect("json")["counters"]["injected_5xx"],
        1
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_api_needs_its_token_when_configured_and_survives_junk() {
    let sim = start_with(|c| c.admin_token = Some("letmein".into())).await;
    let r = http()
        .get(format!("{}/_admin/counters", sim.base_url()))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
    let r = http()
        .get(format!("{}/_admin/counters", sim.base_url()))
        .bearer_auth("letmein")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    for (path, body) in [
        ("users", "{"),
        ("channels", "[]"),
        ("huddles", "{\"channel\":1}"),
        ("ratelimit", "{\"mode\":\"warp\"}"),
    ] {
        let r = http()
            .post(format!("{}/_admin/{path}", sim.base_url()))
            .bearer_auth("letmein")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 400, "{path}");
    }
    // Creating people and channels, issuing tokens, over HTTP.
    let post = |path: &'static str, body: Value| {
        let url = format!("{}/_admin/{path}", sim.base_url());
        async move {
            http()
                .post(url)
                .bearer_auth("letmein")
                .json(&body)
                .send()
                .await
                .expect("post")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let u = post(
        "users",
        json!({"name": "erin", "real_name": "Erin Example"}),
    )
    .await;
    let erin = u["id"].as_str().expect("id").to_string();
    let c = post(
        "channels",
        json!({"name": "ops", "members": ["erin", "@bot"]}),
    )
    .await;
    let ops = c["id"].as_str().expect("id").to_string();
    let tok = post("tokens", json!({"user": "erin"})).await["token"]
        .as_str()
        .expect("token")
        .to_string();
    let r = call(
        &sim,
        "chat.postMessage",
        &tok,
        json!({"channel": ops, "text": "hi from erin"}),
    )
    .await;
    assert_eq!(r["message"]["user"], erin);
    let dup = post("users", json!({"name": "erin"})).await;
    assert_eq!(dup["ok"], false);
    sim.shutdown().await;
}
