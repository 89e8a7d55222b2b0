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

mod commands;
mod info;
mod intake;
mod lane;
mod meetings;
pub mod policy;
pub mod portals;
pub mod translate;

use crate::config::{PortalConfig, RelayConfig};
use crate::daemon::metrics::Metrics;
use crate::store::login::{DbLinkedAccounts, SecretBox};
use crate::store::records::{OutboxEntry, PortalRecord, PortalSource};
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
use tokio::sync::{Notify, watch};
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
    /// The store key, for `logins` from a chat (none: logins are off).
    pub(crate) secrets: Option<SecretBox>,
    /// Each bridge's linked accounts, reloaded when a sign-in from a chat
    /// stores one (set by the daemon; empty without a store key).
    linked: RwLock<HashMap<BridgeId, Arc<DbLinkedAccounts>>>,
    lanes: Mutex<HashMap<LaneKey, Arc<Lane>>>,
    tracker: TaskTracker,
    lanes_stop: CancellationToken,
    /// Ops accepted and not yet finished.
    depth: AtomicI64,
    /// Signalled whenever `depth` drops to zero.
    idle: Notify,
}

impl Shared {
    /// `bridge`'s linked accounts, when the daemon gave them.
    fn linked_accounts(&self, bridge: &BridgeId) -> Option<Arc<DbLinkedAccounts>> {
        self.linked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(bridge)
            .cloned()
    }

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

    /// Whether the commands lane of (`bridge`, `channel`) still holds an op
    /// that may make the channel a portal (see [`Lane::sets_up_a_portal`]).
    pub(crate) fn portal_setup_pending(&self, bridge: &BridgeId, channel: &ChannelId) -> bool {
        let key = (
            PortalId::new(commands::COMMANDS),
            bridge.clone(),
            channel.clone(),
        );
        self.lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .is_some_and(|lane| lane.sets_up_a_portal())
    }

    /// Records that one op is finished (delivered, skipped or dead-lettered).
    pub(crate) fn finished(&self) {
        self.metrics.outbox_depth_add(-1);
        if self.depth.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// See [`Relay::calls`].
    pub(crate) fn calls(&self) -> Result<Vec<CallInfo>, StoreError> {
        let db = &self.db;
        let mut out = Vec::new();
        for (id, record) in db.calls()? {
            let synthetic = translate::call_message_id(&id);
            let group = db.group_of(&record.origin.bridge, &record.origin.channel, &synthetic)?;
            let invites = match group {
                Some(g) => db
                    .copies(g)?
                    .into_iter()
                    // The origin's "copy" of a call it reported is the
                    // synthetic id itself, not an invite.
                    .filter(|(_, _, ids)| ids.as_slice() != std::slice::from_ref(&synthetic))
                    .collect(),
                None => Vec::new(),
            };
            out.push(CallInfo {
                id,
                record,
                invites,
            });
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.record.started_ms));
        Ok(out)
    }

    /// See [`Relay::link_portal`].
    pub(crate) fn link_portal(
        self: &Arc<Self>,
        name: &str,
        members: &[String],
    ) -> Result<PortalInfo, PortalError> {
        crate::config::check_portal_name(name)
            .map_err(|e| PortalError::Invalid(format!("portal name {e}")))?;
        if members.len() < 2 {
            return Err(PortalError::Invalid(format!(
                "a portal needs at least 2 members, got {}",
                members.len()
            )));
        }
        let known = self.bridges.keys().map(BridgeId::as_str);
        let mut parsed: Vec<(BridgeId, ChannelId)> = Vec::with_capacity(members.len());
        for text in members {
            let member = crate::config::parse_portal_member(text, known.clone())
                .map_err(PortalError::Invalid)?;
            let member = (member.bridge, member.channel);
            if parsed.contains(&member) {
                return Err(PortalError::Invalid(format!("duplicate member {text:?}")));
            }
            parsed.push(member);
        }
        let id = PortalId::new(name);
        let _edit = self.portals.edit_lock();
        if let Some((_, source)) = self.portals.get(&id) {
            return Err(PortalError::Conflict(match source {
                PortalSource::Config => {
                    format!("portal {name:?} already exists (defined in the config file)")
                }
                PortalSource::Linked | PortalSource::Direct => {
                    format!("portal {name:?} already exists")
                }
            }));
        }
        for (bridge, channel) in &parsed {
            if let Some((other, _)) = self.portals.of(bridge, channel) {
                return Err(PortalError::Conflict(format!(
                    "channel \"{bridge}/{channel}\" is already in portal {:?}; a channel can be in only one portal",
                    other.as_str()
                )));
            }
        }
        let record = PortalRecord {
            members: parsed,
            relay_calls: true,
            meetings: None,
            source: PortalSource::Linked,
        };
        self.db.put_portal(&id, &record)?;
        self.db.flush()?;
        let stored = self.db.portals()?;
        self.portals.replace(&stored);
        tracing::info!(portal = %id, members = record.members.len(), "Portal linked.");
        info::spawn_sync(self);
        Ok(PortalInfo {
            name: name.to_owned(),
            members: record.members,
            source: PortalSource::Linked,
        })
    }

