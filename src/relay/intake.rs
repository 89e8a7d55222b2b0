//! The intake: the one task that accepts inbound events.
//!
//! It takes events in batches (whatever is waiting, up to [`MAX_BATCH`]), and
//! for each: drops platform retries (event id seen before), drops our own
//! echoes (flagged by the connector, written by one of our puppets, or a
//! message id we created ourselves), routes it to its portal, and fans it out
//! into one outbox entry per other member. The whole batch is one
//! transaction, then one flush, and only then is every event acknowledged to
//! its connector, which acknowledges it to the platform. A crash anywhere
//! before the flush loses nothing: the platform redelivers.

use super::Shared;
use super::commands;
use super::meetings;
use super::translate::{call_message_id, reaction_message_id};
use crate::store::records::{CallRecord, OutboxEntry, PendingAction};
use crate::store::{GroupId, IntakeWrite, OutboxKey, PortalId, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use switchboard_model::bridge::InboundEnvelope;
use switchboard_model::{
    BridgeId, CallId, ChannelId, ChannelInfo, EventId, Inbound, InboundKind, IntakeError,
    MessageId, Origin, Timestamp,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The most events committed in one transaction.
pub const MAX_BATCH: usize = 1024;

/// Runs the intake until `stop` is cancelled; then refuses what is left.
pub async fn run(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<InboundEnvelope>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            next = rx.recv() => match next {
                Some(env) => env,
                None => return,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(env) => batch.push(env),
                Err(_) => break,
            }
        }
        accept(&shared, batch).await;
    }
    rx.close();
    while let Ok((_, ack)) = rx.try_recv() {
        let _ = ack.send(Err(IntakeError::ShuttingDown));
    }
}

/// Why an event is not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dropped {
    Duplicate,
    Echo,
    NoPortal,
    NotRelayed,
}

impl Dropped {
    fn label(self) -> &'static str {
        match self {
            Dropped::Duplicate => "duplicate",
            Dropped::Echo => "echo",
            Dropped::NoPortal => "no_portal",
            Dropped::NotRelayed => "not_relayed",
        }
    }
}

/// A batch being assembled: writes plus what later events in the same batch
/// must see before it is committed.
#[derive(Default)]
struct Batch {
    writes: Vec<IntakeWrite>,
    seen: HashSet<(BridgeId, EventId)>,
    groups: HashMap<(BridgeId, ChannelId, MessageId), GroupId>,
    /// Calls changed in this batch, as they will be stored.
    calls: HashMap<CallId, CallRecord>,
}

