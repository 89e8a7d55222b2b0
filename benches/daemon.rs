//! End-to-end benchmark of the daemon process: `cargo bench --bench daemon [-- SCENARIO…]`.
//!
//! What runs: the Slack simulator (`bridges/slack-sim`) and the Teams
//! simulator (`bridges/teams-sim`) on loopback inside this process, and the
//! real release daemon (`target/release/switchboard`, which cargo builds for
//! the benchmark and names in `CARGO_BIN_EXE_switchboard`) as a child process
//! with a fresh store in a temporary directory. The daemon connects to Slack
//! over Socket Mode and to Graph with the Teams service account, which signs
//! in first through `switchboard login teams --service` against the
//! simulator's device code, as an administrator would.
//!
//! People post the way Slack's and Teams' own clients do: straight into the
//! simulator's workspace or tenant, which emits the events the platform would
//! (a Socket Mode envelope, a change notification). Their posts therefore do
//! not go through the app's Web API or Graph budgets; every 429 the
//! simulators count is one the daemon received.
//!
//! Both simulators report each message the instant they store it
//! (`tap_posts`), on one clock, so
//!
//! - *added latency* of a message = instant the target simulator stored the
//!   daemon's copy − instant the source simulator stored the person's post;
//! - *msg/s* = messages / (first post stored → last copy stored);
//! - *RSS* = the daemon's `VmHWM` (peak) and `VmRSS` (at the end) from
//!   `/proc/<pid>/status`; *CPU* = its utime + stime from `/proc/<pid>/stat`
//!   over the measured interval.
//!
//! The simulators and the load run on a 2-worker tokio runtime in this
//! process, on the same cores as the daemon: on the 2-core machine the
//! targets are set for, every figure includes that competition.
//!
//! Scenarios (names or prefixes after `--`):
//!
//! - `slack-to-teams`, `teams-to-slack`: 20,000 messages over 10 portals,
//!   rate limits off in both simulators and in the connectors, posted as fast
//!   as the daemon takes them with at most `--window` (default 200) messages
//!   posted but not yet delivered. Teams inbound by change notifications.
//! - `limits-slack-to-teams`, `limits-teams-to-slack`: the platforms' limits
//!   on (Slack's documented tiers and ~1 message/s per channel; Graph's
//!   current Teams table) and the connectors' own limits at their defaults;
//!   20 messages/s offered for 30 s over 10 portals. Reports the rate
//!   delivered after a 10 s warm-up and the 429s the daemon received then.
//! - `teams-ingress-notify`, `teams-ingress-poll`: Teams → Slack, one
//!   portal, paced: with change notifications (reconciliation every 10 min),
//!   and with delta polling alone at the default `poll_interval` (10 s).
//! - `rss-1000`, `rss-1000-60s`: Slack → Teams paced at 1,000 messages/s
//!   for 20 s (60 s) over 10 portals, limits off; the daemon's RSS (also
//!   sampled every 5 s) and CPU.
//!
//! Flags: `--runs N` runs each scenario N times and reports the run with the
//! median msg/s; `--quick` divides message counts and durations by 10;
//! `--window N` sets the in-flight bound of the throughput scenarios;
//! `--keep` leaves each scenario's directory (config, store, daemon.log) in
//! place and prints it. Every row notes the 1-minute load average before and
//! after it: the machine may be shared. Results are in BENCHMARKS.md.

mod common;
use common::{Latency, Row, loadavg, mib, proc_kib};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use switchboard_slack_sim::ratelimit::Mode as SlackMode;
use switchboard_slack_sim::seed::{ChannelSeed, Seed as SlackSeed, UserSeed};
use switchboard_slack_sim::state::{Author, NewMessage};
use switchboard_slack_sim::{SimConfig as SlackConfig, SlackSim};
use switchboard_teams_sim::limits::Mode as TeamsMode;
use switchboard_teams_sim::seed::Seed as TeamsSeed;
use switchboard_teams_sim::state::Scope;
use switchboard_teams_sim::{SimConfig as TeamsConfig, TeamsSim};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, Semaphore};

/// The daemon under test, built by cargo for this benchmark.
const DAEMON: &str = env!("CARGO_BIN_EXE_switchboard");
/// The Teams bridge's id in the daemon's config.
const TEAMS: &str = "teams:contoso";
/// The Slack bridge's id in the daemon's config.
const SLACK: &str = "slack:sim";
/// The Teams service account the daemon posts as.
const SERVICE: &str = "switchboard@contoso.test";
/// People on each side (senders rotate through them).
const PEOPLE: usize = 10;
/// How long any one wait may take before the run is declared stuck.
const STUCK: Duration = Duration::from_secs(180);
/// Marks a message's sequence number in its text: `bench<seq>z`.
const MARK: &str = "bench";

