//! Each bridge's connection state, and whether the daemon is ready.
//!
//! A bridge reports its state through the `watch::Sender` that
//! [`BridgeStatuses::register`] hands out (it goes into the bridge's
//! `BridgeContext`). A small task per bridge watches that channel: it logs
//! each transition, updates the `switchboard_bridge_state` gauge and wakes
//! whoever waits in [`BridgeStatuses::changed`] (the systemd STATUS task).
//! `/ready`, STATUS= and READY=1 all read from here.
//!
//! Readiness is a latch: the daemon becomes ready once every registered
//! bridge has been connected at least once, and stays ready through later
//! transient disconnects (those show in the per-bridge states instead) until
//! [`BridgeStatuses::set_draining`] is called at shutdown. With no bridges at
//! all it is ready at once, so register every bridge before serving `/ready`.

use crate::daemon::metrics::Metrics;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use switchboard_model::{BridgeId, BridgeState};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// The connection state of every bridge, and the readiness latch.
///
/// Cheap to share as `Arc<BridgeStatuses>`.
pub struct BridgeStatuses {
    inner: Arc<Inner>,
}

struct Inner {
    /// In registration (configuration) order.
    bridges: Mutex<Vec<Entry>>,
    draining: AtomicBool,
    /// Bumped on every observed change; [`BridgeStatuses::changed`] waits on it.
    version: watch::Sender<u64>,
    metrics: Option<Arc<Metrics>>,
}

struct Entry {
    id: BridgeId,
    state: watch::Receiver<BridgeState>,
    /// The readiness latch of this bridge: set once it has been connected.
    ever_connected: Arc<AtomicBool>,
}

impl fmt::Debug for BridgeStatuses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeStatuses")
            .field("bridges", &self.snapshot())
            .field("draining", &self.is_draining())
            .finish()
    }
}

impl Default for BridgeStatuses {
    fn default() -> Self {
        BridgeStatuses::new()
    }
}

impl BridgeStatuses {
    /// Tracks states without exporting them as metrics.
    pub fn new() -> Self {
        BridgeStatuses::build(None)
    }

    /// Tracks states and mirrors each into `switchboard_bridge_state`.
    pub fn with_metrics(metrics: Arc<Metrics>) -> Self {
        BridgeStatuses::build(Some(metrics))
    }

    fn build(metrics: Option<Arc<Metrics>>) -> Self {
        BridgeStatuses {
            inner: Arc::new(Inner {
                bridges: Mutex::new(Vec::new()),
                draining: AtomicBool::new(false),
                version: watch::Sender::new(0),
                metrics,
            }),
        }
    }

