//! The relay: moves what one platform says to every other member of its portal.
//!
//! ```text
//! bridge.run ─▶ InboundSink ─▶ intake (dedup, echo guard, fan-out; one
//!   transaction per batch, flushed, then acknowledged) ─▶ lanes (one ordered
//!   queue per portal and target channel) ─▶ bridge.deliver ─▶ mapping recorded
//! ```
//!
//! - [`intake`] batches inbound events, drops platform retries and our own
//!   echoes, writes the fan-out into the outbox together with the dedup record,
//!   flushes, and only then acknowledges the events to their connectors.
//! - [`lane`] delivers one target channel's ops of one portal strictly in
//!   order, retrying with backoff, pausing a rate-limited bridge, parking an
//!   op whose target message was never seen, dead-lettering with a notice.
//! - [`translate`] turns a stored op into the bridge's [`OutboundOp`]:
//!   ids mapped, mentions rewritten, puppets ensured, capabilities respected.
//! - [`policy`] holds the retry arithmetic; [`portals`] the live portal map.
//!
//! Shutdown is two-staged: [`Relay::stop_intake`] refuses new events (the
//! platforms redeliver them later), [`Relay::drain`] keeps delivering until the
//! outbox is empty or the grace period ends, [`Relay::shutdown`] stops the lanes
//! and flushes the store.

mod intake;
mod lane;
pub mod policy;
pub mod portals;
pub mod translate;

use crate::config::{PortalConfig, RelayConfig};
use crate::daemon::metrics::Metrics;
use crate::store::records::{OutboxEntry, PortalRecord};
use crate::store::space::SpaceGuard;
use crate::store::{Db, OutboxKey, PortalId, StoreError};
use async_trait::async_trait;
use lane::Lane;
use portals::Portals;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use switchboard_model::{
    Attachment, Bridge, BridgeError, BridgeId, Capabilities, ChannelId, InboundSink, MediaSource,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The key of one lane: a portal's ops for one target channel.
pub type LaneKey = (PortalId, BridgeId, ChannelId);

/// A configured bridge with what the relay keeps beside it.
#[derive(Debug)]
pub(crate) struct BridgeEntry {
    pub(crate) bridge: Arc<dyn Bridge>,
    pub(crate) capabilities: Capabilities,
    /// No delivery to this bridge before this instant (rate limited).
    pub(crate) paused_until: Mutex<Option<tokio::time::Instant>>,
}

/// State shared by the intake, the lanes and the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) db: Db,
    pub(crate) bridges: HashMap<BridgeId, BridgeEntry>,
    pub(crate) portals: Portals,
    pub(crate) config: RwLock<RelayConfig>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) space: Option<Arc<SpaceGuard>>,
    lanes: Mutex<HashMap<LaneKey, Arc<Lane>>>,
    tracker: TaskTracker,
    lanes_stop: CancellationToken,
    /// Ops accepted and not yet finished.
    depth: AtomicI64,
    /// Signalled whenever `depth` drops to zero.
    idle: Notify,
}

