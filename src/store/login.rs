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
use std::sync::{Arc, Mutex, RwLock};
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

/// The person a bridge's own service account is stored under: (the bridge
/// itself, this user), e.g. by `switchboard login teams --service`.
pub const SERVICE_USER: &str = "@service";

/// What is sealed in a `login` entry. `needs_reauth` was added later; it is
/// optional in both directions, so entries written before and after read
/// the same (the version byte stays [`SEALED_VERSION`]).
#[derive(Serialize, Deserialize)]
struct Sealed {
    account: UserId,
    token: String,
    /// Why the account's owner must sign in again, if they must.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    needs_reauth: Option<String>,
}

/// One stored login as listed by `switchboard login list`: never its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginStatus {
    /// The bridge the account is on.
    pub bridge: BridgeId,
    /// The person's bridge (the bridge itself for its service account).
    pub person_bridge: BridgeId,
    /// The person's user id (`@service` for the service account).
    pub person_user: UserId,
    /// The account's user id on `bridge`.
    pub account_user: UserId,
    /// Why the owner must sign in again, if they must.
    pub needs_reauth: Option<String>,
}

/// One opened `login` entry.
#[derive(Debug, Clone)]
struct Entry {
    account: LinkedAccount,
    needs_reauth: Option<String>,
}

fn login_key(target: &BridgeId, person_bridge: &BridgeId, person_user: &UserId) -> Vec<u8> {
    Key::new()
        .str(target.as_str())
        .str(person_bridge.as_str())
        .str(person_user.as_str())
        .build()
}

fn seal_entry(secrets: &SecretBox, key: &[u8], entry: &Entry) -> Result<Vec<u8>, StoreError> {
    let plain = serde_json::to_vec(&Sealed {
        account: entry.account.user.clone(),
        token: entry.account.token.clone(),
        needs_reauth: entry.needs_reauth.clone(),
    })
    .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(secrets.seal(key, &plain))
}

impl Db {
    /// Links `person` to `account` on `target`, sealing the token. A new
    /// sign-in clears any earlier "needs re-authentication" mark.
    pub fn put_login(
        &self,
        secrets: &SecretBox,
        target: &BridgeId,
        person: (&BridgeId, &UserId),
        account: &LinkedAccount,
    ) -> Result<(), StoreError> {
        let key = login_key(target, person.0, person.1);
        let entry = Entry {
            account: account.clone(),
            needs_reauth: None,
        };
        let mut batch = WriteBatch::new();
        batch.put(Tree::Login, key.clone(), seal_entry(secrets, &key, &entry)?);
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
        Ok(self
            .login_entries(secrets, Some(target))?
            .into_iter()
            .map(|(_, person, entry)| (person, entry.account))
            .collect())
    }

    /// Every stored login on every bridge, for `switchboard login list`.
    pub fn login_statuses(&self, secrets: &SecretBox) -> Result<Vec<LoginStatus>, StoreError> {
        Ok(self
            .login_entries(secrets, None)?
            .into_iter()
            .map(
                |(bridge, (person_bridge, person_user), entry)| LoginStatus {
                    bridge,
                    person_bridge,
                    person_user,
                    account_user: entry.account.user,
                    needs_reauth: entry.needs_reauth,
                },
            )
            .collect())
    }

