//! The command line: check-config, convert, and refusing a bad configuration.

use crate::support::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn run(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut child = Command::new(binary())
        .args(args)
        .envs(env.iter().copied())
        .env_remove("SWITCHBOARD_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SECRET: &str = "xoxb-s3cr3t-never-print-me";

/// A config with several problems at once, and a real secret beside them.
fn bad_config(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::write(dir.join("token"), format!("{SECRET}\n")).expect("token");
    let text = r#"
[store]
path = "store"
[http]
listen = "not an address"
[relay]
max_attempts = 0
initial_backoff = "soon"
retries = 3
[[bridge]]
id = "memory:a"
type = "memory"
state_dir = "a"
token_file = "token"
[[bridge]]
id = "memory:b"
type = "memory"
token = "xoxb-inline-secret"
[[portal]]
name = "general"
members = ["memory:a/general", "memory:nope/general"]
"#;
    let path = dir.join("bad.toml");
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn a_bad_config_reports_every_problem_and_exits_64_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = bad_config(dir.path());
    let path = path.to_str().expect("utf-8 path");
    for args in [
        vec!["check-config", "--config", path],
        vec!["run", "--config", path],
    ] {
        let (code, stdout, stderr) = run(&args, "", &[("SWITCHBOARD__LOG__FILTER", "debug")]);
        assert_eq!(code, Some(64), "{args:?}: {stderr}");
        for expected in [
            "http.listen:",
            "relay.max_attempts:",
            "relay.initial_backoff:",
            "relay.retries:",
            "bridge[1].state_dir:",
            "bridge[1].token:",
            "portal[0].members[1]:",
        ] {
            assert!(
                stderr.contains(expected),
                "{args:?}: missing {expected:?} in:\n{stderr}"
            );
        }
        for output in [&stdout, &stderr] {
            assert!(
                !output.contains(SECRET),
                "the token file's secret leaked:\n{output}"
            );
            assert!(
                !output.contains("xoxb-inline-secret"),
                "the inline secret leaked:\n{output}"
            );
        }
    }
}

#[test]
fn check_config_accepts_a_good_file() {
    let setup = Setup::new();
    setup.write_config(2);
    let (code, stdout, stderr) = run(
        &[
            "check-config",
            "--config",
            setup.config_path().to_str().expect("utf-8"),
        ],
        "",
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("ok (2 bridges, 2 portals)"), "{stdout}");
}

#[test]
fn the_running_daemon_never_logs_a_secret() {
    let mut setup = Setup::new();
    std::fs::write(setup.path("token"), SECRET).expect("token");
    setup.bridge_extra = format!("token_file = \"{}\"", setup.path("token").display());
    setup.write_config(1);
    // Debug logging on, everything relayed once.
    let text = std::fs::read_to_string(setup.config_path()).expect("read");
    std::fs::write(
        setup.config_path(),
        text.replace("filter = \"info\"", "filter = \"debug\""),
    )
    .expect("write");
    let (a, b) = (setup.platform("a"), setup.platform("b"));
    let mut daemon = setup.spawn();
    daemon.wait_ready(std::time::Duration::from_secs(20));
    a.post("c0", "ann", "Ann", "hello").expect("post");
    wait_for("relayed", std::time::Duration::from_secs(10), || {
        relayed(&b, "c0").len() == 1
    });
    daemon.signal("TERM");
    assert_eq!(
        daemon.wait_exit(std::time::Duration::from_secs(30)),
        Some(0)
    );
    let log = setup.log();
    assert!(log.contains("Switchboard started."), "{log}");
    assert!(!log.contains(SECRET), "secret in the log:\n{log}");
    setup.extra.clear();
}

#[test]
fn convert_between_dialects() {
    let (code, stdout, _) = run(
        &["convert", "--from", "plain", "--to", "richtext-json"],
        "hi\nthere",
        &[],
    );
    assert_eq!(code, Some(0));
    assert!(stdout.contains("\"line_break\""), "{stdout}");
    let (code, stdout, _) = run(
        &["convert", "--from", "richtext-json", "--to", "plain"],
        &stdout,
        &[],
    );
    assert_eq!(code, Some(0));
    assert_eq!(stdout, "hi\nthere\n");
    let (code, _, stderr) = run(&["convert", "--from", "nope", "--to", "plain"], "x", &[]);
    assert_eq!(code, Some(65));
    assert!(stderr.contains("unknown dialect \"nope\""), "{stderr}");
    let (code, stdout, _) = run(&["convert", "--list"], "", &[]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout, "richtext-json\nplain\nslack\nteams\nmatrix\n");
}

#[test]
fn the_demo_runs_a_whole_conversation() {
    let (code, stdout, stderr) = run(&["demo"], "", &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("10 events relayed, 5 messages on each side plus the call's one invite"),
        "{stdout}"
    );
    // The call's invite, edited to its end with the title it started with.
    assert!(
        stdout.contains("📞 Bob started Release call — join: https://meet.jit.si/"),
        "{stdout}"
    );
    assert!(
        stdout.contains("📞 Release call ended after 17m 05s” (edited)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(the same conversation on both sides)"),
        "{stdout}"
    );
    assert!(stdout.contains("(edited) 👍"), "{stdout}");
}
