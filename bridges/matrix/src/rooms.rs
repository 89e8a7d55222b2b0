//! Portal rooms: which Matrix room a channel id stands for, and who is in it.
//!
//! A portal channel on a Matrix bridge is written in one of two forms:
//!
//! - `#alias:server`: the bridge resolves the alias and, when it does not
//!   exist yet on our own server, creates the room with that alias, a name
//!   and a topic, inviting the configured users. The bot creates it, so it
//!   holds the creator's power (100 before room version 12, above every
//!   level since). Alias → room id is kept in memory and in the cursor store
//!   under `room|{alias}`.
//! - `!roomid[:server]`: an existing room the bot was invited to or is in;
//!   the bot joins it.
//!
//! Inbound events carry room ids; [`Rooms::channel_of`] maps them back to
//! the channel id the relay knows. Ghosts join a room before they speak in
//! it: the bot invites them, then they join through identity assertion; the
//! pairs already done are remembered for the process's life.

use crate::client::{MatrixClient, Method, enc};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use switchboard_model::{BridgeError, ChannelId, CursorStore};

/// The two forms of a portal channel id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelForm<'a> {
    /// `#localpart:server`.
    Alias {
        /// The whole alias.
        alias: &'a str,
        /// Its localpart.
        localpart: &'a str,
        /// Its server.
        server: &'a str,
    },
    /// `!opaque[:server]`.
    Room(&'a str),
}

/// Which form `channel` is in, if any.
pub fn channel_form(channel: &ChannelId) -> Option<ChannelForm<'_>> {
    let s = channel.as_str();
    if let Some(rest) = s.strip_prefix('#') {
        let (localpart, server) = rest.split_once(':')?;
        if localpart.is_empty() || server.is_empty() {
            return None;
        }
        return Some(ChannelForm::Alias {
            alias: s,
            localpart,
            server,
        });
    }
    if s.len() > 1 && s.starts_with('!') {
        return Some(ChannelForm::Room(s));
    }
    None
}

fn cursor_key(alias: &str) -> ChannelId {
    ChannelId::new(format!("room|{alias}"))
}

/// The portal rooms of one bridge.
#[derive(Debug)]
pub struct Rooms {
    bot: String,
    server_name: String,
    alias_template: String,
    invite: Vec<String>,
    by_channel: Mutex<HashMap<ChannelId, String>>,
    by_room: Mutex<HashMap<String, ChannelId>>,
    members: Mutex<HashSet<(String, String)>>,
    /// One room creation at a time, so two lanes never race for an alias.
    creating: tokio::sync::Mutex<()>,
}

