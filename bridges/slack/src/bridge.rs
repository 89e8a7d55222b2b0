//! [`SlackBridge`]: the [`Bridge`] for one Slack workspace.
//!
//! Inbound: Socket Mode ([`crate::socket`]) or the HTTP Events API
//! ([`EventsEndpoint`]); both parse with [`crate::events`], fill in names
//! from `users.info`, push into the relay and acknowledge Slack only once the
//! relay has stored the event. Slash commands (`/switchboard call`) come the
//! same two ways and are answered, once stored, with a message only the
//! person sees; every subcommand but `call` is moved to the person's IM with
//! the bot, where the relay answers. Messages written to the bot in an IM
//! that is no portal are commands too (the `direct` module). After every
//! (re)connect, [`SlackBridge::catch_up`] reads `conversations.history` from
//! each portal channel's stored cursor, so nothing posted while we were away
//! is lost; the relay drops what it already has by message id. IMs that are
//! no portal are not read back: commands come from Slack's deliveries alone,
//! and once stored they move their IM's cursor, so that an IM made a direct
//! portal later never relays them as messages.
//!
//! Outbound: `chat.postMessage` with `username`/`icon_url` for people from
//! elsewhere (scope `chat:write.customize`), message `metadata` carrying our
//! op id (echo detection, and finding an op's message again after a crash),
//! `chat.update`, `chat.delete`, `reactions.add/remove`, the upload-v2 flow
//! for files, and the Calls API for call invites.

use crate::config::{InboundMode, SlackConfig};
use crate::events::{self, Command, ParseContext, Payload};
use crate::names_cache::NameCache;
use crate::ratelimit::RateLimiter;
use crate::web::{ApiError, SlackApi, Token};
use crate::{blocks, emoji, mrkdwn};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};
use switchboard_model::recovery::{EarlierPosts, Lookup};
use switchboard_model::{
    Attachment, Bridge, BridgeContext, BridgeError, BridgeId, CallState, Capabilities, ChannelId,
    ChannelInfo, Delivered, EventId, HttpEndpoint, HttpRequest, HttpResponse, Inbound, InboundKind,
    InboundSink, Inline, LinkedAccounts, LoginFlow, MediaSource, Message, MessageId, MessageStyle,
    OpId, OutboundKind, OutboundOp, Person, PuppetRef, RichText, Timestamp, UserId,
};

/// Who we are in the workspace, from `auth.test` and `bots.info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The workspace (`T…`).
    pub team: String,
    /// Our bot's user id (`U…`).
    pub bot_user: String,
    /// Our bot's id (`B…`).
    pub bot_id: Option<String>,
    /// Our app's id (`A…`).
    pub app_id: Option<String>,
}

/// The Slack connector.
#[derive(Debug)]
pub struct SlackBridge {
    pub(crate) config: SlackConfig,
    pub(crate) api: SlackApi,
    pub(crate) names: NameCache,
    identity: RwLock<Option<Identity>>,
    /// The relay's sink while `run` is active (the Events API endpoint needs it).
    sink: Mutex<Option<InboundSink>>,
    /// Ops posted by this process: a retry returns the same answer.
    posted: Mutex<HashMap<OpId, Delivered>>,
    /// Posts of earlier attempts found by reading conversations back.
    earlier: EarlierPosts,
    /// Sign-ins started from a chat, waiting for the browser.
    chat_logins: Arc<crate::login::ChatLogins>,
    /// Ourselves, for the HTTP endpoint.
    this: std::sync::Weak<SlackBridge>,
    /// People's own linked accounts.
    accounts_slot: switchboard_model::AccountsSlot,
    /// The workspace's icon once `team.info` answered (`Some(None)`: none).
    icon: Mutex<Option<Option<String>>>,
    /// Event ids of the slash commands stored last, oldest first: a
    /// redelivered command is answered again without a second event.
    commands_stored: Mutex<VecDeque<EventId>>,
    /// IMs with the bot, the portal channels, the directory.
    pub(crate) direct: crate::direct::DirectState,
}

/// Messages per page when reading a conversation back for our markers.
const MARKER_PAGE: usize = 200;

/// Pages read at most for one look-back (40,000 messages).
const MARKER_PAGES: usize = 200;

/// A Slack timestamp (`"1700000000.123000"`) for an instant.
fn slack_ts(at: Timestamp) -> String {
    let ms = at.as_millis();
    format!("{}.{:03}000", ms / 1000, ms % 1000)
}

/// How many stored slash commands are remembered for deduplication (the
/// relay also drops repeats by event id; this spares it the work).
const RECENT_COMMANDS: usize = 256;

/// What the person sees when the relay could not store their command.
const COMMAND_FAILED: &str =
    "Switchboard could not take this request right now. Please try again in a moment.";

impl SlackBridge {
    /// A connector for `config`.
    pub fn new(config: SlackConfig) -> Result<Arc<Self>, BridgeError> {
        let limiter = Arc::new(RateLimiter::new(config.rate_limits));
        let api = SlackApi::new(config.api_base.clone(), limiter)?;
        Ok(Arc::new_cyclic(|this| SlackBridge {
            config,
            api,
            names: NameCache::default(),
            identity: RwLock::new(None),
            sink: Mutex::new(None),
            posted: Mutex::new(HashMap::new()),
            earlier: EarlierPosts::new(),
            chat_logins: Arc::default(),
            this: this.clone(),
            accounts_slot: switchboard_model::AccountsSlot::default(),
            icon: Mutex::new(None),
            commands_stored: Mutex::new(VecDeque::new()),
            direct: crate::direct::DirectState::default(),
        }))
    }

