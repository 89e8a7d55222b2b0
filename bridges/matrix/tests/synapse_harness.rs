//! The Synapse harness itself, against a real Synapse 1.163.2: shared-secret
//! registration, the client helper, a restart that keeps the database, and
//! an application service's exclusive namespace.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;
use switchboard_matrix::testing::{MatrixUser, Synapse};

/// Writes an application service registration whose URL is a closed
/// loopback port (nothing listens: Synapse's pushes fail, which is fine here).
fn write_registration(dir: &Path, as_token: &str, hs_token: &str) -> PathBuf {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.local_addr().expect("local address").port()
    };
    let yaml = format!(
        r##"id: switchboard-test
url: "http://127.0.0.1:{closed_port}"
as_token: "{as_token}"
hs_token: "{hs_token}"
sender_localpart: switchboard
rate_limited: false
namespaces:
  users:
    - exclusive: true
      regex: "@slack_.*"
  aliases:
    - exclusive: true
      regex: "#slack_.*"
  rooms: []
"##
    );
    let path = dir.join("registration.yaml");
    std::fs::write(&path, yaml).expect("write the registration file");
    path
}

fn start(registrations: &[PathBuf]) -> Synapse {
    let started = Instant::now();
    let synapse = Synapse::start(registrations).unwrap_or_else(|e| {
        panic!(
            "the test suite needs a Synapse homeserver and could not start one \
             (python3 with venv available: {}): {e}",
            Synapse::available()
        )
    });
    eprintln!(
        "Synapse ready at {} ({}) in {:.2?} (install included when it was missing)",
        synapse.base_url,
        synapse.server_name,
        started.elapsed()
    );
    synapse
}

fn bodies(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str())
        .collect()
}

fn token(label: &str) -> String {
    format!("{label}_{:032x}", fastrand_u128())
}

