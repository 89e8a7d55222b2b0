//! The bridge's inbound life: a first reconciliation (establishing or
//! resuming every conversation's position) before `Connected`, then three
//! things at once until shutdown:
//!
//! - the notification worker, draining what the endpoint queued (reading
//!   notified messages a few at a time ahead of the gate; a channel's delta
//!   rounds in a task of their own, one at a time per channel);
//! - reconciliation, every `reconcile_interval` while every watched
//!   conversation has a live subscription, else every `poll_interval`;
//! - subscription upkeep (create, renew, recreate, drop), about every
//!   minute, when notifications are configured.

use super::TeamsBridge;
use super::inbound::{Counters, NotifiedRead};
use super::notifications::Work;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_model::{BridgeContext, BridgeError, BridgeState, ChannelId, RetryKind};

/// The longest pause between two subscription upkeeps.
const UPKEEP_MAX: Duration = Duration::from_secs(60);

/// How many notified messages the worker reads ahead of the gate.
const READ_AHEAD: usize = 16;

/// A queued notification in the worker's hands.
#[derive(Debug)]
enum Ahead {
    /// Handled in its turn.
    Work(Work),
    /// A notified message being read already.
    Read {
        read: NotifiedRead,
        deleted: bool,
        message: tokio::task::JoinHandle<Result<serde_json::Value, BridgeError>>,
    },
}

/// The delta rounds notifications ask for: one task per channel at a time,
/// so channels do not wait for each other's rounds (a round waits for its
/// events to be stored before it moves the delta link).
#[derive(Default)]
struct ChannelRounds {
    /// Channels with a round running, and whether a notification asked for
    /// another one meanwhile.
    running: Arc<Mutex<HashMap<ChannelId, bool>>>,
    tasks: tokio::task::JoinSet<()>,
}

impl TeamsBridge {
    /// Has `channel`'s delta round run for a notification received at
    /// `received`: now in a task of its own, or once more after the one
    /// running (which may have begun before the notification came).
    fn round_for(
        &self,
        ctx: &BridgeContext,
        rounds: &mut ChannelRounds,
        channel: ChannelId,
        received: Instant,
    ) {
        while rounds.tasks.try_join_next().is_some() {}
        if self.inbound.covers(&channel, received) {
            Counters::bump(&self.inbound.counters.covered);
            return;
        }
        {
            let mut running = rounds.running.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(again) = running.get_mut(&channel) {
                *again = true;
                return;
            }
            running.insert(channel.clone(), false);
        }
        let Some(bridge) = self.this.upgrade() else {
            return;
        };
        let running = rounds.running.clone();
        let ctx = ctx.clone();
        rounds.tasks.spawn(async move {
            loop {
                let now = Instant::now();
                match bridge.notified_round(&ctx, &channel, now).await {
                    Ok(_) => {}
                    Err(e) => {
                        Counters::bump(&bridge.inbound.counters.fetch_failures);
                        tracing::warn!(bridge = %bridge.id, %channel, error = %e, "A delta round for notified Teams messages failed; reconciliation will read them.");
                    }
                }
                let mut running = running.lock().unwrap_or_else(|p| p.into_inner());
                match running.get_mut(&channel) {
                    Some(again) if *again && !ctx.shutdown.is_cancelled() => *again = false,
                    _ => {
                        running.remove(&channel);
                        return;
                    }
                }
            }
        });
    }

    fn upkeep_every(&self) -> Duration {
        self.notifications
            .as_ref()
            .map_or(UPKEEP_MAX, |n| (n.renew_before / 4).min(UPKEEP_MAX))
            .max(Duration::from_millis(50))
    }

    fn reconcile_every(&self) -> Duration {
        if self.notifications.is_some() && self.subscriptions.healthy() {
            self.reconcile_interval
        } else {
            self.poll_interval
        }
    }

