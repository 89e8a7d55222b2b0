//! Direct messages with the bot: the commands people write to it, the IMs
//! direct portals run in, and the workspace directory `dm <name>` searches.
//!
//! - An IM (a `D…` conversation between the bot and one person) that is not
//!   one of the bridge's portal channels is where people talk to the bot: a
//!   message they write there becomes [`InboundKind::Command`] with its plain
//!   text, and the relay answers there. Its event id is
//!   `"im-command:{channel}:{ts}"`, the same however the message arrives
//!   (live, redelivered by Slack, or read back from history), so the relay's
//!   deduplication never runs a command twice; the connector also remembers
//!   the commands it stored last and does not submit those again. Anything
//!   else in such an IM (edits, deletions, reactions, and our own answers,
//!   which carry our bot id and relay marker) has no portal and is dropped.
//!   An IM that *is* a portal channel (a direct portal) relays its messages
//!   like any channel.
//! - The bot's IM with a person comes from `conversations.open`
//!   (<https://docs.slack.dev/reference/methods/conversations.open>, scope
//!   `im:write`), which returns the existing IM when there is one; the
//!   answer is cached per person.
//! - The directory is `users.list`
//!   (<https://docs.slack.dev/reference/methods/users.list>, Tier 2, scope
//!   `users:read`), read page by page with `cursor` until `next_cursor` is
//!   empty and kept for [`crate::config::SlackConfig::directory_ttl`].

use crate::bridge::SlackBridge;
use crate::names_cache::UserInfo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use switchboard_model::{
    BridgeError, ChannelId, CursorStore, EventId, Inbound, InboundKind, Person, UserId,
};
use tokio::sync::watch;
use tokio::time::Instant;

/// The event id prefix of commands written in an IM with the bot.
pub const IM_COMMAND_EVENT_PREFIX: &str = "im-command:";

/// Slack's system user, never offered as someone to talk to.
const SLACKBOT: &str = "USLACKBOT";

/// `users.list` page size (Slack recommends no more than 200).
const DIRECTORY_PAGE: usize = 200;

/// A bound on `users.list` pages read at once (200 000 people), in case a
/// cursor never ends.
const DIRECTORY_MAX_PAGES: usize = 1000;

/// The connector's state for direct messages.
#[derive(Debug, Default)]
pub(crate) struct DirectState {
    /// The bot's IM with each person (user id → `D…`).
    ims: Mutex<HashMap<String, ChannelId>>,
    /// The portal channels while `run` is active.
    portals: Mutex<Option<watch::Receiver<Vec<ChannelId>>>>,
    /// The directory and when it was read.
    directory: tokio::sync::Mutex<Option<(Instant, Arc<Vec<Entry>>)>>,
}

/// One person of the directory, with the names a search matches.
#[derive(Debug, Clone)]
struct Entry {
    person: Person,
    /// `profile.display_name`, `real_name` (also the profile's) and `name`,
    /// lower-cased, without empty ones.
    names: Vec<String>,
}

/// What the connector does once an event is durably stored: move a
/// channel's catch-up cursor, remember a command so that a redelivery is not
/// submitted again.
#[derive(Debug, Default)]
pub(crate) struct AfterStored {
    cursor: Option<(ChannelId, String)>,
    command: Option<EventId>,
}

impl AfterStored {
    /// What storing `event` means for the connector.
    pub(crate) fn of(event: &Inbound) -> Self {
        match &event.kind {
            InboundKind::Message { id, .. } => AfterStored {
                cursor: Some((event.origin.channel.clone(), id.as_str().to_owned())),
                command: None,
            },
            InboundKind::Command { .. } => {
                let ts = event
                    .event
                    .as_str()
                    .strip_prefix(IM_COMMAND_EVENT_PREFIX)
                    .and_then(|rest| rest.rsplit_once(':'))
                    .map(|(_, ts)| ts.to_owned());
                AfterStored {
                    cursor: ts.map(|ts| (event.origin.channel.clone(), ts)),
                    command: Some(event.event.clone()),
                }
            }
            _ => AfterStored::default(),
        }
    }

    /// Moves the channel's catch-up cursor, if the event has a position.
    pub(crate) fn advance(&self, cursors: &dyn CursorStore) {
        if let Some((channel, ts)) = &self.cursor {
            crate::bridge::advance_cursor(cursors, channel, ts);
        }
    }
}

