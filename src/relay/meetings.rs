//! Meetings on request: `!call` in Matrix, `/switchboard call` in Slack,
//! `call` addressed to the bot in Teams all arrive as
//! `InboundKind::CallRequest`.
//!
//! The portal's meeting provider is its `meetings` setting: a member
//! bridge, `jitsi`, or (by default) the first member whose bridge creates
//! meetings, else Jitsi.
//!
//! - **A bridge** (a Teams online meeting): the intake queues one
//!   `PendingAction::StartCall` on that member's lane. The lane calls
//!   [`Bridge::create_meeting`] (idempotent per op id) and then, in one
//!   store transaction, records the call's group and queues the invite, a
//!   `PendingAction::Call` in state Started with the join link, for every
//!   member, the asker's channel included. A replay after a crash finds the
//!   group and queues nothing twice.
//! - **Jitsi**: the room (`{relay.jitsi_url}/Switchboard{32 random hex}`) is
//!   made up at once, and the intake queues the invites itself.
//!
//! The asker is the meeting's organiser where their account is linked on the
//! provider's platform (the bridge decides), and is shown as who started it.

use super::Shared;
use super::translate::call_message_id;
use crate::store::records::{CallRecord, OutboxEntry, PendingAction};
use crate::store::{GroupId, IntakeWrite, OutboxKey, PortalId, StoreError};
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use switchboard_model::{
    Bridge, BridgeError, BridgeId, CallEvent, CallId, CallProvider, CallState, ChannelId, Inbound,
    Origin, Person, Timestamp,
};

/// The call id of a request: stable for the event that asked.
fn request_call_id(event: &Inbound) -> CallId {
    CallId::new(format!(
        "request:{}:{}",
        event.origin.bridge,
        event.event.as_str()
    ))
}

/// The title of a meeting nobody named.
fn default_title(portal: &PortalId) -> String {
    format!("Meeting in {}", portal.as_str())
}

/// Plans a request into the intake's write: a `StartCall` on the provider's
/// lane, or (Jitsi) the invites themselves.
pub(super) fn plan_request(
    shared: &Shared,
    write: &mut IntakeWrite,
    portal: &PortalId,
    members: &[(BridgeId, ChannelId)],
    event: &Inbound,
    title: Option<&str>,
) -> Result<(), StoreError> {
    let call = request_call_id(event);
    let title = title
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map_or_else(|| default_title(portal), str::to_owned);
    let requester = event.sender.person.clone();
    let settings = shared.portals.calls(portal);
    let provider = match settings.meetings.as_deref() {
        Some("jitsi") => None,
        Some(id) => members.iter().find(|(b, _)| b.as_str() == id),
        None => members.iter().find(|(b, _)| {
            shared
                .bridges
                .get(b)
                .is_some_and(|e| e.capabilities.creates_meetings)
        }),
    };
    let origin = event.origin.clone();
    match provider {
        Some((bridge, channel)) => {
            let key = OutboxKey {
                portal: portal.clone(),
                seq: shared.db.next_id()?,
                bridge: bridge.clone(),
                channel: channel.clone(),
            };
            write.outbox.push((
                key,
                entry(
                    origin,
                    PendingAction::StartCall {
                        call,
                        title,
                        requester,
                    },
                ),
            ));
            Ok(())
        }
        None => {
            let url = format!("{}/Switchboard{}", shared.config().jitsi_url, room_name());
            let mut started = CallEvent::new(call, CallProvider::Jitsi, CallState::Started);
            started.title = Some(title);
            started.join_url = Some(url);
            started.started_by = Some(requester);
            let invites = invites(shared, portal, members, &origin, &started)?;
            write.messages.push(invites.0);
            write.outbox.extend(invites.1);
            write.calls.push(registered(portal, origin, &started));
            Ok(())
        }
    }
}

