//! [`MatrixBridge`]: the [`Bridge`] for one homeserver, as an application
//! service.
//!
//! Inbound: the homeserver pushes transactions to [`AppserviceEndpoint`]
//! (served on the daemon's listener under `/_matrix/app/`), which needs the
//! relay's context: `run` puts it in a slot and takes it out when it stops.
//!
//! Outbound: every op is posted by the ghost of the person it is done for
//! (identity assertion with the `as_token`), or by the bridge bot with a
//! `Name: ` prefix when there is no ghost. Sends use transaction ids derived
//! from the op id, so a replayed op gets the homeserver's first answer back;
//! ops this process already carried out are also answered from memory.

use crate::appservice::AppserviceEndpoint;
use crate::calls;
use crate::client::{ApiError, MatrixClient, Method, enc, txn_id};
use crate::config::{MatrixConfig, Token};
use crate::format::{self, FormatContext, Rendered};
use crate::ghosts::{GhostNamer, Ghosts};
use crate::media_proxy::MediaEndpoint;
use crate::rooms::Rooms;
use crate::split;
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use switchboard_model::{
    Attachment, Bridge, BridgeContext, BridgeError, BridgeId, BridgeState, CallEvent, CallState,
    Capabilities, ChannelId, CursorStore, Delivered, HttpEndpoint, LinkedAccounts, LoginFlow,
    MediaSource, Message, MessageId, MessageStyle, OpId, OutboundKind, OutboundOp, Person,
    PuppetRef, RichText, UserId,
};

/// How many finished ops are answered from memory before the oldest are forgotten.
const DELIVERED_MEMORY: usize = 10_000;
/// The content key of the first part of a split message: how many text
/// parts it was posted as (edits need it: files follow the text parts).
pub const PARTS_KEY: &str = "org.switchboard.parts";
/// The content key carrying the transaction id an event was sent with, so
/// that an op replayed after the homeserver forgot its transaction ids (they
/// are kept about 30 minutes, in memory) finds what it posted before.
pub const TXN_KEY: &str = "org.switchboard.txn";
/// How many of a room's newest events are searched for an earlier attempt.
const REPLAY_LOOKBACK: u32 = 100;
/// How much of the plain text the fallback of a long edit repeats.
const FALLBACK_BYTES: usize = 1_000;
/// How many reactions and names are kept in memory.
const CACHE_LIMIT: usize = 50_000;

/// The Matrix connector.
#[derive(Debug)]
pub struct MatrixBridge {
    pub(crate) config: MatrixConfig,
    appservice_url: String,
    pub(crate) client: MatrixClient,
    pub(crate) ghosts: Ghosts,
    pub(crate) rooms: Rooms,
    /// The relay's context while `run` is active (the endpoint needs it).
    context: RwLock<Option<BridgeContext>>,
    /// Ops carried out by this process, answered again on a retry.
    delivered: Mutex<(HashMap<OpId, Delivered>, Vec<OpId>)>,
    /// Reaction event id → (target event, key), for redactions of reactions.
    reactions: Mutex<HashMap<String, (String, String)>>,
    /// Display names of Matrix users.
    names: Mutex<HashMap<String, String>>,
    /// Matrix users' avatars (`mxc://` URIs), from profiles and memberships.
    avatars: Mutex<HashMap<String, String>>,
    /// The signed avatar endpoint, when the configuration has a `public_url`.
    media: Option<Arc<MediaEndpoint>>,
    /// Management rooms and direct chats (direct.rs).
    pub(crate) management: crate::direct::Management,
    /// People's own linked Matrix accounts (double puppeting).
    accounts_slot: switchboard_model::AccountsSlot,
    /// Links waiting for `link <code>` from the account to link (direct.rs).
    pub(crate) pending_links: crate::direct::PendingLinks,
    /// Sweeps of the portal rooms for events never pushed (sweep.rs).
    pub(crate) sweeps: crate::sweep::Sweeps,
    this: Weak<MatrixBridge>,
}

