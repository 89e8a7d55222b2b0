//! `switchboard portal link|unlink|list` against the running daemon: a
//! linked portal relays at once, survives a restart, and unlinking stops it.

use crate::support::*;
use std::process::{Command, Output};
use std::time::Duration;

/// A config with two memory bridges, one config portal `p0` (channels `c0`)
/// and an admin token.
fn write_config(setup: &Setup) {
    std::fs::write(setup.path("admin-token"), "admin-s3cret").expect("token");
    let mut text = format!(
        "[store]\npath = \"store\"\n\n[http]\nlisten = \"{}\"\nadmin_token_file = \"admin-token\"\n\n[log]\nfilter = \"info\"\n\n[relay]\ninitial_backoff = \"50ms\"\nmax_backoff = \"1s\"\n\n",
        setup.listen
    );
    for side in ["a", "b"] {
        text.push_str(&format!(
            "[[bridge]]\nid = \"memory:{side}\"\ntype = \"memory\"\nstate_dir = \"platform-{side}\"\n\n"
        ));
    }
    text.push_str("[[portal]]\nname = \"p0\"\nmembers = [\"memory:a/c0\", \"memory:b/c0\"]\n");
    std::fs::write(setup.config_path(), text).expect("write config");
}

fn portal(setup: &Setup, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("portal")
        .args(args)
        .arg("--config")
        .arg(setup.config_path())
        .output()
        .expect("run switchboard portal")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn portals_linked_at_runtime_relay_survive_restarts_and_unlink() {
    let setup = Setup::new();
    write_config(&setup);
    let (a, b) = (setup.platform("a"), setup.platform("b"));

    // No daemon: a clear message and a failure.
    let out = portal(&setup, &["list"]);
    assert!(!out.status.success(), "must fail without a daemon");
    let err = text(&out.stderr);
    assert!(err.contains("the daemon is not running"), "{err}");
    assert!(err.contains(&setup.listen.to_string()), "{err}");

    let mut daemon = setup.spawn();
    daemon.wait_ready(Duration::from_secs(20));

    let out = portal(
        &setup,
        &["link", "sales", "memory:a/sales", "memory:b/ventes"],
    );
    assert!(out.status.success(), "link: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Linked portal sales"),
        "{}",
        text(&out.stdout)
    );
    a.post("sales", "ann", "Ann", "hello from a").expect("post");
    wait_for(
        "relayed in the linked portal",
        Duration::from_secs(20),
        || relayed(&b, "ventes") == ["hello from a"],
    );

    // Validation errors come back with their message.
    let out = portal(&setup, &["link", "dup", "memory:a/c0", "memory:b/other"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already in portal \"p0\""),
        "{}",
        text(&out.stderr)
    );

    let out = portal(&setup, &["list"]);
    assert!(out.status.success(), "list: {}", text(&out.stderr));
    let listed = text(&out.stdout);
    let sales = listed
        .lines()
        .find(|l| l.starts_with("sales "))
        .unwrap_or_else(|| panic!("sales listed: {listed}"));
    assert!(sales.contains("linked"), "{listed}");
    assert!(sales.contains("memory:a/sales memory:b/ventes"), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("p0 ") && l.contains("config")),
        "{listed}"
    );

    // A call in the linked portal is in the call registry, with its invite.
    let run_calls = || {
        Command::new(binary())
            .args(["calls", "--config"])
            .arg(setup.config_path())
            .output()
            .expect("run switchboard calls")
    };
    let out = run_calls();
    assert_eq!(
        text(&out.stdout).trim(),
        "No calls.",
        "{}",
        text(&out.stderr)
    );
    let mut huddle = switchboard_model::CallEvent::new(
        switchboard_model::CallId::new("huddle-e2e"),
        switchboard_model::CallProvider::SlackHuddle,
        switchboard_model::CallState::Started,
    )
    .with_title("Sales sync")
    .with_join_url("https://example.test/huddle-e2e");
    let ann = switchboard_model::Person::new("memory:a".into(), "ann".into(), "Ann");
    huddle.started_by = Some(ann.clone());
    a.inject(switchboard_model::Inbound::new(
        switchboard_model::Origin::new("memory:a", "sales"),
        switchboard_model::EventId::new("ev-huddle-e2e"),
        switchboard_model::Sender::new(ann),
        switchboard_model::InboundKind::Call(huddle),
    ))
    .expect("inject the call");
    let started = std::time::Instant::now();
    let listed = loop {
        let listed = text(&run_calls().stdout);
        if listed.contains("invite in memory:b/ventes") {
            break listed;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the call and its invite listed: {listed}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        listed.contains("sales  [started] Sales sync — https://example.test/huddle-e2e — started by Ann in memory:a/sales"),
        "{listed}"
    );

    // A restart keeps it.
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    let mut daemon = setup.spawn();
    daemon.wait_ready(Duration::from_secs(20));
    let out = portal(&setup, &["list", "--json"]);
    assert!(out.status.success(), "list: {}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        json,
        serde_json::json!([
            {"name": "p0", "source": "config", "members": ["memory:a/c0", "memory:b/c0"]},
            {"name": "sales", "source": "linked", "members": ["memory:a/sales", "memory:b/ventes"]},
        ])
    );
    b.post("ventes", "bob", "Bob", "after restart")
        .expect("post");
    wait_for("relayed after the restart", Duration::from_secs(20), || {
        relayed(&a, "sales") == ["after restart"]
    });

    // A config portal cannot be unlinked; a linked one can, and stops relaying.
    let out = portal(&setup, &["unlink", "p0"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("defined in the config file; remove it there"),
        "{}",
        text(&out.stderr)
    );
    let out = portal(&setup, &["unlink", "sales"]);
    assert!(out.status.success(), "unlink: {}", text(&out.stderr));
    a.post("sales", "ann", "Ann", "after unlink").expect("post");
    a.post("c0", "ann", "Ann", "config portal").expect("post");
    wait_for(
        "config portal still relays",
        Duration::from_secs(20),
        || relayed(&b, "c0") == ["config portal"],
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        relayed(&b, "ventes"),
        [
            "hello from a",
            "📞 Ann started Sales sync — join: https://example.test/huddle-e2e"
        ],
        "nothing after the unlink"
    );
    let out = portal(&setup, &["unlink", "sales"]);
    assert!(!out.status.success(), "unknown now");
    assert!(text(&out.stderr).contains("no portal \"sales\""));

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    let out = portal(&setup, &["unlink", "sales"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("the daemon is not running"));
}
