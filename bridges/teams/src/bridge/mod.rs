//! [`TeamsBridge`]: the Microsoft Teams connector's [`Bridge`].
//!
//! - **Outbound** goes through Microsoft Graph with *delegated* tokens only:
//!   Graph refuses an application token's message POST (protocols/teams.md
//!   §1), so the app token is never used to write. People who linked their own
//!   Teams account ([`LinkedAccounts`]) post as themselves, without an author
//!   line; everyone else is posted by the configured service account with a
//!   bold author line (`<b>Name</b> (Platform): …`). Every body carries the
//!   invisible relay marker ([`graph::relay_marker_html`]) with the op id.
//!   Reactions of people without a linked account are set by the service
//!   account, one per emoji, held until the last of them takes theirs back
//!   (`reactions`).
//! - **Idempotency**: delivered ops are remembered in-process; an op that
//!   `maybe_delivered`, or that this process attempted before, is first
//!   looked for by its relay marker, reading the channel (or thread, or
//!   chat) back to the op's acceptance ([`EarlierPosts`]).
//! - **Inbound** (`inbound`, `notifications`, `subscriptions`,
//!   `runner`): change notifications on the daemon's listener when a public
//!   URL is configured, and reconciliation (delta for channel roots, the
//!   replies of the roots that changed, the newest page of each chat) in
//!   every case, both through one gate that relays each message version once.
//! - **Commands and direct portals** (`direct`): a message to the service
//!   account in a one-on-one chat that is not a portal becomes an
//!   [`InboundKind::Command`](switchboard_model::InboundKind::Command), heard
//!   through a subscription to the service account's chats
//!   (`/users/{id}/chats/getAllMessages`) and a reconciliation of its recent
//!   one-on-one chats; [`Bridge::open_direct`] finds or creates the one-on-one
//!   chat of the service account and a person (`POST /chats`);
//!   [`Bridge::find_people`] searches the directory (`GET /users`).
//! - **Meetings on request**: a new message that mentions the service account
//!   and says `call [title]` becomes an
//!   [`InboundKind::CallRequest`](switchboard_model::InboundKind::CallRequest)
//!   instead of a message; [`Bridge::create_meeting`] makes the meeting
//!   (`createOrGet`, `externalId` = the key) as the organiser's linked
//!   account, else the service account.
//! - **Identities** (`identity`): linked people and the service account act
//!   through stored refresh tokens, rotated and written back; a refused one
//!   marks that login for re-authentication and falls back to the service
//!   account.
//!
//! Not done: uploading files to SharePoint/OneDrive as real attachments
//! (files become links or notes, images go inline up to 3 MB), avatars in
//! the author line, and reactions changed while the daemon was stopped.

use crate::auth::{AppTokens, DelegatedTokens, DeviceCodeLogin, IdentityConfig, Secret};
use crate::client::GraphClient;
use crate::graph::{self, DEFAULT_RELAY_MARKER, ResourceRef};
use crate::html;
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use switchboard_model::recovery::EarlierPosts;
use switchboard_model::{
    Attachment, Bridge, BridgeContext, BridgeError, BridgeId, Capabilities, ChannelId, ChannelInfo,
    Delivered, HttpEndpoint, LinkedAccount, LinkedAccounts, LoginFlow, MediaSource, Meeting,
    MessageId, OpId, OutboundKind, OutboundOp, Person, PuppetRef, RetryKind, UserId,
};

/// How many delivered ops are remembered before the record is reset.
const REMEMBERED_OPS: usize = 10_000;
/// Messages per page when reading a conversation back for our relay
/// markers (Graph's largest `$top` for message lists).
const MARKER_PAGE: usize = 50;
/// Pages read at most for one look-back (10,000 messages).
const MARKER_PAGES: usize = 200;

/// How a Teams bridge is configured.
#[derive(Debug, Clone)]
pub struct TeamsConfig {
    /// The bridge's id, e.g. `teams:contoso`.
    pub id: BridgeId,
    /// `https://graph.microsoft.com/v1.0` (or a simulator's Graph URL).
    pub graph_base: String,
    /// `https://login.microsoftonline.com` (or a simulator's login URL).
    pub login_base: String,
    /// The tenant id.
    pub tenant: String,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret (for the application token that reads).
    pub client_secret: Secret,
    /// The delegated account that posts for people who did not link their
    /// own Teams account. Without it, only linked people can be relayed.
    pub service_account: Option<DelegatedTokens>,
    /// How often the watched channels are polled for changes.
    pub poll_interval: Duration,
    /// Channels to poll besides the portal channels the relay names
    /// ([`BridgeContext::channels`]), e.g. from static configuration.
    pub watch: Vec<ChannelId>,
    /// Change notifications, when Graph can reach the daemon's listener.
    /// Without them, [`Self::poll_interval`] drives delta polling alone.
    pub notifications: Option<NotificationSettings>,
    /// With notifications on: how often delta reconciliation runs to catch
    /// whatever a notification missed.
    pub reconcile_interval: Duration,
}