impl MatrixBridge {
    /// A connector for `config`; the homeserver pushes to `appservice_url`
    /// (the registration's `url`, where the daemon listens).
    pub fn new(config: MatrixConfig, appservice_url: String) -> Arc<Self> {
        let bot = config.bot_user_id();
        let namer = GhostNamer::new(&config.server_name, &bot, &config.ghost_templates);
        let client = MatrixClient::new(&config.homeserver_url, config.as_token.clone());
        let rooms = Rooms::new(
            &bot,
            &config.server_name,
            &config.alias_template,
            &config.invite,
        );
        let media = config.public_url.as_ref().map(|_| {
            Arc::new(MediaEndpoint::new(
                format!("{}media/", endpoint_prefix(&appservice_url)),
                &config.homeserver_url,
                config.as_token.clone(),
                &config.hs_token,
            ))
        });
        Arc::new_cyclic(|this| MatrixBridge {
            config,
            appservice_url,
            client,
            ghosts: Ghosts::new(namer),
            rooms,
            context: RwLock::new(None),
            delivered: Mutex::default(),
            reactions: Mutex::default(),
            names: Mutex::default(),
            avatars: Mutex::default(),
            media,
            management: crate::direct::Management::default(),
            accounts_slot: switchboard_model::AccountsSlot::default(),
            pending_links: crate::direct::PendingLinks::default(),
            sweeps: crate::sweep::Sweeps::default(),
            this: this.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MatrixConfig {
        &self.config
    }

    /// The token the homeserver must present.
    pub(crate) fn hs_token(&self) -> &Token {
        &self.config.hs_token
    }

    /// The bot's user id.
    pub fn bot(&self) -> &str {
        self.ghosts.namer().bot()
    }

    /// The ghost namer (who is ours).
    pub fn namer(&self) -> &GhostNamer {
        self.ghosts.namer()
    }

    /// The relay's context, while `run` is active.
    pub(crate) fn context(&self) -> Option<BridgeContext> {
        read(&self.context).clone()
    }

    pub(crate) fn set_context(&self, ctx: Option<BridgeContext>) {
        *self.context.write().unwrap_or_else(|p| p.into_inner()) = ctx;
    }

    /// The path under which the homeserver reaches us: the registration
    /// URL's path followed by `/_matrix/app/`.
    pub fn endpoint_prefix(&self) -> String {
        endpoint_prefix(&self.appservice_url)
    }

    /// The signed avatar endpoint (served under `{endpoint_prefix}media/`),
    /// when the configuration has a `public_url`.
    pub fn media_endpoint(&self) -> Option<&Arc<MediaEndpoint>> {
        self.media.as_ref()
    }

    /// The registration URL's path (`""` or `/some/prefix`).
    pub(crate) fn url_base(&self) -> String {
        url_path(&self.appservice_url)
    }

    /// The room of `channel`, created or joined as needed.
    pub async fn room_for(&self, channel: &ChannelId) -> Result<String, BridgeError> {
        let ctx = self.context();
        self.rooms
            .room_for(
                &self.client,
                channel,
                ctx.as_ref().map(BridgeContext::cursors),
            )
            .await
    }

    /// Remembers a reaction seen inbound, so its redaction can be told apart.
    pub(crate) fn remember_reaction(
        &self,
        cursors: &dyn CursorStore,
        event: &str,
        target: &str,
        key: &str,
    ) {
        let mut map = lock(&self.reactions);
        if map.len() >= CACHE_LIMIT {
            map.clear();
        }
        map.insert(event.to_owned(), (target.to_owned(), key.to_owned()));
        if let Ok(json) = serde_json::to_string(&(target, key)) {
            cursors.put(&ChannelId::new(format!("reaction|{event}")), &json);
        }
    }

    /// A reaction seen earlier, by its event id.
    pub(crate) fn reaction(
        &self,
        cursors: Option<&dyn CursorStore>,
        event: &str,
    ) -> Option<(String, String)> {
        if let Some(found) = lock(&self.reactions).get(event) {
            return Some(found.clone());
        }
        cursors
            .and_then(|c| c.get(&ChannelId::new(format!("reaction|{event}"))))
            .and_then(|s| serde_json::from_str(&s).ok())
    }

    /// Records a display name seen in a membership event.
    pub(crate) fn remember_name(&self, user: &str, name: &str) {
        let mut names = lock(&self.names);
        if names.len() >= CACHE_LIMIT {
            names.clear();
        }
        names.insert(user.to_owned(), name.to_owned());
    }

    /// Records an avatar seen in a membership event or a profile.
    pub(crate) fn remember_avatar(&self, user: &str, mxc: &str) {
        let mut avatars = lock(&self.avatars);
        if avatars.len() >= CACHE_LIMIT {
            avatars.clear();
        }
        avatars.insert(user.to_owned(), mxc.to_owned());
    }

    /// A Matrix user's avatar as an http(s) URL other platforms can show.
    /// With a `public_url`: the bridge's own signed media endpoint, which
    /// fetches the thumbnail of their `mxc://` avatar with the `as_token`.
    /// Without: the homeserver's thumbnail URL, which loads only where the
    /// homeserver serves media without authentication (the legacy media
    /// API); elsewhere the other platform shows its default.
    pub(crate) fn avatar_url(&self, user: &str) -> Option<String> {
        let mxc = lock(&self.avatars).get(user).cloned()?;
        if let (Some(media), Some(public_url)) = (&self.media, &self.config.public_url) {
            return media.url_for(public_url, &mxc);
        }
        let (server, media) = crate::media_proxy::parse_mxc(&mxc)?;
        Some(format!(
            "{}/_matrix/media/v3/thumbnail/{}/{}?width=96&height=96&method=crop",
            self.config.homeserver_url.trim_end_matches('/'),
            enc(server),
            enc(media)
        ))
    }

    /// A Matrix user's display name (profile lookup once, then memory);
    /// the localpart when they have none. The profile's avatar is kept too.
    pub(crate) async fn display_name(&self, user: &str) -> String {
        if let Some(name) = lock(&self.names).get(user) {
            return name.clone();
        }
        // GET /_matrix/client/v3/profile/{userId} — briefly: the homeserver
        // is waiting for our answer to its transaction.
        let looked_up = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.client.call(
                Method::Get,
                &format!("/_matrix/client/v3/profile/{}", enc(user)),
                None,
                None,
            ),
        )
        .await;
        let profile = looked_up.ok().and_then(Result::ok);
        if let Some(mxc) = profile
            .as_ref()
            .and_then(|v| v.get("avatar_url"))
            .and_then(Value::as_str)
        {
            self.remember_avatar(user, mxc);
        }
        let name = profile
            .as_ref()
            .and_then(|v| {
                v.get("displayname")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| localpart(user).to_owned());
        self.remember_name(user, &name);
        name
    }

    /// Runs `f` with the formatting context of this bridge.
    pub(crate) fn with_format<R>(&self, f: impl FnOnce(&FormatContext<'_>) -> R) -> R {
        let own = &self.config.id;
        let namer = self.ghosts.namer();
        let ghost_of = |bridge: &BridgeId, user: &UserId| -> Option<String> {
            if bridge == own {
                Some(user.as_str().to_owned())
            } else {
                namer.user_id(bridge, user)
            }
        };
        let person_of_ghost = |mxid: &str| self.ghosts.person_of(mxid);
        let ctx = FormatContext {
            bridge: own,
            server_name: &self.config.server_name,
            ghost_of: &ghost_of,
            person_of_ghost: &person_of_ghost,
        };
        f(&ctx)
    }

    fn render(&self, body: &RichText) -> Rendered {
        self.with_format(|ctx| format::render(body, ctx))
    }

    fn already_delivered(&self, op: &OpId) -> Option<Delivered> {
        lock(&self.delivered).0.get(op).cloned()
    }

    fn remember_delivered(&self, op: &OpId, delivered: &Delivered) {
        let mut guard = lock(&self.delivered);
        let (map, order) = &mut *guard;
        if map.insert(op.clone(), delivered.clone()).is_none() {
            order.push(op.clone());
        }
        if order.len() > DELIVERED_MEMORY {
            let drop_n = order.len() - DELIVERED_MEMORY / 2;
            for old in order.drain(..drop_n) {
                map.remove(&old);
            }
        }
    }

    /// Acts as the homeserver's own users who link their account, with the
    /// double-puppeting registration's `token`.
    pub fn enable_double_puppets(&self, token: crate::config::Token) {
        self.client.enable_double_puppets(token);
    }

    /// People's linked Matrix accounts.
    pub fn set_accounts(&self, accounts: Arc<dyn LinkedAccounts>) {
        self.accounts_slot.set(accounts);
    }

    fn accounts(&self) -> Arc<dyn LinkedAccounts> {
        self.accounts_slot.get()
    }

    /// Who posts `op`: a ghost or a linked account (no prefix), or the bot
    /// (with the author's name as a prefix, when the op has an author).
    fn poster(&self, op: &OutboundOp) -> (String, Option<String>) {
        if let Some(author) = &op.author
            && (self.ghosts.namer().is_ghost(author.user.as_str())
                || (author.is_linked_account
                    && self.client.add_double_puppet(author.user.as_str())))
        {
            return (author.user.as_str().to_owned(), None);
        }
        let name = op
            .author
            .as_ref()
            .map(|a| a.display_name.clone())
            .or_else(|| op.on_behalf_of.as_ref().map(|p| p.display_name.clone()));
        (self.bot().to_owned(), name)
    }

    /// Makes sure `user` may speak in `room` (registered and joined).
    async fn ready_to_post(&self, room: &str, user: &str) -> Result<(), BridgeError> {
        if user != self.bot()
            && let Some(localpart) = user
                .strip_prefix('@')
                .and_then(|rest| rest.split_once(':'))
                .map(|(l, _)| l)
        {
            // A linked account is a person's own: it exists, and is only
            // invited and joined.
            if self.ghosts.namer().is_ghost(user) {
                self.ghosts.register(&self.client, localpart).await?;
            }
            self.rooms.ensure_member(&self.client, room, user).await?;
        }
        Ok(())
    }

    /// Sends one event as `user`; retried once after re-joining when the
    /// homeserver says the ghost is not in the room.
    /// [`PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`](https://spec.matrix.org/v1.16/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid)
    pub(crate) async fn send_event(
        &self,
        room: &str,
        user: &str,
        event_type: &str,
        txn: &str,
        content: &Value,
    ) -> Result<MessageId, BridgeError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/{}/{}",
            enc(room),
            enc(event_type),
            enc(txn)
        );
        let as_user = (user != self.bot()).then_some(user);
        let mut tagged = content.clone();
        if let Some(object) = tagged.as_object_mut() {
            object.insert(TXN_KEY.into(), Value::String(txn.to_owned()));
        }
        let content = &tagged;
        let mut answer = self
            .client
            .call(Method::Put, &path, as_user, Some(content))
            .await;
        if let Err(e) = &answer
            && e.errcode() == Some("M_FORBIDDEN")
            && as_user.is_some()
        {
            self.rooms.forget_member(room, user);
            self.ready_to_post(room, user).await?;
            answer = self
                .client
                .call(Method::Put, &path, as_user, Some(content))
                .await;
        }
        let answer = answer.map_err(|e| e.into_bridge("send an event"))?;
        answer
            .get("event_id")
            .and_then(Value::as_str)
            .map(MessageId::new)
            .ok_or_else(|| BridgeError::transient("send: no event_id in the answer"))
    }

    /// Sends one event unless `earlier` says this transaction was posted.
    async fn send_once(
        &self,
        earlier: &HashMap<String, MessageId>,
        room: &str,
        user: &str,
        event_type: &str,
        txn: &str,
        content: &Value,
    ) -> Result<MessageId, BridgeError> {
        if let Some(id) = earlier.get(txn) {
            tracing::debug!(bridge = %self.config.id, %room, "Part posted by an earlier attempt; not posted again.");
            return Ok(id.clone());
        }
        self.send_event(room, user, event_type, txn, content).await
    }

    /// The events of op `op` among the room's newest, by transaction id
    /// ([`TXN_KEY`]). Best effort: a failed look-up finds nothing, and the
    /// homeserver's own transaction-id memory still applies.
    /// [`GET /_matrix/client/v3/rooms/{roomId}/messages`](https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3roomsroomidmessages)
    async fn posted_earlier(&self, room: &str, op: &OpId) -> HashMap<String, MessageId> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit={REPLAY_LOOKBACK}",
            enc(room)
        );
        let page = match self.client.call(Method::Get, &path, None, None).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(bridge = %self.config.id, %room, error = %e, "Could not look for an earlier attempt; relying on transaction ids.");
                return HashMap::new();
            }
        };
        earlier_parts(&page, &txn_id(op, ""))
    }

    /// Redacts `event` as `user`, falling back to the bot where the ghost
    /// may not. A missing event counts as redacted.
    /// [`PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`](https://spec.matrix.org/v1.16/client-server-api/#put_matrixclientv3roomsroomidredacteventidtxnid)
    async fn redact(
        &self,
        room: &str,
        user: &str,
        event: &MessageId,
        txn: &str,
    ) -> Result<(), BridgeError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/{}",
            enc(room),
            enc(event.as_str()),
            enc(txn)
        );
        let as_user = (user != self.bot()).then_some(user);
        // Marked like every event we send, so that its echo is known.
        let body = json!({ TXN_KEY: txn });
        let mut answer = self
            .client
            .call(Method::Put, &path, as_user, Some(&body))
            .await;
        if let Err(e) = &answer
            && e.errcode() == Some("M_FORBIDDEN")
            && as_user.is_some()
        {
            answer = self
                .client
                .call(Method::Put, &path, None, Some(&body))
                .await;
        }
        match answer {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into_bridge("redact an event")),
        }
    }

    /// The content of a text message.
    fn text_content(&self, message: &Message, prefix: Option<&str>) -> Value {
        self.part_content(message, prefix, &message.body, 0, 1)
    }

    /// The content of part `index` (of `count`) of a text message: every
    /// part has the thread relation, only the first the reply, and the first
    /// says how many parts there are ([`PARTS_KEY`]) for later edits.
    fn part_content(
        &self,
        message: &Message,
        prefix: Option<&str>,
        text: &RichText,
        index: usize,
        count: usize,
    ) -> Value {
        let rendered = self.render(text);
        let mut content = text_content(&rendered, message.style, prefix);
        if let Some(rel) = part_relation(message, index) {
            content.insert("m.relates_to".into(), rel);
        }
        if count > 1 && index == 0 {
            content.insert(PARTS_KEY.into(), count.into());
        }
        Value::Object(content)
    }

    /// The text of `message` cut into parts that each fit one event
    /// ([`split::CONTENT_BUDGET`] bytes of content).
    fn split_send(&self, message: &Message, prefix: Option<&str>) -> Vec<RichText> {
        // Measured as the first part (the reply and the part count are the
        // most any part carries).
        let size = |text: &RichText| {
            json_len(&self.part_content(message, prefix, text, 0, split::MAX_PARTS))
        };
        split::split(
            &message.body,
            split::CONTENT_BUDGET,
            split::MAX_PARTS,
            split::TRUNCATED,
            &size,
        )
    }

    /// How many of `parts` carry the text (the rest are files and notes):
    /// what the first part says ([`PARTS_KEY`]), else one.
    /// [`GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`](https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3roomsroomideventeventid)
    async fn text_parts(
        &self,
        room: &str,
        user: &str,
        parts: &[MessageId],
    ) -> Result<usize, BridgeError> {
        let Some(first) = parts.first() else {
            return Ok(0);
        };
        if parts.len() == 1 {
            return Ok(1);
        }
        let path = format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(room),
            enc(first.as_str())
        );
        let as_user = (user != self.bot()).then_some(user);
        let event = match self.client.call(Method::Get, &path, as_user, None).await {
            Ok(event) => event,
            Err(e) if e.is_not_found() => return Ok(1),
            Err(e) => return Err(e.into_bridge("fetch an event")),
        };
        let count = event
            .pointer(&format!("/content/{PARTS_KEY}"))
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1);
        Ok(count.clamp(1, parts.len()))
    }

    async fn send(
        &self,
        op: &OutboundOp,
        room: &str,
        user: &str,
        prefix: Option<&str>,
        message: &Message,
        media: &dyn MediaSource,
    ) -> Result<Delivered, BridgeError> {
        let mut ids = Vec::new();
        let has_text = !message.body.blocks.is_empty() || message.attachments.is_empty();
        let mut notes = Vec::new();
        // An op that may have been posted already: what it posted, by
        // transaction id, so no part is posted twice.
        let earlier = if op.maybe_delivered {
            self.posted_earlier(room, &op.id).await
        } else {
            HashMap::new()
        };
        if has_text {
            // A long text becomes several events, in order, each with its
            // own transaction id (`p0` for the first, as before splitting).
            let texts = self.split_send(message, prefix);
            let count = texts.len();
            for (i, text) in texts.iter().enumerate() {
                let content = self.part_content(message, prefix, text, i, count);
                let txn = match i {
                    0 => txn_id(&op.id, "p0"),
                    i => txn_id(&op.id, &format!("t{i}")),
                };
                ids.push(
                    self.send_once(&earlier, room, user, "m.room.message", &txn, &content)
                        .await?,
                );
            }
        }
        for (i, attachment) in message.attachments.iter().enumerate() {
            if let Some(id) = earlier.get(&txn_id(&op.id, &format!("p{}", i + 1))) {
                ids.push(id.clone());
                continue;
            }
            match self.upload_attachment(op, user, attachment, media).await? {
                Some((mxc, size)) => {
                    let mut content = file_content(attachment, &mxc, size);
                    if let Some(rel) = relation(message) {
                        content.insert("m.relates_to".into(), rel);
                    }
                    let txn = txn_id(&op.id, &format!("p{}", i + 1));
                    ids.push(
                        self.send_once(
                            &earlier,
                            room,
                            user,
                            "m.room.message",
                            &txn,
                            &Value::Object(content),
                        )
                        .await?,
                    );
                }
                None => notes.push(format!("📎 {} (not transferable here)", attachment.name)),
            }
        }
        if !notes.is_empty() {
            let note = Message::text(notes.join("\n")).with_style(MessageStyle::Notice);
            let content = self.text_content(&note, prefix);
            ids.push(
                self.send_once(
                    &earlier,
                    room,
                    user,
                    "m.room.message",
                    &txn_id(&op.id, "notes"),
                    &content,
                )
                .await?,
            );
        }
        Ok(Delivered { ids })
    }

    /// Fetches an attachment from its origin and uploads it; `None` when it
    /// cannot be carried (no origin, too large, gone).
    async fn upload_attachment(
        &self,
        op: &OutboundOp,
        user: &str,
        attachment: &Attachment,
        media: &dyn MediaSource,
    ) -> Result<Option<(String, u64)>, BridgeError> {
        let max = self.config.max_upload;
        let Some(origin) = &op.origin else {
            return Ok(None);
        };
        if attachment.size.is_some_and(|s| s > max) {
            return Ok(None);
        }
        let bytes = match media.fetch(&origin.bridge, attachment).await {
            Ok(bytes) => bytes,
            Err(BridgeError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = bytes.len() as u64;
        if size > max {
            return Ok(None);
        }
        let as_user = (user != self.bot()).then_some(user);
        let mxc = self
            .client
            .upload(as_user, &attachment.name, &attachment.mime, bytes)
            .await
            .map_err(|e| e.into_bridge("upload a file"))?;
        Ok(Some((mxc, size)))
    }

    /// The content of an edit of `target` to `text`. The fallback for
    /// clients without edits repeats the text; a `compact` one (for long
    /// texts) is only the start of the plain text, at most
    /// [`FALLBACK_BYTES`] of JSON, so that `m.new_content` alone decides
    /// how much text a part carries, as for a send.
    fn edit_event(
        &self,
        text: &RichText,
        style: MessageStyle,
        prefix: Option<&str>,
        target: &MessageId,
        compact: bool,
    ) -> Value {
        let mut content = edit_content(&self.render(text), style, prefix, target);
        if compact && let Value::Object(map) = &mut content {
            map.remove("format");
            map.remove("formatted_body");
            if let Some(Value::String(body)) = map.get_mut("body") {
                *body = fallback_cut(body);
            }
        }
        content
    }

    /// Edits a message posted as `parts`: the new text is split again, part
    /// i is replaced by new part i, old parts no longer needed are redacted,
    /// and a text needing more parts than were posted is cut with
    /// [`split::EDIT_TRUNCATED`] (events cannot be inserted between others).
    async fn edit(
        &self,
        op: &OutboundOp,
        room: &str,
        user: &str,
        prefix: Option<&str>,
        parts: &[MessageId],
        message: &Message,
    ) -> Result<Delivered, BridgeError> {
        let Some(first) = parts.first() else {
            return Err(BridgeError::permanent("edit of a message with no parts"));
        };
        let old = self.text_parts(room, user, parts).await?;
        let compact =
            json_len(&self.edit_event(&message.body, message.style, prefix, first, false))
                > split::CONTENT_BUDGET;
        // A compact fallback counts as its most, so the text alone decides.
        let size = |text: &RichText| {
            let mut content = self.edit_event(text, message.style, prefix, first, compact);
            if compact && let Some(body) = content.get_mut("body") {
                *body = Value::String(String::new());
                return json_len(&content) + FALLBACK_BYTES;
            }
            json_len(&content)
        };
        let texts = split::split(
            &message.body,
            split::CONTENT_BUDGET,
            old,
            split::EDIT_TRUNCATED,
            &size,
        );
        for (i, part) in parts.iter().take(old).enumerate() {
            match texts.get(i) {
                Some(text) => {
                    let content = self.edit_event(text, message.style, prefix, part, compact);
                    let txn = match i {
                        0 => txn_id(&op.id, "edit"),
                        i => txn_id(&op.id, &format!("edit{i}")),
                    };
                    self.send_event(room, user, "m.room.message", &txn, &content)
                        .await?;
                }
                None => {
                    self.redact(room, user, part, &txn_id(&op.id, &format!("er{i}")))
                        .await?;
                }
            }
        }
        Ok(Delivered::none())
    }

    /// Our reaction with `key` on `target`, looked up in its relations.
    /// [`GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}`](https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv1roomsroomidrelationseventidreltypeeventtype)
    async fn find_reaction(
        &self,
        room: &str,
        user: &str,
        target: &MessageId,
        key: &str,
    ) -> Result<Option<MessageId>, BridgeError> {
        let path = format!(
            "/_matrix/client/v1/rooms/{}/relations/{}/m.annotation/m.reaction?limit=100",
            enc(room),
            enc(target.as_str())
        );
        let as_user = (user != self.bot()).then_some(user);
        let answer = match self.client.call(Method::Get, &path, as_user, None).await {
            Ok(v) => v,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into_bridge("list reactions")),
        };
        Ok(answer
            .get("chunk")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|ev| {
                ev.get("sender").and_then(Value::as_str) == Some(user)
                    && ev
                        .pointer("/content/m.relates_to/key")
                        .and_then(Value::as_str)
                        == Some(key)
            })
            .and_then(|ev| ev.get("event_id").and_then(Value::as_str))
            .map(MessageId::new))
    }

    async fn react(
        &self,
        op: &OutboundOp,
        room: &str,
        user: &str,
        target: &MessageId,
        key: &str,
    ) -> Result<Delivered, BridgeError> {
        let content = json!({
            "m.relates_to": { "rel_type": "m.annotation", "event_id": target.as_str(), "key": key }
        });
        match self
            .send_event(room, user, "m.reaction", &txn_id(&op.id, "react"), &content)
            .await
        {
            Ok(id) => Ok(Delivered::one(id)),
            // Already reacted (M_DUPLICATE_ANNOTATION): hand back that one.
            Err(BridgeError::Permanent { reason }) if reason.contains("M_DUPLICATE_ANNOTATION") => {
                Ok(self
                    .find_reaction(room, user, target, key)
                    .await?
                    .map_or_else(Delivered::none, Delivered::one))
            }
            Err(e) => Err(e),
        }
    }

    /// A call from elsewhere: the widget (see [`crate::calls`]) and the
    /// notice, both by the bot, so that every later state, whoever it comes
    /// from, may edit the notice. `invite` is the notice posted at the start.
    async fn call(
        &self,
        op: &OutboundOp,
        room: &str,
        event: &CallEvent,
        invite: &[MessageId],
    ) -> Result<Delivered, BridgeError> {
        let who = calls::who(event, op.on_behalf_of.as_ref()).to_owned();
        let key = calls::widget_key(&event.call);
        let ended = matches!(event.state, CallState::Ended { .. });
        if ended {
            self.remove_call_widget(room, &key).await?;
        } else if let Some(content) = calls::widget_content(event, &who, self.bot(), &key) {
            self.put_call_widget(room, &key, &content).await?;
        }
        let duration = match (&event.state, invite.first()) {
            (CallState::Ended { duration: None }, Some(first)) => self.age_of(room, first).await,
            _ => None,
        };
        let message =
            Message::new(calls::notice(event, &who, duration)).with_style(MessageStyle::Notice);
        let bot = self.bot().to_owned();
        match invite.first() {
            Some(first) => {
                let content = edit_content(&self.render(&message.body), message.style, None, first);
                self.send_event(
                    room,
                    &bot,
                    "m.room.message",
                    &txn_id(&op.id, "call-edit"),
                    &content,
                )
                .await?;
                Ok(Delivered::none())
            }
            None => {
                let content = self.text_content(&message, None);
                let id = self
                    .send_event(
                        room,
                        &bot,
                        "m.room.message",
                        &txn_id(&op.id, "call"),
                        &content,
                    )
                    .await?;
                Ok(Delivered::one(id))
            }
        }
    }

    /// Sets the widget of a call; a room where the bot may not set state
    /// gets the notice alone.
    /// [`PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`](https://spec.matrix.org/v1.16/client-server-api/#put_matrixclientv3roomsroomidstateeventtypestatekey)
    async fn put_call_widget(
        &self,
        room: &str,
        key: &str,
        content: &Value,
    ) -> Result<(), BridgeError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            enc(room),
            enc(calls::WIDGETS),
            enc(key)
        );
        match self
            .client
            .call(Method::Put, &path, None, Some(content))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.errcode() == Some("M_FORBIDDEN") => {
                tracing::warn!(bridge = %self.config.id, %room, error = %e, "The bot may not add widgets here; the call is shown as a notice only.");
                Ok(())
            }
            Err(e) => Err(e.into_bridge("set a call widget")),
        }
    }

    /// Removes a call's widget (empty content), when there is one.
    async fn remove_call_widget(&self, room: &str, key: &str) -> Result<(), BridgeError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            enc(room),
            enc(calls::WIDGETS),
            enc(key)
        );
        match self.client.call(Method::Get, &path, None, None).await {
            Ok(current) if current.as_object().is_some_and(|c| !c.is_empty()) => {}
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into_bridge("read a call widget")),
        }
        self.put_call_widget(room, key, &json!({})).await
    }

    /// How long ago `event` was sent (best effort: `None` when unknown).
    async fn age_of(&self, room: &str, event: &MessageId) -> Option<std::time::Duration> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(room),
            enc(event.as_str())
        );
        let answer = self
            .client
            .call(Method::Get, &path, None, None)
            .await
            .ok()?;
        let sent = answer.get("origin_server_ts").and_then(Value::as_u64)?;
        let now = switchboard_model::Timestamp::now().as_millis();
        Some(std::time::Duration::from_millis(now.checked_sub(sent)?))
    }

    async fn whoami(&self) -> Result<String, BridgeError> {
        // GET /_matrix/client/v3/account/whoami
        let answer = self
            .client
            .call(Method::Get, "/_matrix/client/v3/account/whoami", None, None)
            .await
            .map_err(|e| e.into_bridge("whoami"))?;
        answer
            .get("user_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| BridgeError::transient("whoami: no user_id"))
    }

    /// Registers the bot (it usually exists: the homeserver makes it).
    async fn ensure_bot(&self) -> Result<(), BridgeError> {
        let body = json!({
            "type": "m.login.application_service",
            "username": self.config.sender_localpart,
            "inhibit_login": true,
        });
        match self
            .client
            .call(
                Method::Post,
                "/_matrix/client/v3/register",
                None,
                Some(&body),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.errcode(), Some("M_USER_IN_USE" | "M_EXCLUSIVE")) => Ok(()),
            Err(e @ ApiError::Status { status: 400, .. }) => {
                tracing::debug!(bridge = %self.config.id, error = %e, "Bot registration refused; it exists.");
                Ok(())
            }
            Err(e) => Err(e.into_bridge("register the bot")),
        }
    }

    /// Asks the homeserver to ping this application service
    /// ([`POST /_matrix/client/v1/appservice/{appserviceId}/ping`](https://spec.matrix.org/v1.16/application-service-api/#post_matrixclientv1appserviceappserviceidping)):
    /// it proves that the homeserver reaches our URL (a WARN says so when it
    /// does not), and Synapse then sends at once the transactions it queued
    /// while we were away instead of waiting out its backoff (up to 8.5
    /// minutes). A homeserver without the endpoint is left alone.
    async fn ping_homeserver(&self) {
        let path = format!(
            "/_matrix/client/v1/appservice/{}/ping",
            enc(&self.config.appservice_id)
        );
        const ATTEMPTS: u32 = 3;
        for attempt in 1..=ATTEMPTS {
            let body = json!({
                "transaction_id": format!("sb-ping-{}", switchboard_model::Timestamp::now().as_millis())
            });
            match self
                .client
                .call(Method::Post, &path, None, Some(&body))
                .await
            {
                Ok(answer) => {
                    let ms = answer.get("duration_ms").and_then(Value::as_u64);
                    tracing::info!(bridge = %self.config.id, duration_ms = ?ms, "The homeserver reached this application service.");
                    return;
                }
                Err(e) if e.status() == Some(404) || e.errcode() == Some("M_UNRECOGNIZED") => {
                    tracing::debug!(bridge = %self.config.id, "The homeserver has no ping endpoint.");
                    return;
                }
                Err(e) if attempt < ATTEMPTS => {
                    tracing::debug!(bridge = %self.config.id, error = %e, attempt, "Homeserver ping failed; trying again.");
                    tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
                }
                Err(e) => {
                    tracing::warn!(bridge = %self.config.id, error = %e, "The homeserver could not reach this application service at its registered URL; events from Matrix will not arrive until it can.");
                }
            }
        }
    }

    /// Joins or creates every portal room, logging what fails.
    async fn ensure_rooms(&self, ctx: &BridgeContext) {
        for channel in ctx.channels() {
            if let Err(e) = self
                .rooms
                .room_for(&self.client, &channel, Some(ctx.cursors()))
                .await
            {
                tracing::warn!(bridge = %self.config.id, %channel, error = %e, "Could not set up a portal room; will try again on delivery.");
            }
        }
    }

    async fn deliver_op(
        &self,
        op: &OutboundOp,
        media: &dyn MediaSource,
    ) -> Result<Delivered, BridgeError> {
        let room = self.room_for(&op.channel).await?;
        let (user, prefix) = self.poster(op);
        self.ready_to_post(&room, &user).await?;
        let prefix = prefix.as_deref();
        match &op.kind {
            OutboundKind::Send { message } => {
                self.send(op, &room, &user, prefix, message, media).await
            }
            OutboundKind::Edit { parts, message } => {
                self.edit(op, &room, &user, prefix, parts, message).await
            }
            OutboundKind::Delete { parts } => {
                for (i, part) in parts.iter().enumerate() {
                    self.redact(&room, &user, part, &txn_id(&op.id, &format!("r{i}")))
                        .await?;
                }
                Ok(Delivered::none())
            }
            OutboundKind::React { target, key } => self.react(op, &room, &user, target, key).await,
            OutboundKind::Unreact {
                target,
                key,
                reaction,
            } => {
                let found = match reaction {
                    Some(id) => Some(id.clone()),
                    None => self.find_reaction(&room, &user, target, key).await?,
                };
                if let Some(id) = found {
                    self.redact(&room, &user, &id, &txn_id(&op.id, "unreact"))
                        .await?;
                }
                Ok(Delivered::none())
            }
            OutboundKind::Call { event, invite } => self.call(op, &room, event, invite).await,
            OutboundKind::ChannelInfo { info } => {
                crate::room_info::apply(&self.client, &room, info).await?;
                Ok(Delivered::none())
            }
            _ => Err(BridgeError::permanent(
                "operation not supported by the Matrix connector",
            )),
        }
    }
}

