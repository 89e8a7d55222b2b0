//! [`TeamsBridge`]: the Microsoft Teams connector's [`Bridge`], first form.
//!
//! - **Outbound** goes through Microsoft Graph with *delegated* tokens only:
//!   Graph refuses an application token's message POST (protocols/teams.md
//!   §1), so the app token is never used to write. People who linked their own
//!   Teams account ([`LinkedAccounts`]) post as themselves, without an author
//!   line; everyone else is posted by the configured service account with a
//!   bold author line (`<b>Name</b> (Platform): …`). Every body carries the
//!   invisible relay marker ([`graph::relay_marker_html`]) with the op id.
//! - **Idempotency**: delivered ops are remembered in-process; an op that
//!   `maybe_delivered` is first looked for by its relay marker among the
//!   channel's (or thread's) recent messages.
//! - **Inbound** is delta polling with the application token (no public
//!   notification URL needed): every [`TeamsConfig::poll_interval`], for each
//!   watched channel, `GET …/messages/delta` from the stored delta link; the
//!   connector keeps the last version of each message it saw and turns
//!   changes into edits, deletes and reactions with [`graph::diff`]. The new
//!   delta link is stored (in [`BridgeContext::cursors`]) only after the
//!   events of the round are stored by the relay. The first round for a
//!   channel without a stored link only establishes the link (no history is
//!   replayed).
//!
//! Not yet done (honestly): attachments (capability off), online-meeting
//! creation for calls (a notice with the join link is posted instead),
//! avatars in the author line, inbound from chats (Graph has no per-chat
//! delta; chats are skipped by the poller), inbound thread replies (channel
//! delta reports roots only), refreshing linked accounts' tokens (their
//! stored token is used as a delegated access token), and splitting bodies
//! over Graph's size limit (an over-long body is refused by Graph).

use crate::auth::{AppTokens, DelegatedTokens, IdentityConfig, Secret};
use crate::client::{Bearer, GraphClient};
use crate::graph::{self, DEFAULT_RELAY_MARKER, ParseContext, Parsed, ResourceRef};
use crate::html;
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use switchboard_model::{
    Attachment, Bridge, BridgeContext, BridgeError, BridgeId, BridgeState, Capabilities, ChannelId,
    Delivered, Inbound, InboundKind, IntakeError, LinkedAccounts, MediaSource, Message, MessageId,
    MessageStyle, NoLinkedAccounts, OpId, OutboundKind, OutboundOp, Person, PuppetRef, RetryKind,
    RichText, UserId,
};

/// How many delivered ops are remembered before the record is reset.
const REMEMBERED_OPS: usize = 10_000;
/// How many recent messages are searched for an op's relay marker.
const FIND_POSTED_LIMIT: usize = 50;

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
}

/// The service account: its tokens (refreshed in place) and user id.
#[derive(Debug)]
struct ServiceAccount {
    user: String,
    tokens: tokio::sync::Mutex<DelegatedTokens>,
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
    service: Option<ServiceAccount>,
    accounts_slot: RwLock<Arc<dyn LinkedAccounts>>,
    /// Ops delivered by this process and what they produced.
    posted: Mutex<HashMap<OpId, Delivered>>,
    /// Messages this process posted, by channel: echoes.
    ours: Mutex<HashSet<(ChannelId, MessageId)>>,
    /// The last version of each message seen while polling, by channel and
    /// Graph message id.
    seen: Mutex<HashMap<(ChannelId, String), Value>>,
}

impl TeamsBridge {
    /// A bridge from its configuration (no network yet).
    pub fn new(config: TeamsConfig) -> Result<Arc<Self>, BridgeError> {
        Self::with_graph(config.clone(), GraphClient::new(config.graph_base)?)
    }

    /// A bridge using `graph` (e.g. without client-side limits in tests).
    pub fn with_graph(config: TeamsConfig, graph: GraphClient) -> Result<Arc<Self>, BridgeError> {
        let identity = IdentityConfig {
            login_base: config.login_base,
            tenant: config.tenant,
            client_id: config.client_id,
            client_secret: Some(config.client_secret),
        };
        let app = AppTokens::new(graph.http().clone(), identity);
        let service = config.service_account.map(|tokens| ServiceAccount {
            user: tokens.user_id.clone(),
            tokens: tokio::sync::Mutex::new(tokens),
        });
        Ok(Arc::new(TeamsBridge {
            id: config.id,
            poll_interval: config.poll_interval,
            watch: config.watch,
            relay_marker: DEFAULT_RELAY_MARKER.to_owned(),
            graph,
            app,
            service,
            accounts_slot: RwLock::new(Arc::new(NoLinkedAccounts)),
            posted: Mutex::new(HashMap::new()),
            ours: Mutex::new(HashSet::new()),
            seen: Mutex::new(HashMap::new()),
        }))
    }

