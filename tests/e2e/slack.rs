//! The daemon with the Slack connector against the Slack simulator, and a
//! memory platform on the other side of each portal: relaying both ways, and
//! counting losses and duplicates under Socket Mode disconnects, a killed
//! daemon, an outage longer than Slack's redelivery, and a 429 storm.

use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_model::testing::MemoryPlatform;
use switchboard_slack::ratelimit::RateLimiter;
use switchboard_slack::web::{SlackApi, Token};
use switchboard_slack_sim::ratelimit::Mode;
use switchboard_slack_sim::seed::{AppSeed, ChannelSeed, Seed, UserSeed};
use switchboard_slack_sim::{SimConfig, SlackSim};

/// The simulator on its own runtime, a scratch directory and a config joining
/// `memory:a/c{i}` with Slack channel `room{i}` for each portal.
pub struct SlackSetup {
    pub rt: tokio::runtime::Runtime,
    pub sim: SlackSim,
    pub setup: Setup,
    pub channels: Vec<String>,
    pub rate_limits: bool,
    /// The HTTP Events API instead of Socket Mode.
    pub events_mode: bool,
    /// Extra lines for the `[store]`/`[http]` and Slack bridge sections.
    pub store_extra: String,
    pub http_extra: String,
    pub slack_extra: String,
}

impl SlackSetup {
    pub fn new(portals: usize, config: SimConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let seed = Seed {
            users: vec![UserSeed {
                name: "alice".into(),
                real_name: Some("Alice Liddell".into()),
                ..UserSeed::default()
            }],
            channels: (0..portals)
                .map(|i| ChannelSeed {
                    name: format!("room{i}"),
                    members: vec!["alice".into(), "@bot".into()],
                    ..ChannelSeed::default()
                })
                .collect(),
            app: AppSeed {
                slash_commands: Some(vec!["/switchboard".into()]),
                ..AppSeed::default()
            },
            ..Seed::default()
        };
        let sim = rt
            .block_on(SlackSim::start(SimConfig {
                seed: Some(seed),
                ..config
            }))
            .expect("simulator starts");
        let channels = (0..portals)
            .map(|i| sim.seeded().channels[&format!("room{i}")].clone())
            .collect();
        SlackSetup {
            rt,
            sim,
            setup: Setup::new(),
            channels,
            rate_limits: true,
            events_mode: false,
            store_extra: String::new(),
            http_extra: String::new(),
            slack_extra: String::new(),
        }
    }

    pub fn write_config(&self) {
        let s = &self.setup;
        let seeded = self.sim.seeded();
        std::fs::write(s.path("bot-token"), &seeded.bot_token).expect("token");
        std::fs::write(s.path("app-token"), &seeded.app_token).expect("token");
        std::fs::write(s.path("signing-secret"), &seeded.signing_secret).expect("secret");
        let inbound = if self.events_mode {
            "mode = \"events\"\nsigning_secret_file = \"signing-secret\""
        } else {
            "app_token_file = \"app-token\""
        };
        let mut text = format!(
            "[store]\npath = \"store\"\n{}\n[http]\nlisten = \"{}\"\n{}\n[log]\nfilter = \"{}\"\n\n[relay]\ninitial_backoff = \"100ms\"\nmax_backoff = \"2s\"\nmax_attempts = 50\ndrain_grace = \"30s\"\n\n\
             [[bridge]]\nid = \"memory:a\"\ntype = \"memory\"\nstate_dir = \"platform-a\"\n\n\
             [[bridge]]\nid = \"slack:sim\"\ntype = \"slack\"\napi_url = \"{}/api\"\nbot_token_file = \"bot-token\"\n{inbound}\nrate_limits = {}\n{}\n\n",
            self.store_extra,
            s.listen,
            self.http_extra,
            crate::support::log_filter(),
            self.sim.base_url(),
            self.rate_limits,
            self.slack_extra
        );
        for (i, channel) in self.channels.iter().enumerate() {
            text.push_str(&format!("[[portal]]\nname = \"p{i}\"\nmembers = [\"memory:a/c{i}\", \"slack:sim/{channel}\"]\n\n"));
        }
        std::fs::write(s.config_path(), text).expect("config");
    }

    pub fn memory(&self) -> MemoryPlatform {
        self.setup.platform("a")
    }

    /// Alice, acting through the Web API with her own token.
    pub fn alice(&self) -> SlackPerson {
        self.person(self.sim.seeded().user_tokens["alice"].clone())
    }