#[async_trait]
impl Bridge for MatrixBridge {
    fn id(&self) -> &BridgeId {
        &self.config.id
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full();
        // Events are capped at 64 KiB including the HTML: text up to this
        // length is one event whatever its characters and formatting (about
        // four bytes a character); longer text is split (crate::split).
        caps.max_message_len = split::CONTENT_BUDGET / 4;
        caps.max_upload = self.config.max_upload;
        // Calls become a widget and an edited notice (crate::calls).
        caps.native_calls = true;
        caps.puppet_accounts = true;
        caps
    }

    async fn health_check(&self) -> Result<(), BridgeError> {
        self.client
            .versions()
            .await
            .map_err(|e| e.into_bridge("client versions"))?;
        let me = self.whoami().await?;
        if me != self.bot() {
            return Err(BridgeError::auth(format!(
                "the as_token belongs to {me}, expected {}",
                self.bot()
            )));
        }
        Ok(())
    }

    async fn run(&self, ctx: BridgeContext) -> Result<(), BridgeError> {
        let started_ms = crate::sweep::now_ms();
        // Transactions from now on are checked for what the homeserver
        // left out before them (sweep.rs).
        self.sweeps.schedule(started_ms);
        ctx.set_state(BridgeState::Connecting);
        // Known rooms first: a transaction accepted as soon as the context is
        // in place must find its portal, or its events are dropped as foreign.
        for channel in ctx.channels() {
            self.rooms.recall(&channel, ctx.cursors());
        }
        self.set_context(Some(ctx.clone()));
        let ready = async {
            self.ensure_bot().await?;
            self.whoami().await
        };
        let ready = tokio::select! {
            r = ready => r,
            () = ctx.shutdown.cancelled() => {
                self.set_context(None);
                return Ok(());
            }
        };
        if let Err(e) = ready {
            if let BridgeError::Auth { reason } = &e {
                ctx.set_state(BridgeState::BadCredentials(reason.clone()));
            } else {
                ctx.set_state(BridgeState::TransientDisconnect(e.to_string()));
            }
            self.set_context(None);
            return Err(e);
        }
        self.load_bot_rooms().await;
        ctx.set_state(BridgeState::Connected);
        tracing::info!(bridge = %self.config.id, "Matrix application service ready.");

        let mut channels = ctx.channels_watch();
        channels.mark_changed();
        let ping = self.ping_homeserver();
        tokio::pin!(ping);
        let mut pinged = false;
        loop {
            tokio::select! {
                () = ctx.shutdown.cancelled() => break,
                () = &mut ping, if !pinged => {
                    pinged = true;
                    // The homeserver sends what it kept while we were away
                    // now: then look for what its recovery left behind.
                    self.sweeps.schedule(started_ms);
                }
                () = self.sweeps.wait() => {
                    tokio::select! {
                        () = self.sweep_if_due(&ctx) => {}
                        () = ctx.shutdown.cancelled() => break,
                    }
                }
                changed = channels.changed() => {
                    if changed.is_err() {
                        ctx.shutdown.cancelled().await;
                        break;
                    }
                    tokio::select! {
                        () = self.ensure_rooms(&ctx) => {}
                        () = ctx.shutdown.cancelled() => break,
                    }
                }
            }
        }
        self.set_context(None);
        Ok(())
    }