// ---------------------------------------------------------------- scenarios

/// Which way messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    SlackToTeams,
    TeamsToSlack,
}

/// How the load is offered.
#[derive(Debug, Clone, Copy)]
enum Load {
    /// `messages` as fast as the daemon takes them, at most `window`
    /// posted and not yet delivered.
    Window { messages: usize, window: usize },
    /// `rate` messages/s for `secs` seconds.
    Paced { rate: u32, secs: f64 },
}

/// One scenario.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    direction: Direction,
    portals: usize,
    load: Load,
    /// The platforms' limits and the connectors' own.
    limits: bool,
    /// Teams change notifications (otherwise delta polling alone).
    notifications: bool,
    /// Measure only while the load is offered, after this warm-up, and do
    /// not wait for a backlog to drain.
    steady_after: Option<Duration>,
}

fn scenarios(quick: bool, window: usize) -> Vec<(&'static str, Scenario)> {
    let div = if quick { 10 } else { 1 };
    let f = if quick { 0.1 } else { 1.0 };
    let throughput = |direction| Scenario {
        direction,
        portals: 10,
        load: Load::Window {
            messages: 20_000 / div,
            window,
        },
        limits: false,
        notifications: true,
        steady_after: None,
    };
    let limited = |direction| Scenario {
        direction,
        portals: 10,
        load: Load::Paced {
            rate: 20,
            secs: 30.0 * f,
        },
        limits: true,
        notifications: true,
        steady_after: Some(Duration::from_secs_f64(10.0 * f)),
    };
    let ingress = |notifications: bool, rate, secs: f64| Scenario {
        direction: Direction::TeamsToSlack,
        portals: 1,
        load: Load::Paced {
            rate,
            secs: secs * f,
        },
        limits: false,
        notifications,
        steady_after: None,
    };
    let paced_1000 = |secs| Scenario {
        direction: Direction::SlackToTeams,
        portals: 10,
        load: Load::Paced { rate: 1000, secs },
        limits: false,
        notifications: true,
        steady_after: None,
    };
    vec![
        ("slack-to-teams", throughput(Direction::SlackToTeams)),
        ("teams-to-slack", throughput(Direction::TeamsToSlack)),
        ("limits-slack-to-teams", limited(Direction::SlackToTeams)),
        ("limits-teams-to-slack", limited(Direction::TeamsToSlack)),
        ("teams-ingress-notify", ingress(true, 10, 10.0)),
        ("teams-ingress-poll", ingress(false, 2, 30.0)),
        ("rss-1000", paced_1000(20.0 * f)),
        ("rss-1000-60s", paced_1000(60.0 * f)),
    ]
}

// ---------------------------------------------------------------- main

fn main() {
    // `cargo bench` adds `--bench`; everything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let value = |flag: &str| -> Option<usize> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|n| n.parse().expect("the flag takes a number"))
    };
    let quick = args.iter().any(|a| a == "--quick");
    let keep = args.iter().any(|a| a == "--keep");
    let runs = value("--runs").unwrap_or(1).max(1);
    let window = value("--window").unwrap_or(200).max(1);
    let all = scenarios(quick, window);
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("{}", machine());
    println!();
    println!("{}", Row::header());
    for (name, scenario) in selected {
        let mut rows: Vec<Row> = Vec::new();
        for _ in 0..runs {
            let load_before = loadavg();
            let row = match rt.block_on(run_scenario(name, scenario, keep)) {
                Ok(mut row) => {
                    row.notes = format!("{}; load {load_before}→{}", row.notes, loadavg());
                    row
                }
                Err(e) => Row {
                    scenario: name.to_owned(),
                    notes: format!("failed: {e:#}; load {load_before}→{}", loadavg()),
                    ..Row::default()
                },
            };
            if runs > 1 {
                eprintln!("{}", row.markdown());
            }
            rows.push(row);
        }
        println!("{}", median_row(rows));
    }
}

/// The row of the run with the median msg/s, noting every run's msg/s.
fn median_row(mut rows: Vec<Row>) -> String {
    let runs = rows.len();
    if runs == 1 {
        return rows.remove(0).markdown();
    }
    let all: Vec<String> = rows.iter().map(|r| format!("{:.0}", r.rate)).collect();
    rows.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let mut median = rows.swap_remove(runs / 2);
    median.notes = format!(
        "{}; median of {runs} runs: {} msg/s",
        median.notes,
        all.join(", ")
    );
    median.markdown()
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
        "Machine: {cpu}, {cores} cores, {} RAM; daemon {DAEMON}; simulators and load on a 2-worker tokio runtime in the bench process; store under {}.",
        mib(mem),
        std::env::temp_dir().display()
    )
}

