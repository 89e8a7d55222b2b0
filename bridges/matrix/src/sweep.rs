//! Looks in portal rooms for events the homeserver never pushed.
//!
//! While the daemon cannot be reached (stopped, killed, or refusing a
//! transaction), Synapse stores each transaction and, once the application
//! service answers again, a recoverer sends the stored ones in order, then
//! marks the service up. An event sent in the short moment between the
//! recoverer's last look at its table and that mark is stored as one more
//! transaction that nothing sends, until the next failure starts another
//! recoverer — which may never come (synapse/appservice/scheduler.py:
//! `_TransactionController.send` and `_Recoverer.retry`). Transaction ids
//! cannot show the gap when the homeserver numbers the transactions of
//! several application services in one sequence.
//!
//! So after every start and every transaction the endpoint did not store,
//! the bridge schedules two sweeps, [`FIRST`] and [`SECOND`] later: each
//! reads the newest events of every portal room back to shortly before the
//! trouble began and hands the relay those that people (not the bridge)
//! wrote; the relay drops the ones it stored already, by event id.
//!
//! A sweep finds a stranded event only after newer ones of its room went
//! out. To keep a portal's order, each transaction that arrives in the
//! [`SETTLE`] period after the trouble first has the events just before its
//! own read from each of its rooms (`/context`), and those of them not seen
//! yet go first.

use crate::bridge::MatrixBridge;
use crate::client::{Method, enc};
use crate::events::RoomEvent;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use switchboard_model::{BridgeContext, ChannelId, Timestamp};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The first sweep after a start or a refused transaction: the recoverer
/// has usually finished by then.
pub(crate) const FIRST: Duration = Duration::from_secs(5);
/// The second one, for a recoverer that had much to send.
pub(crate) const SECOND: Duration = Duration::from_secs(30);
/// How far before the trouble a sweep looks (clocks differ).
const MARGIN_MS: u64 = 2 * 60 * 1000;
/// How long after a start or a refused transaction each transaction is
/// checked for events missing before it.
pub(crate) const SETTLE: Duration = Duration::from_secs(30);
/// How many events before a transaction's first one are checked.
const BEFORE: u32 = 20;
/// Events per page, and pages per room at most.
const PAGE: u32 = 100;
const MAX_PAGES: usize = 10;

/// Sweeps waiting to run: when, and the time (ms) each looks back to.
#[derive(Debug, Default)]
pub(crate) struct Sweeps {
    due: Mutex<BTreeMap<Instant, u64>>,
    changed: Notify,
    settle: Mutex<Settle>,
}

/// The period in which transactions are checked for what is missing
/// before them, and the events seen in it.
#[derive(Debug, Default)]
struct Settle {
    until: Option<Instant>,
    since_ms: u64,
    seen: HashSet<String>,
}

impl Sweeps {
    /// Schedules the two sweeps for trouble that began at `since_ms`.
    pub(crate) fn schedule(&self, since_ms: u64) {
        let now = Instant::now();
        {
            let mut settle = self.settle.lock().unwrap_or_else(|p| p.into_inner());
            if settle.until.is_none_or(|until| until <= now) {
                settle.seen.clear();
                settle.since_ms = since_ms;
            }
            settle.since_ms = settle.since_ms.min(since_ms);
            settle.until = Some(now + SETTLE);
        }
        {
            let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
            for after in [FIRST, SECOND] {
                let at = now + after;
                let since = due.get(&at).map_or(since_ms, |s| (*s).min(since_ms));
                due.insert(at, since);
            }
        }
        self.changed.notify_one();
    }

    /// In the settle period: the time (ms) a check looks back to.
    fn settling(&self) -> Option<u64> {
        let mut settle = self.settle.lock().unwrap_or_else(|p| p.into_inner());
        match settle.until {
            Some(until) if Instant::now() < until => Some(settle.since_ms),
            Some(_) => {
                *settle = Settle::default();
                None
            }
            None => None,
        }
    }

