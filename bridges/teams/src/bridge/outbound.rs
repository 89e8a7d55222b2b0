//! Outbound: who a post is made as, its HTML body, and the Graph calls that
//! send, edit, delete and react, with the relay marker for idempotency.
//!
//! # Long messages
//!
//! Graph takes about 28 KB per post (protocols/teams.md §5), so a longer
//! message becomes several posts ([`html::split_to_limit`], cut at block
//! boundaries, never inside a tag, an entity or a mention), posted one after
//! the other where the message goes (the channel, the thread or the chat).
//! Every part carries the author line and its own relay marker
//! (`{op}`, then `{op}#2`, `{op}#3`…), and [`Delivered`] lists the parts in
//! order, so the relay maps edits, deletes and reactions to them (reactions
//! go to the first part).
//!
//! A multi-part message first looks for parts already posted (by their
//! markers) and posts only the missing ones, so a retry after a failure
//! between parts never doubles a part.
//!
//! An **edit** rewrites the parts in place. When the new text needs fewer
//! parts, the extra ones are *soft-deleted*: Teams then shows its own
//! "This message has been deleted." placeholder, which reads as "this part
//! went away" rather than a stray "…" post that looks like a glitch, and a
//! later, longer edit brings the part back (`undoSoftDelete`, then PATCH).
//! When the new text needs more parts than were posted, the last part ends
//! in [`html::TRUNCATED`]: the relay records only what a *send* created, so
//! a part posted by an edit could never be edited or deleted again.
//!
//! # Files and images
//!
//! See [`super::media`]: small images go inline as `hostedContents` (in the
//! last text part when they fit the request size, else in posts of their
//! own), everything else becomes a `📎` line in the text. Edits cannot add
//! `hostedContents`; they keep the images the parts already show.
//!
//! # Calls
//!
//! A call from another platform becomes one card, posted when it starts and
//! edited as it moves on and when it ends (never posted twice): who started
//! it, where, the origin's join link and, when the posting account may create
//! meetings (`OnlineMeetings.ReadWrite`), a Teams meeting's "Join in Teams"
//! link (`POST /me/onlineMeetings/createOrGet` keyed by the call id, so
//! retries and later states find the same meeting). Cards are posted by the
//! service account when there is one, because only a message's sender may
//! edit it and a call's later states may come from someone else.

use super::media::{self, InlineImage, Prepared};
use super::reactions;
use super::{
    Actor, Conversation, MARKER_PAGE, MARKER_PAGES, REMEMBERED_OPS, TeamsBridge, escape,
    platform_label,
};
use crate::client::Bearer;
use crate::graph;
use crate::html;
use serde_json::{Value, json};
use switchboard_model::recovery::Lookup;
use switchboard_model::{
    BridgeError, CallEvent, CallProvider, CallState, ChannelId, Delivered, MediaSource, Meeting,
    Message, MessageId, MessageStyle, OpId, OutboundOp, Person, Timestamp,
};

/// One post of a message: its HTML (before the author line and marker), its
/// mentions and its inline images.
#[derive(Debug, Default)]
struct Post {
    html: String,
    mentions: Vec<html::Mention>,
    images: Vec<InlineImage>,
}

/// The marker id of part `n` (0-based) of `op`: `{op}`, `{op}#2`, `{op}#3`…
fn part_marker(op: &OpId, n: usize) -> String {
    if n == 0 {
        op.as_str().to_owned()
    } else {
        format!("{}#{}", op.as_str(), n + 1)
    }
}

/// Puts the images into posts: into the last text post while its
/// `hostedContents` stay within [`media::POST_HOSTED_BUDGET`], then into
/// posts of their own. No text and no images is one empty post.
fn pack(texts: Vec<(String, Vec<html::Mention>)>, images: Vec<InlineImage>) -> Vec<Post> {
    let mut posts: Vec<Post> = texts
        .into_iter()
        .map(|(html, mentions)| Post {
            html,
            mentions,
            images: Vec::new(),
        })
        .collect();
    let mut used = 0usize;
    for image in images {
        let size = image.base64.len();
        let fits = posts.last().is_some() && used + size <= media::POST_HOSTED_BUDGET;
        match posts.last_mut() {
            Some(last) if fits => last.images.push(image),
            _ => {
                used = 0;
                posts.push(Post {
                    images: vec![image],
                    ..Post::default()
                });
            }
        }
        used += size;
    }
    if posts.is_empty() {
        posts.push(Post::default());
    }
    posts
}

