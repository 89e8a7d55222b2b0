//! Outbound: who a post is made as, its HTML body, and the Graph calls that
//! send, edit, delete and react, with the relay marker for idempotency.

use super::{
    Actor, Conversation, FIND_POSTED_LIMIT, REMEMBERED_OPS, TeamsBridge, escape, platform_label,
};
use crate::client::Bearer;
use crate::graph;
use crate::html;
use serde_json::{Value, json};
use switchboard_model::{
    BridgeError, ChannelId, Delivered, Message, MessageId, MessageStyle, OpId, OutboundOp, RichText,
};

impl TeamsBridge {
    // ------------------------------------------------------------ bodies

    /// The HTML body for `message` as posted by `actor` for `op`.
    pub(super) fn body(&self, op: &OutboundOp, actor: &Actor, message: &Message) -> Value {
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
    /// marker among the recent messages of `list_path`, if any.
    pub(super) async fn find_posted(
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

    pub(super) async fn send(
        &self,
        op: &OutboundOp,
        message: &Message,
    ) -> Result<Delivered, BridgeError> {
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

    pub(super) async fn edit(
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

    pub(super) async fn delete(
        &self,
        op: &OutboundOp,
        parts: &[MessageId],
    ) -> Result<Delivered, BridgeError> {
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

    pub(super) async fn react(
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

    pub(super) async fn call(
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
}
