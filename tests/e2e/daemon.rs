//! The daemon as a process: crash safety, draining, reload, endpoints.

use crate::support::*;
use std::collections::HashSet;
use std::time::Duration;

/// SIGKILL in the middle of a 5,000-message burst across 50 portals, several
/// times; after the last restart every message is delivered exactly once, in
/// order within each portal.
#[test]
fn sigkill_mid_burst_loses_nothing_and_doubles_nothing() {
    const PORTALS: usize = 50;
    const PER_SIDE: usize = 50; // per portal and side: 50 × 50 × 2 = 5,000 messages
    let setup = Setup::new();
    setup.write_config(PORTALS);
    let (a, b) = (setup.platform("a"), setup.platform("b"));

    let mut daemon = setup.spawn();
    daemon.wait_ready(Duration::from_secs(20));

    let injector = {
        let (a, b) = (a.clone(), b.clone());
        std::thread::spawn(move || {
            for n in 0..PER_SIDE {
                for i in 0..PORTALS {
                    a.post(&format!("c{i}"), "ann", "Ann", &format!("a{i}-{n}"))
                        .expect("post a");
                    b.post(&format!("c{i}"), "bob", "Bob", &format!("b{i}-{n}"))
                        .expect("post b");
                }
                std::thread::sleep(Duration::from_millis(60));
            }
        })
    };

    // Kill three times while the burst is flowing: when 15 %, 45 % and 75 % of
    // one direction has been delivered (so the outbox is never empty then).
    let mut kills = 0;
    // One read of the delivery log (the per-channel views re-read it each).
    let delivered = || b.deliveries().len();
    for percent in [15, 45, 75] {
        let threshold = PORTALS * PER_SIDE * percent / 100;
        wait_for(
            "progress before the next kill",
            Duration::from_secs(120),
            || delivered() >= threshold,
        );
        let so_far = delivered();
        assert!(
            so_far < PORTALS * PER_SIDE,
            "killed mid-burst ({so_far} delivered so far)"
        );
        daemon.kill9();
        kills += 1;
        daemon = setup.spawn();
        daemon.wait_ready(Duration::from_secs(20));
    }
    injector.join().expect("injector");
    let total_a = || {
        (0..PORTALS)
            .map(|i| relayed(&b, &format!("c{i}")).len())
            .sum::<usize>()
    };
    let total_b = || {
        (0..PORTALS)
            .map(|i| relayed(&a, &format!("c{i}")).len())
            .sum::<usize>()
    };
    wait_for("every message delivered", Duration::from_secs(180), || {
        total_a() >= PORTALS * PER_SIDE && total_b() >= PORTALS * PER_SIDE
    });
    // Give stragglers (duplicates, if any) a moment to show.
    std::thread::sleep(Duration::from_millis(500));
    daemon.signal("TERM");
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)),
        Some(0),
        "clean exit after SIGTERM"
    );

    for i in 0..PORTALS {
        let channel = format!("c{i}");
        let expected_on_b: Vec<String> = (0..PER_SIDE).map(|n| format!("a{i}-{n}")).collect();
        let expected_on_a: Vec<String> = (0..PER_SIDE).map(|n| format!("b{i}-{n}")).collect();
        assert_eq!(
            relayed(&b, &channel),
            expected_on_b,
            "portal p{i}: a→b exactly once, in order"
        );
        assert_eq!(
            relayed(&a, &channel),
            expected_on_a,
            "portal p{i}: b→a exactly once, in order"
        );
    }
    // The platforms saw each op once.
    for p in [&a, &b] {
        let ops: Vec<_> = p.deliveries().into_iter().map(|d| d.op).collect();
        let unique: HashSet<_> = ops.iter().collect();
        assert_eq!(ops.len(), unique.len(), "no op delivered twice");
        assert_eq!(ops.len(), PORTALS * PER_SIDE);
    }
    assert_eq!(kills, 3);
    eprintln!("5,000 messages, {kills} SIGKILLs: 0 lost, 0 doubled");
}