    /// See [`Relay::unlink_portal`].
    pub(crate) fn unlink_portal(&self, name: &str) -> Result<(), PortalError> {
        let id = PortalId::new(name);
        let _edit = self.portals.edit_lock();
        match self.portals.get(&id) {
            None => return Err(PortalError::NotFound(format!("no portal {name:?}"))),
            Some((_, PortalSource::Config)) => {
                return Err(PortalError::Conflict(format!(
                    "portal {name:?} is defined in the config file; remove it there"
                )));
            }
            Some((_, PortalSource::Linked | PortalSource::Direct)) => {}
        }
        self.db.remove_portal(&id)?;
        self.db.flush()?;
        let stored = self.db.portals()?;
        self.portals.replace(&stored);
        tracing::info!(portal = %id, "Portal unlinked.");
        Ok(())
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
    /// The store key, for listing logins from a chat (none: logins are off).
    pub secrets: Option<SecretBox>,
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
            secrets,
        } = setup;
        let stored = sync_portals(&db, &portals)?;
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
            portals: Portals::from_records(&stored),
            config: RwLock::new(config),
            metrics,
            space,
            secrets,
            linked: RwLock::new(HashMap::new()),
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
        info::spawn_sync(&shared);
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

    /// Applies new portals and delivery settings without a restart. Portals
    /// linked at runtime stay (unless a config portal now takes their name or
    /// one of their channels).
    pub fn reload(&self, portals: &[PortalConfig], config: RelayConfig) -> Result<(), StoreError> {
        {
            let _edit = self.shared.portals.edit_lock();
            let stored = sync_portals(&self.shared.db, portals)?;
            self.shared.portals.replace(&stored);
        }
        *self
            .shared
            .config
            .write()
            .unwrap_or_else(|p| p.into_inner()) = config;
        // New portal rooms learn their names (portals done before are skipped).
        info::spawn_sync(&self.shared);
        tracing::info!(
            portals = portals.len(),
            "Portals and relay settings reloaded."
        );
        Ok(())
    }

    /// The call registry: every call seen or started, newest first, with the
    /// invite each member got (its message ids there).
    pub fn calls(&self) -> Result<Vec<CallInfo>, StoreError> {
        self.shared.calls()
    }

    /// Every live portal: its name, members and where it comes from, by name.
    pub fn portals(&self) -> Vec<PortalInfo> {
        self.shared
            .portals
            .all_with_source()
            .into_iter()
            .map(|(id, members, source)| PortalInfo {
                name: id.as_str().to_owned(),
                members: members.as_ref().clone(),
                source,
            })
            .collect()
    }

    /// Each bridge's linked accounts (the daemon's), so that an account
    /// linked from a chat takes effect at once.
    pub fn set_linked_accounts(&self, linked: HashMap<BridgeId, Arc<DbLinkedAccounts>>) {
        *self
            .shared
            .linked
            .write()
            .unwrap_or_else(|p| p.into_inner()) = linked;
    }

