//! The workspace state: team, people, conversations, messages, tokens, files, calls, huddles —
//! and the operations that change it the way Slack changes it (posting, threading, editing,
//! deleting with tombstones, reactions, joins), each queuing the events Slack would send.
//!
//! Object shapes follow <https://docs.slack.dev/reference/objects/conversation-object>,
//! <https://docs.slack.dev/reference/objects/user-object> and the message event pages under
//! <https://docs.slack.dev/reference/events/message>; rendering to JSON lives in
//! [`crate::render`], so this module stays about *what* is stored.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::events::Emit;
use crate::ids::{Clock, Ts, now_secs, slack_id, uuid_v4};
use crate::render;
use crate::richtext;

/// Slackbot's fixed user id, author of huddle threads and tombstones.
pub const SLACKBOT: &str = "USLACKBOT";

/// The workspace (`team.info`).
#[derive(Clone, Debug)]
pub struct Team {
    /// `T…` id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Subdomain.
    pub domain: String,
    /// Email domain.
    pub email_domain: String,
}

/// A person, a bot user, or Slackbot.
#[derive(Clone, Debug)]
pub struct User {
    /// `U…` id.
    pub id: String,
    /// Handle.
    pub name: String,
    /// Full name.
    pub real_name: String,
    /// Display name (often empty).
    pub display_name: String,
    /// Avatar URL, if the person set one.
    pub avatar_url: Option<String>,
    /// Email address.
    pub email: String,
    /// A bot user.
    pub is_bot: bool,
    /// Deactivated.
    pub deleted: bool,
    /// Workspace admin.
    pub is_admin: bool,
    /// IANA time zone.
    pub tz: String,
    /// Six hex digits.
    pub color: String,
    /// Last profile change (unix seconds).
    pub updated: i64,
    /// For bot users: the `B…` id.
    pub bot_id: Option<String>,
    /// For app bot users: the app id.
    pub app_id: Option<String>,
    /// Huddle presence: (call id, expiration) while in a huddle.
    pub huddle: Option<(String, i64)>,
}

/// The four conversation types of `conversations.list`'s `types` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `public_channel`.
    Public,
    /// `private_channel`.
    Private,
    /// `im` (a DM between two members).
    Im,
    /// `mpim` (a group DM).
    Mpim,
}

impl Kind {
    /// `channel_type` as message events spell it.
    pub fn channel_type(self) -> &'static str {
        match self {
            Kind::Public => "channel",
            Kind::Private => "group",
            Kind::Im => "im",
            Kind::Mpim => "mpim",
        }
    }

    /// The scope prefix that guards this type (`channels`, `groups`, `im`, `mpim`).
    pub fn scope_prefix(self) -> &'static str {
        match self {
            Kind::Public => "channels",
            Kind::Private => "groups",
            Kind::Im => "im",
            Kind::Mpim => "mpim",
        }
    }

    /// The `types` token of `conversations.list`.
    pub fn list_type(self) -> &'static str {
        match self {
            Kind::Public => "public_channel",
            Kind::Private => "private_channel",
            Kind::Im => "im",
            Kind::Mpim => "mpim",
        }
    }
}

/// Topic or purpose.
#[derive(Clone, Debug, Default)]
pub struct Topic {
    /// Text.
    pub value: String,
    /// Who set it (user id or empty).
    pub creator: String,
    /// When (unix seconds, 0 if never).
    pub last_set: i64,
}

/// A conversation and its messages.
#[derive(Clone, Debug)]
pub struct Channel {
    /// `C…`, `G…` or `D…` id.
    pub id: String,
    /// Name (`mpdm-a--b-1` for group DMs, empty for DMs).
    pub name: String,
    /// Conversation type.
    pub kind: Kind,
    /// Creation time (unix seconds).
    pub created: i64,
    /// Creator's user id.
    pub creator: String,
    /// Members in join order.
    pub members: Vec<String>,
    /// Archived.
    pub archived: bool,
    /// `#general`.
    pub is_general: bool,
    /// Topic.
    pub topic: Topic,
    /// Purpose.
    pub purpose: Topic,
    /// Former names, newest first.
    pub previous_names: Vec<String>,
    /// Last change (unix milliseconds, as Slack reports `updated`).
    pub updated_ms: i64,
    /// Messages by `ts` (top-level messages, replies and tombstones alike).
    pub messages: BTreeMap<Ts, Message>,
}

impl Channel {
    /// Whether `user` is a member.
    pub fn is_member(&self, user: &str) -> bool {
        self.members.iter().any(|m| m == user)
    }
}

/// Who wrote a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Author {
    /// A person (or a bot user posting with a user token).
    User(String),
    /// The app's bot, optionally with a per-message name and icon (`chat:write.customize`).
    Bot {
        /// `username` override.
        username: Option<String>,
        /// `icons` override (`{"emoji": …}` or `{"image_64": …}`).
        icons: Option<Map<String, Value>>,
    },
    /// Slackbot (huddle threads, tombstones).
    Slackbot,
}

/// A reaction on a message.
#[derive(Clone, Debug)]
pub struct Reaction {
    /// Emoji name without colons.
    pub name: String,
    /// Who reacted, in order.
    pub users: Vec<String>,
}

