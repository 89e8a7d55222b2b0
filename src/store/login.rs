//! Linked accounts, encrypted at rest.
//!
//! A person who links their own account on another platform (`switchboard
//! login`) hands us a token that acts as them. It is stored in the `login`
//! tree sealed with XChaCha20-Poly1305 under a 32-byte key kept outside the
//! database (`store.key_file`, or the systemd credential `store-key`); the
//! entry's key is the associated data, so a sealed token cannot be moved to
//! another person's entry.

use super::keys::{Key, KeyReader};
use super::{Db, StoreError, Tree, WriteBatch};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use switchboard_model::{BridgeId, LinkedAccount, LinkedAccounts, UserId};

/// The version byte of sealed values.
const SEALED_VERSION: u8 = 1;

/// Seals and opens secrets with the store key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox([key redacted])")
    }
}

impl SecretBox {
    /// A box with this key.
    pub fn from_key(key: &[u8; 32]) -> Self {
        SecretBox {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Reads the key file (32 raw bytes, or 64 hex digits); creates it with a
    /// fresh random key (mode 0600) when `create` is true and it is missing.
    pub fn load(path: &Path, create: bool) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let trimmed: Vec<u8> = bytes
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                let key: Option<[u8; 32]> = if bytes.len() == 32 {
                    bytes.as_slice().try_into().ok()
                } else if trimmed.len() == 64 {
                    let text = String::from_utf8_lossy(&trimmed).into_owned();
                    (0..32)
                        .map(|i| u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok())
                        .collect::<Option<Vec<u8>>>()
                        .and_then(|v| v.try_into().ok())
                } else {
                    None
                };
                key.map(|k| SecretBox::from_key(&k)).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{}: a store key is 32 bytes or 64 hex digits",
                            path.display()
                        ),
                    )
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                write_private(path, format!("{hex}\n").as_bytes())?;
                tracing::info!(path = %path.display(), "Created a new store key.");
                Ok(SecretBox {
                    cipher: XChaCha20Poly1305::new(&key),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Seals `plaintext`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + nonce.len() + sealed.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`SecretBox::seal`] sealed with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            tree: Tree::Login,
            reason: reason.to_owned(),
        };
        let Some((&SEALED_VERSION, rest)) = sealed.split_first() else {
            return Err(corrupt("unknown sealed-value version"));
        };
        if rest.len() < 24 {
            return Err(corrupt("sealed value too short"));
        }
        let (nonce, ciphertext) = rest.split_at(24);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| corrupt("cannot decrypt (wrong store key, or tampered)"))
    }
}

/// The store key: the systemd credential `store-key` when the service has
/// one, else `key_file` (created on first use), else none (no logins).
pub fn store_key(key_file: Option<&Path>) -> std::io::Result<Option<SecretBox>> {
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let credential = Path::new(&dir).join("store-key");
        if credential.exists() {
            return SecretBox::load(&credential, false).map(Some);
        }
    }
    key_file.map(|path| SecretBox::load(path, true)).transpose()
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A person (bridge, user) who linked an account.
pub type LinkedPerson = (BridgeId, UserId);

#[derive(Serialize, Deserialize)]
struct Sealed {
    account: UserId,
    token: String,
}

fn login_key(target: &BridgeId, person_bridge: &BridgeId, person_user: &UserId) -> Vec<u8> {
    Key::new()
        .str(target.as_str())
        .str(person_bridge.as_str())
        .str(person_user.as_str())
        .build()
}

impl Db {
    /// Links `person` to `account` on `target`, sealing the token.
    pub fn put_login(
        &self,
        secrets: &SecretBox,
        target: &BridgeId,
        person: (&BridgeId, &UserId),
        account: &LinkedAccount,
    ) -> Result<(), StoreError> {
        let key = login_key(target, person.0, person.1);
        let plain = serde_json::to_vec(&Sealed {
            account: account.user.clone(),
            token: account.token.clone(),
        })
        .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut batch = WriteBatch::new();
        batch.put(Tree::Login, key.clone(), secrets.seal(&key, &plain));
        self.store().apply(batch)
    }

    /// Forgets how `person` appeared on `target`, so the next delivery asks
    /// the bridge again (after they linked or unlinked their own account).
    pub fn forget_puppet(
        &self,
        target: &BridgeId,
        person: (&BridgeId, &UserId),
    ) -> Result<(), StoreError> {
        let key = Key::new()
            .str(target.as_str())
            .str(person.0.as_str())
            .str(person.1.as_str())
            .build();
        let Some(old) = self.store().get(Tree::PersonPuppet, &key)? else {
            return Ok(());
        };
        let mut batch = WriteBatch::new();
        if let Ok(record) = super::records::decode::<super::PuppetRecord>(Tree::PersonPuppet, &old)
        {
            batch.delete(
                Tree::PuppetPerson,
                Key::new()
                    .str(target.as_str())
                    .str(record.puppet.user.as_str())
                    .build(),
            );
        }
        batch.delete(Tree::PersonPuppet, key);
        self.store().apply(batch)
    }

    /// Unlinks `person` on `target`.
    pub fn remove_login(
        &self,
        target: &BridgeId,
        person: (&BridgeId, &UserId),
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.delete(Tree::Login, login_key(target, person.0, person.1));
        self.store().apply(batch)
    }

