//! One-on-one chats with the service account: commands, direct portals and
//! the directory.
//!
//! # Commands
//!
//! A person who writes to the service account in a one-on-one chat
//! (`dm ann`, `portal list`, `help`) is talking to the bridge. When that chat
//! is not one of the bridge's portal channels, each new message becomes one
//! [`InboundKind::Command`] with its plain text (trimmed, an @mention of the
//! service account at the start removed); the relay answers with a notice in
//! the same chat. When the chat *is* a portal channel (a direct portal made by
//! `dm`), its messages are relayed like any other portal's. The service
//! account's own posts (its answers, relayed messages) are never commands.
//!
//! How the connector hears of messages in chats it has no portal for:
//!
//! - **A change-notification subscription on all of the service account's
//!   chats**, `/users/{service account id}/chats/getAllMessages`
//!   (<https://learn.microsoft.com/graph/teams-changenotifications-chatmessage>),
//!   changeType `created`, created with the *application* token like every
//!   other subscription of this connector (application permission
//!   `Chat.Read.All`, which the connector already holds for chat portals). It
//!   goes through the same upkeep as the per-conversation subscriptions
//!   (`subscriptions`: stored id and expiry, renewal, recreation, lifecycle
//!   events, encrypted resource data when configured), under the pseudo
//!   conversation `@direct-chats:{service account id}`. The tenant-wide
//!   `/chats/getAllMessages` would do too but reads every chat of the
//!   organisation; Graph documents no `/me/chats/getAllMessages`
//!   subscription resource, and a delegated subscription would tie the
//!   subscription to the service account's access token.
//! - **Reconciliation**, on the connector's existing cadence: the service
//!   account's chats ordered by their last message
//!   (`GET /me/chats?$orderby=lastMessagePreview/createdDateTime desc&$expand=lastMessagePreview`,
//!   <https://learn.microsoft.com/graph/api/chat-list>, with its delegated
//!   token: listing chats is delegated only), at most [`DIRECT_CHATS_TOP`],
//!   of which the `oneOnOne` ones count (filtered here: `$orderby` and
//!   `$expand` are the options that page documents for this use); the newest
//!   page of each one whose last message changed since the previous round,
//!   and is not older than the floor, is read with the application token.
//!
//! Both paths meet in the one gate (`inbound`), which keeps the last version
//! of each message: a message seen by both yields one command. A command's
//! event id is `"{chat}|{message id}|command"` whatever the version, so a
//! repeat after a restart is dropped by the relay's dedup; later versions of
//! the message (edits, reactions) yield nothing. History is not replayed: the
//! floor (`@direct#since` in the cursor store) is set the first time and then
//! follows each complete reconciliation round (two minutes behind its start),
//! so a command written while the daemon was down still arrives once.
//!
//! A chat named by a notification but not watched is a command chat only if
//! Graph says it is a one-on-one chat of which the service account is a
//! member (`GET /chats/{id}?$expand=members`, remembered).
//!
//! # Direct portals and the directory
//!
//! [`TeamsBridge::open_direct_chat`] is `POST /chats` with `chatType:
//! oneOnOne` and both people as owners, as the service account; Graph returns
//! the chat the two already have, so asking twice gives the same chat.
//! Messages relayed into it carry the author line like in any portal
//! (`outbound`). [`TeamsBridge::search_people`] is `GET /users` with
//! `startswith` on the name, given name, surname, mail and UPN (Graph's
//! default, non-"advanced" filters; `$search` would need `ConsistencyLevel:
//! eventual` and a count), with the application token (`User.Read.All`).

use super::TeamsBridge;
use super::inbound::{Source, now_ms};
use crate::client::Bearer;
use crate::graph;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use switchboard_model::{
    BridgeContext, BridgeError, ChannelId, EventId, Inbound, InboundKind, Inline, Person, RichText,
    UserId,
};

/// The most recently active chats of the service account looked at per
/// reconciliation (Graph's `$top` maximum for chats).
pub(super) const DIRECT_CHATS_TOP: usize = 50;
/// Messages read per direct chat whose last message changed.
const DIRECT_MESSAGES_TOP: usize = 20;
/// How far behind a complete reconciliation round's start the floor follows.
const FLOOR_LAG_MS: u64 = 120_000;
/// The most chats whose kind or last message time is remembered.
const REMEMBERED_CHATS: usize = 10_000;
/// The most pages of `GET /users` read for one search.
const SEARCH_PAGES: usize = 5;
/// The user properties a search matches the start of.
const SEARCHED: &[&str] = &[
    "displayName",
    "givenName",
    "surname",
    "mail",
    "userPrincipalName",
];