/// True for a Slack IM id (`D…`).
pub(crate) fn is_im(channel: &ChannelId) -> bool {
    channel.as_str().starts_with('D')
}

impl SlackBridge {
    /// Follows the relay's portal channels while `run` is active.
    pub(crate) fn set_portals(&self, portals: Option<watch::Receiver<Vec<ChannelId>>>) {
        *self
            .direct
            .portals
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = portals;
    }

    /// True when `channel` belongs to a portal now.
    fn is_portal(&self, channel: &ChannelId) -> bool {
        self.direct
            .portals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|rx| rx.borrow().contains(channel))
    }

    /// Turns what people write in an IM with the bot that is not a portal
    /// into commands, and drops everything else there (see the module docs).
    /// Events elsewhere pass unchanged.
    pub(crate) fn commands_from_ims(&self, events: Vec<Inbound>) -> Vec<Inbound> {
        let mut out = Vec::with_capacity(events.len());
        for mut event in events {
            let channel = &event.origin.channel;
            if !is_im(channel) || self.is_portal(channel) {
                out.push(event);
                continue;
            }
            let InboundKind::Message { id, message } = &event.kind else {
                continue;
            };
            if event.sender.is_ours || event.sender.person.is_bot {
                continue;
            }
            let text = message.body.to_plain().trim().to_owned();
            let command = EventId::new(format!("{IM_COMMAND_EVENT_PREFIX}{channel}:{id}"));
            if self.command_seen(&command) {
                tracing::debug!(bridge = %self.config.id, event = %command, "Command in a direct message redelivered; already stored.");
                continue;
            }
            let written = Some((id.clone(), Box::new(message.clone())));
            event.event = command;
            event.kind = InboundKind::Command {
                text,
                message: written,
            };
            out.push(event);
        }
        out
    }

    /// Does what storing an event means for the connector (see [`AfterStored`]).
    pub(crate) fn stored(&self, cursors: Option<&dyn CursorStore>, after: AfterStored) {
        if let Some(cursors) = cursors {
            after.advance(cursors);
        }
        if let Some(command) = after.command {
            self.remember_command(command);
        }
    }

    /// The bot's IM with `user`: cached, else `conversations.open`, which
    /// opens it or returns the one that exists.
    pub(crate) async fn direct_channel(&self, user: &str) -> Result<ChannelId, BridgeError> {
        if let Some(known) = self
            .direct
            .ims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
        {
            return Ok(known.clone());
        }
        // conversations.open — https://docs.slack.dev/reference/methods/conversations.open
        let answer = self
            .api
            .call(
                "conversations.open",
                &self.config.bot_token,
                json!({ "users": user }),
                None,
            )
            .await?;
        let id = answer
            .pointer("/channel/id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                BridgeError::transient("conversations.open answered without a channel")
            })?;
        let channel = ChannelId::new(id);
        self.direct
            .ims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(user.to_owned(), channel.clone());
        Ok(channel)
    }

    /// People whose display name, real name or handle contains `query`
    /// (case-insensitive): exact matches first, then prefixes, then the rest,
    /// each in directory order; at most `limit`.
    pub(crate) async fn search_people(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Person>, BridgeError> {
        let query = query.trim().to_lowercase();
        if query.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let directory = self.directory().await?;
        let mut found: Vec<(u8, &Entry)> = directory
            .iter()
            .filter_map(|e| {
                let rank = e
                    .names
                    .iter()
                    .filter(|n| n.contains(&query))
                    .map(|n| {
                        if *n == query {
                            0
                        } else if n.starts_with(&query) {
                            1
                        } else {
                            2
                        }
                    })
                    .min()?;
                Some((rank, e))
            })
            .collect();
        found.sort_by_key(|(rank, _)| *rank);
        Ok(found
            .into_iter()
            .take(limit)
            .map(|(_, e)| e.person.clone())
            .collect())
    }

    /// The workspace's people, read again once older than the configured
    /// time. When reading fails, an older copy is better than nothing.
    async fn directory(&self) -> Result<Arc<Vec<Entry>>, BridgeError> {
        let mut slot = self.direct.directory.lock().await;
        if let Some((at, list)) = slot.as_ref()
            && at.elapsed() < self.config.directory_ttl
        {
            return Ok(list.clone());
        }
        match self.read_directory().await {
            Ok(list) => {
                let list = Arc::new(list);
                *slot = Some((Instant::now(), list.clone()));
                Ok(list)
            }
            Err(e) => match slot.as_ref() {
                Some((_, stale)) => {
                    tracing::warn!(bridge = %self.config.id, error = %e, "Workspace directory not read again; searching the previous copy.");
                    Ok(stale.clone())
                }
                None => Err(e),
            },
        }
    }

    /// Every person of the workspace, page by page (`users.list`).
    async fn read_directory(&self) -> Result<Vec<Entry>, BridgeError> {
        let mut entries = Vec::new();
        let mut cursor = String::new();
        for _ in 0..DIRECTORY_MAX_PAGES {
            let mut args = json!({ "limit": DIRECTORY_PAGE });
            if !cursor.is_empty() {
                args["cursor"] = json!(cursor);
            }
            // users.list — https://docs.slack.dev/reference/methods/users.list
            let page = self
                .api
                .call("users.list", &self.config.bot_token, args, None)
                .await?;
            for user in page
                .get("members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(entry) = self.entry(user) {
                    entries.push(entry);
                }
            }
            cursor = page
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if cursor.is_empty() {
                return Ok(entries);
            }
        }
        tracing::warn!(bridge = %self.config.id, pages = DIRECTORY_MAX_PAGES, "users.list kept returning cursors; searching what was read.");
        Ok(entries)
    }

    /// A directory entry for a `users.list` member: people only (no bots,
    /// apps' users, deleted accounts or Slackbot), named as senders are.
    fn entry(&self, user: &Value) -> Option<Entry> {
        let flag = |k: &str| user.get(k).and_then(Value::as_bool).unwrap_or(false);
        let id = user.get("id").and_then(Value::as_str)?;
        if id.is_empty() || id == SLACKBOT || flag("is_bot") || flag("deleted") {
            return None;
        }
        let info = UserInfo::of(user, id);
        // Senders are named from the same cache.
        self.names.put_user(id, info.clone());
        let mut person = Person::new(self.config.id.clone(), UserId::new(id), info.name);
        person.avatar = info.avatar;
        let names = [
            user.pointer("/profile/display_name"),
            user.get("real_name"),
            user.pointer("/profile/real_name"),
            user.get("name"),
        ]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_lowercase)
        .collect();
        Some(Entry { person, names })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_model::{BridgeId, Message, MessageId, Origin, Sender};

    fn message(channel: &str, ts: &str) -> Inbound {
        Inbound::new(
            Origin::new(BridgeId::new("slack:t"), ChannelId::new(channel)),
            EventId::new("Ev1"),
            Sender::new(Person::new(
                BridgeId::new("slack:t"),
                UserId::new("U1"),
                "Alice",
            )),
            InboundKind::Message {
                id: MessageId::new(ts),
                message: Message::text("dm bob"),
            },
        )
    }

    #[test]
    fn a_stored_message_or_im_command_moves_the_cursor_to_its_ts() {
        let m = AfterStored::of(&message("C1", "10.000001"));
        assert_eq!(
            m.cursor,
            Some((ChannelId::new("C1"), "10.000001".to_owned()))
        );
        assert_eq!(m.command, None);
        let mut c = message("D1", "10.000002");
        c.event = EventId::new("im-command:D1:10.000002");
        c.kind = InboundKind::Command {
            text: "dm bob".into(),
            message: None,
        };
        let after = AfterStored::of(&c);
        assert_eq!(
            after.cursor,
            Some((ChannelId::new("D1"), "10.000002".to_owned()))
        );
        assert_eq!(after.command, Some(c.event.clone()));
        // A slash command has no position in the IM's history.
        c.event = EventId::new("slash:1.2.3");
        let after = AfterStored::of(&c);
        assert_eq!(after.cursor, None);
        assert_eq!(after.command, Some(EventId::new("slash:1.2.3")));
    }

    #[test]
    fn ims_are_d_channels() {
        assert!(is_im(&ChannelId::new("D0123")));
        assert!(!is_im(&ChannelId::new("C0123")));
        assert!(!is_im(&ChannelId::new("G0123")));
    }
}
