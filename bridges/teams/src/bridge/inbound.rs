//! Inbound: delta polling of the watched channels, turning each message's
//! new version into canonical events against the last version seen.

use super::{Conversation, TeamsBridge};
use crate::auth::Secret;
use crate::client::Bearer;
use crate::graph::{self, ParseContext, Parsed};
use serde_json::Value;
use switchboard_model::{
    BridgeContext, BridgeError, ChannelId, Inbound, InboundKind, IntakeError, RetryKind,
};

impl TeamsBridge {
    // ------------------------------------------------------------ inbound

    /// The channels to poll now.
    pub(super) fn watched(&self, ctx: &BridgeContext) -> Vec<ChannelId> {
        let mut all = ctx.channels();
        for c in &self.watch {
            if !all.contains(c) {
                all.push(c.clone());
            }
        }
        all
    }

    /// Reads every page of one delta round from `start`; returns the
    /// messages and the new delta link.
    pub(super) async fn delta_round(
        &self,
        start: &str,
        app: &Secret,
    ) -> Result<(Vec<Value>, String), BridgeError> {
        let mut messages = Vec::new();
        let mut next = start.to_owned();
        loop {
            let page = self.graph.get_json(&next, Bearer::App(app)).await?;
            let bytes = serde_json::to_vec(&page)
                .map_err(|e| BridgeError::transient(format!("delta page: {e}")))?;
            let page = graph::parse_delta_page(&bytes)
                .map_err(|e| BridgeError::transient(format!("delta page: {e:?}")))?;
            messages.extend(page.messages);
            match (page.next_link, page.delta_link) {
                (Some(link), _) => next = link,
                (None, Some(link)) => return Ok((messages, link)),
                (None, None) => {
                    return Err(BridgeError::transient(
                        "delta page without a next or delta link",
                    ));
                }
            }
        }
    }

    /// One polling round for one channel. `Ok(false)` when the relay is
    /// shutting down.
    pub(super) async fn poll_channel(
        &self,
        ctx: &BridgeContext,
        channel: &ChannelId,
        app: &Secret,
    ) -> Result<bool, BridgeError> {
        let conv = Conversation::of(channel)?;
        if !conv.is_channel() {
            // Graph has no per-chat delta; chat inbound is not done yet.
            return Ok(true);
        }
        let stored = ctx.cursors().get(channel);
        let start = stored
            .clone()
            .unwrap_or_else(|| format!("{}/delta", conv.messages()));
        let (messages, link) = match self.delta_round(&start, app).await {
            Err(e) if stored.is_some() && e.retry_kind() == RetryKind::Permanent => {
                // The delta link was refused (expired): start over from now.
                tracing::warn!(bridge = %self.id, %channel, error = %e, "Delta link refused; establishing a new one.");
                let (messages, link) = self
                    .delta_round(&format!("{}/delta", conv.messages()), app)
                    .await?;
                self.baseline(channel, &messages);
                ctx.cursors().put(channel, &link);
                return Ok(true);
            }
            other => other?,
        };
        if stored.is_none() {
            // First run: remember where we are without replaying history.
            self.baseline(channel, &messages);
            ctx.cursors().put(channel, &link);
            return Ok(true);
        }
        let our_users: Vec<String> = self.service_user().into_iter().collect();
        let resource = conv.resource();
        for message in &messages {
            let Some(mid) = message.get("id").and_then(Value::as_str) else {
                continue;
            };
            let key = (channel.clone(), mid.to_owned());
            let previous = self
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .cloned();
            let pctx = ParseContext {
                bridge: &self.id,
                tenant: None,
                our_users: &our_users,
                relay_marker: &self.relay_marker,
            };
            let parsed = match &previous {
                Some(prev) => graph::diff(Some(prev), message, &pctx),
                None => graph::parse_message_in(message, Some(&resource), &pctx),
            };
            let events = match parsed {
                Ok(Parsed::Events(events)) => events,
                Ok(Parsed::Ignored(reason)) => {
                    tracing::debug!(bridge = %self.id, reason = reason.label(), "Ignored a Teams message.");
                    Vec::new()
                }
                Err(e) => {
                    tracing::warn!(bridge = %self.id, reason = e.label(), "Rejected a Teams message.");
                    Vec::new()
                }
            };
            for event in events {
                let event = self.mark_ours(channel, event);
                match ctx.inbound.push(event).await {
                    Ok(()) => {}
                    Err(IntakeError::ShuttingDown) => return Ok(false),
                    Err(IntakeError::NotStored(why)) => {
                        // Keep the old delta link and version: read again next round.
                        return Err(BridgeError::transient(format!("event not stored: {why}")));
                    }
                }
            }
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, message.clone());
        }
        ctx.cursors().put(channel, &link);
        Ok(true)
    }

    pub(super) fn baseline(&self, channel: &ChannelId, messages: &[Value]) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for m in messages {
            if let Some(id) = m.get("id").and_then(Value::as_str) {
                seen.insert((channel.clone(), id.to_owned()), m.clone());
            }
        }
    }

    /// Marks as ours the posts (and their edits and deletes) this process made.
    pub(super) fn mark_ours(&self, channel: &ChannelId, mut event: Inbound) -> Inbound {
        let id = match &event.kind {
            InboundKind::Message { id, .. } => Some(id),
            InboundKind::Edit { target, .. } | InboundKind::Delete { target } => Some(target),
            _ => None,
        };
        if id.is_some_and(|id| self.is_ours(channel, id)) {
            event.sender.is_ours = true;
        }
        event
    }

    /// One round over every watched channel. `Ok(false)` on shutdown.
    pub(super) async fn poll_all(&self, ctx: &BridgeContext) -> Result<bool, BridgeError> {
        let app = self.app.token().await?;
        for channel in self.watched(ctx) {
            match self.poll_channel(ctx, &channel, &app).await {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) if e.retry_kind() == RetryKind::Reauthenticate => {
                    self.app.invalidate().await;
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(bridge = %self.id, %channel, error = %e, "Polling a Teams channel failed.");
                }
            }
        }
        Ok(true)
    }
}
