//! The command line: check-config, convert, refusing a bad configuration,
//! and `switchboard demo` (scripted and interactive).

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

/// Whether the demo will have Matrix: Synapse is installed where
/// `SWITCHBOARD_SYNAPSE_VENV` (or `target/synapse-venv`) says, as for the
/// Matrix tests (`./scripts/test.sh` installs it).
fn demo_has_matrix() -> bool {
    switchboard_matrix::testing::installed()
}

/// The lines of one platform's final view in the demo's summary.
fn final_view<'a>(stdout: &'a str, platform: &str) -> Vec<&'a str> {
    let Some((_, views)) = stdout.split_once("What each platform shows now:") else {
        return Vec::new();
    };
    views
        .lines()
        .skip_while(|l| l.trim_end() != format!("  {platform}:"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(str::trim)
        .collect()
}

/// No token of the simulators or of the application service in the output.
fn assert_no_secrets(output: &str) {
    for secret in ["xoxb-", "xapp-", "xoxp-", "demo-as-", "demo-hs-"] {
        assert!(!output.contains(secret), "{secret}… printed:\n{output}");
    }
}

#[test]
fn the_demo_runs_a_whole_conversation() {
    let matrix = demo_has_matrix();
    let (code, stdout, stderr) = run(&["demo"], "", &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_no_secrets(&stdout);
    assert_no_secrets(&stderr);
    let first: Vec<&str> = stdout.lines().take(3).collect();
    if matrix {
        assert!(
            first[0].contains("Slack, Microsoft Teams and Matrix"),
            "{stdout}"
        );
        assert!(
            stdout.contains(
                "Nothing lost, nothing doubled: all 8 messages are on Slack, Teams and Matrix exactly once each"
            ),
            "{stdout}"
        );
    } else {
        assert!(
            first[0].contains("running without Matrix"),
            "said first: {stdout}"
        );
        assert!(
            stdout.contains(
                "Nothing lost, nothing doubled: all 6 messages are on Slack and Teams exactly once each"
            ),
            "{stdout}"
        );
    }
    assert!(stdout.contains("Temporary directory"), "{stdout}");
    assert!(stdout.contains("Slack → Teams"), "{stdout}");
    assert!(stdout.contains("Teams → Slack"), "{stdout}");

    let slack = final_view(&stdout, "Slack");
    for line in [
        "Ann Lee: Morning all! The *release* is at _15:00_ from branch `release-1.4`. (edited)",
        "Bob Builder (Teams): Morning Ann. The *Teams side is ready*, _tests green_. 👍",
        "↳ Bob Builder (Teams): Can we move it to *15:00*?",
        "Bob Builder (Teams): @Dee Diaz please update the release notes.",
        "Ann Lee: Release chart attached 📎 chart.png",
        "Slackbot: 📞 A huddle happened (ended) (edited)",
        "Bob Builder (Teams): See you at *three*.",
    ] {
        assert!(slack.contains(&line), "Slack: {line:?} in {slack:#?}");
    }
    let teams = final_view(&stdout, "Teams");
    for line in [
        "Ann Lee (Slack): Morning all! The <b>release</b> is at <i>15:00</i> from branch <code>release-1.4</code>. (edited)",
        "↳ Bob Builder: Can we move it to <b>15:00</b>?",
        "Bob Builder: Morning Ann. The <b>Teams side is ready</b>, <i>tests green</i>. 👍",
        "Bob Builder: <at>Dee Diaz</at> please update the release notes.",
        "Ann Lee (Slack): Release chart attached 📎 chart.png",
        "Bob Builder: See you at <b>three</b>.",
    ] {
        assert!(teams.contains(&line), "Teams: {line:?} in {teams:#?}");
    }
    assert!(
        teams.iter().any(|l| l.starts_with(
            "Switchboard Relay: 📞 The call <b>Ann Lee</b> started on Slack ended after"
        )),
        "the call card, edited to its end: {teams:#?}"
    );
    let matrix_view = final_view(&stdout, "Matrix");
    if matrix {
        for line in [
            "Ann Lee (Slack): Morning all! The <strong>release</strong> is at <em>15:00</em> from branch <code>release-1.4</code>. (edited)",
            "Bob Builder (Teams): Morning Ann. The <strong>Teams side is ready</strong>, <em>tests green</em>. 👍",
            "Mo Reyes: Hello from <b>Matrix</b>, watching the <code>release-1.4</code> build.",
            "↳ Bob Builder (Teams): Can we move it to <strong>15:00</strong>?",
            "Mo Reyes: <a href=\"…\">Ann Lee (Slack)</a>: 15:00 works for Matrix too.",
            "Ann Lee (Slack): 📎 chart.png",
            "Bob Builder (Teams): See you at <strong>three</strong>.",
        ] {
            assert!(
                matrix_view.contains(&line),
                "Matrix: {line:?} in {matrix_view:#?}"
            );
        }
        assert!(
            matrix_view
                .iter()
                .any(|l| l.contains("📞 Ann Lee's Slack huddle ended after")),
            "the call notice, edited to its end: {matrix_view:#?}"
        );
        // What Matrix said arrived on the other two.
        assert!(
            slack.contains(&"Mo Reyes (Matrix): @Ann Lee: 15:00 works for Matrix too."),
            "{slack:#?}"
        );
        assert!(
            teams.contains(&"Mo Reyes (Matrix): @Ann Lee (Slack): 15:00 works for Matrix too."),
            "{teams:#?}"
        );
    } else {
        assert!(matrix_view.is_empty(), "{stdout}");
    }
    // The deleted message is gone everywhere.
    for view in [&slack, &teams, &matrix_view] {
        assert!(
            !view.iter().any(|l| l.contains("oops, wrong channel")),
            "{view:#?}"
        );
    }
}

#[test]
fn the_interactive_demo_relays_what_is_typed() {
    let matrix = demo_has_matrix();
    let mut input =
        String::from("slack> hello from a pipe\nnot a line for anyone\nteams> hi from Teams\n");
    if matrix {
        input.push_str("matrix> hey from Matrix\n");
    }
    let (code, stdout, stderr) = run(&["demo", "--interactive", "--no-script"], &input, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_no_secrets(&stdout);
    assert!(stdout.contains("Your turn."), "{stdout}");
    assert!(
        !stdout.contains("Nothing lost"),
        "--no-script plays no script: {stdout}"
    );
    let arrived = |to: &str, line: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("  → {to:<6} (+")) && l.ends_with(line))
    };
    assert!(
        arrived("Teams", "Ann Lee (Slack): hello from a pipe"),
        "{stdout}"
    );
    assert!(
        arrived("Slack", "Bob Builder (Teams): hi from Teams"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Start the line with one of: slack> teams>"),
        "{stdout}"
    );
    if matrix {
        assert!(
            arrived("Matrix", "Ann Lee (Slack): hello from a pipe"),
            "{stdout}"
        );
        assert!(
            arrived("Matrix", "Bob Builder (Teams): hi from Teams"),
            "{stdout}"
        );
        assert!(
            arrived("Slack", "Mo Reyes (Matrix): hey from Matrix"),
            "{stdout}"
        );
        assert!(
            arrived("Teams", "Mo Reyes (Matrix): hey from Matrix"),
            "{stdout}"
        );
    }
}