async fn accept(shared: &Arc<Shared>, envelopes: Vec<InboundEnvelope>) {
    if let Some(Err(why)) = shared.space.as_ref().map(|g| g.check()) {
        for (_, ack) in envelopes {
            let _ = ack.send(Err(IntakeError::NotStored(why.clone())));
        }
        return;
    }
    let mut batch = Batch::default();
    let mut failed: Option<StoreError> = None;
    for (event, _) in &envelopes {
        shared
            .metrics
            .inbound(event.origin.bridge.as_str(), event.kind.label());
        match plan(shared, &mut batch, event) {
            Ok(Ok(())) => {}
            Ok(Err(dropped)) => {
                shared
                    .metrics
                    .dropped(event.origin.bridge.as_str(), dropped.label());
                tracing::debug!(bridge = %event.origin.bridge, event = %event.event, reason = dropped.label(), "Inbound event not relayed.");
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let result = match failed {
        Some(e) => Err(e),
        None => commit(shared, &batch.writes).await,
    };
    match result {
        Ok(()) => {
            for (_, ack) in envelopes {
                let _ = ack.send(Ok(()));
            }
            let ops: Vec<(OutboxKey, OutboxEntry)> =
                batch.writes.into_iter().flat_map(|w| w.outbox).collect();
            if !ops.is_empty() {
                shared.dispatch(ops);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, events = envelopes.len(), "Inbound events could not be stored; refusing them so the platforms redeliver.");
            for (_, ack) in envelopes {
                let _ = ack.send(Err(IntakeError::NotStored(e.to_string())));
            }
        }
    }
}

async fn commit(shared: &Arc<Shared>, writes: &[IntakeWrite]) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    shared.db.commit_intake(writes)?;
    shared.db.flush_async().await
}

/// Whether an op that may make `origin`'s channel a portal is queued for it:
/// earlier in this batch, or still on the channel's commands lane.
fn setup_pending(shared: &Shared, batch: &Batch, write: &IntakeWrite, origin: &Origin) -> bool {
    let in_batch = batch
        .writes
        .iter()
        .chain(std::iter::once(write))
        .flat_map(|w| &w.outbox)
        .any(|(key, entry)| {
            key.bridge == origin.bridge
                && key.channel == origin.channel
                && key.portal.as_str() == commands::COMMANDS
                && matches!(
                    entry.action,
                    PendingAction::Command { .. }
                        | PendingAction::DirectChat { .. }
                        | PendingAction::Held { .. }
                )
        });
    in_batch || shared.portal_setup_pending(&origin.bridge, &origin.channel)
}

/// What the lane does with a [`PendingAction::Held`] event once the ops
/// before it are done: relays it as the intake would now (its arrival was
/// recorded when it was held), or drops it if its channel is still no
/// portal.
pub(super) async fn release(shared: &Arc<Shared>, event: &Inbound) -> Result<(), StoreError> {
    let mut batch = Batch::default();
    let mut write = IntakeWrite::default();
    match plan_relay(shared, &mut batch, event, &mut write, false)? {
        Ok(()) => {}
        Err(dropped) => {
            shared
                .metrics
                .dropped(event.origin.bridge.as_str(), dropped.label());
            tracing::debug!(bridge = %event.origin.bridge, event = %event.event, reason = dropped.label(), "Held event not relayed.");
            return Ok(());
        }
    }
    batch.writes.push(write);
    commit(shared, &batch.writes).await?;
    let ops: Vec<(OutboxKey, OutboxEntry)> =
        batch.writes.into_iter().flat_map(|w| w.outbox).collect();
    if !ops.is_empty() {
        shared.dispatch(ops);
    }
    Ok(())
}

/// Plans one event into the batch. The outer error is a store failure (the
/// whole batch is refused); the inner one says why the event is not relayed.
fn plan(
    shared: &Shared,
    batch: &mut Batch,
    event: &Inbound,
) -> Result<Result<(), Dropped>, StoreError> {
    let bridge = &event.origin.bridge;
    let seen_key = (bridge.clone(), event.event.clone());
    if batch.seen.contains(&seen_key) || shared.db.seen(bridge, &event.event)? {
        return Ok(Err(Dropped::Duplicate));
    }
    batch.seen.insert(seen_key);
    let mut write = IntakeWrite {
        seen: Some((
            bridge.clone(),
            event.event.clone(),
            Timestamp::now().as_millis(),
        )),
        ..IntakeWrite::default()
    };

    let verdict = plan_relay(shared, batch, event, &mut write, true);
    // Even events that are not relayed are remembered, so their redeliveries
    // are recognised as duplicates cheaply.
    batch.writes.push(write);
    verdict
}

fn plan_relay(
    shared: &Shared,
    batch: &mut Batch,
    event: &Inbound,
    write: &mut IntakeWrite,
    may_hold: bool,
) -> Result<Result<(), Dropped>, StoreError> {
    let origin = &event.origin;
    // Echo guard, layer 1: the connector knows it was us.
    if event.sender.is_ours {
        return Ok(Err(Dropped::Echo));
    }
    // Layer 2: written by one of our puppets.
    if shared
        .db
        .person_of_puppet(&origin.bridge, &event.sender.person.user)?
        .is_some()
    {
        return Ok(Err(Dropped::Echo));
    }
    // Commands and direct chats need no portal: the lane of the channel
    // they came from carries them out (relay/commands.rs).
    let lane_action = match &event.kind {
        InboundKind::Command { text, message } => Some(PendingAction::Command {
            text: text.clone(),
            message: message.clone(),
        }),
        InboundKind::DirectChat { puppet } => Some(PendingAction::DirectChat {
            puppet: puppet.clone(),
        }),
        _ => None,
    };
    if let Some(action) = lane_action {
        write.outbox.push(commands::queued(
            shared,
            origin,
            &event.sender.person,
            action,
        )?);
        return Ok(Ok(()));
    }
    let portal = shared.portals.of(&origin.bridge, &origin.channel);
    // A direct conversation being set up (a direct chat or `dm` queued
    // before it, in this batch or on the channel's commands lane): the event
    // waits behind it on that lane, in order, instead of being dropped; and
    // in a direct portal, newer events wait behind those held before them
    // (direct portals only, so other channels pay nothing).
    let hold = may_hold
        && match &portal {
            Some((id, _)) => {
                id.as_str().starts_with(commands::DIRECT_PORTAL_PREFIX)
                    && setup_pending(shared, batch, write, origin)
            }
            None => setup_pending(shared, batch, write, origin),
        };
    if hold {
        write.outbox.push(commands::queued_on(
            shared,
            PortalId::new(commands::COMMANDS),
            origin,
            &event.sender.person,
            PendingAction::Held {
                event: Box::new(event.clone()),
            },
        )?);
        return Ok(Ok(()));
    }
    let Some((portal, members)) = portal else {
        return Ok(Err(Dropped::NoPortal));
    };
    let lookup = |batch: &Batch, id: &MessageId| -> Result<Option<GroupId>, StoreError> {
        if let Some(g) =
            batch
                .groups
                .get(&(origin.bridge.clone(), origin.channel.clone(), id.clone()))
        {
            return Ok(Some(*g));
        }
        shared.db.group_of(&origin.bridge, &origin.channel, id)
    };
    let new_group = |batch: &mut Batch,
                     write: &mut IntakeWrite,
                     id: &MessageId|
     -> Result<GroupId, StoreError> {
        let group = shared.db.next_id()?;
        write.messages.push((
            origin.bridge.clone(),
            origin.channel.clone(),
            id.clone(),
            0,
            group,
        ));
        write.copies.push((
            group,
            origin.bridge.clone(),
            origin.channel.clone(),
            vec![id.clone()],
        ));
        batch.groups.insert(
            (origin.bridge.clone(), origin.channel.clone(), id.clone()),
            group,
        );
        Ok(group)
    };

    let action = match &event.kind {
        InboundKind::Message { id, message } => {
            // Layer 3: a message id we created ourselves when delivering.
            if lookup(batch, id)?.is_some() {
                return Ok(Err(Dropped::Echo));
            }
            let group = new_group(batch, write, id)?;
            PendingAction::Send {
                group,
                message: message.clone(),
            }
        }
        InboundKind::Edit { target, message } => PendingAction::Edit {
            target: target.clone(),
            message: message.clone(),
        },
        InboundKind::Delete { target } => PendingAction::Delete {
            target: target.clone(),
        },
        InboundKind::Reaction { target, key, added } => {
            let synthetic = reaction_message_id(target, &event.sender.person.user, key);
            let group = if *added {
                new_group(batch, write, &synthetic)?
            } else {
                match lookup(batch, &synthetic)? {
                    Some(g) => g,
                    None => return Ok(Err(Dropped::NotRelayed)),
                }
            };
            PendingAction::Reaction {
                target: target.clone(),
                key: key.clone(),
                added: *added,
                group,
            }
        }
        InboundKind::Call(_) | InboundKind::CallRequest { .. }
            if !shared.portals.calls(&portal).relay =>
        {
            if matches!(event.kind, InboundKind::CallRequest { .. }) {
                // The person asked; tell them why nothing happens.
                write.outbox.push(notice_to_origin(
                    shared,
                    &portal,
                    origin,
                    "Calls are turned off for this conversation.",
                )?);
                return Ok(Ok(()));
            }
            return Ok(Err(Dropped::NotRelayed));
        }
        InboundKind::CallRequest { title } => {
            return meetings::plan_request(
                shared,
                write,
                &portal,
                &members,
                event,
                title.as_deref(),
            )
            .map(Ok);
        }
        InboundKind::Call(call) => {
            let synthetic = call_message_id(&call.call);
            if lookup(batch, &synthetic)?.is_none() {
                new_group(batch, write, &synthetic)?;
            }
            let now = Timestamp::now().as_millis();
            let known = match batch.calls.get(&call.call) {
                Some(record) => Some(record.clone()),
                None => shared.db.call(&call.call)?,
            };
            let record = match known {
                Some(before) => {
                    let mut after = before.clone();
                    after.apply(call, now);
                    after.updated_ms = before.updated_ms;
                    if after == before {
                        // The same state again (a catch-up and a redelivery
                        // of one end, say): every invite already shows it.
                        return Ok(Err(Dropped::Duplicate));
                    }
                    after.updated_ms = now;
                    after
                }
                None => CallRecord::new(portal.as_str(), origin.clone(), call, now),
            };
            batch.calls.insert(call.call.clone(), record.clone());
            write.calls.push((call.call.clone(), record));
            PendingAction::Call {
                event: call.clone(),
            }
        }
        InboundKind::ChannelInfo {
            name,
            topic,
            avatar,
        } => PendingAction::ChannelInfo {
            info: ChannelInfo {
                name: name.clone(),
                topic: topic.clone(),
                avatar: avatar.clone(),
            },
        },
        InboundKind::Member { .. } | InboundKind::Typing => {
            return Ok(Err(Dropped::NotRelayed));
        }
        _ => return Ok(Err(Dropped::NotRelayed)),
    };

    let seq = shared.db.next_id()?;
    let enqueued_ms = Timestamp::now().as_millis();
    for (bridge, channel) in members.iter() {
        if *bridge == origin.bridge && *channel == origin.channel {
            continue;
        }
        let Some(target) = shared.bridges.get(bridge) else {
            continue;
        };
        // Names and topics go only where the bridge owns its rooms.
        let is_info = matches!(action, PendingAction::ChannelInfo { .. });
        if is_info && !target.capabilities.mirrors_channel_info {
            continue;
        }
        let key = OutboxKey {
            portal: portal.clone(),
            seq,
            bridge: bridge.clone(),
            channel: channel.clone(),
        };
        let entry = OutboxEntry {
            origin: Some(origin.clone()),
            // A rename is applied by the target's own bot, not a puppet.
            sender: (!is_info).then(|| event.sender.person.clone()),
            action: action.clone(),
            attempts: 0,
            enqueued_ms,
            is_notice: false,
            maybe_delivered: false,
        };
        write.outbox.push((key, entry));
    }
    Ok(Ok(()))
}

/// A notice from the relay to the channel an event came from.
fn notice_to_origin(
    shared: &Shared,
    portal: &PortalId,
    origin: &Origin,
    text: &str,
) -> Result<(OutboxKey, OutboxEntry), StoreError> {
    let key = OutboxKey {
        portal: portal.clone(),
        seq: shared.db.next_id()?,
        bridge: origin.bridge.clone(),
        channel: origin.channel.clone(),
    };
    Ok((key, commands::notice(text)))
}