    /// The opened entries of `target` (of every bridge when `None`).
    fn login_entries(
        &self,
        secrets: &SecretBox,
        target: Option<&BridgeId>,
    ) -> Result<Vec<(BridgeId, LinkedPerson, Entry)>, StoreError> {
        let mut out = Vec::new();
        let mut err = None;
        let prefix = target.map_or_else(Vec::new, |t| Key::new().str(t.as_str()).prefix());
        self.store()
            .scan_prefix(Tree::Login, &prefix, &mut |k, v| {
                let mut r = KeyReader::new(k);
                let parsed = (|| {
                    Some((
                        r.str().ok()?.to_owned(),
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
                    (Some((t, b, u)), Ok(s)) => out.push((
                        BridgeId::new(t),
                        (BridgeId::new(b), UserId::new(u)),
                        Entry {
                            account: LinkedAccount {
                                user: s.account,
                                token: s.token,
                            },
                            needs_reauth: s.needs_reauth,
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
            })?;
        err.map_or(Ok(out), Err)
    }
}

/// The linked accounts of one bridge, read from the store once and kept in
/// memory (re-read by [`DbLinkedAccounts::reload`] after a login). Token
/// rotations and re-authentication marks are written through to the store
/// (flushed) before the cache changes.
#[derive(Debug, Clone)]
pub struct DbLinkedAccounts {
    db: Db,
    secrets: SecretBox,
    target: BridgeId,
    cache: Arc<RwLock<HashMap<LinkedPerson, Entry>>>,
    /// Serialises read-modify-write of entries (rotation, marks, reload).
    writes: Arc<Mutex<()>>,
}

impl DbLinkedAccounts {
    /// Loads the accounts linked on `target`.
    pub fn load(db: Db, secrets: SecretBox, target: BridgeId) -> Result<Self, StoreError> {
        let me = DbLinkedAccounts {
            db,
            secrets,
            target,
            cache: Arc::default(),
            writes: Arc::default(),
        };
        me.reload()?;
        Ok(me)
    }

    /// Re-reads the store.
    pub fn reload(&self) -> Result<(), StoreError> {
        let _writing = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let all = self.db.login_entries(&self.secrets, Some(&self.target))?;
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = all
            .into_iter()
            .map(|(_, person, entry)| (person, entry))
            .collect();
        Ok(())
    }

    /// The bridge these accounts are on.
    pub fn target(&self) -> &BridgeId {
        &self.target
    }

    /// Every login on this bridge, without tokens, sorted by person.
    pub fn statuses(&self) -> Vec<LoginStatus> {
        let mut out: Vec<LoginStatus> = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((person_bridge, person_user), entry)| LoginStatus {
                bridge: self.target.clone(),
                person_bridge: person_bridge.clone(),
                person_user: person_user.clone(),
                account_user: entry.account.user.clone(),
                needs_reauth: entry.needs_reauth.clone(),
            })
            .collect();
        out.sort_by(|a, b| {
            (a.person_bridge.as_str(), a.person_user.as_str())
                .cmp(&(b.person_bridge.as_str(), b.person_user.as_str()))
        });
        out
    }

    /// Rewrites every entry of account `user` with `change`, durably, then
    /// updates the cache. Returns how many entries changed.
    fn rewrite(
        &self,
        user: &UserId,
        change: impl Fn(&Entry) -> Option<Entry>,
    ) -> Result<usize, StoreError> {
        let _writing = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let changed: Vec<(LinkedPerson, Entry)> = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, entry)| entry.account.user == *user)
            .filter_map(|(person, entry)| change(entry).map(|e| (person.clone(), e)))
            .collect();
        if changed.is_empty() {
            return Ok(0);
        }
        let mut batch = WriteBatch::new();
        for ((person_bridge, person_user), entry) in &changed {
            let key = login_key(&self.target, person_bridge, person_user);
            batch.put(
                Tree::Login,
                key.clone(),
                seal_entry(&self.secrets, &key, entry)?,
            );
        }
        self.db.store().apply(batch)?;
        self.db.flush()?;
        let count = changed.len();
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        for (person, entry) in changed {
            cache.insert(person, entry);
        }
        Ok(count)
    }

    /// The usable entry (not marked for re-authentication) matching `pick`.
    fn usable(&self, pick: impl Fn(&LinkedPerson, &Entry) -> bool) -> Option<LinkedAccount> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(person, entry)| entry.needs_reauth.is_none() && pick(person, entry))
            .map(|(_, entry)| entry.account.clone())
    }
}

impl LinkedAccounts for DbLinkedAccounts {
    /// The person's account, unless it is marked as needing
    /// re-authentication: its token is refused, so the bridge acts for the
    /// person the way it does for people who never linked one.
    fn account_for(&self, person_bridge: &BridgeId, person_user: &UserId) -> Option<LinkedAccount> {
        self.usable(|(b, u), _| b == person_bridge && u == person_user)
    }

    /// The account's token, unless every login of it is marked as needing
    /// re-authentication.
    fn token_of(&self, user: &UserId) -> Option<String> {
        self.usable(|_, entry| entry.account.user == *user)
            .map(|a| a.token)
    }

    /// The login of (this bridge, `@service`), marked or not: without it the
    /// bridge cannot post for anyone, and its error says why.
    fn service_account(&self) -> Option<LinkedAccount> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(self.target.clone(), UserId::new(SERVICE_USER)))
            .map(|entry| entry.account.clone())
    }