fn fastrand_u128() -> u128 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    nanos ^ (u128::from(std::process::id()) << 64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synapse_registers_sends_survives_a_restart_and_keeps_the_namespace_exclusive() {
    let regdir = tempfile::tempdir().expect("temporary directory");
    let as_token = token("as");
    let hs_token = token("hs");
    let registration = write_registration(regdir.path(), &as_token, &hs_token);

    let mut synapse = start(std::slice::from_ref(&registration));
    assert!(synapse.server_name.starts_with("localhost:"));
    assert!(synapse.dir.join("homeserver.yaml").is_file());

    // A person, registered with the shared secret.
    let (alice_id, alice_token) = synapse
        .register_user("alice", "alice-password", false)
        .await
        .expect("register alice with the shared secret");
    assert_eq!(alice_id, synapse.user_id("alice"));
    let alice = MatrixUser::new(&synapse.base_url, &alice_id, &alice_token);
    let (admin_id, _) = synapse
        .register_user("root", "root-password", true)
        .await
        .expect("register an admin");
    assert_eq!(admin_id, synapse.user_id("root"));

    // A room, a message, read back; the other helpers once each.
    let room = alice
        .create_room(json!({ "name": "harness", "preset": "private_chat" }))
        .await
        .expect("create a room");
    let hello = alice
        .send_text(&room, "hello from alice")
        .await
        .expect("send a message");
    let html = alice
        .send_html(&room, "bold move", "<b>bold</b> move")
        .await
        .expect("send an HTML message");
    let reaction = alice.react(&room, &hello, "👍").await.expect("react");
    let doomed = alice.send_text(&room, "to be deleted").await.expect("send");
    alice
        .redact(&room, &doomed, Some("test"))
        .await
        .expect("redact");
    let mxc = alice
        .upload(b"GIF89a".to_vec(), "image/gif")
        .await
        .expect("upload");
    assert!(mxc.starts_with("mxc://"), "{mxc}");

    let events = alice.messages(&room).await.expect("read messages");
    assert_eq!(bodies(&events), ["bold move", "hello from alice"]);
    let html_event = alice.event(&room, &html).await.expect("get one event");
    assert_eq!(html_event["content"]["formatted_body"], "<b>bold</b> move");
    assert!(
        events
            .iter()
            .any(|e| e["event_id"] == reaction.as_str()
                && e["content"]["m.relates_to"]["key"] == "👍")
    );
    let redacted = events
        .iter()
        .find(|e| e["event_id"] == doomed.as_str())
        .expect("the redacted event is still listed");
    assert_eq!(redacted["content"], json!({}));

    // A restart keeps the port, the database and the access tokens.
    let base_url = synapse.base_url.clone();
    let started = Instant::now();
    synapse.restart_async().await.expect("restart Synapse");
    eprintln!("Synapse restarted in {:.2?}", started.elapsed());
    assert_eq!(synapse.base_url, base_url);
    let events = alice
        .messages(&room)
        .await
        .expect("read messages after the restart");
    assert_eq!(bodies(&events), ["bold move", "hello from alice"]);

    // The application service's namespace is exclusive: a person cannot
    // take @slack_x, the application service can.
    let refused = synapse
        .register_user("slack_x", "password", false)
        .await
        .expect_err("@slack_x is in an exclusive namespace");
    assert_eq!(refused.errcode(), Some("M_EXCLUSIVE"), "{refused}");
    assert_eq!(refused.status(), Some(400), "{refused}");

    let appservice = synapse.appservice(&as_token, "switchboard");
    let ghost_id = appservice
        .register_appservice_user("slack_x")
        .await
        .expect("the application service registers its ghost");
    assert_eq!(ghost_id, synapse.user_id("slack_x"));
    let outside = appservice
        .register_appservice_user("bob")
        .await
        .expect_err("@bob is outside the application service's namespace");
    assert_eq!(outside.errcode(), Some("M_EXCLUSIVE"), "{outside}");

    // The ghost acts through identity assertion (`?user_id=`).
    let ghost = appservice.as_ghost(&ghost_id);
    alice
        .invite(&room, &ghost_id)
        .await
        .expect("invite the ghost");
    assert_eq!(ghost.join(&room).await.expect("the ghost joins"), room);
    ghost
        .send_text(&room, "hello from slack")
        .await
        .expect("the ghost sends");
    let events = alice.messages(&room).await.expect("read messages");
    let from_ghost = events
        .iter()
        .find(|e| e["content"]["body"] == "hello from slack")
        .expect("alice sees the ghost's message");
    assert_eq!(from_ghost["sender"], ghost_id.as_str());

    // Wrong token: a clear Matrix error, no token in it.
    let intruder = MatrixUser::new(&synapse.base_url, &alice_id, "not-a-token");
    let error = intruder
        .send_text(&room, "x")
        .await
        .expect_err("an unknown token is refused");
    assert_eq!(error.errcode(), Some("M_UNKNOWN_TOKEN"), "{error}");
    assert!(!format!("{error} {error:?}").contains("not-a-token"));
    assert!(!format!("{alice:?}").contains(&alice_token));

    synapse.stop_async().await.expect("stop Synapse");
    assert!(!synapse.is_running());
    let down = alice
        .messages(&room)
        .await
        .expect_err("a stopped Synapse answers nothing");
    assert!(down.errcode().is_none(), "{down}");
}

#[test]
fn a_synapse_is_stopped_when_dropped_and_restarts_synchronously() {
    let mut synapse = start(&[]);
    let pid_file = synapse.dir.join("pid");
    let pid = std::fs::read_to_string(&pid_file).expect("pid file");
    let pid = pid.trim().to_owned();
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    let started = Instant::now();
    synapse.restart().expect("restart");
    eprintln!("Synapse restarted (sync) in {:.2?}", started.elapsed());
    let new_pid = std::fs::read_to_string(&pid_file).expect("pid file");
    assert_ne!(new_pid.trim(), pid);

    let dir = synapse.dir.clone();
    let new_pid = new_pid.trim().to_owned();
    drop(synapse);
    // Stopped (a zombie at most, when nothing reaps it) and its directory
    // gone. The process may take a moment to leave the table after its
    // SIGTERM was answered: look again for a few seconds.
    let state_of = |pid: &str| -> Option<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')')
            .next()?
            .split_whitespace()
            .next()
            .map(str::to_owned)
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let mut state = state_of(&new_pid);
    while !matches!(state.as_deref(), None | Some("Z" | "X")) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        state = state_of(&new_pid);
    }
    assert!(
        matches!(state.as_deref(), None | Some("Z" | "X")),
        "Synapse still runs: {state:?}"
    );
    assert!(!dir.exists());
}
