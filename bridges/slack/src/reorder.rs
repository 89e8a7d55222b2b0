//! Puts events read from several Socket Mode connections back in order.
//!
//! While a replaced socket is still open, Slack spreads events over both
//! connections, so two messages of one channel can be read in the opposite
//! order to the one they were posted in. Envelopes read during such an
//! overlap, and for one window after the last replaced socket closed, wait
//! here for that window and leave in the order of their event timestamps;
//! after that, what still waits leaves before the next envelope read.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// How long an envelope read while two sockets are open waits for an
/// earlier one still on its way over the other socket.
pub(crate) const WINDOW: Duration = Duration::from_millis(250);

/// A Slack timestamp as an ordering key: (seconds, fraction in µs).
type Key = (u64, u64, u64);

/// Envelopes held back, ordered by event timestamp then arrival.
pub(crate) struct Reorder<T> {
    held: BTreeMap<Key, (Instant, T)>,
    seq: u64,
    /// The latest timestamp seen: an envelope without one keeps its place
    /// behind what came before it.
    last: (u64, u64),
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Reorder {
            held: BTreeMap::new(),
            seq: 0,
            last: (0, 0),
        }
    }
}

impl<T> Reorder<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Holds `item`, read at `now` from an envelope whose text is `frame`.
    pub(crate) fn hold(&mut self, frame: &str, item: T, now: Instant) {
        let ts = event_ts(frame).unwrap_or(self.last);
        self.last = self.last.max(ts);
        self.seq += 1;
        self.held.insert((ts.0, ts.1, self.seq), (now, item));
    }

    /// When the next envelope may leave, if any waits.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.held.values().map(|(at, _)| *at + WINDOW).min()
    }

    /// Everything that may leave at `now`, in order: each envelope that
    /// waited its window, and with it every one with an earlier timestamp.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<T> {
        let Some(upto) = self
            .held
            .iter()
            .filter(|(_, (at, _))| *at + WINDOW <= now)
            .map(|(k, _)| *k)
            .max()
        else {
            return Vec::new();
        };
        let rest = self.held.split_off(&(upto.0, upto.1, upto.2 + 1));
        let out = std::mem::replace(&mut self.held, rest);
        out.into_values().map(|(_, item)| item).collect()
    }

    /// Everything held, in order (one socket is left, and nothing earlier
    /// is still on its way).
    pub(crate) fn drain(&mut self) -> Vec<T> {
        std::mem::take(&mut self.held)
            .into_values()
            .map(|(_, item)| item)
            .collect()
    }
}

/// Whether a Socket Mode frame is an Events API envelope (the only kind
/// held back; commands and control frames go through at once).
pub(crate) fn is_event_envelope(frame: &str) -> bool {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<&'a str>,
    }
    serde_json::from_str::<Kind<'_>>(frame).is_ok_and(|k| k.kind == Some("events_api"))
}

/// The timestamp an envelope's event carries (`event_ts`, else `ts`), else
/// the callback's `event_time`.
fn event_ts(frame: &str) -> Option<(u64, u64)> {
    #[derive(Deserialize)]
    struct Envelope {
        payload: Option<Callback>,
    }
    #[derive(Deserialize)]
    struct Callback {
        event: Option<Event>,
        event_time: Option<u64>,
    }
    #[derive(Deserialize)]
    struct Event {
        event_ts: Option<String>,
        ts: Option<String>,
    }
    let callback = serde_json::from_str::<Envelope>(frame).ok()?.payload?;
    let from_event = callback
        .event
        .and_then(|e| e.event_ts.or(e.ts))
        .and_then(|ts| parse_ts(&ts));
    from_event.or(callback.event_time.map(|s| (s, 0)))
}

