//! The process's tracing subscriber: plain lines or JSON objects on stderr,
//! or structured entries straight to the systemd journal.
//!
//! The filter comes from the configuration (`[log] filter`) or the command
//! line, never from `RUST_LOG`, so that what a deployment logs is written
//! down in one place. When journald output is asked for but the journal's
//! socket cannot be reached (a container, a developer's shell), logging falls
//! back to plain lines on stderr and says so in a WARN line, rather than
//! stopping the daemon for want of logs.

use crate::config::LogFormat;
use anyhow::Context as _;
use std::io::{self, IsTerminal as _};
use tracing::warn;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Registry;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, Layered, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// The registry with the filter applied, which the output layer sits on.
type Filtered = Layered<EnvFilter, Registry>;

/// One output layer, whichever format was chosen.
type Output = Box<dyn Layer<Filtered> + Send + Sync>;

/// Installs the global subscriber: `format` output, keeping what `filter`
/// (a tracing directive such as `info` or `switchboard=debug,info`) allows.
///
/// Call it once, early. A second call (or any other global subscriber
/// already installed) is an error, not a panic; so is an invalid filter.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let ansi = io::stderr().is_terminal();
    let (subscriber, journald_error) =
        build(format, filter, io::stderr, ansi, tracing_journald::layer)?;
    subscriber
        .try_init()
        .context("logging is already initialised")?;
    if let Some(e) = journald_error {
        warn!(error = %e, "The systemd journal is unavailable, logging to stderr instead.");
    }
    Ok(())
}

/// The subscriber [`init`] installs, writing plain and JSON output to
/// `writer` and opening the journal with `journald`. Also returns why the
/// journal could not be used, when it fell back to plain output.
fn build<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
    ansi: bool,
    journald: impl FnOnce() -> io::Result<tracing_journald::Layer>,
) -> anyhow::Result<(Layered<Output, Filtered>, Option<io::Error>)>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_new(filter).with_context(|| format!("invalid log filter {filter:?}"))?;
    let plain = |writer: W| -> Output {
        Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(ansi),
        )
    };
    let (output, journald_error): (Output, _) = match format {
        LogFormat::Plain => (plain(writer), None),
        LogFormat::Json => {
            let json = tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(writer);
            (Box::new(json), None)
        }
        LogFormat::Journald => match journald() {
            Ok(layer) => (Box::new(layer), None),
            Err(e) => (plain(writer), Some(e)),
        },
    };
    Ok((
        tracing_subscriber::registry().with(filter).with(output),
        journald_error,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::{info, warn};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("capture lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn make_writer(&self) -> impl Fn() -> Captured + Send + Sync + 'static {
            let this = self.clone();
            move || this.clone()
        }

        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("capture lock").clone()).expect("utf-8 logs")
        }
    }

    fn no_journal() -> io::Result<tracing_journald::Layer> {
        Err(io::Error::new(io::ErrorKind::NotFound, "no journal here"))
    }

    #[test]
    fn journald_falls_back_to_plain() {
        let captured = Captured::default();
        let (subscriber, error) = build(
            LogFormat::Journald,
            "info",
            captured.make_writer(),
            false,
            no_journal,
        )
        .expect("valid filter");
        assert_eq!(error.map(|e| e.kind()), Some(io::ErrorKind::NotFound));
        tracing::subscriber::with_default(subscriber, || {
            info!(bridge = "memory:a", "Bridge connected.");
        });
        let text = captured.text();
        assert!(text.contains("INFO"), "{text}");
        assert!(text.contains("Bridge connected."), "{text}");
        assert!(text.contains("bridge=\"memory:a\""), "{text}");
        assert!(!text.contains('{'), "plain, not JSON: {text}");
    }

    #[test]
    fn json_is_one_object_per_line_with_fields() {
        let captured = Captured::default();
        let (subscriber, error) = build(
            LogFormat::Json,
            "info",
            captured.make_writer(),
            false,
            no_journal,
        )
        .expect("valid filter");
        assert!(error.is_none());
        tracing::subscriber::with_default(subscriber, || {
            info!(bridge = "memory:a", attempt = 3, "Bridge connected.");
            warn!(bridge = "memory:b", "Delivery failed, will retry.");
        });
        let text = captured.text();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is a JSON object"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["message"], "Bridge connected.");
        assert_eq!(lines[0]["bridge"], "memory:a");
        assert_eq!(lines[0]["attempt"], 3);
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["bridge"], "memory:b");
    }

    #[test]
    fn the_filter_applies() {
        let captured = Captured::default();
        let (subscriber, _) = build(
            LogFormat::Plain,
            "warn",
            captured.make_writer(),
            false,
            no_journal,
        )
        .expect("valid filter");
        tracing::subscriber::with_default(subscriber, || {
            info!("Hidden.");
            warn!("Shown.");
        });
        let text = captured.text();
        assert!(!text.contains("Hidden."), "{text}");
        assert!(text.contains("Shown."), "{text}");
    }

    #[test]
    fn an_invalid_filter_is_an_error() {
        let captured = Captured::default();
        let result = build(
            LogFormat::Plain,
            "switchboard=loud",
            captured.make_writer(),
            false,
            no_journal,
        );
        let error = result.err().expect("invalid filter refused");
        assert!(error.to_string().contains("switchboard=loud"), "{error}");
    }
}
