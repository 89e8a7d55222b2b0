//! Stored values. Each is one version byte followed by JSON; [`decode`]
//! refuses a version it does not know, and [`super::migrate`] is where old
//! versions are rewritten.

use super::{StoreError, Tree};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use switchboard_model::{
    BridgeId, CallEvent, CallId, CallProvider, CallState, ChannelId, ChannelInfo, Message,
    MessageId, Origin, Person, PuppetRef,
};

/// The version byte every value written by this build starts with.
pub const VALUE_VERSION: u8 = 1;

/// Encodes a value: version byte, then JSON.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![VALUE_VERSION];
    // Serialising our own plain data types to a Vec cannot fail.
    serde_json::to_writer(&mut out, value).expect("stored types always serialise");
    out
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(tree: Tree, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, json)) => {
            serde_json::from_slice(json).map_err(|e| StoreError::Corrupt {
                tree,
                reason: e.to_string(),
            })
        }
        Some((v, _)) => Err(StoreError::Corrupt {
            tree,
            reason: format!("unknown value version {v}"),
        }),
        None => Err(StoreError::Corrupt {
            tree,
            reason: "empty value".to_owned(),
        }),
    }
}

/// A portal: channels on different bridges that form one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalRecord {
    /// Its members.
    pub members: Vec<(BridgeId, ChannelId)>,
    /// Whether call invites are relayed in this portal.
    #[serde(default = "yes")]
    pub relay_calls: bool,
    /// Who creates the meetings people ask for: a member's bridge id,
    /// `jitsi`, or none for the first member that can (else Jitsi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meetings: Option<String>,
    /// Where it comes from. Records written before portals could be linked
    /// at runtime have none: they all came from the config file.
    #[serde(default, skip_serializing_if = "PortalSource::is_config")]
    pub source: PortalSource,
}

/// Where a portal comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortalSource {
    /// A `[[portal]]` table of the config file; it follows the file.
    #[default]
    Config,
    /// Linked at runtime (`switchboard portal link`); kept until unlinked.
    Linked,
    /// A direct-message portal opened by `dm <name>` or by a DM with a
    /// puppet: two people's direct conversations. Kept until unlinked, or
    /// until one of its channels is taken by a newer direct portal.
    Direct,
}

impl PortalSource {
    /// True for [`PortalSource::Config`].
    pub fn is_config(&self) -> bool {
        *self == PortalSource::Config
    }

    /// Its name in the admin API and the CLI: `config`, `linked` or
    /// `direct`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PortalSource::Config => "config",
            PortalSource::Linked => "linked",
            PortalSource::Direct => "direct",
        }
    }
}

fn yes() -> bool {
    true
}

/// How a person appears on one target bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PuppetRecord {
    /// What the target bridge returned from `ensure_puppet`.
    pub puppet: PuppetRef,
    /// Hash of the display name it was created with.
    pub name_hash: u64,
    /// Hash of the avatar it was created with.
    pub avatar_hash: u64,
}

/// A stable 64-bit FNV-1a hash, for change detection of names and avatars.
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One pending delivery to one target channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Where it came from (absent for the relay's own notices).
    pub origin: Option<Origin>,
    /// On whose behalf (absent for the relay's own notices).
    pub sender: Option<Person>,
    /// What to do, with references still in the origin's ids.
    pub action: PendingAction,
    /// Failed attempts so far (rate limits not counted).
    pub attempts: u32,
    /// When it was accepted, ms since the epoch (for latency and age).
    pub enqueued_ms: u64,
    /// True for notices the relay itself posts (never noticed again on failure).
    #[serde(default)]
    pub is_notice: bool,
    /// True once an attempt may have reached the platform (loaded from a
    /// previous run's outbox, or failed ambiguously); passed to the bridge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maybe_delivered: bool,
}

/// One call in the registry (`call` tree, keyed by call id): where it was
/// first seen, its provider, state and times, what the platforms reported.
/// Each platform's invite is the call's group copy (synthetic message id
/// `translate::call_message_id`, mapped from `origin`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The portal it belongs to.
    pub portal: String,
    /// The channel it was started or asked for in.
    pub origin: Origin,
    /// The product hosting it.
    pub provider: CallProvider,
    /// Its latest state.
    pub state: CallState,
    /// Its title, if any was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The join link, if any was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_url: Option<String>,
    /// Who started (or asked for) it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<Person>,
    /// Everyone reported in it so far, once each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<Person>,
    /// When it was first seen, ms since the epoch.
    pub started_ms: u64,
    /// When it last changed.
    pub updated_ms: u64,
    /// When it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
}