    /// A new person (handle `name`, full name `real_name`) with a user
    /// token: their id, and them acting through the Web API.
    pub fn add_person(&self, name: &str, real_name: &str) -> (String, SlackPerson) {
        let id = self
            .sim
            .add_user(UserSeed {
                name: name.into(),
                real_name: Some(real_name.into()),
                ..UserSeed::default()
            })
            .expect("add a Slack person");
        let token = self.sim.issue_user_token(&id, None).expect("user token");
        (id, self.person(token))
    }

    /// Someone acting through the Web API with `token`.
    pub fn person(&self, token: String) -> SlackPerson {
        let api = SlackApi::new(
            format!("{}/api", self.sim.base_url()),
            Arc::new(RateLimiter::new(false)),
        )
        .expect("api");
        SlackPerson {
            api,
            token: Token::new(token),
        }
    }

    pub fn post(&self, who: &SlackPerson, channel: &str, text: &str) -> String {
        let v = self.rt.block_on(who.api.call(
            "chat.postMessage",
            &who.token,
            json!({ "channel": channel, "text": text }),
            None,
        ));
        v.unwrap_or_else(|e| panic!("post: {e}"))["ts"]
            .as_str()
            .expect("ts")
            .to_owned()
    }

    /// Top-level messages the bridge posted in a Slack channel, oldest first.
    pub fn relayed_to_slack(&self, channel: &str) -> Vec<String> {
        let mut msgs: Vec<Value> = self
            .sim
            .messages(channel)
            .into_iter()
            .filter(|m| m.get("bot_id").is_some())
            .collect();
        msgs.sort_by(|a, b| {
            ts(a)
                .partial_cmp(&ts(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        msgs.iter()
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect()
    }
}

pub struct SlackPerson {
    pub api: SlackApi,
    pub token: Token,
}

fn ts(m: &Value) -> f64 {
    m["ts"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0.0)
}

/// Lost and doubled, comparing what arrived with what was sent, in order.
fn count(sent: &[String], arrived: &[String]) -> (usize, usize) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for a in arrived {
        *seen.entry(a.as_str()).or_default() += 1;
    }
    let lost = sent
        .iter()
        .filter(|s| !seen.contains_key(s.as_str()))
        .count();
    let doubled = seen.values().filter(|n| **n > 1).map(|n| n - 1).sum();
    (lost, doubled)
}

#[test]
fn slack_and_another_platform_relay_both_ways() {
    let s = SlackSetup::new(1, SimConfig::default());
    s.write_config();
    let memory = s.memory();
    let mut daemon = s.setup.spawn();
    daemon.wait_ready(Duration::from_secs(30));
    let alice = s.alice();
    let room = &s.channels[0];

    s.post(&alice, room, "hello from *Slack*");
    wait_for("Slack → memory", Duration::from_secs(20), || {
        relayed(&memory, "c0") == ["hello from Slack"]
    });
    let m = &memory.messages("c0")[0];
    assert_eq!(m.author_name, "Alice Liddell");

    memory
        .post("c0", "ann", "Ann", "hello from elsewhere & <friends>")
        .expect("post");
    wait_for("memory → Slack", Duration::from_secs(20), || {
        !s.relayed_to_slack(room).is_empty()
    });
    let posted = s
        .sim
        .messages(room)
        .into_iter()
        .find(|m| m.get("bot_id").is_some())
        .expect("posted");
    assert_eq!(posted["text"], "hello from elsewhere &amp; &lt;friends&gt;");
    assert_eq!(posted["username"], "Ann (memory)");
    // Our own post came back from Slack as an event and was not relayed back.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(relayed(&memory, "c0"), ["hello from Slack"], "no echo");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}

/// Messages from Slack while Slack keeps dropping the socket (every reason it
/// sends) and while the daemon is killed and restarted: each arrives once.
#[test]
fn socket_disconnects_and_a_killed_daemon_lose_and_double_nothing() {
    const N: usize = 300;
    let s = SlackSetup::new(
        1,
        SimConfig {
            ack_timeout: Duration::from_millis(500),
            ..SimConfig::default()
        },
    );
    s.write_config();
    let _log = crate::three::LogOnPanic(&s.setup);
    let memory = s.memory();
    let mut daemon = s.setup.spawn();
    daemon.wait_ready(Duration::from_secs(30));
    let alice = s.alice();
    let room = s.channels[0].clone();
    let mut sent = Vec::new();
    let reasons = ["warning", "refresh_requested", "too_many_websockets"];
    let mut disconnects = 0;
    for n in 0..N {
        let text = format!("burst {n}");
        s.post(&alice, &room, &text);
        sent.push(text);
        if n % 40 == 20 {
            let _runtime = s.rt.enter();
            disconnects += s.sim.disconnect_sockets(reasons[n % 3]);
        }
        if n == N / 2 {
            daemon.kill9();
            daemon = s.setup.spawn();
            daemon.wait_ready(Duration::from_secs(30));
        }
    }
    wait_for("all delivered", Duration::from_secs(90), || {
        relayed(&memory, "c0").len() >= N
    });
    std::thread::sleep(Duration::from_secs(2));
    let arrived = relayed(&memory, "c0");
    let (lost, doubled) = count(&sent, &arrived);
    eprintln!(
        "Slack → memory: {N} sent, {lost} lost, {doubled} doubled, {disconnects} disconnect frames, 1 SIGKILL"
    );
    assert_eq!((lost, doubled), (0, 0));
    assert_eq!(arrived, sent, "in order");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}

/// The daemon is down longer than Slack keeps retrying (the simulator drops
/// every event while no socket is connected): everything posted meanwhile is
/// caught up from the stored cursor, once.
#[test]
fn an_outage_longer_than_slack_s_redelivery_is_caught_up() {
    let s = SlackSetup::new(
        2,
        SimConfig {
            offline_queue_cap: 0,
            ..SimConfig::default()
        },
    );
    s.write_config();
    let memory = s.memory();
    let alice = s.alice();
    let mut daemon = s.setup.spawn();
    daemon.wait_ready(Duration::from_secs(30));
    s.post(&alice, &s.channels[0], "before");
    wait_for("before", Duration::from_secs(20), || {
        relayed(&memory, "c0") == ["before"]
    });
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));

    let started = Instant::now();
    let mut sent = [Vec::new(), Vec::new()];
    for n in 0..40 {
        for (i, room) in s.channels.iter().enumerate() {
            let text = format!("while down {i}-{n}");
            s.post(&alice, room, &text);
            sent[i].push(text);
        }
    }
    let dropped = s.sim.counters().events_dropped;
    assert!(
        dropped >= 80,
        "Slack dropped the events nobody received ({dropped})"
    );

    let mut daemon = s.setup.spawn();
    daemon.wait_ready(Duration::from_secs(30));
    for (i, sent) in sent.iter().enumerate() {
        let channel = format!("c{i}");
        let before = usize::from(i == 0);
        wait_for("caught up", Duration::from_secs(60), || {
            relayed(&memory, &channel).len() >= sent.len() + before
        });
        let arrived: Vec<String> = relayed(&memory, &channel)
            .into_iter()
            .filter(|t| t != "before")
            .collect();
        let (lost, doubled) = count(sent, &arrived);
        eprintln!(
            "outage of {:?}, portal p{i}: {} sent while down, {lost} lost, {doubled} doubled",
            started.elapsed(),
            sent.len()
        );
        assert_eq!((lost, doubled), (0, 0));
        assert_eq!(&arrived, sent, "in order");
    }
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}

/// Slack enforces its documented limits (about one message per second per
/// channel) and the connector's own limiter is off, so a burst meets a storm
/// of 429s; every message still arrives once and in order.
#[test]
fn a_429_storm_loses_and_doubles_nothing() {
    const N: usize = 30;
    let mut s = SlackSetup::new(
        1,
        SimConfig {
            rate_limit: Mode::Strict,
            ..SimConfig::default()
        },
    );
    s.rate_limits = false;
    s.write_config();
    let memory = s.memory();
    let mut daemon = s.setup.spawn();
    daemon.wait_ready(Duration::from_secs(30));
    let room = s.channels[0].clone();
    let sent: Vec<String> = (0..N).map(|n| format!("storm {n}")).collect();
    for text in &sent {
        memory.post("c0", "ann", "Ann", text).expect("post");
    }
    wait_for("all posted to Slack", Duration::from_secs(120), || {
        s.relayed_to_slack(&room).len() >= N
    });
    std::thread::sleep(Duration::from_secs(1));
    let arrived = s.relayed_to_slack(&room);
    let (lost, doubled) = count(&sent, &arrived);
    let limited = s.sim.counters().ratelimited;
    eprintln!("memory → Slack: {N} sent, {lost} lost, {doubled} doubled, {limited} answers 429");
    assert!(limited > 0, "the simulator rate limited the burst");
    assert_eq!((lost, doubled), (0, 0));
    assert_eq!(arrived, sent, "in order");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(60)), Some(0));
}