    /// Marks `id` seen in the settle period; false if it was already.
    fn first_sight(&self, id: &str) -> bool {
        let mut settle = self.settle.lock().unwrap_or_else(|p| p.into_inner());
        settle.seen.insert(id.to_owned())
    }

    /// When the next sweep is due.
    pub(crate) fn next(&self) -> Option<Instant> {
        let due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        due.keys().next().copied()
    }

    /// Takes the sweeps due at `now`: the earliest time they look back to.
    pub(crate) fn take_due(&self, now: Instant) -> Option<u64> {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let later = due.split_off(&(now + Duration::from_nanos(1)));
        let ready = std::mem::replace(&mut *due, later);
        ready.into_values().min()
    }

    /// Waits until a sweep is scheduled or one falls due.
    pub(crate) async fn wait(&self) {
        match self.next() {
            Some(at) => tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = self.changed.notified() => {}
            },
            None => self.changed.notified().await,
        }
    }
}

impl MatrixBridge {
    /// Runs the sweeps that are due (see the module docs).
    pub(crate) async fn sweep_if_due(&self, ctx: &BridgeContext) {
        let Some(since_ms) = self.sweeps.take_due(Instant::now()) else {
            return;
        };
        let since_ms = since_ms.saturating_sub(MARGIN_MS);
        let mut handed = 0;
        for channel in ctx.channels() {
            if ctx.shutdown.is_cancelled() {
                return;
            }
            let Some(room) = self.room_of(&channel) else {
                continue;
            };
            let events = self.written_since(&room, since_ms).await;
            if events.is_empty() {
                continue;
            }
            let inbound = self.inbound_of(ctx, &events).await;
            let mut stored = Vec::with_capacity(inbound.len());
            for event in inbound {
                match ctx.inbound.submit(event).await {
                    Ok(s) => stored.push(s),
                    Err(e) => {
                        // The relay refuses (a full disk): look again later.
                        tracing::warn!(bridge = %self.config.id, error = %e, "A sweep's events were refused; sweeping again later.");
                        self.sweeps.schedule(since_ms + MARGIN_MS);
                        return;
                    }
                }
            }
            handed += stored.len();
            for s in stored {
                if s.await.is_err() {
                    self.sweeps.schedule(since_ms + MARGIN_MS);
                    return;
                }
            }
        }
        tracing::debug!(bridge = %self.config.id, events = handed, "Swept the portal rooms for events never pushed.");
    }