    /// Every linked account on `target`: ((person bridge, person user), account).
    pub fn logins(
        &self,
        secrets: &SecretBox,
        target: &BridgeId,
    ) -> Result<Vec<(LinkedPerson, LinkedAccount)>, StoreError> {
        let mut out = Vec::new();
        let mut err = None;
        self.store().scan_prefix(
            Tree::Login,
            &Key::new().str(target.as_str()).prefix(),
            &mut |k, v| {
                let mut r = KeyReader::new(k);
                let parsed = (|| {
                    Some((
                        r.str().ok()?,
                        r.str().ok()?.to_owned(),
                        r.str().ok()?.to_owned(),
                    ))
                })();
                let opened = secrets.open(k, v).and_then(|plain| {
                    serde_json::from_slice::<Sealed>(&plain).map_err(|e| StoreError::Corrupt {
                        tree: Tree::Login,
                        reason: e.to_string(),
                    })
                });
                match (parsed, opened) {
                    (Some((_, b, u)), Ok(s)) => out.push((
                        (BridgeId::new(b), UserId::new(u)),
                        LinkedAccount {
                            user: s.account,
                            token: s.token,
                        },
                    )),
                    (_, Err(e)) => err = Some(e),
                    (None, _) => {
                        err = Some(StoreError::Corrupt {
                            tree: Tree::Login,
                            reason: "malformed key".into(),
                        })
                    }
                }
                err.is_none()
            },
        )?;
        err.map_or(Ok(out), Err)
    }
}

/// The linked accounts of one bridge, read from the store once and kept in
/// memory (re-read by [`DbLinkedAccounts::reload`] after a login).
#[derive(Debug, Clone)]
pub struct DbLinkedAccounts {
    db: Db,
    secrets: SecretBox,
    target: BridgeId,
    cache: Arc<RwLock<HashMap<(BridgeId, UserId), LinkedAccount>>>,
}

impl DbLinkedAccounts {
    /// Loads the accounts linked on `target`.
    pub fn load(db: Db, secrets: SecretBox, target: BridgeId) -> Result<Self, StoreError> {
        let me = DbLinkedAccounts {
            db,
            secrets,
            target,
            cache: Arc::default(),
        };
        me.reload()?;
        Ok(me)
    }

    /// Re-reads the store.
    pub fn reload(&self) -> Result<(), StoreError> {
        let all = self.db.logins(&self.secrets, &self.target)?;
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = all.into_iter().collect();
        Ok(())
    }
}

impl LinkedAccounts for DbLinkedAccounts {
    fn account_for(&self, person_bridge: &BridgeId, person_user: &UserId) -> Option<LinkedAccount> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(person_bridge.clone(), person_user.clone()))
            .cloned()
    }

    fn token_of(&self, user: &UserId) -> Option<String> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|a| a.user == *user)
            .map(|a| a.token.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Store};

    #[test]
    fn sealed_tokens_round_trip_and_are_bound_to_their_entry() {
        let secrets = SecretBox::from_key(&[7; 32]);
        let sealed = secrets.seal(b"entry-a", b"xoxp-secret");
        assert!(
            !sealed.windows(11).any(|w| w == b"xoxp-secret"),
            "not stored in clear"
        );
        assert_eq!(
            secrets.open(b"entry-a", &sealed).expect("opens"),
            b"xoxp-secret"
        );
        assert!(
            secrets.open(b"entry-b", &sealed).is_err(),
            "bound to its entry"
        );
        assert!(
            SecretBox::from_key(&[8; 32])
                .open(b"entry-a", &sealed)
                .is_err(),
            "wrong key"
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(secrets.open(b"entry-a", &tampered).is_err());
        assert_eq!(format!("{secrets:?}"), "SecretBox([key redacted])");
    }

    #[test]
    fn logins_are_stored_encrypted_and_listed() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let db = Db::open(store.clone()).expect("db");
        let secrets = SecretBox::from_key(&[1; 32]);
        let account = LinkedAccount {
            user: "U1".into(),
            token: "xoxp-very-secret".into(),
        };
        db.put_login(
            &secrets,
            &"slack:a".into(),
            (&"matrix:hs".into(), &"@ann:hs".into()),
            &account,
        )
        .expect("put");
        let mut raw = Vec::new();
        store
            .scan_prefix(Tree::Login, &[], &mut |_, v| {
                raw.push(v.to_vec());
                true
            })
            .expect("scan");
        assert_eq!(raw.len(), 1);
        assert!(!String::from_utf8_lossy(&raw[0]).contains("xoxp-very-secret"));
        let accounts =
            DbLinkedAccounts::load(db.clone(), secrets.clone(), "slack:a".into()).expect("load");
        assert_eq!(
            accounts.account_for(&"matrix:hs".into(), &"@ann:hs".into()),
            Some(account)
        );
        assert_eq!(
            accounts.token_of(&"U1".into()).as_deref(),
            Some("xoxp-very-secret")
        );
        assert!(
            accounts
                .account_for(&"matrix:hs".into(), &"@bob:hs".into())
                .is_none()
        );
        let other = DbLinkedAccounts::load(db.clone(), secrets, "slack:b".into()).expect("load");
        assert!(other.token_of(&"U1".into()).is_none(), "per target bridge");
        assert!(
            format!("{accounts:?}").contains("[redacted]")
                || !format!("{accounts:?}").contains("xoxp")
        );
    }

    #[test]
    fn key_files_are_created_private_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/store.key");
        assert!(
            SecretBox::load(&path, false).is_err(),
            "not created unless asked"
        );
        let a = SecretBox::load(&path, true).expect("created");
        let b = SecretBox::load(&path, false).expect("read back");
        assert_eq!(b.open(b"x", &a.seal(b"x", b"hi")).expect("same key"), b"hi");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").expect("write");
        assert!(SecretBox::load(&path, false).is_err());
    }
}