/// A stored message.
#[derive(Clone, Debug)]
pub struct Message {
    /// Its id within the channel.
    pub ts: Ts,
    /// Author.
    pub author: Author,
    /// `subtype` (`bot_message`, `thread_broadcast`, `file_share`, `huddle_thread`,
    /// `channel_join`, `tombstone`), if any.
    pub subtype: Option<String>,
    /// Text as stored.
    pub text: String,
    /// Blocks as stored (caller-given, or generated rich_text mirroring `text`).
    pub blocks: Option<Vec<Value>>,
    /// Legacy attachments.
    pub attachments: Option<Value>,
    /// Client message id.
    pub client_msg_id: Option<String>,
    /// Thread this message belongs to (parent's ts; equals `ts` on a parent with replies).
    pub thread_ts: Option<Ts>,
    /// Author of the thread parent (replies only).
    pub parent_user_id: Option<String>,
    /// Replies (ts, author user id), for thread parents.
    pub replies: Vec<(Ts, String)>,
    /// Last edit: (editor, edit time).
    pub edited: Option<(String, Ts)>,
    /// Reactions in order of first use.
    pub reactions: Vec<Reaction>,
    /// Attached file ids.
    pub files: Vec<String>,
    /// `metadata` (`event_type` + `event_payload`).
    pub metadata: Option<Value>,
    /// Huddle (room) id for `huddle_thread` messages.
    pub room: Option<String>,
    /// Inviter of a `channel_join` message.
    pub inviter: Option<String>,
}

impl Message {
    /// The user id Slack puts in `user` / `item_user` / `parent_user_id` for this author.
    pub fn author_user(&self, app: &App) -> String {
        match &self.author {
            Author::User(u) => u.clone(),
            Author::Bot { .. } => app.bot_user_id.clone(),
            Author::Slackbot => SLACKBOT.to_string(),
        }
    }

    /// Is this a reply inside a thread (not the parent)?
    pub fn is_reply(&self) -> bool {
        self.thread_ts.is_some_and(|t| t != self.ts)
    }
}

/// The installed app.
#[derive(Clone, Debug)]
pub struct App {
    /// `A…` id.
    pub id: String,
    /// Name.
    pub name: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Signing secret for Events API requests.
    pub signing_secret: String,
    /// Verification token placed in event payloads.
    pub verification_token: String,
    /// The bot user's id.
    pub bot_user_id: String,
    /// The bot's `B…` id.
    pub bot_id: String,
    /// Allowed OAuth redirect URLs (any when empty).
    pub redirect_urls: Vec<String>,
    /// Subscribed event names; all when `None`.
    pub bot_events: Option<Vec<String>>,
    /// Declared slash commands (`/switchboard`), lower case.
    pub slash_commands: Vec<String>,
    /// Default user scopes for seeded user tokens.
    pub user_scopes: Vec<String>,
    /// When the bot profile last changed.
    pub updated: i64,
}

/// Whom a token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The app's bot user (`xoxb-`).
    Bot,
    /// A person (`xoxp-`).
    User(String),
    /// The app itself (`xapp-`): only Socket Mode and `auth.test`.
    App,
}

/// An issued token.
#[derive(Clone, Debug)]
pub struct Token {
    /// Whom it speaks for.
    pub principal: Principal,
    /// Granted scopes, sorted.
    pub scopes: Vec<String>,
    /// Revoked tokens answer `token_revoked`.
    pub revoked: bool,
}

/// An uploaded (or uploading) file.
#[derive(Clone, Debug)]
pub struct File {
    /// `F…` id.
    pub id: String,
    /// File name.
    pub name: String,
    /// Title.
    pub title: String,
    /// Declared length (files.getUploadURLExternal).
    pub declared_len: u64,
    /// Bytes received at the upload URL.
    pub bytes: Option<Vec<u8>>,
    /// Owner.
    pub user: String,
    /// Creation (unix seconds).
    pub created: i64,
    /// Completed with files.completeUploadExternal.
    pub completed: bool,
    /// Channels it was shared to, with the share message ts.
    pub shares: Vec<(String, Ts)>,
    /// Screen-reader text.
    pub alt_txt: Option<String>,
    /// Snippet type.
    pub snippet_type: Option<String>,
}

/// A call registered with `calls.add` (<https://docs.slack.dev/reference/methods/calls.add>).
#[derive(Clone, Debug)]
pub struct Call {
    /// `R…` id.
    pub id: String,
    /// Provider's id.
    pub external_unique_id: String,
    /// Provider's display id.
    pub external_display_id: Option<String>,
    /// Join URL.
    pub join_url: String,
    /// Desktop join URL.
    pub desktop_app_join_url: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Creator user id.
    pub created_by: String,
    /// Start (unix seconds).
    pub date_start: i64,
    /// End (unix seconds), once ended.
    pub date_end: Option<i64>,
    /// Current participants (`{slack_id}` or `{external_id, display_name, avatar_url}`).
    pub users: Vec<Value>,
    /// Everyone who ever took part.
    pub all_users: Vec<Value>,
    /// Channels where a call block shows it.
    pub channels: Vec<String>,
}

/// A huddle in a channel (no public API; driven through the admin API).
#[derive(Clone, Debug)]
pub struct Huddle {
    /// `R…` id.
    pub id: String,
    /// Channel.
    pub channel: String,
    /// The `huddle_thread` message's ts.
    pub ts: Ts,
    /// Who started it.
    pub created_by: String,
    /// Start (unix seconds).
    pub date_start: i64,
    /// End (unix seconds), 0 while live.
    pub date_end: i64,
    /// People in it now.
    pub participants: Vec<String>,
    /// Everyone who joined.
    pub history: Vec<String>,
    /// External id.
    pub external_unique_id: String,
}