    /// In the settle period after trouble: `events` (a transaction's),
    /// preceded by the events people wrote just before them in their rooms
    /// that this process has not seen, oldest first. Outside it, `events`.
    /// [`GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`](https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3roomsroomidcontexteventid)
    pub(crate) async fn with_missed_before(&self, events: &[Value]) -> Vec<Value> {
        let Some(since_ms) = self.sweeps.settling() else {
            return events.to_vec();
        };
        let since_ms = since_ms.saturating_sub(MARGIN_MS);
        let mut first_in_room: Vec<(String, String)> = Vec::new();
        for raw in events {
            let (Some(room), Some(id)) = (
                raw.get("room_id").and_then(Value::as_str),
                raw.get("event_id").and_then(Value::as_str),
            ) else {
                continue;
            };
            self.sweeps.first_sight(id);
            if !first_in_room.iter().any(|(r, _)| r == room) {
                first_in_room.push((room.to_owned(), id.to_owned()));
            }
        }
        let mut out: Vec<Value> = Vec::new();
        for (room, first) in first_in_room {
            if self.rooms.channel_of(&room).is_none() {
                continue;
            }
            let path = format!(
                "/_matrix/client/v3/rooms/{}/context/{}?limit={BEFORE}",
                enc(&room),
                enc(&first)
            );
            let page = match self.client.call(Method::Get, &path, None, None).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::debug!(bridge = %self.config.id, %room, error = %e, "Could not read what came before a transaction.");
                    continue;
                }
            };
            let mut before: Vec<Value> = Vec::new();
            for raw in page
                .get("events_before")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let mut raw = raw.clone();
                if raw.get("room_id").is_none() {
                    raw["room_id"] = Value::from(room.as_str());
                }
                let Ok(event) = RoomEvent::from_json(&raw) else {
                    continue;
                };
                if event.ts.is_some_and(|ts| ts < since_ms) {
                    break;
                }
                if self.written_by_people(&event) && self.sweeps.first_sight(&event.event_id) {
                    before.push(raw);
                }
            }
            if !before.is_empty() {
                tracing::debug!(bridge = %self.config.id, %room, events = before.len(), "Events before a transaction not seen in this run go first (the relay drops those it has).");
            }
            before.reverse();
            out.extend(before);
        }
        out.extend(events.iter().cloned());
        out
    }

    /// The Matrix room of a portal channel, when known.
    fn room_of(&self, channel: &ChannelId) -> Option<String> {
        self.rooms.known_room(channel).or_else(|| {
            channel
                .as_str()
                .starts_with('!')
                .then(|| channel.as_str().to_owned())
        })
    }

    /// The events people wrote in `room` from `since_ms` on, oldest first
    /// (messages, reactions, redactions, calls; not the bridge's own).
    /// [`GET /_matrix/client/v3/rooms/{roomId}/messages`](https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3roomsroomidmessages)
    async fn written_since(&self, room: &str, since_ms: u64) -> Vec<Value> {
        let mut found: Vec<Value> = Vec::new();
        let mut from: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut path = format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit={PAGE}",
                enc(room)
            );
            if let Some(token) = &from {
                path.push_str(&format!("&from={}", enc(token)));
            }
            let page = match self.client.call(Method::Get, &path, None, None).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::debug!(bridge = %self.config.id, %room, error = %e, "Could not sweep a portal room.");
                    break;
                }
            };
            let chunk = page.get("chunk").and_then(Value::as_array);
            let mut older = false;
            for raw in chunk.into_iter().flatten() {
                let mut raw = raw.clone();
                if raw.get("room_id").is_none() {
                    raw["room_id"] = Value::from(room);
                }
                let Ok(event) = RoomEvent::from_json(&raw) else {
                    continue;
                };
                if event.ts.is_some_and(|ts| ts < since_ms) {
                    older = true;
                    break;
                }
                if self.written_by_people(&event) {
                    found.push(raw);
                }
            }
            from = page.get("end").and_then(Value::as_str).map(str::to_owned);
            if older || from.is_none() || chunk.is_none_or(Vec::is_empty) {
                break;
            }
        }
        found.reverse();
        found
    }

    /// An event a person wrote that a portal relays.
    fn written_by_people(&self, event: &RoomEvent) -> bool {
        let relayable = crate::calls::is_call_event(&event.kind, event.state_key.is_some())
            || (event.state_key.is_none()
                && matches!(
                    event.kind.as_str(),
                    "m.room.message" | "m.sticker" | "m.reaction" | "m.room.redaction"
                ));
        relayable
            && !self.namer().is_ours(&event.sender)
            && event.content.get(crate::bridge::TXN_KEY).is_none()
    }
}

/// The time now, for [`Sweeps::schedule`].
pub(crate) fn now_ms() -> u64 {
    Timestamp::now().as_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn two_sweeps_follow_each_trouble_and_look_back_to_the_earliest() {
        let s = Sweeps::default();
        assert_eq!(s.next(), None);
        let t0 = Instant::now();
        s.schedule(1_000);
        assert_eq!(s.next(), Some(t0 + FIRST));
        assert_eq!(s.take_due(t0), None);
        tokio::time::advance(FIRST).await;
        s.wait().await;
        assert_eq!(s.take_due(Instant::now()), Some(1_000));
        // More trouble before the second sweep: both are due together later.
        s.schedule(900);
        tokio::time::advance(SECOND).await;
        assert_eq!(s.take_due(Instant::now()), Some(900));
        assert_eq!(s.next(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_wakes_when_a_sweep_is_scheduled() {
        let s = std::sync::Arc::new(Sweeps::default());
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.wait().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        s.schedule(5);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("joined");
    }
}