/// The pseudo conversation under which the subscription to the service
/// account's chats is kept.
const DIRECT_PREFIX: &str = "@direct-chats:";

/// The cursor key of the floor of direct chats.
fn floor_key() -> ChannelId {
    ChannelId::new("@direct#since")
}

/// The pseudo conversation of the subscription to `service`'s chats.
pub(super) fn direct_key(service: &str) -> ChannelId {
    ChannelId::new(format!("{DIRECT_PREFIX}{service}"))
}

/// The service account a pseudo conversation stands for, if it is one.
pub(super) fn direct_service(key: &ChannelId) -> Option<&str> {
    key.as_str().strip_prefix(DIRECT_PREFIX)
}

/// The subscription resource of the service account's chats.
pub(super) fn direct_resource(service: &str) -> String {
    format!("/users/{service}/chats/getAllMessages")
}

/// What the connector remembers of direct chats.
#[derive(Debug, Default)]
pub(super) struct DirectChats {
    /// Whether a chat is a one-on-one chat of the service account.
    kinds: Mutex<HashMap<ChannelId, bool>>,
    /// The last-message time of each chat when it was last read.
    read_up_to: Mutex<HashMap<ChannelId, u64>>,
}

fn bounded_insert<V>(map: &Mutex<HashMap<ChannelId, V>>, key: ChannelId, value: V) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= REMEMBERED_CHATS && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

impl DirectChats {
    fn kind(&self, chat: &ChannelId) -> Option<bool> {
        self.kinds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(chat)
            .copied()
    }

    fn read_up_to(&self, chat: &ChannelId) -> Option<u64> {
        self.read_up_to
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(chat)
            .copied()
    }
}