    /// The workspace's icon (`team.info`, 132 px), unless it is Slack's
    /// default one. Best effort: a failure is logged and gives none; only an
    /// answer is remembered.
    async fn workspace_icon(&self) -> Option<String> {
        if let Some(known) = self.icon.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return known;
        }
        let icon = match self
            .api
            .call("team.info", self.token(), serde_json::json!({}), None)
            .await
        {
            Ok(reply) => workspace_icon_of(&reply),
            Err(e @ ApiError::Slack { .. }) => {
                // missing_scope (an app installed before team:read) and the like.
                tracing::debug!(bridge = %self.config.id, error = %e, "No workspace icon.");
                None
            }
            Err(e) => {
                tracing::debug!(bridge = %self.config.id, error = %e, "Workspace icon not known yet.");
                return None;
            }
        };
        *self.icon.lock().unwrap_or_else(|p| p.into_inner()) = Some(icon.clone());
        icon
    }

    fn token(&self) -> &Token {
        &self.config.bot_token
    }

    /// The token an op acts with: the person's own for a linked account,
    /// else the bot's.
    fn op_token(&self, op: &OutboundOp) -> Token {
        op.author
            .as_ref()
            .filter(|a| a.is_linked_account)
            .and_then(|a| self.accounts().token_of(&a.user))
            .map_or_else(|| self.config.bot_token.clone(), Token::new)
    }

    fn accounts(&self) -> Arc<dyn LinkedAccounts> {
        self.accounts_slot.get()
    }

    /// Uses `accounts` for people who linked their own Slack account.
    pub fn set_accounts(&self, accounts: Arc<dyn LinkedAccounts>) {
        self.accounts_slot.set(accounts);
    }

    /// A handle on this connector for tasks that outlive a borrow of it.
    pub(crate) fn weak(&self) -> std::sync::Weak<SlackBridge> {
        self.this.clone()
    }

    /// Our identity, once `run` or `health_check` has asked Slack.
    pub fn identity(&self) -> Option<Identity> {
        self.identity
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Asks Slack who we are (`auth.test`, `bots.info`).
    pub(crate) async fn authenticate(&self) -> Result<Identity, BridgeError> {
        // auth.test — https://docs.slack.dev/reference/methods/auth.test
        let me = self
            .api
            .call("auth.test", self.token(), json!({}), None)
            .await?;
        let text = |k: &str| me.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut identity = Identity {
            team: text("team_id").unwrap_or_default(),
            bot_user: text("user_id").unwrap_or_default(),
            bot_id: text("bot_id"),
            app_id: None,
        };
        if let Some(bot) = &identity.bot_id {
            // bots.info — https://docs.slack.dev/reference/methods/bots.info
            match self
                .api
                .call("bots.info", self.token(), json!({ "bot": bot }), None)
                .await
            {
                Ok(v) => {
                    identity.app_id = v
                        .pointer("/bot/app_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                }
                Err(e) => {
                    tracing::debug!(bridge = %self.config.id, error = %e, "bots.info failed; echoes are still caught by bot id.")
                }
            }
        }
        *self.identity.write().unwrap_or_else(|p| p.into_inner()) = Some(identity.clone());
        Ok(identity)
    }

    /// The parse context for our installation.
    fn parse_context<'a>(&'a self, identity: &'a Identity) -> ParseContext<'a> {
        let mut ctx = ParseContext::new(&self.config.id, &self.names);
        ctx.team = Some(identity.team.as_str()).filter(|t| !t.is_empty());
        ctx.our_bot_id = identity.bot_id.as_deref();
        ctx.our_app_id = identity.app_id.as_deref();
        ctx.our_bot_user = Some(identity.bot_user.as_str()).filter(|u| !u.is_empty());
        ctx.relay_marker = &self.config.relay_marker;
        ctx
    }

    /// Parses a slash command (a Socket Mode payload, or with `form` an HTTP
    /// form body) and fills in the person's name.
    pub(crate) async fn parse_command(
        &self,
        body: &[u8],
        form: bool,
        envelope_id: Option<&str>,
    ) -> Result<Command, events::Rejected> {
        let identity = self.identity().unwrap_or_default();
        let command = {
            let ctx = self.parse_context(&identity);
            if form {
                events::parse_command_form(body, &ctx)?
            } else {
                events::parse_command_payload(body, envelope_id, &ctx)?
            }
        };
        Ok(match command {
            Command::Submit {
                event,
                reply,
                handle,
                direct,
            } => {
                let mut event = Box::new(self.enrich(*event).await);
                let person = &mut event.sender.person;
                if person.display_name == person.user.as_str()
                    && let Some(handle) = &handle
                {
                    person.display_name.clone_from(handle);
                }
                if direct {
                    // Answered privately: in the person's IM with the bot.
                    match self.direct_channel(event.sender.person.user.as_str()).await {
                        Ok(im) => event.origin.channel = im,
                        Err(e) => {
                            tracing::warn!(bridge = %self.config.id, error = %e, "No direct conversation for a slash command's answer.");
                            return Ok(Command::Reply(COMMAND_FAILED.to_owned()));
                        }
                    }
                }
                Command::Submit {
                    event,
                    reply,
                    handle,
                    direct,
                }
            }
            other => other,
        })
    }

    /// Runs a parsed slash command: submits its event unless this process
    /// already stored it (a redelivery), and resolves to the reply to show
    /// once the event is stored. The submit happens now, the wait in the
    /// returned future, so a caller can keep reading while it waits.
    pub(crate) async fn start_command(
        &self,
        sink: &InboundSink,
        command: Command,
    ) -> impl std::future::Future<Output = String> + Send + 'static {
        let reply = command.reply().to_owned();
        let submitted = match command {
            Command::Reply(_) => None,
            Command::Submit { event, .. } => {
                let id = event.event.clone();
                if self.command_seen(&id) {
                    tracing::debug!(bridge = %self.config.id, event = %id, "Slash command redelivered; already stored.");
                    None
                } else {
                    Some((id, sink.submit(*event).await))
                }
            }
        };
        let bridge = self.this.clone();
        async move {
            let Some((id, submitted)) = submitted else {
                return reply;
            };
            let stored = match submitted {
                Ok(stored) => stored.await,
                Err(e) => Err(e),
            };
            match stored {
                Ok(()) => {
                    if let Some(bridge) = bridge.upgrade() {
                        bridge.remember_command(id);
                    }
                    reply
                }
                Err(e) => {
                    if let Some(bridge) = bridge.upgrade() {
                        tracing::warn!(bridge = %bridge.config.id, error = %e, "Relay refused a slash command.");
                    }
                    COMMAND_FAILED.to_owned()
                }
            }
        }
    }

    /// True when a command with this event id was stored recently.
    pub(crate) fn command_seen(&self, id: &EventId) -> bool {
        self.commands_stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// Remembers a stored command (the last [`RECENT_COMMANDS`]).
    pub(crate) fn remember_command(&self, id: EventId) {
        let mut recent = self
            .commands_stored
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !recent.contains(&id) {
            if recent.len() >= RECENT_COMMANDS {
                recent.pop_front();
            }
            recent.push_back(id);
        }
    }

    /// Parses a payload (Socket Mode or HTTP) and fills in names.
    pub(crate) async fn parse(&self, body: &[u8]) -> Result<Payload, events::Rejected> {
        let identity = self.identity().unwrap_or_default();
        let payload = {
            let ctx = self.parse_context(&identity);
            events::parse_payload(body, &ctx)?
        };
        Ok(match payload {
            Payload::Events(list) => {
                let mut out = Vec::with_capacity(list.len());
                for ev in list {
                    out.push(self.enrich(ev).await);
                }
                Payload::Events(self.commands_from_ims(out))
            }
            other => other,
        })
    }

    /// Fills in the sender's name and avatar, and mention names, from `users.info`.
    /// Gives a person known only by id their name and avatar (`users.info`).
    async fn name(&self, person: &mut Person) {
        let unnamed = person.display_name.is_empty() || person.display_name == person.user.as_str();
        if unnamed
            && let Some(info) = self
                .names
                .user_info(&self.api, self.token(), person.user.as_str())
                .await
        {
            person.display_name = info.name;
            if person.avatar.is_none() {
                person.avatar = info.avatar;
            }
            person.is_bot |= info.is_bot;
        }
    }

    async fn enrich(&self, mut event: Inbound) -> Inbound {
        if event.sender.is_ours {
            return event;
        }
        self.name(&mut event.sender.person).await;
        if let InboundKind::Call(call) = &mut event.kind {
            // Huddle and call events name people by id only.
            for person in call
                .started_by
                .iter_mut()
                .chain(call.participants.iter_mut())
            {
                self.name(person).await;
            }
        }
        let body = match &mut event.kind {
            InboundKind::Message { message, .. } | InboundKind::Edit { message, .. } => {
                Some(&mut message.body)
            }
            _ => None,
        };
        if let Some(body) = body {
            let mut unknown = Vec::new();
            body.for_each_inline_mut(&mut |i| {
                if let Inline::UserMention { user, name, .. } = i
                    && name == user.as_str()
                {
                    unknown.push(user.to_string());
                }
            });
            for id in &unknown {
                self.names.user_info(&self.api, self.token(), id).await;
            }
            if !unknown.is_empty() {
                body.for_each_inline_mut(&mut |i| {
                    if let Inline::UserMention { user, name, .. } = i
                        && let Some(info) = self.names.cached_user(user.as_str())
                    {
                        *name = info.name;
                    }
                });
            }
        }
        event
    }

    /// Pushes parsed events into the relay, moving each channel's catch-up
    /// cursor once its messages are stored. Returns only when all are durable.
    pub(crate) async fn push(
        &self,
        sink: &InboundSink,
        cursors: Option<&dyn switchboard_model::CursorStore>,
        events: Vec<Inbound>,
    ) -> Result<(), BridgeError> {
        let mut pending = Vec::with_capacity(events.len());
        for ev in events {
            let after = crate::direct::AfterStored::of(&ev);
            let stored = sink
                .submit(ev)
                .await
                .map_err(|e| BridgeError::transient(format!("relay refused the event: {e}")))?;
            pending.push((stored, after));
        }
        for (stored, after) in pending {
            stored
                .await
                .map_err(|e| BridgeError::transient(format!("relay refused the event: {e}")))?;
            self.stored(cursors, after);
        }
        Ok(())
    }

    /// Reads what each portal channel got since its cursor and pushes it.
    /// A channel without a cursor starts from now (history before the portal
    /// existed is not replayed).
    pub(crate) async fn catch_up(&self, ctx: &BridgeContext) -> Result<usize, BridgeError> {
        let mut total = 0;
        for channel in ctx.channels() {
            if ctx.shutdown.is_cancelled() {
                break;
            }
            match ctx.cursors().get(&channel) {
                None => {
                    let now = format!("{}.000000", unix_now());
                    ctx.cursors().put(&channel, &now);
                }
                Some(cursor) => match self.catch_up_channel(ctx, &channel, &cursor).await {
                    Ok(n) => total += n,
                    Err(e)
                        if matches!(
                            e,
                            BridgeError::NotFound { .. } | BridgeError::Permanent { .. }
                        ) =>
                    {
                        tracing::warn!(bridge = %self.config.id, channel = %channel, error = %e, "Cannot catch up this channel.");
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        if total > 0 {
            tracing::info!(bridge = %self.config.id, messages = total, "Caught up on messages sent while disconnected.");
        }
        Ok(total)
    }

    async fn catch_up_channel(
        &self,
        ctx: &BridgeContext,
        channel: &ChannelId,
        cursor: &str,
    ) -> Result<usize, BridgeError> {
        // conversations.history — https://docs.slack.dev/reference/methods/conversations.history
        let mut messages: Vec<Value> = Vec::new();
        let mut page_cursor = String::new();
        loop {
            let mut args = json!({ "channel": channel.as_str(), "oldest": cursor, "inclusive": false, "limit": 200, "include_all_metadata": true });
            if !page_cursor.is_empty() {
                args["cursor"] = json!(page_cursor);
            }
            let page = self
                .api
                .call("conversations.history", self.token(), args, None)
                .await?;
            if let Some(list) = page.get("messages").and_then(Value::as_array) {
                messages.extend(list.iter().cloned());
            }
            page_cursor = page
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if page_cursor.is_empty() {
                break;
            }
        }
        // Threads with replies since the cursor.
        let mut replies: Vec<Value> = Vec::new();
        for parent in &messages {
            let latest = parent
                .get("latest_reply")
                .and_then(Value::as_str)
                .unwrap_or("");
            let ts = parent.get("ts").and_then(Value::as_str).unwrap_or("");
            if !latest.is_empty() && ts_after(latest, cursor) {
                // conversations.replies — https://docs.slack.dev/reference/methods/conversations.replies
                let args = json!({ "channel": channel.as_str(), "ts": ts, "oldest": cursor, "inclusive": false, "limit": 200, "include_all_metadata": true });
                let page = self
                    .api
                    .call("conversations.replies", self.token(), args, None)
                    .await?;
                if let Some(list) = page.get("messages").and_then(Value::as_array) {
                    replies.extend(
                        list.iter()
                            .filter(|m| m.get("ts").and_then(Value::as_str) != Some(ts))
                            .cloned(),
                    );
                }
            }
        }
        messages.extend(replies);
        messages.sort_by(|a, b| {
            ts_key(a)
                .partial_cmp(&ts_key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut events = Vec::new();
        for m in messages {
            let ts = m
                .get("ts")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut event = m.clone();
            event["type"] = json!("message");
            event["channel"] = json!(channel.as_str());
            let wrapper = json!({
                "type": "event_callback",
                "event_id": format!("catchup:{}:{}", channel, ts),
                "event_time": ts.split('.').next().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0),
                "event": event,
            });
            match self.parse(wrapper.to_string().as_bytes()).await {
                Ok(Payload::Events(list)) => events.extend(list),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(bridge = %self.config.id, reason = %e, "Skipping a history message that does not parse.")
                }
            }
        }
        let n = events.len();
        self.push(&ctx.inbound, Some(ctx.cursors()), events).await?;
        Ok(n)
    }

    fn remember(&self, op: &OpId, delivered: &Delivered) {
        let mut posted = self.posted.lock().unwrap_or_else(|p| p.into_inner());
        if posted.len() > 10_000 {
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

    /// Finds the message an earlier attempt of `op` posted, by the op id in
    /// its metadata: the conversation (or thread) is read back to the op's
    /// acceptance, once for all the ops of a restart (see
    /// [`switchboard_model::recovery`]).
    async fn find_posted(
        &self,
        channel: &str,
        thread: Option<&str>,
        op: &OutboundOp,
    ) -> Result<Option<MessageId>, BridgeError> {
        let conversation = format!("{channel}/{}", thread.unwrap_or(""));
        if let Lookup::Read { since } = self.earlier.plan(&conversation, op) {
            let read_at = Timestamp::now();
            let found = self.read_markers(channel, thread, since).await?;
            self.earlier.record(&conversation, since, read_at, found);
        }
        Ok(self.earlier.find(&conversation, op.id.as_str()))
    }

    /// Our posts' op ids and timestamps in a conversation (or one thread),
    /// from the newest back to `since`, page by page
    /// (conversations.history / conversations.replies with `oldest`).
    async fn read_markers(
        &self,
        channel: &str,
        thread: Option<&str>,
        since: Timestamp,
    ) -> Result<Vec<(String, MessageId)>, BridgeError> {
        let (method, mut args) = match thread {
            Some(ts) => (
                "conversations.replies",
                json!({ "channel": channel, "ts": ts }),
            ),
            None => ("conversations.history", json!({ "channel": channel })),
        };
        args["limit"] = json!(MARKER_PAGE);
        args["oldest"] = json!(slack_ts(since));
        args["inclusive"] = json!(true);
        args["include_all_metadata"] = json!(true);
        let mut found = Vec::new();
        for _ in 0..MARKER_PAGES {
            let page = self
                .api
                .call(method, self.token(), args.clone(), None)
                .await?;
            for m in page
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let ours = m.pointer("/metadata/event_type").and_then(Value::as_str)
                    == Some(self.config.relay_marker.as_str());
                let op = m
                    .pointer("/metadata/event_payload/op")
                    .and_then(Value::as_str);
                if let (true, Some(op), Some(ts)) = (ours, op, m.get("ts").and_then(Value::as_str))
                {
                    found.push((op.to_owned(), MessageId::new(ts)));
                }
            }
            match page
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
            {
                Some(cursor) => args["cursor"] = json!(cursor),
                None => return Ok(found),
            }
        }
        tracing::warn!(
            bridge = %self.config.id,
            channel,
            pages = MARKER_PAGES,
            "Read back as far as allowed without reaching the op's acceptance; an older post of a retried op may be posted again."
        );
        Ok(found)
    }

    async fn send(
        &self,
        op: &OutboundOp,
        message: &Message,
        media: &dyn MediaSource,
    ) -> Result<Delivered, BridgeError> {
        let token = self.op_token(op);
        let channel = op.channel.as_str();
        let thread = message.thread_root.as_ref().map(|t| t.as_str().to_owned());
        let mut body = message.body.clone();
        if message.style == MessageStyle::Emote {
            let name = op.author.as_ref().map_or("", |a| a.display_name.as_str());
            body = body.prefixed(vec![Inline::text(format!("* {name} "))]);
        }
        if body.is_empty() && !message.attachments.is_empty() {
            // The text part carries who shared the files, and the mapping.
            let names: Vec<&str> = message
                .attachments
                .iter()
                .map(|a| a.name.as_str())
                .collect();
            body = RichText::plain(format!("📎 {}", names.join(", ")));
        }
        // A previous attempt may have posted the text already (its metadata
        // carries the op id); then only what is missing is done.
        let found = if self.earlier.must_look(op) {
            self.find_posted(channel, thread.as_deref(), op).await?
        } else {
            None
        };
        self.earlier.attempting(&op.id);
        let ts = match found {
            Some(ts) => ts,
            None => {
                let mut args = self.post_args(op, &body);
                if let Some(ts) = &thread {
                    args["thread_ts"] = json!(ts);
                }
                // chat.postMessage — https://docs.slack.dev/reference/methods/chat.postMessage
                let answer = self
                    .api
                    .call("chat.postMessage", &token, args, Some(channel))
                    .await?;
                let ts = answer.get("ts").and_then(Value::as_str).ok_or_else(|| {
                    BridgeError::transient("chat.postMessage answered without a ts")
                })?;
                MessageId::new(ts)
            }
        };
        for attachment in &message.attachments {
            self.upload(op, attachment, thread.as_deref(), media)
                .await?;
        }
        Ok(Delivered::one(ts))
    }

    /// The common arguments of a post: text, blocks, puppet name and icon, our marker.
    fn post_args(&self, op: &OutboundOp, body: &RichText) -> Value {
        let text = mrkdwn::render(body, &self.config.id);
        let mut args = json!({
            "channel": op.channel.as_str(),
            "text": text,
            "unfurl_links": false,
            "unfurl_media": false,
            "metadata": { "event_type": self.config.relay_marker, "event_payload": { "op": op.id.as_str() } },
        });
        if !body.is_empty() {
            args["blocks"] = json!([blocks::render_rich_text(body, &self.config.id)]);
        }
        if let Some(author) = op.author.as_ref().filter(|a| !a.is_linked_account) {
            args["username"] = json!(author.display_name);
            if let Some(icon) = author
                .avatar
                .as_ref()
                .filter(|a| a.starts_with("http://") || a.starts_with("https://"))
            {
                args["icon_url"] = json!(icon);
            }
        }
        args
    }

    /// Uploads one file with the upload-v2 flow.
    async fn upload(
        &self,
        op: &OutboundOp,
        attachment: &Attachment,
        thread: Option<&str>,
        media: &dyn MediaSource,
    ) -> Result<(), BridgeError> {
        let token = self.op_token(op);
        if attachment.size.is_some_and(|s| s > self.config.max_upload) {
            return Err(BridgeError::permanent(format!(
                "file {} is larger than {} bytes",
                attachment.name, self.config.max_upload
            )));
        }
        let origin = op
            .origin
            .as_ref()
            .map(|o| o.bridge.clone())
            .unwrap_or_else(|| self.config.id.clone());
        let bytes = media.fetch(&origin, attachment).await?;
        if bytes.len() as u64 > self.config.max_upload {
            return Err(BridgeError::permanent(format!(
                "file {} is larger than {} bytes",
                attachment.name, self.config.max_upload
            )));
        }
        // files.getUploadURLExternal — https://docs.slack.dev/reference/methods/files.getUploadURLExternal
        let slot = self
            .api
            .call(
                "files.getUploadURLExternal",
                &token,
                json!({ "filename": attachment.name, "length": bytes.len() }),
                None,
            )
            .await?;
        let url = slot
            .get("upload_url")
            .and_then(Value::as_str)
            .ok_or_else(|| BridgeError::transient("no upload_url"))?;
        let file_id = slot
            .get("file_id")
            .and_then(Value::as_str)
            .ok_or_else(|| BridgeError::transient("no file_id"))?
            .to_owned();
        self.api.upload(url, bytes).await?;
        // files.completeUploadExternal — https://docs.slack.dev/reference/methods/files.completeUploadExternal
        let mut args = json!({
            "files": json!([{ "id": file_id, "title": attachment.name }]).to_string(),
            "channel_id": op.channel.as_str(),
        });
        if let Some(ts) = thread {
            args["thread_ts"] = json!(ts);
        }
        self.api
            .call("files.completeUploadExternal", &token, args, None)
            .await?;
        Ok(())
    }

    async fn edit(
        &self,
        op: &OutboundOp,
        parts: &[MessageId],
        message: &Message,
    ) -> Result<Delivered, BridgeError> {
        let token = self.op_token(op);
        let Some(first) = parts.first() else {
            return Ok(Delivered::none());
        };
        let mut args = self.post_args(op, &message.body);
        args["ts"] = json!(first.as_str());
        if let Some(o) = args.as_object_mut() {
            o.remove("unfurl_links");
            o.remove("unfurl_media");
            o.remove("username");
            o.remove("icon_url");
        }
        // chat.update — https://docs.slack.dev/reference/methods/chat.update (4,000 characters at most)
        match self
            .api
            .call(
                "chat.update",
                &token,
                args.clone(),
                Some(op.channel.as_str()),
            )
            .await
        {
            Err(ApiError::Slack { code, .. }) if code == "msg_too_long" => {
                let text: String = args["text"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(3990)
                    .collect();
                args["text"] = json!(format!("{text}…"));
                if let Some(o) = args.as_object_mut() {
                    o.remove("blocks");
                }
                self.api
                    .call("chat.update", &token, args, Some(op.channel.as_str()))
                    .await?;
            }
            other => {
                other?;
            }
        }
        for extra in &parts[1..] {
            self.delete_one(&token, op.channel.as_str(), extra).await?;
        }
        Ok(Delivered::none())
    }

    async fn delete_one(
        &self,
        token: &Token,
        channel: &str,
        ts: &MessageId,
    ) -> Result<(), BridgeError> {
        // chat.delete — https://docs.slack.dev/reference/methods/chat.delete
        match self
            .api
            .call(
                "chat.delete",
                token,
                json!({ "channel": channel, "ts": ts.as_str() }),
                Some(channel),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("message_not_found") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn react(
        &self,
        op: &OutboundOp,
        target: &MessageId,
        key: &str,
        add: bool,
    ) -> Result<Delivered, BridgeError> {
        let token = self.op_token(op);
        let channel = op.channel.as_str();
        let name = match emoji::reaction_name(key) {
            Ok(name) => name,
            Err(_) if add => {
                // Slack has no such emoji: say it in the thread instead.
                let who = op
                    .author
                    .as_ref()
                    .map_or("Someone", |a| a.display_name.as_str());
                let body = RichText::plain(format!("{who} reacted {key}"));
                let mut args = self.post_args(op, &body);
                args["thread_ts"] = json!(target.as_str());
                self.api
                    .call("chat.postMessage", &token, args, Some(channel))
                    .await?;
                return Ok(Delivered::none());
            }
            Err(_) => return Ok(Delivered::none()),
        };
        let method = if add {
            "reactions.add"
        } else {
            "reactions.remove"
        };
        // reactions.add / reactions.remove — https://docs.slack.dev/reference/methods/reactions.add
        let args = json!({ "channel": channel, "timestamp": target.as_str(), "name": name });
        match self.api.call(method, &token, args, Some(channel)).await {
            Ok(_) => Ok(Delivered::none()),
            // Our bot already shows (or no longer shows) this reaction: nothing to do.
            Err(e) if matches!(e.code(), Some("already_reacted" | "no_reaction")) => {
                Ok(Delivered::none())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn call(
        &self,
        op: &OutboundOp,
        event: &switchboard_model::CallEvent,
        invite: &[MessageId],
    ) -> Result<Delivered, BridgeError> {
        let token = self.op_token(op);
        let channel = op.channel.as_str();
        let slack_call = invite.get(1).map(|m| m.as_str().to_owned());
        match (&event.state, slack_call) {
            (CallState::Ended { duration }, Some(call)) => {
                // calls.end — https://docs.slack.dev/reference/methods/calls.end
                let mut args = json!({ "id": call });
                if let Some(d) = duration {
                    args["duration"] = json!(d.as_secs());
                }
                self.api.call("calls.end", &token, args, None).await?;
                Ok(Delivered::none())
            }
            (_, Some(call)) => {
                // calls.update — https://docs.slack.dev/reference/methods/calls.update
                let mut args = json!({ "id": call });
                if let Some(t) = &event.title {
                    args["title"] = json!(t);
                }
                if let Some(u) = &event.join_url {
                    args["join_url"] = json!(u);
                }
                self.api.call("calls.update", &token, args, None).await?;
                Ok(Delivered::none())
            }
            (_, None) if !invite.is_empty() => {
                // The invite was a notice (the call had no link to join):
                // later states edit it rather than posting again.
                let body = RichText::plain(event.describe());
                self.edit(op, &invite[..1], &Message::new(body)).await?;
                Ok(Delivered::none())
            }
            (_, None) => {
                let Some(join_url) = &event.join_url else {
                    // No link to join: a notice is all Slack can show.
                    let body = RichText::plain(event.describe());
                    return self.send(op, &Message::new(body), &NoFiles).await;
                };
                // calls.add — https://docs.slack.dev/reference/methods/calls.add
                let mut args = json!({
                    "external_unique_id": event.call.as_str(),
                    "join_url": join_url,
                    "date_start": unix_now(),
                });
                // With a bot token Slack requires the creator: the person's
                // own account when linked, else our bot user.
                let creator = op
                    .author
                    .as_ref()
                    .filter(|a| a.is_linked_account)
                    .map(|a| a.user.to_string())
                    .or_else(|| {
                        self.identity()
                            .map(|i| i.bot_user)
                            .filter(|u| !u.is_empty())
                    });
                let creator = match creator {
                    Some(c) => c,
                    None => self.authenticate().await?.bot_user,
                };
                args["created_by"] = json!(creator);
                if let Some(t) = &event.title {
                    args["title"] = json!(t);
                }
                let added = self.api.call("calls.add", &token, args, None).await?;
                let call_id = added
                    .pointer("/call/id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| BridgeError::transient("calls.add answered without a call id"))?
                    .to_owned();
                let mut post = self.post_args(op, &RichText::plain(event.describe()));
                post["blocks"] = json!([{ "type": "call", "call_id": call_id }]);
                let answer = self
                    .api
                    .call("chat.postMessage", &token, post, Some(channel))
                    .await?;
                let ts = answer.get("ts").and_then(Value::as_str).ok_or_else(|| {
                    BridgeError::transient("chat.postMessage answered without a ts")
                })?;
                if matches!(event.state, CallState::Ended { .. }) {
                    self.api
                        .call("calls.end", &token, json!({ "id": call_id }), None)
                        .await?;
                }
                Ok(Delivered {
                    ids: vec![MessageId::new(ts), MessageId::new(call_id)],
                })
            }
        }
    }
}

/// A media source with no files (for notices).
struct NoFiles;

#[async_trait]
impl MediaSource for NoFiles {
    async fn fetch(
        &self,
        _origin: &BridgeId,
        attachment: &Attachment,
    ) -> Result<Vec<u8>, BridgeError> {
        Err(BridgeError::not_found(format!("file {}", attachment.name)))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn ts_key(m: &Value) -> f64 {
    m.get("ts")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// True when Slack timestamp `a` is later than `b` (compared as decimals).
pub(crate) fn ts_after(a: &str, b: &str) -> bool {
    let split = |s: &str| {
        let (secs, micros) = s.split_once('.').unwrap_or((s, "0"));
        (
            secs.parse::<u64>().unwrap_or(0),
            format!("{micros:0<6}").parse::<u64>().unwrap_or(0),
        )
    };
    split(a) > split(b)
}

/// Moves a channel's cursor forward to `ts` (never back).
pub(crate) fn advance_cursor(
    cursors: &dyn switchboard_model::CursorStore,
    channel: &ChannelId,
    ts: &str,
) {
    match cursors.get(channel) {
        Some(current) if !ts_after(ts, &current) => {}
        _ => cursors.put(channel, ts),
    }
}

#[async_trait]
impl Bridge for SlackBridge {
    fn id(&self) -> &BridgeId {
        &self.config.id
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full();
        // Slack has threads, not replies to single messages.
        caps.replies = false;
        caps.max_message_len = 40_000;
        caps.max_upload = self.config.max_upload;
        // Puppets are a name and icon per message, not accounts.
        caps.puppet_accounts = false;
        // Channels belong to the workspace: never renamed from elsewhere.
        caps.mirrors_channel_info = false;
        caps
    }

    async fn health_check(&self) -> Result<(), BridgeError> {
        self.authenticate().await.map(|_| ())
    }

    async fn run(&self, ctx: BridgeContext) -> Result<(), BridgeError> {
        let identity = self.authenticate().await?;
        tracing::info!(bridge = %self.config.id, team = %identity.team, "Slack workspace authenticated.");
        *self.sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(ctx.inbound.clone());
        self.set_portals(Some(ctx.channels_watch()));
        let result = match &self.config.mode {
            InboundMode::Socket { app_token } => crate::socket::run(self, &ctx, app_token).await,
            InboundMode::Events { .. } => {
                // Slack pushes to our endpoint; here we only catch up and wait.
                self.catch_up(&ctx).await?;
                ctx.set_state(switchboard_model::BridgeState::Connected);
                ctx.shutdown.cancelled().await;
                Ok(())
            }
        };
        *self.sink.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.set_portals(None);
        result
    }

    async fn deliver(
        &self,
        op: &OutboundOp,
        media: &dyn MediaSource,
    ) -> Result<Delivered, BridgeError> {
        if let Some(done) = self.already_posted(&op.id) {
            return Ok(done);
        }
        let delivered = match &op.kind {
            OutboundKind::Send { message } => self.send(op, message, media).await?,
            OutboundKind::Edit { parts, message } => self.edit(op, parts, message).await?,
            OutboundKind::Delete { parts } => {
                let token = self.op_token(op);
                for p in parts {
                    self.delete_one(&token, op.channel.as_str(), p).await?;
                }
                Delivered::none()
            }
            OutboundKind::React { target, key } => self.react(op, target, key, true).await?,
            OutboundKind::Unreact { target, key, .. } => self.react(op, target, key, false).await?,
            OutboundKind::Call { event, invite } => self.call(op, event, invite).await?,
            _ => {
                return Err(BridgeError::permanent(
                    "operation not supported by the Slack connector",
                ));
            }
        };
        self.remember(&op.id, &delivered);
        Ok(delivered)
    }

    async fn ensure_puppet(&self, person: &Person) -> Result<PuppetRef, BridgeError> {
        // Someone who linked their own Slack account appears as themselves.
        if let Some(account) = self.accounts().account_for(&person.bridge, &person.user) {
            let name = crate::names::Names::user(&self.names, account.user.as_str())
                .unwrap_or_else(|| person.display_name.clone());
            return Ok(PuppetRef::new(account.user, name).linked());
        }
        // Everyone else: a name and an icon per message.
        let platform = person.bridge.platform();
        let label = match platform {
            "teams" => "Teams",
            "matrix" => "Matrix",
            "slack" => "Slack",
            other => other,
        };
        let name = format!("{} ({label})", person.display_name);
        let user = UserId::new(format!("puppet:{}:{}", person.bridge, person.user));
        Ok(PuppetRef::new(user, name).with_avatar(person.avatar.clone()))
    }

    /// The bot's IM with `user` (`conversations.open`, which gives the same
    /// IM again when it exists). `with` is shown per message, by name and
    /// icon, like anyone relayed into Slack.
    async fn open_direct(
        &self,
        user: &UserId,
        with: &Person,
    ) -> Result<Option<ChannelId>, BridgeError> {
        let _ = with;
        self.direct_channel(user.as_str()).await.map(Some)
    }

    /// People of the workspace (`users.list`, cached) whose display name,
    /// real name or handle contains `query`; no bots, deleted accounts or
    /// Slackbot.
    async fn find_people(&self, query: &str, limit: usize) -> Result<Vec<Person>, BridgeError> {
        self.search_people(query, limit).await
    }

    /// `conversations.info`: the channel's name, and its topic (or, when it
    /// has none, its purpose), with the workspace's icon as the avatar.
    /// Direct messages have none of these.
    async fn channel_info(&self, channel: &ChannelId) -> Result<Option<ChannelInfo>, BridgeError> {
        let args = serde_json::json!({"channel": channel.as_str()});
        let reply = self
            .api
            .call("conversations.info", self.token(), args, None)
            .await?;
        let Some(mut info) = channel_info_of(reply.get("channel")) else {
            return Ok(None);
        };
        info.avatar = self.workspace_icon().await;
        Ok(Some(info))
    }

    async fn fetch_media(&self, attachment: &Attachment) -> Result<Vec<u8>, BridgeError> {
        let url = match attachment.url.strip_prefix(events::STUB_FILE_URL_PREFIX) {
            // Slack Connect stubs: the file's URL comes from files.info.
            Some(file) => {
                // files.info — https://docs.slack.dev/reference/methods/files.info
                let info = self
                    .api
                    .call("files.info", self.token(), json!({ "file": file }), None)
                    .await?;
                info.pointer("/file/url_private_download")
                    .or_else(|| info.pointer("/file/url_private"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        BridgeError::not_found(format!("file {file} has no download URL"))
                    })?
                    .to_owned()
            }
            None => attachment.url.clone(),
        };
        self.api
            .download(&url, self.token(), self.config.max_upload)
            .await
    }

    /// OAuth v2 with the redirect on the daemon's listener (when
    /// `public_url` and the app's client are configured).
    async fn begin_login(&self) -> Result<Option<LoginFlow>, BridgeError> {
        Ok(self.config.chat_login.as_ref().map(|settings| {
            crate::login::begin_in_chat(&self.api, &self.config.id, settings, &self.chat_logins)
        }))
    }

    fn http_endpoints(&self) -> Vec<(String, Arc<dyn HttpEndpoint>)> {
        let mut endpoints = self.events_endpoint();
        if self.config.chat_login.is_some() {
            endpoints.push((
                crate::login::redirect_path(&self.config.id),
                Arc::new(crate::login::OAuthEndpoint::new(self.chat_logins.clone()))
                    as Arc<dyn HttpEndpoint>,
            ));
        }
        endpoints
    }
}

impl SlackBridge {
    /// The Events API Request URL, in events mode.
    fn events_endpoint(&self) -> Vec<(String, Arc<dyn HttpEndpoint>)> {
        match (&self.config.mode, self.this.upgrade()) {
            (
                InboundMode::Events {
                    signing_secret,
                    path,
                },
                Some(this),
            ) => {
                vec![(
                    path.clone(),
                    Arc::new(EventsEndpoint::new(this, signing_secret.clone()))
                        as Arc<dyn HttpEndpoint>,
                )]
            }
            _ => Vec::new(),
        }
    }
}

/// The HTTP Events API Request URL: verifies Slack's signature, parses,
/// pushes into the relay and answers 200 once the events are stored.
#[derive(Debug)]
pub struct EventsEndpoint {
    bridge: Arc<SlackBridge>,
    secret: Token,
}

impl EventsEndpoint {
    /// The endpoint of `bridge` (which must be in Events API mode).
    pub fn new(bridge: Arc<SlackBridge>, secret: Token) -> Self {
        EventsEndpoint { bridge, secret }
    }
}

#[async_trait]
impl HttpEndpoint for EventsEndpoint {
    async fn handle(&self, request: HttpRequest) -> HttpResponse {
        if request.method != "POST" {
            return HttpResponse::text(405, "POST only");
        }
        let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
        if let Err(e) = crate::signature::verify(
            self.secret.expose().as_bytes(),
            request.header("x-slack-request-timestamp"),
            request.header("x-slack-signature"),
            &request.body,
            now,
        ) {
            tracing::warn!(bridge = %self.bridge.config.id, reason = %e, "Refused an Events API request with a bad signature.");
            return HttpResponse::text(401, "invalid signature");
        }
        let is_form = request.header("content-type").is_some_and(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        if is_form {
            return self.command(&request.body).await;
        }
        let payload = match self.bridge.parse(&request.body).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(bridge = %self.bridge.config.id, reason = %e, "Refused an Events API payload.");
                return HttpResponse::text(400, format!("bad payload: {e}"));
            }
        };
        match payload {
            Payload::UrlVerification { challenge } => {
                HttpResponse::json(200, &json!({ "challenge": challenge }))
            }
            Payload::Events(events) => {
                let sink = self
                    .bridge
                    .sink
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let Some(sink) = sink else {
                    // Not running: Slack will retry.
                    return HttpResponse::text(503, "not ready");
                };
                match self.bridge.push(&sink, None, events).await {
                    Ok(()) => HttpResponse::empty(200),
                    Err(e) => {
                        tracing::warn!(bridge = %self.bridge.config.id, error = %e, "Events not stored; Slack will retry.");
                        HttpResponse::text(503, "not stored")
                    }
                }
            }
            Payload::AppRateLimited { minute } => {
                tracing::warn!(bridge = %self.bridge.config.id, minute, "Slack is rate limiting event deliveries; catch-up will fill the gap.");
                HttpResponse::empty(200)
            }
            Payload::Ignored(_) => HttpResponse::empty(200),
        }
    }
}

impl EventsEndpoint {
    /// A form POST: a slash command (answered with the ephemeral reply once
    /// its event is stored), or an interactive payload (not used; 200).
    async fn command(&self, body: &[u8]) -> HttpResponse {
        let id = &self.bridge.config.id;
        let is_command = events::command::form_decode(body)
            .map(|fields| fields.iter().any(|(k, _)| k == "command"))
            .unwrap_or(true);
        if !is_command {
            return HttpResponse::empty(200);
        }
        let command = match self.bridge.parse_command(body, true, None).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(bridge = %id, reason = %e, "Refused a slash command.");
                return HttpResponse::text(400, format!("bad command: {e}"));
            }
        };
        let sink = self
            .bridge
            .sink
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(sink) = sink else {
            return HttpResponse::json(200, &events::command::reply_json(COMMAND_FAILED));
        };
        let reply = self.bridge.start_command(&sink, command).await.await;
        HttpResponse::json(200, &events::command::reply_json(&reply))
    }
}

/// The workspace icon in a `team.info` answer, unless it is the default.
fn workspace_icon_of(reply: &serde_json::Value) -> Option<String> {
    let icon = reply.get("team")?.get("icon")?;
    if icon
        .get("image_default")
        .and_then(serde_json::Value::as_bool)
        == Some(true)
    {
        return None;
    }
    icon.get("image_132")
        .and_then(serde_json::Value::as_str)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_owned)
}

/// A channel's name and topic from a `conversations.info` channel object;
/// `None` for a direct message or when it carries neither.
fn channel_info_of(channel: Option<&serde_json::Value>) -> Option<ChannelInfo> {
    let channel = channel?;
    if channel.get("is_im").and_then(serde_json::Value::as_bool) == Some(true) {
        return None;
    }
    let text = |field: &str| {
        channel
            .get(field)
            .and_then(|v| v.get("value"))
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let info = ChannelInfo {
        name: channel
            .get("name")
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        topic: text("topic").or_else(|| text("purpose")),
        avatar: None,
    };
    (!info.is_empty()).then_some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_compare_as_decimals() {
        assert!(ts_after("1700000000.000200", "1700000000.000100"));
        assert!(ts_after("1700000001.000000", "1700000000.999999"));
        assert!(!ts_after("1700000000.000100", "1700000000.000100"));
        assert!(ts_after("1700000000.1", "1700000000.000009"));
    }

    #[test]
    fn channel_info_takes_the_name_and_the_topic_or_else_the_purpose() {
        let channel = serde_json::json!({
            "id": "C1", "name": "general", "is_im": false,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "Announcements", "creator": "U1", "last_set": 1}
        });
        let info = channel_info_of(Some(&channel)).expect("info");
        assert_eq!(info.name.as_deref(), Some("general"));
        assert_eq!(info.topic.as_deref(), Some("Announcements"));
        let mut with_topic = channel.clone();
        with_topic["topic"]["value"] = "Launch on Friday".into();
        let info = channel_info_of(Some(&with_topic)).expect("info");
        assert_eq!(info.topic.as_deref(), Some("Launch on Friday"));
        let im = serde_json::json!({"id": "D1", "is_im": true, "user": "U1"});
        assert_eq!(channel_info_of(Some(&im)), None, "a DM has no name");
        assert_eq!(channel_info_of(None), None);
    }

    /// Slack's own captures of `conversations.info`, when the corpus is given.
    #[test]
    fn channel_info_of_the_captured_conversations_info_replies() {
        let Some(root) = std::env::var_os("SWITCHBOARD_CONFORMANCE_DIR") else {
            println!("note: SWITCHBOARD_CONFORMANCE_DIR is unset; skipping");
            return;
        };
        let dir = std::path::Path::new(&root).join("slack/web/conversations.info");
        let read = |name: &str| -> serde_json::Value {
            let text = std::fs::read_to_string(dir.join(name))
                .unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let public = read("success.real-capture.public_channel.json");
        let info = channel_info_of(public.get("channel")).expect("a public channel has a name");
        assert_eq!(info.name.as_deref(), Some("general"));
        assert!(
            info.topic
                .as_deref()
                .is_some_and(|t| t.starts_with("This is the one channel")),
            "the empty topic falls back to the purpose: {info:?}"
        );
        let im = read("success.real-capture.im.json");
        assert_eq!(channel_info_of(im.get("channel")), None);
    }

    #[test]
    fn the_workspace_icon_unless_it_is_slack_s_default() {
        let custom = serde_json::json!({"ok": true, "team": {"id": "T1", "icon": {
            "image_132": "https://avatars.slack-edge.com/acme_132.png", "image_default": false}}});
        assert_eq!(
            workspace_icon_of(&custom).as_deref(),
            Some("https://avatars.slack-edge.com/acme_132.png")
        );
        let default = serde_json::json!({"ok": true, "team": {"id": "T1", "icon": {
            "image_132": "https://a.slack-edge.com/default_132.png", "image_default": true}}});
        assert_eq!(workspace_icon_of(&default), None);
        assert_eq!(workspace_icon_of(&serde_json::json!({"ok": true})), None);
    }

    #[test]
    fn cursors_only_move_forward() {
        let c = switchboard_model::MemoryCursors::default();
        let ch = ChannelId::new("C1");
        advance_cursor(&c, &ch, "10.000002");
        advance_cursor(&c, &ch, "10.000001");
        assert_eq!(
            switchboard_model::CursorStore::get(&c, &ch).as_deref(),
            Some("10.000002")
        );
    }
}
