//! The tenant: directory, teams, channels, chats, messages, tokens, subscriptions — and the
//! JSON renderings Graph gives them.
//!
//! Resource shapes: chatMessage <https://learn.microsoft.com/graph/api/resources/chatmessage>,
//! channel <https://learn.microsoft.com/graph/api/resources/channel>, team
//! <https://learn.microsoft.com/graph/api/resources/team>, chat
//! <https://learn.microsoft.com/graph/api/resources/chat>, user
//! <https://learn.microsoft.com/graph/api/resources/user>. Key sets follow the captured
//! examples in `conformance/teams/graph/examples-*`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::SimError;
use crate::seed::{DEFAULT_APP_ROLES, Seed, Seeded};
use crate::util::{guid, hex, iso_ms, now_ms, opaque, pct};

/// A person in the directory.
#[derive(Clone, Debug)]
pub struct User {
    /// Object id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// UPN.
    pub upn: String,
    /// Mail.
    pub mail: String,
    /// Photo bytes.
    pub photo: Option<Vec<u8>>,
}

/// A team member.
#[derive(Clone, Debug)]
pub struct Member {
    /// User id.
    pub user: String,
    /// `owner` or none.
    pub owner: bool,
}

/// A channel (standard: members are the team's).
#[derive(Clone, Debug)]
pub struct Channel {
    /// `19:…@thread.tacv2`.
    pub id: String,
    /// Name.
    pub display_name: String,
    /// Description.
    pub description: Option<String>,
    /// Creation time.
    pub created_ms: u64,
}

/// A team.
#[derive(Clone, Debug)]
pub struct Team {
    /// Group id.
    pub id: String,
    /// Name.
    pub display_name: String,
    /// Description.
    pub description: Option<String>,
    /// Members.
    pub members: Vec<Member>,
    /// Channels by id.
    pub channels: BTreeMap<String, Channel>,
}

/// A chat.
#[derive(Clone, Debug)]
pub struct Chat {
    /// Chat id.
    pub id: String,
    /// `oneOnOne`, `group` or `meeting`.
    pub chat_type: String,
    /// Topic.
    pub topic: Option<String>,
    /// Member user ids.
    pub members: Vec<String>,
    /// Creation time.
    pub created_ms: u64,
    /// Last update.
    pub updated_ms: u64,
}

/// Where a message lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A channel of a team.
    Channel {
        /// Team id.
        team: String,
        /// Channel id.
        channel: String,
    },
    /// A chat.
    Chat {
        /// Chat id.
        chat: String,
    },
}

/// A reaction.
#[derive(Clone, Debug)]
pub struct Reaction {
    /// `reactionType` (Unicode or legacy name).
    pub reaction_type: String,
    /// Who.
    pub user: String,
    /// When.
    pub created_ms: u64,
}

/// A chatMessage.
#[derive(Clone, Debug)]
pub struct Message {
    /// Millisecond-epoch id.
    pub id: String,
    /// Root id for channel replies.
    pub reply_to: Option<String>,
    /// Where.
    pub scope: Scope,
    /// `message` or `systemEventMessage`.
    pub message_type: String,
    /// Created.
    pub created_ms: u64,
    /// Last modified (edits, reactions, deletes).
    pub modified_ms: u64,
    /// Last user edit.
    pub edited_ms: Option<u64>,
    /// Soft delete.
    pub deleted_ms: Option<u64>,
    /// Subject (channel roots).
    pub subject: Option<String>,
    /// `text` or `html`.
    pub content_type: String,
    /// Body.
    pub content: String,
    /// Author (None for system messages).
    pub from: Option<String>,
    /// `attachments` as posted.
    pub attachments: Value,
    /// `mentions` as posted.
    pub mentions: Value,
    /// Reactions.
    pub reactions: Vec<Reaction>,
    /// `eventDetail` of system messages.
    pub event_detail: Option<Value>,
    /// `importance`.
    pub importance: String,
    /// Change sequence (for delta).
    pub seq: u64,
}

/// What a token stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// Client credentials: the app itself, with its roles.
    App {
        /// Client id.
        client_id: String,
        /// Application permissions.
        roles: Vec<String>,
    },
    /// A signed-in person.
    Delegated {
        /// Client id.
        client_id: String,
        /// User id.
        user: String,
        /// Delegated scopes.
        scopes: Vec<String>,
    },
}

