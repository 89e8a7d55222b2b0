//! Management rooms and direct chats with ghosts.
//!
//! - **Management room.** A room that is not a portal and that the bot has
//!   joined (anyone may invite the bot; it accepts). In a room the bot shares
//!   with exactly one person, every text message is a command for the relay
//!   ([`InboundKind::Command`]: `help`, `dm <name>`, `portal list`…); in a
//!   larger room only messages that start with `!switchboard` are. The
//!   relay answers with a notice from the bot.
//! - **Direct chat with a ghost.** A person who invites a ghost into a room
//!   with `is_direct` (Element's "Start chat" with the ghost) gets the ghost
//!   to join, the bot invited (so the relay's notices can be posted), and an
//!   [`InboundKind::DirectChat`] for the relay, which joins the room with a
//!   direct conversation on the ghost's person's own platform.
//! - **Direct chats opened from elsewhere** ([`MatrixBridge::open_direct`]):
//!   the ghost of the person asking creates a room with `is_direct`,
//!   inviting the Matrix user and the bot. The room is remembered (in the
//!   bridge's cursors) per ghost and user, and found again while the user is
//!   still in it or invited.
//!
//! Rooms used for direct chats are never management rooms.

use crate::bridge::MatrixBridge;
use crate::client::{Method, enc};
use crate::events::RoomEvent;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use switchboard_model::{
    BridgeError, ChannelId, CursorStore, EventId, Inbound, InboundKind, LinkedAccount, LoginFlow,
    Origin, Person, Sender, Timestamp, UserId,
};

/// How long a link started with `login matrix` waits for its code.
const LINK_WAIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Links of Matrix accounts started elsewhere (`login matrix`), waiting for
/// `link <code>` sent to the bot from the account to link, by code.
#[derive(Debug, Default)]
pub(crate) struct PendingLinks {
    pending: Mutex<HashMap<String, tokio::sync::oneshot::Sender<String>>>,
}

impl PendingLinks {
    /// Starts a link: a one-time code to send to `bot` from the account,
    /// and the future that ends with that account.
    pub(crate) fn begin(&self, server_name: &str, bot: &str) -> LoginFlow {
        let code: String = (0..8)
            .map(|_| {
                let chars = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
                char::from(chars[fastrand::usize(..chars.len())])
            })
            .collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            pending.retain(|_, waiting| !waiting.is_closed());
            pending.insert(code.clone(), tx);
        }
        let prompt = format!(
            "To appear in Matrix as your own account, send link {code} to {bot} from that account (on {server_name}), in a direct chat with it, within 15 minutes. I will tell you here when it is done."
        );
        let done = async move {
            match tokio::time::timeout(LINK_WAIT, rx).await {
                Ok(Ok(user)) => Ok(LinkedAccount {
                    user: UserId::new(user),
                    token: String::new(),
                }),
                Ok(Err(_)) => Err(BridgeError::permanent("the link was dropped")),
                Err(_) => Err(BridgeError::permanent(
                    "nobody sent the code from Matrix within 15 minutes",
                )),
            }
        };
        LoginFlow {
            prompt,
            done: Box::pin(done),
        }
    }

    /// `link <code>` from `sender`: completes the link waiting for the
    /// code. `None` when `text` is another command; else the answer.
    pub(crate) fn complete(&self, text: &str, sender: &str, server_name: &str) -> Option<String> {
        let mut words = text.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("link")) {
            return None;
        }
        let Some(code) = words.next().map(str::to_ascii_uppercase) else {
            return Some("Usage: link <code>, with the code Switchboard gave you on the other platform (login matrix).".to_owned());
        };
        if sender.split_once(':').map(|(_, server)| server) != Some(server_name) {
            return Some(format!(
                "Only accounts on {server_name} can be linked: Switchboard posts as them through that homeserver."
            ));
        }
        let waiting = lock(&self.pending).remove(&code);
        match waiting.map(|w| w.send(sender.to_owned())) {
            Some(Ok(())) => Some(format!(
                "Linked: what you write on the other platform now appears here as {sender}."
            )),
            _ => Some(
                "No link is waiting for this code. Send login matrix to Switchboard on the other platform for a new one.".to_owned(),
            ),
        }
    }
}

