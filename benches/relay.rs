//! Benchmark of the relay engine alone: `cargo bench --bench relay [-- SCENARIO…]`.
//!
//! What runs: the real [`Relay`] (intake, lanes, translation) on a real
//! [`SledStore`] in a temporary directory on disk, with two in-memory bridges
//! (`bench:src` and `bench:dst`) and N two-member portals (`c{i}` on the source,
//! `d{i}` on the target). No bridge receive loop runs: a load task builds
//! message events and pushes them straight into [`Relay::sink`], keeping many
//! in flight (their durable acknowledgements are awaited by a second task, so
//! the load task never waits on one event). The target is a [`TimingBridge`]:
//! it parses the sequence number the load task wrote into the message text and
//! records the instant it was delivered, so
//!
//! - *added latency* of a message = instant `bench:dst` got it − instant it was
//!   pushed into the sink (the push stamp is taken right before `submit`, so a
//!   full sink channel counts as engine time);
//! - *messages/s* = messages / (first push → last delivery);
//! - *RSS* = `VmHWM` (peak) and `VmRSS` (at the end) from `/proc/self/status`.
//!
//! Each scenario runs in a fresh child process (the binary re-executes itself
//! with `--child NAME`), so every RSS figure belongs to that scenario alone.
//! The runtime is a multi-thread tokio runtime with 2 workers, as on the
//! 2-core machine the targets are set for. The load task runs on the same two
//! workers, as a bridge's receive loop would.
//!
//! Scenarios (pass names, or prefixes of them, after `--` to run only those):
//!
//! - `throughput-1`, `throughput-100`, `throughput-1000`: 100,000 messages as
//!   fast as the engine takes them (at most 4,096 unacknowledged) over 1, 100
//!   and 1,000 portals.
//! - `paced`: 1,000 messages/s for 10 s over 100 portals; added latency.
//! - `backlog-10k`, `backlog-100k`: the target answers "rate limited" until
//!   10,000 / 100,000 ops are queued over 100 portals, then recovers; the
//!   drain rate and the RSS at the deepest outbox.
//! - `memory`: one message from each of 100,000 distinct senders over 10,000
//!   portals (maps 100,000 puppets, starts 10,000 lanes); RSS once the outbox
//!   is empty.
//! - `startup-1m`: 1,000,000 relayed messages written into the store, which
//!   is closed and reopened: the time to a running relay and to the first
//!   message relayed (a start after a crash: sled replays everything written
//!   since it last opened the store); then reopened once more (a start after
//!   a clean stop, which settles the store).
//!
//! Flags: `--runs N` runs each scenario N times (each in its own child) and
//! reports the run with the median msg/s; `--quick` divides every message
//! count by 10 (for profiling under valgrind); `--inline` runs the scenarios
//! in this process instead of one child each. Every row notes the 1-minute
//! load average before and after it: the machine may be shared. Results and
//! their reading are in BENCHMARKS.md.

mod common;
use common::{Latency, Row, loadavg, mib, proc_kib};

use async_trait::async_trait;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use switchboard::config::{PortalConfig, PortalMember, RelayConfig};
use switchboard::daemon::metrics::Metrics;
use switchboard::relay::{Relay, RelaySetup};
use switchboard::store::{Db, SledStore, Store, Tree};
use switchboard_model::bridge::Stored;
use switchboard_model::{
    Attachment, Bridge, BridgeContext, BridgeError, BridgeId, Capabilities, Delivered, EventId,
    Inbound, InboundKind, InboundSink, MediaSource, Message, MessageId, Origin, OutboundKind,
    OutboundOp, Person, PuppetRef, Sender, UserId,
};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// The daemon's allocator (see `src/main.rs`), so the figures are the daemon's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The bridge every event comes from.
const SRC: &str = "bench:src";
/// The bridge every op goes to.
const DST: &str = "bench:dst";
/// Unacknowledged events the load task keeps in flight at most.
const IN_FLIGHT: usize = 4096;
/// How long any one wait in a scenario may take before the run is declared stuck.
const STUCK: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------- scenarios