impl Principal {
    /// The user, for delegated tokens.
    pub fn user(&self) -> Option<&str> {
        match self {
            Principal::Delegated { user, .. } => Some(user),
            Principal::App { .. } => None,
        }
    }
}

/// An issued access token.
#[derive(Clone, Debug)]
pub struct Token {
    /// Who.
    pub principal: Principal,
    /// Expiry (ms epoch).
    pub expires_ms: u64,
}

/// An issued refresh token (single use: redeeming rotates it).
#[derive(Clone, Debug)]
pub struct Refresh {
    /// Client id.
    pub client_id: String,
    /// User id.
    pub user: String,
    /// Scopes.
    pub scopes: Vec<String>,
}

/// A pending device-code sign-in.
#[derive(Clone, Debug)]
pub struct DeviceCode {
    /// Shown to the user.
    pub user_code: String,
    /// Client id.
    pub client_id: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Expiry (ms epoch).
    pub expires_ms: u64,
    /// Minimum polling interval (ms).
    pub interval_ms: u64,
    /// Last poll (ms epoch).
    pub last_poll_ms: Option<u64>,
    /// Who signed in.
    pub completed_by: Option<String>,
    /// The user declined.
    pub declined: bool,
}

/// Paging and delta cursors behind opaque `$skiptoken` / `$deltatoken` values.
#[derive(Clone, Debug)]
pub enum Cursor {
    /// Next page of a plain list.
    List {
        /// The list's path under `/v1.0`.
        path: String,
        /// Offset.
        offset: usize,
        /// Page size.
        top: usize,
    },
    /// A delta round: changes with `since < seq <= upto`, from `offset`.
    Delta {
        /// Scope.
        scope: Scope,
        /// Lower bound (exclusive).
        since: u64,
        /// Upper bound (inclusive), fixed at the round's first page.
        upto: u64,
        /// Offset.
        offset: usize,
        /// Page size.
        top: usize,
    },
    /// Next page of a list read with query options (`/users?$filter=…`,
    /// `/me/chats?$orderby=…`): the options of the first page, kept behind the token as
    /// Graph keeps them.
    Query {
        /// The list's path under `/v1.0`.
        path: String,
        /// Who asked (a delegated caller's user id; empty for the app).
        caller: String,
        /// The first page's query options, without `$skiptoken`.
        options: Vec<(String, String)>,
        /// Offset.
        offset: usize,
    },
    /// A delta link: the next round starts after `since`.
    DeltaLink {
        /// Scope.
        scope: Scope,
        /// Lower bound.
        since: u64,
    },
}

/// What a subscription watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Watch {
    /// `/teams/getAllMessages`.
    AllChannels,
    /// `/chats/getAllMessages`.
    AllChats,
    /// `/teams/{id}/channels/{id}/messages`.
    Channel(String, String),
    /// `/chats/{id}/messages`.
    Chat(String),
    /// `/users/{id}/chats/getAllMessages`: every chat the user is a member of.
    UserChats(String),
}

/// A change-notification subscription.
#[derive(Clone, Debug)]
pub struct Subscription {
    /// Id (GUID).
    pub id: String,
    /// `resource` as given.
    pub resource: String,
    /// What it matches.
    pub watch: Watch,
    /// `created`, `updated`, `deleted`.
    pub change_types: Vec<String>,
    /// Echoed in every notification.
    pub client_state: Option<String>,
    /// Where notifications go.
    pub notification_url: String,
    /// Where lifecycle notifications go.
    pub lifecycle_url: Option<String>,
    /// Expiry (ms epoch).
    pub expires_ms: u64,
    /// App id.
    pub application_id: String,
    /// Creator (user id, or the app's service principal).
    pub creator_id: String,
    /// `includeResourceData`: the certificate to encrypt resource data with.
    pub encryption: Option<crate::rich::Encryption>,
}

/// A message change, to notify subscribers of.
#[derive(Clone, Debug)]
pub struct Change {
    /// `created`, `updated`, `deleted`.
    pub change_type: &'static str,
    /// Where.
    pub scope: Scope,
    /// Message id.
    pub id: String,
    /// Root id for replies.
    pub reply_to: Option<String>,
}