    /// The channels of `bridge` that belong to portals, updated on reload,
    /// link and unlink; for `BridgeContext::with_channels`.
    pub fn channels_watch(&self, bridge: &BridgeId) -> watch::Receiver<Vec<ChannelId>> {
        self.shared.portals.channels_watch(bridge)
    }

    /// Links a portal at runtime: `members` are spelled as in the config
    /// file (`bridge-id/channel-id`). It is stored, relays at once, survives
    /// restarts and stays until [`Relay::unlink_portal`]. The bridges start
    /// watching the new channels.
    pub fn link_portal(&self, name: &str, members: &[String]) -> Result<PortalInfo, PortalError> {
        self.shared.link_portal(name, members)
    }

    /// Unlinks a portal linked at runtime: it stops relaying at once and is
    /// forgotten (its message mappings stay). Config portals are refused.
    pub fn unlink_portal(&self, name: &str) -> Result<(), PortalError> {
        self.shared.unlink_portal(name)
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

/// A portal as [`Relay::portals`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalInfo {
    /// Its name (its id).
    pub name: String,
    /// Its channels.
    pub members: Vec<(BridgeId, ChannelId)>,
    /// The config file or a runtime link.
    pub source: PortalSource,
}

/// Why a portal cannot be linked or unlinked.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The request itself is wrong (name, members, unknown bridge).
    #[error("{0}")]
    Invalid(String),
    /// No such portal.
    #[error("{0}")]
    NotFound(String),
    /// It clashes with an existing portal, or the portal is the config file's.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One call of the registry, as [`Relay::calls`] lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallInfo {
    /// The call id.
    pub id: switchboard_model::CallId,
    /// What is known of it.
    pub record: crate::store::records::CallRecord,
    /// Each member's invite: bridge, channel, message ids there.
    pub invites: Vec<(BridgeId, ChannelId, Vec<switchboard_model::MessageId>)>,
}

/// Makes the stored portals match the configuration, keeping the portals
/// linked at runtime, and returns every stored portal (what the live map
/// holds). A config portal wins over a linked one with its name or one of its
/// channels; the linked one is then dropped, with a warning.
fn sync_portals(
    db: &Db,
    portals: &[PortalConfig],
) -> Result<Vec<(PortalId, PortalRecord)>, StoreError> {
    let records: Vec<(PortalId, PortalRecord)> = portals
        .iter()
        .map(|portal| {
            let record = PortalRecord {
                members: portal
                    .members
                    .iter()
                    .map(|m| (m.bridge.clone(), m.channel.clone()))
                    .collect(),
                relay_calls: portal.calls.relay,
                meetings: portal.calls.meetings.stored(),
                source: PortalSource::Config,
            };
            (PortalId::new(&portal.name), record)
        })
        .collect();
    // Removals first: a removed portal unindexes its channels, which a
    // config portal may take over below.
    for (id, stored) in db.portals()? {
        match stored.source {
            PortalSource::Config => {
                if !records.iter().any(|(c, _)| c == &id) {
                    tracing::info!(portal = %id, "Portal removed from the configuration; unlinking it.");
                    db.remove_portal(&id)?;
                }
            }
            PortalSource::Linked | PortalSource::Direct => {
                if records.iter().any(|(c, _)| c == &id) {
                    tracing::warn!(portal = %id, "A linked portal has the name of a portal in the config file; the config file's wins and the linked one is dropped.");
                    db.remove_portal(&id)?;
                } else if let Some((config_id, _)) = records
                    .iter()
                    .find(|(_, r)| r.members.iter().any(|m| stored.members.contains(m)))
                {
                    tracing::warn!(portal = %id, config_portal = %config_id, "A linked portal shares a channel with a portal in the config file; the config file's wins and the linked one is dropped.");
                    db.remove_portal(&id)?;
                }
            }
        }
    }
    for (id, record) in &records {
        if db.portal(id)?.as_ref() != Some(record) {
            db.put_portal(id, record)?;
        }
    }
    db.portals()
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