/// The `<img>` elements of an existing message body that show its hosted
/// contents (absolute Graph URLs after posting), to keep them in an edit.
fn hosted_images(content: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("<img") {
        let after = &rest[start..];
        let Some(end) = after.find('>') else { break };
        let tag = &after[..=end];
        if tag.contains("/hostedContents/") {
            out.push(tag.to_owned());
        }
        rest = &after[end + 1..];
    }
    out
}

/// A readable name for the platform a call is on.
fn call_platform<'a>(op: &'a OutboundOp, event: &'a CallEvent) -> &'a str {
    match (&op.origin, &event.provider) {
        (Some(origin), _) => platform_label(&origin.bridge),
        (None, CallProvider::SlackHuddle | CallProvider::SlackCall) => "Slack",
        (None, CallProvider::TeamsMeeting) => "Teams",
        (None, CallProvider::MatrixWidget) => "Matrix",
        (None, CallProvider::Jitsi) => "Jitsi",
        (None, CallProvider::Other(name)) => name,
    }
}

/// The HTML of a call card (see the module docs).
fn call_card(event: &CallEvent, who: &str, platform: &str, teams_join: Option<&str>) -> String {
    let link = |url: &str, label: &str| {
        format!(
            "<a href=\"{}\">{label}</a>",
            escape(url.trim()).replace('\'', "&#39;")
        )
    };
    let title = event
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| format!(": <i>{}</i>", escape(t)))
        .unwrap_or_default();
    let who = format!("<b>{}</b>", escape(who));
    let platform = escape(platform);
    if let CallState::Ended { duration } = &event.state {
        let ended = match duration {
            Some(d) => format!(
                "ended after {}",
                switchboard_model::call::format_duration(*d)
            ),
            None => "has ended".to_owned(),
        };
        return format!("<p>📞 The call {who} started on {platform}{title} {ended}.</p>");
    }
    let mut links = Vec::new();
    if let Some(url) = event.join_url.as_deref().filter(|u| html::safe_url(u)) {
        links.push(link(url, "Join"));
    }
    if let Some(url) = teams_join.filter(|u| html::safe_url(u)) {
        links.push(link(url, "Join in Teams"));
    }
    let mut out = format!("<p>📞 {who} started a call on {platform}{title}");
    if !links.is_empty() {
        out.push_str(" — ");
        out.push_str(&links.join(" · "));
    }
    out.push_str("</p>");
    if matches!(event.state, CallState::Updated) && !event.participants.is_empty() {
        const SHOWN: usize = 20;
        let names: Vec<String> = event
            .participants
            .iter()
            .take(SHOWN)
            .map(|p| escape(&p.display_name))
            .collect();
        let more = event.participants.len().saturating_sub(SHOWN);
        out.push_str(&format!(
            "<p>In the call ({}): {}{}</p>",
            event.participants.len(),
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    out
}

impl TeamsBridge {
    // ------------------------------------------------------------ bodies

    /// The bold author line for posts made by the service account for
    /// someone else.
    fn author_line(op: &OutboundOp, actor: &Actor) -> Option<String> {
        match (&op.on_behalf_of, actor.author_line) {
            (Some(person), true) => Some(format!(
                "<b>{}</b> ({}): ",
                escape(&person.display_name),
                escape(platform_label(&person.bridge))
            )),
            _ => None,
        }
    }

    /// What every part adds to its HTML: the author line, an emote's
    /// italics and the relay marker (with room for a part number).
    fn part_overhead(&self, op: &OutboundOp, actor: &Actor) -> usize {
        Self::author_line(op, actor).map_or(0, |l| l.len() + 7)
            + "<i></i>".len()
            + graph::relay_marker_html(&self.relay_marker, op.id.as_str()).len()
            + "#99".len()
    }

    /// Part `n` of a message as posted: `html` with the author line, an
    /// emote's italics, `extra` (images) and the relay marker.
    fn decorate(
        &self,
        op: &OutboundOp,
        actor: &Actor,
        style: MessageStyle,
        html: &str,
        extra: &str,
        n: usize,
    ) -> String {
        let mut content = html.to_owned();
        if let Some(line) = Self::author_line(op, actor) {
            content = match content.strip_prefix("<p>") {
                Some(rest) => format!("<p>{line}{rest}"),
                None if content.is_empty() => format!("<p>{}</p>", line.trim_end()),
                None => format!("{line}{content}"),
            };
        }
        if style == MessageStyle::Emote && !actor.author_line && !content.is_empty() {
            content = format!("<i>{content}</i>");
        }
        content.push_str(extra);
        content.push_str(&graph::relay_marker_html(
            &self.relay_marker,
            &part_marker(&op.id, n),
        ));
        content
    }

    /// The POST body of part `n`.
    fn post_body(
        &self,
        op: &OutboundOp,
        actor: &Actor,
        style: MessageStyle,
        post: &Post,
        n: usize,
    ) -> Value {
        let imgs: String = post
            .images
            .iter()
            .enumerate()
            .map(|(i, img)| format!("<p>{}</p>", img.img(i + 1)))
            .collect();
        let content = self.decorate(op, actor, style, &post.html, &imgs, n);
        let mut body = json!({ "body": { "contentType": "html", "content": content } });
        if !post.mentions.is_empty() {
            body["mentions"] =
                Value::Array(post.mentions.iter().map(html::Mention::to_graph).collect());
        }
        if !post.images.is_empty() {
            body["hostedContents"] = Value::Array(
                post.images
                    .iter()
                    .enumerate()
                    .map(|(i, img)| img.hosted(i + 1))
                    .collect(),
            );
        }
        body
    }

    /// The posts `message` becomes for `actor`.
    fn posts(
        &self,
        op: &OutboundOp,
        actor: &Actor,
        message: &Message,
        prepared: Prepared,
    ) -> Vec<Post> {
        let body = media::with_lines(message.body.clone(), &prepared.lines);
        let budget = html::DEFAULT_SPLIT_BYTES.saturating_sub(self.part_overhead(op, actor));
        let texts = if body.is_empty() && !prepared.images.is_empty() {
            Vec::new()
        } else {
            html::split_to_limit(&body, &self.id, budget)
        };
        pack(texts, prepared.images)
    }

    // ------------------------------------------------------------ idempotency

    pub(super) fn remember(&self, op: &OpId, delivered: &Delivered) {
        let mut posted = self.posted.lock().unwrap_or_else(|p| p.into_inner());
        if posted.len() > REMEMBERED_OPS {
            posted.clear();
        }
        posted.insert(op.clone(), delivered.clone());
    }

    pub(super) fn already_posted(&self, op: &OpId) -> Option<Delivered> {
        self.posted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(op)
            .cloned()
    }

    pub(super) fn remember_ours(&self, channel: &ChannelId, id: &MessageId) {
        let mut ours = self.ours.lock().unwrap_or_else(|p| p.into_inner());
        if ours.len() > REMEMBERED_OPS {
            ours.clear();
        }
        ours.insert((channel.clone(), id.clone()));
    }

    pub(super) fn is_ours(&self, channel: &ChannelId, id: &MessageId) -> bool {
        self.ours
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(channel.clone(), id.clone()))
    }

    /// After a possible earlier attempt: the message carrying `op`'s relay
    /// marker in `list_path`, if any.
    pub(super) async fn find_posted(
        &self,
        conv: &Conversation<'_>,
        list_path: &str,
        root: Option<&str>,
        op: &OutboundOp,
        actor: &Actor,
    ) -> Result<Option<MessageId>, BridgeError> {
        Ok(self
            .find_parts(conv, list_path, root, op, actor, 1)
            .await?
            .into_iter()
            .next()
            .flatten())
    }

    /// The messages carrying the markers of `op`'s first `count` parts in
    /// `list_path`: the list is read back to the op's acceptance, once for
    /// all the ops of a restart (see [`switchboard_model::recovery`]).
    async fn find_parts(
        &self,
        conv: &Conversation<'_>,
        list_path: &str,
        root: Option<&str>,
        op: &OutboundOp,
        actor: &Actor,
        count: usize,
    ) -> Result<Vec<Option<MessageId>>, BridgeError> {
        if let Lookup::Read { since } = self.earlier.plan(list_path, op) {
            let read_at = Timestamp::now();
            let found = self
                .read_markers(conv, list_path, root, actor, since)
                .await?;
            self.earlier.record(list_path, since, read_at, found);
        }
        Ok((0..count)
            .map(|n| self.earlier.find(list_path, &part_marker(&op.id, n)))
            .collect())
    }

    /// Our relay markers in `list_path` and the messages carrying them, from
    /// the newest back to `since`. Graph lists newest first (by last change),
    /// so the read stops at the first message last changed before `since`:
    /// nothing after it in the list was created later.
    async fn read_markers(
        &self,
        conv: &Conversation<'_>,
        list_path: &str,
        root: Option<&str>,
        actor: &Actor,
        since: Timestamp,
    ) -> Result<Vec<(String, MessageId)>, BridgeError> {
        let bearer = Bearer::User(&actor.token, &actor.user);
        let mut found = Vec::new();
        let mut next = Some(format!("{list_path}?$top={MARKER_PAGE}"));
        let mut pages = 0;
        while let Some(url) = next.take() {
            if pages == MARKER_PAGES {
                tracing::warn!(
                    bridge = %self.id,
                    pages,
                    "Read back as far as allowed without reaching the op's acceptance; an older post of a retried op may be posted again."
                );
                break;
            }
            pages += 1;
            let page = self.graph.get_json(&url, bearer).await?;
            let mut reached = false;
            for m in page
                .get("value")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(id), Some(content)) = (
                    m.get("id").and_then(Value::as_str),
                    m.pointer("/body/content").and_then(Value::as_str),
                ) {
                    let message = graph::message_id(conv.is_channel(), root, id);
                    for marker in graph::relay_markers_in(content, &self.relay_marker) {
                        found.push((marker, message.clone()));
                    }
                }
                reached |= graph::last_changed(m).is_some_and(|t| t < since);
            }
            if !reached {
                next = page
                    .get("@odata.nextLink")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
        }
        Ok(found)
    }

    // ------------------------------------------------------------ operations

    pub(super) async fn send(
        &self,
        op: &OutboundOp,
        message: &Message,
        media: &dyn MediaSource,
    ) -> Result<Delivered, BridgeError> {
        let actor = self.actor(op).await?;
        // Attachments first: a failure to fetch is retried before anything
        // is posted.
        let prepared = self.prepare_attachments(op, message, media).await?;
        let posts = self.posts(op, &actor, message, prepared);
        self.post_all(op, &actor, message, &posts).await
    }

    /// Posts `posts` as the parts of `message`, skipping parts an earlier
    /// attempt already posted.
    async fn post_all(
        &self,
        op: &OutboundOp,
        actor: &Actor,
        message: &Message,
        posts: &[Post],
    ) -> Result<Delivered, BridgeError> {
        let conv = Conversation::of(&op.channel)?;
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
        // A retry may follow a failure between parts even when the relay
        // does not flag it, so several parts are always looked for first.
        // An earlier attempt, of this process or of one before it, may
        // have posted some parts already.
        let mut found = if self.earlier.must_look(op) {
            self.find_parts(&conv, &list_path, root.as_deref(), op, actor, posts.len())
                .await?
        } else {
            Vec::new()
        };
        self.earlier.attempting(&op.id);
        found.resize(posts.len(), None);
        let mut ids = Vec::with_capacity(posts.len());
        for (n, (post, found)) in posts.iter().zip(found).enumerate() {
            let id = match found {
                Some(id) => id,
                None => {
                    let body = self.post_body(op, actor, message.style, post, n);
                    let posted = self
                        .graph
                        .post_json(&list_path, Bearer::User(&actor.token, &actor.user), &body)
                        .await?;
                    let Some(id) = posted.get("id").and_then(Value::as_str) else {
                        return Err(BridgeError::transient("Graph's answer to a POST has no id"));
                    };
                    graph::message_id(conv.is_channel(), root.as_deref(), id)
                }
            };
            self.remember_ours(&op.channel, &id);
            ids.push(id);
        }
        Ok(Delivered { ids })
    }

    pub(super) async fn edit(
        &self,
        op: &OutboundOp,
        parts: &[MessageId],
        message: &Message,
    ) -> Result<Delivered, BridgeError> {
        let conv = Conversation::of(&op.channel)?;
        if parts.is_empty() {
            return Err(BridgeError::permanent("an edit without a message"));
        }
        let actor = self.actor(op).await?;
        let bearer = Bearer::User(&actor.token, &actor.user);
        // Images cannot be added by an edit; keep those the parts show.
        let candidates = message.attachments.iter().any(media::inline_candidate);
        let mut kept: Vec<Vec<String>> = vec![Vec::new(); parts.len()];
        if candidates {
            for (part, kept) in parts.iter().zip(kept.iter_mut()) {
                match self.graph.get_json(&conv.message(part), bearer).await {
                    Ok(m) => {
                        *kept = m
                            .pointer("/body/content")
                            .and_then(Value::as_str)
                            .map(hosted_images)
                            .unwrap_or_default();
                    }
                    Err(BridgeError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let any_kept = kept.iter().any(|k| !k.is_empty());
        let lines: Vec<_> = message
            .attachments
            .iter()
            .filter(|a| !(any_kept && media::inline_candidate(a)))
            .map(|a| media::attachment_line(a, None))
            .collect();
        let body = media::with_lines(message.body.clone(), &lines);
        let room = kept
            .iter()
            .map(|k| k.iter().map(|t| t.len() + 7).sum::<usize>())
            .max()
            .unwrap_or(0);
        let budget = html::DEFAULT_SPLIT_BYTES
            .saturating_sub(self.part_overhead(op, &actor))
            .saturating_sub(room);
        let mut texts = html::split_to_limit(&body, &self.id, budget);
        if texts.len() > parts.len() {
            texts.truncate(parts.len());
            let continued = format!("<p>{}</p>", html::CONTINUED);
            if let Some((last, _)) = texts.last_mut()
                && let Some(cut) = last.strip_suffix(&continued)
            {
                *last = format!("{cut}<p>{}</p>", html::TRUNCATED);
            }
        }
        for (n, (part, kept)) in parts.iter().zip(&kept).enumerate() {
            let path = conv.message(part);
            let extra: String = kept.iter().map(|t| format!("<p>{t}</p>")).collect();
            let (text, mentions) = match texts.get(n) {
                Some((html, mentions)) => (html.as_str(), mentions.as_slice()),
                None if !extra.is_empty() => ("", &[][..]),
                None => {
                    // Not needed any more: soft-deleted (see the module docs).
                    match self
                        .graph
                        .post_json(&format!("{path}/softDelete"), bearer, &json!({}))
                        .await
                    {
                        Ok(_) | Err(BridgeError::NotFound { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
            };
            let content = self.decorate(op, &actor, message.style, text, &extra, n);
            let patch = json!({
                "body": { "contentType": "html", "content": content },
                "mentions": mentions.iter().map(html::Mention::to_graph).collect::<Vec<_>>(),
            });
            match self.graph.patch_json(&path, bearer, &patch).await {
                Ok(_) => {}
                Err(BridgeError::NotFound { .. }) if n > 0 => {
                    // A part an earlier, shorter edit soft-deleted: bring it back.
                    self.graph
                        .post_json(&format!("{path}/undoSoftDelete"), bearer, &json!({}))
                        .await?;
                    self.graph.patch_json(&path, bearer, &patch).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Delivered::none())
    }

    pub(super) async fn delete(
        &self,
        op: &OutboundOp,
        parts: &[MessageId],
    ) -> Result<Delivered, BridgeError> {
        let conv = Conversation::of(&op.channel)?;
        let actor = self.actor(op).await?;
        for part in parts {
            // The deletion comes back as an event without a body, so without
            // the relay marker: only this record says it was ours (a linked
            // person's own account deleting a message posted before a
            // restart would otherwise be relayed back as their deletion).
            self.remember_ours(&op.channel, part);
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

    pub(super) async fn react(
        &self,
        op: &OutboundOp,
        target: &MessageId,
        key: &str,
        add: bool,
    ) -> Result<Delivered, BridgeError> {
        let conv = Conversation::of(&op.channel)?;
        let actor = self.actor(op).await?;
        // Through the service account, one reaction per emoji stands for
        // everyone elsewhere who chose it: set it for the first, unset it
        // with the last.
        let holder = op
            .on_behalf_of
            .as_ref()
            .filter(|_| actor.author_line)
            .map(|p| format!("{}|{}", p.bridge, p.user));
        if let Some(holder) = &holder {
            let shared = if add {
                self.shared_reactions.add(&op.channel, target, key, holder)
            } else {
                self.shared_reactions
                    .remove(&op.channel, target, key, holder)
            };
            if shared == reactions::Action::Skip {
                return Ok(Delivered::none());
            }
        }
        let action = if add { "setReaction" } else { "unsetReaction" };
        let path = format!("{}/{action}", conv.message(target));
        let result = self
            .graph
            .post_json(
                &path,
                Bearer::User(&actor.token, &actor.user),
                &json!({ "reactionType": key }),
            )
            .await;
        if let (Err(_), Some(holder), true) = (&result, &holder, add) {
            self.shared_reactions
                .forget(&op.channel, target, key, holder);
        }
        result?;
        Ok(Delivered::none())
    }

    // ------------------------------------------------------------ calls

    /// Who posts and edits call cards: the service account when there is
    /// one (a call's states may come from different people, and only the
    /// sender may edit a message), else whoever the op is for. No author
    /// line: the card names who started the call.
    async fn card_actor(&self, op: &OutboundOp) -> Result<Actor, BridgeError> {
        if self.service_user().is_some() {
            let (token, user) = self.service_actor().await?;
            return Ok(Actor {
                token,
                user,
                author_line: false,
            });
        }
        let mut actor = self.actor(op).await?;
        actor.author_line = false;
        Ok(actor)
    }

    /// The Teams meeting standing for `event`'s call, created on first use
    /// (`POST /me/onlineMeetings/createOrGet`,
    /// <https://learn.microsoft.com/graph/api/onlinemeeting-createorget>,
    /// delegated `OnlineMeetings.ReadWrite`; the same `externalId` gives the
    /// same meeting, so retries and later states never make a second one).
    /// `None` when the account may not create meetings: the card then has
    /// the origin's link only.
    async fn teams_meeting(
        &self,
        actor: &Actor,
        event: &CallEvent,
        platform: &str,
    ) -> Option<String> {
        let subject = event
            .title
            .clone()
            .unwrap_or_else(|| format!("Call from {platform}"));
        match self
            .create_or_get_meeting(actor, event.call.as_str(), &subject)
            .await
        {
            Ok(meeting) => Some(meeting.join_url),
            Err(e) => {
                tracing::warn!(bridge = %self.id, error = %e, "Could not create a Teams meeting for a call; the card has the origin's link only.");
                None
            }
        }
    }

    /// `POST /me/onlineMeetings/createOrGet` as `actor`: the meeting
    /// `actor` organises under `external_id`, created (starting now, one
    /// hour long, titled `subject`) when there is none yet.
    async fn create_or_get_meeting(
        &self,
        actor: &Actor,
        external_id: &str,
        subject: &str,
    ) -> Result<Meeting, BridgeError> {
        let now = super::inbound::iso_ms(now_ms());
        let end = super::inbound::iso_ms(now_ms().saturating_add(3_600_000));
        let request = json!({
            "externalId": external_id,
            "subject": subject,
            "startDateTime": now,
            "endDateTime": end,
        });
        let meeting = self
            .graph
            .post_json(
                "/me/onlineMeetings/createOrGet",
                Bearer::User(&actor.token, &actor.user),
                &request,
            )
            .await?;
        let field = |name: &str| meeting.get(name).and_then(Value::as_str).map(str::to_owned);
        match (field("id"), field("joinWebUrl")) {
            (Some(id), Some(join)) => Ok(Meeting::new(id, join, CallProvider::TeamsMeeting)),
            _ => Err(BridgeError::transient(
                "Graph's online meeting has no id or joinWebUrl",
            )),
        }
    }

    /// [`switchboard_model::Bridge::create_meeting`]: a Teams meeting for a
    /// call asked for in `channel`'s portal, organised by `organiser`'s
    /// linked Teams account or else the service account, keyed by `key`
    /// (Graph's `externalId`, unique per organiser: a retry, or a call card
    /// for a call whose id is `key`, gets the same meeting).
    pub(super) async fn requested_meeting(
        &self,
        key: &str,
        channel: &ChannelId,
        title: &str,
        organiser: Option<&Person>,
    ) -> Result<Meeting, BridgeError> {
        if key.is_empty() {
            return Err(BridgeError::permanent("a meeting needs a non-empty key"));
        }
        let actor = self.organiser_actor(organiser).await?;
        let subject = match title.trim() {
            "" => "Call".to_owned(),
            t => t.to_owned(),
        };
        let meeting = self.create_or_get_meeting(&actor, key, &subject).await?;
        tracing::info!(bridge = %self.id, %channel, meeting = %meeting.id, "Created a Teams meeting on request.");
        Ok(meeting)
    }

    pub(super) async fn call(
        &self,
        op: &OutboundOp,
        event: &CallEvent,
        invite: &[MessageId],
    ) -> Result<Delivered, BridgeError> {
        let conv = Conversation::of(&op.channel)?;
        let actor = self.card_actor(op).await?;
        let platform = call_platform(op, event).to_owned();
        let who = event
            .started_by
            .as_ref()
            .or(op.on_behalf_of.as_ref())
            .map_or("Someone", |p| p.display_name.as_str())
            .to_owned();
        let ended = matches!(event.state, CallState::Ended { .. });
        // A retry of a start may find its card already posted.
        let posted = match invite.first() {
            None if self.earlier.must_look(op) => {
                self.find_posted(&conv, &conv.messages(), None, op, &actor)
                    .await?
            }
            _ => None,
        };
        if invite.is_empty() {
            self.earlier.attempting(&op.id);
        }
        // A Teams meeting already (e.g. one made on request): its own link
        // is the card's, and a second meeting would split the call.
        let is_teams_meeting =
            matches!(event.provider, CallProvider::TeamsMeeting) && event.join_url.is_some();
        let teams_join = if ended || posted.is_some() || is_teams_meeting {
            None
        } else {
            self.teams_meeting(&actor, event, &platform).await
        };
        let html = call_card(event, &who, &platform, teams_join.as_deref());
        let content = self.decorate(op, &actor, MessageStyle::Notice, &html, "", 0);
        let body = json!({ "body": { "contentType": "html", "content": content }, "mentions": [] });
        let bearer = Bearer::User(&actor.token, &actor.user);
        match (invite.first(), posted) {
            (Some(card), _) => {
                match self
                    .graph
                    .patch_json(&conv.message(card), bearer, &body)
                    .await
                {
                    // The card was deleted in Teams: nothing to update.
                    Ok(_) | Err(BridgeError::NotFound { .. }) => Ok(Delivered::none()),
                    Err(e) => Err(e),
                }
            }
            (None, Some(id)) => {
                self.remember_ours(&op.channel, &id);
                Ok(Delivered::one(id))
            }
            (None, None) => {
                let answer = self
                    .graph
                    .post_json(&conv.messages(), bearer, &body)
                    .await?;
                let Some(id) = answer.get("id").and_then(Value::as_str) else {
                    return Err(BridgeError::transient("Graph's answer to a POST has no id"));
                };
                let id = graph::message_id(conv.is_channel(), None, id);
                self.remember_ours(&op.channel, &id);
                Ok(Delivered::one(id))
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use switchboard_model::{BridgeId, CallId, Person, UserId};

    fn image(n: usize, size: usize) -> InlineImage {
        InlineImage {
            name: format!("i{n}.png"),
            mime: "image/png",
            base64: "A".repeat(size),
        }
    }

    #[test]
    fn part_markers_are_distinct() {
        let op = OpId::new("sb1.2");
        assert_eq!(part_marker(&op, 0), "sb1.2");
        assert_eq!(part_marker(&op, 1), "sb1.2#2");
        assert_eq!(part_marker(&op, 9), "sb1.2#10");
    }

    #[test]
    fn images_ride_with_the_last_text_part_until_the_request_is_full() {
        let texts = vec![
            ("<p>a</p>".to_owned(), vec![]),
            ("<p>b</p>".to_owned(), vec![]),
        ];
        let big = media::POST_HOSTED_BUDGET / 2 + 1;
        let posts = pack(
            texts,
            vec![image(1, 10), image(2, big), image(3, big), image(4, 10)],
        );
        assert_eq!(posts.len(), 3);
        assert_eq!(posts[0].images.len(), 0);
        assert_eq!(posts[1].html, "<p>b</p>");
        let names = |p: &Post| p.images.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&posts[1]), ["i1.png", "i2.png"]);
        assert_eq!(posts[2].html, "");
        assert_eq!(names(&posts[2]), ["i3.png", "i4.png"]);
        // No text at all: the images make their own post.
        let only = pack(Vec::new(), vec![image(1, 10)]);
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].images.len(), 1);
        assert_eq!(pack(Vec::new(), Vec::new()).len(), 1);
    }

    #[test]
    fn hosted_images_are_found_in_bodies() {
        let body = "<p>x</p><p><img src=\"https://graph/v1.0/chats/c/messages/1/hostedContents/aGk=/$value\" alt=\"a\"></p><img src=\"https://example.com/x.png\">";
        assert_eq!(
            hosted_images(body),
            [
                "<img src=\"https://graph/v1.0/chats/c/messages/1/hostedContents/aGk=/$value\" alt=\"a\">"
            ]
        );
        assert!(hosted_images("<p>none</p>").is_empty());
    }

    #[test]
    fn call_cards_say_who_where_and_how_to_join() {
        let mut event = CallEvent::new(
            CallId::new("slack:huddle:1"),
            CallProvider::SlackHuddle,
            CallState::Started,
        )
        .with_join_url("https://app.slack.com/huddle/T1/C1");
        let card = call_card(
            &event,
            "Ann <A&B>",
            "Slack",
            Some("https://teams.microsoft.com/l/meetup-join/x"),
        );
        assert_eq!(
            card,
            "<p>📞 <b>Ann &lt;A&amp;B&gt;</b> started a call on Slack — <a href=\"https://app.slack.com/huddle/T1/C1\">Join</a> · <a href=\"https://teams.microsoft.com/l/meetup-join/x\">Join in Teams</a></p>"
        );
        event.state = CallState::Updated;
        event.title = Some("Standup".into());
        event.participants = vec![
            Person::new(BridgeId::new("slack:a"), UserId::new("U1"), "Ann"),
            Person::new(BridgeId::new("slack:a"), UserId::new("U2"), "Bo"),
        ];
        let card = call_card(&event, "Ann", "Slack", None);
        assert!(
            card.contains("started a call on Slack: <i>Standup</i> — <a href"),
            "{card}"
        );
        assert!(card.ends_with("<p>In the call (2): Ann, Bo</p>"), "{card}");
        event.state = CallState::Ended {
            duration: Some(Duration::from_secs(245)),
        };
        let card = call_card(
            &event,
            "Ann",
            "Slack",
            Some("https://teams.microsoft.com/x"),
        );
        assert_eq!(
            card,
            "<p>📞 The call <b>Ann</b> started on Slack: <i>Standup</i> ended after 4m 05s.</p>"
        );
        // Unsafe links are left out.
        let event = CallEvent::new(CallId::new("c"), CallProvider::Jitsi, CallState::Started)
            .with_join_url("javascript:alert(1)");
        assert_eq!(
            call_card(&event, "X", "Jitsi", None),
            "<p>📞 <b>X</b> started a call on Jitsi</p>"
        );
    }
}