    /// Reconciles one conversation now (after a lifecycle event or a
    /// recreated subscription).
    async fn resync(&self, ctx: &BridgeContext, channel: &ChannelId) {
        Counters::bump(&self.inbound.counters.resyncs);
        if super::direct::direct_service(channel).is_some() {
            // The subscription to the service account's chats.
            if let Err(e) = self.reconcile_direct(ctx).await {
                tracing::warn!(bridge = %self.id, error = %e, "Reconciling the service account's chats after a lifecycle event failed; the next round retries.");
            }
            return;
        }
        let result = match self.app.token().await {
            Ok(app) => self.reconcile(ctx, channel, &app).await.map(|_| ()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            tracing::warn!(bridge = %self.id, %channel, error = %e, "Reconciling after a lifecycle event failed; the next round retries.");
        }
    }

    async fn handle(&self, ctx: &BridgeContext, work: Work) {
        match work {
            Work::Change {
                resource,
                deleted,
                received,
            } => {
                if let Err(e) = self.fetch_notified(ctx, &resource, deleted, received).await {
                    Counters::bump(&self.inbound.counters.fetch_failures);
                    tracing::warn!(bridge = %self.id, error = %e, "A notified Teams message could not be read; reconciliation will.");
                }
            }
            Work::Rich {
                resource,
                content,
                received,
            } => {
                let decrypted = self
                    .notifications
                    .as_ref()
                    .and_then(|n| n.encryption.as_ref())
                    .map(|key| crate::graph::crypto::decrypt(&content, key));
                let result = match decrypted {
                    Some(Ok(message)) => self.process_notified(ctx, &resource, &message).await,
                    other => {
                        if let Some(Err(e)) = other {
                            tracing::warn!(bridge = %self.id, error = %e, "Could not decrypt a Teams notification; reading the message instead.");
                        }
                        self.fetch_notified(ctx, &resource, false, received).await
                    }
                };
                if let Err(e) = result {
                    Counters::bump(&self.inbound.counters.fetch_failures);
                    tracing::warn!(bridge = %self.id, error = %e, "A notified Teams message could not be processed; reconciliation will.");
                }
            }
            Work::Lifecycle {
                subscription,
                event,
            } => match self.on_lifecycle(ctx, &subscription, &event).await {
                Ok(Some(channel)) => self.resync(ctx, &channel).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(bridge = %self.id, error = %e, "Handling a Teams lifecycle notification failed; upkeep retries.");
                }
            },
        }
    }

    /// Drains the notification queue in order. The reads of notified
    /// messages (one GET each) run ahead of the gate, up to [`READ_AHEAD`]
    /// at once, so a burst is not one Graph round trip per message in
    /// series; what they return passes the gate in the order the
    /// notifications came, as before.
    async fn worker(&self, ctx: &BridgeContext) {
        let mut rx = self.queue_rx.lock().await;
        let mut ahead: VecDeque<Ahead> = VecDeque::new();
        let mut rounds = ChannelRounds::default();
        loop {
            // Take what is queued (waiting only when nothing is in hand).
            while ahead.len() < READ_AHEAD {
                let work = if ahead.is_empty() {
                    match rx.recv().await {
                        Some(work) => work,
                        None => return,
                    }
                } else {
                    match rx.try_recv() {
                        Ok(work) => work,
                        Err(_) => break,
                    }
                };
                ahead.push_back(self.read_ahead(ctx, work));
            }
            let Some(next) = ahead.pop_front() else {
                continue;
            };
            match next {
                Ahead::Work(Work::Change {
                    resource,
                    deleted,
                    received,
                }) => match self.delta_channel(ctx, &resource, deleted) {
                    Some(channel) => self.round_for(ctx, &mut rounds, channel, received),
                    None => {
                        let work = Work::Change {
                            resource,
                            deleted,
                            received,
                        };
                        self.handle(ctx, work).await;
                    }
                },
                Ahead::Work(work) => self.handle(ctx, work).await,
                Ahead::Read {
                    read,
                    deleted,
                    message,
                } => {
                    let message = message.await.unwrap_or_else(|e| {
                        Err(BridgeError::transient(format!(
                            "reading a notified message: {e}"
                        )))
                    });
                    if let Err(e) = self.apply_notified(ctx, &read, deleted, message).await {
                        Counters::bump(&self.inbound.counters.fetch_failures);
                        tracing::warn!(bridge = %self.id, error = %e, "A notified Teams message could not be read; reconciliation will.");
                    }
                }
            }
        }
    }

