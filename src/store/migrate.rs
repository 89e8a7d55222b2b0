//! Schema versions and migrations.
//!
//! `meta/schema_version` holds the version the data was written in. On open,
//! every migration from that version up to [`SCHEMA_VERSION`] runs in order,
//! each one atomically together with the version bump. A database written by
//! a newer build is refused rather than misread.

use super::keys::Key;
use super::{Store, StoreError, Tree, WriteBatch};

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 1;

/// One migration: from `from` to `from + 1`. It returns the writes that
/// transform the data; the version bump is added to the same batch.
pub type Migration = fn(&dyn Store) -> Result<WriteBatch, StoreError>;

/// Migrations, indexed by the version they migrate from. Version 0 is an
/// empty database, so its migration writes nothing.
const MIGRATIONS: &[(u32, Migration)] = &[(0, |_| Ok(WriteBatch::new()))];

fn version_key() -> Vec<u8> {
    Key::new().str("schema_version").build()
}

/// The stored schema version (0 for a new database).
pub fn version(store: &dyn Store) -> Result<u32, StoreError> {
    match store.get(Tree::Meta, &version_key())? {
        None => Ok(0),
        Some(v) => v
            .as_slice()
            .try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                tree: Tree::Meta,
                reason: "schema_version is not a u32".into(),
            }),
    }
}

/// Brings the store up to [`SCHEMA_VERSION`].
pub fn run(store: &dyn Store) -> Result<(), StoreError> {
    run_with(store, MIGRATIONS, SCHEMA_VERSION)
}

/// [`run`] with an explicit migration list (tests exercise the hook with their own).
pub fn run_with(
    store: &dyn Store,
    migrations: &[(u32, Migration)],
    target: u32,
) -> Result<(), StoreError> {
    let mut current = version(store)?;
    if current > target {
        return Err(StoreError::TooNew {
            found: current,
            supported: target,
        });
    }
    while current < target {
        let (_, migrate) = migrations
            .iter()
            .find(|(from, _)| *from == current)
            .ok_or_else(|| StoreError::Corrupt {
                tree: Tree::Meta,
                reason: format!("no migration from version {current}"),
            })?;
        let mut batch = migrate(store)?;
        current += 1;
        batch.put(Tree::Meta, version_key(), current.to_be_bytes().to_vec());
        store.apply(batch)?;
        tracing::info!(version = current, "Store migrated.");
    }
    Ok(())
}