    async fn deliver(
        &self,
        op: &OutboundOp,
        media: &dyn MediaSource,
    ) -> Result<Delivered, BridgeError> {
        if let Some(done) = self.already_delivered(&op.id) {
            return Ok(done);
        }
        let delivered = self.deliver_op(op, media).await?;
        self.remember_delivered(&op.id, &delivered);
        Ok(delivered)
    }

    async fn ensure_puppet(&self, person: &Person) -> Result<PuppetRef, BridgeError> {
        // Someone who linked their Matrix account appears as it, when the
        // double-puppeting registration is configured.
        if self.client.double_puppets_enabled()
            && let Some(account) = self.accounts().account_for(&person.bridge, &person.user)
            && self.client.add_double_puppet(account.user.as_str())
        {
            let name = self.display_name(account.user.as_str()).await;
            return Ok(PuppetRef::new(account.user, name).linked());
        }
        let ctx = self.context();
        self.ghosts
            .ensure(
                &self.client,
                person,
                ctx.as_ref().map(BridgeContext::cursors),
            )
            .await
    }

    async fn open_direct(
        &self,
        user: &UserId,
        with: &Person,
    ) -> Result<Option<ChannelId>, BridgeError> {
        self.open_direct_room(user, with).await
    }

    async fn find_people(&self, query: &str, limit: usize) -> Result<Vec<Person>, BridgeError> {
        self.search_people(query, limit).await
    }