/// Change notifications (webhooks) from Graph to the daemon's listener.
#[derive(Debug, Clone)]
pub struct NotificationSettings {
    /// The public HTTPS base URL at which Graph reaches the daemon's
    /// listener, e.g. `https://bridge.example.com` (a reverse proxy in
    /// front of `http.listen`). The bridge's paths are appended
    /// ([`notification_path`], [`lifecycle_path`]).
    pub public_url: String,
    /// The secret Graph echoes as `clientState` in every notification
    /// (at most 128 characters).
    pub client_state: Secret,
    /// The lifetime asked for each subscription (Graph allows up to three
    /// days for Teams messages; over one hour needs the lifecycle URL,
    /// which is always given).
    pub lifetime: Duration,
    /// Subscriptions are renewed this long before they expire.
    pub renew_before: Duration,
    /// With a key, subscriptions ask for the changed message encrypted to
    /// its certificate (`includeResourceData`), which saves a GET per
    /// change; without, each changed message is read back.
    pub encryption: Option<Arc<graph::crypto::NotificationKey>>,
}

/// The listener path of bridge `id`'s change notifications, e.g.
/// `/teams/contoso/notifications` for `teams:contoso`.
pub fn notification_path(id: &BridgeId) -> String {
    format!("{}/notifications", endpoint_prefix(id))
}

/// The listener path of bridge `id`'s lifecycle notifications.
pub fn lifecycle_path(id: &BridgeId) -> String {
    format!("{}/lifecycle", endpoint_prefix(id))
}

/// `/teams/contoso` for `teams:contoso`.
fn endpoint_prefix(id: &BridgeId) -> String {
    let s = id.as_str();
    let instance = s.split_once(':').map_or(s, |(_, rest)| rest);
    let clean: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("/teams/{clean}")
}

/// Who an operation is carried out as.
struct Actor {
    token: Secret,
    user: String,
    /// Whether the body gets an author line (not for linked accounts).
    author_line: bool,
}

/// Where a channel's messages live in Graph.
enum Conversation<'a> {
    /// A team channel.
    Channel { team: &'a str, channel: &'a str },
    /// A chat.
    Chat(&'a str),
}

impl<'a> Conversation<'a> {
    fn of(channel: &'a ChannelId) -> Result<Self, BridgeError> {
        let s = channel.as_str();
        match s.split_once('/') {
            Some((team, channel)) if !team.is_empty() && !channel.is_empty() => {
                Ok(Conversation::Channel { team, channel })
            }
            Some(_) => Err(BridgeError::permanent(format!(
                "not a Teams channel id: {s}"
            ))),
            None if !s.is_empty() => Ok(Conversation::Chat(s)),
            None => Err(BridgeError::permanent("empty Teams channel id")),
        }
    }

    fn is_channel(&self) -> bool {
        matches!(self, Conversation::Channel { .. })
    }

    /// `…/messages` for this conversation.
    fn messages(&self) -> String {
        match self {
            Conversation::Channel { team, channel } => {
                format!("/teams/{team}/channels/{channel}/messages")
            }
            Conversation::Chat(chat) => format!("/chats/{chat}/messages"),
        }
    }

    /// The path of one message (a channel reply under its root).
    fn message(&self, id: &MessageId) -> String {
        match (self, graph::split_message_id(id)) {
            (Conversation::Channel { .. }, (Some(root), id)) => {
                format!("{}/{root}/replies/{id}", self.messages())
            }
            (_, (_, id)) => format!("{}/{id}", self.messages()),
        }
    }

    fn resource(&self) -> ResourceRef {
        match self {
            Conversation::Channel { team, channel } => ResourceRef {
                team: Some((*team).to_owned()),
                channel: Some((*channel).to_owned()),
                ..ResourceRef::default()
            },
            Conversation::Chat(chat) => ResourceRef {
                chat: Some((*chat).to_owned()),
                ..ResourceRef::default()
            },
        }
    }
}

