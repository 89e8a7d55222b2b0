//! [`Store`] on sled 0.34: one database directory, one sled tree per [`Tree`].
//!
//! Batches that touch one tree use that tree's atomic `apply_batch`; batches
//! that touch several use one sled transaction over exactly those trees.
//! Durability: sled flushes on its own every few hundred milliseconds; the
//! relay calls [`Store::flush`] before acknowledging inbound events and at
//! shutdown.

use super::{Store, StoreError, Tree, Write, WriteBatch};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::path::Path;

/// Bytes of pages sled keeps in memory (its default is 1 GiB, which a
/// long-running relay would fill). The hot set is small: the outbox tail and
/// recent mappings; older pages come back from the OS page cache when an edit
/// or reply refers to an old message. 4 MiB measured as fast as 1 GiB in
/// `cargo bench --bench relay` (see BENCHMARKS.md), with far less RSS.
pub const CACHE_CAPACITY: u64 = 4 * 1024 * 1024;

/// A [`Store`] on disk.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(Some(200))
            .cache_capacity(CACHE_CAPACITY)
            .open()
            .map_err(backend)?;
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(SledStore { db, trees })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree.index()]
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(backend)
    }
}

/// Opens and closes the store at `dir` once more after a clean stop. Sled
/// replays its log since the last snapshot of its page table when it opens,
/// and writes a new snapshot then; doing it here, while stopping, means the
/// next start replays only what happens after it (0.4 s instead of 1.3–1.5 s
/// with a million messages written in one run, see BENCHMARKS.md). Best
/// effort: a failure is logged and changes nothing.
pub fn settle(dir: &Path) {
    let started = std::time::Instant::now();
    match SledStore::open(dir) {
        Ok(store) => {
            drop(store);
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis(),
                "Store settled for a quick next start."
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "Could not settle the store; the next start replays its log.");
        }
    }
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(tree)
            .get(key)
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for entry in self.tree(tree).scan_prefix(prefix) {
            let (k, v) = entry.map_err(backend)?;
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        // Group the writes per tree, keeping their order within each tree.
        let mut per_tree: Vec<(Tree, sled::Batch)> = Vec::new();
        for write in batch.writes {
            let tree = match &write {
                Write::Put(t, ..) | Write::Delete(t, _) => *t,
            };
            let slot = match per_tree.iter().position(|(t, _)| *t == tree) {
                Some(i) => i,
                None => {
                    per_tree.push((tree, sled::Batch::default()));
                    per_tree.len() - 1
                }
            };
            match write {
                Write::Put(_, k, v) => per_tree[slot].1.insert(k, v),
                Write::Delete(_, k) => per_tree[slot].1.remove(k),
            }
        }
        match per_tree.len() {
            0 => Ok(()),
            1 => {
                let (tree, b) = per_tree.pop().expect("one element");
                self.tree(tree).apply_batch(b).map_err(backend)
            }
            _ => {
                let trees: Vec<&sled::Tree> = per_tree.iter().map(|(t, _)| self.tree(*t)).collect();
                trees
                    .as_slice()
                    .transaction(|views| {
                        for (view, (_, b)) in views.iter().zip(&per_tree) {
                            view.apply_batch(b)?;
                        }
                        Ok::<(), ConflictableTransactionError<()>>(())
                    })
                    .map_err(|e| match e {
                        TransactionError::Storage(e) => backend(e),
                        TransactionError::Abort(()) => {
                            StoreError::Backend("transaction aborted".to_owned())
                        }
                    })
            }
        }
    }

    /// Plain single-key writes. Unlike a sled batch or transaction, they
    /// neither write out (and sync) the log buffer each time nor take sled's
    /// global exclusive lock. sled's log recovers a prefix of them after a
    /// crash: it never recovers a later log segment whose predecessor was lost.
    fn apply_in_order(&self, batch: WriteBatch) -> Result<(), StoreError> {
        for write in batch.writes {
            match write {
                Write::Put(t, k, v) => {
                    self.tree(t).insert(k, v).map_err(backend)?;
                }
                Write::Delete(t, k) => {
                    self.tree(t).remove(k).map_err(backend)?;
                }
            }
        }
        Ok(())
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        self.db.generate_id().map_err(backend)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn len(&self, tree: Tree) -> Result<usize, StoreError> {
        Ok(self.tree(tree).len())
    }
}
