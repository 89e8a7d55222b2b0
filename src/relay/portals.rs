//! The live portal map: which channels form one conversation. Shared by the
//! intake (routing) and the lanes (channel mentions); replaced on reload.

use crate::config::PortalConfig;
use crate::store::PortalId;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use switchboard_model::{BridgeId, ChannelId};

/// One portal's members.
pub type Members = Arc<Vec<(BridgeId, ChannelId)>>;

#[derive(Debug, Default)]
struct Map {
    by_id: HashMap<PortalId, Members>,
    by_channel: HashMap<(BridgeId, ChannelId), PortalId>,
}

/// The portal map; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Portals(Arc<RwLock<Map>>);

impl Portals {
    /// A map built from configuration.
    pub fn from_config(portals: &[PortalConfig]) -> Self {
        let p = Portals::default();
        p.replace(portals);
        p
    }

    /// Replaces the whole map.
    pub fn replace(&self, portals: &[PortalConfig]) {
        let mut map = Map::default();
        for portal in portals {
            let id = PortalId::new(&portal.name);
            let members: Vec<(BridgeId, ChannelId)> = portal
                .members
                .iter()
                .map(|m| (m.bridge.clone(), m.channel.clone()))
                .collect();
            for m in &members {
                map.by_channel.insert(m.clone(), id.clone());
            }
            map.by_id.insert(id, Arc::new(members));
        }
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    /// The portal a channel belongs to, with its members.
    pub fn of(&self, bridge: &BridgeId, channel: &ChannelId) -> Option<(PortalId, Members)> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        let id = map.by_channel.get(&(bridge.clone(), channel.clone()))?;
        Some((id.clone(), map.by_id.get(id)?.clone()))
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

    /// Every portal and its members.
    pub fn all(&self) -> Vec<(PortalId, Members)> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.by_id
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