/// The Microsoft Teams connector.
#[derive(Debug)]
pub struct TeamsBridge {
    id: BridgeId,
    poll_interval: Duration,
    watch: Vec<ChannelId>,
    relay_marker: String,
    graph: GraphClient,
    app: AppTokens,
    identities: identity::Identities,
    /// The app's identity-platform settings, for people's sign-ins.
    sign_in: IdentityConfig,
    accounts_slot: switchboard_model::AccountsSlot,
    /// Ops delivered by this process and what they produced.
    posted: Mutex<HashMap<OpId, Delivered>>,
    /// Posts of earlier attempts found by reading conversations back.
    earlier: EarlierPosts,
    /// Messages this process posted, by channel: echoes.
    ours: Mutex<HashSet<(ChannelId, MessageId)>>,
    /// The tenant (notifications for another are refused).
    tenant: String,
    notifications: Option<NotificationSettings>,
    reconcile_interval: Duration,
    /// Message versions seen, the gate, counters.
    inbound: inbound::InboundState,
    subscriptions: subscriptions::Subscriptions,
    /// From the notification endpoint to the worker.
    queue: tokio::sync::mpsc::Sender<notifications::Work>,
    queue_rx: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<notifications::Work>>,
    this: Weak<TeamsBridge>,
    /// Who holds each service-account reaction.
    shared_reactions: reactions::SharedReactions,
    /// Names of people Teams reports by id only (call events).
    people: people::PeopleNames,
    /// One-on-one chats with the service account (commands, direct portals).
    direct: direct::DirectChats,
}

impl TeamsBridge {
    /// A bridge from its configuration (no network yet).
    pub fn new(config: TeamsConfig) -> Result<Arc<Self>, BridgeError> {
        Self::with_graph(config.clone(), GraphClient::new(config.graph_base)?)
    }

    /// A bridge using `graph` (e.g. without client-side limits in tests).
    pub fn with_graph(config: TeamsConfig, graph: GraphClient) -> Result<Arc<Self>, BridgeError> {
        let tenant = config.tenant.clone();
        let identity = IdentityConfig {
            login_base: config.login_base,
            tenant: config.tenant,
            client_id: config.client_id,
            client_secret: Some(config.client_secret),
        };
        let app = AppTokens::new(graph.http().clone(), identity.clone());
        let sign_in = identity.clone();
        let identities = identity::Identities::new(
            graph.http().clone(),
            identity.clone(),
            config.service_account,
        );
        let (queue, queue_rx) = notifications::queue();
        Ok(Arc::new_cyclic(|this| TeamsBridge {
            id: config.id,
            poll_interval: config.poll_interval,
            watch: config.watch,
            relay_marker: DEFAULT_RELAY_MARKER.to_owned(),
            graph,
            app,
            identities,
            sign_in,
            accounts_slot: switchboard_model::AccountsSlot::default(),
            posted: Mutex::new(HashMap::new()),
            earlier: EarlierPosts::new(),
            ours: Mutex::new(HashSet::new()),
            tenant,
            notifications: config.notifications,
            reconcile_interval: config.reconcile_interval,
            inbound: inbound::InboundState::new(),
            subscriptions: subscriptions::Subscriptions::default(),
            queue,
            queue_rx: tokio::sync::Mutex::new(queue_rx),
            this: this.clone(),
            shared_reactions: reactions::SharedReactions::default(),
            people: people::PeopleNames::default(),
            direct: direct::DirectChats::default(),
        }))
    }

    /// Uses `accounts` for people who linked their own Teams account.
    pub fn set_accounts(&self, accounts: Arc<dyn LinkedAccounts>) {
        self.accounts_slot.set(accounts);
    }

    fn accounts(&self) -> Arc<dyn LinkedAccounts> {
        self.accounts_slot.get()
    }
}

mod details;
mod direct;
mod identity;
mod inbound;
mod media;
mod notifications;
mod outbound;
mod people;
mod reactions;
mod runner;
mod subscriptions;

pub use inbound::{InboundCounts, SEEN_CAP};
pub use notifications::NotificationEndpoint;

/// Escapes text for HTML.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// A readable platform name for a bridge id.
fn platform_label(bridge: &BridgeId) -> &str {
    match bridge.platform() {
        "teams" => "Teams",
        "matrix" => "Matrix",
        "slack" => "Slack",
        other => other,
    }
}

