//! The typed store the relay works with. Every key is built by
//! [`super::keys`], every value by [`super::records`], and every write that
//! touches several trees is one atomic [`WriteBatch`].

use super::keys::{Key, KeyReader};
use super::records::{CallRecord, OutboxEntry, PortalRecord, PuppetRecord, decode, encode};
use super::{Store, StoreError, Tree, WriteBatch, migrate};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use switchboard_model::{BridgeId, CallId, ChannelId, EventId, MessageId, Person, UserId};

/// A portal's id: its configured name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PortalId(String);

impl PortalId {
    /// Wraps a portal name.
    pub fn new(name: impl Into<String>) -> Self {
        PortalId(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PortalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PortalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortalId({:?})", self.0)
    }
}

/// One message across platforms: its copies on every bridge share a group.
pub type GroupId = u64;

/// Where a pending op sits in the outbox: ordered by portal, then sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutboxKey {
    /// The portal.
    pub portal: PortalId,
    /// Sequence number: the order ops were accepted in.
    pub seq: u64,
    /// Target bridge.
    pub bridge: BridgeId,
    /// Target channel.
    pub channel: ChannelId,
}

impl OutboxKey {
    /// The encoded key.
    pub fn encode(&self) -> Vec<u8> {
        Key::new()
            .str(self.portal.as_str())
            .u64(self.seq)
            .str(self.bridge.as_str())
            .str(self.channel.as_str())
            .build()
    }

    /// Reads an encoded key.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |e: super::keys::KeyError| StoreError::Corrupt {
            tree: Tree::Outbox,
            reason: e.to_string(),
        };
        let mut r = KeyReader::new(bytes);
        let key = OutboxKey {
            portal: PortalId::new(r.str().map_err(corrupt)?),
            seq: r.u64().map_err(corrupt)?,
            bridge: BridgeId::new(r.str().map_err(corrupt)?),
            channel: ChannelId::new(r.str().map_err(corrupt)?),
        };
        r.end().map_err(corrupt)?;
        Ok(key)
    }
}

/// Everything one accepted inbound event writes, applied in one transaction.
#[derive(Debug, Clone, Default)]
pub struct IntakeWrite {
    /// (bridge, event id, first seen ms): remembered for deduplication.
    pub seen: Option<(BridgeId, EventId, u64)>,
    /// New message mappings: (bridge, channel, message, part) → group.
    pub messages: Vec<(BridgeId, ChannelId, MessageId, u32, GroupId)>,
    /// The origin's copy of new groups: (group, bridge, channel, parts).
    pub copies: Vec<(GroupId, BridgeId, ChannelId, Vec<MessageId>)>,
    /// Ops to deliver.
    pub outbox: Vec<(OutboxKey, OutboxEntry)>,
    /// Calls started or changed (the registry, `call` tree).
    pub calls: Vec<(CallId, CallRecord)>,
}

/// How many seen event ids one prune batch deletes.
pub const PRUNE_BATCH: usize = 10_000;

/// The typed store.
#[derive(Debug, Clone)]
pub struct Db {
    store: Arc<dyn Store>,
}

fn seen_key(bridge: &BridgeId, event: &EventId) -> Vec<u8> {
    Key::new().str(bridge.as_str()).str(event.as_str()).build()
}

fn msg_key(bridge: &BridgeId, channel: &ChannelId, msg: &MessageId, part: u32) -> Vec<u8> {
    Key::new()
        .str(bridge.as_str())
        .str(channel.as_str())
        .str(msg.as_str())
        .u32(part)
        .build()
}

fn call_key(call: &CallId) -> Vec<u8> {
    Key::new().str(call.as_str()).build()
}

fn copy_key(group: GroupId, bridge: &BridgeId, channel: &ChannelId) -> Vec<u8> {
    Key::new()
        .u64(group)
        .str(bridge.as_str())
        .str(channel.as_str())
        .build()
}

fn channel_key(bridge: &BridgeId, channel: &ChannelId) -> Vec<u8> {
    Key::new()
        .str(bridge.as_str())
        .str(channel.as_str())
        .build()
}

fn puppet_key(target: &BridgeId, origin: &BridgeId, user: &UserId) -> Vec<u8> {
    Key::new()
        .str(target.as_str())
        .str(origin.as_str())
        .str(user.as_str())
        .build()
}

fn reverse_puppet_key(bridge: &BridgeId, user: &UserId) -> Vec<u8> {
    Key::new().str(bridge.as_str()).str(user.as_str()).build()
}

impl Db {
    /// Opens the typed store on `store`, running migrations first.
    pub fn open(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        migrate::run(store.as_ref())?;
        Ok(Db { store })
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A fresh id (group ids, outbox sequence numbers).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        self.store.next_id()
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }

