//! The live portal map: which channels form one conversation. Shared by the
//! intake (routing) and the lanes (channel mentions); replaced on reload and
//! whenever a portal is linked or unlinked at runtime.
//!
//! The map also tells each bridge which of its channels belong to portals
//! ([`Portals::channels_watch`], handed to `BridgeContext::with_channels`), so
//! a bridge starts watching a channel as soon as its portal exists.

use crate::store::{PortalId, PortalRecord, PortalSource};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use switchboard_model::{BridgeId, ChannelId};
use tokio::sync::watch;

/// One portal's members.
pub type Members = Arc<Vec<(BridgeId, ChannelId)>>;

/// A portal's call settings, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSettings {
    /// Whether call invites are relayed and meetings can be asked for.
    pub relay: bool,
    /// Who creates meetings (`PortalRecord::meetings`).
    pub meetings: Option<String>,
}

#[derive(Debug, Default)]
struct Map {
    by_id: HashMap<PortalId, (Members, PortalSource)>,
    calls: HashMap<PortalId, CallSettings>,
    by_channel: HashMap<(BridgeId, ChannelId), PortalId>,
}

impl Map {
    /// The channels of `bridge` in any portal, sorted.
    fn channels_of(&self, bridge: &BridgeId) -> Vec<ChannelId> {
        let set: BTreeSet<&ChannelId> = self
            .by_channel
            .keys()
            .filter(|(b, _)| b == bridge)
            .map(|(_, c)| c)
            .collect();
        set.into_iter().cloned().collect()
    }
}

/// The portal map; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Portals {
    map: Arc<RwLock<Map>>,
    /// Each bridge's portal channels, for the bridge's context.
    watches: Arc<Mutex<HashMap<BridgeId, watch::Sender<Vec<ChannelId>>>>>,
    /// Held while the map and the stored portals change together
    /// (reload, link, unlink), so that such changes never interleave.
    edit: Arc<Mutex<()>>,
}

impl Portals {
    /// A map of these portals.
    pub fn from_records(portals: &[(PortalId, PortalRecord)]) -> Self {
        let p = Portals::default();
        p.replace(portals);
        p
    }

    /// Replaces the whole map, and tells every bridge whose portal channels
    /// changed.
    pub fn replace(&self, portals: &[(PortalId, PortalRecord)]) {
        let mut map = Map::default();
        for (id, record) in portals {
            for m in &record.members {
                map.by_channel.insert(m.clone(), id.clone());
            }
            map.by_id.insert(
                id.clone(),
                (Arc::new(record.members.clone()), record.source),
            );
            map.calls.insert(
                id.clone(),
                CallSettings {
                    relay: record.relay_calls,
                    meetings: record.meetings.clone(),
                },
            );
        }
        let watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let updates: Vec<_> = watches
            .iter()
            .map(|(bridge, tx)| (tx, map.channels_of(bridge)))
            .collect();
        // The map first, so that a bridge told about a channel finds it routed.
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = map;
        for (tx, channels) in updates {
            tx.send_if_modified(|current| {
                if *current == channels {
                    false
                } else {
                    *current = channels;
                    true
                }
            });
        }
    }

    /// The portal a channel belongs to, with its members.
    pub fn of(&self, bridge: &BridgeId, channel: &ChannelId) -> Option<(PortalId, Members)> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let id = map.by_channel.get(&(bridge.clone(), channel.clone()))?;
        Some((id.clone(), map.by_id.get(id)?.0.clone()))
    }

    /// The channel on `target` that shares a portal with `channel` on `bridge`.
    pub fn counterpart(
        &self,
        bridge: &BridgeId,
        channel: &ChannelId,
        target: &BridgeId,
    ) -> Option<ChannelId> {
        let (_, members) = self.of(bridge, channel)?;
        members
            .iter()
            .find(|(b, _)| b == target)
            .map(|(_, c)| c.clone())
    }

    /// A portal's call settings (relayed, no provider chosen, when unknown).
    pub fn calls(&self, id: &PortalId) -> CallSettings {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.calls.get(id).cloned().unwrap_or(CallSettings {
            relay: true,
            meetings: None,
        })
    }

    /// Every portal and its members.
    pub fn all(&self) -> Vec<(PortalId, Members)> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.by_id
            .iter()
            .map(|(k, (members, _))| (k.clone(), members.clone()))
            .collect()
    }

    /// Every portal with its members and where it comes from, by name.
    pub fn all_with_source(&self) -> Vec<(PortalId, Members, PortalSource)> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = map
            .by_id
            .iter()
            .map(|(k, (members, source))| (k.clone(), members.clone(), *source))
            .collect();
        all.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        all
    }

    /// One portal's members and source.
    pub fn get(&self, id: &PortalId) -> Option<(Members, PortalSource)> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.by_id.get(id).cloned()
    }

    /// The channels of `bridge` that belong to portals, now and whenever
    /// they change.
    pub fn channels_watch(&self, bridge: &BridgeId) -> watch::Receiver<Vec<ChannelId>> {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = watches.get(bridge) {
            return tx.subscribe();
        }
        let channels = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .channels_of(bridge);
        let (tx, rx) = watch::channel(channels);
        watches.insert(bridge.clone(), tx);
        rx
    }

    /// Serialises changes to the portals: held across a store write and the
    /// [`Portals::replace`] that follows it.
    pub(crate) fn edit_lock(&self) -> MutexGuard<'_, ()> {
        self.edit.lock().unwrap_or_else(|p| p.into_inner())
    }
}