#[async_trait]
impl Bridge for TeamsBridge {
    fn id(&self) -> &BridgeId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full();
        // Teams' quotes are not yet produced; threads are replies under a root.
        caps.replies = false;
        // Images up to media::INLINE_IMAGE_MAX_BYTES go inline
        // (hostedContents); every other file becomes a 📎 line with its name,
        // size and the origin's link, written by this connector (bridge/media.rs),
        // so the relay hands over files of any size instead of dropping them.
        caps.attachments = true;
        caps.max_upload = u64::MAX;
        // The length past which this connector splits a body into several
        // posts itself (bridge/outbound.rs, up to html::MAX_PARTS): one
        // post's HTML budget, in characters of up to four bytes. The relay
        // hands over longer bodies unchanged.
        caps.max_message_len = html::DEFAULT_SPLIT_BYTES / 4;
        // Calls become one card, edited as the call goes on, with a Teams
        // meeting link when the posting account may create meetings.
        caps.native_calls = true;
        // Puppets are an author line per message, not accounts.
        caps.puppet_accounts = false;
        // Channels belong to the tenant: never renamed from elsewhere.
        caps.mirrors_channel_info = false;
        // Meetings asked for anywhere become Teams online meetings
        // (`create_meeting`), organised by the asker's linked account or the
        // service account.
        caps.creates_meetings = true;
        caps
    }

    async fn health_check(&self) -> Result<(), BridgeError> {
        self.app.token().await?;
        if self.service_user().is_some() {
            self.service_actor().await?;
        }
        Ok(())
    }

    async fn run(&self, ctx: BridgeContext) -> Result<(), BridgeError> {
        self.run_inbound(ctx).await
    }

    fn http_endpoints(&self) -> Vec<(String, Arc<dyn HttpEndpoint>)> {
        match (&self.notifications, self.this.upgrade()) {
            (Some(_), Some(this)) => vec![(
                endpoint_prefix(&self.id) + "/",
                Arc::new(NotificationEndpoint::new(this)) as Arc<dyn HttpEndpoint>,
            )],
            _ => Vec::new(),
        }
    }

    async fn deliver(
        &self,
        op: &OutboundOp,
        media: &dyn MediaSource,
    ) -> Result<Delivered, BridgeError> {
        if let Some(done) = self.already_posted(&op.id) {
            return Ok(done);
        }
        let result = async {
            Ok(match &op.kind {
                OutboundKind::Send { message } => self.send(op, message, media).await?,
                OutboundKind::Edit { parts, message } => self.edit(op, parts, message).await?,
                OutboundKind::Delete { parts } => self.delete(op, parts).await?,
                OutboundKind::React { target, key } => self.react(op, target, key, true).await?,
                OutboundKind::Unreact { target, key, .. } => {
                    self.react(op, target, key, false).await?
                }
                OutboundKind::Call { event, invite } => self.call(op, event, invite).await?,
                _ => {
                    return Err(BridgeError::permanent(
                        "operation not supported by the Teams connector",
                    ));
                }
            })
        }
        .await;
        let delivered = match result {
            Err(e) if e.retry_kind() == RetryKind::Reauthenticate => {
                // Graph refused an access token before its time (revoked):
                // the next attempt refreshes every delegated token.
                self.identities.expire_all().await;
                return Err(e);
            }
            other => other?,
        };
        self.remember(&op.id, &delivered);
        Ok(delivered)
    }

    async fn ensure_puppet(&self, person: &Person) -> Result<PuppetRef, BridgeError> {
        if let Some(account) = self.accounts().account_for(&person.bridge, &person.user) {
            return Ok(PuppetRef::new(account.user, person.display_name.clone()).linked());
        }
        let name = format!(
            "{} ({})",
            person.display_name,
            platform_label(&person.bridge)
        );
        let user = UserId::new(format!("puppet:{}:{}", person.bridge, person.user));
        Ok(PuppetRef::new(user, name).with_avatar(person.avatar.clone()))
    }

    async fn create_meeting(
        &self,
        key: &str,
        channel: &ChannelId,
        title: &str,
        organiser: Option<&Person>,
    ) -> Result<Option<Meeting>, BridgeError> {
        match self.requested_meeting(key, channel, title, organiser).await {
            Ok(meeting) => Ok(Some(meeting)),
            Err(e) => {
                if e.retry_kind() == RetryKind::Reauthenticate {
                    // As for deliveries: the next attempt refreshes.
                    self.identities.expire_all().await;
                }
                Err(e)
            }
        }
    }

    async fn open_direct(
        &self,
        user: &UserId,
        with: &Person,
    ) -> Result<Option<ChannelId>, BridgeError> {
        match self.open_direct_chat(user, with).await {
            Ok(chat) => Ok(Some(chat)),
            Err(e) => {
                if e.retry_kind() == RetryKind::Reauthenticate {
                    // As for deliveries: the next attempt refreshes.
                    self.identities.expire_all().await;
                }
                Err(e)
            }
        }
    }

    /// A device-code sign-in (the person opens the page and types the
    /// code); the account is the refresh token of their own delegated
    /// sign-in with [`PERSON_SCOPES`](crate::auth::PERSON_SCOPES).
    async fn begin_login(&self) -> Result<Option<LoginFlow>, BridgeError> {
        let login = DeviceCodeLogin::new(
            self.graph.http().clone(),
            self.sign_in.clone(),
            self.graph.base(),
            crate::auth::PERSON_SCOPES,
        );
        let code = login.start().await.map_err(BridgeError::from)?;
        let prompt = format!(
            "To post in Teams as yourself, open {} and enter the code {} (valid for {} minutes). I will tell you here when it is done.",
            code.verification_uri,
            code.user_code,
            code.expires_in.as_secs().div_ceil(60)
        );
        let done = async move {
            let tokens = login.poll(&code).await.map_err(BridgeError::from)?;
            Ok(LinkedAccount {
                user: UserId::new(tokens.user_id.clone()),
                token: tokens.refresh_token.expose().to_owned(),
            })
        };
        Ok(Some(LoginFlow {
            prompt,
            done: Box::pin(done),
        }))
    }

    async fn find_people(&self, query: &str, limit: usize) -> Result<Vec<Person>, BridgeError> {
        self.search_people(query, limit).await
    }

    async fn channel_info(&self, channel: &ChannelId) -> Result<Option<ChannelInfo>, BridgeError> {
        self.details(channel).await
    }

    async fn fetch_media(&self, attachment: &Attachment) -> Result<Vec<u8>, BridgeError> {
        self.fetch_hosted(attachment).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_and_message_paths() {
        let ch = ChannelId::new("team-1/19:abc@thread.tacv2");
        let conv = Conversation::of(&ch).expect("channel");
        assert!(conv.is_channel());
        assert_eq!(
            conv.message(&MessageId::new("111")),
            "/teams/team-1/channels/19:abc@thread.tacv2/messages/111"
        );
        assert_eq!(
            conv.message(&MessageId::new("111/222")),
            "/teams/team-1/channels/19:abc@thread.tacv2/messages/111/replies/222"
        );
        let chat = ChannelId::new("19:xyz@unq.gbl.spaces");
        let conv = Conversation::of(&chat).expect("chat");
        assert!(!conv.is_channel());
        assert_eq!(
            conv.message(&MessageId::new("5")),
            "/chats/19:xyz@unq.gbl.spaces/messages/5"
        );
        assert!(Conversation::of(&ChannelId::new("/x")).is_err());
        assert!(Conversation::of(&ChannelId::new("")).is_err());
    }

    #[test]
    fn author_names_are_escaped() {
        assert_eq!(escape("<b>&\"x\""), "&lt;b&gt;&amp;&quot;x&quot;");
        assert_eq!(platform_label(&BridgeId::new("slack:acme")), "Slack");
        assert_eq!(platform_label(&BridgeId::new("irc:libera")), "irc");
    }

    #[test]
    fn config_debug_hides_the_secret() {
        let config = TeamsConfig {
            id: BridgeId::new("teams:contoso"),
            graph_base: "http://127.0.0.1:1/v1.0".into(),
            login_base: "http://127.0.0.1:1".into(),
            tenant: "t".into(),
            client_id: "c".into(),
            client_secret: Secret::new("super-secret-value"),
            service_account: None,
            poll_interval: Duration::from_secs(5),
            watch: Vec::new(),
            notifications: None,
            reconcile_interval: Duration::from_secs(300),
        };
        assert!(!format!("{config:?}").contains("super-secret-value"));
        let bridge = TeamsBridge::new(config).expect("bridge");
        assert!(!format!("{bridge:?}").contains("super-secret-value"));
    }
}