impl Rooms {
    /// Rooms managed by `bot` on `server_name`.
    pub fn new(bot: &str, server_name: &str, alias_template: &str, invite: &[String]) -> Self {
        Rooms {
            bot: bot.to_owned(),
            server_name: server_name.to_owned(),
            alias_template: alias_template.to_owned(),
            invite: invite.to_vec(),
            by_channel: Mutex::default(),
            by_room: Mutex::default(),
            members: Mutex::default(),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// The channel the relay knows `room_id` by, if it is one of ours.
    pub fn channel_of(&self, room_id: &str) -> Option<ChannelId> {
        lock(&self.by_room).get(room_id).cloned()
    }

    /// The room id of `channel`, if already known (no I/O).
    pub fn known_room(&self, channel: &ChannelId) -> Option<String> {
        lock(&self.by_channel).get(channel).cloned()
    }

    /// Records that `channel` is room `room_id`.
    pub fn remember(&self, channel: &ChannelId, room_id: &str) {
        lock(&self.by_channel).insert(channel.clone(), room_id.to_owned());
        lock(&self.by_room).insert(room_id.to_owned(), channel.clone());
    }

    /// Learns `channel`'s room from the cursor store alone (no I/O): for
    /// mapping inbound events right after a restart.
    pub fn recall(&self, channel: &ChannelId, cursors: &dyn CursorStore) {
        match channel_form(channel) {
            Some(ChannelForm::Alias { alias, .. }) => {
                if let Some(room) = cursors.get(&cursor_key(alias)) {
                    self.remember(channel, &room);
                }
            }
            Some(ChannelForm::Room(room)) => self.remember(channel, room),
            None => {}
        }
    }

    /// Whether `alias` may be created by us (our server, our namespace).
    pub fn may_create(&self, server: &str) -> bool {
        server == self.server_name
    }

    /// The room `channel` stands for, joining or creating it as needed.
    pub async fn room_for(
        &self,
        client: &MatrixClient,
        channel: &ChannelId,
        cursors: Option<&dyn CursorStore>,
    ) -> Result<String, BridgeError> {
        if let Some(room) = self.known_room(channel) {
            return Ok(room);
        }
        let room = match channel_form(channel) {
            None => {
                return Err(BridgeError::not_found(format!(
                    "{channel} is neither a room alias (#…) nor a room id (!…)"
                )));
            }
            Some(ChannelForm::Room(room)) => {
                self.join(client, room, &self.bot).await?;
                room.to_owned()
            }
            Some(ChannelForm::Alias {
                alias,
                localpart,
                server,
            }) => {
                if let Some(room) = cursors.and_then(|c| c.get(&cursor_key(alias))) {
                    room
                } else {
                    let _creating = self.creating.lock().await;
                    let room = match self.resolve(client, alias).await? {
                        Some(room) => {
                            self.join(client, &room, &self.bot).await?;
                            room
                        }
                        None if self.may_create(server) => {
                            self.create(client, alias, localpart).await?
                        }
                        None => {
                            return Err(BridgeError::not_found(format!(
                                "room alias {alias} does not exist"
                            )));
                        }
                    };
                    if let Some(c) = cursors {
                        c.put(&cursor_key(alias), &room);
                    }
                    room
                }
            }
        };
        lock(&self.members).insert((room.clone(), self.bot.clone()));
        self.remember(channel, &room);
        Ok(room)
    }

    /// Creates the room of an alias portal because the homeserver asked us
    /// about the alias (`GET /_matrix/app/v1/rooms/{alias}`), without
    /// resolving it first: resolving would make the homeserver ask us again.
    /// `Ok(false)` when it cannot be created here, or when a creation is
    /// under way already (that one may be the very lookup that caused the
    /// query: answering at once lets it go on and create the room).
    pub async fn create_on_query(
        &self,
        client: &MatrixClient,
        channel: &ChannelId,
        cursors: Option<&dyn CursorStore>,
    ) -> Result<bool, BridgeError> {
        let Some(ChannelForm::Alias {
            alias,
            localpart,
            server,
        }) = channel_form(channel)
        else {
            return Ok(false);
        };
        if !self.may_create(server) {
            return Ok(false);
        }
        let Ok(_creating) = self.creating.try_lock() else {
            return Ok(false);
        };
        let room = self.create(client, alias, localpart).await?;
        if let Some(c) = cursors {
            c.put(&cursor_key(alias), &room);
        }
        lock(&self.members).insert((room.clone(), self.bot.clone()));
        self.remember(channel, &room);
        Ok(true)
    }

    /// Resolves an alias; `None` when it does not exist.
    /// [`GET /_matrix/client/v3/directory/room/{roomAlias}`](https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3directoryroomroomalias)
    async fn resolve(
        &self,
        client: &MatrixClient,
        alias: &str,
    ) -> Result<Option<String>, BridgeError> {
        match client
            .call(
                Method::Get,
                &format!("/_matrix/client/v3/directory/room/{}", enc(alias)),
                None,
                None,
            )
            .await
        {
            Ok(v) => v
                .get("room_id")
                .and_then(Value::as_str)
                .map(|r| Some(r.to_owned()))
                .ok_or_else(|| BridgeError::transient("alias lookup: no room_id")),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into_bridge("resolve a room alias")),
        }
    }

    /// The room name for an alias created from the template.
    fn room_name(&self, localpart: &str) -> String {
        if let Some((prefix, suffix)) = self.alias_template.split_once("{name}")
            && let Some(name) = localpart
                .strip_prefix(prefix)
                .and_then(|l| l.strip_suffix(suffix))
            && !name.is_empty()
        {
            return name.to_owned();
        }
        localpart.to_owned()
    }

    /// Creates the portal room for `alias`.
    /// [`POST /_matrix/client/v3/createRoom`](https://spec.matrix.org/v1.16/client-server-api/#post_matrixclientv3createroom)
    async fn create(
        &self,
        client: &MatrixClient,
        alias: &str,
        localpart: &str,
    ) -> Result<String, BridgeError> {
        let body = json!({
            "room_alias_name": localpart,
            "name": self.room_name(localpart),
            "topic": "Bridged by Switchboard",
            "preset": "private_chat",
            "visibility": "private",
            "invite": self.invite,
            // The bot is the creator: 100 before room version 12, and above
            // every level since (creators may not be listed in `users` there).
            "power_level_content_override": {
                "events_default": 0,
                "invite": 50,
                "redact": 50,
            },
        });
        match client
            .call(
                Method::Post,
                "/_matrix/client/v3/createRoom",
                None,
                Some(&body),
            )
            .await
        {
            Ok(v) => {
                let room = v
                    .get("room_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| BridgeError::transient("createRoom: no room_id"))?
                    .to_owned();
                tracing::info!(%alias, room = %room, "Created a portal room.");
                Ok(room)
            }
            // Someone created it meanwhile: use theirs.
            Err(e) if e.errcode() == Some("M_ROOM_IN_USE") => {
                match self.resolve(client, alias).await? {
                    Some(room) => {
                        self.join(client, &room, &self.bot).await?;
                        Ok(room)
                    }
                    None => Err(e.into_bridge("create a portal room")),
                }
            }
            Err(e) => Err(e.into_bridge("create a portal room")),
        }
    }

    /// Joins `room` as `user` (the bot, or a ghost through identity assertion).
    /// [`POST /_matrix/client/v3/join/{roomIdOrAlias}`](https://spec.matrix.org/v1.16/client-server-api/#post_matrixclientv3joinroomidoralias)
    async fn join(&self, client: &MatrixClient, room: &str, user: &str) -> Result<(), BridgeError> {
        let as_user = (user != self.bot).then_some(user);
        client
            .call(
                Method::Post,
                &format!("/_matrix/client/v3/join/{}", enc(room)),
                as_user,
                Some(&json!({})),
            )
            .await
            .map_err(|e| match e.errcode() {
                // Joining a room that does not exist or will not have us.
                Some("M_FORBIDDEN") | Some("M_UNKNOWN") if e.status() == Some(404) => {
                    BridgeError::not_found(format!("room {room}: {e}"))
                }
                _ => e.into_bridge("join a room"),
            })?;
        Ok(())
    }

    /// Makes sure `user` (the bot or a ghost) is in `room`.
    pub async fn ensure_member(
        &self,
        client: &MatrixClient,
        room: &str,
        user: &str,
    ) -> Result<(), BridgeError> {
        let key = (room.to_owned(), user.to_owned());
        if lock(&self.members).contains(&key) {
            return Ok(());
        }
        if user != self.bot {
            // POST /_matrix/client/v3/rooms/{roomId}/invite
            let invited = client
                .call(
                    Method::Post,
                    &format!("/_matrix/client/v3/rooms/{}/invite", enc(room)),
                    None,
                    Some(&json!({ "user_id": user })),
                )
                .await;
            match invited {
                Ok(_) => {}
                // Already in the room, or already invited: go on and join.
                Err(e) if matches!(e.status(), Some(400 | 403)) => {
                    tracing::debug!(%room, error = %e, "Invite not needed or refused; joining anyway.");
                }
                Err(e) => return Err(e.into_bridge("invite a ghost")),
            }
        }
        self.join(client, room, user).await?;
        lock(&self.members).insert(key);
        Ok(())
    }

    /// Forgets that `user` is in `room` (after the homeserver said otherwise).
    pub fn forget_member(&self, room: &str, user: &str) {
        lock(&self.members).remove(&(room.to_owned(), user.to_owned()));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_model::MemoryCursors;

    #[test]
    fn channel_forms() {
        assert_eq!(
            channel_form(&ChannelId::new("#switchboard_general:example.org")),
            Some(ChannelForm::Alias {
                alias: "#switchboard_general:example.org",
                localpart: "switchboard_general",
                server: "example.org",
            })
        );
        assert_eq!(
            channel_form(&ChannelId::new("!abc:example.org")),
            Some(ChannelForm::Room("!abc:example.org"))
        );
        assert_eq!(
            channel_form(&ChannelId::new(
                "!1LPf4nZ_CpUaXcFn3Yr8XnfiYoXgU2AsMW1QCQZ9_4M"
            )),
            Some(ChannelForm::Room(
                "!1LPf4nZ_CpUaXcFn3Yr8XnfiYoXgU2AsMW1QCQZ9_4M"
            ))
        );
        assert_eq!(channel_form(&ChannelId::new("#nocolon")), None);
        assert_eq!(channel_form(&ChannelId::new("general")), None);
    }

    #[test]
    fn names_and_recall() {
        let rooms = Rooms::new("@bot:e", "e", "switchboard_{name}", &[]);
        assert_eq!(rooms.room_name("switchboard_general"), "general");
        assert_eq!(rooms.room_name("other"), "other");
        let cursors = MemoryCursors::default();
        cursors.put(&cursor_key("#switchboard_general:e"), "!r1:e");
        let channel = ChannelId::new("#switchboard_general:e");
        rooms.recall(&channel, &cursors);
        assert_eq!(rooms.channel_of("!r1:e"), Some(channel.clone()));
        assert_eq!(rooms.known_room(&channel).as_deref(), Some("!r1:e"));
        rooms.recall(&ChannelId::new("!r2:e"), &cursors);
        assert_eq!(rooms.channel_of("!r2:e"), Some(ChannelId::new("!r2:e")));
        assert_eq!(rooms.channel_of("!r3:e"), None);
    }
}