    /// [`Db::flush`] for async callers: on a blocking thread when the store's
    /// flush does I/O, so the runtime's workers keep running.
    pub async fn flush_async(&self) -> Result<(), StoreError> {
        if !self.store.flush_blocks() {
            return self.store.flush();
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| StoreError::Backend(format!("flush task failed: {e}")))?
    }

    // ----- portals -----

    /// Creates or replaces a portal and its channel index, in one transaction.
    /// Channels the portal no longer has are unindexed.
    pub fn put_portal(&self, id: &PortalId, record: &PortalRecord) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        if let Some(old) = self.portal(id)? {
            for (b, c) in &old.members {
                if !record.members.contains(&(b.clone(), c.clone())) {
                    batch.delete(Tree::ChannelPortalid, channel_key(b, c));
                }
            }
        }
        for (b, c) in &record.members {
            batch.put(Tree::ChannelPortalid, channel_key(b, c), encode(id));
        }
        batch.put(
            Tree::PortalidPortal,
            Key::new().str(id.as_str()).build(),
            encode(record),
        );
        self.store.apply(batch)
    }

    /// Removes a portal and its channel index (its message mappings stay).
    pub fn remove_portal(&self, id: &PortalId) -> Result<(), StoreError> {
        let Some(old) = self.portal(id)? else {
            return Ok(());
        };
        let mut batch = WriteBatch::new();
        for (b, c) in &old.members {
            batch.delete(Tree::ChannelPortalid, channel_key(b, c));
        }
        batch.delete(Tree::PortalidPortal, Key::new().str(id.as_str()).build());
        self.store.apply(batch)
    }

    /// One portal.
    pub fn portal(&self, id: &PortalId) -> Result<Option<PortalRecord>, StoreError> {
        self.store
            .get(Tree::PortalidPortal, &Key::new().str(id.as_str()).build())?
            .map(|v| decode(Tree::PortalidPortal, &v))
            .transpose()
    }

    /// Every portal.
    pub fn portals(&self) -> Result<Vec<(PortalId, PortalRecord)>, StoreError> {
        let mut out = Vec::new();
        let mut err = None;
        self.store
            .scan_prefix(Tree::PortalidPortal, &[], &mut |k, v| {
                let id = KeyReader::new(k).str().map(PortalId::new);
                match (id, decode(Tree::PortalidPortal, v)) {
                    (Ok(id), Ok(rec)) => out.push((id, rec)),
                    (Err(e), _) => {
                        err = Some(StoreError::Corrupt {
                            tree: Tree::PortalidPortal,
                            reason: e.to_string(),
                        })
                    }
                    (_, Err(e)) => err = Some(e),
                }
                err.is_none()
            })?;
        err.map_or(Ok(out), Err)
    }

    /// The portal a channel belongs to.
    pub fn portal_of(
        &self,
        bridge: &BridgeId,
        channel: &ChannelId,
    ) -> Result<Option<PortalId>, StoreError> {
        self.store
            .get(Tree::ChannelPortalid, &channel_key(bridge, channel))?
            .map(|v| decode(Tree::ChannelPortalid, &v))
            .transpose()
    }

    // ----- intake -----

    /// Whether an inbound event id was seen before.
    pub fn seen(&self, bridge: &BridgeId, event: &EventId) -> Result<bool, StoreError> {
        Ok(self
            .store
            .get(Tree::EventidSeen, &seen_key(bridge, event))?
            .is_some())
    }

    /// Applies the writes of a batch of accepted inbound events in one transaction.
    pub fn commit_intake(&self, writes: &[IntakeWrite]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        for w in writes {
            if let Some((bridge, event, at)) = &w.seen {
                batch.put(
                    Tree::EventidSeen,
                    seen_key(bridge, event),
                    at.to_be_bytes().to_vec(),
                );
            }
            for (b, c, m, part, group) in &w.messages {
                batch.put(
                    Tree::MsgGroupid,
                    msg_key(b, c, m, *part),
                    group.to_be_bytes().to_vec(),
                );
            }
            for (group, b, c, parts) in &w.copies {
                batch.put(Tree::GroupidMsgs, copy_key(*group, b, c), encode(parts));
            }
            for (key, entry) in &w.outbox {
                batch.put(Tree::Outbox, key.encode(), encode(entry));
            }
            for (call, record) in &w.calls {
                batch.put(Tree::Call, call_key(call), encode(record));
            }
        }
        self.store.apply(batch)
    }

    /// Forgets seen event ids first seen before `cutoff_ms`. Returns how many.
    /// Deletes in batches of [`PRUNE_BATCH`], so that forgetting millions
    /// of ids (the first prune after a long time) never holds them all in
    /// memory at once.
    pub fn prune_seen(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let mut batch = WriteBatch::new();
            self.store
                .scan_prefix(Tree::EventidSeen, &[], &mut |k, v| {
                    let at = v.try_into().map(u64::from_be_bytes).unwrap_or(0);
                    if at < cutoff_ms {
                        batch.delete(Tree::EventidSeen, k.to_vec());
                    }
                    batch.writes.len() < PRUNE_BATCH
                })?;
            let n = batch.writes.len();
            self.store.apply(batch)?;
            total += n;
            if n < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    // ----- message mappings -----

    /// The group of a message (its first part), if it was ever relayed.
    pub fn group_of(
        &self,
        bridge: &BridgeId,
        channel: &ChannelId,
        msg: &MessageId,
    ) -> Result<Option<GroupId>, StoreError> {
        Ok(self
            .store
            .get(Tree::MsgGroupid, &msg_key(bridge, channel, msg, 0))?
            .and_then(|v| v.as_slice().try_into().ok().map(u64::from_be_bytes)))
    }

    /// A group's copy on one channel: the parts it was posted as there.
    pub fn copy(
        &self,
        group: GroupId,
        bridge: &BridgeId,
        channel: &ChannelId,
    ) -> Result<Option<Vec<MessageId>>, StoreError> {
        self.store
            .get(Tree::GroupidMsgs, &copy_key(group, bridge, channel))?
            .map(|v| decode(Tree::GroupidMsgs, &v))
            .transpose()
    }

    /// Every copy of a group.
    pub fn copies(
        &self,
        group: GroupId,
    ) -> Result<Vec<(BridgeId, ChannelId, Vec<MessageId>)>, StoreError> {
        let mut out = Vec::new();
        let mut err = None;
        self.store.scan_prefix(
            Tree::GroupidMsgs,
            &Key::new().u64(group).prefix(),
            &mut |k, v| {
                let mut r = KeyReader::new(k);
                let parsed = r
                    .u64()
                    .and_then(|_| Ok((r.str()?.to_owned(), r.str()?.to_owned())));
                match (parsed, decode::<Vec<MessageId>>(Tree::GroupidMsgs, v)) {
                    (Ok((b, c)), Ok(parts)) => {
                        out.push((BridgeId::new(b), ChannelId::new(c), parts))
                    }
                    (Err(e), _) => {
                        err = Some(StoreError::Corrupt {
                            tree: Tree::GroupidMsgs,
                            reason: e.to_string(),
                        })
                    }
                    (_, Err(e)) => err = Some(e),
                }
                err.is_none()
            },
        )?;
        err.map_or(Ok(out), Err)
    }

    // ----- calls -----

    /// One call of the registry.
    pub fn call(&self, call: &CallId) -> Result<Option<CallRecord>, StoreError> {
        self.store
            .get(Tree::Call, &call_key(call))?
            .map(|v| decode(Tree::Call, &v))
            .transpose()
    }

    /// Every call of the registry, by call id.
    pub fn calls(&self) -> Result<Vec<(CallId, CallRecord)>, StoreError> {
        let mut out = Vec::new();
        let mut err = None;
        self.store.scan_prefix(Tree::Call, &[], &mut |k, v| {
            let mut r = KeyReader::new(k);
            match (r.str(), decode::<CallRecord>(Tree::Call, v)) {
                (Ok(id), Ok(record)) => out.push((CallId::new(id), record)),
                (Err(e), _) => {
                    err = Some(StoreError::Corrupt {
                        tree: Tree::Call,
                        reason: e.to_string(),
                    });
                }
                (_, Err(e)) => err = Some(e),
            }
            err.is_none()
        })?;
        err.map_or(Ok(out), Err)
    }

    // ----- outbox -----

    /// Every pending op, in key order (portal, then sequence).
    pub fn outbox(&self) -> Result<Vec<(OutboxKey, OutboxEntry)>, StoreError> {
        let mut out = Vec::new();
        let mut err = None;
        self.store.scan_prefix(Tree::Outbox, &[], &mut |k, v| {
            match (OutboxKey::decode(k), decode(Tree::Outbox, v)) {
                (Ok(key), Ok(entry)) => out.push((key, entry)),
                (Err(e), _) | (_, Err(e)) => err = Some(e),
            }
            err.is_none()
        })?;
        err.map_or(Ok(out), Err)
    }

    /// Adds or replaces one pending op (retry bookkeeping, relay notices).
    pub fn put_outbox(&self, key: &OutboxKey, entry: &OutboxEntry) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.put(Tree::Outbox, key.encode(), encode(entry));
        self.store.apply(batch)
    }

    /// Finishes a pending op: records the copy of `group` it created on the
    /// target (indexing each part's id so later events about it map back),
    /// then removes it from the outbox. The writes are applied in that order
    /// ([`Store::apply_in_order`]), not as one transaction: after a crash
    /// in between, the op is still in the outbox and is delivered again,
    /// which bridges make idempotent by op id, and its mapping rewritten.
    /// Not flushed: the same replay covers a completion lost in a crash.
    pub fn complete(
        &self,
        key: &OutboxKey,
        created: Option<(GroupId, &[MessageId])>,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        if let Some((group, parts)) = created {
            batch.put(
                Tree::GroupidMsgs,
                copy_key(group, &key.bridge, &key.channel),
                encode(&parts),
            );
            for (i, id) in parts.iter().enumerate() {
                let part = u32::try_from(i).unwrap_or(u32::MAX);
                batch.put(
                    Tree::MsgGroupid,
                    msg_key(&key.bridge, &key.channel, id, part),
                    group.to_be_bytes().to_vec(),
                );
            }
        }
        // Last: once the op leaves the outbox, it is never delivered again.
        batch.delete(Tree::Outbox, key.encode());
        self.store.apply_in_order(batch)
    }

    /// Removes a pending op without recording anything (dead letters, skips).
    pub fn drop_outbox(&self, key: &OutboxKey) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.delete(Tree::Outbox, key.encode());
        self.store.apply(batch)
    }

    // ----- puppets -----

    /// How `person` appears on `target`, if known.
    pub fn puppet(
        &self,
        target: &BridgeId,
        person: &Person,
    ) -> Result<Option<PuppetRecord>, StoreError> {
        self.store
            .get(
                Tree::PersonPuppet,
                &puppet_key(target, &person.bridge, &person.user),
            )?
            .map(|v| decode(Tree::PersonPuppet, &v))
            .transpose()
    }

    /// Records how `person` appears on `target`, and (for puppets, not linked
    /// accounts) the reverse mapping, in one transaction.
    pub fn put_puppet(
        &self,
        target: &BridgeId,
        person: &Person,
        record: &PuppetRecord,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        if let Some(old) = self.puppet(target, person)?
            && (old.puppet.user != record.puppet.user || record.puppet.is_linked_account)
            && !old.puppet.is_linked_account
        {
            batch.delete(
                Tree::PuppetPerson,
                reverse_puppet_key(target, &old.puppet.user),
            );
        }
        batch.put(
            Tree::PersonPuppet,
            puppet_key(target, &person.bridge, &person.user),
            encode(record),
        );
        // A linked account is the person's own: what it writes natively is
        // theirs, not an echo, so it gets no reverse mapping.
        if !record.puppet.is_linked_account {
            batch.put(
                Tree::PuppetPerson,
                reverse_puppet_key(target, &record.puppet.user),
                encode(person),
            );
        }
        self.store.apply(batch)
    }

    /// The person a puppet account on `bridge` stands for, if it is one of ours.
    pub fn person_of_puppet(
        &self,
        bridge: &BridgeId,
        user: &UserId,
    ) -> Result<Option<Person>, StoreError> {
        self.store
            .get(Tree::PuppetPerson, &reverse_puppet_key(bridge, user))?
            .map(|v| decode(Tree::PuppetPerson, &v))
            .transpose()
    }

    // ----- cursors -----

    /// A connector's catch-up position for a channel.
    pub fn cursor(
        &self,
        bridge: &BridgeId,
        channel: &ChannelId,
    ) -> Result<Option<String>, StoreError> {
        self.store
            .get(Tree::Cursor, &channel_key(bridge, channel))?
            .map(|v| decode(Tree::Cursor, &v))
            .transpose()
    }

    /// Stores a connector's catch-up position for a channel.
    pub fn put_cursor(
        &self,
        bridge: &BridgeId,
        channel: &ChannelId,
        cursor: &str,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.put(Tree::Cursor, channel_key(bridge, channel), encode(&cursor));
        self.store.apply(batch)
    }
}

/// A bridge's catch-up positions in the `cursor` tree.
#[derive(Debug, Clone)]
pub struct DbCursors {
    db: Db,
    bridge: BridgeId,
}

impl DbCursors {
    /// The cursors of `bridge`.
    pub fn new(db: Db, bridge: BridgeId) -> Self {
        DbCursors { db, bridge }
    }
}

impl switchboard_model::CursorStore for DbCursors {
    fn get(&self, channel: &ChannelId) -> Option<String> {
        self.db.cursor(&self.bridge, channel).unwrap_or_else(|e| {
            tracing::warn!(bridge = %self.bridge, error = %e, "Cannot read a catch-up cursor.");
            None
        })
    }

    fn put(&self, channel: &ChannelId, cursor: &str) {
        if let Err(e) = self.db.put_cursor(&self.bridge, channel, cursor) {
            tracing::warn!(bridge = %self.bridge, error = %e, "Cannot store a catch-up cursor.");
        }
    }
}
