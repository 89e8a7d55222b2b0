//! What both benchmark binaries share: the results table's rows, latency
//! percentiles, and readings of `/proc`. Each binary uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

/// Added-latency percentiles (and mean) of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Latency {
    /// The percentiles of `added` (nanoseconds); `None` when it is empty.
    pub fn of(mut added: Vec<u64>) -> Option<Latency> {
        if added.is_empty() {
            return None;
        }
        added.sort_unstable();
        let pick = |q: f64| -> Duration {
            // Index arithmetic on counts far below 2^52.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let i = ((added.len() - 1) as f64 * q).round() as usize;
            Duration::from_nanos(added[i])
        };
        let sum: u128 = added.iter().map(|&a| u128::from(a)).sum();
        let mean = u64::try_from(sum / added.len() as u128).unwrap_or(u64::MAX);
        Some(Latency {
            p50: pick(0.50),
            p99: pick(0.99),
            max: pick(1.0),
            mean: Duration::from_nanos(mean),
        })
    }
}

/// One line of the results table.
#[derive(Debug, Default)]
pub struct Row {
    pub scenario: String,
    pub portals: usize,
    pub messages: usize,
    /// Messages (or drained ops) per second.
    pub rate: f64,
    pub latency: Option<Latency>,
    /// Peak RSS of the measured process, KiB.
    pub hwm_kib: u64,
    /// Its RSS at the end of the scenario, KiB.
    pub rss_kib: u64,
    pub notes: String,
}

impl Row {
    pub fn header() -> &'static str {
        "| scenario | portals | messages | msg/s | p50 | p99 | max | peak RSS (VmHWM) | RSS at end | notes |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    }

    pub fn markdown(&self) -> String {
        let (p50, p99, max) = match &self.latency {
            Some(l) => (ms(l.p50), ms(l.p99), ms(l.max)),
            None => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
        };
        format!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            self.scenario,
            self.portals,
            self.messages,
            self.rate,
            p50,
            p99,
            max,
            mib(self.hwm_kib),
            mib(self.rss_kib),
            self.notes
        )
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

pub fn mib(kib: u64) -> String {
    // KiB counts of a process fit an f64 exactly.
    #[allow(clippy::cast_precision_loss)]
    let m = kib as f64 / 1024.0;
    format!("{m:.1} MiB")
}

/// The 1-minute load average.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Reads a `Name:   123 kB` line of a `/proc` file.
pub fn proc_kib(file: &Path, field: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
