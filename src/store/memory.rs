//! The in-memory twin of [`super::SledStore`], for tests. Same semantics: one
//! lock makes every batch atomic; ids increase; nothing survives the process.

use super::{Store, StoreError, Tree, Write, WriteBatch};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

type Trees = Vec<BTreeMap<Vec<u8>, Vec<u8>>>;

/// A [`Store`] held in memory.
#[derive(Debug)]
pub struct MemoryStore {
    trees: Mutex<Trees>,
    ids: AtomicU64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore {
            trees: Mutex::new(vec![BTreeMap::new(); Tree::ALL.len()]),
            ids: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Trees> {
        // A panic while holding the lock cannot leave a half-applied batch
        // (batches are applied to a copy first), so a poisoned lock is safe to use.
        self.trees.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()[tree.index()].get(key).cloned())
    }

    fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        // Copy the range out so `visit` may call back into the store.
        let entries: Vec<(Vec<u8>, Vec<u8>)> = self.lock()[tree.index()]
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in entries {
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut trees = self.lock();
        for write in batch.writes {
            match write {
                Write::Put(tree, k, v) => {
                    trees[tree.index()].insert(k, v);
                }
                Write::Delete(tree, k) => {
                    trees[tree.index()].remove(&k);
                }
            }
        }
        Ok(())
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.ids.fetch_add(1, Ordering::Relaxed))
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn flush_blocks(&self) -> bool {
        false
    }

    fn len(&self, tree: Tree) -> Result<usize, StoreError> {
        Ok(self.lock()[tree.index()].len())
    }
}
