//! Change-notification subscriptions: one per watched channel or chat
//! (`/teams/{t}/channels/{c}/messages`, `/chats/{c}/messages`), and one for
//! every chat of the service account (`/users/{id}/chats/getAllMessages`,
//! new messages only: commands, `direct`), created with the application token, renewed `renew_before` their expiry, recreated
//! when Graph removed them, and deleted when the conversation is no longer
//! bridged.
//!
//! - Each subscription id and expiry is kept in the cursor store
//!   (`{channel}#subscription`), so a restart reuses it instead of asking for
//!   a second one (Graph allows one per app per channel or chat).
//! - A creation refused because one already exists (a crash between
//!   Graph's answer and our write) adopts the existing one from
//!   `GET /subscriptions`.
//! - Lifecycle notifications (protocols/teams.md §3): `reauthorizationRequired`
//!   → `POST /subscriptions/{id}/reauthorize` (or a renewal);
//!   `subscriptionRemoved` → recreate, then reconcile the conversation;
//!   `missed` (and anything unknown) → reconcile.

use super::direct;
use super::inbound::{Counters, iso_ms, now_ms};
use super::{Conversation, NotificationSettings, TeamsBridge, lifecycle_path, notification_path};
use crate::auth::Secret;
use crate::client::Bearer;
use crate::graph::{self, LifecycleEvent};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use switchboard_model::{BridgeContext, BridgeError, ChannelId, RetryKind};

/// One live subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sub {
    id: String,
    expires_ms: u64,
    /// Whether it carries encrypted resource data (Graph cannot change
    /// that on a live subscription: a change of setting recreates it).
    rich: bool,
}

impl Sub {
    fn encode(&self) -> String {
        let rich = if self.rich { " rich" } else { "" };
        format!("{} {}{rich}", self.id, self.expires_ms)
    }

    fn decode(s: &str) -> Option<Sub> {
        let mut parts = s.split(' ');
        let id = parts.next().filter(|id| !id.is_empty())?;
        let expires_ms = parts.next()?.parse().ok()?;
        Some(Sub {
            id: id.to_owned(),
            expires_ms,
            rich: parts.next() == Some("rich"),
        })
    }
}

/// The subscriptions of one bridge.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    by_channel: Mutex<HashMap<ChannelId, Sub>>,
    /// Whether every watched conversation has a live subscription.
    healthy: AtomicBool,
}

impl Subscriptions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelId, Sub>> {
        self.by_channel.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether notifications cover every watched conversation.
    pub(super) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

fn sub_key(channel: &ChannelId) -> ChannelId {
    ChannelId::new(format!("{channel}#subscription"))
}

/// The Graph resource and change types of a subscription target: a
/// conversation's messages, or (`direct`) every chat of the service account,
/// whose new messages only matter (commands).
fn subscription_of(channel: &ChannelId) -> Result<(String, &'static str), BridgeError> {
    if let Some(service) = direct::direct_service(channel) {
        return Ok((direct::direct_resource(service), "created"));
    }
    let conv = Conversation::of(channel)?;
    Ok((resource_of(&conv), "created,updated,deleted"))
}

/// The Graph resource of a conversation's messages.
fn resource_of(conv: &Conversation<'_>) -> String {
    match conv {
        Conversation::Channel { team, channel } => {
            format!("/teams/{team}/channels/{channel}/messages")
        }
        Conversation::Chat(chat) => format!("/chats/{chat}/messages"),
    }
}

/// The expiry in a subscription Graph returned.
fn expiry_of(v: &Value) -> Option<u64> {
    v.get("expirationDateTime")
        .and_then(Value::as_str)
        .and_then(graph::parse_datetime)
}

impl TeamsBridge {
    fn settings(&self) -> Option<&NotificationSettings> {
        self.notifications.as_ref()
    }

    fn urls(&self, settings: &NotificationSettings) -> (String, String) {
        let base = settings.public_url.trim_end_matches('/');
        (
            format!("{base}{}", notification_path(&self.id)),
            format!("{base}{}", lifecycle_path(&self.id)),
        )
    }

