//! `switchboard demo`: the daemon on an embedded default, with a scripted
//! conversation between two simulated platforms, each side printed as it
//! happens, then a summary. Everything lives in a temporary directory.
//!
//! The two platforms are the file-backed in-memory platform that the tests
//! use; the real daemon (store, relay, HTTP listener) runs in-process.

use crate::Controls;
use crate::config::{
    BridgeConfig, BridgeKind, Config, HttpConfig, LogConfig, MemoryBridgeConfig,
    MemoryCapabilities, PortalConfig, PortalMember, RelayConfig, StoreConfig,
};
use anyhow::Context;
use std::time::{Duration, Instant};
use switchboard_model::testing::{MemoryPlatform, PlatformMessage};
use switchboard_model::{
    CallEvent, CallId, CallProvider, CallState, EventId, Inbound, InboundKind, Message, MessageId,
    Origin, Person, Sender,
};
use tokio_util::sync::CancellationToken;

const NORTH: &str = "memory:north";
const SOUTH: &str = "memory:south";
const CHANNEL: &str = "general";

/// One scripted step: who does what, on which side.
struct Step {
    side: &'static str,
    who: &'static str,
    action: Action,
}

enum Action {
    Say(&'static str),
    ReplyInThread(usize, &'static str),
    Edit(usize, &'static str),
    React(usize, &'static str),
    Delete(usize),
    /// Start a call with this title (a Jitsi room, as a widget would say).
    StartCall(&'static str),
    /// End the call, after this many seconds.
    EndCall(u64),
}

/// The call of the script.
const DEMO_CALL: &str = "demo-call";
const DEMO_CALL_URL: &str = "https://meet.jit.si/SwitchboardDemoRelease";

fn script() -> Vec<Step> {
    use Action::*;
    vec![
        Step {
            side: NORTH,
            who: "Ann",
            action: Say("Morning all! The release is at 14:00."),
        },
        Step {
            side: SOUTH,
            who: "Bob",
            action: Say("Morning Ann. Our side is ready."),
        },
        Step {
            side: SOUTH,
            who: "Bob",
            action: ReplyInThread(0, "Can we move it to 15:00?"),
        },
        Step {
            side: NORTH,
            who: "Ann",
            action: Edit(0, "Morning all! The release is at 15:00."),
        },
        Step {
            side: SOUTH,
            who: "Bob",
            action: React(0, "👍"),
        },
        Step {
            side: NORTH,
            who: "Cid",
            action: Say("oops, wrong channel"),
        },
        Step {
            side: NORTH,
            who: "Cid",
            action: Delete(5),
        },
        Step {
            side: NORTH,
            who: "Ann",
            action: Say("See you at three."),
        },
        Step {
            side: SOUTH,
            who: "Bob",
            action: StartCall("Release call"),
        },
        Step {
            side: SOUTH,
            who: "Bob",
            action: EndCall(17 * 60 + 5),
        },
    ]
}

fn other(side: &str) -> &'static str {
    if side == NORTH { SOUTH } else { NORTH }
}

fn short(side: &str) -> &str {
    side.trim_start_matches("memory:")
}

/// Runs the demo and prints it. Returns an error if the daemon fails or the
/// conversation does not arrive whole.
pub async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let config = Config {
        store: StoreConfig::new(dir.path().join("store")),
        http: HttpConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            admin_token: None,
        },
        log: LogConfig::default(),
        relay: RelayConfig::default(),
        bridges: [NORTH, SOUTH]
            .iter()
            .map(|id| BridgeConfig {
                id: (*id).into(),
                kind: BridgeKind::Memory(MemoryBridgeConfig {
                    state_dir: dir.path().join(short(id)),
                    capabilities: MemoryCapabilities::Full,
                    token: None,
                    latency: Duration::ZERO,
                }),
            })
            .collect(),
        portals: vec![PortalConfig {
            name: "general".into(),
            members: [NORTH, SOUTH]
                .iter()
                .map(|id| PortalMember {
                    bridge: (*id).into(),
                    channel: CHANNEL.into(),
                })
                .collect(),
            calls: Default::default(),
        }],
    };
    let north = MemoryPlatform::open(NORTH, &dir.path().join("north"))?;
    let south = MemoryPlatform::open(SOUTH, &dir.path().join("south"))?;
    let platform = |side: &str| {
        if side == NORTH {
            north.clone()
        } else {
            south.clone()
        }
    };

    let shutdown = CancellationToken::new();
    let (controls, _reload) = Controls::new(shutdown.clone());
    let daemon = tokio::spawn(crate::run(config, controls));

    println!(
        "Switchboard demo: two simulated platforms, \"north\" and \"south\", joined by one portal."
    );
    println!("Store and platform state in {}\n", dir.path().display());

    // Each step's message id on north and on south (the relayed copy).
    let mut ids: Vec<[MessageId; 2]> = Vec::new();
    let side_index = |side: &str| usize::from(side != NORTH);
    let mut latencies = Vec::new();
    for (n, step) in script().into_iter().enumerate() {
        let p = platform(step.side);
        let target = platform(other(step.side));
        let before = target.deliveries().len();
        let user = step.who.to_lowercase();
        let person = Person::new(step.side.into(), user.as_str().into(), step.who);
        let origin = Origin::new(step.side, CHANNEL);
        let here = side_index(step.side);
        let on_this_side = |i: usize| ids[i][here].clone();
        let event = |kind| {
            Inbound::new(
                origin.clone(),
                EventId::new(format!("demo-{n}")),
                Sender::new(person.clone()),
                kind,
            )
        };
        let id = MessageId::new(format!("demo-msg-{n}"));
        let (line, inbound) = match &step.action {
            Action::Say(text) => (
                format!("{}: {text}", step.who),
                event(InboundKind::Message {
                    id: id.clone(),
                    message: Message::text(*text),
                }),
            ),
            Action::ReplyInThread(root, text) => {
                let message = Message::text(*text).in_thread(on_this_side(*root));
                (
                    format!("{} (in thread): {text}", step.who),
                    event(InboundKind::Message {
                        id: id.clone(),
                        message,
                    }),
                )
            }
            Action::Edit(i, text) => (
                format!("{} edits: {text}", step.who),
                event(InboundKind::Edit {
                    target: on_this_side(*i),
                    message: Message::text(*text),
                }),
            ),
            Action::React(i, key) => (
                format!("{} reacts {key}", step.who),
                event(InboundKind::Reaction {
                    target: on_this_side(*i),
                    key: (*key).into(),
                    added: true,
                }),
            ),
            Action::Delete(i) => (
                format!("{} deletes their message", step.who),
                event(InboundKind::Delete {
                    target: on_this_side(*i),
                }),
            ),
            Action::StartCall(title) => {
                let mut call = CallEvent::new(
                    CallId::new(DEMO_CALL),
                    CallProvider::Jitsi,
                    CallState::Started,
                )
                .with_title(*title)
                .with_join_url(DEMO_CALL_URL);
                call.started_by = Some(person.clone());
                (
                    format!("{} starts a call: {title}", step.who),
                    event(InboundKind::Call(call)),
                )
            }
            Action::EndCall(secs) => {
                let call = CallEvent::new(
                    CallId::new(DEMO_CALL),
                    CallProvider::Jitsi,
                    CallState::Ended {
                        duration: Some(Duration::from_secs(*secs)),
                    },
                );
                (
                    format!("{} ends the call", step.who),
                    event(InboundKind::Call(call)),
                )
            }
        };
        println!("[{:>5}] {line}", short(step.side));
        let started = Instant::now();
        p.inject(inbound)?;
        let deadline = started + Duration::from_secs(10);
        while target.deliveries().len() <= before {
            anyhow::ensure!(
                Instant::now() < deadline,
                "step {n} was not relayed within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let latency = started.elapsed();
        let copy = target
            .deliveries()
            .get(before)
            .and_then(|d| d.ids.first().cloned());
        let copy = copy.unwrap_or_else(|| MessageId::new(format!("demo-none-{n}")));
        ids.push(if here == 0 { [id, copy] } else { [copy, id] });
        latencies.push(latency);
        let shown = view(&target.messages(CHANNEL));
        println!(
            "        ↳ {:>5} now shows: {}   ({} ms)",
            short(other(step.side)),
            shown,
            latency.as_millis()
        );
    }

    // Summary: both sides hold the same conversation, nothing lost or doubled.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n_north = north.messages(CHANNEL).len();
    let n_south = south.messages(CHANNEL).len();
    let (v_north, v_south) = (
        view(&north.messages(CHANNEL)),
        view(&south.messages(CHANNEL)),
    );
    latencies.sort();
    let median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or_default();
    println!("\nSummary");
    println!("  north: {v_north}");
    println!("  south: {v_south}");
    // The simulated platforms order messages by millisecond timestamps, so
    // two posted within the same millisecond may be listed either way round:
    // compare the messages, not the listing order.
    // A call shows as an invite on the side it was not started on.
    let sorted = |messages: &[PlatformMessage]| {
        let mut parts: Vec<String> = view(messages)
            .split(" | ")
            .filter(|m| !m.contains("📞"))
            .map(str::to_owned)
            .collect();
        parts.sort();
        parts
    };
    let invite = north
        .messages(CHANNEL)
        .into_iter()
        .find(|m| m.text.contains("📞"))
        .map(|m| m.text);
    anyhow::ensure!(
        invite
            .as_deref()
            .is_some_and(|t| t.contains("ended after 17m 05s")),
        "the call invite was not updated to its end: {invite:?}"
    );
    anyhow::ensure!(
        sorted(&north.messages(CHANNEL)) == sorted(&south.messages(CHANNEL)),
        "the two sides differ"
    );
    println!(
        "  {} events relayed, {} messages on each side plus the call's one invite (edited when it ended), median latency {} ms, nothing lost, nothing doubled.",
        latencies.len(),
        n_south,
        median.as_millis()
    );
    anyhow::ensure!(
        n_north == n_south + 1,
        "the two sides differ: {n_north} vs {n_south} messages (and one call invite)"
    );
    println!("  (the same conversation on both sides)");
    shutdown.cancel();
    daemon.await.context("daemon task failed")??;
    Ok(())
}

/// A one-line view of a channel: live messages with their marks.
fn view(messages: &[PlatformMessage]) -> String {
    let parts: Vec<String> = messages
        .iter()
        .filter(|m| !m.deleted)
        .map(|m| {
            let mut s = format!("{}: “{}”", m.author_name, m.text);
            if m.edited {
                s.push_str(" (edited)");
            }
            if m.thread_root.is_some() {
                s.insert_str(0, "↳ ");
            }
            for (key, _) in &m.reactions {
                s.push(' ');
                s.push_str(key);
            }
            s
        })
        .collect();
    if parts.is_empty() {
        "(nothing)".to_owned()
    } else {
        parts.join(" | ")
    }
}
