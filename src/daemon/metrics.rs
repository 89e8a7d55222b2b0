//! Switchboard's own small Prometheus registry, rendered at `/metrics`.
//!
//! Why not the `prometheus` crate: we have a dozen series with fixed names
//! and at most two labels, and this file is shorter than the glue would be.
//!
//! Labels have bounded cardinality by construction. The `bridge` label is a
//! configured bridge id (a handful per daemon); every other label is a
//! `&'static str` chosen in code (`kind`, `reason`, `error`, `state`), so a
//! platform cannot mint new series by sending odd data. Channels and users
//! are never labels.
//!
//! The hot path (a counter that already exists) takes a read lock and does
//! one atomic add; only the first increment of a new label set takes the
//! write lock. Rendering sorts by label values, so output is deterministic.
//!
//! The text follows the Prometheus exposition format 0.0.4:
//! <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

/// Upper bounds of the delivery latency buckets, in nanoseconds (compared
/// exactly, without floating point), with how each is written in `le`.
const LATENCY_BUCKETS: [(u64, &str); 15] = [
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
    (10_000_000_000, "10"),
    (30_000_000_000, "30"),
    (60_000_000_000, "60"),
];

/// The labels of `BridgeState::label`, so that `switchboard_bridge_state`
/// shows a 0 for every state a bridge is not in.
const BRIDGE_STATES: [&str; 5] = [
    "connecting",
    "connected",
    "transient_disconnect",
    "bad_credentials",
    "stopped",
];