    /// Uses `accounts` for people who linked their own Teams account.
    pub fn set_accounts(&self, accounts: Arc<dyn LinkedAccounts>) {
        *self
            .accounts_slot
            .write()
            .unwrap_or_else(|p| p.into_inner()) = accounts;
    }

    fn accounts(&self) -> Arc<dyn LinkedAccounts> {
        self.accounts_slot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The service account's user id, if one is configured.
    pub fn service_user(&self) -> Option<&str> {
        self.service.as_ref().map(|s| s.user.as_str())
    }

    // ------------------------------------------------------------ identities

    /// Who carries out `op`: the person's linked account, else the service
    /// account (with an author line).
    async fn actor(&self, op: &OutboundOp) -> Result<Actor, BridgeError> {
        let accounts = self.accounts();
        let linked = match (&op.author, &op.on_behalf_of) {
            (Some(author), _) if author.is_linked_account => accounts
                .token_of(&author.user)
                .map(|token| (author.user.clone(), token)),
            _ => None,
        }
        .or_else(|| {
            op.on_behalf_of
                .as_ref()
                .and_then(|p| accounts.account_for(&p.bridge, &p.user))
                .map(|a| (a.user, a.token))
        });
        if let Some((user, token)) = linked {
            return Ok(Actor {
                token: Secret::new(token),
                user: user.as_str().to_owned(),
                author_line: false,
            });
        }
        let Some(service) = &self.service else {
            return Err(BridgeError::permanent(
                "no Teams service account is configured and the author has not linked an account",
            ));
        };
        let token = service.tokens.lock().await.token().await?;
        Ok(Actor {
            token,
            user: service.user.clone(),
            author_line: op.on_behalf_of.is_some(),
        })
    }

    // ------------------------------------------------------------ bodies

    /// The HTML body for `message` as posted by `actor` for `op`.
    fn body(&self, op: &OutboundOp, actor: &Actor, message: &Message) -> Value {
        let (mut content, mentions) = html::render(&message.body, &self.id);
        if actor.author_line
            && let Some(person) = &op.on_behalf_of
        {
            let line = format!(
                "<b>{}</b> ({}): ",
                escape(&person.display_name),
                escape(platform_label(&person.bridge))
            );
            content = match content.strip_prefix("<p>") {
                Some(rest) => format!("<p>{line}{rest}"),
                None => format!("{line}{content}"),
            };
        }
        if message.style == MessageStyle::Emote && !actor.author_line {
            content = format!("<i>{content}</i>");
        }
        content.push_str(&graph::relay_marker_html(
            &self.relay_marker,
            op.id.as_str(),
        ));
        let mut body = json!({ "body": { "contentType": "html", "content": content } });
        if !mentions.is_empty() {
            body["mentions"] = Value::Array(mentions.iter().map(html::Mention::to_graph).collect());
        }
        body
    }

    // ------------------------------------------------------------ idempotency

    fn remember(&self, op: &OpId, delivered: &Delivered) {
        let mut posted = self.posted.lock().unwrap_or_else(|p| p.into_inner());
        if posted.len() > REMEMBERED_OPS {
            posted.clear();
        }
        posted.insert(op.clone(), delivered.clone());
    }

    fn already_posted(&self, op: &OpId) -> Option<Delivered> {
        self.posted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(op)
            .cloned()
    }

    fn remember_ours(&self, channel: &ChannelId, id: &MessageId) {
        let mut ours = self.ours.lock().unwrap_or_else(|p| p.into_inner());
        if ours.len() > REMEMBERED_OPS {
            ours.clear();
        }
        ours.insert((channel.clone(), id.clone()));
    }

    fn is_ours(&self, channel: &ChannelId, id: &MessageId) -> bool {
        self.ours
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(channel.clone(), id.clone()))
    }