/// One benchmark scenario.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// `messages` as fast as possible over `portals`.
    Throughput { portals: usize, messages: usize },
    /// `rate` messages/s for `secs` seconds over `portals`.
    Paced {
        portals: usize,
        rate: u32,
        secs: u32,
    },
    /// `backlog` ops queued behind a rate-limited target, then drained.
    Backlog { portals: usize, backlog: usize },
    /// One message from each of `senders` senders over `portals`.
    Memory { portals: usize, senders: usize },
    /// A restart on a store holding `mappings` relayed messages: the time
    /// from opening the store to the relay running, and to the first message
    /// relayed.
    Startup { portals: usize, mappings: usize },
}

/// Every scenario, in the order they run, with its name.
fn scenarios(quick: bool) -> Vec<(&'static str, Scenario)> {
    let div = if quick { 10 } else { 1 };
    vec![
        (
            "throughput-1",
            Scenario::Throughput {
                portals: 1,
                messages: 100_000 / div,
            },
        ),
        (
            "throughput-100",
            Scenario::Throughput {
                portals: 100,
                messages: 100_000 / div,
            },
        ),
        (
            "throughput-1000",
            Scenario::Throughput {
                portals: 1000,
                messages: 100_000 / div,
            },
        ),
        (
            "paced",
            Scenario::Paced {
                portals: 100,
                rate: 1000,
                secs: if quick { 2 } else { 10 },
            },
        ),
        (
            "backlog-10k",
            Scenario::Backlog {
                portals: 100,
                backlog: 10_000 / div,
            },
        ),
        (
            "backlog-100k",
            Scenario::Backlog {
                portals: 100,
                backlog: 100_000 / div,
            },
        ),
        (
            "memory",
            Scenario::Memory {
                portals: 10_000 / div,
                senders: 100_000 / div,
            },
        ),
        (
            "startup-1m",
            Scenario::Startup {
                portals: 100,
                mappings: 1_000_000 / div,
            },
        ),
    ]
}

// ---------------------------------------------------------------- main

fn main() {
    // `cargo bench` adds `--bench`; everything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let quick = args.iter().any(|a| a == "--quick");
    let all = scenarios(quick);
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let name = args.get(i + 1).expect("--child needs a scenario name");
        let (name, scenario) = all
            .iter()
            .find(|(n, _)| n == name)
            .copied()
            .expect("--child names a known scenario");
        let row = run_scenario(name, scenario);
        println!("@row {}", row.markdown());
        return;
    }
    let inline = args.iter().any(|a| a == "--inline");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--runs takes a number"))
        .unwrap_or(1);
    let filters: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
        .collect();
    let selected: Vec<(&str, Scenario)> = all
        .iter()
        .filter(|(n, _)| {
            // A filter naming a scenario exactly selects only that one.
            filters.is_empty()
                || filters.iter().any(|f| {
                    *n == f.as_str()
                        || (n.starts_with(f.as_str()) && !all.iter().any(|(m, _)| *m == f.as_str()))
                })
        })
        .copied()
        .collect();
    if selected.is_empty() {
        let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
        eprintln!(
            "No scenario matches {filters:?}. Scenarios: {}",
            names.join(", ")
        );
        std::process::exit(2);
    }
    println!("{}", machine());
    println!();
    println!("{}", Row::header());
    for (name, scenario) in selected {
        if inline {
            println!("{}", run_scenario(name, scenario).markdown());
        } else {
            println!("{}", median_of_runs(name, quick, runs.max(1)));
        }
    }
}