/// The timestamp of an envelope's payload (the Events API callback).
pub(crate) fn payload_ts(payload: &[u8]) -> Option<(u64, u64)> {
    #[derive(Deserialize)]
    struct Callback {
        event: Option<Event>,
    }
    #[derive(Deserialize)]
    struct Event {
        event_ts: Option<String>,
        ts: Option<String>,
    }
    let event = serde_json::from_slice::<Callback>(payload).ok()?.event?;
    parse_ts(&event.event_ts.or(event.ts)?)
}

/// `"1700000000.000100"` → (1700000000, 100).
fn parse_ts(ts: &str) -> Option<(u64, u64)> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    let secs = secs.parse().ok()?;
    // Slack writes six digits; pad or cut so that ".1" and ".100000" agree.
    let mut digits: String = frac.chars().take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    Some((secs, digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(event_ts: &str) -> String {
        format!(
            r#"{{"envelope_id":"e","type":"events_api","payload":{{"type":"event_callback","event_time":1,"event":{{"type":"message","ts":"{event_ts}","event_ts":"{event_ts}"}}}}}}"#
        )
    }

    #[test]
    fn timestamps_parse_and_compare_by_value() {
        assert_eq!(parse_ts("1700000000.000100"), Some((1_700_000_000, 100)));
        assert_eq!(parse_ts("1700000000.1"), Some((1_700_000_000, 100_000)));
        assert_eq!(parse_ts("12"), Some((12, 0)));
        assert_eq!(parse_ts("x.1"), None);
        assert_eq!(event_ts(&envelope("5.000002")), Some((5, 2)));
        assert_eq!(
            event_ts(r#"{"type":"events_api","payload":{"event_time":9,"event":{}}}"#),
            Some((9, 0))
        );
        assert_eq!(event_ts("not json"), None);
    }

    #[test]
    fn only_event_envelopes_are_held() {
        assert!(is_event_envelope(&envelope("1.0")));
        assert!(!is_event_envelope(
            r#"{"type":"slash_commands","payload":{}}"#
        ));
        assert!(!is_event_envelope(
            r#"{"type":"disconnect","reason":"warning"}"#
        ));
        assert!(!is_event_envelope("{"));
    }

    #[test]
    fn envelopes_leave_in_timestamp_order_after_their_window() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        // Read in the wrong order, 10 ms apart, over two sockets.
        r.hold(&envelope("100.000003"), "third", t0);
        r.hold(
            &envelope("100.000001"),
            "first",
            t0 + Duration::from_millis(10),
        );
        r.hold(
            &envelope("100.000002"),
            "second",
            t0 + Duration::from_millis(20),
        );
        assert_eq!(r.next_due(), Some(t0 + WINDOW));
        assert!(r.due(t0 + WINDOW - Duration::from_millis(1)).is_empty());
        // The first one read has waited: it leaves with every earlier one.
        assert_eq!(r.due(t0 + WINDOW), vec!["first", "second", "third"]);
        assert!(r.is_empty());
        assert_eq!(r.next_due(), None);
    }

    #[test]
    fn a_later_envelope_still_waits_its_own_window() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        r.hold(&envelope("100.000001"), "a", t0);
        r.hold(
            &envelope("100.000005"),
            "c",
            t0 + Duration::from_millis(100),
        );
        assert_eq!(r.due(t0 + WINDOW), vec!["a"]);
        // An earlier one that comes before `c` is due still goes first.
        r.hold(&envelope("100.000004"), "b", t0 + WINDOW);
        assert_eq!(r.next_due(), Some(t0 + Duration::from_millis(100) + WINDOW));
        assert_eq!(
            r.due(t0 + Duration::from_millis(100) + WINDOW),
            vec!["b", "c"]
        );
    }

    #[test]
    fn envelopes_without_a_timestamp_keep_their_place_and_drain_empties() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        r.hold(&envelope("7.000001"), 1, t0);
        r.hold(r#"{"type":"events_api","payload":{}}"#, 2, t0);
        r.hold(&envelope("7.000002"), 3, t0);
        assert_eq!(r.drain(), vec![1, 2, 3]);
        assert!(r.is_empty());
    }
}