/// An inline image of a message: a `chatMessageHostedContent`
/// (<https://learn.microsoft.com/graph/api/resources/chatmessagehostedcontent>).
#[derive(Clone, Debug)]
pub struct HostedContent {
    /// Its opaque id (base64, as Graph's are).
    pub id: String,
    /// Its MIME type, as posted.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// An online meeting created through `/me/onlineMeetings`
/// (<https://learn.microsoft.com/graph/api/resources/onlinemeeting>).
#[derive(Clone, Debug)]
pub struct OnlineMeeting {
    /// The organizer's user id (meetings are read through their `/me`).
    pub organizer: String,
    /// `externalId` given to `createOrGet`, if any.
    pub external_id: Option<String>,
    /// The resource as Graph renders it.
    pub resource: Value,
}

/// A channel meeting in progress.
#[derive(Clone, Debug)]
pub struct Call {
    /// `callId`.
    pub call_id: String,
    /// Organizer.
    pub initiator: String,
    /// Participants so far.
    pub participants: Vec<String>,
    /// Start (ms epoch).
    pub started_ms: u64,
}

/// The whole tenant.
#[derive(Debug)]
pub struct State {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Tenant id.
    pub tenant_id: String,
    /// App client id.
    pub client_id: String,
    /// App client secret.
    pub client_secret: String,
    /// App display name.
    pub app_name: String,
    /// App roles.
    pub app_roles: Vec<String>,
    /// Users by id.
    pub users: BTreeMap<String, User>,
    /// Teams by id.
    pub teams: BTreeMap<String, Team>,
    /// Chats by id.
    pub chats: BTreeMap<String, Chat>,
    /// Messages by numeric id (ids are unique across the tenant here).
    pub messages: BTreeMap<u64, Message>,
    /// Last message id handed out.
    pub last_id: u64,
    /// Change sequence.
    pub seq: u64,
    /// Access tokens.
    pub tokens: HashMap<String, Token>,
    /// Refresh tokens.
    pub refresh: HashMap<String, Refresh>,
    /// Device codes by device_code.
    pub device_codes: HashMap<String, DeviceCode>,
    /// Paging cursors.
    pub cursors: HashMap<String, Cursor>,
    /// Subscriptions.
    pub subscriptions: BTreeMap<String, Subscription>,
    /// Meetings in progress by (team, channel).
    pub calls: HashMap<(String, String), Call>,
    /// Inline images by the numeric id of their message.
    pub hosted_contents: BTreeMap<u64, Vec<HostedContent>>,
    /// Online meetings by id.
    pub online_meetings: BTreeMap<String, OnlineMeeting>,
    /// Where every newly stored message is reported, if anyone listens
    /// ([`crate::TeamsSim::tap_posts`]).
    pub tap: Option<tokio::sync::mpsc::UnboundedSender<Posted>>,
}

/// A message the moment it was stored (for measurements, not a Graph API).
#[derive(Clone, Debug)]
pub struct Posted {
    /// Where.
    pub scope: Scope,
    /// Message id.
    pub id: String,
    /// Root id, for replies.
    pub reply_to: Option<String>,
    /// Author's user id (None for system messages).
    pub from: Option<String>,
    /// Body as stored.
    pub content: String,
    /// When it was stored.
    pub at: std::time::Instant,
}

impl State {
    /// An empty tenant.
    pub fn new(base: String) -> State {
        State {
            base,
            tenant_id: guid(),
            client_id: guid(),
            client_secret: format!("sim~{}", opaque(32)),
            app_name: "Switchboard".into(),
            app_roles: DEFAULT_APP_ROLES.iter().map(|s| (*s).to_string()).collect(),
            users: BTreeMap::new(),
            teams: BTreeMap::new(),
            chats: BTreeMap::new(),
            messages: BTreeMap::new(),
            last_id: 0,
            seq: 0,
            tokens: HashMap::new(),
            refresh: HashMap::new(),
            device_codes: HashMap::new(),
            cursors: HashMap::new(),
            subscriptions: BTreeMap::new(),
            calls: HashMap::new(),
            hosted_contents: BTreeMap::new(),
            online_meetings: BTreeMap::new(),
            tap: None,
        }
    }