/// The text of a command: the plain text of `body` without an @mention of
/// `service` at its start, trimmed. `None` when nothing is left.
pub(super) fn command_text(body: &RichText, service: Option<&str>) -> Option<String> {
    let mut body = body.clone();
    let mut at_start = true;
    body.for_each_inline_mut(&mut |inline| {
        if !at_start {
            return;
        }
        match inline {
            Inline::Text { text } if text.trim().is_empty() => {}
            Inline::Bold { .. } | Inline::Italic { .. } | Inline::Strike { .. } => {}
            Inline::UserMention { user, .. } if service == Some(user.as_str()) => {
                *inline = Inline::text("");
                at_start = false;
            }
            _ => at_start = false,
        }
    });
    let text = body.to_plain().trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved
/// characters).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `$filter` matching users whose name, given name, surname, mail or UPN
/// starts with `query` (single quotes doubled, as OData escapes them).
fn people_filter(query: &str) -> String {
    let literal = query.replace('\'', "''");
    SEARCHED
        .iter()
        .map(|p| format!("startswith({p},'{literal}')"))
        .collect::<Vec<_>>()
        .join(" or ")
}

impl TeamsBridge {
    /// The pseudo conversation of the subscription to the service account's
    /// chats, when a service account is known.
    pub(super) fn direct_subscription(&self) -> Option<ChannelId> {
        self.service_user().map(|s| direct_key(&s))
    }

    /// The floor of direct chats: messages created before it are history.
    pub(super) fn direct_floor(&self, ctx: &BridgeContext) -> u64 {
        if let Some(ms) = ctx.cursors().get(&floor_key()).and_then(|s| s.parse().ok()) {
            return ms;
        }
        let now = now_ms();
        ctx.cursors().put(&floor_key(), &now.to_string());
        now
    }

    /// Whether `channel` is a one-on-one chat of the service account (asked
    /// of Graph once, then remembered).
    pub(super) async fn is_direct_chat(&self, channel: &ChannelId) -> Result<bool, BridgeError> {
        let Some(service) = self.service_user() else {
            return Ok(false);
        };
        let s = channel.as_str();
        if s.is_empty() || s.contains('/') || s.starts_with('@') {
            return Ok(false);
        }
        if let Some(known) = self.direct.kind(channel) {
            return Ok(known);
        }
        let app = self.app.token().await?;
        let path = format!("/chats/{s}?$expand=members");
        let direct = match self.graph.get_json(&path, Bearer::App(&app)).await {
            Ok(chat) => {
                chat.get("chatType").and_then(Value::as_str) == Some("oneOnOne")
                    && chat
                        .get("members")
                        .and_then(Value::as_array)
                        .is_some_and(|members| {
                            members.iter().any(|m| {
                                m.get("userId").and_then(Value::as_str) == Some(service.as_str())
                            })
                        })
            }
            Err(BridgeError::NotFound { .. } | BridgeError::Permanent { .. }) => false,
            Err(e) => return Err(e),
        };
        bounded_insert(&self.direct.kinds, channel.clone(), direct);
        Ok(direct)
    }

    /// Turns the events of a message in a direct chat without a portal into
    /// commands: a new message of someone else becomes one
    /// [`InboundKind::Command`]; everything else (our own posts, edits,
    /// deletions, reactions, system events) yields nothing.
    pub(super) fn commands_of(&self, events: Vec<Inbound>) -> Vec<Inbound> {
        let service = self.service_user();
        events
            .into_iter()
            .filter_map(|e| {
                if e.sender.is_ours {
                    return None;
                }
                let InboundKind::Message { id, message } = &e.kind else {
                    return None;
                };
                let text = command_text(&message.body, service.as_deref())?;
                let event = EventId::new(format!("{}|{}|command", e.origin.channel, id));
                Some(
                    Inbound::new(
                        e.origin.clone(),
                        event,
                        e.sender.clone(),
                        InboundKind::Command {
                            text,
                            message: Some((id.clone(), Box::new(message.clone()))),
                        },
                    )
                    .at(e.at),
                )
            })
            .collect()
    }

    /// One reconciliation of the service account's recently active
    /// one-on-one chats that are not portals. `Ok(false)` on shutdown.
    pub(super) async fn reconcile_direct(&self, ctx: &BridgeContext) -> Result<bool, BridgeError> {
        if self.service_user().is_none() {
            return Ok(true);
        }
        let started = now_ms();
        let floor = self.direct_floor(ctx);
        let (token, me) = self.service_actor().await?;
        let path = format!(
            "/me/chats?$orderby={}&$expand=lastMessagePreview&$top={DIRECT_CHATS_TOP}",
            query_escape("lastMessagePreview/createdDateTime desc"),
        );
        let page = self
            .graph
            .get_json(&path, Bearer::User(&token, &me))
            .await?;
        let chats = page
            .get("value")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let watched = self.watched(ctx);
        let app = self.app.token().await?;
        for chat in &chats {
            let Some(id) = chat.get("id").and_then(Value::as_str) else {
                continue;
            };
            if chat.get("chatType").and_then(Value::as_str) != Some("oneOnOne") {
                continue;
            }
            let channel = ChannelId::new(id);
            if watched.contains(&channel) {
                // A direct portal: reconciled with the portals.
                continue;
            }
            bounded_insert(&self.direct.kinds, channel.clone(), true);
            let Some(last) = chat
                .pointer("/lastMessagePreview/createdDateTime")
                .and_then(Value::as_str)
                .and_then(graph::parse_datetime)
            else {
                continue;
            };
            if last < floor || self.direct.read_up_to(&channel) >= Some(last) {
                continue;
            }
            let path = format!("/chats/{id}/messages?$top={DIRECT_MESSAGES_TOP}");
            let page = self.graph.get_json(&path, Bearer::App(&app)).await?;
            let messages = page
                .get("value")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // Graph lists newest first; the gate takes them oldest first.
            for message in messages.iter().rev() {
                if !self
                    .process_direct(ctx, &channel, message, Source::Reconcile)
                    .await?
                {
                    return Ok(false);
                }
            }
            bounded_insert(&self.direct.read_up_to, channel, last);
        }
        let next_floor = started.saturating_sub(FLOOR_LAG_MS);
        if next_floor > floor {
            ctx.cursors().put(&floor_key(), &next_floor.to_string());
        }
        Ok(true)
    }

    /// Opens (or finds) the one-on-one chat of the service account and
    /// `user`: `POST /chats` (<https://learn.microsoft.com/graph/api/chat-post>),
    /// which returns the chat the two already have.
    pub(super) async fn open_direct_chat(
        &self,
        user: &UserId,
        with: &Person,
    ) -> Result<ChannelId, BridgeError> {
        let (token, me) = self.service_actor().await?;
        let id = user.as_str();
        if id == me {
            return Err(BridgeError::permanent(
                "a direct chat with the Teams service account itself was asked for",
            ));
        }
        if id.is_empty() || id.contains(['/', '\'', '?', '#']) {
            return Err(BridgeError::permanent(format!(
                "not a Teams user id: {id:?}"
            )));
        }
        let member = |user: &str| {
            json!({
                "@odata.type": "#microsoft.graph.aadUserConversationMember",
                "roles": ["owner"],
                "user@odata.bind": format!("{}/users('{user}')", self.graph.base()),
            })
        };
        let body = json!({
            "chatType": "oneOnOne",
            "members": [member(&me), member(id)],
        });
        let chat = self
            .graph
            .post_json("/chats", Bearer::User(&token, &me), &body)
            .await?;
        let Some(chat_id) = chat.get("id").and_then(Value::as_str) else {
            return Err(BridgeError::transient("Graph's new chat has no id"));
        };
        let channel = ChannelId::new(chat_id);
        bounded_insert(&self.direct.kinds, channel.clone(), true);
        tracing::debug!(bridge = %self.id, chat = %channel, with = %with.bridge, "Opened a Teams one-on-one chat for a direct portal.");
        Ok(channel)
    }

    /// People whose name or handle contains `query` (case-insensitive), at
    /// most `limit`, without the service account: `GET /users` with
    /// `startswith` filters (<https://learn.microsoft.com/graph/api/user-list>),
    /// following `@odata.nextLink`.
    pub(super) async fn search_people(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Person>, BridgeError> {
        let query = query.trim();
        if query.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let needle = query.to_lowercase();
        let service = self.service_user();
        let app = self.app.token().await?;
        // Pages of `limit`: the service account may take one place.
        let top = limit.min(999);
        let mut next = Some(format!(
            "/users?$filter={}&$select=id,displayName,userPrincipalName,mail&$top={top}",
            query_escape(&people_filter(query))
        ));
        let mut found = Vec::new();
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let page = self.graph.get_json(&url, Bearer::App(&app)).await?;
            for user in page
                .get("value")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(id) = user.get("id").and_then(Value::as_str) else {
                    continue;
                };
                if service.as_deref() == Some(id) {
                    continue;
                }
                let field = |k: &str| {
                    user.get(k)
                        .and_then(Value::as_str)
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                };
                let matches = ["displayName", "userPrincipalName", "mail"]
                    .iter()
                    .filter_map(|k| field(k))
                    .any(|v| v.to_lowercase().contains(&needle));
                if !matches {
                    continue;
                }
                let name = field("displayName")
                    .or_else(|| field("userPrincipalName"))
                    .unwrap_or(id);
                found.push(Person::new(self.id.clone(), UserId::new(id), name));
                if found.len() >= limit {
                    return Ok(found);
                }
            }
            if pages < SEARCH_PAGES {
                next = page
                    .get("@odata.nextLink")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_model::BridgeId;

    #[test]
    fn command_text_drops_a_leading_mention_of_the_service_account_only() {
        let teams = BridgeId::new("teams:contoso");
        let body = RichText::builder()
            .mention(teams.clone(), UserId::new("svc"), "Switchboard")
            .text("  dm ann ")
            .build();
        assert_eq!(command_text(&body, Some("svc")).as_deref(), Some("dm ann"));
        let other = RichText::builder()
            .text("ping ")
            .mention(teams, UserId::new("svc"), "Switchboard")
            .build();
        assert_eq!(
            command_text(&other, Some("svc")).as_deref(),
            Some("ping @Switchboard"),
            "only a mention at the start is the address"
        );
        assert_eq!(command_text(&RichText::plain("  "), Some("svc")), None);
        assert_eq!(
            command_text(&RichText::plain(" help "), None).as_deref(),
            Some("help")
        );
    }

    #[test]
    fn filters_escape_quotes_and_queries_are_encoded() {
        assert_eq!(
            people_filter("o'b"),
            "startswith(displayName,'o''b') or startswith(givenName,'o''b') or startswith(surname,'o''b') or startswith(mail,'o''b') or startswith(userPrincipalName,'o''b')"
        );
        assert_eq!(query_escape("a b'&=é"), "a%20b%27%26%3D%C3%A9");
    }

    #[test]
    fn direct_keys_name_the_service_account() {
        let key = direct_key("svc-id");
        assert_eq!(direct_service(&key), Some("svc-id"));
        assert_eq!(direct_service(&ChannelId::new("19:x@unq.gbl.spaces")), None);
        assert_eq!(
            direct_resource("svc-id"),
            "/users/svc-id/chats/getAllMessages"
        );
    }
}