/// What the lane does with a `StartCall`: has `bridge` create the meeting,
/// then queues the invites (once). Returns the ops to dispatch.
pub(super) async fn start(
    shared: &Shared,
    bridge: &dyn Bridge,
    key: &OutboxKey,
    origin: Option<&Origin>,
    call: &CallId,
    title: &str,
    requester: &Person,
) -> Result<Vec<(OutboxKey, OutboxEntry)>, StartError> {
    let Some(origin) = origin else {
        return Ok(Vec::new());
    };
    let synthetic = call_message_id(call);
    if shared
        .db
        .group_of(&origin.bridge, &origin.channel, &synthetic)?
        .is_some()
    {
        // An earlier attempt got as far as queueing the invites.
        return Ok(Vec::new());
    }
    let op = super::translate::op_id(key);
    let meeting = bridge
        .create_meeting(op.as_str(), &key.channel, title, Some(requester))
        .await?;
    let (provider, url) = match meeting {
        Some(m) => (m.provider, m.join_url),
        None => {
            // The configured bridge cannot create meetings: Jitsi instead.
            tracing::warn!(bridge = %key.bridge, portal = %key.portal, "This bridge does not create meetings; using Jitsi.");
            (
                CallProvider::Jitsi,
                format!("{}/Switchboard{}", shared.config().jitsi_url, room_name()),
            )
        }
    };
    let mut started = CallEvent::new(call.clone(), provider, CallState::Started);
    started.title = Some(title.to_owned());
    started.join_url = Some(url);
    started.started_by = Some(requester.clone());
    let Some((_, members)) = shared.portals.of(&key.bridge, &key.channel) else {
        return Ok(Vec::new());
    };
    let (mapping, ops) = invites(shared, &key.portal, &members, origin, &started)?;
    shared.db.commit_intake(&[IntakeWrite {
        messages: vec![mapping],
        outbox: ops.clone(),
        calls: vec![registered(&key.portal, origin.clone(), &started)],
        ..IntakeWrite::default()
    }])?;
    Ok(ops)
}

/// Why a meeting could not be started.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The provider failed.
    #[error(transparent)]
    Bridge(#[from] BridgeError),
}

/// The call's group (mapped from the asker's channel, with no copy there
/// yet: the asker gets an invite too) and one Started op per member.
#[allow(clippy::type_complexity)]
fn invites(
    shared: &Shared,
    portal: &PortalId,
    members: &[(BridgeId, ChannelId)],
    origin: &Origin,
    started: &CallEvent,
) -> Result<
    (
        (
            BridgeId,
            ChannelId,
            switchboard_model::MessageId,
            u32,
            GroupId,
        ),
        Vec<(OutboxKey, OutboxEntry)>,
    ),
    StoreError,
> {
    let group = shared.db.next_id()?;
    let mapping = (
        origin.bridge.clone(),
        origin.channel.clone(),
        call_message_id(&started.call),
        0,
        group,
    );
    let seq = shared.db.next_id()?;
    let ops = members
        .iter()
        .filter(|(b, _)| shared.bridges.contains_key(b))
        .map(|(bridge, channel)| {
            let key = OutboxKey {
                portal: portal.clone(),
                seq,
                bridge: bridge.clone(),
                channel: channel.clone(),
            };
            let action = PendingAction::Call {
                event: started.clone(),
            };
            (key, entry(origin.clone(), action))
        })
        .collect();
    Ok((mapping, ops))
}

/// The registry entry of a meeting just started.
fn registered(portal: &PortalId, origin: Origin, started: &CallEvent) -> (CallId, CallRecord) {
    let record = CallRecord::new(
        portal.as_str(),
        origin,
        started,
        Timestamp::now().as_millis(),
    );
    (started.call.clone(), record)
}

fn entry(origin: Origin, action: PendingAction) -> OutboxEntry {
    OutboxEntry {
        origin: Some(origin),
        sender: None,
        action,
        attempts: 0,
        enqueued_ms: Timestamp::now().as_millis(),
        is_notice: false,
        maybe_delivered: false,
    }
}

/// 128 random bits in hex: a Jitsi room nobody guesses.
fn room_name() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