impl Shared {
    pub(crate) fn config(&self) -> RelayConfig {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Hands accepted ops to their lanes, starting lanes as needed.
    pub(crate) fn dispatch(self: &Arc<Self>, ops: Vec<(OutboxKey, OutboxEntry)>) {
        let n = i64::try_from(ops.len()).unwrap_or(i64::MAX);
        self.depth.fetch_add(n, Ordering::AcqRel);
        self.metrics.outbox_depth_add(n);
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        for (key, entry) in ops {
            let lane_key = (key.portal.clone(), key.bridge.clone(), key.channel.clone());
            let lane = match lanes.get(&lane_key) {
                Some(lane) => lane.clone(),
                None => {
                    let lane = Arc::new(Lane::new(lane_key.clone()));
                    lanes.insert(lane_key, lane.clone());
                    self.tracker.spawn(lane::run(
                        self.clone(),
                        lane.clone(),
                        self.lanes_stop.clone(),
                    ));
                    lane
                }
            };
            lane.push(key, entry);
        }
    }

    /// Records that one op is finished (delivered, skipped or dead-lettered).
    pub(crate) fn finished(&self) {
        self.metrics.outbox_depth_add(-1);
        if self.depth.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Adds a new op for a lane outside the intake (relay notices).
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        portal: PortalId,
        bridge: BridgeId,
        channel: ChannelId,
        entry: OutboxEntry,
    ) -> Result<(), StoreError> {
        let key = OutboxKey {
            portal,
            seq: self.db.next_id()?,
            bridge,
            channel,
        };
        self.db.put_outbox(&key, &entry)?;
        self.dispatch(vec![(key, entry)]);
        Ok(())
    }
}

#[async_trait]
impl MediaSource for Shared {
    async fn fetch(
        &self,
        origin: &BridgeId,
        attachment: &Attachment,
    ) -> Result<Vec<u8>, BridgeError> {
        match self.bridges.get(origin) {
            Some(entry) => entry.bridge.fetch_media(attachment).await,
            None => Err(BridgeError::not_found(format!(
                "bridge {origin} is not configured"
            ))),
        }
    }
}

/// The running relay.
#[derive(Debug, Clone)]
pub struct Relay {
    shared: Arc<Shared>,
    sink: InboundSink,
    intake_stop: CancellationToken,
}

/// Everything the relay is started with.
#[derive(Debug)]
pub struct RelaySetup {
    /// The store.
    pub db: Db,
    /// The bridges, already built.
    pub bridges: Vec<Arc<dyn Bridge>>,
    /// The portals from configuration.
    pub portals: Vec<PortalConfig>,
    /// Delivery policy.
    pub config: RelayConfig,
    /// How long seen event ids are kept.
    pub dedup_retention: Duration,
    /// Where counters go.
    pub metrics: Arc<Metrics>,
    /// Refuses intake while the store's disk is nearly full (none: never).
    pub space: Option<Arc<SpaceGuard>>,
}

impl Relay {
    /// Syncs the portals into the store, reloads the outbox left by the last
    /// run, and starts the intake and the lanes.
    pub fn start(setup: RelaySetup) -> Result<Relay, StoreError> {
        let RelaySetup {
            db,
            bridges,
            portals,
            config,
            dedup_retention,
            metrics,
            space,
        } = setup;
        sync_portals(&db, &portals)?;
        let bridges = bridges
            .into_iter()
            .map(|b| {
                let entry = BridgeEntry {
                    capabilities: b.capabilities(),
                    bridge: b,
                    paused_until: Mutex::new(None),
                };
                (entry.bridge.id().clone(), entry)
            })
            .collect();
        let shared = Arc::new(Shared {
            db,
            bridges,
            portals: Portals::from_config(&portals),
            config: RwLock::new(config),
            metrics,
            space,
            lanes: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            lanes_stop: CancellationToken::new(),
            depth: AtomicI64::new(0),
            idle: Notify::new(),
        });
        // A previous run may have delivered these without recording it.
        let pending: Vec<_> = shared
            .db
            .outbox()?
            .into_iter()
            .map(|(k, mut e)| {
                e.maybe_delivered = true;
                (k, e)
            })
            .collect();
        if !pending.is_empty() {
            tracing::info!(
                ops = pending.len(),
                "Resuming deliveries left in the outbox."
            );
        }
        shared.dispatch(pending);

        let (sink, rx) = InboundSink::channel(4096);
        let intake_stop = CancellationToken::new();
        shared
            .tracker
            .spawn(intake::run(shared.clone(), rx, intake_stop.clone()));
        shared.tracker.spawn(prune_seen(
            shared.clone(),
            dedup_retention,
            shared.lanes_stop.clone(),
        ));
        Ok(Relay {
            shared,
            sink,
            intake_stop,
        })
    }

    /// Where bridges push inbound events.
    pub fn sink(&self) -> InboundSink {
        self.sink.clone()
    }

    /// Ops accepted and not yet finished.
    pub fn outbox_depth(&self) -> u64 {
        u64::try_from(self.shared.depth.load(Ordering::Acquire)).unwrap_or(0)
    }

    /// Applies new portals and delivery settings without a restart.
    pub fn reload(&self, portals: &[PortalConfig], config: RelayConfig) -> Result<(), StoreError> {
        sync_portals(&self.shared.db, portals)?;
        self.shared.portals.replace(portals);
        *self
            .shared
            .config
            .write()
            .unwrap_or_else(|p| p.into_inner()) = config;
        tracing::info!(
            portals = portals.len(),
            "Portals and relay settings reloaded."
        );
        Ok(())
    }

    /// Refuses new inbound events from now on; connectors must not ack them.
    pub fn stop_intake(&self) {
        self.intake_stop.cancel();
    }

    /// Waits until every accepted op is finished, or `grace` has passed.
    /// Returns true when the outbox is empty.
    pub async fn drain(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.shared.idle.notified();
            if self.outbox_depth() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.outbox_depth() == 0;
            }
        }
    }

    /// Stops every lane and the intake, waits for them, and flushes the store.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        self.intake_stop.cancel();
        self.shared.lanes_stop.cancel();
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
        self.shared.db.flush_async().await
    }
}

/// Makes the stored portals match the configuration.
fn sync_portals(db: &Db, portals: &[PortalConfig]) -> Result<(), StoreError> {
    for portal in portals {
        let record = PortalRecord {
            members: portal
                .members
                .iter()
                .map(|m| (m.bridge.clone(), m.channel.clone()))
                .collect(),
            relay_calls: true,
        };
        let id = PortalId::new(&portal.name);
        if db.portal(&id)?.as_ref() != Some(&record) {
            db.put_portal(&id, &record)?;
        }
    }
    for (id, _) in db.portals()? {
        if !portals.iter().any(|p| p.name == id.as_str()) {
            tracing::info!(portal = %id, "Portal removed from the configuration; unlinking it.");
            db.remove_portal(&id)?;
        }
    }
    Ok(())
}

/// Forgets seen event ids older than the retention, hourly.
async fn prune_seen(shared: Arc<Shared>, retention: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = switchboard_model::Timestamp::now().as_millis();
        let cutoff = now.saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
        match shared.db.prune_seen(cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "Old event ids forgotten."),
            Err(e) => tracing::warn!(error = %e, "Pruning old event ids failed."),
        }
    }
}

#[cfg(test)]
mod tests;
