//! A lane: one portal's ops for one target channel, delivered strictly in the
//! order they were accepted.
//!
//! The head of the queue is delivered, retried or dead-lettered before the
//! next op is touched, so an edit, delete, reply or reaction always follows
//! the message it refers to. An op whose target message was never seen at all
//! (it may still arrive, e.g. an edit that overtook its message) is parked
//! beside the queue and re-checked until it resolves or
//! `relay.dependency_wait` runs out.

use super::policy::{self, Decision};
use super::translate::{PrepareError, Prepared, Translator, op_id};
use super::{LaneKey, Shared};
use crate::store::records::{OutboxEntry, PendingAction};
use crate::store::{GroupId, OutboxKey};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_model::{BridgeError, Timestamp};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often parked ops are re-checked.
const PARK_RECHECK: Duration = Duration::from_millis(250);

/// One lane's queue.
#[derive(Debug)]
pub struct Lane {
    key: LaneKey,
    queue: Mutex<VecDeque<(OutboxKey, OutboxEntry)>>,
    notify: Notify,
}

impl Lane {
    /// An empty lane.
    pub fn new(key: LaneKey) -> Self {
        Lane {
            key,
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
        }
    }

    /// Appends an op.
    pub fn push(&self, key: OutboxKey, entry: OutboxEntry) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back((key, entry));
        self.notify.notify_one();
    }

    fn head(&self) -> Option<(OutboxKey, OutboxEntry)> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .front()
            .cloned()
    }

    /// Whether an op that may make this lane's channel a portal (a command
    /// or a direct chat), or an event held until those are done, is queued.
    pub(super) fn sets_up_a_portal(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(_, e)| {
                matches!(
                    e.action,
                    PendingAction::Command { .. }
                        | PendingAction::DirectChat { .. }
                        | PendingAction::Held { .. }
                )
            })
    }

    /// Whether a message of `group` is still queued here.
    fn has_pending_send(&self, group: GroupId) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(_, e)| matches!(e.action, PendingAction::Send { group: g, .. } if g == group))
    }

    fn pop(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.pop_front();
        if queue.is_empty() {
            // An idle lane keeps no buffer: with thousands of portals, the
            // buffers their bursts left behind would add up to megabytes.
            *queue = VecDeque::new();
        }
    }

    fn set_head(&self, entry: OutboxEntry) {
        if let Some(head) = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .front_mut()
        {
            head.1 = entry;
        }
    }
}

/// An op waiting for a target message that has not been seen yet.
struct Parked {
    key: OutboxKey,
    entry: OutboxEntry,
    since: Instant,
}

/// What became of one attempt at an op.
enum Outcome {
    /// Finished: delivered, skipped or dead-lettered.
    Done,
    /// Try again at this instant.
    RetryAt(Instant),
    /// Parked: its target has not been seen yet.
    Parked,
}

/// Runs a lane until `stop` is cancelled.
pub async fn run(shared: Arc<Shared>, lane: Arc<Lane>, stop: CancellationToken) {
    let (_, bridge_id, _) = &lane.key;
    let Some(entry) = shared.bridges.get(bridge_id) else {
        tracing::error!(bridge = %bridge_id, "Lane for an unconfigured bridge; its ops stay in the outbox.");
        return;
    };
    let translator = Translator {
        db: shared.db.clone(),
        bridge: entry.bridge.clone(),
        capabilities: entry.capabilities.clone(),
        portals: shared.portals.clone(),
        reaction_fallback: shared.config().reaction_fallback,
    };
    let mut parked: Vec<Parked> = Vec::new();
    loop {
        // The futures of an attempt are large; boxed, they take memory only
        // while a lane is busy, not in every idle lane's task.
        if !parked.is_empty() {
            Box::pin(retry_parked(&shared, &translator, &lane, &mut parked)).await;
        }
        let Some((key, entry)) = lane.head() else {
            let recheck = if parked.is_empty() {
                Duration::from_secs(3600)
            } else {
                PARK_RECHECK
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = lane.notify.notified() => {}
                _ = tokio::time::sleep(recheck) => {}
            }
            continue;
        };
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            outcome = Box::pin(attempt(&shared, &translator, &lane, &key, entry.clone(), false)) => outcome,
        };
        match outcome {
            Outcome::Done => {
                lane.pop();
                shared.finished();
            }
            Outcome::Parked => {
                lane.pop();
                parked.push(Parked {
                    key,
                    entry,
                    since: Instant::now(),
                });
            }
            Outcome::RetryAt(at) => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
        }
    }
}