    fn update_token(&self, user: &UserId, token: &str) -> Result<(), String> {
        let written = self
            .rewrite(user, |entry| {
                (entry.account.token != token).then(|| Entry {
                    account: LinkedAccount {
                        user: entry.account.user.clone(),
                        token: token.to_owned(),
                    },
                    needs_reauth: entry.needs_reauth.clone(),
                })
            })
            .map_err(|e| {
                format!(
                    "cannot store the new token of {user} on {}: {e}",
                    self.target
                )
            })?;
        if written == 0 {
            let known = self
                .cache
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .any(|entry| entry.account.user == *user);
            if !known {
                return Err(format!("no linked account {user} on {}", self.target));
            }
        }
        Ok(())
    }

    fn set_needs_reauth(&self, user: &UserId, reason: Option<&str>) {
        // Only a change of state is written and logged: the reason's text
        // (trace ids, timestamps) differs on every refusal.
        let written = self.rewrite(user, |entry| {
            (entry.needs_reauth.is_some() != reason.is_some()).then(|| Entry {
                account: entry.account.clone(),
                needs_reauth: reason.map(str::to_owned),
            })
        });
        match (written, reason) {
            (Ok(0), _) => {}
            (Ok(_), Some(reason)) => tracing::warn!(
                bridge = %self.target,
                account = %user,
                reason,
                "A linked account needs its owner to sign in again (switchboard login); acting for them without it meanwhile."
            ),
            (Ok(_), None) => tracing::info!(
                bridge = %self.target,
                account = %user,
                "A linked account works again."
            ),
            (Err(e), _) => tracing::error!(
                bridge = %self.target,
                account = %user,
                error = %e,
                "Cannot store the re-authentication state of a linked account."
            ),
        }
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

    fn teams_db() -> (Arc<dyn Store>, Db, SecretBox) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let db = Db::open(store.clone()).expect("db");
        (store, db, SecretBox::from_key(&[5; 32]))
    }

    fn account(user: &str, token: &str) -> LinkedAccount {
        LinkedAccount {
            user: user.into(),
            token: token.into(),
        }
    }

    #[test]
    fn the_service_account_is_the_bridge_s_own_login() {
        let (_, db, secrets) = teams_db();
        let teams = BridgeId::new("teams:c");
        let accounts =
            DbLinkedAccounts::load(db.clone(), secrets.clone(), teams.clone()).expect("load");
        assert!(accounts.service_account().is_none());
        db.put_login(
            &secrets,
            &teams,
            (&teams, &UserId::new(SERVICE_USER)),
            &account("svc-id", "rt-svc"),
        )
        .expect("put");
        db.put_login(
            &secrets,
            &teams,
            (&"slack:a".into(), &"U1".into()),
            &account("ann-id", "rt-ann"),
        )
        .expect("put");
        accounts.reload().expect("reload");
        assert_eq!(
            accounts.service_account(),
            Some(account("svc-id", "rt-svc"))
        );
        // Another bridge's service account is not this one's.
        let other =
            DbLinkedAccounts::load(db.clone(), secrets, "teams:d".into()).expect("load other");
        assert!(other.service_account().is_none());
    }

    #[test]
    fn rotated_tokens_are_durable_and_cached() {
        let (store, db, secrets) = teams_db();
        let teams = BridgeId::new("teams:c");
        let ann = (BridgeId::new("slack:a"), UserId::new("U1"));
        db.put_login(
            &secrets,
            &teams,
            (&ann.0, &ann.1),
            &account("ann-id", "rt-1"),
        )
        .expect("put");
        let accounts =
            DbLinkedAccounts::load(db.clone(), secrets.clone(), teams.clone()).expect("load");
        accounts
            .update_token(&"ann-id".into(), "rt-2")
            .expect("update");
        assert_eq!(accounts.token_of(&"ann-id".into()).as_deref(), Some("rt-2"));
        // Another reader of the same store (a restarted daemon) sees it.
        let fresh =
            DbLinkedAccounts::load(db.clone(), secrets.clone(), teams.clone()).expect("load again");
        assert_eq!(
            fresh.account_for(&ann.0, &ann.1),
            Some(account("ann-id", "rt-2"))
        );
        // Sealed, not in clear.
        let mut raw = Vec::new();
        store
            .scan_prefix(Tree::Login, &[], &mut |_, v| {
                raw.push(v.to_vec());
                true
            })
            .expect("scan");
        assert!(raw.iter().all(|v| !v.windows(4).any(|w| w == b"rt-2")));
        // The same token again is no write and no error; an unknown account is.
        accounts
            .update_token(&"ann-id".into(), "rt-2")
            .expect("unchanged");
        assert!(accounts.update_token(&"nobody".into(), "rt-x").is_err());
        assert!(
            !format!(
                "{:?}",
                accounts.update_token(&"nobody".into(), "rt-secret-x")
            )
            .contains("rt-secret-x"),
            "no token in the error"
        );
    }