/// Runs a scenario `runs` times, each in a fresh child process; returns the
/// row of the run with the median msg/s, noting every run's msg/s.
fn median_of_runs(name: &str, quick: bool, runs: usize) -> String {
    let rate = |row: &str| -> f64 {
        row.split('|')
            .nth(4)
            .and_then(|r| r.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let mut rows: Vec<String> = (0..runs).map(|_| run_child(name, quick)).collect();
    if runs == 1 {
        return rows.remove(0);
    }
    let all: Vec<String> = rows.iter().map(|r| format!("{:.0}", rate(r))).collect();
    rows.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    let median = rows.swap_remove(runs / 2);
    match median.strip_suffix(" |") {
        Some(row) => format!("{row}; median of {runs} runs: {} msg/s |", all.join(", ")),
        None => median,
    }
}

/// Runs one scenario in a fresh child process; returns its table row.
fn run_child(name: &str, quick: bool) -> String {
    let exe = std::env::current_exe().expect("the bench knows its own path");
    let mut cmd = Command::new(exe);
    cmd.arg("--child").arg(name);
    if quick {
        cmd.arg("--quick");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the bench can start itself");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut row = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output is text");
        match line.strip_prefix("@row ") {
            Some(r) => row = Some(r.to_owned()),
            None => eprintln!("{line}"),
        }
    }
    let status = child.wait().expect("child runs");
    match row {
        Some(r) if status.success() => r,
        _ => format!("| {name} | failed: {status} | | | | | | | | |"),
    }
}

/// The machine, for the record.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = proc_kib(Path::new("/proc/meminfo"), "MemTotal:");
    format!(
        "Machine: {cpu}, {cores} cores, {} RAM; tokio multi-thread runtime with 2 workers; sled 0.34 in a temporary directory under {}.",
        mib(mem),
        std::env::temp_dir().display()
    )
}

fn run_scenario(name: &str, scenario: Scenario) -> Row {
    let load_before = loadavg();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut row = rt.block_on(async move {
        match scenario {
            Scenario::Throughput { portals, messages } => throughput(portals, messages).await,
            Scenario::Paced {
                portals,
                rate,
                secs,
            } => paced(portals, rate, secs).await,
            Scenario::Backlog { portals, backlog } => backlog_drain(portals, backlog).await,
            Scenario::Memory { portals, senders } => memory(portals, senders).await,
            Scenario::Startup { portals, mappings } => startup(portals, mappings).await,
        }
    });
    row.scenario = name.to_owned();
    row.notes = format!("{}; load {load_before}→{}", row.notes, loadavg());
    row.hwm_kib = proc_kib(Path::new("/proc/self/status"), "VmHWM:");
    if row.rss_kib == 0 {
        row.rss_kib = proc_kib(Path::new("/proc/self/status"), "VmRSS:");
    }
    row
}

// ---------------------------------------------------------------- measurements

/// CPU time (user + system) this process has used so far, from
/// `/proc/self/stat` (in clock ticks of 10 ms).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
    // utime and stime: fields 14 and 15 of the line, 11 and 12 after the name.
    #[allow(clippy::cast_precision_loss)]
    let secs = (ticks(11) + ticks(12)) as f64 / 100.0;
    secs
}

fn rss_kib() -> u64 {
    proc_kib(Path::new("/proc/self/status"), "VmRSS:")
}

/// When each message was pushed and delivered, in ns since `base` (+1, so
/// that 0 means "not yet").
#[derive(Debug)]
struct Timeline {
    base: Instant,
    pushed: Vec<AtomicU64>,
    delivered: Vec<AtomicU64>,
    count: AtomicUsize,
    duplicates: AtomicUsize,
    done: Notify,
}