    /// After a possible earlier attempt: the message carrying `op`'s relay
    /// marker among the recent messages of `list_path`, if any.
    async fn find_posted(
        &self,
        conv: &Conversation<'_>,
        list_path: &str,
        root: Option<&str>,
        op: &OpId,
        actor: &Actor,
    ) -> Result<Option<MessageId>, BridgeError> {
        let needle = format!("{}:{}\"", self.relay_marker, op.as_str());
        let path = format!("{list_path}?$top={FIND_POSTED_LIMIT}");
        let items = self
            .graph
            .get_all(
                &path,
                Bearer::User(&actor.token, &actor.user),
                FIND_POSTED_LIMIT,
            )
            .await?;
        Ok(items
            .iter()
            .find(|m| {
                m.pointer("/body/content")
                    .and_then(Value::as_str)
                    .is_some_and(|c| c.contains(&needle))
            })
            .and_then(|m| m.get("id").and_then(Value::as_str))
            .map(|id| graph::message_id(conv.is_channel(), root, id)))
    }

    // ------------------------------------------------------------ operations

    async fn send(&self, op: &OutboundOp, message: &Message) -> Result<Delivered, BridgeError> {
        let conv = Conversation::of(&op.channel)?;
        let actor = self.actor(op).await?;
        // Replies go under the thread's root (channels only; chats have no threads).
        let root = match (&conv, &message.thread_root) {
            (Conversation::Channel { .. }, Some(root)) => {
                let (outer, id) = graph::split_message_id(root);
                Some(outer.unwrap_or(id).to_owned())
            }
            _ => None,
        };
        let list_path = match &root {
            Some(root) => format!("{}/{root}/replies", conv.messages()),
            None => conv.messages(),
        };
        if op.maybe_delivered
            && let Some(id) = self
                .find_posted(&conv, &list_path, root.as_deref(), &op.id, &actor)
                .await?
        {
            self.remember_ours(&op.channel, &id);
            return Ok(Delivered::one(id));
        }
        let body = self.body(op, &actor, message);
        let posted = self
            .graph
            .post_json(&list_path, Bearer::User(&actor.token, &actor.user), &body)
            .await?;
        let Some(id) = posted.get("id").and_then(Value::as_str) else {
            return Err(BridgeError::transient("Graph's answer to a POST has no id"));
        };
        let id = graph::message_id(conv.is_channel(), root.as_deref(), id);
        self.remember_ours(&op.channel, &id);
        Ok(Delivered::one(id))
    }

    async fn edit(
        &self,
        op: &OutboundOp,
        parts: &[MessageId],
        message: &Message,
    ) -> Result<Delivered, BridgeError> {
        let conv = Conversation::of(&op.channel)?;
        let Some(first) = parts.first() else {
            return Err(BridgeError::permanent("an edit without a message"));
        };
        let actor = self.actor(op).await?;
        let body = self.body(op, &actor, message);
        self.graph
            .patch_json(
                &conv.message(first),
                Bearer::User(&actor.token, &actor.user),
                &body,
            )
            .await?;
        // Later parts (from a split) would be emptied here; this connector
        // does not split yet, so there are none.
        Ok(Delivered::none())
    }

