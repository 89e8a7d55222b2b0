//! Throttling (429 + Retry-After) and injected 5xx.

use serde_json::json;
use switchboard_teams_sim::SimConfig;
use switchboard_teams_sim::limits::{FaultConfig, Mode};

use crate::support::*;

#[tokio::test]
async fn strict_mode_throttles_with_retry_after() {
    let sim = start_with(SimConfig {
        rate_limit: Mode::Strict,
        ..SimConfig::default()
    })
    .await;
    let adele = sim.delegated_token(ADELE).expect("token");
    let (team, ch) = general(&sim);
    let url = format!("{}/teams/{team}/channels/{ch}/messages", sim.graph_url());
    let body = json!({"body": {"content": "x"}});
    let mut statuses = Vec::new();
    let mut throttled = None;
    for _ in 0..3 {
        let r = call("POST", &url, Some(&adele), Some(body.clone())).await;
        statuses.push(r.status);
        if r.status == 429 {
            throttled = Some(r);
        }
    }
    assert_eq!(
        statuses,
        [201, 201, 429],
        "strict: 2 channel posts per second"
    );
    let r = throttled.expect("429");
    assert_eq!(r.body["error"]["code"], "TooManyRequests");
    assert_eq!(r.body["error"]["message"], "Please retry again later.");
    assert_eq!(r.body["error"]["innerError"]["status"], "429");
    let ra: f64 = r.headers["retry-after"]
        .to_str()
        .expect("s")
        .parse()
        .expect("seconds");
    assert!(ra > 0.0 && ra <= 1.0, "{ra}");
    tokio::time::sleep(std::time::Duration::from_secs_f64(ra + 0.05)).await;
    assert_eq!(
        call("POST", &url, Some(&adele), Some(body.clone()))
            .await
            .status,
        201
    );
    assert!(sim.counters().throttled >= 1);

    // Off: no limit.
    sim.set_rate_limit_mode(Mode::Off);
    for _ in 0..5 {
        assert_eq!(
            call("POST", &url, Some(&adele), Some(body.clone()))
                .await
                .status,
            201
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_errors_and_rate_limit_via_admin() {
    let sim = start().await;
    let app = sim.app_token();
    let url = format!("{}/users/{ADELE}", sim.graph_url());
    sim.set_faults(FaultConfig {
        error_rate: 1.0,
        ..FaultConfig::default()
    });
    let r = call("GET", &url, Some(&app), None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["error"]["code"], "ServiceUnavailable");
    sim.set_faults(FaultConfig::default());
    assert_eq!(call("GET", &url, Some(&app), None).await.status, 200);
    let r = call(
        "POST",
        &format!("{}/_admin/rate-limit", sim.base_url()),
        None,
        Some(json!({"mode": "strict"})),
    )
    .await;
    assert_eq!(r.status, 200);
    let mut got429 = false;
    for _ in 0..20 {
        if call("GET", &url, Some(&app), None).await.status == 429 {
            got429 = true;
            break;
        }
    }
    assert!(got429);
    let c = call(
        "GET",
        &format!("{}/_admin/counters", sim.base_url()),
        None,
        None,
    )
    .await;
    assert!(c.body["injected_5xx"].as_u64().expect("n") >= 1);
    sim.shutdown().await;
}