/// A pending OAuth grant (authorization code).
#[derive(Clone, Debug)]
pub struct Grant {
    /// The approving person.
    pub user: String,
    /// Bot scopes requested.
    pub scope: Vec<String>,
    /// User scopes requested.
    pub user_scope: Vec<String>,
    /// Redirect URI given to authorize (must match at exchange).
    pub redirect_uri: Option<String>,
    /// Expiry (unix seconds).
    pub expires: i64,
}

/// A message to post.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Author.
    pub author: Author,
    /// Text.
    pub text: String,
    /// Blocks; `None` generates a rich_text block mirroring `text`.
    pub blocks: Option<Vec<Value>>,
    /// Attachments.
    pub attachments: Option<Value>,
    /// Thread to reply in.
    pub thread_ts: Option<Ts>,
    /// Also show the reply in the channel (`thread_broadcast`).
    pub broadcast: bool,
    /// Client message id.
    pub client_msg_id: Option<String>,
    /// Metadata.
    pub metadata: Option<Value>,
    /// Files (for `file_share`).
    pub files: Vec<String>,
    /// Explicit subtype (`file_share`, `channel_join`, `huddle_thread`).
    pub subtype: Option<String>,
    /// Huddle id.
    pub room: Option<String>,
    /// Inviter (`channel_join`).
    pub inviter: Option<String>,
}

impl NewMessage {
    /// A plain text message by `author`.
    pub fn text(author: Author, text: impl Into<String>) -> Self {
        NewMessage {
            author,
            text: text.into(),
            blocks: None,
            attachments: None,
            thread_ts: None,
            broadcast: false,
            client_msg_id: None,
            metadata: None,
            files: Vec::new(),
            subtype: None,
            room: None,
            inviter: None,
        }
    }
}

/// The whole workspace.
#[derive(Debug)]
pub struct State {
    /// The workspace.
    pub team: Team,
    /// The installed app.
    pub app: App,
    /// Users in creation order (Slackbot first).
    pub users: Vec<User>,
    /// Conversations in creation order.
    pub channels: Vec<Channel>,
    /// Tokens by value.
    pub tokens: HashMap<String, Token>,
    /// Files by id.
    pub files: HashMap<String, File>,
    /// Upload tickets (the path part of `upload_url`) to file ids.
    pub uploads: HashMap<String, String>,
    /// Calls by id.
    pub calls: HashMap<String, Call>,
    /// Huddles by id.
    pub huddles: HashMap<String, Huddle>,
    /// OAuth codes.
    pub grants: HashMap<String, Grant>,
    /// One-time Socket Mode tickets (ticket → expiry, unix seconds).
    pub tickets: HashMap<String, i64>,
    /// The ts clock.
    pub clock: Clock,
    /// `http://127.0.0.1:PORT`, for URLs the API hands out.
    pub base_url: String,
    /// Where every newly stored message is reported, if anyone listens
    /// ([`crate::SlackSim::tap_posts`]).
    pub tap: Option<tokio::sync::mpsc::UnboundedSender<Posted>>,
}

/// A message the moment it was stored (for measurements, not a Slack API).
#[derive(Clone, Debug)]
pub struct Posted {
    /// Channel id.
    pub channel: String,
    /// The message's ts.
    pub ts: Ts,
    /// Its text as stored.
    pub text: String,
    /// Posted by the app's bot (rather than by a person).
    pub by_app: bool,
    /// When it was stored.
    pub at: std::time::Instant,
}

impl State {
    /// An empty workspace with a default team and app (seeding fills it in).
    pub fn new(base_url: String) -> Self {
        let now = now_secs();
        let bot_user_id = slack_id("U");
        let app = App {
            id: slack_id("A"),
            name: "Switchboard".into(),
            client_id: format!(
                "{}.{}",
                fastrand::u64(1_000_000_000..9_999_999_999),
                fastrand::u64(1_000_000_000..9_999_999_999)
            ),
            client_secret: crate::ids::random_hex(32),
            signing_secret: crate::ids::random_hex(32),
            verification_token: crate::ids::random_lower(24),
            bot_user_id,
            bot_id: slack_id("B"),
            redirect_urls: Vec::new(),
            bot_events: None,
            slash_commands: Vec::new(),
            user_scopes: crate::seed::DEFAULT_USER_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            updated: now,
        };
        let team = Team {
            id: slack_id("T"),
            name: "Simulated Workspace".into(),
            domain: "sim".into(),
            email_domain: "sim.example.com".into(),
        };
        let slackbot = User {
            id: SLACKBOT.into(),
            name: "slackbot".into(),
            real_name: "Slackbot".into(),
            display_name: "Slackbot".into(),
            avatar_url: None,
            email: String::new(),
            is_bot: false,
            deleted: false,
            is_admin: false,
            tz: "America/Los_Angeles".into(),
            color: "757575".into(),
            updated: now,
            bot_id: None,
            app_id: None,
            huddle: None,
        };
        State {
            team,
            app,
            users: vec![slackbot],
            channels: Vec::new(),
            tokens: HashMap::new(),
            files: HashMap::new(),
            uploads: HashMap::new(),
            calls: HashMap::new(),
            huddles: HashMap::new(),
            grants: HashMap::new(),
            tickets: HashMap::new(),
            clock: Clock::default(),
            base_url,
            tap: None,
        }
    }

