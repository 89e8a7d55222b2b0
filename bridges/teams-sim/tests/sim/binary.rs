//! The standalone `teams-sim` binary: prints its URLs and credentials, serves, exits 64 on a
//! bad seed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn binary_prints_json_and_serves() {
    let mut f = tempfile::NamedTempFile::new().expect("tmp");
    f.write_all(serde_json::to_string(&seed()).expect("json").as_bytes())
        .expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_teams-sim"))
        .args(["--listen", "127.0.0.1:0", "--json", "--seed"])
        .arg(f.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut l = String::new();
        BufReader::new(stdout).read_line(&mut l).map(|_| l)
    })
    .await
    .expect("join")
    .expect("line");
    let info: Value = serde_json::from_str(&line).expect("one JSON line");
    assert_eq!(info["tenant_id"], "2432b57b-0abd-43db-aa7b-16eadd115d34");
    assert_eq!(info["client_secret"], "s3cret");
    let base = info["base_url"].as_str().expect("base").to_string();
    let tok = call(
        "POST",
        &format!("{base}/_admin/tokens/delegated"),
        None,
        Some(json!({"user": ADELE})),
    )
    .await;
    let tok = tok.body["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let me = call(
        "GET",
        &format!("{}/me", info["graph_url"].as_str().expect("g")),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(me.body["userPrincipalName"], ADELE);
    assert!(info["users"][ADELE].is_string());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn binary_exits_64_on_a_bad_seed() {
    let mut f = tempfile::NamedTempFile::new().expect("tmp");
    f.write_all(br#"{"teams":[{"displayName":"T","members":["nobody@x"]}]}"#)
        .expect("write");
    let st = Command::new(env!("CARGO_BIN_EXE_teams-sim"))
        .arg("--seed")
        .arg(f.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(64));
    let st = Command::new(env!("CARGO_BIN_EXE_teams-sim"))
        .arg("--bogus")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(64));
}