/// Every metric the daemon exports. Share it as `Arc<Metrics>`; all methods
/// take `&self` and are safe to call from any thread.
pub struct Metrics {
    inbound: CounterFamily,
    dropped: CounterFamily,
    delivered: CounterFamily,
    delivery_latency: HistogramFamily,
    retried: CounterFamily,
    dead_lettered: CounterFamily,
    bridge_restarts: CounterFamily,
    outbox_depth: AtomicI64,
    bridge_state: RwLock<BTreeMap<String, &'static str>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("outbox_depth", &self.outbox_depth.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Metrics {
            inbound: CounterFamily::new(
                "switchboard_inbound_total",
                "Events received from platforms.",
                "bridge",
                Some("kind"),
            ),
            dropped: CounterFamily::new(
                "switchboard_dropped_total",
                "Inbound events dropped before relaying (duplicates, echoes).",
                "bridge",
                Some("reason"),
            ),
            delivered: CounterFamily::new(
                "switchboard_delivered_total",
                "Operations delivered to a target bridge.",
                "bridge",
                Some("kind"),
            ),
            delivery_latency: HistogramFamily::new(
                "switchboard_delivery_latency_seconds",
                "Time from receiving an event to delivering it to a target bridge.",
            ),
            retried: CounterFamily::new(
                "switchboard_retried_total",
                "Delivery attempts that failed and will be retried.",
                "bridge",
                Some("error"),
            ),
            dead_lettered: CounterFamily::new(
                "switchboard_dead_lettered_total",
                "Operations given up on and moved to the dead-letter tree.",
                "bridge",
                Some("error"),
            ),
            bridge_restarts: CounterFamily::new(
                "switchboard_bridge_restarts_total",
                "Times a bridge's connector was restarted after failing.",
                "bridge",
                None,
            ),
            outbox_depth: AtomicI64::new(0),
            bridge_state: RwLock::new(BTreeMap::new()),
        }
    }

    /// Counts an event received from `bridge`.
    pub fn inbound(&self, bridge: &str, kind: &'static str) {
        self.inbound.inc(bridge, kind);
    }

    /// Counts an inbound event from `bridge` that was not relayed.
    pub fn dropped(&self, bridge: &str, reason: &'static str) {
        self.dropped.inc(bridge, reason);
    }

    /// Counts an operation delivered to `bridge`, `latency` after it was received.
    pub fn delivered(&self, bridge: &str, kind: &'static str, latency: Duration) {
        self.delivered.inc(bridge, kind);
        self.delivery_latency.observe(bridge, latency);
    }

    /// Counts a failed delivery attempt to `bridge` that will be retried.
    pub fn retried(&self, bridge: &str, error: &'static str) {
        self.retried.inc(bridge, error);
    }

    /// Counts an operation for `bridge` given up on.
    pub fn dead_lettered(&self, bridge: &str, error: &'static str) {
        self.dead_lettered.inc(bridge, error);
    }

    /// Moves the outbox depth gauge by `delta`.
    pub fn outbox_depth_add(&self, delta: i64) {
        self.outbox_depth.fetch_add(delta, Ordering::Relaxed);
    }

    /// Sets the outbox depth gauge (e.g. from a count of the outbox at start).
    pub fn set_outbox_depth(&self, v: u64) {
        self.outbox_depth
            .store(i64::try_from(v).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Counts a restart of `bridge`'s connector.
    pub fn bridge_restarted(&self, bridge: &str) {
        self.bridge_restarts.inc(bridge, "");
    }

    /// Records that `bridge` is now in the state labelled `state_label`
    /// (`BridgeState::label`).
    pub fn set_bridge_up(&self, bridge: &str, state_label: &'static str) {
        let mut states = self
            .bridge_state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match states.get_mut(bridge) {
            Some(current) => *current = state_label,
            None => {
                states.insert(bridge.to_owned(), state_label);
            }
        }
    }

    /// Everything, in the Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.inbound.render(&mut out);
        self.dropped.render(&mut out);
        self.delivered.render(&mut out);
        self.delivery_latency.render(&mut out);
        self.retried.render(&mut out);
        self.dead_lettered.render(&mut out);
        self.bridge_restarts.render(&mut out);

        header(
            &mut out,
            "switchboard_outbox_depth",
            "Operations waiting in the outbox.",
            "gauge",
        );
        let depth = self.outbox_depth.load(Ordering::Relaxed);
        let _ = writeln!(out, "switchboard_outbox_depth {depth}");

        header(
            &mut out,
            "switchboard_bridge_state",
            "Each bridge's connection state: 1 for the current state, 0 for the others.",
            "gauge",
        );
        let states = self
            .bridge_state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for (bridge, current) in states.iter() {
            let extra = (!BRIDGE_STATES.contains(current)).then_some(*current);
            for state in BRIDGE_STATES.iter().copied().chain(extra) {
                let _ = writeln!(
                    out,
                    "switchboard_bridge_state{{bridge=\"{}\",state=\"{}\"}} {}",
                    Escaped(bridge),
                    Escaped(state),
                    u8::from(state == *current),
                );
            }
        }
        out
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a family.
fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Counters labelled by bridge and, optionally, one static label.
///
/// A one-label family stores its counters under the static key `""`.
struct CounterFamily {
    name: &'static str,
    help: &'static str,
    first_label: &'static str,
    second_label: Option<&'static str>,
    cells: RwLock<HashMap<String, HashMap<&'static str, AtomicU64>>>,
}

impl CounterFamily {
    fn new(
        name: &'static str,
        help: &'static str,
        first_label: &'static str,
        second_label: Option<&'static str>,
    ) -> Self {
        CounterFamily {
            name,
            help,
            first_label,
            second_label,
            cells: RwLock::default(),
        }
    }

    fn inc(&self, bridge: &str, second: &'static str) {
        {
            let cells = self.cells.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(cell) = cells
                .get(bridge)
                .and_then(|by_second| by_second.get(second))
            {
                cell.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut cells = self.cells.write().unwrap_or_else(PoisonError::into_inner);
        cells
            .entry(bridge.to_owned())
            .or_default()
            .entry(second)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        let cells = self.cells.read().unwrap_or_else(PoisonError::into_inner);
        let mut bridges: Vec<_> = cells.iter().collect();
        bridges.sort_unstable_by_key(|(bridge, _)| bridge.as_str());
        for (bridge, by_second) in bridges {
            let mut seconds: Vec<_> = by_second.iter().collect();
            seconds.sort_unstable_by_key(|(second, _)| **second);
            for (second, cell) in seconds {
                let value = cell.load(Ordering::Relaxed);
                let _ = write!(
                    out,
                    "{}{{{}=\"{}\"",
                    self.name,
                    self.first_label,
                    Escaped(bridge)
                );
                if let Some(label) = self.second_label {
                    let _ = write!(out, ",{label}=\"{}\"", Escaped(second));
                }
                let _ = writeln!(out, "}} {value}");
            }
        }
    }
}

/// One histogram per bridge, over [`LATENCY_BUCKETS`].
struct HistogramFamily {
    name: &'static str,
    help: &'static str,
    cells: RwLock<HashMap<String, Histogram>>,
}

/// Per-bucket (not cumulative) counts, the last one being `+Inf`, and the sum.
///
/// The count is not stored separately: it is rendered as the sum of the
/// buckets, so `_count` always equals the `+Inf` bucket even while other
/// threads observe.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl HistogramFamily {
    fn new(name: &'static str, help: &'static str) -> Self {
        HistogramFamily {
            name,
            help,
            cells: RwLock::default(),
        }
    }

    fn observe(&self, bridge: &str, value: Duration) {
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|(bound, _)| nanos <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        let record = |h: &Histogram| {
            h.buckets[bucket].fetch_add(1, Ordering::Relaxed);
            h.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        };
        {
            let cells = self.cells.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(histogram) = cells.get(bridge) {
                record(histogram);
                return;
            }
        }
        let mut cells = self.cells.write().unwrap_or_else(PoisonError::into_inner);
        record(cells.entry(bridge.to_owned()).or_default());
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        let name = self.name;
        let cells = self.cells.read().unwrap_or_else(PoisonError::into_inner);
        let mut bridges: Vec<_> = cells.iter().collect();
        bridges.sort_unstable_by_key(|(bridge, _)| bridge.as_str());
        for (bridge, histogram) in bridges {
            let bridge = Escaped(bridge);
            let mut cumulative = 0u64;
            let les = LATENCY_BUCKETS.iter().map(|(_, le)| *le).chain(["+Inf"]);
            for (le, cell) in les.zip(&histogram.buckets) {
                cumulative += cell.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{bridge=\"{bridge}\",le=\"{le}\"}} {cumulative}"
                );
            }
            // Seconds, written the shortest way that reads back exactly.
            let sum = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{{bridge=\"{bridge}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{bridge=\"{bridge}\"}} {cumulative}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The lines of `text` that are samples of `name` (exactly, or with labels).
    fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .collect()
    }

    #[test]
    fn renders_a_small_scenario_exactly() {
        let m = Metrics::new();
        m.inbound("memory:right", "message");
        m.inbound("memory:left", "message");
        m.inbound("memory:left", "message");
        m.inbound("memory:left", "edit");
        m.dropped("memory:left", "echo");
        m.delivered("memory:right", "message", Duration::from_millis(3));
        m.delivered("memory:right", "message", Duration::from_millis(200));
        m.retried("memory:right", "network");
        m.dead_lettered("memory:right", "permanent");
        m.bridge_restarted("memory:left");
        m.set_outbox_depth(5);
        m.outbox_depth_add(-2);
        m.set_bridge_up("memory:left", "connected");

        let expected = r#"# HELP switchboard_inbound_total Events received from platforms.
# TYPE switchboard_inbound_total counter
switchboard_inbound_total{bridge="memory:left",kind="edit"} 1
switchboard_inbound_total{bridge="memory:left",kind="message"} 2
switchboard_inbound_total{bridge="memory:right",kind="message"} 1
# HELP switchboard_dropped_total Inbound events dropped before relaying (duplicates, echoes).
# TYPE switchboard_dropped_total counter
switchboard_dropped_total{bridge="memory:left",reason="echo"} 1
# HELP switchboard_delivered_total Operations delivered to a target bridge.
# TYPE switchboard_delivered_total counter
switchboard_delivered_total{bridge="memory:right",kind="message"} 2
# HELP switchboard_delivery_latency_seconds Time from receiving an event to delivering it to a target bridge.
# TYPE switchboard_delivery_latency_seconds histogram
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="0.001"} 0
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="0.0025"} 0
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="0.005"} 1
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="0.01"} 1
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="0.025"} 1
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="0.05"} 1
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="0.1"} 1
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="0.25"} 2
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="0.5"} 2
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="1"} 2
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="2.5"} 2
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="5"} 2
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="10"} 2
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="30"} 2
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="60"} 2
switchboard_delivery_latency_seconds_bucket{bridge="memory:right",le="+Inf"} 2
switchboard_delivery_latency_seconds_sum{bridge="memory:right"} 0.203
switchboard_delivery_latency_seconds_count{bridge="memory:right"} 2
# HELP switchboard_retried_total Delivery attempts that failed and will be retried.
# TYPE switchboard_retried_total counter
switchboard_retried_total{bridge="memory:right",error="network"} 1
# HELP switchboard_dead_lettered_total Operations given up on and moved to the dead-letter tree.
# TYPE switchboard_dead_lettered_total counter
switchboard_dead_lettered_total{bridge="memory:right",error="permanent"} 1
# HELP switchboard_bridge_restarts_total Times a bridge's connector was restarted after failing.
# TYPE switchboard_bridge_restarts_total counter
switchboard_bridge_restarts_total{bridge="memory:left"} 1
# HELP switchboard_outbox_depth Operations waiting in the outbox.
# TYPE switchboard_outbox_depth gauge
switchboard_outbox_depth 3
# HELP switchboard_bridge_state Each bridge's connection state: 1 for the current state, 0 for the others.
# TYPE switchboard_bridge_state gauge
switchboard_bridge_state{bridge="memory:left",state="connecting"} 0
switchboard_bridge_state{bridge="memory:left",state="connected"} 1
switchboard_bridge_state{bridge="memory:left",state="transient_disconnect"} 0
switchboard_bridge_state{bridge="memory:left",state="bad_credentials"} 0
switchboard_bridge_state{bridge="memory:left",state="stopped"} 0
"#;
        assert_eq!(m.render(), expected);
    }

    #[test]
    fn an_empty_registry_still_declares_every_family() {
        let text = Metrics::new().render();
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE ")).count(), 9);
        assert_eq!(
            samples(&text, "switchboard_outbox_depth"),
            ["switchboard_outbox_depth 0"]
        );
    }

    #[test]
    fn escapes_label_values() {
        let m = Metrics::new();
        m.inbound("a\\b\"c\nd", "message");
        let text = m.render();
        assert_eq!(
            samples(&text, "switchboard_inbound_total"),
            [r#"switchboard_inbound_total{bridge="a\\b\"c\nd",kind="message"} 1"#]
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
        let m = Metrics::new();
        for latency in [
            Duration::from_millis(1), // exactly on the first bound: counts there
            Duration::from_micros(1_001),
            Duration::from_secs(60),
            Duration::from_secs(61), // only in +Inf
            Duration::from_secs(u64::MAX),
        ] {
            m.delivered("b", "message", latency);
        }
        let text = m.render();
        let buckets: Vec<(String, u64)> =
            samples(&text, "switchboard_delivery_latency_seconds_bucket")
                .iter()
                .map(|line| {
                    let le = line.split("le=\"").nth(1).and_then(|s| s.split('"').next());
                    let value = line.rsplit(' ').next().and_then(|v| v.parse().ok());
                    (le.expect("le label").to_owned(), value.expect("value"))
                })
                .collect();
        let expect = |le: &str| buckets.iter().find(|(l, _)| l == le).map(|(_, v)| *v);
        assert_eq!(buckets.len(), 16);
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "not cumulative: {buckets:?}"
        );
        assert_eq!(expect("0.001"), Some(1));
        assert_eq!(expect("0.0025"), Some(2));
        assert_eq!(expect("30"), Some(2));
        assert_eq!(expect("60"), Some(3));
        assert_eq!(expect("+Inf"), Some(5));
        assert_eq!(
            samples(&text, "switchboard_delivery_latency_seconds_count"),
            [r#"switchboard_delivery_latency_seconds_count{bridge="b"} 5"#]
        );
    }

    #[test]
    fn bridge_state_gauge_follows_the_latest_state() {
        let m = Metrics::new();
        m.set_bridge_up("b", "connecting");
        m.set_bridge_up("b", "bad_credentials");
        m.set_bridge_up("a", "something_new");
        let text = m.render();
        let ones: Vec<_> = samples(&text, "switchboard_bridge_state")
            .into_iter()
            .filter(|l| l.ends_with(" 1"))
            .collect();
        assert_eq!(
            ones,
            [
                r#"switchboard_bridge_state{bridge="a",state="something_new"} 1"#,
                r#"switchboard_bridge_state{bridge="b",state="bad_credentials"} 1"#,
            ]
        );
        // Five known states for each bridge, plus the unknown one for "a".
        assert_eq!(samples(&text, "switchboard_bridge_state").len(), 11);
    }

    #[test]
    fn concurrent_increments_add_up() {
        let m = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    // Half the threads share a bridge, so first-use races happen.
                    let bridge = if t % 2 == 0 { "even" } else { "odd" };
                    for _ in 0..10_000 {
                        m.inbound(bridge, "message");
                        m.inbound("shared", "message");
                        m.delivered("shared", "message", Duration::from_millis(7));
                        m.outbox_depth_add(1);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread panicked");
        }
        let text = m.render();
        let inbound = samples(&text, "switchboard_inbound_total");
        assert!(
            inbound.contains(&r#"switchboard_inbound_total{bridge="even",kind="message"} 40000"#)
        );
        assert!(
            inbound.contains(&r#"switchboard_inbound_total{bridge="odd",kind="message"} 40000"#)
        );
        assert!(
            inbound.contains(&r#"switchboard_inbound_total{bridge="shared",kind="message"} 80000"#)
        );
        assert_eq!(
            samples(&text, "switchboard_delivery_latency_seconds_count"),
            [r#"switchboard_delivery_latency_seconds_count{bridge="shared"} 80000"#]
        );
        assert_eq!(
            samples(&text, "switchboard_outbox_depth"),
            ["switchboard_outbox_depth 80000"]
        );
    }

    /// The metric names and label names the shipped alert rules and
    /// dashboard use must be ones this daemon exports.
    #[test]
    fn the_alerts_and_the_dashboard_use_only_exported_metrics_and_labels() {
        let text = Metrics::new().render();
        let mut names: Vec<String> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                    continue;
                };
                names.push(name.to_owned());
                if kind == "histogram" {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.push(format!("{name}{suffix}"));
                    }
                }
            }
        }
        let labels = [
            "bridge", "kind", "reason", "error", "state", "le", "instance", "job",
        ];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
        for file in [
            "prometheus/switchboard-alerts.yml",
            "grafana/switchboard-dashboard.json",
        ] {
            let body = std::fs::read_to_string(root.join(file)).expect("deploy file");
            let used = metric_names(&body);
            assert!(used.len() >= 6, "{file}: {used:?}");
            for name in &used {
                assert!(
                    names.contains(name),
                    "{file} uses {name}, not exported: {names:?}"
                );
            }
            for label in label_names(&body) {
                assert!(
                    labels.contains(&label.as_str()),
                    "{file} uses label {label}"
                );
            }
        }
        // Every family is watched by something.
        let shipped = metric_names(&format!(
            "{}{}",
            std::fs::read_to_string(root.join("prometheus/switchboard-alerts.yml"))
                .unwrap_or_default(),
            std::fs::read_to_string(root.join("grafana/switchboard-dashboard.json"))
                .unwrap_or_default()
        ));
        for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let name = line.split(' ').next().unwrap_or_default();
            assert!(
                shipped.iter().any(|s| s.starts_with(name)),
                "{name} is on neither the dashboard nor an alert"
            );
        }
        let dashboard: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("grafana/switchboard-dashboard.json"))
                .unwrap_or_default(),
        )
        .expect("the dashboard is JSON");
        assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 6));
    }

    /// Every `switchboard_…` identifier in `text`.
    fn metric_names(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("switchboard_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            out.push(tail[..end].to_owned());
            rest = &tail[end..];
        }
        out.sort();
        out.dedup();
        out
    }

    /// The label names in selectors (`{a="…", b=~"…"}`) and `by (…)` clauses.
    fn label_names(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, _) in text.match_indices("switchboard_") {
            let tail = &text[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if let Some(selector) = tail[end..].strip_prefix('{')
                && let Some(close) = selector.find('}')
            {
                for matcher in selector[..close].split(',') {
                    let name: String = matcher
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.push(name);
                    }
                }
            }
        }
        for (i, _) in text.match_indices("by (") {
            let tail = &text[i + 4..];
            if let Some(close) = tail.find(')') {
                out.extend(tail[..close].split(',').map(|s| s.trim().to_owned()));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}