    /// Queues an event, deciding now (as Slack does, at the moment it happens) whether the
    /// app receives it: subscription, scope and the bot's membership at this instant.
    pub fn emit(&self, out: &mut Vec<Emit>, mut e: Emit) {
        e.visible = crate::events::app_receives(self, &e);
        out.push(e);
    }

    // ---------------------------------------------------------------- lookups

    /// A user by id.
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// A user by id, mutable.
    pub fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.id == id)
    }

    /// A user by id or handle (`"@bot"` is the app's bot user).
    pub fn resolve_user(&self, key: &str) -> Option<&User> {
        if key == "@bot" {
            return self.user(&self.app.bot_user_id);
        }
        self.user(key)
            .or_else(|| self.users.iter().find(|u| u.name == key))
    }

    /// A conversation by id.
    pub fn channel(&self, id: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }

    /// A conversation by id, mutable.
    pub fn channel_mut(&mut self, id: &str) -> Option<&mut Channel> {
        self.channels.iter_mut().find(|c| c.id == id)
    }

    /// A channel by id, `name` or `#name`.
    pub fn resolve_channel(&self, key: &str) -> Option<&Channel> {
        let name = key.strip_prefix('#').unwrap_or(key);
        self.channel(key).or_else(|| {
            self.channels
                .iter()
                .find(|c| matches!(c.kind, Kind::Public | Kind::Private) && c.name == name)
        })
    }

    /// Whether a user id is taken.
    pub fn user_exists(&self, id: &str) -> bool {
        self.user(id).is_some()
    }

    // ---------------------------------------------------------------- people and channels

    /// Adds a user and queues `team_join`-less creation (Slack sends `team_join` only to
    /// apps subscribed to it; the simulator sends `user_change` for profile updates only).
    pub fn add_user(&mut self, u: User) -> String {
        let id = u.id.clone();
        self.users.push(u);
        id
    }

    /// Creates a channel; queues `channel_created` for public channels, and the joins.
    pub fn add_channel(
        &mut self,
        mut ch: Channel,
        members: &[String],
        out: &mut Vec<Emit>,
    ) -> String {
        let id = ch.id.clone();
        let creator = ch.creator.clone();
        ch.members.clear();
        let kind = ch.kind;
        self.channels.push(ch);
        if kind == Kind::Public {
            let ch = self.channel(&id).expect("just inserted");
            let mut obj = Map::new();
            obj.insert("id".into(), json!(ch.id));
            obj.insert("is_channel".into(), json!(true));
            obj.insert("name".into(), json!(ch.name));
            obj.insert("name_normalized".into(), json!(ch.name));
            obj.insert("created".into(), json!(ch.created));
            obj.insert("creator".into(), json!(ch.creator));
            obj.insert("is_shared".into(), json!(false));
            obj.insert("is_org_shared".into(), json!(false));
            obj.insert("context_team_id".into(), json!(self.team.id));
            let ev_ts = self.clock.next();
            self.emit(out, Emit::team(
                "channel_created",
                Some("channels:read"),
                json!({"type": "channel_created", "channel": obj, "event_ts": ev_ts.to_string()}),
            ));
        }
        for m in members {
            let inviter = if *m == creator {
                None
            } else {
                Some(creator.as_str())
            };
            let inviter = inviter.map(str::to_string);
            self.join(&id, m, inviter.as_deref(), out);
        }
        id
    }

    /// Adds `user` to a channel: the `channel_join` message and `member_joined_channel`.
    /// Returns false when already a member (nothing happens, as Slack's `already_in_channel`).
    pub fn join(
        &mut self,
        channel: &str,
        user: &str,
        inviter: Option<&str>,
        out: &mut Vec<Emit>,
    ) -> bool {
        let team = self.team.id.clone();
        let Some(ch) = self.channel_mut(channel) else {
            return false;
        };
        if ch.is_member(user) {
            return false;
        }
        ch.members.push(user.to_string());
        ch.updated_ms = crate::ids::now_micros() as i64 / 1000;
        let kind = ch.kind;
        if matches!(kind, Kind::Im) {
            return true;
        }
        let mut nm = NewMessage::text(
            Author::User(user.to_string()),
            format!("<@{user}> has joined the channel"),
        );
        nm.subtype = Some("channel_join".into());
        nm.inviter = inviter.map(str::to_string);
        nm.blocks = Some(Vec::new());
        self.post(channel, nm, out);
        // As in every sample of this event (docs, SDK tests): no event_ts.
        let mut ev = json!({
            "type": "member_joined_channel",
            "user": user,
            "channel": channel,
            "channel_type": if kind == Kind::Public { "C" } else { "G" },
            "team": team,
        });
        if let Some(inv) = inviter {
            ev["inviter"] = json!(inv);
        }
        let scope = if kind == Kind::Public {
            "channels:read"
        } else {
            "groups:read"
        };
        self.emit(
            out,
            Emit::channel("member_joined_channel", Some(scope), channel, ev),
        );
        true
    }

    /// Removes `user` from a channel (`member_left_channel`).
    pub fn leave(&mut self, channel: &str, user: &str, out: &mut Vec<Emit>) -> bool {
        let team = self.team.id.clone();
        let Some(ch) = self.channel_mut(channel) else {
            return false;
        };
        let Some(pos) = ch.members.iter().position(|m| m == user) else {
            return false;
        };
        let kind = ch.kind;
        // Delivered before removal so that the app still "sees" the channel when it is the one leaving.
        let ev = json!({
            "type": "member_left_channel",
            "user": user,
            "channel": channel,
            "channel_type": if kind == Kind::Public { "C" } else { "G" },
            "team": team,
        });
        let scope = if kind == Kind::Public {
            "channels:read"
        } else {
            "groups:read"
        };
        self.emit(
            out,
            Emit::channel("member_left_channel", Some(scope), channel, ev),
        );
        if let Some(ch) = self.channel_mut(channel) {
            ch.members.remove(pos);
        }
        true
    }

    /// Renames a channel (`channel_rename`).
    pub fn rename(&mut self, channel: &str, name: &str, out: &mut Vec<Emit>) -> bool {
        let ev_ts = self.clock.next();
        let Some(ch) = self.channel_mut(channel) else {
            return false;
        };
        let old = std::mem::replace(&mut ch.name, name.to_string());
        ch.previous_names.insert(0, old);
        ch.updated_ms = crate::ids::now_micros() as i64 / 1000;
        let ev = json!({
            "type": "channel_rename",
            "channel": {
                "id": ch.id,
                "is_channel": ch.kind == Kind::Public,
                "is_mpim": false,
                "name": ch.name,
                "name_normalized": ch.name,
                "created": ch.created,
            },
            "event_ts": ev_ts.to_string(),
        });
        let scope = if ch.kind == Kind::Public {
            "channels:read"
        } else {
            "groups:read"
        };
        let kind = ch.kind;
        if kind == Kind::Public {
            self.emit(out, Emit::team("channel_rename", Some(scope), ev));
        } else {
            self.emit(out, Emit::channel("group_rename", Some(scope), channel, ev));
        }
        true
    }

    /// Finds or creates the DM between two users.
    pub fn open_im(&mut self, a: &str, b: &str) -> (String, bool) {
        if let Some(ch) = self.channels.iter().find(|c| {
            c.kind == Kind::Im
                && ((c.members.len() == 2 && c.is_member(a) && c.is_member(b))
                    || (a == b && c.members.len() == 1 && c.is_member(a)))
        }) {
            return (ch.id.clone(), true);
        }
        let id = slack_id("D");
        let mut members = vec![a.to_string()];
        if a != b {
            members.push(b.to_string());
        }
        self.channels.push(Channel {
            id: id.clone(),
            name: String::new(),
            kind: Kind::Im,
            created: now_secs(),
            creator: a.to_string(),
            members,
            archived: false,
            is_general: false,
            topic: Topic::default(),
            purpose: Topic::default(),
            previous_names: Vec::new(),
            updated_ms: crate::ids::now_micros() as i64 / 1000,
            messages: BTreeMap::new(),
        });
        (id, false)
    }

    /// Finds or creates the group DM among `users` (creator first).
    pub fn open_mpim(&mut self, users: &[String]) -> (String, bool) {
        let mut want: Vec<&String> = users.iter().collect();
        want.sort();
        want.dedup();
        if let Some(ch) = self.channels.iter().find(|c| {
            if c.kind != Kind::Mpim || c.members.len() != want.len() {
                return false;
            }
            let mut have: Vec<&String> = c.members.iter().collect();
            have.sort();
            have == want
        }) {
            return (ch.id.clone(), true);
        }
        let names: Vec<String> = users
            .iter()
            .map(|u| {
                self.user(u)
                    .map(|u| u.name.clone())
                    .unwrap_or_else(|| u.clone())
            })
            .collect();
        let id = slack_id("C");
        self.channels.push(Channel {
            id: id.clone(),
            name: format!("mpdm-{}-1", names.join("--")),
            kind: Kind::Mpim,
            created: now_secs(),
            creator: users.first().cloned().unwrap_or_default(),
            members: users.to_vec(),
            archived: false,
            is_general: false,
            topic: Topic::default(),
            purpose: Topic {
                value: format!(
                    "Group messaging with: {}",
                    names
                        .iter()
                        .map(|n| format!("@{n}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                creator: users.first().cloned().unwrap_or_default(),
                last_set: now_secs(),
            },
            previous_names: Vec::new(),
            updated_ms: crate::ids::now_micros() as i64 / 1000,
            messages: BTreeMap::new(),
        });
        (id, false)
    }

    // ---------------------------------------------------------------- messages

    /// The message subscription and the scope an app needs to receive messages here.
    fn message_subscription(kind: Kind) -> (&'static str, &'static str) {
        match kind {
            Kind::Public => ("message.channels", "channels:history"),
            Kind::Private => ("message.groups", "groups:history"),
            Kind::Im => ("message.im", "im:history"),
            Kind::Mpim => ("message.mpim", "mpim:history"),
        }
    }

    /// Queues a message-type event (`message` or one of its subtypes) for `channel`.
    pub fn emit_message_event(
        &self,
        channel: &str,
        kind: Kind,
        mut ev: Map<String, Value>,
        ts: Ts,
        out: &mut Vec<Emit>,
    ) {
        ev.insert("channel".into(), json!(channel));
        ev.insert("event_ts".into(), json!(ts.to_string()));
        ev.insert("channel_type".into(), json!(kind.channel_type()));
        let (sub, scope) = Self::message_subscription(kind);
        self.emit(
            out,
            Emit::channel(sub, Some(scope), channel, Value::Object(ev)),
        );
    }

    /// Posts a message, threading it when asked; queues the `message` event.
    /// Returns the new message's ts.
    pub fn post(&mut self, channel: &str, nm: NewMessage, out: &mut Vec<Emit>) -> Option<Ts> {
        let ts = self.clock.next();
        self.post_at(channel, nm, ts, out)
    }

    /// [`State::post`] with a timestamp taken from the clock beforehand (so that objects
    /// rendered into the event, such as file shares, can already name it).
    pub fn post_at(
        &mut self,
        channel: &str,
        nm: NewMessage,
        ts: Ts,
        out: &mut Vec<Emit>,
    ) -> Option<Ts> {
        let app = self.app.clone();
        let ch = self.channel_mut(channel)?;
        let kind = ch.kind;
        let author_user = match &nm.author {
            Author::User(u) => u.clone(),
            Author::Bot { .. } => app.bot_user_id.clone(),
            Author::Slackbot => SLACKBOT.to_string(),
        };
        // Threading: a reply to a reply joins the parent's thread; an unknown thread_ts is
        // kept as given (Slack accepts it and the reply is orphaned).
        let mut thread_ts = None;
        let mut parent_user_id = None;
        if let Some(t) = nm.thread_ts {
            let root = match ch.messages.get(&t) {
                Some(m) => m.thread_ts.unwrap_or(m.ts),
                None => t,
            };
            thread_ts = Some(root);
            if let Some(parent) = ch.messages.get_mut(&root) {
                parent.thread_ts = Some(root);
                parent.replies.push((ts, author_user.clone()));
                parent_user_id = Some(match &parent.author {
                    Author::User(u) => u.clone(),
                    Author::Bot { .. } => app.bot_user_id.clone(),
                    Author::Slackbot => SLACKBOT.to_string(),
                });
            }
        }
        let subtype = if nm.subtype.is_some() {
            nm.subtype.clone()
        } else if nm.broadcast && thread_ts.is_some() {
            Some("thread_broadcast".to_string())
        } else if matches!(&nm.author, Author::Bot { username, icons } if username.is_some() || icons.is_some())
        {
            Some("bot_message".to_string())
        } else {
            None
        };
        let blocks = match nm.blocks {
            Some(b) => Some(b),
            None if !nm.text.is_empty() => Some(vec![richtext::from_text(&nm.text)]),
            None => None,
        };
        let msg = Message {
            ts,
            author: nm.author,
            subtype,
            text: nm.text,
            blocks: blocks.filter(|b| !b.is_empty()),
            attachments: nm.attachments,
            client_msg_id: nm.client_msg_id,
            thread_ts,
            parent_user_id,
            replies: Vec::new(),
            edited: None,
            reactions: Vec::new(),
            files: nm.files,
            metadata: nm.metadata,
            room: nm.room,
            inviter: nm.inviter,
        };
        let call_ids: Vec<String> = msg
            .blocks
            .iter()
            .flatten()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("call"))
            .filter_map(|b| b.get("call_id").and_then(Value::as_str).map(str::to_string))
            .collect();
        if let Some(tap) = &self.tap {
            let posted = Posted {
                channel: channel.to_string(),
                ts,
                text: msg.text.clone(),
                by_app: matches!(msg.author, Author::Bot { .. }),
                at: std::time::Instant::now(),
            };
            if tap.send(posted).is_err() {
                self.tap = None;
            }
        }
        let ch = self.channel_mut(channel)?;
        ch.messages.insert(ts, msg);
        ch.updated_ms = crate::ids::now_micros() as i64 / 1000;
        for id in call_ids {
            if let Some(call) = self.calls.get_mut(&id)
                && !call.channels.iter().any(|c| c == channel)
            {
                call.channels.push(channel.to_string());
            }
        }
        let ev = self.message_event_body(channel, ts);
        if let Some(ev) = ev {
            self.emit_message_event(channel, kind, ev, ts, out);
        }
        Some(ts)
    }

    /// The event rendering of a stored message (thread_broadcast carries its `root`).
    fn message_event_body(&self, channel: &str, ts: Ts) -> Option<Map<String, Value>> {
        let ch = self.channel(channel)?;
        let m = ch.messages.get(&ts)?;
        Some(render::message(self, ch, m, render::For::Event))
    }

    /// Edits a message in place; queues `message_changed`.
    pub fn update(
        &mut self,
        channel: &str,
        ts: Ts,
        editor: &str,
        change: impl FnOnce(&mut Message),
        out: &mut Vec<Emit>,
    ) -> Option<()> {
        let ev_ts = self.clock.next();
        let previous = {
            let ch = self.channel(channel)?;
            let m = ch.messages.get(&ts)?;
            render::message(self, ch, m, render::For::Event)
        };
        let ch = self.channel_mut(channel)?;
        let kind = ch.kind;
        let m = ch.messages.get_mut(&ts)?;
        change(m);
        m.edited = Some((editor.to_string(), ev_ts.whole_second()));
        let ch = self.channel(channel)?;
        let m = ch.messages.get(&ts)?;
        let current = render::message(self, ch, m, render::For::Event);
        let mut ev = Map::new();
        ev.insert("type".into(), json!("message"));
        ev.insert("subtype".into(), json!("message_changed"));
        ev.insert("hidden".into(), json!(true));
        ev.insert("message".into(), Value::Object(current));
        ev.insert("previous_message".into(), Value::Object(previous));
        ev.insert("ts".into(), json!(ev_ts.to_string()));
        self.emit_message_event(channel, kind, ev, ev_ts, out);
        Some(())
    }

    /// Deletes a message the way Slack does: a thread parent with replies becomes a
    /// tombstone (`message_changed` whose message has subtype `tombstone`); anything else
    /// goes (`message_deleted`). Deleting the last reply under a tombstone removes it too.
    pub fn delete(&mut self, channel: &str, ts: Ts, out: &mut Vec<Emit>) -> Option<()> {
        let ch = self.channel(channel)?;
        let kind = ch.kind;
        let m = ch.messages.get(&ts)?;
        let has_replies = !m.replies.is_empty() && !m.is_reply();
        let previous = render::message(self, ch, m, render::For::Event);
        let ev_ts = self.clock.next();
        if has_replies {
            let ch = self.channel_mut(channel)?;
            let m = ch.messages.get_mut(&ts)?;
            m.author = Author::Slackbot;
            m.subtype = Some("tombstone".into());
            m.text = "This message was deleted.".into();
            m.blocks = None;
            m.attachments = None;
            m.client_msg_id = None;
            m.edited = None;
            m.reactions.clear();
            m.files.clear();
            m.metadata = None;
            let ch = self.channel(channel)?;
            let m = ch.messages.get(&ts)?;
            let tomb = render::message(self, ch, m, render::For::Event);
            let mut ev = Map::new();
            ev.insert("type".into(), json!("message"));
            ev.insert("subtype".into(), json!("message_changed"));
            ev.insert("hidden".into(), json!(true));
            ev.insert("message".into(), Value::Object(tomb));
            ev.insert("previous_message".into(), Value::Object(previous));
            ev.insert("ts".into(), json!(ev_ts.to_string()));
            self.emit_message_event(channel, kind, ev, ev_ts, out);
            return Some(());
        }
        let ch = self.channel_mut(channel)?;
        let removed = ch.messages.remove(&ts)?;
        let mut ev = Map::new();
        ev.insert("type".into(), json!("message"));
        ev.insert("subtype".into(), json!("message_deleted"));
        ev.insert("hidden".into(), json!(true));
        ev.insert("deleted_ts".into(), json!(ts.to_string()));
        ev.insert("previous_message".into(), Value::Object(previous));
        ev.insert("ts".into(), json!(ev_ts.to_string()));
        self.emit_message_event(channel, kind, ev, ev_ts, out);
        // A deleted reply leaves its thread; an emptied tombstone disappears.
        if let Some(root) = removed.thread_ts.filter(|r| *r != ts) {
            let ch = self.channel_mut(channel)?;
            let mut drop_root = false;
            if let Some(parent) = ch.messages.get_mut(&root) {
                parent.replies.retain(|(r, _)| *r != ts);
                if parent.replies.is_empty() {
                    if parent.subtype.as_deref() == Some("tombstone") {
                        drop_root = true;
                    } else {
                        parent.thread_ts = None;
                    }
                }
            }
            if drop_root {
                self.delete(channel, root, out);
            }
        }
        Some(())
    }

    /// Adds a reaction; `Err` carries Slack's error code.
    pub fn react(
        &mut self,
        channel: &str,
        ts: Ts,
        user: &str,
        name: &str,
        out: &mut Vec<Emit>,
    ) -> Result<(), &'static str> {
        let app = self.app.clone();
        let ev_ts = self.clock.next();
        let ch = self.channel_mut(channel).ok_or("channel_not_found")?;
        let m = ch.messages.get_mut(&ts).ok_or("message_not_found")?;
        if m.subtype.as_deref() == Some("tombstone") {
            return Err("message_not_found");
        }
        if let Some(r) = m.reactions.iter_mut().find(|r| r.name == name) {
            if r.users.iter().any(|u| u == user) {
                return Err("already_reacted");
            }
            r.users.push(user.to_string());
        } else {
            if m.reactions.len() >= 23 {
                return Err("too_many_emoji");
            }
            m.reactions.push(Reaction {
                name: name.to_string(),
                users: vec![user.to_string()],
            });
        }
        let item_user = m.author_user(&app);
        let ev = json!({
            "type": "reaction_added",
            "user": user,
            "item": {"type": "message", "channel": channel, "ts": ts.to_string()},
            "reaction": name,
            "item_user": item_user,
            "event_ts": ev_ts.to_string(),
        });
        self.emit(
            out,
            Emit::channel("reaction_added", Some("reactions:read"), channel, ev),
        );
        Ok(())
    }

    /// Removes a reaction; `Err` carries Slack's error code.
    pub fn unreact(
        &mut self,
        channel: &str,
        ts: Ts,
        user: &str,
        name: &str,
        out: &mut Vec<Emit>,
    ) -> Result<(), &'static str> {
        let app = self.app.clone();
        let ev_ts = self.clock.next();
        let ch = self.channel_mut(channel).ok_or("channel_not_found")?;
        let m = ch.messages.get_mut(&ts).ok_or("message_not_found")?;
        let Some(pos) = m.reactions.iter().position(|r| r.name == name) else {
            return Err("no_reaction");
        };
        let r = &mut m.reactions[pos];
        let Some(upos) = r.users.iter().position(|u| u == user) else {
            return Err("no_reaction");
        };
        r.users.remove(upos);
        if r.users.is_empty() {
            m.reactions.remove(pos);
        }
        let item_user = m.author_user(&app);
        let ev = json!({
            "type": "reaction_removed",
            "user": user,
            "item": {"type": "message", "channel": channel, "ts": ts.to_string()},
            "reaction": name,
            "item_user": item_user,
            "event_ts": ev_ts.to_string(),
        });
        self.emit(
            out,
            Emit::channel("reaction_removed", Some("reactions:read"), channel, ev),
        );
        Ok(())
    }

    /// Queues `user_change` for a user (after a profile change), and, when `huddle` is set,
    /// the simultaneous `user_huddle_changed` with the identical shape.
    pub fn emit_user_change(&mut self, user: &str, huddle: bool, out: &mut Vec<Emit>) {
        let Some(u) = self.user(user) else { return };
        let body = render::user(self, u);
        let ev_ts = self.clock.next();
        let cache_ts = ev_ts.secs();
        if huddle {
            self.emit(out, Emit::team(
                "user_huddle_changed",
                None,
                json!({"type": "user_huddle_changed", "user": body.clone(), "cache_ts": cache_ts, "event_ts": ev_ts.to_string()}),
            ));
        }
        self.emit(out, Emit::team(
            "user_change",
            Some("users:read"),
            json!({"type": "user_change", "user": body, "cache_ts": cache_ts, "event_ts": ev_ts.to_string()}),
        ));
    }

    // ---------------------------------------------------------------- huddles

    /// Starts a huddle in `channel` by `user`: Slackbot posts the `huddle_thread` message and
    /// the user's huddle state changes. Returns (huddle id, message ts).
    pub fn start_huddle(
        &mut self,
        channel: &str,
        user: &str,
        out: &mut Vec<Emit>,
    ) -> Option<(String, Ts)> {
        self.channel(channel)?;
        self.user(user)?;
        let id = slack_id("R");
        let now = now_secs();
        self.huddles.insert(
            id.clone(),
            Huddle {
                id: id.clone(),
                channel: channel.to_string(),
                ts: crate::ids::Ts(0),
                created_by: user.to_string(),
                date_start: now,
                date_end: 0,
                participants: vec![user.to_string()],
                history: vec![user.to_string()],
                external_unique_id: uuid_v4(),
            },
        );
        let mut nm = NewMessage::text(Author::Slackbot, "");
        nm.subtype = Some("huddle_thread".into());
        nm.room = Some(id.clone());
        nm.blocks = Some(vec![richtext::from_text("A huddle started")]);
        let ts = self.post(channel, nm, out)?;
        if let Some(h) = self.huddles.get_mut(&id) {
            h.ts = ts;
        }
        if let Some(u) = self.user_mut(user) {
            u.huddle = Some((id.clone(), now + 3600));
            u.updated = now;
        }
        self.emit_user_change(user, true, out);
        Some((id, ts))
    }

    /// Adds a person to a live huddle.
    pub fn join_huddle(&mut self, huddle: &str, user: &str, out: &mut Vec<Emit>) -> Option<()> {
        self.user(user)?;
        let h = self.huddles.get_mut(huddle)?;
        if h.date_end != 0 {
            return None;
        }
        if !h.participants.iter().any(|p| p == user) {
            h.participants.push(user.to_string());
        }
        if !h.history.iter().any(|p| p == user) {
            h.history.push(user.to_string());
        }
        let now = now_secs();
        if let Some(u) = self.user_mut(user) {
            u.huddle = Some((huddle.to_string(), now + 3600));
            u.updated = now;
        }
        self.emit_user_change(user, true, out);
        Some(())
    }

    /// Ends a huddle: Slackbot edits the `huddle_thread` message (`message_changed`, edited by
    /// USLACKBOT, `date_end` set, `has_ended`), and every participant's huddle state resets.
    pub fn end_huddle(&mut self, huddle: &str, out: &mut Vec<Emit>) -> Option<()> {
        let now = now_secs();
        let h = self.huddles.get_mut(huddle)?;
        if h.date_end != 0 {
            return None;
        }
        let (channel, ts) = (h.channel.clone(), h.ts);
        // The edit must render the ended room, so end it first and diff against a snapshot.
        let previous_room = h.clone();
        let participants = std::mem::take(&mut h.participants);
        h.date_end = now;
        let prev = {
            let ch = self.channel(&channel)?;
            let m = ch.messages.get(&ts)?;
            let mut prev = render::message(self, ch, m, render::For::Event);
            prev.insert("room".into(), render::room(self, &previous_room));
            prev
        };
        let ev_ts = self.clock.next();
        let ch = self.channel_mut(&channel)?;
        let kind = ch.kind;
        let m = ch.messages.get_mut(&ts)?;
        m.edited = Some((SLACKBOT.to_string(), ev_ts.whole_second()));
        let ch = self.channel(&channel)?;
        let m = ch.messages.get(&ts)?;
        let current = render::message(self, ch, m, render::For::Event);
        let mut ev = Map::new();
        ev.insert("type".into(), json!("message"));
        ev.insert("subtype".into(), json!("message_changed"));
        ev.insert("hidden".into(), json!(true));
        ev.insert("message".into(), Value::Object(current));
        ev.insert("previous_message".into(), Value::Object(prev));
        ev.insert("ts".into(), json!(ev_ts.to_string()));
        self.emit_message_event(&channel, kind, ev, ev_ts, out);
        for p in participants {
            if let Some(u) = self.user_mut(&p) {
                u.huddle = None;
                u.updated = now;
            }
            self.emit_user_change(&p, true, out);
        }
        Some(())
    }
}