    /// A code the person sends from the Matrix account to link
    /// (`link <code>` to the bot), when double puppeting is configured.
    async fn begin_login(&self) -> Result<Option<LoginFlow>, BridgeError> {
        if !self.client.double_puppets_enabled() {
            return Ok(None);
        }
        Ok(Some(
            self.pending_links
                .begin(&self.config.server_name, self.bot()),
        ))
    }

    async fn fetch_media(&self, attachment: &Attachment) -> Result<Vec<u8>, BridgeError> {
        self.client
            .download(&attachment.url, self.config.max_upload)
            .await
            .map_err(|e| match e.errcode() {
                Some("M_TOO_LARGE") => BridgeError::permanent(format!("{}: {e}", attachment.name)),
                _ => e.into_bridge("download a file"),
            })
    }

    fn http_endpoints(&self) -> Vec<(String, Arc<dyn HttpEndpoint>)> {
        let Some(this) = self.this.upgrade() else {
            return Vec::new();
        };
        let mut endpoints = vec![(
            self.endpoint_prefix(),
            Arc::new(AppserviceEndpoint::new(this)) as Arc<dyn HttpEndpoint>,
        )];
        if let Some(media) = &self.media {
            endpoints.push((
                media.prefix().to_owned(),
                media.clone() as Arc<dyn HttpEndpoint>,
            ));
        }
        endpoints
    }
}