    #[test]
    fn a_login_marked_for_re_authentication_is_persisted_and_set_aside() {
        let (_, db, secrets) = teams_db();
        let teams = BridgeId::new("teams:c");
        let service = UserId::new(SERVICE_USER);
        let ann = (BridgeId::new("slack:a"), UserId::new("U1"));
        db.put_login(
            &secrets,
            &teams,
            (&teams, &service),
            &account("svc-id", "rt-s"),
        )
        .expect("put");
        db.put_login(
            &secrets,
            &teams,
            (&ann.0, &ann.1),
            &account("ann-id", "rt-a"),
        )
        .expect("put");
        let accounts =
            DbLinkedAccounts::load(db.clone(), secrets.clone(), teams.clone()).expect("load");
        accounts.set_needs_reauth(&"ann-id".into(), Some("AADSTS70000: revoked"));
        // Set aside: the bridge acts for Ann as for anyone without a login.
        assert!(accounts.account_for(&ann.0, &ann.1).is_none());
        assert!(accounts.token_of(&"ann-id".into()).is_none());
        assert!(accounts.service_account().is_some(), "others go on");
        // Persisted, and listed without tokens.
        let fresh =
            DbLinkedAccounts::load(db.clone(), secrets.clone(), teams.clone()).expect("load again");
        let statuses = fresh.statuses();
        assert_eq!(statuses.len(), 2);
        let ann_status = statuses
            .iter()
            .find(|s| s.account_user.as_str() == "ann-id")
            .expect("ann listed");
        assert_eq!(
            ann_status.needs_reauth.as_deref(),
            Some("AADSTS70000: revoked")
        );
        let mut all = db.login_statuses(&secrets).expect("all");
        all.sort_by(|a, b| a.person_user.as_str().cmp(b.person_user.as_str()));
        let mut cached = statuses.clone();
        cached.sort_by(|a, b| a.person_user.as_str().cmp(b.person_user.as_str()));
        assert_eq!(all, cached);
        assert!(!format!("{statuses:?}").contains("rt-"));
        // A second refusal (another trace id) changes nothing.
        accounts.set_needs_reauth(&"ann-id".into(), Some("AADSTS70000: other trace"));
        assert_eq!(
            DbLinkedAccounts::load(db.clone(), secrets.clone(), teams.clone())
                .expect("load")
                .statuses()
                .iter()
                .find(|s| s.account_user.as_str() == "ann-id")
                .and_then(|s| s.needs_reauth.clone())
                .as_deref(),
            Some("AADSTS70000: revoked")
        );
        // Working again clears it; so does a new sign-in.
        accounts.set_needs_reauth(&"ann-id".into(), None);
        assert_eq!(
            accounts.account_for(&ann.0, &ann.1),
            Some(account("ann-id", "rt-a"))
        );
        accounts.set_needs_reauth(&"ann-id".into(), Some("revoked"));
        db.put_login(
            &secrets,
            &teams,
            (&ann.0, &ann.1),
            &account("ann-id", "rt-new"),
        )
        .expect("put");
        accounts.reload().expect("reload");
        assert_eq!(
            accounts.account_for(&ann.0, &ann.1),
            Some(account("ann-id", "rt-new"))
        );
    }

    #[test]
    fn entries_sealed_before_the_status_field_still_open() {
        let (store, db, secrets) = teams_db();
        let key = login_key(&"slack:a".into(), &"matrix:hs".into(), &"@ann:hs".into());
        let mut batch = WriteBatch::new();
        batch.put(
            Tree::Login,
            key.clone(),
            secrets.seal(&key, br#"{"account":"U1","token":"xoxp-old"}"#),
        );
        store.apply(batch).expect("write");
        let accounts = DbLinkedAccounts::load(db, secrets.clone(), "slack:a".into()).expect("load");
        assert_eq!(
            accounts.account_for(&"matrix:hs".into(), &"@ann:hs".into()),
            Some(account("U1", "xoxp-old"))
        );
        assert_eq!(accounts.statuses()[0].needs_reauth, None);
        // And what is written now carries no status field unless marked.
        let plain = serde_json::to_vec(&Sealed {
            account: "U1".into(),
            token: "t".into(),
            needs_reauth: None,
        })
        .expect("json");
        assert_eq!(plain, br#"{"account":"U1","token":"t"}"#);
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