    /// Starts reading the message a change notification names; anything
    /// else is handled in its turn as it is.
    fn read_ahead(&self, ctx: &BridgeContext, work: Work) -> Ahead {
        let Work::Change {
            resource, deleted, ..
        } = &work
        else {
            return Ahead::Work(work);
        };
        let (Some(bridge), Ok(Some(read))) = (
            self.this.upgrade(),
            self.notified_read(ctx, resource, *deleted),
        ) else {
            return Ahead::Work(work);
        };
        let path = read.path.clone();
        let message = tokio::spawn(async move { bridge.read_notified(&path).await });
        Ahead::Read {
            read,
            deleted: *deleted,
            message,
        }
    }

    async fn upkeep(&self, ctx: &BridgeContext) {
        match self.maintain_subscriptions(ctx).await {
            Ok(recreated) => {
                for channel in recreated {
                    self.resync(ctx, &channel).await;
                }
            }
            Err(e) => {
                tracing::warn!(bridge = %self.id, error = %e, "Teams subscription upkeep failed.");
            }
        }
    }

    /// The inbound side until shutdown.
    pub(super) async fn run_inbound(&self, ctx: BridgeContext) -> Result<(), BridgeError> {
        ctx.set_state(BridgeState::Connecting);
        // Establish (or resume) every conversation's position before
        // reporting Connected, so that nothing posted after Connected is
        // swallowed by a first round.
        match self.reconcile_all(&ctx).await {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                if e.retry_kind() == RetryKind::Reauthenticate {
                    ctx.set_state(BridgeState::BadCredentials(e.to_string()));
                } else {
                    ctx.set_state(BridgeState::TransientDisconnect(e.to_string()));
                }
                return Err(e);
            }
        }
        if self.notifications.is_some() {
            self.upkeep(&ctx).await;
        }
        ctx.set_state(BridgeState::Connected);
        let reconciling = async {
            let mut portals = ctx.channels_watch();
            portals.mark_unchanged();
            let mut portals_open = true;
            loop {
                tokio::select! {
                    () = ctx.shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(self.reconcile_every()) => {}
                    changed = portals.changed(), if portals_open => {
                        // A conversation just became a portal (a direct
                        // portal, a link): what is written in it from now on
                        // is new, so its floor is now, not the next round.
                        if changed.is_err() {
                            portals_open = false;
                        } else {
                            for channel in self.watched(&ctx) {
                                self.floor(&ctx, &channel);
                            }
                        }
                    }
                }
                let round = tokio::select! {
                    () = ctx.shutdown.cancelled() => return Ok(()),
                    r = self.reconcile_all(&ctx) => r,
                };
                match round {
                    Ok(true) => ctx.set_state(BridgeState::Connected),
                    Ok(false) => return Ok(()),
                    Err(e) if e.retry_kind() == RetryKind::Reauthenticate => {
                        ctx.set_state(BridgeState::BadCredentials(e.to_string()));
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::warn!(bridge = %self.id, error = %e, "Teams reconciliation round failed.");
                        ctx.set_state(BridgeState::TransientDisconnect(e.to_string()));
                    }
                }
            }
        };
        let upkeeping = async {
            if self.notifications.is_none() {
                return std::future::pending::<()>().await;
            }
            loop {
                tokio::select! {
                    () = ctx.shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.upkeep_every()) => {}
                }
                self.upkeep(&ctx).await;
            }
        };
        let result = tokio::select! {
            r = reconciling => r,
            () = self.worker(&ctx) => Ok(()),
            () = upkeeping => Ok(()),
            () = ctx.shutdown.cancelled() => Ok(()),
        };
        ctx.set_state(BridgeState::Stopped);
        result
    }
}