impl CallRecord {
    /// A call first seen as `event` in `origin`'s channel at `now_ms`.
    pub fn new(portal: &str, origin: Origin, event: &CallEvent, now_ms: u64) -> Self {
        let mut record = CallRecord {
            portal: portal.to_owned(),
            origin,
            provider: event.provider.clone(),
            state: CallState::Started,
            title: None,
            join_url: None,
            started_by: None,
            participants: Vec::new(),
            started_ms: now_ms,
            updated_ms: now_ms,
            ended_ms: None,
        };
        record.apply(event, now_ms);
        record
    }

    /// Takes in a later state: what it says replaces what was known, what
    /// it leaves out is kept; participants accumulate. An ended call stays
    /// ended.
    pub fn apply(&mut self, event: &CallEvent, now_ms: u64) {
        self.updated_ms = now_ms;
        match (&self.state, &event.state) {
            (CallState::Ended { .. }, CallState::Ended { duration: None }) => {}
            (CallState::Ended { .. }, CallState::Started | CallState::Updated) => {}
            (_, state) => {
                if matches!(state, CallState::Ended { .. }) && self.ended_ms.is_none() {
                    self.ended_ms = Some(now_ms);
                }
                self.state = state.clone();
            }
        }
        if event.title.is_some() {
            self.title.clone_from(&event.title);
        }
        if event.join_url.is_some() {
            self.join_url.clone_from(&event.join_url);
        }
        if self.started_by.is_none() {
            self.started_by.clone_from(&event.started_by);
        }
        for person in &event.participants {
            let known = self
                .participants
                .iter()
                .any(|p| p.bridge == person.bridge && p.user == person.user);
            if !known {
                self.participants.push(person.clone());
            }
        }
    }
}

/// What a pending delivery does. Message ids are the *origin's*: the relay
/// translates them to the target's at delivery time through the mappings,
/// and waits while a target has not been delivered yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PendingAction {
    /// Post a new message.
    Send {
        /// The message's group (shared by its copies on every platform).
        group: u64,
        /// The message; `reply_to` and `thread_root` hold origin ids.
        message: Message,
    },
    /// Replace a message's content.
    Edit {
        /// The edited message (origin id).
        target: MessageId,
        /// The new content.
        message: Message,
    },
    /// Delete a message.
    Delete {
        /// The deleted message (origin id).
        target: MessageId,
    },
    /// Add or remove a reaction.
    Reaction {
        /// The message reacted to (origin id).
        target: MessageId,
        /// The reaction key.
        key: String,
        /// Added or removed.
        added: bool,
        /// The group that records this reaction's ids on each platform.
        group: u64,
    },
    /// Show or update a call invite.
    Call {
        /// The call's state.
        event: CallEvent,
    },
    /// Have the target bridge create a meeting someone asked for, then
    /// invite every member of the portal to it (relay/meetings.rs).
    StartCall {
        /// The call the meeting becomes.
        call: CallId,
        /// Its title.
        title: String,
        /// Who asked (the organiser where their account is linked).
        requester: Person,
    },
    /// Give the target channel a name, topic or avatar (only for targets
    /// that mirror them).
    ChannelInfo {
        /// What to show.
        info: ChannelInfo,
    },
    /// A notice from the relay itself (e.g. "not delivered to …").
    Notice {
        /// Its text.
        text: String,
    },
    /// Carry out a command addressed to the bot in the target channel (the
    /// channel it was written in) and answer there (relay/commands.rs). The
    /// entry's sender is who wrote it.
    Command {
        /// What they wrote.
        text: String,
        /// The message that carried it, relayed instead if the channel has
        /// become a direct portal meanwhile and the text is no command.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<(
            switchboard_model::MessageId,
            Box<switchboard_model::Message>,
        )>,
    },
    /// Someone opened a direct conversation (the target channel) with
    /// `puppet`, the target bridge's puppet of a person from elsewhere: join
    /// it with that person's own direct conversation (relay/commands.rs).
    DirectChat {
        /// The puppet addressed.
        puppet: switchboard_model::UserId,
    },
    /// An event from the target channel that arrived while a command or
    /// direct chat queued before it on the same lane may still make the
    /// channel a portal (a first message typed at once into a new direct
    /// conversation): relayed as if it arrived now once those are done,
    /// dropped if no portal came of them.
    Held {
        /// The event as it arrived.
        event: Box<switchboard_model::Inbound>,
    },
}