/// The path under which the homeserver reaches a bridge registered with
/// `appservice_url`: its path followed by `/_matrix/app/`.
fn endpoint_prefix(appservice_url: &str) -> String {
    format!("{}/_matrix/app/", url_path(appservice_url))
}

/// The events of a `/messages` page whose [`TXN_KEY`] starts with `prefix`
/// (one op's transaction ids), by transaction id.
fn earlier_parts(page: &Value, prefix: &str) -> HashMap<String, MessageId> {
    page.get("chunk")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|event| {
            let txn = event.get("content")?.get(TXN_KEY)?.as_str()?;
            let id = event.get("event_id")?.as_str()?;
            txn.starts_with(prefix)
                .then(|| (txn.to_owned(), MessageId::new(id)))
        })
        .collect()
}

/// The path part of a URL, without a trailing `/` (empty for none).
pub fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.trim_end_matches('/').to_owned()
}

fn localpart(user: &str) -> &str {
    user.strip_prefix('@')
        .and_then(|rest| rest.split_once(':'))
        .map_or(user, |(l, _)| l)
}

fn msgtype(style: MessageStyle) -> &'static str {
    match style {
        MessageStyle::Notice => "m.notice",
        MessageStyle::Emote => "m.emote",
        _ => "m.text",
    }
}