/// The HTTP Events API: Slack's url_verification handshake, signed event
/// deliveries relayed, forged and replayed requests refused.
#[test]
fn the_events_api_mode_verifies_signatures_and_relays() {
    let mut s = SlackSetup::new(1, SimConfig::default());
    s.events_mode = true;
    s.write_config();
    let memory = s.memory();
    let mut daemon = s.setup.spawn();
    daemon.wait_ready(Duration::from_secs(30));
    let url = format!("http://{}/slack/sim/events", s.setup.listen);
    s.rt.block_on(s.sim.set_request_url(Some(&url)))
        .expect("url_verification answered");
    let alice = s.alice();
    s.post(&alice, &s.channels[0], "over HTTP");
    wait_for("relayed", Duration::from_secs(20), || {
        relayed(&memory, "c0") == ["over HTTP"]
    });

    // A request Slack did not sign, and one signed five minutes too early.
    let body = r#"{"type":"event_callback","event_id":"EvFORGED","event":{"type":"message","channel":"C1","user":"U1","text":"forged","ts":"1.000001"}}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let secret = s.sim.seeded().signing_secret.clone();
    for (ts, signature) in [
        (
            now.to_string(),
            "v0=0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
        ),
        (
            (now - 301).to_string(),
            switchboard_slack::signature::sign(
                secret.as_bytes(),
                &(now - 301).to_string(),
                body.as_bytes(),
            ),
        ),
    ] {
        let status = http_post(
            s.setup.listen,
            "/slack/sim/events",
            &[
                ("X-Slack-Request-Timestamp", &ts),
                ("X-Slack-Signature", &signature),
            ],
            body,
        );
        assert_eq!(status, Some(401));
    }

    // Correctly signed, but bad: malformed JSON is refused with 400, an
    // unknown event type is acknowledged and ignored, a body over the
    // listener's cap is refused with 413 before anything reads it.
    let signed = |body: &str| -> Option<u16> {
        let ts = now.to_string();
        let signature = switchboard_slack::signature::sign(secret.as_bytes(), &ts, body.as_bytes());
        http_post(
            s.setup.listen,
            "/slack/sim/events",
            &[
                ("X-Slack-Request-Timestamp", &ts),
                ("X-Slack-Signature", &signature),
            ],
            body,
        )
    };
    assert_eq!(signed(r#"{"type":"event_callback","event":"#), Some(400));
    assert_eq!(signed("[1, 2, 3]"), Some(400));
    let unknown = format!(
        r#"{{"type":"event_callback","event_id":"EvUNKNOWN","event":{{"type":"something_new","channel":"{}","user":"U1","ts":"2.000001"}}}}"#,
        s.channels[0]
    );
    assert_eq!(signed(&unknown), Some(200));
    let huge = format!(
        r#"{{"type":"event_callback","event":{{"type":"message","text":"{}"}}}}"#,
        "x".repeat(switchboard_model::http::MAX_BODY + 1)
    );
    assert_eq!(signed(&huge), Some(413));
    // Hostile mrkdwn from a person arrives as harmless text.
    s.post(
        &alice,
        &s.channels[0],
        "<javascript:alert(1)|click> *_~`nested <!channel> <@UNOBODY> &lt;script&gt;",
    );
    wait_for(
        "the hostile message relayed",
        Duration::from_secs(20),
        || relayed(&memory, "c0").len() == 2,
    );
    // Inert text: what the person typed arrives as the characters typed
    // (entities decoded, the room-wide mention mapped), and the daemon runs on.
    let hostile = relayed(&memory, "c0")[1].clone();
    assert_eq!(
        hostile,
        "<javascript:alert(1)|click> *_~`nested @room @UNOBODY <script>"
    );
    assert_eq!(
        daemon.child.try_wait().ok().flatten(),
        None,
        "the daemon runs on"
    );

    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        relayed(&memory, "c0").len(),
        2,
        "nothing forged, malformed or unknown relayed: {:?}",
        relayed(&memory, "c0")
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}

/// Files both ways: bytes downloaded from the origin and uploaded to the
/// target through Slack's upload-v2 flow.
#[test]
fn files_travel_both_ways() {
    let s = SlackSetup::new(1, SimConfig::default());
    s.write_config();
    let memory = s.memory();
    let mut daemon = s.setup.spawn();
    daemon.wait_ready(Duration::from_secs(30));
    let room = s.channels[0].clone();

    // memory → Slack
    memory
        .put_media("doc-1", b"quarterly numbers".to_vec())
        .expect("media");
    let attachment =
        switchboard_model::Attachment::new("doc-1", "numbers.txt", "text/plain", "doc-1")
            .with_size(17);
    let event = switchboard_model::Inbound::new(
        switchboard_model::Origin::new("memory:a", "c0"),
        switchboard_model::EventId::new("ev-file-1"),
        switchboard_model::Sender::new(switchboard_model::Person::new(
            "memory:a".into(),
            "ann".into(),
            "Ann",
        )),
        switchboard_model::InboundKind::Message {
            id: "file-msg-1".into(),
            message: switchboard_model::Message::text("see attached").with_attachment(attachment),
        },
    );
    memory.inject(event).expect("inject");
    let file_message = || {
        s.sim
            .messages(&room)
            .into_iter()
            .find(|m| m["files"].as_array().is_some_and(|f| !f.is_empty()))
    };
    wait_for("file shared in Slack", Duration::from_secs(20), || {
        file_message().is_some()
    });
    let shared = file_message().expect("file message");
    assert_eq!(shared["files"][0]["name"], "numbers.txt");
    let url = shared["files"][0]["url_private_download"]
        .as_str()
        .expect("url")
        .to_owned();
    let api = SlackApi::new(
        format!("{}/api", s.sim.base_url()),
        Arc::new(RateLimiter::new(false)),
    )
    .expect("api");
    let bytes =
        s.rt.block_on(api.download(&url, &Token::new(s.sim.seeded().bot_token.clone()), 1 << 20))
            .expect("download");
    assert_eq!(bytes, b"quarterly numbers");
    assert!(
        s.relayed_to_slack(&room)
            .contains(&"see attached".to_owned())
    );

    // Slack → memory: Alice uploads with the three-step flow.
    let alice = s.alice();
    let slot =
        s.rt.block_on(alice.api.call(
            "files.getUploadURLExternal",
            &alice.token,
            json!({ "filename": "photo.png", "length": 4 }),
            None,
        ))
        .expect("upload url");
    s.rt.block_on(api.upload(
        slot["upload_url"].as_str().expect("url"),
        b"\x89PNG".to_vec(),
    ))
    .expect("upload");
    let files = json!([{ "id": slot["file_id"], "title": "photo.png" }]).to_string();
    s.rt.block_on(alice.api.call(
        "files.completeUploadExternal",
        &alice.token,
        json!({ "files": files, "channel_id": room }),
        None,
    ))
    .expect("complete");
    wait_for("file relayed to memory", Duration::from_secs(20), || {
        memory
            .deliveries()
            .iter()
            .any(|d| d.files.contains(&"photo.png".to_owned()))
    });
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}

/// A raw GET: (status, Location header), or what went wrong on the wire.
pub(crate) fn get_location(url: &str) -> std::io::Result<(u16, Option<String>)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("location:"))
        .map(|l| l[9..].trim().to_owned());
    Ok((status, location))
}

