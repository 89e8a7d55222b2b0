//! Turning a stored pending op into the [`OutboundOp`] a target bridge carries
//! out: origin ids resolved to the target's through the mappings, mentions
//! rewritten to the target's identity of each person, the author's puppet
//! ensured, and visible degradation where the target lacks a capability.

use super::portals::Portals;
use crate::config::ReactionFallback;
use crate::store::records::{OutboxEntry, PendingAction, PuppetRecord, stable_hash};
use crate::store::{Db, GroupId, OutboxKey, StoreError};
use std::sync::Arc;
use switchboard_model::{
    Bridge, BridgeError, CallState, Capabilities, Inline, Message, MessageId, OpId, Origin,
    OutboundKind, OutboundOp, Person, PuppetRef, RichText, Timestamp,
};

/// The outcome of preparing one pending op.
#[derive(Debug)]
pub enum Prepared {
    /// Deliver `op`; on success record the created ids as `group`'s copy on the target.
    Deliver {
        /// The op for the bridge.
        op: Box<OutboundOp>,
        /// The group whose copy the created ids are.
        record: Option<GroupId>,
    },
    /// The message this op refers to has not been seen yet: wait for it.
    Park,
    /// Nothing to deliver (and why, for the debug log).
    Skip(&'static str),
    /// Carried out by the lane itself, not delivered: a meeting to create
    /// (relay/meetings.rs), a command or a direct chat (relay/commands.rs).
    Meeting,
}

/// Why preparation failed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The target bridge could not make a puppet.
    #[error(transparent)]
    Bridge(#[from] BridgeError),
}

/// Where an origin message id stands on the target.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    /// Delivered there, as these parts.
    Parts(Vec<MessageId>),
    /// Known, but not delivered to this target: still queued (when the
    /// caller says the group is pending), else dead-lettered or from before the
    /// target joined the portal.
    Missing(GroupId),
    /// Never seen: it may still arrive.
    Unknown,
}

/// Everything a lane needs to prepare its ops.
#[derive(Debug, Clone)]
pub struct Translator {
    pub(crate) db: Db,
    pub(crate) bridge: Arc<dyn Bridge>,
    pub(crate) capabilities: Capabilities,
    pub(crate) portals: Portals,
    pub(crate) reaction_fallback: ReactionFallback,
}

/// The op id of a pending op: stable across retries and restarts.
pub fn op_id(key: &OutboxKey) -> OpId {
    let lane = stable_hash(&format!("{}\u{1f}{}", key.bridge, key.channel));
    OpId::new(format!("sb{:x}.{:x}", key.seq, lane & 0xffff_ffff))
}