/// Escapes text for HTML.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// `msgtype`, `body`, `format`/`formatted_body` and `m.mentions`, with an
/// optional `Name: ` prefix for posts by the bot on someone's behalf.
pub(crate) fn text_content(
    rendered: &Rendered,
    style: MessageStyle,
    prefix: Option<&str>,
) -> Map<String, Value> {
    let mut content = Map::new();
    content.insert("msgtype".into(), msgtype(style).into());
    let (body, html) = match prefix {
        Some(name) => (
            format!("{name}: {}", rendered.body),
            Some(format!(
                "<strong>{}</strong>: {}",
                html_escape(name),
                rendered
                    .formatted_body
                    .clone()
                    .unwrap_or_else(|| html_escape(&rendered.body).replace('\n', "<br>"))
            )),
        ),
        None => (rendered.body.clone(), rendered.formatted_body.clone()),
    };
    content.insert("body".into(), body.into());
    if let Some(html) = html {
        content.insert("format".into(), "org.matrix.custom.html".into());
        content.insert("formatted_body".into(), html.into());
    }
    let mut mentions = Map::new();
    if !rendered.mentioned_users.is_empty() {
        mentions.insert("user_ids".into(), json!(rendered.mentioned_users));
    }
    if rendered.room_mention {
        mentions.insert("room".into(), true.into());
    }
    content.insert("m.mentions".into(), Value::Object(mentions));
    content
}

/// The content of an edit of `target`: a `* ` fallback and `m.new_content`.
pub(crate) fn edit_content(
    rendered: &Rendered,
    style: MessageStyle,
    prefix: Option<&str>,
    target: &MessageId,
) -> Value {
    let new = text_content(rendered, style, prefix);
    let mut fallback = new.clone();
    if let Some(Value::String(body)) = fallback.get_mut("body") {
        *body = format!("* {body}");
    }
    if let Some(Value::String(html)) = fallback.get_mut("formatted_body") {
        *html = format!("* {html}");
    }
    // Only the new content mentions anyone: the edit itself pings nobody again.
    fallback.insert("m.mentions".into(), json!({}));
    fallback.insert("m.new_content".into(), Value::Object(new));
    fallback.insert(
        "m.relates_to".into(),
        json!({ "rel_type": "m.replace", "event_id": target.as_str() }),
    );
    Value::Object(fallback)
}

/// `m.relates_to` for part `index` of a message: all parts stay in the
/// thread, only the first is the reply.
pub(crate) fn part_relation(message: &Message, index: usize) -> Option<Value> {
    if index == 0 {
        return relation(message);
    }
    message.thread_root.as_ref().map(|root| {
        json!({
            "rel_type": "m.thread",
            "event_id": root.as_str(),
            "is_falling_back": true,
            "m.in_reply_to": { "event_id": root.as_str() },
        })
    })
}

