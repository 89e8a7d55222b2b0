//! The store: everything Switchboard must not forget across a restart.
//!
//! Two layers:
//! - [`Store`], a small key-value trait over named trees with atomic
//!   multi-tree batches. It has two implementations, [`SledStore`] (on disk)
//!   and [`MemoryStore`] (its in-memory twin for tests); one test suite runs
//!   on both.
//! - [`Db`], the typed layer the relay uses: portals, message mappings,
//!   puppets, seen event ids, the outbox, catch-up cursors. Every key is built
//!   by [`keys`] and every value carries a version byte ([`records`]).
//!
//! Every tree is declared once, in [`Tree::ALL`]; names follow `<key>_<value>`.

pub mod db;
pub mod keys;
pub mod login;
pub mod memory;
pub mod migrate;
pub mod records;
pub mod sled_store;
pub mod space;

pub use db::{Db, DbCursors, GroupId, IntakeWrite, OutboxKey, PortalId};
pub use memory::MemoryStore;
pub use records::{OutboxEntry, PortalRecord, PortalSource, PuppetRecord};
pub use sled_store::SledStore;

use std::fmt;
use thiserror::Error;

/// The trees of the store, declared once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tree {
    /// `schema_version` → u32.
    Meta,
    /// PortalId → members and settings.
    PortalidPortal,
    /// bridge ∣ channel → PortalId.
    ChannelPortalid,
    /// bridge ∣ channel ∣ message ∣ part → GroupId.
    MsgGroupid,
    /// GroupId ∣ bridge ∣ channel → the message's parts there.
    GroupidMsgs,
    /// target bridge ∣ origin bridge ∣ user → puppet.
    PersonPuppet,
    /// bridge ∣ puppet user → origin person (loop prevention).
    PuppetPerson,
    /// bridge ∣ event id → first-seen time.
    EventidSeen,
    /// PortalId ∣ seq ∣ target bridge ∣ target channel → pending op.
    Outbox,
    /// bridge ∣ channel → catch-up position.
    Cursor,
    /// bridge ∣ user → linked account token, encrypted.
    Login,
    /// CallId → per-platform call objects.
    Call,
}

impl Tree {
    /// Every tree, in one list.
    pub const ALL: [Tree; 12] = [
        Tree::Meta,
        Tree::PortalidPortal,
        Tree::ChannelPortalid,
        Tree::MsgGroupid,
        Tree::GroupidMsgs,
        Tree::PersonPuppet,
        Tree::PuppetPerson,
        Tree::EventidSeen,
        Tree::Outbox,
        Tree::Cursor,
        Tree::Login,
        Tree::Call,
    ];

    /// The tree's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::PortalidPortal => "portalid_portal",
            Tree::ChannelPortalid => "channel_portalid",
            Tree::MsgGroupid => "msg_groupid",
            Tree::GroupidMsgs => "groupid_msgs",
            Tree::PersonPuppet => "person_puppet",
            Tree::PuppetPerson => "puppet_person",
            Tree::EventidSeen => "eventid_seen",
            Tree::Outbox => "outbox",
            Tree::Cursor => "cursor",
            Tree::Login => "login",
            Tree::Call => "call",
        }
    }

    /// Position in [`Tree::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A store failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend failed (I/O, corruption, a full disk).
    #[error("store backend failed: {0}")]
    Backend(String),
    /// A stored value could not be decoded.
    #[error("corrupt value in tree {tree}: {reason}")]
    Corrupt {
        /// Which tree.
        tree: Tree,
        /// What is wrong.
        reason: String,
    },
    /// The database was written by a newer Switchboard.
    #[error("store schema version {found} is newer than this build supports ({supported})")]
    TooNew {
        /// Version found on disk.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
}

/// One write in a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Insert or replace.
    Put(Tree, Vec<u8>, Vec<u8>),
    /// Remove (no error if absent).
    Delete(Tree, Vec<u8>),
}

/// Writes applied atomically, across any number of trees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The writes, applied in order.
    pub writes: Vec<Write>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// Adds an insert.
    pub fn put(&mut self, tree: Tree, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push(Write::Put(tree, key, value));
    }

    /// Adds a removal.
    pub fn delete(&mut self, tree: Tree, key: Vec<u8>) {
        self.writes.push(Write::Delete(tree, key));
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Appends another batch.
    pub fn extend(&mut self, other: WriteBatch) {
        self.writes.extend(other.writes);
    }
}

/// A key-value store of named, ordered trees.
///
/// Implementations: [`SledStore`] and [`MemoryStore`]. Keys sort by bytes.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Reads one value.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Visits every entry whose key starts with `prefix`, in key order, until
    /// `visit` returns false.
    fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;

    /// Applies every write of `batch` atomically: all or none.
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Applies the writes of `batch` one after the other, each atomically but
    /// not all together: after a crash, a prefix of them may be present (never
    /// a later write without an earlier one). For writes whose partial
    /// application is harmless when they are ordered right, at a fraction of
    /// the cost of [`Store::apply`]. By default, simply [`Store::apply`].
    fn apply_in_order(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.apply(batch)
    }

    /// A new id, unique and increasing for the life of the store (gaps allowed).
    fn next_id(&self) -> Result<u64, StoreError>;

    /// Makes everything applied so far durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// True when [`Store::flush`] blocks on I/O (so async callers move it to
    /// a blocking thread); false when it returns at once.
    fn flush_blocks(&self) -> bool {
        true
    }

    /// Number of entries in a tree (for metrics and tests; may be slow).
    fn len(&self, tree: Tree) -> Result<usize, StoreError>;
}

#[cfg(test)]
mod tests;