/// How many of the newest events of a new direct chat are read for what was
/// written before the ghost joined.
const EARLY_WORDS: usize = 50;

/// The prefix that makes a message in a larger room a command.
const PREFIX: &str = "!switchboard";

/// What the bridge knows of the rooms the bot is in.
#[derive(Debug, Default)]
pub struct Management {
    /// Rooms the bot has joined.
    bot_rooms: Mutex<HashSet<String>>,
    /// Joined members per room, as last asked (dropped on membership changes).
    sizes: Mutex<HashMap<String, usize>>,
    /// Rooms that are direct chats with a ghost.
    direct: Mutex<HashSet<String>>,
}

/// The cursor key marking `room` as a direct chat (value: the ghost).
fn direct_key(room: &str) -> ChannelId {
    ChannelId::new(format!("direct:{room}"))
}

/// The cursor key of the direct chat of `ghost` with `user` (value: the room).
fn pair_key(ghost: &str, user: &str) -> ChannelId {
    ChannelId::new(format!("direct-with:{ghost}|{user}"))
}

/// What a room event means for management, before portals are considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Special {
    /// The bot was invited: it joins.
    BotInvited,
    /// A ghost was invited into a direct chat by a person.
    GhostInvited {
        /// The ghost.
        ghost: String,
    },
    /// Nothing special.
    None,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MatrixBridge {
    /// Reads membership changes: the bot's own rooms, and room sizes.
    pub(crate) fn note_membership(&self, event: &RoomEvent) -> Special {
        if event.kind != "m.room.member" {
            return Special::None;
        }
        let Some(target) = event.state_key.as_deref() else {
            return Special::None;
        };
        lock(&self.management.sizes).remove(&event.room_id);
        let membership = event
            .content
            .get("membership")
            .and_then(Value::as_str)
            .unwrap_or("");
        if target == self.bot() {
            match membership {
                "join" => {
                    lock(&self.management.bot_rooms).insert(event.room_id.clone());
                }
                "leave" | "ban" => {
                    lock(&self.management.bot_rooms).remove(&event.room_id);
                }
                "invite" if !self.namer().is_ours(&event.sender) => return Special::BotInvited,
                _ => {}
            }
            return Special::None;
        }
        let is_direct = event
            .content
            .get("is_direct")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if membership == "invite"
            && is_direct
            && self.namer().is_ghost(target)
            && !self.namer().is_ours(&event.sender)
        {
            return Special::GhostInvited {
                ghost: target.to_owned(),
            };
        }
        Special::None
    }

    /// Loads the rooms the bot is in (at start).
    /// [`GET /_matrix/client/v3/joined_rooms`](https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3joined_rooms)
    pub(crate) async fn load_bot_rooms(&self) {
        match self
            .client
            .call(Method::Get, "/_matrix/client/v3/joined_rooms", None, None)
            .await
        {
            Ok(v) => {
                let rooms: HashSet<String> = v
                    .get("joined_rooms")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                *lock(&self.management.bot_rooms) = rooms;
            }
            Err(e) => {
                tracing::warn!(bridge = %self.config.id, error = %e, "Could not list the bot's rooms; management rooms are recognised as the bot joins them.");
            }
        }
    }

    /// Accepts an invitation of the bot (a management room, or a direct
    /// chat's ghost inviting it).
    pub(crate) async fn bot_accepts(&self, room: &str) {
        match self
            .client
            .call(
                Method::Post,
                &format!("/_matrix/client/v3/join/{}", enc(room)),
                None,
                Some(&json!({})),
            )
            .await
        {
            Ok(_) => {
                lock(&self.management.bot_rooms).insert(room.to_owned());
            }
            Err(e) => {
                tracing::warn!(bridge = %self.config.id, %room, error = %e, "Could not accept an invitation of the bot.");
            }
        }
    }

    /// A person invited `ghost` into the direct chat `room`: the ghost joins
    /// and invites the bot, and the room is marked as a direct chat. Returns
    /// what people wrote there before the ghost joined (oldest first): the
    /// homeserver sends an application service only the events of rooms
    /// its users are in, so words typed at once would be lost otherwise.
    pub(crate) async fn ghost_accepts(
        &self,
        room: &str,
        ghost: &str,
        cursors: &dyn CursorStore,
    ) -> Vec<RoomEvent> {
        lock(&self.management.direct).insert(room.to_owned());
        cursors.put(&direct_key(room), ghost);
        if let Some(localpart) = ghost
            .strip_prefix('@')
            .and_then(|rest| rest.split_once(':'))
            .map(|(l, _)| l)
            && let Err(e) = self.ghosts.register(&self.client, localpart).await
        {
            tracing::warn!(bridge = %self.config.id, %room, error = %e, "Could not register a ghost invited to a direct chat.");
            return Vec::new();
        }
        let joined = self
            .client
            .call(
                Method::Post,
                &format!("/_matrix/client/v3/join/{}", enc(room)),
                Some(ghost),
                Some(&json!({})),
            )
            .await;
        if let Err(e) = joined {
            tracing::warn!(bridge = %self.config.id, %room, error = %e, "A ghost could not join the direct chat it was invited to.");
            return Vec::new();
        }
        let earlier = self.written_before_join(room, ghost).await;
        let invited = self
            .client
            .call(
                Method::Post,
                &format!("/_matrix/client/v3/rooms/{}/invite", enc(room)),
                Some(ghost),
                Some(&json!({ "user_id": self.bot() })),
            )
            .await;
        match invited {
            Ok(_) => self.bot_accepts(room).await,
            Err(e) => {
                tracing::warn!(bridge = %self.config.id, %room, error = %e, "A ghost could not invite the bot into its direct chat.");
            }
        }
        earlier
    }

    /// The messages (and reactions, redactions) people wrote in `room`
    /// before `ghost` joined it, oldest first, read as the ghost.
    /// [`GET /_matrix/client/v3/rooms/{roomId}/messages`](https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3roomsroomidmessages)
    async fn written_before_join(&self, room: &str, ghost: &str) -> Vec<RoomEvent> {
        let page = self
            .client
            .call(
                Method::Get,
                &format!(
                    "/_matrix/client/v3/rooms/{}/messages?dir=b&limit={EARLY_WORDS}",
                    enc(room)
                ),
                Some(ghost),
                None,
            )
            .await;
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(bridge = %self.config.id, %room, error = %e, "Could not read what was written before a ghost joined its direct chat.");
                return Vec::new();
            }
        };
        let mut events: Vec<RoomEvent> = page
            .get("chunk")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| RoomEvent::from_json(e).ok())
            .filter(|e| {
                e.state_key.is_none()
                    && matches!(
                        e.kind.as_str(),
                        "m.room.message" | "m.sticker" | "m.reaction" | "m.room.redaction"
                    )
                    && !self.namer().is_ours(&e.sender)
            })
            .collect();
        events.reverse();
        events
    }

    /// True when `room` is (or was made) a direct chat with a ghost (opened
    /// by a Matrix user, or by [`open_direct_room`](Self::open_direct_room)).
    pub(crate) fn is_direct(&self, room: &str, cursors: &dyn CursorStore) -> bool {
        if lock(&self.management.direct).contains(room) {
            return true;
        }
        let known = cursors.get(&direct_key(room)).is_some();
        if known {
            lock(&self.management.direct).insert(room.to_owned());
        }
        known
    }

    /// The command a message in a non-portal `room` is, if it is one.
    pub(crate) async fn command_in(
        &self,
        event: &RoomEvent,
        cursors: &dyn CursorStore,
    ) -> Option<String> {
        if event.kind != "m.room.message" || event.state_key.is_some() {
            return None;
        }
        if !matches!(
            event.content.get("msgtype").and_then(Value::as_str),
            Some("m.text")
        ) || event.content.get("m.relates_to").is_some()
        {
            return None;
        }
        let body = event.content.get("body").and_then(Value::as_str)?.trim();
        if !lock(&self.management.bot_rooms).contains(&event.room_id)
            || self.is_direct(&event.room_id, cursors)
        {
            return None;
        }
        let prefixed = body
            .get(..PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX));
        if prefixed {
            return Some(body[PREFIX.len()..].trim().to_owned());
        }
        (self.joined_count(&event.room_id).await == Some(2)).then(|| body.to_owned())
    }

    /// The bot's answer to `link <code>`, in the room it was sent in.
    pub(crate) async fn answer_link(&self, event: &RoomEvent, answer: &str) {
        let content = json!({ "msgtype": "m.notice", "body": answer });
        let txn = format!("link-{}", event.event_id.trim_start_matches('$'));
        if let Err(e) = self
            .send_event(&event.room_id, self.bot(), "m.room.message", &txn, &content)
            .await
        {
            tracing::warn!(bridge = %self.config.id, room = %event.room_id, error = %e, "Could not answer a link command.");
        }
    }

    /// How many have joined `room`.
    /// [`GET /_matrix/client/v3/rooms/{roomId}/joined_members`](https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3roomsroomidjoined_members)
    async fn joined_count(&self, room: &str) -> Option<usize> {
        if let Some(n) = lock(&self.management.sizes).get(room) {
            return Some(*n);
        }
        let v = self
            .client
            .call(
                Method::Get,
                &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(room)),
                None,
                None,
            )
            .await
            .ok()?;
        let n = v.get("joined").and_then(Value::as_object)?.len();
        lock(&self.management.sizes).insert(room.to_owned(), n);
        Some(n)
    }

    /// The relay event of a command or a direct chat in `room`.
    pub(crate) fn special_inbound(
        &self,
        event: &RoomEvent,
        sender: Person,
        kind: InboundKind,
    ) -> Inbound {
        let mut inbound = Inbound::new(
            Origin::new(self.config.id.clone(), event.room_id.clone()),
            EventId::new(event.event_id.clone()),
            Sender::new(sender),
            kind,
        );
        if let Some(ts) = event.ts {
            inbound = inbound.at(Timestamp(ts));
        }
        inbound
    }

    /// See [`switchboard_model::Bridge::open_direct`]: a room created by
    /// `with`'s ghost, with the user and the bot invited.
    /// [`POST /_matrix/client/v3/createRoom`](https://spec.matrix.org/v1.16/client-server-api/#post_matrixclientv3createroom)
    pub(crate) async fn open_direct_room(
        &self,
        user: &UserId,
        with: &Person,
    ) -> Result<Option<ChannelId>, BridgeError> {
        if self.namer().is_ours(user.as_str()) {
            return Err(BridgeError::permanent(format!(
                "{user} is one of Switchboard's own accounts"
            )));
        }
        let Some(ctx) = self.context() else {
            return Err(BridgeError::transient("the Matrix bridge is not running"));
        };
        let cursors = ctx.cursors();
        let puppet = switchboard_model::Bridge::ensure_puppet(self, with).await?;
        // A person of a platform no ghost template covers is shown by the bot.
        let ghost = if self.namer().is_ghost(puppet.user.as_str()) {
            puppet.user.as_str().to_owned()
        } else {
            self.bot().to_owned()
        };
        let pair = pair_key(&ghost, user.as_str());
        if let Some(room) = cursors.get(&pair)
            && self.still_there(&room, &ghost, user.as_str()).await
        {
            return Ok(Some(ChannelId::new(room)));
        }
        // A person without a ghost here is shown by the bot, which then
        // creates the room itself.
        let by_bot = ghost == self.bot();
        let invite: Vec<&str> = if by_bot {
            vec![user.as_str()]
        } else {
            vec![user.as_str(), self.bot()]
        };
        let body = json!({
            "preset": "trusted_private_chat",
            "is_direct": true,
            "invite": invite,
        });
        let created = self
            .client
            .call(
                Method::Post,
                "/_matrix/client/v3/createRoom",
                Some(&ghost),
                Some(&body),
            )
            .await
            .map_err(|e| e.into_bridge("create a direct chat"))?;
        let room = created
            .get("room_id")
            .and_then(Value::as_str)
            .ok_or_else(|| BridgeError::transient("createRoom: no room_id"))?
            .to_owned();
        cursors.put(&pair, &room);
        cursors.put(&direct_key(&room), &ghost);
        lock(&self.management.direct).insert(room.clone());
        if by_bot {
            lock(&self.management.bot_rooms).insert(room.clone());
        } else {
            self.bot_accepts(&room).await;
        }
        tracing::info!(bridge = %self.config.id, %room, "Opened a direct chat for a person from elsewhere.");
        Ok(Some(ChannelId::new(room)))
    }

    /// True while `user` is in `room` (joined or invited) and `ghost` has joined.
    async fn still_there(&self, room: &str, ghost: &str, user: &str) -> bool {
        let membership = |who: String| async move {
            self.client
                .call(
                    Method::Get,
                    &format!(
                        "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
                        enc(room),
                        enc(&who)
                    ),
                    Some(ghost),
                    None,
                )
                .await
                .ok()
                .and_then(|v| {
                    v.get("membership")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
        };
        matches!(membership(ghost.to_owned()).await.as_deref(), Some("join"))
            && matches!(
                membership(user.to_owned()).await.as_deref(),
                Some("join" | "invite")
            )
    }

    /// See [`switchboard_model::Bridge::find_people`]: the homeserver's user
    /// directory, as the bot sees it (people who share a room with it or
    /// are in public rooms, unless the homeserver searches all users).
    /// [`POST /_matrix/client/v3/user_directory/search`](https://spec.matrix.org/v1.16/client-server-api/#post_matrixclientv3user_directorysearch)
    pub(crate) async fn search_people(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Person>, BridgeError> {
        let v = self
            .client
            .call(
                Method::Post,
                "/_matrix/client/v3/user_directory/search",
                None,
                Some(&json!({ "search_term": query, "limit": limit.saturating_mul(2).max(1) })),
            )
            .await
            .map_err(|e| e.into_bridge("search the user directory"))?;
        let mut people = Vec::new();
        for result in v
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(user) = result.get("user_id").and_then(Value::as_str) else {
                continue;
            };
            if self.namer().is_ours(user) {
                continue;
            }
            let name = result
                .get("display_name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(user);
            self.remember_name(user, name);
            if let Some(mxc) = result.get("avatar_url").and_then(Value::as_str) {
                self.remember_avatar(user, mxc);
            }
            let mut person = Person::new(self.config.id.clone(), UserId::new(user), name);
            person.avatar = self.avatar_url(user);
            people.push(person);
            if people.len() >= limit {
                break;
            }
        }
        Ok(people)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_link_code_sent_from_a_local_account_links_that_account() {
        let links = PendingLinks::default();
        // A server name with a port.
        let port_flow = links.begin("localhost:8448", "@switchboard:localhost:8448");
        let port_code = port_flow
            .prompt
            .split_once("send link ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .expect("a code")
            .to_owned();
        assert!(
            links
                .complete(
                    &format!("link {port_code}"),
                    "@ann:localhost:8448",
                    "localhost:8448"
                )
                .is_some_and(|a| a.starts_with("Linked")),
        );
        let flow = links.begin("example.org", "@switchboard:example.org");
        let code = flow
            .prompt
            .split_once("send link ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .expect("a code")
            .to_owned();
        assert_eq!(code.len(), 8);
        assert_eq!(
            links.complete("help", "@ann:example.org", "example.org"),
            None
        );
        assert!(
            links
                .complete(&format!("link {code}"), "@ann:elsewhere.org", "example.org")
                .is_some_and(|a| a.starts_with("Only accounts on example.org")),
            "a remote account cannot be linked"
        );
        assert!(
            links
                .complete("link WRONG123", "@ann:example.org", "example.org")
                .is_some_and(|a| a.starts_with("No link is waiting")),
        );
        let answer = links
            .complete(
                &format!("LINK {}", code.to_ascii_lowercase()),
                "@ann:example.org",
                "example.org",
            )
            .expect("answered");
        assert!(answer.starts_with("Linked"), "{answer}");
        let account = flow.done.await.expect("linked");
        assert_eq!(account.user.as_str(), "@ann:example.org");
        assert!(
            links
                .complete(&format!("link {code}"), "@bob:example.org", "example.org")
                .is_some_and(|a| a.starts_with("No link is waiting")),
            "a code is used once"
        );
    }
}