    /// Starts tracking `id`, in state `Connecting`, and returns the sender the
    /// bridge reports its state on. Registering an id again replaces its entry
    /// (and resets its part of the readiness latch).
    ///
    /// Call this inside a Tokio runtime: the task that logs transitions is
    /// spawned there. Outside one, states are still tracked but transitions
    /// are neither logged nor counted.
    pub fn register(&self, id: BridgeId) -> watch::Sender<BridgeState> {
        let (tx, rx) = watch::channel(BridgeState::Connecting);
        let ever_connected = Arc::new(AtomicBool::new(false));
        if let Some(metrics) = &self.inner.metrics {
            metrics.set_bridge_up(id.as_str(), BridgeState::Connecting.label());
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(watch_bridge(
                    id.clone(),
                    rx.clone(),
                    Arc::clone(&ever_connected),
                    Arc::downgrade(&self.inner),
                ));
            }
            Err(_) => {
                debug!(bridge = %id, "No Tokio runtime, bridge state changes will not be logged.");
            }
        }
        {
            let mut bridges = self
                .inner
                .bridges
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let entry = Entry {
                id,
                state: rx,
                ever_connected,
            };
            match bridges.iter_mut().find(|e| e.id == entry.id) {
                Some(existing) => *existing = entry,
                None => bridges.push(entry),
            }
        }
        self.inner.bump();
        tx
    }

    /// Every bridge and its current state, in registration order.
    pub fn snapshot(&self) -> Vec<(BridgeId, BridgeState)> {
        let bridges = self.inner.bridges();
        bridges
            .iter()
            .map(|e| (e.id.clone(), e.state.borrow().clone()))
            .collect()
    }

    /// Whether every registered bridge is connected right now (true when
    /// there are none).
    pub fn all_connected(&self) -> bool {
        let bridges = self.inner.bridges();
        bridges
            .iter()
            .all(|e| *e.state.borrow() == BridgeState::Connected)
    }

    /// Whether the daemon is ready: every bridge has been connected at least
    /// once, and it is not draining.
    pub fn is_ready(&self) -> bool {
        if self.is_draining() {
            return false;
        }
        let bridges = self.inner.bridges();
        bridges.iter().all(|e| {
            // The watcher task sets the latch too; checking here as well
            // means readiness never lags behind a state already reported.
            if *e.state.borrow() == BridgeState::Connected {
                e.ever_connected.store(true, Ordering::Relaxed);
            }
            e.ever_connected.load(Ordering::Relaxed)
        })
    }

    /// Marks the daemon as draining (shutting down): it is no longer ready.
    pub fn set_draining(&self) {
        if !self.inner.draining.swap(true, Ordering::Relaxed) {
            self.inner.bump();
        }
    }

    /// Whether [`BridgeStatuses::set_draining`] was called.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// One line for systemd's STATUS=, e.g.
    /// `memory:left connected, memory:right transient_disconnect (reset)`.
    ///
    /// Shows only ids, state names and the reasons bridges gave (which must
    /// never contain secrets); newlines are replaced by spaces.
    pub fn summary(&self) -> String {
        let snapshot = self.snapshot();
        let mut line = String::new();
        if self.is_draining() {
            line.push_str("draining; ");
        }
        if snapshot.is_empty() {
            line.push_str("no bridges");
        }
        for (i, (id, state)) in snapshot.iter().enumerate() {
            let separator = if i > 0 { ", " } else { "" };
            let _ = write!(line, "{separator}{id} {state}");
        }
        line.replace(['\n', '\r'], " ")
    }

    /// Resolves at the next change of any bridge's state, of the set of
    /// bridges, or of draining, after this call. Create the future before
    /// reading the state it guards, so a change in between is not missed.
    pub fn changed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut version = self.inner.version.subscribe();
        async move {
            if version.changed().await.is_err() {
                // The statuses were dropped: nothing will ever change again.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Inner {
    /// The entries. A panic while holding the lock cannot leave them half
    /// updated (each change is one assignment), so poisoning is ignored.
    fn bridges(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.bridges.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// Follows one bridge's state until every sender is gone (or the statuses
/// are dropped): logs each transition, sets the latch and the gauge.
async fn watch_bridge(
    id: BridgeId,
    mut state: watch::Receiver<BridgeState>,
    ever_connected: Arc<AtomicBool>,
    inner: Weak<Inner>,
) {
    // `state` was cloned from the receiver made with the channel, so it has
    // seen only the initial value: a state sent before this task first runs
    // still shows as a change from `Connecting`.
    let mut previous = BridgeState::Connecting;
    while state.changed().await.is_ok() {
        let current = state.borrow_and_update().clone();
        if current == previous {
            continue;
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let from = previous.label();
        match &current {
            BridgeState::TransientDisconnect(_) => {
                warn!(bridge = %id, state = %current, from, "Bridge state changed.");
            }
            BridgeState::BadCredentials(_) => {
                error!(bridge = %id, state = %current, from, "Bridge state changed.");
            }
            _ => info!(bridge = %id, state = %current, from, "Bridge state changed."),
        }
        if current == BridgeState::Connected {
            ever_connected.store(true, Ordering::Relaxed);
        }
        if let Some(metrics) = &inner.metrics {
            metrics.set_bridge_up(id.as_str(), current.label());
        }
        inner.bump();
        previous = current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    fn id(s: &str) -> BridgeId {
        BridgeId::new(s)
    }

    /// Waits (bounded) for the next change notification.
    async fn next_change(fut: impl Future<Output = ()>) {
        timeout(Duration::from_secs(5), fut)
            .await
            .expect("no change notification");
    }

    #[tokio::test]
    async fn tracks_states_and_readiness_latch() {
        let statuses = BridgeStatuses::new();
        assert!(statuses.all_connected(), "no bridges: all connected");
        assert!(statuses.is_ready(), "no bridges: ready");

        let left = statuses.register(id("memory:left"));
        let right = statuses.register(id("memory:right"));
        assert!(!statuses.all_connected());
        assert!(!statuses.is_ready());
        assert_eq!(
            statuses.snapshot(),
            [
                (id("memory:left"), BridgeState::Connecting),
                (id("memory:right"), BridgeState::Connecting)
            ]
        );

        left.send_replace(BridgeState::Connected);
        assert!(!statuses.is_ready(), "right never connected");
        right.send_replace(BridgeState::Connected);
        assert!(statuses.all_connected());
        assert!(statuses.is_ready());

        // A transient disconnect after both connected keeps the latch.
        right.send_replace(BridgeState::TransientDisconnect("reset".into()));
        assert!(!statuses.all_connected());
        assert!(statuses.is_ready());
        assert_eq!(
            statuses.summary(),
            "memory:left connected, memory:right transient_disconnect (reset)"
        );

        statuses.set_draining();
        assert!(!statuses.is_ready());
        assert!(
            statuses
                .summary()
                .starts_with("draining; memory:left connected")
        );
    }

    #[tokio::test]
    async fn summary_of_nothing_and_newlines() {
        let statuses = BridgeStatuses::new();
        assert_eq!(statuses.summary(), "no bridges");
        let b = statuses.register(id("memory:b"));
        b.send_replace(BridgeState::BadCredentials("401\nunauthorised".into()));
        assert_eq!(
            statuses.summary(),
            "memory:b bad_credentials (401 unauthorised)"
        );
    }

    #[tokio::test]
    async fn changed_wakes_on_transitions_and_updates_metrics() {
        let metrics = Arc::new(Metrics::new());
        let statuses = BridgeStatuses::with_metrics(Arc::clone(&metrics));
        let tx = statuses.register(id("memory:a"));
        assert!(
            metrics
                .render()
                .contains(r#"{bridge="memory:a",state="connecting"} 1"#)
        );

        let change = statuses.changed();
        tx.send_replace(BridgeState::Connected);
        next_change(change).await;
        let text = metrics.render();
        assert!(
            text.contains(r#"{bridge="memory:a",state="connected"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{bridge="memory:a",state="connecting"} 0"#),
            "{text}"
        );

        let change = statuses.changed();
        statuses.set_draining();
        next_change(change).await;

        // Setting the same state again is not a change.
        let change = statuses.changed();
        tx.send_replace(BridgeState::Connected);
        tokio::task::yield_now().await;
        assert!(timeout(Duration::from_millis(50), change).await.is_err());
    }

    #[tokio::test]
    async fn re_registering_replaces_the_entry() {
        let statuses = BridgeStatuses::new();
        let first = statuses.register(id("memory:a"));
        first.send_replace(BridgeState::Connected);
        assert!(statuses.is_ready());
        let _second = statuses.register(id("memory:a"));
        assert_eq!(
            statuses.snapshot(),
            [(id("memory:a"), BridgeState::Connecting)]
        );
        assert!(!statuses.is_ready());
    }

    #[test]
    fn works_without_a_runtime() {
        let statuses = BridgeStatuses::new();
        let tx = statuses.register(id("memory:a"));
        tx.send_replace(BridgeState::Connected);
        assert!(statuses.all_connected());
        assert!(statuses.is_ready());
    }
}