// ---------------------------------------------------------------- /proc

/// CPU seconds (user + system) process `pid` has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
    // utime and stime: fields 14 and 15 of the line, 11 and 12 after the name;
    // clock ticks of 10 ms.
    #[allow(clippy::cast_precision_loss)]
    let secs = (ticks(11) + ticks(12)) as f64 / 100.0;
    secs
}

// ---------------------------------------------------------------- timeline

/// When each message was stored at its source and at its target, in ns
/// since `base` (+1, so that 0 means "not yet").
#[derive(Debug)]
struct Timeline {
    base: Instant,
    posted: Vec<AtomicU64>,
    delivered: Vec<AtomicU64>,
    count: AtomicUsize,
    duplicates: AtomicUsize,
    done: Notify,
    /// Frees a slot of the in-flight window per delivery.
    window: Semaphore,
}

impl Timeline {
    fn new(messages: usize, window: usize) -> Arc<Self> {
        Arc::new(Timeline {
            base: Instant::now(),
            posted: (0..messages).map(|_| AtomicU64::new(0)).collect(),
            delivered: (0..messages).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicUsize::new(0),
            duplicates: AtomicUsize::new(0),
            done: Notify::new(),
            window: Semaphore::new(window),
        })
    }

    fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1)
            + 1
    }

    fn now(&self) -> u64 {
        self.stamp(Instant::now())
    }

    fn posted(&self, seq: usize, at: Instant) {
        if let Some(slot) = self.posted.get(seq) {
            slot.store(self.stamp(at), Ordering::Release);
        }
    }

    fn delivered(&self, seq: usize, at: Instant) {
        let Some(slot) = self.delivered.get(seq) else {
            return;
        };
        if slot
            .compare_exchange(0, self.stamp(at), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.window.add_permits(1);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.delivered.len() {
            self.done.notify_one();
        }
    }

    fn delivered_count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until every message was delivered, or `limit` passes.
    async fn all_delivered(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.delivered_count() >= self.delivered.len() {
                return true;
            }
            let wait = tokio::time::timeout(Duration::from_millis(200), self.done.notified());
            if wait.await.is_ok() && self.delivered_count() >= self.delivered.len() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
        }
    }

    fn stamps(v: &[AtomicU64]) -> impl Iterator<Item = u64> + '_ {
        v.iter()
            .map(|a| a.load(Ordering::Acquire))
            .filter(|&t| t != 0)
    }

    fn first_post(&self) -> u64 {
        Self::stamps(&self.posted).min().unwrap_or(0)
    }

    fn last_delivery(&self) -> u64 {
        Self::stamps(&self.delivered).max().unwrap_or(0)
    }

    /// Deliveries stored within `[from, to)` (timeline ns).
    fn delivered_between(&self, from: u64, to: u64) -> usize {
        Self::stamps(&self.delivered)
            .filter(|&t| t >= from && t < to)
            .count()
    }

    /// Added latency of the messages posted within `[from, to)` and delivered.
    fn latency(&self, from: u64, to: u64) -> Option<Latency> {
        let added: Vec<u64> = self
            .posted
            .iter()
            .zip(&self.delivered)
            .filter_map(|(p, d)| {
                let (p, d) = (p.load(Ordering::Acquire), d.load(Ordering::Acquire));
                (p != 0 && d != 0 && p >= from && p < to).then(|| d.saturating_sub(p))
            })
            .collect();
        Latency::of(added)
    }
}