    fn expiry_wanted(settings: &NotificationSettings) -> u64 {
        now_ms() + u64::try_from(settings.lifetime.as_millis()).unwrap_or(u64::MAX / 4)
    }

    /// The watched conversation subscription `id` belongs to.
    pub(super) fn channel_of_subscription(&self, id: &str) -> Option<ChannelId> {
        self.subscriptions
            .map()
            .iter()
            .find(|(_, s)| s.id == id)
            .map(|(c, _)| c.clone())
    }

    fn remember_sub(&self, ctx: &BridgeContext, channel: &ChannelId, sub: Sub) {
        ctx.cursors().put(&sub_key(channel), &sub.encode());
        self.subscriptions.map().insert(channel.clone(), sub);
    }

    fn forget_sub(&self, ctx: &BridgeContext, channel: &ChannelId) {
        ctx.cursors().put(&sub_key(channel), "");
        self.subscriptions.map().remove(channel);
    }

    /// Creates the subscription of `channel` (or adopts the one Graph
    /// already has for it).
    async fn create_subscription(
        &self,
        ctx: &BridgeContext,
        settings: &NotificationSettings,
        channel: &ChannelId,
        app: &Secret,
    ) -> Result<(), BridgeError> {
        let (resource, change_type) = subscription_of(channel)?;
        let (url, lifecycle) = self.urls(settings);
        let mut body = json!({
            "changeType": change_type,
            "notificationUrl": url,
            "lifecycleNotificationUrl": lifecycle,
            "resource": resource,
            "expirationDateTime": iso_ms(Self::expiry_wanted(settings)),
            "clientState": settings.client_state.expose(),
        });
        if let (Some(key), Some(obj)) = (&settings.encryption, body.as_object_mut())
            && let Value::Object(fields) = key.subscription_fields()
        {
            obj.extend(fields);
        }
        let created = match self
            .graph
            .post_json("/subscriptions", Bearer::App(app), &body)
            .await
        {
            Ok(v) => v,
            Err(e) if e.retry_kind() == RetryKind::Permanent => {
                match self.find_existing(&resource, &url, app).await? {
                    Some(existing) => {
                        tracing::info!(bridge = %self.id, %channel, "Adopted the existing Teams subscription.");
                        existing
                    }
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let (Some(id), Some(expires_ms)) = (
            created.get("id").and_then(Value::as_str),
            expiry_of(&created),
        ) else {
            return Err(BridgeError::transient(
                "Graph's subscription has no id or expiry",
            ));
        };
        tracing::info!(bridge = %self.id, %channel, subscription = id, "Subscribed to Teams change notifications.");
        Counters::bump(&self.inbound.counters.created);
        let rich = created.get("includeResourceData").and_then(Value::as_bool) == Some(true);
        self.remember_sub(
            ctx,
            channel,
            Sub {
                id: id.to_owned(),
                expires_ms,
                rich,
            },
        );
        Ok(())
    }

    /// Our subscription for `resource`, if Graph lists one.
    async fn find_existing(
        &self,
        resource: &str,
        url: &str,
        app: &Secret,
    ) -> Result<Option<Value>, BridgeError> {
        let all = self
            .graph
            .get_all("/subscriptions", Bearer::App(app), 1000)
            .await?;
        let norm = |s: &str| s.trim_start_matches('/').to_ascii_lowercase();
        Ok(all.into_iter().find(|s| {
            s.get("resource")
                .and_then(Value::as_str)
                .is_some_and(|r| norm(r) == norm(resource))
                && s.get("notificationUrl").and_then(Value::as_str) == Some(url)
        }))
    }

    /// Renews subscription `sub` of `channel`; `Ok(false)` if Graph no
    /// longer has it.
    async fn renew_subscription(
        &self,
        ctx: &BridgeContext,
        settings: &NotificationSettings,
        channel: &ChannelId,
        sub: &Sub,
        app: &Secret,
    ) -> Result<bool, BridgeError> {
        let body = json!({ "expirationDateTime": iso_ms(Self::expiry_wanted(settings)) });
        match self
            .graph
            .patch_json(
                &format!("/subscriptions/{}", sub.id),
                Bearer::App(app),
                &body,
            )
            .await
        {
            Ok(v) => {
                let expires_ms = expiry_of(&v).unwrap_or_else(|| Self::expiry_wanted(settings));
                tracing::debug!(bridge = %self.id, %channel, subscription = %sub.id, "Renewed a Teams subscription.");
                Counters::bump(&self.inbound.counters.renewed);
                self.remember_sub(
                    ctx,
                    channel,
                    Sub {
                        id: sub.id.clone(),
                        expires_ms,
                        rich: sub.rich,
                    },
                );
                Ok(true)
            }
            Err(BridgeError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes sure every watched conversation has a live subscription that is
    /// not due for renewal, and drops those no longer watched. Returns the
    /// conversations whose subscription had to be recreated (they need a
    /// reconciliation: notifications may have been lost meanwhile).
    pub(super) async fn maintain_subscriptions(
        &self,
        ctx: &BridgeContext,
    ) -> Result<Vec<ChannelId>, BridgeError> {
        let Some(settings) = self.settings() else {
            return Ok(Vec::new());
        };
        let app = self.app.token().await?;
        // Every watched conversation, and the service account's chats.
        let mut watched = self.watched(ctx);
        if let Some(direct) = self.direct_subscription() {
            watched.push(direct);
        }
        let renew_before = u64::try_from(settings.renew_before.as_millis()).unwrap_or(u64::MAX / 4);
        let mut recreated = Vec::new();
        let mut all_ok = true;
        for channel in &watched {
            let known = self.subscriptions.map().get(channel).cloned().or_else(|| {
                ctx.cursors()
                    .get(&sub_key(channel))
                    .and_then(|s| Sub::decode(&s))
            });
            let rich = settings.encryption.is_some();
            let known = match known {
                Some(sub) if sub.rich != rich => {
                    // includeResourceData cannot be changed on a live
                    // subscription: replace it.
                    tracing::info!(bridge = %self.id, %channel, "Replacing a Teams subscription for the new encryption setting.");
                    match self
                        .graph
                        .delete_json(&format!("/subscriptions/{}", sub.id), Bearer::App(&app))
                        .await
                    {
                        Ok(_) | Err(BridgeError::NotFound { .. }) => {
                            self.forget_sub(ctx, channel);
                            None
                        }
                        Err(e) => {
                            all_ok = false;
                            tracing::warn!(bridge = %self.id, %channel, error = %e, "Could not delete a Teams subscription.");
                            Some(sub)
                        }
                    }
                }
                other => other,
            };
            let result = match known {
                Some(sub) if sub.expires_ms > now_ms() + renew_before => {
                    self.subscriptions.map().insert(channel.clone(), sub);
                    Ok(())
                }
                Some(sub) => match self
                    .renew_subscription(ctx, settings, channel, &sub, &app)
                    .await
                {
                    Ok(true) => Ok(()),
                    Ok(false) => {
                        tracing::warn!(bridge = %self.id, %channel, "A Teams subscription was gone; creating it again.");
                        self.forget_sub(ctx, channel);
                        Counters::bump(&self.inbound.counters.recreated);
                        recreated.push(channel.clone());
                        self.create_subscription(ctx, settings, channel, &app).await
                    }
                    Err(e) => Err(e),
                },
                None => self.create_subscription(ctx, settings, channel, &app).await,
            };
            if let Err(e) = result {
                all_ok = false;
                tracing::warn!(bridge = %self.id, %channel, error = %e, "Could not subscribe to Teams change notifications; reconciliation polls meanwhile.");
                if e.retry_kind() == RetryKind::Reauthenticate {
                    self.app.invalidate().await;
                }
            }
        }
        let stale: Vec<(ChannelId, Sub)> = self
            .subscriptions
            .map()
            .iter()
            .filter(|(c, _)| !watched.contains(c))
            .map(|(c, s)| (c.clone(), s.clone()))
            .collect();
        for (channel, sub) in stale {
            match self
                .graph
                .delete_json(&format!("/subscriptions/{}", sub.id), Bearer::App(&app))
                .await
            {
                Ok(_) | Err(BridgeError::NotFound { .. }) => self.forget_sub(ctx, &channel),
                Err(e) => {
                    tracing::warn!(bridge = %self.id, %channel, error = %e, "Could not delete a Teams subscription.");
                }
            }
        }
        self.subscriptions.healthy.store(all_ok, Ordering::Relaxed);
        Ok(recreated)
    }

    /// Acts on a lifecycle notification. Returns the conversation to
    /// reconcile, if any.
    pub(super) async fn on_lifecycle(
        &self,
        ctx: &BridgeContext,
        subscription: &str,
        event: &LifecycleEvent,
    ) -> Result<Option<ChannelId>, BridgeError> {
        let Some(channel) = self.channel_of_subscription(subscription) else {
            tracing::info!(bridge = %self.id, subscription, "A lifecycle notification for a subscription we do not hold was ignored.");
            return Ok(None);
        };
        let Some(settings) = self.settings() else {
            return Ok(None);
        };
        let app = self.app.token().await?;
        match event {
            LifecycleEvent::ReauthorizationRequired => {
                let path = format!("/subscriptions/{subscription}/reauthorize");
                let sub = Sub {
                    id: subscription.to_owned(),
                    expires_ms: 0,
                    rich: settings.encryption.is_some(),
                };
                match self
                    .graph
                    .post_json(&path, Bearer::App(&app), &json!({}))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(bridge = %self.id, %channel, "Reauthorized a Teams subscription.");
                        // Extend it too, while we are at it.
                        self.renew_subscription(ctx, settings, &channel, &sub, &app)
                            .await?;
                        Ok(None)
                    }
                    Err(e) => {
                        tracing::warn!(bridge = %self.id, %channel, error = %e, "Reauthorizing a Teams subscription failed; renewing it instead.");
                        if self
                            .renew_subscription(ctx, settings, &channel, &sub, &app)
                            .await?
                        {
                            Ok(None)
                        } else {
                            self.forget_sub(ctx, &channel);
                            Counters::bump(&self.inbound.counters.recreated);
                            self.create_subscription(ctx, settings, &channel, &app)
                                .await?;
                            Ok(Some(channel))
                        }
                    }
                }
            }
            LifecycleEvent::SubscriptionRemoved => {
                tracing::warn!(bridge = %self.id, %channel, "Graph removed a Teams subscription; creating it again and reconciling.");
                self.forget_sub(ctx, &channel);
                Counters::bump(&self.inbound.counters.recreated);
                self.create_subscription(ctx, settings, &channel, &app)
                    .await?;
                Ok(Some(channel))
            }
            LifecycleEvent::Missed | LifecycleEvent::Other(_) => Ok(Some(channel)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_subscriptions_round_trip() {
        let mut sub = Sub {
            id: "7f105c7d-2dc5-4530-97cd-4e7ae6534c07".into(),
            expires_ms: 1_790_000_000_000,
            rich: false,
        };
        assert_eq!(Sub::decode(&sub.encode()), Some(sub.clone()));
        sub.rich = true;
        assert_eq!(Sub::decode(&sub.encode()), Some(sub));
        assert_eq!(Sub::decode(""), None);
        assert_eq!(Sub::decode("id notanumber"), None);
    }

    #[test]
    fn resources_name_the_conversation() {
        let ch = ChannelId::new("t1/19:c@thread.tacv2");
        let conv = Conversation::of(&ch).expect("channel");
        assert_eq!(
            resource_of(&conv),
            "/teams/t1/channels/19:c@thread.tacv2/messages"
        );
        let chat = ChannelId::new("19:x@unq.gbl.spaces");
        let conv = Conversation::of(&chat).expect("chat");
        assert_eq!(resource_of(&conv), "/chats/19:x@unq.gbl.spaces/messages");
        assert_eq!(
            subscription_of(&chat).expect("chat"),
            (
                "/chats/19:x@unq.gbl.spaces/messages".to_owned(),
                "created,updated,deleted"
            )
        );
        assert_eq!(
            subscription_of(&direct::direct_key("svc")).expect("direct"),
            ("/users/svc/chats/getAllMessages".to_owned(), "created")
        );
    }
}
