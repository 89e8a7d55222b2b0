//! The standalone `slack-sim` binary: seed file in, base URL and tokens out (`--json`),
//! serving until SIGTERM; bad seeds exit with 64.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

#[tokio::test]
async fn binary_prints_json_serves_and_stops_on_sigterm() {
    let mut seed = tempfile::NamedTempFile::new().expect("temp file");
    let s = json!({"users": [{"name": "alice"}], "channels": [{"name": "general", "members": ["alice", "@bot"]}]});
    seed.write_all(s.to_string().as_bytes()).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_slack-sim"))
        .args(["--listen", "127.0.0.1:0", "--json", "--seed"])
        .arg(seed.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("line");
        line
    })
    .await
    .expect("join");
    let v: Value = serde_json::from_str(&line).expect("one JSON object");
    let base = v["base_url"].as_str().expect("base_url").to_string();
    let bot = v["bot_token"].as_str().expect("bot_token");
    assert!(
        v["app_token"]
            .as_str()
            .expect("app_token")
            .starts_with("xapp-")
    );
    let alice = v["user_tokens"]["alice"].as_str().expect("alice token");
    assert!(
        v["channels"]["general"]
            .as_str()
            .is_some_and(|c| c.starts_with('C'))
    );
    let http = reqwest::Client::new();
    for token in [bot, alice] {
        let r: Value = http
            .post(format!("{base}/api/auth.test"))
            .bearer_auth(token)
            .send()
            .await
            .expect("call")
            .json()
            .await
            .expect("json");
        assert_eq!(r["ok"], true);
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");

    // A bad seed is a usage error.
    let mut bad = tempfile::NamedTempFile::new().expect("temp file");
    bad.write_all(br#"{"channels":[{"name":"x","members":["nobody"]}]}"#)
        .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_slack-sim"))
        .arg("--seed")
        .arg(bad.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
}