impl PendingAction {
    /// A short, bounded name for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PendingAction::Send { .. } => "send",
            PendingAction::Edit { .. } => "edit",
            PendingAction::Delete { .. } => "delete",
            PendingAction::Reaction { added: true, .. } => "react",
            PendingAction::Reaction { added: false, .. } => "unreact",
            PendingAction::Call { .. } => "call",
            PendingAction::StartCall { .. } => "start_call",
            PendingAction::ChannelInfo { .. } => "channel_info",
            PendingAction::Notice { .. } => "notice",
            PendingAction::Command { .. } => "command",
            PendingAction::DirectChat { .. } => "direct_chat",
            PendingAction::Held { .. } => "held",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_version_and_round_trip() {
        let rec = PortalRecord {
            members: vec![("a:x".into(), "c".into())],
            relay_calls: true,
            meetings: None,
            source: PortalSource::Config,
        };
        let bytes = encode(&rec);
        assert_eq!(bytes[0], VALUE_VERSION);
        assert_eq!(
            String::from_utf8_lossy(&bytes[1..]),
            r#"{"members":[["a:x","c"]],"relay_calls":true}"#
        );
        assert_eq!(
            decode::<PortalRecord>(Tree::PortalidPortal, &bytes).expect("decodes"),
            rec
        );
    }

    #[test]
    fn portal_source_is_stored_and_old_records_come_from_the_config() {
        let linked = PortalRecord {
            members: vec![("a:x".into(), "c".into()), ("b:y".into(), "d".into())],
            relay_calls: true,
            meetings: None,
            source: PortalSource::Linked,
        };
        let bytes = encode(&linked);
        assert!(
            String::from_utf8_lossy(&bytes[1..]).ends_with(r#""source":"linked"}"#),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(
            decode::<PortalRecord>(Tree::PortalidPortal, &bytes).expect("decodes"),
            linked
        );
        // A record written before the field existed.
        let old = br#"{"members":[["a:x","c"]],"relay_calls":false}"#;
        let mut bytes = vec![VALUE_VERSION];
        bytes.extend_from_slice(old);
        let rec: PortalRecord = decode(Tree::PortalidPortal, &bytes).expect("old record");
        assert_eq!(rec.source, PortalSource::Config);
        assert!(!rec.relay_calls);
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors() {
        let err = decode::<PortalRecord>(Tree::PortalidPortal, &[9, b'{', b'}']).expect_err("v9");
        assert!(err.to_string().contains("unknown value version 9"), "{err}");
        assert!(decode::<PortalRecord>(Tree::PortalidPortal, &[]).is_err());
        assert!(decode::<PortalRecord>(Tree::PortalidPortal, &[1, b'x']).is_err());
    }

    #[test]
    fn outbox_entry_snapshot() {
        let entry = OutboxEntry {
            origin: Some(Origin::new("memory:a", "general")),
            sender: Some(Person::new("memory:a".into(), "u1".into(), "Ann")),
            action: PendingAction::Send {
                group: 7,
                message: Message::text("hi"),
            },
            attempts: 0,
            enqueued_ms: 1_700_000_000_000,
            is_notice: false,
            maybe_delivered: false,
        };
        let json = String::from_utf8_lossy(&encode(&entry)[1..]).into_owned();
        assert_eq!(
            json,
            concat!(
                r#"{"origin":{"bridge":"memory:a","channel":"general"},"#,
                r#""sender":{"bridge":"memory:a","user":"u1","display_name":"Ann","avatar":null,"is_bot":false},"#,
                r#""action":{"action":"send","group":7,"message":{"body":{"blocks":[{"block":"paragraph","content":[{"inline":"text","text":"hi"}]}]},"style":"normal"}},"#,
                r#""attempts":0,"enqueued_ms":1700000000000,"is_notice":false}"#
            )
        );
        let back: OutboxEntry = decode(Tree::Outbox, &encode(&entry)).expect("decodes");
        assert_eq!(back, entry);
    }

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(stable_hash("Ann"), stable_hash("Anne"));
    }
}