/// Re-checks parked ops; delivers those whose target is now known, and those
/// that waited too long (degraded or skipped by the translator).
async fn retry_parked(
    shared: &Arc<Shared>,
    translator: &Translator,
    lane: &Lane,
    parked: &mut Vec<Parked>,
) {
    let wait = shared.config().dependency_wait;
    let mut still = Vec::new();
    for p in parked.drain(..) {
        let waited_out = p.since.elapsed() >= wait;
        let mut entry = p.entry.clone();
        loop {
            let pending = |g: GroupId| lane.has_pending_send(g);
            match prepare_and_deliver(shared, translator, &p.key, &mut entry, waited_out, &pending)
                .await
            {
                Outcome::Done => {
                    shared.finished();
                    break;
                }
                Outcome::Parked => {
                    still.push(Parked { entry, ..p });
                    break;
                }
                Outcome::RetryAt(at) => tokio::time::sleep_until(at).await,
            }
        }
    }
    *parked = still;
}

async fn attempt(
    shared: &Arc<Shared>,
    translator: &Translator,
    lane: &Lane,
    key: &OutboxKey,
    mut entry: OutboxEntry,
    waited_out: bool,
) -> Outcome {
    let before = entry.attempts;
    // The head is the oldest op of the lane: nothing it depends on is queued behind it.
    let outcome =
        prepare_and_deliver(shared, translator, key, &mut entry, waited_out, &|_| false).await;
    if entry.attempts != before {
        lane.set_head(entry);
    }
    outcome
}

/// Prepares and delivers one op, handling every failure by the retry policy.
/// `entry.attempts` is updated (and persisted) on counted failures.
async fn prepare_and_deliver(
    shared: &Arc<Shared>,
    translator: &Translator,
    key: &OutboxKey,
    entry: &mut OutboxEntry,
    waited_out: bool,
    pending: &(dyn Fn(GroupId) -> bool + Sync),
) -> Outcome {
    let bridge = &key.bridge;
    if let PendingAction::StartCall {
        call,
        title,
        requester,
    } = &entry.action
    {
        let started = super::meetings::start(
            shared,
            translator.bridge.as_ref(),
            key,
            entry.origin.as_ref(),
            call,
            title,
            requester,
        )
        .await;
        return match started {
            Ok(ops) => {
                if !ops.is_empty() {
                    shared.dispatch(ops);
                }
                finish(shared, key, None)
            }
            Err(super::meetings::StartError::Store(e)) => {
                tracing::error!(bridge = %bridge, error = %e, "Store failed while starting a meeting; will retry.");
                Outcome::RetryAt(Instant::now() + Duration::from_secs(1))
            }
            Err(super::meetings::StartError::Bridge(e)) => failed(shared, key, entry, e),
        };
    }
    let command = match &entry.action {
        PendingAction::Command { text, message } => Some(
            super::commands::run(shared, key, entry.sender.as_ref(), text, message.as_ref()).await,
        ),
        PendingAction::DirectChat { puppet } => {
            Some(super::commands::direct_chat(shared, key, entry.sender.as_ref(), puppet).await)
        }
        PendingAction::Held { event } => Some(
            super::intake::release(shared, event)
                .await
                .map_err(super::commands::Failed::Store),
        ),
        _ => None,
    };
    if let Some(done) = command {
        return match done {
            Ok(()) => finish(shared, key, None),
            Err(super::commands::Failed::Store(e)) => {
                tracing::error!(bridge = %bridge, error = %e, "Store failed while carrying out a command; will retry.");
                Outcome::RetryAt(Instant::now() + Duration::from_secs(1))
            }
            Err(super::commands::Failed::Bridge(e)) => failed(shared, key, entry, e),
        };
    }
    let prepared = match translator.prepare(key, entry, waited_out, pending).await {
        Ok(p) => p,
        Err(PrepareError::Store(e)) => {
            tracing::error!(bridge = %bridge, error = %e, "Store failed while preparing a delivery; will retry.");
            return Outcome::RetryAt(Instant::now() + Duration::from_secs(1));
        }
        Err(PrepareError::Bridge(e)) => return failed(shared, key, entry, e),
    };
    let (op, record) = match prepared {
        Prepared::Park => return Outcome::Parked,
        // Handled above, before preparing.
        Prepared::Meeting => return finish(shared, key, None),
        Prepared::Skip(why) => {
            tracing::debug!(bridge = %bridge, op = %op_id(key), reason = why, "Nothing to deliver.");
            return finish(shared, key, None);
        }
        Prepared::Deliver { op, record } => (op, record),
    };
    // A rate-limited bridge is paused for every lane.
    if let Some(entry) = shared.bridges.get(bridge) {
        let until = *entry.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = until
            && until > Instant::now()
        {
            return Outcome::RetryAt(until);
        }
    }
    match translator.bridge.deliver(&op, shared.as_ref()).await {
        Ok(delivered) => {
            let latency = Timestamp::now().since(Timestamp(entry.enqueued_ms));
            shared
                .metrics
                .delivered(bridge.as_str(), op.kind.label(), latency);
            let created = record
                .filter(|_| !delivered.ids.is_empty())
                .map(|g| (g, delivered.ids));
            finish(shared, key, created)
        }
        Err(BridgeError::NotFound { .. }) if op.kind.label() == "delete" => {
            // Already gone: that is what we wanted.
            finish(shared, key, None)
        }
        Err(e) => failed(shared, key, entry, e),
    }
}