/// The Slack bridge's lines for `switchboard login slack` against the
/// simulator's OAuth (the client secret is read from `client-secret`).
pub(crate) fn oauth_lines(sim: &SlackSim) -> String {
    format!(
        "client_id = \"{}\"\nclient_secret_file = \"client-secret\"\noauth_url = \"{}/oauth/v2/authorize\"",
        sim.seeded().client_id,
        sim.base_url()
    )
}

/// `switchboard login slack --bridge BRIDGE --for PERSON` against the
/// simulator's OAuth v2 flow: the person approves in their browser as Slack
/// user `user` (an id), the simulator redirects to the login's loopback
/// listener, and the login stores the token (through the admin API when
/// the daemon runs). Panics, with what the login printed, when it fails.
pub(crate) fn slack_login(setup: &Setup, bridge: &str, person: &str, user: &str) {
    use std::io::BufRead;
    let mut login = std::process::Command::new(binary())
        .args([
            "login", "slack", "--bridge", bridge, "--for", person, "--config",
        ])
        .arg(setup.config_path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("login starts");
    let stdout = login.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("http"))
        .expect("the authorize URL");
    assert!(url.contains("user_scope=chat%3Awrite"), "{url}");
    let approve = format!(
        "{}&user={user}",
        url.replace("/oauth/v2/authorize?", "/oauth/v2/authorize/approve?")
    );
    let (status, location) = get_location(&approve).expect("the simulator answers");
    assert_eq!(status, 302);
    let callback = location.expect("redirect to the login's loopback listener");
    let status = match get_location(&callback) {
        Ok((status, _)) => status,
        Err(e) => {
            // Show what the login printed: a listener that went away means
            // the login ended early, and its stderr says why.
            let _ = login.kill();
            let out = login.wait_with_output().expect("login output");
            panic!(
                "the redirect to {callback} failed: {e}; login exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    assert_eq!(status, 200);
    let done = login.wait_with_output().expect("login ends");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

/// `switchboard login slack` against the simulator's OAuth v2 flow, with the
/// daemon running: afterwards the person's messages from elsewhere appear in
/// Slack as their own account, and what they write in Slack still relays.
#[test]
fn a_linked_account_posts_as_the_person() {
    let mut s = SlackSetup::new(1, SimConfig::default());
    let seeded = s.sim.seeded().clone();
    std::fs::write(s.setup.path("admin-token"), "admin-s3cret").expect("token");
    std::fs::write(s.setup.path("client-secret"), &seeded.client_secret).expect("secret");
    s.store_extra = "key_file = \"store.key\"".into();
    s.http_extra = "admin_token_file = \"admin-token\"".into();
    s.slack_extra = oauth_lines(&s.sim);
    s.write_config();
    let memory = s.memory();
    let mut daemon = s.setup.spawn();
    daemon.wait_ready(Duration::from_secs(30));
    let room = s.channels[0].clone();
    let alice_id = seeded.users["alice"].clone();

    slack_login(&s.setup, "slack:sim", "memory:a/ann", &alice_id);

    memory
        .post("c0", "ann", "Ann", "now as myself")
        .expect("post");
    let posted = || {
        s.sim
            .messages(&room)
            .into_iter()
            .find(|m| m["text"] == "now as myself")
    };
    wait_for("posted as Alice", Duration::from_secs(20), || {
        posted().is_some()
    });
    let m = posted().expect("message");
    assert_eq!(
        m["user"].as_str(),
        Some(alice_id.as_str()),
        "posted with her own token: {m}"
    );
    assert!(
        m.get("username").is_none() && m.get("bot_id").is_none(),
        "not a puppet: {m}"
    );

    // What Alice writes in Slack herself still reaches the other side, and the
    // echo of her linked post does not.
    s.post(&s.alice(), &room, "typed in Slack");
    wait_for("native message relayed", Duration::from_secs(20), || {
        relayed(&memory, "c0") == ["typed in Slack"]
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        relayed(&memory, "c0"),
        ["typed in Slack"],
        "no echo of the linked post"
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    // The user token is sealed in the store: no xoxp- token in clear on disk.
    for entry in std::fs::read_dir(s.setup.path("store")).expect("store dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                !bytes.windows(5).any(|w| w == b"xoxp-"),
                "a token in clear in {}",
                path.display()
            );
        }
    }
    assert!(!s.setup.log().contains("xoxp-"), "a token in the log");
}

/// A file over the Slack bridge's size cap is not uploaded; the message says so.
#[test]
fn files_over_the_size_cap_are_named_not_uploaded() {
    let mut s = SlackSetup::new(1, SimConfig::default());
    s.slack_extra = "max_upload = 10".into();
    s.write_config();
    let memory = s.memory();
    let mut daemon = s.setup.spawn();
    daemon.wait_ready(Duration::from_secs(30));
    let room = s.channels[0].clone();
    memory.put_media("big-1", vec![7u8; 64]).expect("media");
    let attachment =
        switchboard_model::Attachment::new("big-1", "big.bin", "application/octet-stream", "big-1")
            .with_size(64);
    memory
        .inject(switchboard_model::Inbound::new(
            switchboard_model::Origin::new("memory:a", "c0"),
            switchboard_model::EventId::new("ev-big-1"),
            switchboard_model::Sender::new(switchboard_model::Person::new(
                "memory:a".into(),
                "ann".into(),
                "Ann",
            )),
            switchboard_model::InboundKind::Message {
                id: "big-msg-1".into(),
                message: switchboard_model::Message::text("too big").with_attachment(attachment),
            },
        ))
        .expect("inject");
    wait_for("posted", Duration::from_secs(20), || {
        !s.relayed_to_slack(&room).is_empty()
    });
    let text = s.relayed_to_slack(&room).join("\n");
    assert!(
        text.contains("too big") && text.contains("big.bin (not transferable here)"),
        "{text}"
    );
    assert!(
        s.sim
            .messages(&room)
            .iter()
            .all(|m| m["files"].as_array().is_none_or(Vec::is_empty)),
        "nothing uploaded"
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}