/// SIGTERM with a non-empty outbox: the daemon keeps delivering until the
/// outbox is empty (within the grace period), then exits 0.
#[test]
fn sigterm_drains_the_outbox_before_exiting() {
    let mut setup = Setup::new();
    setup.bridge_extra = "latency = \"20ms\"".to_owned();
    setup.write_config(1);
    let (a, b) = (setup.platform("a"), setup.platform("b"));
    let mut daemon = setup.spawn();
    daemon.wait_ready(Duration::from_secs(20));
    for n in 0..200 {
        a.post("c0", "ann", "Ann", &format!("m{n}")).expect("post");
    }
    // Every event accepted (acknowledged to the platform), most not delivered yet.
    wait_for("all accepted", Duration::from_secs(20), || {
        a.acked().len() == 200
    });
    let pending = metric(daemon.listen, "switchboard_outbox_depth").unwrap_or(0.0);
    assert!(
        pending > 50.0,
        "outbox should still hold work at SIGTERM, had {pending}"
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    let expected: Vec<String> = (0..200).map(|n| format!("m{n}")).collect();
    assert_eq!(relayed(&b, "c0"), expected, "drained completely, in order");
    assert!(
        setup.log().contains("draining the outbox"),
        "{}",
        setup.log()
    );
    // Once stopped, the store was opened and closed once more, so that the
    // next start need not replay this run's log.
    assert!(
        setup.log().contains("Store settled for a quick next start"),
        "{}",
        setup.log()
    );
    let mut again = setup.spawn();
    again.wait_ready(Duration::from_secs(20));
    again.signal("TERM");
    assert_eq!(again.wait_exit(Duration::from_secs(30)), Some(0));
}

/// SIGHUP with a new portal in the file: it relays at once, same process.
#[test]
fn sighup_adds_a_portal_without_a_restart() {
    let setup = Setup::new();
    setup.write_config(1);
    let (a, b) = (setup.platform("a"), setup.platform("b"));
    let mut daemon = setup.spawn();
    daemon.wait_ready(Duration::from_secs(20));
    let pid = daemon.pid();
    a.post("c1", "ann", "Ann", "before").expect("post");
    a.post("c0", "ann", "Ann", "marker").expect("post");
    wait_for("marker relayed", Duration::from_secs(10), || {
        relayed(&b, "c0") == ["marker"]
    });
    assert!(relayed(&b, "c1").is_empty(), "c1 is not a portal yet");

    setup.write_config(2);
    daemon.signal("HUP");
    wait_for("reload logged", Duration::from_secs(10), || {
        setup.log().contains("Portals and relay settings reloaded")
    });
    a.post("c1", "ann", "Ann", "after").expect("post");
    wait_for("new portal relays", Duration::from_secs(10), || {
        relayed(&b, "c1") == ["after"]
    });
    assert_eq!(daemon.pid(), pid);
    assert!(
        daemon.child.try_wait().expect("try_wait").is_none(),
        "still the same running process"
    );

    // A broken file on SIGHUP is refused; the daemon keeps running on the old one.
    std::fs::write(setup.config_path(), "[relay]\nmax_attempts = 0\n").expect("write");
    daemon.signal("HUP");
    wait_for("refusal logged", Duration::from_secs(10), || {
        setup.log().contains("Reload refused")
    });
    a.post("c1", "ann", "Ann", "still").expect("post");
    wait_for("still relays", Duration::from_secs(10), || {
        relayed(&b, "c1") == ["after", "still"]
    });
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}

/// /health, /ready and /metrics answer on the configured loopback address.
#[test]
fn health_ready_and_metrics() {
    let setup = Setup::new();
    setup.write_config(1);
    let (a, b) = (setup.platform("a"), setup.platform("b"));
    let mut daemon = setup.spawn();
    daemon.wait_ready(Duration::from_secs(20));
    assert_eq!(
        http_get(daemon.listen, "/health").map(|(c, _)| c),
        Some(200)
    );
    let (_, ready) = http_get(daemon.listen, "/ready").expect("ready");
    assert!(ready.contains("\"memory:a\":\"connected\""), "{ready}");
    a.post("c0", "ann", "Ann", "counted").expect("post");
    wait_for("relayed", Duration::from_secs(10), || {
        relayed(&b, "c0").len() == 1
    });
    wait_for("metrics", Duration::from_secs(5), || {
        metric(
            daemon.listen,
            "switchboard_delivered_total{bridge=\"memory:b\",kind=\"send\"}",
        ) == Some(1.0)
    });
    assert_eq!(
        metric(
            daemon.listen,
            "switchboard_inbound_total{bridge=\"memory:a\",kind=\"message\"}"
        ),
        Some(1.0)
    );
    let (_, body) = http_get(daemon.listen, "/metrics").expect("metrics");
    assert!(
        body.contains("switchboard_delivery_latency_seconds_bucket{bridge=\"memory:b\""),
        "{body}"
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}
