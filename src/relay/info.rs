//! Portal rooms' names, topics and avatars.
//!
//! Bridges that own their portal rooms (their capabilities say
//! `mirrors_channel_info`; Matrix) show the name and topic of the channel
//! they stand for. Changes reach them as ordinary inbound `ChannelInfo`
//! events (fanned out by the intake to those bridges only). The first time a
//! portal member of such a bridge is seen, nothing has changed yet: this
//! module asks the other members for their channel's details
//! ([`Bridge::channel_info`](switchboard_model::Bridge::channel_info)), the
//! platforms that do not mirror first, and queues what the first one answers
//! as a `ChannelInfo` op on the mirroring member's lane.
//!
//! A marker per portal and target channel in the `cursor` tree (under the
//! pseudo-bridge [`MARKER_BRIDGE`]) records that this was done, so a restart
//! asks nothing again; later changes arrive as events, also those made while
//! the daemon was down (the platforms' catch-up includes them). A member that
//! cannot answer yet (network, rate limit, credentials) is asked again a few
//! times with growing waits; one that refuses for good (the channel is not
//! found, a permission is missing) only at the next start.

use super::Shared;
use crate::store::PortalId;
use crate::store::records::{OutboxEntry, PendingAction};
use std::sync::Arc;
use std::time::Duration;
use switchboard_model::{BridgeError, BridgeId, ChannelId, Origin, Timestamp};
use tokio_util::sync::CancellationToken;

/// The cursor-tree namespace of the markers. No configured bridge can have
/// this id: bridge kinds are platforms.
pub const MARKER_BRIDGE: &str = "relay:channel-info";

/// How often a portal whose members could not be asked is tried again.
const ATTEMPTS: u32 = 4;

/// The first wait after a failed attempt; doubled each time.
const FIRST_RETRY: Duration = Duration::from_secs(15);

fn marker(portal: &PortalId, bridge: &BridgeId, channel: &ChannelId) -> ChannelId {
    ChannelId::new(format!("{}\u{1f}{bridge}\u{1f}{channel}", portal.as_str()))
}

/// Starts one background pass over every portal.
pub(crate) fn spawn_sync(shared: &Arc<Shared>) {
    let stop = shared.lanes_stop.clone();
    shared.tracker.spawn(run(shared.clone(), stop));
}

async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut pending: Vec<(PortalId, BridgeId, ChannelId)> = Vec::new();
    for (portal, members) in shared.portals.all() {
        for (bridge, channel) in members.iter() {
            let mirrors = shared
                .bridges
                .get(bridge)
                .is_some_and(|b| b.capabilities.mirrors_channel_info);
            if mirrors {
                pending.push((portal.clone(), bridge.clone(), channel.clone()));
            }
        }
    }
    let mut wait = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        let mut failed = Vec::new();
        for target in pending {
            if stop.is_cancelled() {
                return;
            }
            match sync_one(&shared, &target).await {
                Ok(Outcome::Done) => {}
                Ok(Outcome::Refused(why)) => {
                    tracing::warn!(portal = %target.0, bridge = %target.1, reason = %why, "The portal's channel cannot be described (missing permission?); its room keeps its name until the next start or a rename.");
                }
                Err(why) => {
                    tracing::warn!(portal = %target.0, bridge = %target.1, attempt, reason = %why, "Could not learn the portal's channel name yet.");
                    failed.push(target);
                }
            }
        }
        if failed.is_empty() {
            return;
        }
        pending = failed;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = wait.saturating_mul(2);
    }
    for (portal, bridge, _) in pending {
        tracing::warn!(portal = %portal, bridge = %bridge, "Gave up asking for the portal's channel name until the next start; renames still arrive as they happen.");
    }
}

/// How one portal room's pass ended, when it did not fail for now.
enum Outcome {
    /// Queued, or nobody has anything to say: marked done.
    Done,
    /// A member refused for good (not found, not permitted): not marked, so
    /// the next start asks again, and not retried before that.
    Refused(String),
}

/// Queues the details of one mirroring member's portal, unless done before.
/// An error is worth retrying (network, rate limit, credentials).
async fn sync_one(
    shared: &Arc<Shared>,
    (portal, bridge, channel): &(PortalId, BridgeId, ChannelId),
) -> Result<Outcome, String> {
    let markers = BridgeId::new(MARKER_BRIDGE);
    let key = marker(portal, bridge, channel);
    if shared
        .db
        .cursor(&markers, &key)
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(Outcome::Done);
    }
    let Some((_, members)) = shared.portals.of(bridge, channel) else {
        return Ok(Outcome::Done);
    };
    // Platforms whose channels are their own come first: their names are
    // the ones people chose.
    let mut sources: Vec<&(BridgeId, ChannelId)> = members
        .iter()
        .filter(|(b, c)| !(b == bridge && c == channel))
        .collect();
    sources.sort_by_key(|(b, _)| {
        shared
            .bridges
            .get(b)
            .is_none_or(|e| e.capabilities.mirrors_channel_info)
    });
    let mut last_error = None;
    let mut refused = None;
    for (source_bridge, source_channel) in sources {
        let Some(entry) = shared.bridges.get(source_bridge) else {
            continue;
        };
        match entry.bridge.channel_info(source_channel).await {
            Ok(Some(info)) if !info.is_empty() => {
                let origin = Origin::new(source_bridge.clone(), source_channel.clone());
                let op = OutboxEntry {
                    origin: Some(origin),
                    sender: None,
                    action: PendingAction::ChannelInfo { info },
                    attempts: 0,
                    enqueued_ms: Timestamp::now().as_millis(),
                    is_notice: false,
                    maybe_delivered: false,
                };
                shared
                    .enqueue(portal.clone(), bridge.clone(), channel.clone(), op)
                    .map_err(|e| e.to_string())?;
                tracing::debug!(portal = %portal, bridge = %bridge, from = %source_bridge, "Portal channel name queued.");
                return mark(shared, &markers, &key);
            }
            Ok(_) => {}
            Err(e @ (BridgeError::NotFound { .. } | BridgeError::Permanent { .. })) => {
                refused = Some(format!("{source_bridge}: {e}"));
            }
            Err(e) => last_error = Some(format!("{source_bridge}: {e}")),
        }
    }
    match (last_error, refused) {
        (Some(why), _) => Err(why),
        (None, Some(why)) => Ok(Outcome::Refused(why)),
        // Nobody has anything to say: nothing to ask next time either.
        (None, None) => mark(shared, &markers, &key),
    }
}

fn mark(shared: &Shared, markers: &BridgeId, key: &ChannelId) -> Result<Outcome, String> {
    let now = Timestamp::now().as_millis().to_string();
    shared
        .db
        .put_cursor(markers, key, &now)
        .map_err(|e| e.to_string())?;
    Ok(Outcome::Done)
}