/// The sequence number written into a message's text (`bench<seq>z`).
fn seq_of(text: &str) -> Option<usize> {
    let at = text.find(MARK)? + MARK.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `n` events over the time between two stamps, per second.
fn per_sec(n: usize, from_ns: u64, to_ns: u64) -> f64 {
    let secs = Duration::from_nanos(to_ns.saturating_sub(from_ns)).as_secs_f64();
    // Counts far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let n = n as f64;
    if secs > 0.0 { n / secs } else { 0.0 }
}

// ---------------------------------------------------------------- the rig

/// Both simulators, a scratch directory with the daemon's config, and the
/// ids the load needs.
struct Rig {
    slack: SlackSim,
    teams: TeamsSim,
    dir: tempfile::TempDir,
    listen: SocketAddr,
    /// Slack channel ids, one per portal.
    slack_channels: Vec<String>,
    /// Slack people's user ids.
    slack_people: Vec<String>,
    /// Teams (team id, channel id), one per portal.
    teams_channels: Vec<(String, String)>,
    /// Teams people's user ids.
    teams_people: Vec<String>,
    /// The service account's user id.
    service: String,
}

impl Rig {
    async fn start(s: &Scenario) -> Result<Rig> {
        let slack_seed = SlackSeed {
            users: (0..PEOPLE)
                .map(|i| UserSeed {
                    name: format!("person{i}"),
                    real_name: Some(format!("Slack Person {i}")),
                    ..UserSeed::default()
                })
                .collect(),
            channels: (0..s.portals)
                .map(|i| ChannelSeed {
                    name: format!("room{i}"),
                    members: (0..PEOPLE)
                        .map(|p| format!("person{p}"))
                        .chain(["@bot".to_owned()])
                        .collect(),
                    ..ChannelSeed::default()
                })
                .collect(),
            ..SlackSeed::default()
        };
        let slack = SlackSim::start(SlackConfig {
            seed: Some(slack_seed),
            rate_limit: if s.limits {
                SlackMode::Strict
            } else {
                SlackMode::Off
            },
            ..SlackConfig::default()
        })
        .await
        .context("the Slack simulator starts")?;
        let people: Vec<String> = (0..PEOPLE).map(|i| format!("p{i}@contoso.test")).collect();
        let users: Vec<serde_json::Value> = std::iter::once(
            json!({"displayName": "Switchboard Relay", "userPrincipalName": SERVICE}),
        )
        .chain(people.iter().enumerate().map(|(i, upn)| {
            json!({"displayName": format!("Teams Person {i}"), "userPrincipalName": upn})
        }))
        .collect();
        let channels: Vec<serde_json::Value> = (0..s.portals)
            .map(|i| json!({"displayName": format!("ch{i}")}))
            .collect();
        let teams_seed: TeamsSeed = serde_json::from_value(json!({
            "users": users,
            "teams": [{"displayName": "Contoso", "owners": [SERVICE], "members": people,
                       "channels": channels}]
        }))
        .context("the Teams seed")?;
        let teams = TeamsSim::start(TeamsConfig {
            seed: Some(teams_seed),
            rate_limit: if s.limits {
                // Graph's current Teams table: the platform's real limits.
                TeamsMode::Relaxed
            } else {
                TeamsMode::Off
            },
            device_code_interval: Duration::from_millis(200),
            ..TeamsConfig::default()
        })
        .await
        .context("the Teams simulator starts")?;
        let slack_channels = (0..s.portals)
            .map(|i| slack.seeded().channels[&format!("room{i}")].clone())
            .collect();
        let slack_people = (0..PEOPLE)
            .map(|i| slack.seeded().users[&format!("person{i}")].clone())
            .collect();
        let teams_channels = (0..s.portals)
            .map(|i| teams.seeded().channels[&format!("Contoso/ch{i}")].clone())
            .collect();
        let teams_people = people
            .iter()
            .map(|upn| teams.seeded().users[upn].clone())
            .collect();
        let service = teams.seeded().users[SERVICE].clone();
        let listen = {
            let l = TcpListener::bind("127.0.0.1:0").context("a free port")?;
            l.local_addr()?
        };
        let rig = Rig {
            slack,
            teams,
            dir: tempfile::tempdir().context("a scratch directory")?,
            listen,
            slack_channels,
            slack_people,
            teams_channels,
            teams_people,
            service,
        };
        rig.write_config(s)?;
        Ok(rig)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_config(&self, s: &Scenario) -> Result<()> {
        let slack = self.slack.seeded();
        let teams = self.teams.seeded();
        std::fs::write(self.path("bot-token"), &slack.bot_token)?;
        std::fs::write(self.path("app-token"), &slack.app_token)?;
        std::fs::write(self.path("teams-secret"), &teams.client_secret)?;
        std::fs::write(self.path("client-state"), "bench-client-state-0123456789")?;
        // Limits on: the connectors' defaults (no `rate_limits` key).
        let limits = if s.limits {
            ""
        } else {
            "rate_limits = false\n"
        };
        let notifications = if s.notifications {
            format!(
                "[bridge.notifications]\npublic_url = \"http://{}\"\nclient_state_file = \"client-state\"\n\
                 reconcile_interval = \"10m\"\n\n",
                self.listen
            )
        } else {
            String::new()
        };
        let mut text = format!(
            "[store]\npath = \"store\"\nkey_file = \"store.key\"\n\n\
             [http]\nlisten = \"{listen}\"\n\n[log]\nfilter = \"warn\"\n\n\
             [relay]\ndrain_grace = \"5s\"\n\n\
             [[bridge]]\nid = \"{SLACK}\"\ntype = \"slack\"\napi_url = \"{slack_url}/api\"\n\
             bot_token_file = \"bot-token\"\napp_token_file = \"app-token\"\n{limits}\n\
             [[bridge]]\nid = \"{TEAMS}\"\ntype = \"teams\"\ngraph_url = \"{graph}\"\nlogin_url = \"{login}\"\n\
             tenant = \"{tenant}\"\nclient_id = \"{client}\"\nclient_secret_file = \"teams-secret\"\n{limits}\n\
             {notifications}",
            listen = self.listen,
            slack_url = self.slack.base_url(),
            graph = self.teams.graph_url(),
            login = self.teams.login_url(),
            tenant = teams.tenant_id,
            client = teams.client_id,
        );
        for (i, (c, (team, ch))) in self
            .slack_channels
            .iter()
            .zip(&self.teams_channels)
            .enumerate()
        {
            text.push_str(&format!(
                "[[portal]]\nname = \"p{i}\"\nmembers = [\"{SLACK}/{c}\", \"{TEAMS}/{team}/{ch}\"]\n\n"
            ));
        }
        std::fs::write(self.path("config.toml"), text)?;
        Ok(())
    }

    /// `switchboard login teams --service`, signed in as the service
    /// account through the simulator once the CLI has printed its code.
    async fn login_service(&self) -> Result<()> {
        let mut login = tokio::process::Command::new(DAEMON)
            .args(["login", "teams", "--bridge", TEAMS, "--service"])
            .args(["--timeout", "60", "--config"])
            .arg(self.path("config.toml"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("switchboard login starts")?;
        let stdout = login.stdout.take().context("piped stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let code = loop {
            let line = lines
                .next_line()
                .await?
                .ok_or_else(|| anyhow!("login ended without a sign-in prompt"))?;
            if let Some(rest) = line.strip_prefix("To sign in, open ") {
                let (_, code) = rest
                    .split_once(" and enter the code ")
                    .ok_or_else(|| anyhow!("unexpected prompt: {line}"))?;
                break code.trim().to_owned();
            }
        };
        self.teams
            .complete_device_code(&code, SERVICE)
            .map_err(|e| anyhow!("the service account signs in: {e}"))?;
        while lines.next_line().await?.is_some() {}
        let out = login.wait_with_output().await?;
        if !out.status.success() {
            bail!(
                "switchboard login failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Starts the daemon (stderr to `daemon.log`) and waits until `/ready`.
    async fn spawn_daemon(&self) -> Result<Daemon> {
        let log = std::fs::File::create(self.path("daemon.log"))?;
        let child = tokio::process::Command::new(DAEMON)
            .args(["run", "--config"])
            .arg(self.path("config.toml"))
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("the daemon starts")?;
        let pid = child.id().context("the daemon has a pid")?;
        let mut daemon = Daemon {
            child,
            pid,
            listen: self.listen,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = daemon.child.try_wait()? {
                bail!(
                    "the daemon exited before it was ready ({status}): {}",
                    tail(&self.path("daemon.log"))
                );
            }
            let listen = self.listen;
            let ready = tokio::task::spawn_blocking(move || http_get(listen, "/ready"))
                .await?
                .is_some_and(|(code, _)| code == 200);
            if ready {
                return Ok(daemon);
            }
            if Instant::now() > deadline {
                bail!(
                    "the daemon was not ready within 60 s: {}",
                    tail(&self.path("daemon.log"))
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A person posts message `seq` in portal `portal` on the source side,
    /// as the platform's own client would.
    fn post(&self, direction: Direction, seq: usize, portal: usize) -> Result<()> {
        let text = format!("{MARK}{seq}z hello from the daemon benchmark");
        match direction {
            Direction::SlackToTeams => {
                let channel = &self.slack_channels[portal];
                let person = &self.slack_people[seq % PEOPLE];
                let nm = NewMessage {
                    client_msg_id: Some(format!("bench-{seq}")),
                    ..NewMessage::text(Author::User(person.clone()), text)
                };
                self.slack
                    .inner()
                    .mutate(|st, out| st.post(channel, nm, out))
                    .ok_or_else(|| anyhow!("Slack channel {channel} is gone"))?;
            }
            Direction::TeamsToSlack => {
                let (team, channel) = &self.teams_channels[portal];
                let person = &self.teams_people[seq % PEOPLE];
                let sim = self.teams.inner();
                let change = {
                    let mut st = sim.state.lock().unwrap_or_else(|p| p.into_inner());
                    st.insert_message(
                        Scope::Channel {
                            team: team.clone(),
                            channel: channel.clone(),
                        },
                        None,
                        Some(person.clone()),
                        "message",
                        "html",
                        format!("<p>{text}</p>"),
                        None,
                        json!([]),
                        json!([]),
                        None,
                        None,
                    )
                    .1
                };
                switchboard_teams_sim::notify::dispatch(sim, vec![change]);
            }
        }
        Ok(())
    }

    /// Records every message the simulators store: people's posts on the
    /// source side, the daemon's copies on the target side.
    fn tap(&self, direction: Direction, timeline: Arc<Timeline>) -> tokio::task::JoinHandle<()> {
        let mut slack = self.slack.tap_posts();
        let mut teams = self.teams.tap_posts();
        let service = self.service.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    p = slack.recv() => {
                        let Some(p) = p else { break };
                        if let Some(seq) = seq_of(&p.text) {
                            match (direction, p.by_app) {
                                (Direction::SlackToTeams, false) => timeline.posted(seq, p.at),
                                (Direction::TeamsToSlack, true) => timeline.delivered(seq, p.at),
                                _ => {}
                            }
                        }
                    }
                    p = teams.recv() => {
                        let Some(p) = p else { break };
                        if let Some(seq) = seq_of(&p.content) {
                            let by_service = p.from.as_deref() == Some(service.as_str());
                            match (direction, by_service) {
                                (Direction::TeamsToSlack, false) => timeline.posted(seq, p.at),
                                (Direction::SlackToTeams, true) => timeline.delivered(seq, p.at),
                                _ => {}
                            }
                        }
                    }
                }
            }
        })
    }

    /// 429s both simulators answered so far: (Slack, Teams).
    fn throttled(&self) -> (u64, u64) {
        (
            self.slack.counters().ratelimited,
            self.teams.counters().throttled,
        )
    }

    async fn shutdown(self, keep: bool) {
        self.slack.clone().shutdown().await;
        self.teams.shutdown().await;
        if keep {
            let path = self.dir.keep();
            eprintln!("kept {}", path.display());
        }
    }
}

/// The last lines of a log, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The running daemon.
struct Daemon {
    child: tokio::process::Child,
    pid: u32,
    listen: SocketAddr,
}

impl Daemon {
    fn status_kib(&self, field: &str) -> u64 {
        proc_kib(&PathBuf::from(format!("/proc/{}/status", self.pid)), field)
    }

    fn cpu(&self) -> f64 {
        cpu_secs(self.pid)
    }

    /// The daemon's `/metrics`, parsed into `name{labels}` → value.
    async fn metrics(&self) -> BTreeMap<String, f64> {
        let listen = self.listen;
        let body = tokio::task::spawn_blocking(move || http_get(listen, "/metrics"))
            .await
            .ok()
            .flatten()
            .map(|(_, b)| b)
            .unwrap_or_default();
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect()
    }

    /// SIGTERM, then SIGKILL if it has not exited within 30 s.
    async fn stop(mut self) -> Result<()> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(r) => {
                r?;
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("the daemon did not stop within 30 s of SIGTERM");
            }
        }
        Ok(())
    }
}

/// Sums every series of `name` (all label sets) in parsed metrics.
fn metric_sum(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| {
            k.as_str() == name
                || k.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{'))
        })
        .map(|(_, v)| v)
        .sum()
}

/// A minimal HTTP/1.1 GET: (status, body), or None if nothing answers.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

// ---------------------------------------------------------------- a run

async fn run_scenario(name: &str, s: Scenario, keep: bool) -> Result<Row> {
    let rig = Rig::start(&s).await?;
    let result = run_on(&rig, name, s).await;
    if result.is_err() {
        eprintln!("{name}: daemon log:\n{}", tail(&rig.path("daemon.log")));
    }
    rig.shutdown(keep || result.is_err()).await;
    result
}

async fn run_on(rig: &Rig, name: &str, s: Scenario) -> Result<Row> {
    rig.login_service().await?;
    let daemon = rig.spawn_daemon().await?;
    let after_start_kib = daemon.status_kib("VmRSS:");
    // Subscriptions (one per channel) are made once the bridge runs.
    if s.notifications {
        let deadline = Instant::now() + Duration::from_secs(30);
        while rig.teams.subscriptions().len() < s.portals {
            if Instant::now() > deadline {
                bail!(
                    "{} of {} Teams subscriptions after 30 s",
                    rig.teams.subscriptions().len(),
                    s.portals
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (messages, window) = match s.load {
        Load::Window { messages, window } => (messages, window),
        Load::Paced { rate, secs } => {
            // Whole messages; rates and durations here are small.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let n = (f64::from(rate) * secs).round() as usize;
            (n, n.max(1))
        }
    };
    let timeline = Timeline::new(messages, window);
    let tap = rig.tap(s.direction, timeline.clone());
    let metrics_before = daemon.metrics().await;
    let throttled_before = rig.throttled();
    let cpu_before = daemon.cpu();
    let bench_cpu_before = cpu_secs(std::process::id());
    let started = timeline.now();
    // The daemon's RSS every 5 s while the load runs.
    let rss_path = PathBuf::from(format!("/proc/{}/status", daemon.pid));
    let rss_samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = {
        let samples = rss_samples.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let kib = proc_kib(&rss_path, "VmRSS:");
                samples
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(kib);
            }
        })
    };

    // The load: one post per tick when paced, else as slots free up.
    let mut steady_mark = None;
    let pace = match s.load {
        Load::Paced { rate, .. } => Some(Duration::from_secs(1) / rate),
        Load::Window { .. } => None,
    };
    let mut tick = pace.map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    for seq in 0..messages {
        match tick.as_mut() {
            Some(t) => {
                t.tick().await;
            }
            None => timeline
                .window
                .acquire()
                .await
                .context("the window semaphore")?
                .forget(),
        }
        if let (Some(after), None) = (s.steady_after, steady_mark)
            && Duration::from_nanos(timeline.now() - started) >= after
        {
            steady_mark = Some((timeline.now(), rig.throttled(), daemon.cpu()));
        }
        rig.post(s.direction, seq, seq % s.portals)?;
    }
    let offered_until = timeline.now();
    let throttled_offered = rig.throttled();
    let cpu_offered = daemon.cpu();
    let all = match s.steady_after {
        // Limited: the backlog is not waited for, but a little grace is.
        Some(_) => timeline.all_delivered(Duration::from_secs(2)).await,
        None => timeline.all_delivered(STUCK).await,
    };
    let cpu = daemon.cpu() - cpu_before;
    let bench_cpu = cpu_secs(std::process::id()) - bench_cpu_before;
    let metrics_after = daemon.metrics().await;
    let throttled_after = rig.throttled();
    let hwm = daemon.status_kib("VmHWM:");
    let rss = daemon.status_kib("VmRSS:");
    sampler.abort();
    let samples: Vec<String> = rss_samples
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|&k| mib(k))
        .collect();
    let retried_by: Vec<String> = metrics_after
        .iter()
        .filter(|(k, _)| k.starts_with("switchboard_retried_total{"))
        .map(|(k, v)| {
            let before = metrics_before.get(k).copied().unwrap_or(0.0);
            format!(
                "{} {:.0}",
                &k["switchboard_retried_total".len()..],
                v - before
            )
        })
        .collect();
    daemon.stop().await?;
    tap.abort();

    let t = &timeline;
    let delivered = t.delivered_count();
    let delivery_name = match s.direction {
        Direction::SlackToTeams => TEAMS,
        Direction::TeamsToSlack => SLACK,
    };
    let m = |name: &str, which: &BTreeMap<String, f64>| metric_sum(which, name);
    let lat_sum = format!("switchboard_delivery_latency_seconds_sum{{bridge=\"{delivery_name}\"}}");
    let lat_count =
        format!("switchboard_delivery_latency_seconds_count{{bridge=\"{delivery_name}\"}}");
    let daemon_mean = {
        let sum = m(&lat_sum, &metrics_after) - m(&lat_sum, &metrics_before);
        let count = m(&lat_count, &metrics_after) - m(&lat_count, &metrics_before);
        (count > 0.0).then(|| Duration::from_secs_f64(sum / count))
    };
    let retried = m("switchboard_retried_total", &metrics_after)
        - m("switchboard_retried_total", &metrics_before);
    let dropped = m("switchboard_dropped_total", &metrics_after)
        - m("switchboard_dropped_total", &metrics_before);
    let end = t.last_delivery().max(offered_until);
    let secs = Duration::from_nanos(end.saturating_sub(started)).as_secs_f64();
    let mut notes = Vec::new();
    let (rate, latency) = match (s.steady_after, steady_mark) {
        (Some(_), Some((mark, (slack_at, teams_at), cpu_at))) => {
            // Steady state: from the mark to the end of the offered load.
            let n = t.delivered_between(mark, offered_until);
            let rate = per_sec(n, mark, offered_until);
            let (slack_429, teams_429) = (
                throttled_offered.0 - slack_at,
                throttled_offered.1 - teams_at,
            );
            let steady_secs = Duration::from_nanos(offered_until - mark).as_secs_f64();
            notes.push(format!(
                "offered {} msg/s for {:.0} s; steady state = the last {steady_secs:.0} s: \
                 {n} delivered, **{} 429s** (Slack {slack_429}, Graph {teams_429}); \
                 whole run {} 429s (Slack {}, Graph {}), {delivered} of {messages} delivered, \
                 {} early retries at Graph; CPU {:.1} % of one core in steady state",
                match s.load {
                    Load::Paced { rate, .. } => rate,
                    Load::Window { .. } => 0,
                },
                Duration::from_nanos(offered_until - started).as_secs_f64(),
                slack_429 + teams_429,
                (throttled_after.0 - throttled_before.0) + (throttled_after.1 - throttled_before.1),
                throttled_after.0 - throttled_before.0,
                throttled_after.1 - throttled_before.1,
                rig.teams.inner().limiter.early_retries(),
                daemon_cpu_between(cpu_at, cpu_offered, steady_secs),
            ));
            (rate, t.latency(mark, offered_until))
        }
        _ => {
            let rate = per_sec(delivered, t.first_post(), t.last_delivery());
            if !all {
                notes.push(format!("**only {delivered} of {messages} delivered**"));
            }
            let per_msg_us = cpu * 1e6 / usize_f64(delivered.max(1));
            let rate_per_1000 = rate / 1000.0;
            notes.push(format!(
                "daemon CPU {per_msg_us:.0} µs/msg ({:.0} % of one core over {secs:.1} s; {:.0} % of one core per 1,000 msg/s); simulators + load {:.0} % of one core",
                cpu / secs * 100.0,
                if rate_per_1000 > 0.0 {
                    cpu / secs * 100.0 / rate_per_1000
                } else {
                    0.0
                },
                bench_cpu / secs * 100.0
            ));
            (rate, t.latency(0, u64::MAX))
        }
    };
    match s.load {
        Load::Window { window, .. } => notes.push(format!(
            "as fast as taken, ≤ {window} in flight (posted, not yet stored at the target)"
        )),
        Load::Paced { rate, secs } if s.steady_after.is_none() => {
            notes.push(format!("{rate} msg/s offered for {secs:.0} s"));
        }
        Load::Paced { .. } => {}
    }
    if s.direction == Direction::TeamsToSlack {
        notes.push(if s.notifications {
            "Teams in by change notifications".to_owned()
        } else {
            "Teams in by delta polling alone (poll_interval 10 s)".to_owned()
        });
    }
    if let (Some(d), Some(l)) = (daemon_mean, latency) {
        notes.push(format!(
            "mean added {:.2} ms, of which the daemon's own (event received → delivered, switchboard_delivery_latency_seconds) {:.2} ms",
            l.mean.as_secs_f64() * 1000.0,
            d.as_secs_f64() * 1000.0
        ));
    }
    if s.steady_after.is_none() {
        let (sl, tm) = (
            throttled_after.0 - throttled_before.0,
            throttled_after.1 - throttled_before.1,
        );
        if sl + tm > 0 {
            notes.push(format!("429s: Slack {sl}, Graph {tm}"));
        }
    }
    notes.push(format!(
        "{retried:.0} retried{}, {dropped:.0} inbound dropped (echoes, duplicates)",
        if retried_by.is_empty() {
            String::new()
        } else {
            format!(" ({})", retried_by.join(", "))
        }
    ));
    if !samples.is_empty() {
        notes.push(format!("RSS every 5 s: {}", samples.join(", ")));
    }
    if t.duplicates.load(Ordering::Relaxed) > 0 {
        notes.push(format!(
            "**{} duplicates**",
            t.duplicates.load(Ordering::Relaxed)
        ));
    }
    notes.push(format!("RSS {} after start", mib(after_start_kib)));
    Ok(Row {
        scenario: name.to_owned(),
        portals: s.portals,
        messages,
        rate,
        latency,
        hwm_kib: hwm,
        rss_kib: rss,
        notes: notes.join("; "),
    })
}

/// CPU of the daemon between a mark and the end, as % of one core.
fn daemon_cpu_between(cpu_at_mark: f64, cpu_at_end: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        (cpu_at_end - cpu_at_mark) / secs * 100.0
    } else {
        0.0
    }
}

fn usize_f64(n: usize) -> f64 {
    // Counts far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let n = n as f64;
    n
}