    /// Finds a user by id or UPN (case-insensitive).
    pub fn resolve_user(&self, key: &str) -> Option<&User> {
        self.users.get(key).or_else(|| {
            self.users
                .values()
                .find(|u| u.upn.eq_ignore_ascii_case(key) || u.id.eq_ignore_ascii_case(key))
        })
    }

    fn resolve_user_id(&self, key: &str, what: &str) -> Result<String, SimError> {
        self.resolve_user(key)
            .map(|u| u.id.clone())
            .ok_or_else(|| SimError::NotFound(format!("{what}: no user {key:?}")))
    }

    /// Adds a user.
    pub fn add_user(&mut self, u: &crate::seed::UserSeed) -> Result<String, SimError> {
        use base64::Engine as _;
        let id = u.id.clone().unwrap_or_else(guid);
        if self.users.contains_key(&id) || self.resolve_user(&u.user_principal_name).is_some() {
            return Err(SimError::Invalid(format!(
                "duplicate user {:?}",
                u.user_principal_name
            )));
        }
        let photo = match &u.photo {
            Some(b) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .map_err(|e| SimError::Invalid(format!("user photo: {e}")))?,
            ),
            None => None,
        };
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                display_name: u.display_name.clone(),
                upn: u.user_principal_name.clone(),
                mail: u
                    .mail
                    .clone()
                    .unwrap_or_else(|| u.user_principal_name.clone()),
                photo,
            },
        );
        Ok(id)
    }

    /// Adds a team (with a General channel unless one is named so).
    pub fn add_team(&mut self, t: &crate::seed::TeamSeed) -> Result<String, SimError> {
        let id = t.id.clone().unwrap_or_else(guid);
        if self.teams.contains_key(&id) {
            return Err(SimError::Invalid(format!("duplicate team id {id:?}")));
        }
        let mut members: Vec<Member> = Vec::new();
        for o in &t.owners {
            let user = self.resolve_user_id(o, "team owner")?;
            members.push(Member { user, owner: true });
        }
        for m in &t.members {
            let user = self.resolve_user_id(m, "team member")?;
            if !members.iter().any(|x| x.user == user) {
                members.push(Member { user, owner: false });
            }
        }
        self.teams.insert(
            id.clone(),
            Team {
                id: id.clone(),
                display_name: t.display_name.clone(),
                description: t.description.clone(),
                members,
                channels: BTreeMap::new(),
            },
        );
        let mut chans = t.channels.clone();
        if !chans.iter().any(|c| c.display_name == "General") {
            chans.insert(
                0,
                crate::seed::ChannelSeed {
                    display_name: "General".into(),
                    ..Default::default()
                },
            );
        }
        for c in &chans {
            self.add_channel(&id, c)?;
        }
        Ok(id)
    }

    /// Adds a person to a team (or makes an existing member an owner).
    pub fn add_team_member(
        &mut self,
        team: &str,
        user: &str,
        owner: bool,
    ) -> Result<String, SimError> {
        let uid = self.resolve_user_id(user, "team member")?;
        let t = self
            .teams
            .get_mut(team)
            .ok_or_else(|| SimError::NotFound(format!("team {team:?}")))?;
        match t.members.iter_mut().find(|m| m.user == uid) {
            Some(m) => m.owner |= owner,
            None => t.members.push(Member {
                user: uid.clone(),
                owner,
            }),
        }
        Ok(uid)
    }

    /// Adds a channel to a team.
    pub fn add_channel(
        &mut self,
        team: &str,
        c: &crate::seed::ChannelSeed,
    ) -> Result<String, SimError> {
        let id =
            c.id.clone()
                .unwrap_or_else(|| format!("19:{}@thread.tacv2", hex(32)));
        let t = self
            .teams
            .get_mut(team)
            .ok_or_else(|| SimError::NotFound(format!("team {team:?}")))?;
        if t.channels.contains_key(&id)
            || t.channels
                .values()
                .any(|x| x.display_name == c.display_name)
        {
            return Err(SimError::Invalid(format!(
                "duplicate channel {:?}",
                c.display_name
            )));
        }
        t.channels.insert(
            id.clone(),
            Channel {
                id: id.clone(),
                display_name: c.display_name.clone(),
                description: c.description.clone(),
                created_ms: now_ms(),
            },
        );
        Ok(id)
    }

    /// Adds a chat.
    pub fn add_chat(&mut self, c: &crate::seed::ChatSeed) -> Result<String, SimError> {
        let mut members = Vec::new();
        for m in &c.members {
            members.push(self.resolve_user_id(m, "chat member")?);
        }
        let chat_type = c.chat_type.clone().unwrap_or_else(|| {
            if members.len() == 2 && c.topic.is_none() {
                "oneOnOne".into()
            } else {
                "group".into()
            }
        });
        if !["oneOnOne", "group", "meeting"].contains(&chat_type.as_str()) {
            return Err(SimError::Invalid(format!("chatType {chat_type:?}")));
        }
        if chat_type == "oneOnOne" && members.len() != 2 {
            return Err(SimError::Invalid(
                "a oneOnOne chat has exactly two members".into(),
            ));
        }
        let id =
            c.id.clone()
                .unwrap_or_else(|| match (chat_type.as_str(), &members[..]) {
                    ("oneOnOne", [a, b]) => format!("19:{a}_{b}@unq.gbl.spaces"),
                    _ => format!("19:{}@thread.v2", hex(32)),
                });
        if self.chats.contains_key(&id) {
            return Err(SimError::Invalid(format!("duplicate chat {id:?}")));
        }
        let now = now_ms();
        self.chats.insert(
            id.clone(),
            Chat {
                id: id.clone(),
                chat_type,
                topic: c.topic.clone(),
                members,
                created_ms: now,
                updated_ms: now,
            },
        );
        Ok(id)
    }

    /// Loads a seed; returns what it created.
    pub fn apply_seed(&mut self, seed: &Seed) -> Result<Seeded, SimError> {
        if let Some(t) = &seed.tenant_id {
            self.tenant_id = t.clone();
        }
        if let Some(c) = &seed.app.client_id {
            self.client_id = c.clone();
        }
        if let Some(c) = &seed.app.client_secret {
            self.client_secret = c.clone();
        }
        if let Some(n) = &seed.app.display_name {
            self.app_name = n.clone();
        }
        if let Some(r) = &seed.app.roles {
            self.app_roles = r.clone();
        }
        let mut out = Seeded {
            tenant_id: self.tenant_id.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            ..Seeded::default()
        };
        for u in &seed.users {
            let id = self.add_user(u)?;
            out.users.insert(u.user_principal_name.clone(), id);
        }
        for t in &seed.teams {
            let id = self.add_team(t)?;
            out.teams.insert(t.display_name.clone(), id.clone());
            if let Some(team) = self.teams.get(&id) {
                for c in team.channels.values() {
                    out.channels.insert(
                        format!("{}/{}", t.display_name, c.display_name),
                        (id.clone(), c.id.clone()),
                    );
                }
            }
        }
        for c in &seed.chats {
            let id = self.add_chat(c)?;
            let name = c
                .name
                .clone()
                .or_else(|| c.topic.clone())
                .unwrap_or_else(|| id.clone());
            out.chats.insert(name, id);
        }
        Ok(out)
    }

    /// A new message id: the current millisecond, bumped to stay unique and increasing.
    pub fn next_id(&mut self) -> u64 {
        let id = now_ms().max(self.last_id + 1);
        self.last_id = id;
        id
    }

    /// The next change sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The one-on-one chat of users `a` and `b` (ids), if they have one.
    pub fn one_on_one(&self, a: &str, b: &str) -> Option<&Chat> {
        self.chats.values().find(|c| {
            c.chat_type == "oneOnOne"
                && c.members.len() == 2
                && c.members.iter().any(|m| m == a)
                && c.members.iter().any(|m| m == b)
        })
    }

    /// The newest message of a chat.
    pub fn last_message_in(&self, chat: &str) -> Option<&Message> {
        self.messages
            .values()
            .rev()
            .find(|m| matches!(&m.scope, Scope::Chat { chat: c } if c == chat))
    }

    /// Is `user` allowed into this scope (team member or chat member)?
    pub fn can_access(&self, user: &str, scope: &Scope) -> bool {
        match scope {
            Scope::Channel { team, .. } => self
                .teams
                .get(team)
                .is_some_and(|t| t.members.iter().any(|m| m.user == user)),
            Scope::Chat { chat } => self
                .chats
                .get(chat)
                .is_some_and(|c| c.members.iter().any(|m| m == user)),
        }
    }

    /// Does the scope exist?
    pub fn scope_exists(&self, scope: &Scope) -> bool {
        match scope {
            Scope::Channel { team, channel } => self
                .teams
                .get(team)
                .is_some_and(|t| t.channels.contains_key(channel)),
            Scope::Chat { chat } => self.chats.contains_key(chat),
        }
    }

    /// Finds a message in a scope (and, for replies, under `parent`).
    pub fn find(&self, scope: &Scope, id: &str, parent: Option<&str>) -> Option<&Message> {
        let n: u64 = id.parse().ok()?;
        let m = self.messages.get(&n)?;
        (m.scope == *scope && m.reply_to.as_deref() == parent).then_some(m)
    }

    /// Mutable [`State::find`].
    pub fn find_mut(
        &mut self,
        scope: &Scope,
        id: &str,
        parent: Option<&str>,
    ) -> Option<&mut Message> {
        let n: u64 = id.parse().ok()?;
        let m = self.messages.get_mut(&n)?;
        (m.scope == *scope && m.reply_to.as_deref() == parent).then_some(m)
    }

    /// Stores a new message and returns the change to notify.
    #[allow(clippy::too_many_arguments)]
    pub fn insert_message(
        &mut self,
        scope: Scope,
        reply_to: Option<String>,
        from: Option<String>,
        message_type: &str,
        content_type: &str,
        content: String,
        subject: Option<String>,
        attachments: Value,
        mentions: Value,
        event_detail: Option<Value>,
        importance: Option<String>,
    ) -> (String, Change) {
        let n = self.next_id();
        let seq = self.next_seq();
        let id = n.to_string();
        if let Some(tap) = &self.tap {
            let posted = Posted {
                scope: scope.clone(),
                id: id.clone(),
                reply_to: reply_to.clone(),
                from: from.clone(),
                content: content.clone(),
                at: std::time::Instant::now(),
            };
            if tap.send(posted).is_err() {
                self.tap = None;
            }
        }
        self.messages.insert(
            n,
            Message {
                id: id.clone(),
                reply_to: reply_to.clone(),
                scope: scope.clone(),
                message_type: message_type.into(),
                created_ms: n,
                modified_ms: n,
                edited_ms: None,
                deleted_ms: None,
                subject,
                content_type: content_type.into(),
                content,
                from,
                attachments,
                mentions,
                reactions: Vec::new(),
                event_detail,
                importance: importance.unwrap_or_else(|| "normal".into()),
                seq,
            },
        );
        // A reply changes its root (delta reports the root again).
        if let Some(root) = reply_to.as_deref().and_then(|r| r.parse::<u64>().ok()) {
            let s = self.next_seq();
            if let Some(r) = self.messages.get_mut(&root) {
                r.seq = s;
            }
        }
        if let Scope::Chat { chat } = &scope
            && let Some(c) = self.chats.get_mut(chat)
        {
            c.updated_ms = n;
        }
        (
            id.clone(),
            Change {
                change_type: "created",
                scope,
                id,
                reply_to,
            },
        )
    }

    /// Marks a message changed (modified time, etag, delta sequence).
    pub fn touch(&mut self, n: u64) {
        let seq = self.next_seq();
        let now = now_ms();
        if let Some(m) = self.messages.get_mut(&n) {
            m.modified_ms = now.max(m.modified_ms + 1);
            m.seq = seq;
        }
    }

    /// `{"user":{"id","displayName","userIdentityType":"aadUser"}}` identity set.
    pub fn identity(&self, user: &str) -> Value {
        json!({
            "application": null,
            "device": null,
            "user": {
                "id": user,
                "displayName": self.users.get(user).map(|u| u.display_name.clone()),
                "userIdentityType": "aadUser",
            }
        })
    }

    /// A chatMessage as Graph renders it. Without `include_unknown` (the caller's
    /// `Prefer: include-unknown-enum-members`), `systemEventMessage` — an evolvable enum
    /// member — is rendered as `unknownFutureValue`, as Graph does
    /// (<https://learn.microsoft.com/graph/best-practices-concept#handling-future-members-in-evolvable-enumerations>).
    pub fn render_message(&self, m: &Message, include_unknown: bool) -> Value {
        let (channel_identity, chat_id, web_url) = match &m.scope {
            Scope::Channel { team, channel } => (
                json!({"teamId": team, "channelId": channel}),
                Value::Null,
                json!(format!(
                    "https://teams.microsoft.com/l/message/{}/{}?groupId={}&tenantId={}&createdTime={}&parentMessageId={}",
                    pct(channel),
                    m.id,
                    team,
                    self.tenant_id,
                    m.id,
                    m.reply_to.as_deref().unwrap_or(&m.id)
                )),
            ),
            Scope::Chat { chat } => (Value::Null, json!(chat), Value::Null),
        };
        let deleted = m.deleted_ms.is_some();
        let from = match &m.from {
            Some(u) => {
                let mut v = self.identity(u);
                if let Some(o) = v.as_object_mut() {
                    o.insert("conversation".into(), Value::Null);
                }
                v
            }
            None => Value::Null,
        };
        json!({
            "id": m.id,
            "replyToId": m.reply_to,
            "etag": m.modified_ms.to_string(),
            "messageType": if m.message_type == "systemEventMessage" && !include_unknown {
                "unknownFutureValue"
            } else {
                m.message_type.as_str()
            },
            "createdDateTime": iso_ms(m.created_ms),
            "lastModifiedDateTime": iso_ms(m.modified_ms),
            "lastEditedDateTime": m.edited_ms.map(iso_ms),
            "deletedDateTime": m.deleted_ms.map(iso_ms),
            "subject": m.subject,
            "summary": null,
            "chatId": chat_id,
            "importance": m.importance,
            "locale": "en-us",
            "webUrl": web_url,
            "channelIdentity": channel_identity,
            "policyViolation": null,
            "eventDetail": m.event_detail,
            "from": from,
            "body": {
                "contentType": m.content_type,
                "content": if deleted { "" } else { m.content.as_str() },
            },
            "attachments": if deleted { json!([]) } else { m.attachments.clone() },
            "mentions": if deleted { json!([]) } else { m.mentions.clone() },
            "reactions": m.reactions.iter().map(|r| json!({
                "reactionType": r.reaction_type,
                "displayName": null,
                "reactionContentUrl": null,
                "createdDateTime": iso_ms(r.created_ms),
                "user": self.identity(&r.user),
            })).collect::<Vec<_>>(),
        })
    }

    /// A user as `GET /users/{id}` renders it.
    pub fn render_user(&self, u: &User) -> Value {
        json!({
            "businessPhones": [],
            "displayName": u.display_name,
            "givenName": u.display_name.split_whitespace().next(),
            "jobTitle": null,
            "mail": u.mail,
            "mobilePhone": null,
            "officeLocation": null,
            "preferredLanguage": "en-US",
            "surname": u.display_name.split_whitespace().nth(1),
            "userPrincipalName": u.upn,
            "id": u.id,
        })
    }

    /// A channel.
    pub fn render_channel(&self, team: &str, c: &Channel) -> Value {
        json!({
            "id": c.id,
            "createdDateTime": iso_ms(c.created_ms),
            "displayName": c.display_name,
            "description": c.description,
            "isFavoriteByDefault": null,
            "email": "",
            "tenantId": self.tenant_id,
            "webUrl": format!(
                "https://teams.microsoft.com/l/channel/{}/{}?groupId={}&tenantId={}",
                pct(&c.id), pct(&c.display_name), team, self.tenant_id
            ),
            "membershipType": "standard",
        })
    }

    /// A conversation member (`aadUserConversationMember`).
    pub fn render_member(&self, scope_id: &str, user: &str, owner: bool) -> Value {
        use base64::Engine as _;
        let u = self.users.get(user);
        json!({
            "@odata.type": "#microsoft.graph.aadUserConversationMember",
            "id": base64::engine::general_purpose::STANDARD.encode(format!("{scope_id}##{user}")),
            "roles": if owner { vec!["owner"] } else { Vec::new() },
            "displayName": u.map(|u| u.display_name.clone()),
            "visibleHistoryStartDateTime": "0001-01-01T00:00:00Z",
            "userId": user,
            "email": u.map(|u| u.mail.clone()),
            "tenantId": self.tenant_id,
        })
    }

    /// A team.
    pub fn render_team(&self, t: &Team) -> Value {
        json!({
            "id": t.id,
            "createdDateTime": null,
            "displayName": t.display_name,
            "description": t.description,
            "internalId": format!("19:{}@thread.tacv2", t.id.replace('-', "")),
            "classification": null,
            "specialization": "none",
            "visibility": "private",
            "webUrl": format!("https://teams.microsoft.com/l/team/{}/conversations?groupId={}&tenantId={}",
                pct(&format!("19:{}@thread.tacv2", t.id.replace('-', ""))), t.id, self.tenant_id),
            "isArchived": false,
            "tenantId": self.tenant_id,
            "memberSettings": {
                "allowCreateUpdateChannels": true, "allowDeleteChannels": true,
                "allowAddRemoveApps": true, "allowCreateUpdateRemoveTabs": true,
                "allowCreateUpdateRemoveConnectors": true,
            },
            "guestSettings": {"allowCreateUpdateChannels": false, "allowDeleteChannels": false},
            "messagingSettings": {
                "allowUserEditMessages": true, "allowUserDeleteMessages": true,
                "allowOwnerDeleteMessages": true, "allowTeamMentions": true,
                "allowChannelMentions": true,
            },
            "funSettings": {
                "allowGiphy": true, "giphyContentRating": "moderate",
                "allowStickersAndMemes": true, "allowCustomMemes": true,
            },
            "discoverySettings": {"showInTeamsSearchAndSuggestions": true},
        })
    }

    /// A chat.
    pub fn render_chat(&self, c: &Chat) -> Value {
        json!({
            "id": c.id,
            "topic": c.topic,
            "createdDateTime": iso_ms(c.created_ms),
            "lastUpdatedDateTime": iso_ms(c.updated_ms),
            "chatType": c.chat_type,
            "webUrl": format!("https://teams.microsoft.com/l/chat/{}/0?tenantId={}", pct(&c.id), self.tenant_id),
            "tenantId": self.tenant_id,
        })
    }

    /// The Graph resource path of a message, as notifications name it.
    pub fn resource_of(scope: &Scope, id: &str, reply_to: Option<&str>) -> String {
        match (scope, reply_to) {
            (Scope::Channel { team, channel }, None) => {
                format!("teams('{team}')/channels('{channel}')/messages('{id}')")
            }
            (Scope::Channel { team, channel }, Some(root)) => {
                format!("teams('{team}')/channels('{channel}')/messages('{root}')/replies('{id}')")
            }
            (Scope::Chat { chat }, _) => format!("chats('{chat}')/messages('{id}')"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_increasing() {
        let mut st = State::new("http://x".into());
        let ids: Vec<u64> = (0..100).map(|_| st.next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn resources_name_replies_under_their_root() {
        let s = Scope::Channel {
            team: "t".into(),
            channel: "19:c@thread.tacv2".into(),
        };
        assert_eq!(
            State::resource_of(&s, "2", Some("1")),
            "teams('t')/channels('19:c@thread.tacv2')/messages('1')/replies('2')"
        );
        let c = Scope::Chat {
            chat: "19:x@thread.v2".into(),
        };
        assert_eq!(
            State::resource_of(&c, "5", None),
            "chats('19:x@thread.v2')/messages('5')"
        );
    }

    #[test]
    fn one_on_one_chat_ids_follow_graph() {
        let mut st = State::new("http://x".into());
        for (id, upn) in [("a", "a@x"), ("b", "b@x")] {
            st.add_user(&crate::seed::UserSeed {
                id: Some(id.into()),
                display_name: id.into(),
                user_principal_name: upn.into(),
                ..Default::default()
            })
            .expect("user");
        }
        let id = st
            .add_chat(&crate::seed::ChatSeed {
                members: vec!["a@x".into(), "b".into()],
                ..Default::default()
            })
            .expect("chat");
        assert_eq!(id, "19:a_b@unq.gbl.spaces");
    }
}