impl Timeline {
    fn new(messages: usize) -> Arc<Self> {
        Arc::new(Timeline {
            base: Instant::now(),
            pushed: (0..messages).map(|_| AtomicU64::new(0)).collect(),
            delivered: (0..messages).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicUsize::new(0),
            duplicates: AtomicUsize::new(0),
            done: Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    fn delivered(&self, seq: usize) {
        let Some(slot) = self.delivered.get(seq) else {
            return;
        };
        if slot
            .compare_exchange(0, self.now(), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.delivered.len() {
            self.done.notify_one();
        }
    }

    /// Waits until every message was delivered.
    async fn all_delivered(&self) {
        if self.count.load(Ordering::Acquire) < self.delivered.len() {
            tokio::time::timeout(STUCK, self.done.notified())
                .await
                .expect("every message is delivered in time");
        }
    }

    fn stamps(v: &[AtomicU64]) -> impl Iterator<Item = u64> + '_ {
        v.iter()
            .map(|a| a.load(Ordering::Acquire))
            .filter(|&t| t != 0)
    }

    fn first_push(&self) -> u64 {
        Self::stamps(&self.pushed).min().unwrap_or(0)
    }

    fn first_delivery(&self) -> u64 {
        Self::stamps(&self.delivered).min().unwrap_or(0)
    }

    fn last_delivery(&self) -> u64 {
        Self::stamps(&self.delivered).max().unwrap_or(0)
    }

    fn latency(&self) -> Latency {
        let added: Vec<u64> = self
            .pushed
            .iter()
            .zip(&self.delivered)
            .filter_map(|(p, d)| {
                let (p, d) = (p.load(Ordering::Acquire), d.load(Ordering::Acquire));
                (p != 0 && d != 0).then(|| d.saturating_sub(p))
            })
            .collect();
        Latency::of(added).unwrap_or_default()
    }
}

/// CPU microseconds per message.
fn per_msg_us(cpu_secs: f64, n: usize) -> f64 {
    // Counts far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let n = n.max(1) as f64;
    cpu_secs * 1e6 / n
}

/// CPU used between two stamps, as a percentage of the 2 cores.
fn cpu_share(cpu_secs: f64, from_ns: u64, to_ns: u64) -> f64 {
    let wall = Duration::from_nanos(to_ns.saturating_sub(from_ns)).as_secs_f64();
    if wall > 0.0 {
        cpu_secs / wall / 2.0 * 100.0
    } else {
        0.0
    }
}

/// `n` events over the time between two stamps, per second.
fn per_sec(n: usize, from_ns: u64, to_ns: u64) -> f64 {
    let secs = Duration::from_nanos(to_ns.saturating_sub(from_ns)).as_secs_f64();
    // Counts far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let n = n as f64;
    if secs > 0.0 { n / secs } else { 0.0 }
}

// ---------------------------------------------------------------- the bridge

/// An in-memory target that records when each message arrives.
#[derive(Debug)]
struct TimingBridge {
    id: BridgeId,
    timeline: Arc<Timeline>,
    /// While set, every delivery is refused as rate limited.
    rate_limited: AtomicBool,
    /// Deliveries refused so far.
    refused: AtomicUsize,
}

impl TimingBridge {
    fn new(id: &str, timeline: Arc<Timeline>) -> Arc<Self> {
        Arc::new(TimingBridge {
            id: BridgeId::new(id),
            timeline,
            rate_limited: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Bridge for TimingBridge {
    fn id(&self) -> &BridgeId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
    }

    async fn health_check(&self) -> Result<(), BridgeError> {
        Ok(())
    }

    async fn run(&self, ctx: BridgeContext) -> Result<(), BridgeError> {
        ctx.shutdown.cancelled().await;
        Ok(())
    }

    async fn deliver(
        &self,
        op: &OutboundOp,
        _media: &dyn MediaSource,
    ) -> Result<Delivered, BridgeError> {
        if self.rate_limited.load(Ordering::Acquire) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(BridgeError::rate_limited(Duration::from_millis(100)));
        }
        if let OutboundKind::Send { message } = &op.kind {
            let text = message.body.to_plain();
            if let Some(seq) = text
                .split_whitespace()
                .next()
                .and_then(|t| t.parse::<usize>().ok())
            {
                self.timeline.delivered(seq);
            }
        }
        // Fresh per op, and the same again for the same op (idempotent).
        Ok(Delivered::one(MessageId::new(format!(
            "{}:{}",
            self.id, op.id
        ))))
    }

    async fn ensure_puppet(&self, person: &Person) -> Result<PuppetRef, BridgeError> {
        Ok(PuppetRef::new(
            UserId::new(format!("puppet-{}-{}", person.bridge, person.user)),
            person.display_name.clone(),
        ))
    }

    async fn fetch_media(&self, _attachment: &Attachment) -> Result<Vec<u8>, BridgeError> {
        Err(BridgeError::not_found("the bench has no media"))
    }
}

// ---------------------------------------------------------------- the engine

/// A running relay on sled, with its bridges and directory.
struct Engine {
    relay: Relay,
    db: Db,
    target: Arc<TimingBridge>,
    timeline: Arc<Timeline>,
    /// Wall time of `Relay::start` (portal sync into the store, outbox reload).
    startup: Duration,
    _dir: tempfile::TempDir,
}

impl Engine {
    fn start(portals: usize, messages: usize) -> Engine {
        let dir = tempfile::tempdir().expect("a temporary directory for sled");
        Engine::start_in(dir, portals, messages)
    }

    /// As [`Engine::start`], on the store already in `dir`/db.
    fn start_in(dir: tempfile::TempDir, portals: usize, messages: usize) -> Engine {
        let store: Arc<dyn Store> =
            Arc::new(SledStore::open(&dir.path().join("db")).expect("sled opens"));
        let db = Db::open(store).expect("store opens");
        let timeline = Timeline::new(messages);
        let source = TimingBridge::new(SRC, Timeline::new(0));
        let target = TimingBridge::new(DST, timeline.clone());
        let portals: Vec<PortalConfig> = (0..portals)
            .map(|i| PortalConfig {
                name: format!("p{i}"),
                members: vec![
                    PortalMember {
                        bridge: SRC.into(),
                        channel: format!("c{i}").into(),
                    },
                    PortalMember {
                        bridge: DST.into(),
                        channel: format!("d{i}").into(),
                    },
                ],
                calls: Default::default(),
            })
            .collect();
        let started = std::time::Instant::now();
        let relay = Relay::start(RelaySetup {
            db: db.clone(),
            bridges: vec![source as Arc<dyn Bridge>, target.clone() as Arc<dyn Bridge>],
            portals,
            config: RelayConfig::default(),
            dedup_retention: Duration::from_secs(24 * 3600),
            metrics: Arc::new(Metrics::new()),
            space: None,
            secrets: None,
        })
        .expect("relay starts");
        Engine {
            relay,
            db,
            target,
            timeline,
            startup: started.elapsed(),
            _dir: dir,
        }
    }

    /// Waits until the outbox is empty, then stops the relay (flushing sled).
    /// Drains and stops the relay and closes the store; gives back its
    /// directory (for a restart on the same store).
    async fn stop(self) -> tempfile::TempDir {
        assert!(self.relay.drain(STUCK).await, "the outbox drains in time");
        assert_eq!(
            self.timeline.duplicates.load(Ordering::Relaxed),
            0,
            "no message is delivered twice"
        );
        self.relay.shutdown().await.expect("clean shutdown");
        drop(self.db);
        drop(self.target);
        self._dir
    }
}

/// One message event: sequence number `seq`, from sender `sender`, in portal `portal`.
fn message_event(seq: usize, portal: usize, sender: usize) -> Inbound {
    let person = Person::new(
        BridgeId::new(SRC),
        UserId::new(format!("u{sender}")),
        format!("User {sender}"),
    );
    Inbound::new(
        Origin::new(SRC, format!("c{portal}")),
        EventId::new(format!("e{seq}")),
        Sender::new(person),
        InboundKind::Message {
            id: MessageId::new(format!("m{seq}")),
            message: Message::text(format!("{seq} hello from the relay benchmark")),
        },
    )
}

/// How the load task pushes.
#[derive(Debug, Clone, Copy)]
struct Load {
    portals: usize,
    senders: usize,
    messages: usize,
    /// One message per tick, when paced; as fast as possible otherwise.
    pace: Option<Duration>,
}

/// What the load task saw.
#[derive(Debug, Clone, Copy)]
struct Pushed {
    acked: usize,
    refused: usize,
    /// When the last acknowledgement arrived (timeline ns).
    last_ack: u64,
}

/// Pushes `load.messages` events into the sink, at most [`IN_FLIGHT`]
/// unacknowledged; returns once every one is acknowledged.
async fn push(sink: InboundSink, timeline: Arc<Timeline>, load: Load) -> Pushed {
    let (tx, mut rx) = mpsc::channel::<Stored>(IN_FLIGHT);
    let acks = timeline.clone();
    let acker = tokio::spawn(async move {
        let (mut acked, mut refused) = (0, 0);
        while let Some(stored) = rx.recv().await {
            match stored.await {
                Ok(()) => acked += 1,
                Err(_) => refused += 1,
            }
        }
        Pushed {
            acked,
            refused,
            last_ack: acks.now(),
        }
    });
    let mut tick = load.pace.map(|every| {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        tick
    });
    for seq in 0..load.messages {
        if let Some(tick) = tick.as_mut() {
            tick.tick().await;
        }
        let slot = tx.reserve().await.expect("the acker runs");
        let event = message_event(seq, seq % load.portals, seq % load.senders);
        timeline.pushed[seq].store(timeline.now(), Ordering::Release);
        let stored = sink.submit(event).await.expect("the relay takes events");
        slot.send(stored);
    }
    drop(tx);
    acker.await.expect("the acker finishes")
}

// ---------------------------------------------------------------- scenarios

async fn throughput(portals: usize, messages: usize) -> Row {
    let engine = Engine::start(portals, messages);
    let load = Load {
        portals,
        senders: 1000,
        messages,
        pace: None,
    };
    let cpu = cpu_secs();
    let pusher = tokio::spawn(push(engine.relay.sink(), engine.timeline.clone(), load));
    engine.timeline.all_delivered().await;
    let cpu = cpu_secs() - cpu;
    let pushed = pusher.await.expect("the load task finishes");
    assert_eq!(pushed.acked, messages, "every event is acknowledged");
    let t = &engine.timeline;
    let row = Row {
        portals,
        messages,
        rate: per_sec(messages, t.first_push(), t.last_delivery()),
        latency: Some(t.latency()),
        notes: format!(
            "acknowledged at {:.0}/s; CPU {:.0} µs/msg ({:.0} % of 2 cores); 1,000 senders",
            per_sec(messages, t.first_push(), pushed.last_ack),
            per_msg_us(cpu, messages),
            cpu_share(cpu, t.first_push(), t.last_delivery()),
        ),
        rss_kib: rss_kib(),
        ..Row::default()
    };
    engine.stop().await;
    row
}

async fn paced(portals: usize, rate: u32, secs: u32) -> Row {
    let messages = usize::try_from(rate * secs).expect("fits");
    let engine = Engine::start(portals, messages);
    let load = Load {
        portals,
        senders: 1000,
        messages,
        pace: Some(Duration::from_secs(1) / rate),
    };
    let pusher = tokio::spawn(push(engine.relay.sink(), engine.timeline.clone(), load));
    engine.timeline.all_delivered().await;
    let pushed = pusher.await.expect("the load task finishes");
    assert_eq!(pushed.acked, messages, "every event is acknowledged");
    let t = &engine.timeline;
    let row = Row {
        portals,
        messages,
        rate: per_sec(messages, t.first_push(), t.last_delivery()),
        latency: Some(t.latency()),
        notes: format!("{rate} msg/s offered for {secs} s (one per tokio interval tick)"),
        rss_kib: rss_kib(),
        ..Row::default()
    };
    engine.stop().await;
    row
}

async fn backlog_drain(portals: usize, backlog: usize) -> Row {
    let engine = Engine::start(portals, backlog);
    engine.target.rate_limited.store(true, Ordering::Release);
    let load = Load {
        portals,
        senders: 1000,
        messages: backlog,
        pace: None,
    };
    let cpu = cpu_secs();
    let pushed = push(engine.relay.sink(), engine.timeline.clone(), load).await;
    let fill_cpu = cpu_secs() - cpu;
    assert_eq!(pushed.acked + pushed.refused, backlog);
    assert_eq!(pushed.refused, 0, "every event is acknowledged");
    let t = &engine.timeline;
    let fill_rate = per_sec(backlog, t.first_push(), pushed.last_ack);
    let depth = engine.relay.outbox_depth();
    let rss_at_depth = rss_kib();
    let opened = t.now();
    let cpu = cpu_secs();
    engine.target.rate_limited.store(false, Ordering::Release);
    t.all_delivered().await;
    let drain_cpu = cpu_secs() - cpu;
    let drain = per_sec(backlog, t.first_delivery(), t.last_delivery());
    let row = Row {
        portals,
        messages: backlog,
        rate: drain,
        latency: None,
        notes: format!(
            "msg/s = drain rate (CPU {:.0} µs/op, {:.0} % of 2 cores); {:.2} s from recovery to empty; \
             filled at {fill_rate:.0}/s (CPU {:.0} µs/msg) while the target refused ({} refusals); \
             outbox depth {depth} with RSS {}",
            per_msg_us(drain_cpu, backlog),
            cpu_share(drain_cpu, t.first_delivery(), t.last_delivery()),
            Duration::from_nanos(t.last_delivery().saturating_sub(opened)).as_secs_f64(),
            per_msg_us(fill_cpu, backlog),
            engine.target.refused.load(Ordering::Relaxed),
            mib(rss_at_depth),
        ),
        rss_kib: rss_kib(),
        ..Row::default()
    };
    engine.stop().await;
    row
}

/// Fills a store with `mappings` relayed messages (each: its origin id and
/// its copy on the target, both ways mapped, and its seen event id), closes
/// it, then times a restart on it.
async fn startup(portals: usize, mappings: usize) -> Row {
    let dir = tempfile::tempdir().expect("a temporary directory for sled");
    let fill = std::time::Instant::now();
    {
        let store: Arc<dyn Store> =
            Arc::new(SledStore::open(&dir.path().join("db")).expect("sled opens"));
        let db = Db::open(store).expect("store opens");
        let src = BridgeId::new(SRC);
        let dst = BridgeId::new(DST);
        // Seen within the retention: the restart keeps them all.
        let now_ms = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        for chunk in (0..mappings).collect::<Vec<_>>().chunks(10_000) {
            let writes: Vec<switchboard::store::IntakeWrite> = chunk
                .iter()
                .map(|&n| {
                    let group = db.next_id().expect("id");
                    let portal = n % portals;
                    let origin = MessageId::new(format!("old-{n}"));
                    let copy = MessageId::new(format!("copy-{n}"));
                    switchboard::store::IntakeWrite {
                        seen: Some((src.clone(), EventId::new(format!("ev-old-{n}")), now_ms)),
                        messages: vec![
                            (
                                src.clone(),
                                format!("c{portal}").into(),
                                origin.clone(),
                                0,
                                group,
                            ),
                            (
                                dst.clone(),
                                format!("d{portal}").into(),
                                copy.clone(),
                                0,
                                group,
                            ),
                        ],
                        copies: vec![
                            (
                                group,
                                src.clone(),
                                format!("c{portal}").into(),
                                vec![origin],
                            ),
                            (group, dst.clone(), format!("d{portal}").into(), vec![copy]),
                        ],
                        ..switchboard::store::IntakeWrite::default()
                    }
                })
                .collect();
            db.commit_intake(&writes).expect("mappings written");
        }
        db.flush_async().await.expect("sled flushes");
    }
    let filled = fill.elapsed();
    let size: u64 = walk_size(&dir.path().join("db"));
    let baseline = rss_kib();
    let opened = std::time::Instant::now();
    let engine = Engine::start_in(dir, portals, 1);
    let running = opened.elapsed();
    let after_start = rss_kib();
    let load = Load {
        portals,
        senders: 1,
        messages: 1,
        pace: None,
    };
    let pushed = push(engine.relay.sink(), engine.timeline.clone(), load).await;
    assert_eq!(pushed.acked, 1);
    engine.timeline.all_delivered().await;
    let first = opened.elapsed();
    let mapped = engine
        .db
        .store()
        .len(Tree::MsgGroupid)
        .expect("mappings counted");
    assert!(mapped >= mappings * 2, "{mapped} mappings");
    let row = Row {
        portals,
        messages: mappings,
        latency: None,
        rss_kib: rss_kib(),
        notes: format!(
            "restart on {mappings} stored messages ({mapped} mappings, store {:.0} MiB on disk, filled in {:.1} s): \
             store open + relay running in {:.3} s (of which Relay::start {:.3} s), first message relayed {:.3} s after the open; \
             RSS {} before, {} after start",
            size as f64 / 1_048_576.0,
            filled.as_secs_f64(),
            running.as_secs_f64(),
            engine.startup.as_secs_f64(),
            first.as_secs_f64(),
            mib(baseline),
            mib(after_start)
        ),
        ..Row::default()
    };
    // Once more: sled writes a snapshot of its page table at every open, so
    // a second restart replays only what the first run wrote. The daemon
    // opens its store once more when it stops cleanly
    // (`sled_store::settle`), so this is its start after a clean stop; the
    // first restart above is its start after a crash.
    let dir = engine.stop().await;
    let reopened = std::time::Instant::now();
    let engine = Engine::start_in(dir, portals, 0);
    let second = reopened.elapsed();
    let mut row = row;
    row.notes.push_str(&format!(
        "; a second restart on the same store (as after a clean stop, which settles the store): running in {:.3} s",
        second.as_secs_f64()
    ));
    engine.stop().await;
    row
}

/// Bytes of the files under `dir`.
fn walk_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(path),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

async fn memory(portals: usize, senders: usize) -> Row {
    let baseline = rss_kib();
    let engine = Engine::start(portals, senders);
    let after_start = rss_kib();
    let load = Load {
        portals,
        senders,
        messages: senders,
        pace: None,
    };
    let pushed = push(engine.relay.sink(), engine.timeline.clone(), load).await;
    assert_eq!(pushed.acked, senders, "every event is acknowledged");
    engine.timeline.all_delivered().await;
    assert!(engine.relay.drain(STUCK).await, "the outbox drains in time");
    engine.db.flush_async().await.expect("sled flushes");
    let rss = rss_kib();
    let puppets = engine
        .db
        .store()
        .len(Tree::PersonPuppet)
        .expect("puppets counted");
    let t = &engine.timeline;
    let row = Row {
        portals,
        messages: senders,
        rate: per_sec(senders, t.first_push(), t.last_delivery()),
        latency: Some(t.latency()),
        rss_kib: rss,
        notes: format!(
            "RSS at end = outbox empty, {puppets} puppets mapped, {portals} lanes; \
             RSS {} before start, {} after start ({:.1} s start)",
            mib(baseline),
            mib(after_start),
            engine.startup.as_secs_f64()
        ),
        ..Row::default()
    };
    engine.stop().await;
    row
}