    async fn delete(&self, op: &OutboundOp, parts: &[MessageId]) -> Result<Delivered, BridgeError> {
        let conv = Conversation::of(&op.channel)?;
        let actor = self.actor(op).await?;
        for part in parts {
            let path = format!("{}/softDelete", conv.message(part));
            match self
                .graph
                .post_json(&path, Bearer::User(&actor.token, &actor.user), &json!({}))
                .await
            {
                Ok(_) | Err(BridgeError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Delivered::none())
    }

    async fn react(
        &self,
        op: &OutboundOp,
        target: &MessageId,
        key: &str,
        add: bool,
    ) -> Result<Delivered, BridgeError> {
        let conv = Conversation::of(&op.channel)?;
        let actor = self.actor(op).await?;
        let action = if add { "setReaction" } else { "unsetReaction" };
        let path = format!("{}/{action}", conv.message(target));
        self.graph
            .post_json(
                &path,
                Bearer::User(&actor.token, &actor.user),
                &json!({ "reactionType": key }),
            )
            .await?;
        Ok(Delivered::none())
    }

    async fn call(
        &self,
        op: &OutboundOp,
        event: &switchboard_model::CallEvent,
        invite: &[MessageId],
    ) -> Result<Delivered, BridgeError> {
        // A notice with the join link. Creating a Teams online meeting
        // (POST /me/onlineMeetings) for calls from elsewhere comes later.
        let message =
            Message::new(RichText::plain(event.describe())).with_style(MessageStyle::Notice);
        if invite.is_empty() {
            self.send(op, &message).await
        } else {
            self.edit(op, invite, &message).await
        }
    }

    // ------------------------------------------------------------ inbound

    /// The channels to poll now.
    fn watched(&self, ctx: &BridgeContext) -> Vec<ChannelId> {
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
    async fn delta_round(
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
    async fn poll_channel(
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
        let our_users: Vec<String> = self.service_user().map(str::to_owned).into_iter().collect();
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

    fn baseline(&self, channel: &ChannelId, messages: &[Value]) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for m in messages {
            if let Some(id) = m.get("id").and_then(Value::as_str) {
                seen.insert((channel.clone(), id.to_owned()), m.clone());
            }
        }
    }

    /// Marks as ours the posts (and their edits and deletes) this process made.
    fn mark_ours(&self, channel: &ChannelId, mut event: Inbound) -> Inbound {
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
    async fn poll_all(&self, ctx: &BridgeContext) -> Result<bool, BridgeError> {
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
        // Uploads (SharePoint/OneDrive) are not done yet.
        caps.attachments = false;
        caps.max_upload = 0;
        // Graph refuses bodies over about 28 KB of HTML; characters can take
        // several bytes and markup more, so leave room.
        caps.max_message_len = html::DEFAULT_SPLIT_BYTES / 4;
        caps.native_calls = false;
        // Puppets are an author line per message, not accounts.
        caps.puppet_accounts = false;
        caps
    }

    async fn health_check(&self) -> Result<(), BridgeError> {
        self.app.token().await?;
        if let Some(service) = &self.service {
            service.tokens.lock().await.token().await?;
        }
        Ok(())
    }

    async fn run(&self, ctx: BridgeContext) -> Result<(), BridgeError> {
        ctx.set_state(BridgeState::Connecting);
        // Establish (or resume) every channel's delta link before reporting
        // Connected, so that nothing posted after Connected is swallowed by
        // the first round.
        match self.poll_all(&ctx).await {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                if e.retry_kind() == RetryKind::Reauthenticate {
                    ctx.set_state(BridgeState::BadCredentials(e.to_string()));
                } else {
                    ctx.set_state(BridgeState::TransientDisconnect(e.to_string()));
                }
                return Err(e);
            }
        }
        ctx.set_state(BridgeState::Connected);
        loop {
            tokio::select! {
                () = ctx.shutdown.cancelled() => break,
                () = tokio::time::sleep(self.poll_interval) => {}
            }
            let round = tokio::select! {
                () = ctx.shutdown.cancelled() => break,
                r = self.poll_all(&ctx) => r,
            };
            match round {
                Ok(true) => ctx.set_state(BridgeState::Connected),
                Ok(false) => break,
                Err(e) if e.retry_kind() == RetryKind::Reauthenticate => {
                    ctx.set_state(BridgeState::BadCredentials(e.to_string()));
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(bridge = %self.id, error = %e, "Teams polling round failed.");
                    ctx.set_state(BridgeState::TransientDisconnect(e.to_string()));
                }
            }
        }
        ctx.set_state(BridgeState::Stopped);
        Ok(())
    }

    async fn deliver(
        &self,
        op: &OutboundOp,
        _media: &dyn MediaSource,
    ) -> Result<Delivered, BridgeError> {
        if let Some(done) = self.already_posted(&op.id) {
            return Ok(done);
        }
        let delivered = match &op.kind {
            OutboundKind::Send { message } => self.send(op, message).await?,
            OutboundKind::Edit { parts, message } => self.edit(op, parts, message).await?,
            OutboundKind::Delete { parts } => self.delete(op, parts).await?,
            OutboundKind::React { target, key } => self.react(op, target, key, true).await?,
            OutboundKind::Unreact { target, key, .. } => self.react(op, target, key, false).await?,
            OutboundKind::Call { event, invite } => self.call(op, event, invite).await?,
            _ => {
                return Err(BridgeError::permanent(
                    "operation not supported by the Teams connector",
                ));
            }
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

    async fn fetch_media(&self, attachment: &Attachment) -> Result<Vec<u8>, BridgeError> {
        Err(BridgeError::permanent(format!(
            "Teams attachments are not supported yet ({})",
            attachment.name
        )))
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
        };
        assert!(!format!("{config:?}").contains("super-secret-value"));
        let bridge = TeamsBridge::new(config).expect("bridge");
        assert!(!format!("{bridge:?}").contains("super-secret-value"));
    }
}