/// Removes a finished op from the outbox, recording what it created.
fn finish(
    shared: &Arc<Shared>,
    key: &OutboxKey,
    created: Option<(u64, Vec<switchboard_model::MessageId>)>,
) -> Outcome {
    let result = match &created {
        Some((group, ids)) => shared.db.complete(key, Some((*group, ids))),
        None => shared.db.complete(key, None),
    };
    match result {
        Ok(()) => Outcome::Done,
        Err(e) => {
            tracing::error!(bridge = %key.bridge, error = %e, "Store failed while recording a delivery; will retry it.");
            Outcome::RetryAt(Instant::now() + Duration::from_secs(1))
        }
    }
}

/// Applies the retry policy to a failed delivery.
fn failed(
    shared: &Arc<Shared>,
    key: &OutboxKey,
    entry: &mut OutboxEntry,
    error: BridgeError,
) -> Outcome {
    let config = shared.config();
    let bridge = &key.bridge;
    let decision = policy::decide(&config, &error, entry.attempts + 1, policy::jitter());
    match decision {
        Decision::PauseBridge(wait) => {
            shared.metrics.retried(bridge.as_str(), error.label());
            let until = Instant::now() + wait;
            if let Some(b) = shared.bridges.get(bridge) {
                let mut paused = b.paused_until.lock().unwrap_or_else(|p| p.into_inner());
                if paused.is_none_or(|p| p < until) {
                    *paused = Some(until);
                }
            }
            tracing::debug!(bridge = %bridge, retry_after_ms = wait.as_millis(), "Rate limited; pausing deliveries to this bridge.");
            Outcome::RetryAt(until)
        }
        Decision::RetryAfter(wait) => {
            shared.metrics.retried(bridge.as_str(), error.label());
            entry.attempts += 1;
            // A timeout or a dropped connection may have been applied anyway.
            entry.maybe_delivered = true;
            if let Err(e) = shared.db.put_outbox(key, entry) {
                tracing::error!(bridge = %bridge, error = %e, "Could not record a failed attempt.");
            }
            tracing::warn!(bridge = %bridge, portal = %key.portal, op = %op_id(key), attempt = entry.attempts, error = %error, retry_in_ms = wait.as_millis(), "Delivery failed, will retry.");
            Outcome::RetryAt(Instant::now() + wait)
        }
        Decision::DeadLetter => {
            dead_letter(shared, key, entry, &error);
            match shared.db.drop_outbox(key) {
                Ok(()) => Outcome::Done,
                Err(e) => {
                    tracing::error!(bridge = %bridge, error = %e, "Could not remove a dead letter from the outbox.");
                    Outcome::RetryAt(Instant::now() + Duration::from_secs(1))
                }
            }
        }
    }
}

/// Reports a dead letter: ERROR log, metric, and a notice in the origin channel.
fn dead_letter(shared: &Arc<Shared>, key: &OutboxKey, entry: &OutboxEntry, error: &BridgeError) {
    let bridge = &key.bridge;
    shared.metrics.dead_lettered(bridge.as_str(), error.label());
    tracing::error!(
        bridge = %bridge,
        portal = %key.portal,
        op = %op_id(key),
        kind = entry.action.label(),
        attempts = entry.attempts + 1,
        error = %error,
        "Delivery failed for good; dead-lettered."
    );
    // A portal room's name is not worth a notice in the origin channel; the
    // ERROR above says it.
    let is_info = matches!(
        entry.action,
        crate::store::records::PendingAction::ChannelInfo { .. }
    );
    if entry.is_notice || is_info || !shared.config().dead_letter_notices {
        return;
    }
    let Some(origin) = &entry.origin else { return };
    let what = match entry.action.label() {
        "send" => "message",
        "start_call" => "meeting request",
        other => other,
    };
    let notice = OutboxEntry {
        origin: None,
        sender: None,
        action: crate::store::records::PendingAction::Notice {
            text: format!("⚠️ A {what} was not delivered to {bridge}: {error}"),
        },
        attempts: 0,
        enqueued_ms: Timestamp::now().as_millis(),
        is_notice: true,
        maybe_delivered: false,
    };
    if let Err(e) = shared.enqueue(
        key.portal.clone(),
        origin.bridge.clone(),
        origin.channel.clone(),
        notice,
    ) {
        tracing::error!(bridge = %origin.bridge, error = %e, "Could not queue the dead-letter notice.");
    }
}