/// The start of `body` whose JSON string takes at most [`FALLBACK_BYTES`],
/// with `…` when cut.
fn fallback_cut(body: &str) -> String {
    let json = |s: &str| serde_json::to_string(s).map_or(usize::MAX, |j| j.len());
    if json(body) <= FALLBACK_BYTES {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut len = 2 + "…".len();
    for c in body.chars() {
        let mut buf = [0u8; 4];
        let add = json(c.encode_utf8(&mut buf)).saturating_sub(2);
        if len + add > FALLBACK_BYTES {
            break;
        }
        len += add;
        out.push(c);
    }
    out.push('…');
    out
}

/// The length of `value` as JSON.
fn json_len(value: &Value) -> usize {
    serde_json::to_string(value).map_or(usize::MAX, |s| s.len())
}

/// `m.relates_to` for a reply or a thread message.
pub(crate) fn relation(message: &Message) -> Option<Value> {
    match (&message.thread_root, &message.reply_to) {
        (Some(root), reply) => Some(json!({
            "rel_type": "m.thread",
            "event_id": root.as_str(),
            "is_falling_back": reply.is_none(),
            "m.in_reply_to": { "event_id": reply.as_ref().unwrap_or(root).as_str() },
        })),
        (None, Some(reply)) => Some(json!({ "m.in_reply_to": { "event_id": reply.as_str() } })),
        (None, None) => None,
    }
}

/// The content of a file message.
pub(crate) fn file_content(attachment: &Attachment, mxc: &str, size: u64) -> Map<String, Value> {
    let mime = attachment.mime.as_str();
    let msgtype = if mime.starts_with("image/") {
        "m.image"
    } else if mime.starts_with("video/") {
        "m.video"
    } else if mime.starts_with("audio/") {
        "m.audio"
    } else {
        "m.file"
    };
    let mut content = Map::new();
    content.insert("msgtype".into(), msgtype.into());
    content.insert("body".into(), attachment.name.clone().into());
    content.insert("filename".into(), attachment.name.clone().into());
    content.insert("url".into(), mxc.into());
    content.insert("info".into(), json!({ "mimetype": mime, "size": size }));
    content
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(body: &str, html: Option<&str>) -> Rendered {
        Rendered {
            body: body.into(),
            formatted_body: html.map(str::to_owned),
            mentioned_users: vec!["@slack_acme_u1:example.org".into()],
            room_mention: false,
        }
    }

    #[test]
    fn earlier_parts_are_found_by_their_op_s_transaction_ids_only() {
        let op = OpId::new("sb1.2");
        let page = json!({"chunk": [
            {"event_id": "$b", "content": {"body": "two", TXN_KEY: txn_id(&op, "t1")}},
            {"event_id": "$x", "content": {"body": "other", TXN_KEY: txn_id(&OpId::new("sb1.20"), "p0")}},
            {"event_id": "$n", "content": {"body": "no key"}},
            {"event_id": "$r", "content": {}},
            {"event_id": "$a", "content": {"body": "one", TXN_KEY: txn_id(&op, "p0")}}
        ]});
        let found = earlier_parts(&page, &txn_id(&op, ""));
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[&txn_id(&op, "p0")].as_str(), "$a");
        assert_eq!(found[&txn_id(&op, "t1")].as_str(), "$b");
        assert!(earlier_parts(&json!({}), "sb_").is_empty());
    }

    #[test]
    fn matrix_avatars_become_thumbnail_urls() {
        let bridge = MatrixBridge::new(
            crate::registration::tests::config(),
            "http://127.0.0.1:29340".into(),
        );
        assert_eq!(bridge.avatar_url("@ann:example.org"), None, "none known");
        bridge.remember_avatar("@ann:example.org", "mxc://example.org/AbC123");
        let url = bridge.avatar_url("@ann:example.org").expect("a url");
        assert!(
            url.ends_with(
                "/_matrix/media/v3/thumbnail/example.org/AbC123?width=96&height=96&method=crop"
            ),
            "{url}"
        );
        assert!(url.starts_with(&bridge.config().homeserver_url));
        bridge.remember_avatar("@bob:example.org", "https://not-an-mxc/x");
        assert_eq!(bridge.avatar_url("@bob:example.org"), None, "only mxc URIs");
        assert_eq!(bridge.http_endpoints().len(), 1, "no media endpoint");
        assert!(bridge.media_endpoint().is_none());
    }

    #[test]
    fn with_a_public_url_avatars_go_through_the_signed_endpoint() {
        let config = MatrixConfig {
            public_url: Some("https://switchboard.example.com".into()),
            ..crate::registration::tests::config()
        };
        let bridge = MatrixBridge::new(config, "http://127.0.0.1:29340/hooks/".into());
        bridge.remember_avatar("@ann:example.org", "mxc://example.org:8448/AbC123");
        let url = bridge.avatar_url("@ann:example.org").expect("a url");
        let signer = crate::media_proxy::MediaSigner::new(&Token::new("hs-secret-2"));
        assert_eq!(
            url,
            format!(
                "https://switchboard.example.com/hooks/_matrix/app/media/example.org%3A8448/AbC123?sig={}",
                signer.sign("example.org:8448", "AbC123")
            )
        );
        assert!(!url.contains("hs-secret-2") && !url.contains("as-secret-1"));
        bridge.remember_avatar("@bob:example.org", "mxc://example.org/../../x");
        assert_eq!(bridge.avatar_url("@bob:example.org"), None, "malformed ids");
        let endpoints = bridge.http_endpoints();
        let prefixes: Vec<&str> = endpoints.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            prefixes,
            vec!["/hooks/_matrix/app/", "/hooks/_matrix/app/media/"]
        );
    }

    #[test]
    fn url_paths() {
        assert_eq!(url_path("http://127.0.0.1:9000"), "");
        assert_eq!(url_path("http://127.0.0.1:9000/"), "");
        assert_eq!(url_path("https://h/matrix/x/"), "/matrix/x");
        assert_eq!(url_path("https://h/p?q=1"), "/p");
    }

    #[test]
    fn text_contents() {
        let c = text_content(
            &rendered("hi", Some("<b>hi</b>")),
            MessageStyle::Normal,
            None,
        );
        assert_eq!(
            Value::Object(c),
            json!({"msgtype": "m.text", "body": "hi", "format": "org.matrix.custom.html",
                   "formatted_body": "<b>hi</b>",
                   "m.mentions": {"user_ids": ["@slack_acme_u1:example.org"]}})
        );
        let c = text_content(
            &rendered("a<b", None),
            MessageStyle::Notice,
            Some("Bo & Co"),
        );
        assert_eq!(c["body"], "Bo & Co: a<b");
        assert_eq!(c["formatted_body"], "<strong>Bo &amp; Co</strong>: a&lt;b");
        assert_eq!(c["msgtype"], "m.notice");
    }

    #[test]
    fn edits_carry_new_content_and_a_fallback() {
        let c = edit_content(
            &rendered("new", None),
            MessageStyle::Normal,
            None,
            &MessageId::new("$orig"),
        );
        assert_eq!(c["body"], "* new");
        assert_eq!(c["m.new_content"]["body"], "new");
        assert_eq!(
            c["m.relates_to"],
            json!({"rel_type": "m.replace", "event_id": "$orig"})
        );
        assert_eq!(c["m.mentions"], json!({}));
        assert_eq!(
            c["m.new_content"]["m.mentions"]["user_ids"][0],
            "@slack_acme_u1:example.org"
        );
    }

    #[test]
    fn relations_for_replies_and_threads() {
        let m = Message::text("x");
        assert_eq!(relation(&m), None);
        let reply = Message::text("x").in_reply_to(MessageId::new("$p"));
        assert_eq!(
            relation(&reply),
            Some(json!({"m.in_reply_to": {"event_id": "$p"}}))
        );
        let thread = Message::text("x").in_thread(MessageId::new("$root"));
        assert_eq!(
            relation(&thread),
            Some(
                json!({"rel_type": "m.thread", "event_id": "$root", "is_falling_back": true,
                        "m.in_reply_to": {"event_id": "$root"}})
            )
        );
        let both = thread.in_reply_to(MessageId::new("$p"));
        assert_eq!(relation(&both).expect("rel")["is_falling_back"], false);
    }

    #[test]
    fn files_get_their_msgtype() {
        let a = Attachment::new("f", "cat.png", "image/png", "u");
        let c = file_content(&a, "mxc://e/x", 12);
        assert_eq!(c["msgtype"], "m.image");
        assert_eq!(c["info"]["size"], 12);
        let a = Attachment::new("f", "a.pdf", "application/pdf", "u");
        assert_eq!(file_content(&a, "mxc://e/y", 1)["msgtype"], "m.file");
    }
}