impl Translator {
    /// Prepares `entry` for delivery. `waited_out` is true once a parked op has
    /// waited as long as the configuration allows for an unknown target;
    /// `pending` says whether a group's message is still queued on this lane.
    pub async fn prepare(
        &self,
        key: &OutboxKey,
        entry: &OutboxEntry,
        waited_out: bool,
        pending: &(dyn Fn(GroupId) -> bool + Sync),
    ) -> Result<Prepared, PrepareError> {
        let wait = |r: &Resolved| match r {
            Resolved::Unknown => !waited_out,
            Resolved::Missing(g) => pending(*g),
            Resolved::Parts(_) => false,
        };
        let caps = &self.capabilities;
        let id = op_id(key);
        let author = match &entry.sender {
            Some(person) => Some(self.ensure_puppet(person).await?),
            None => None,
        };
        let make = |kind: OutboundKind| {
            Box::new(
                OutboundOp::new(id.clone(), key.channel.clone(), kind)
                    .with_origin(entry.origin.clone(), entry.sender.clone())
                    .with_author(author.clone())
                    .maybe_delivered(entry.maybe_delivered)
                    .queued_at(Timestamp(entry.enqueued_ms)),
            )
        };
        let origin = entry.origin.as_ref();

        match &entry.action {
            PendingAction::Notice { text } => Ok(Prepared::Deliver {
                op: make(OutboundKind::Send {
                    message: Message::text(text)
                        .with_style(switchboard_model::MessageStyle::Notice),
                }),
                record: None,
            }),
            PendingAction::Send { group, message } => {
                let message = self.translate_message(key, origin, message).await?;
                Ok(Prepared::Deliver {
                    op: make(OutboundKind::Send { message }),
                    record: Some(*group),
                })
            }
            PendingAction::Edit { target, message } => {
                let resolved = self.resolve(key, origin, target)?;
                if wait(&resolved) {
                    return Ok(Prepared::Park);
                }
                let message = self.translate_message(key, origin, message).await?;
                match resolved {
                    Resolved::Parts(parts) if caps.edits => Ok(Prepared::Deliver {
                        op: make(OutboundKind::Edit { parts, message }),
                        record: None,
                    }),
                    other => {
                        // No edits here, or nothing to edit: show the new text as a follow-up.
                        let mut follow_up = message;
                        follow_up.body = follow_up.body.prefixed(vec![Inline::text("✏️ edited: ")]);
                        follow_up.reply_to = match other {
                            Resolved::Parts(parts) if caps.replies => parts.first().cloned(),
                            _ => None,
                        };
                        follow_up.thread_root = None;
                        Ok(Prepared::Deliver {
                            op: make(OutboundKind::Send { message: follow_up }),
                            record: None,
                        })
                    }
                }
            }
            PendingAction::Delete { target } => match self.resolve(key, origin, target)? {
                r if wait(&r) => Ok(Prepared::Park),
                Resolved::Parts(_) if !caps.deletes => Ok(Prepared::Skip("target cannot delete")),
                Resolved::Parts(parts) => Ok(Prepared::Deliver {
                    op: make(OutboundKind::Delete { parts }),
                    record: None,
                }),
                _ => Ok(Prepared::Skip("deleted message was never delivered here")),
            },
            PendingAction::Reaction {
                target,
                key: reaction,
                added,
                group,
            } => {
                let parts = match self.resolve(key, origin, target)? {
                    r if wait(&r) => return Ok(Prepared::Park),
                    Resolved::Parts(parts) => parts,
                    _ => return Ok(Prepared::Skip("reacted message was never delivered here")),
                };
                let Some(first) = parts.first().cloned() else {
                    return Ok(Prepared::Skip("reacted message has no parts here"));
                };
                if !caps.reactions {
                    if !*added || self.reaction_fallback == ReactionFallback::Skip {
                        return Ok(Prepared::Skip("target has no reactions"));
                    }
                    let name = entry
                        .sender
                        .as_ref()
                        .map_or("Someone", |p| p.display_name.as_str());
                    let mut notice = Message::text(format!("{name} reacted {reaction}"))
                        .with_style(switchboard_model::MessageStyle::Notice);
                    if caps.replies {
                        notice.reply_to = Some(first);
                    }
                    return Ok(Prepared::Deliver {
                        op: make(OutboundKind::Send { message: notice }),
                        record: None,
                    });
                }
                if *added {
                    Ok(Prepared::Deliver {
                        op: make(OutboundKind::React {
                            target: first,
                            key: reaction.clone(),
                        }),
                        record: Some(*group),
                    })
                } else {
                    let reaction_id = self
                        .db
                        .copy(*group, &key.bridge, &key.channel)?
                        .and_then(|ids| ids.into_iter().next());
                    Ok(Prepared::Deliver {
                        op: make(OutboundKind::Unreact {
                            target: first,
                            key: reaction.clone(),
                            reaction: reaction_id,
                        }),
                        record: None,
                    })
                }
            }
            PendingAction::StartCall { .. }
            | PendingAction::Command { .. }
            | PendingAction::DirectChat { .. }
            | PendingAction::Held { .. } => Ok(Prepared::Meeting),
            PendingAction::ChannelInfo { info } => {
                if !caps.mirrors_channel_info {
                    return Ok(Prepared::Skip("target keeps its own channel names"));
                }
                Ok(Prepared::Deliver {
                    op: make(OutboundKind::ChannelInfo { info: info.clone() }),
                    record: None,
                })
            }
            PendingAction::Call { event } => {
                // A later state often says less than the first (an end
                // without its title): fill in what the registry knows.
                let mut event = event.clone();
                if let Some(known) = self.db.call(&event.call)? {
                    if event.title.is_none() {
                        event.title = known.title;
                    }
                    if event.join_url.is_none() {
                        event.join_url = known.join_url;
                    }
                    if event.started_by.is_none() {
                        event.started_by = known.started_by;
                    }
                }
                let event = &event;
                let group = match origin {
                    Some(o) => {
                        self.db
                            .group_of(&o.bridge, &o.channel, &call_message_id(&event.call))?
                    }
                    None => None,
                };
                let invite = match group {
                    Some(g) => self
                        .db
                        .copy(g, &key.bridge, &key.channel)?
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                if caps.native_calls {
                    return Ok(Prepared::Deliver {
                        op: make(OutboundKind::Call {
                            event: event.clone(),
                            invite,
                        }),
                        record: group,
                    });
                }
                // No native form: a notice with the link, edited as the call moves on.
                let text = Message::text(event.describe())
                    .with_style(switchboard_model::MessageStyle::Notice);
                let ended = matches!(event.state, CallState::Ended { .. });
                if !invite.is_empty() && caps.edits {
                    Ok(Prepared::Deliver {
                        op: make(OutboundKind::Edit {
                            parts: invite,
                            message: text,
                        }),
                        record: None,
                    })
                } else if invite.is_empty() || ended {
                    Ok(Prepared::Deliver {
                        op: make(OutboundKind::Send { message: text }),
                        record: group,
                    })
                } else {
                    Ok(Prepared::Skip("call update on a target without edits"))
                }
            }
        }
    }

    /// Resolves an origin message id to its parts on this lane's target.
    fn resolve(
        &self,
        key: &OutboxKey,
        origin: Option<&Origin>,
        msg: &MessageId,
    ) -> Result<Resolved, StoreError> {
        let Some(origin) = origin else {
            return Ok(Resolved::Unknown);
        };
        let Some(group) = self.db.group_of(&origin.bridge, &origin.channel, msg)? else {
            return Ok(Resolved::Unknown);
        };
        Ok(match self.db.copy(group, &key.bridge, &key.channel)? {
            Some(parts) => Resolved::Parts(parts),
            None => Resolved::Missing(group),
        })
    }

    /// Translates a message's references and body for this lane's target.
    async fn translate_message(
        &self,
        key: &OutboxKey,
        origin: Option<&Origin>,
        message: &Message,
    ) -> Result<Message, PrepareError> {
        let caps = &self.capabilities;
        let mut out = message.clone();
        let first_part = |r: Resolved| match r {
            Resolved::Parts(parts) => parts.into_iter().next(),
            _ => None,
        };
        out.reply_to = match &message.reply_to {
            Some(id) if caps.replies => first_part(self.resolve(key, origin, id)?),
            _ => None,
        };
        out.thread_root = match &message.thread_root {
            Some(id) => first_part(self.resolve(key, origin, id)?),
            None => None,
        };
        if !caps.threads {
            // Threads flatten into replies to the root where replies exist.
            if out.reply_to.is_none() && caps.replies {
                out.reply_to = out.thread_root.clone();
            }
            out.thread_root = None;
        }
        let (kept, dropped): (Vec<_>, Vec<_>) = out
            .attachments
            .drain(..)
            .partition(|a| caps.attachments && a.size.is_none_or(|s| s <= caps.max_upload));
        out.attachments = kept;
        if !dropped.is_empty() {
            let mut body = RichText::builder();
            for a in &dropped {
                body = body.text(format!("📎 {} (not transferable here)\n", a.name));
            }
            let mut blocks = out.body.blocks;
            blocks.extend(body.build().blocks);
            out.body = RichText { blocks };
        }
        self.rewrite_mentions(&mut out.body)?;
        Ok(out)
    }

    /// Points every mention at the target's identity of that person or channel.
    fn rewrite_mentions(&self, body: &mut RichText) -> Result<(), StoreError> {
        let target = self.bridge.id().clone();
        let mut failure = None;
        body.for_each_inline_mut(&mut |inline| match inline {
            Inline::UserMention { bridge, user, .. } if *bridge != target => {
                let looked_up = (|| -> Result<Option<switchboard_model::UserId>, StoreError> {
                    // A mention of one of our puppets stands for the person behind it.
                    let person = match self.db.person_of_puppet(bridge, user)? {
                        Some(p) => p,
                        None => Person::new(bridge.clone(), user.clone(), ""),
                    };
                    if person.bridge == target {
                        return Ok(Some(person.user));
                    }
                    // Only a real account can be mentioned natively: a linked
                    // account, or a puppet where puppets are accounts. Otherwise
                    // the mention stays as it is and renders as "@name".
                    Ok(self
                        .db
                        .puppet(&target, &person)?
                        .filter(|r| r.puppet.is_linked_account || self.capabilities.puppet_accounts)
                        .map(|r| r.puppet.user))
                })();
                match looked_up {
                    Ok(Some(there)) => {
                        *bridge = target.clone();
                        *user = there;
                    }
                    Ok(None) => {}
                    Err(e) => failure = Some(e),
                }
            }
            Inline::ChannelMention {
                bridge, channel, ..
            } if *bridge != target => {
                if let Some(there) = self.portals.counterpart(bridge, channel, &target) {
                    *bridge = target.clone();
                    *channel = there;
                }
            }
            _ => {}
        });
        failure.map_or(Ok(()), Err)
    }

    /// The target's puppet for `person`: from the store when its name and
    /// avatar are unchanged, else made or updated by the bridge and recorded.
    pub async fn ensure_puppet(&self, person: &Person) -> Result<PuppetRef, PrepareError> {
        let target = self.bridge.id();
        let name_hash = stable_hash(&person.display_name);
        let avatar_hash = stable_hash(person.avatar.as_deref().unwrap_or(""));
        if let Some(rec) = self.db.puppet(target, person)?
            && rec.name_hash == name_hash
            && rec.avatar_hash == avatar_hash
        {
            return Ok(rec.puppet);
        }
        let puppet = self.bridge.ensure_puppet(person).await?;
        self.db.put_puppet(
            target,
            person,
            &PuppetRecord {
                puppet: puppet.clone(),
                name_hash,
                avatar_hash,
            },
        )?;
        Ok(puppet)
    }
}

/// The synthetic origin message id under which a call's invites are grouped.
pub fn call_message_id(call: &switchboard_model::CallId) -> MessageId {
    MessageId::new(format!("\u{1}call\u{1f}{call}"))
}

/// The synthetic origin message id under which one person's reaction is grouped.
pub fn reaction_message_id(
    target: &MessageId,
    user: &switchboard_model::UserId,
    key: &str,
) -> MessageId {
    MessageId::new(format!("\u{1}react\u{1f}{target}\u{1f}{user}\u{1f}{key}"))
}
