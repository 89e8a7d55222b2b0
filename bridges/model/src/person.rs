//! People, senders and puppets.

use crate::ids::{BridgeId, UserId};
use serde::{Deserialize, Serialize};

/// A person (or bot) as their own platform knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Person {
    /// The bridge the person lives on.
    pub bridge: BridgeId,
    /// Their id there.
    pub user: UserId,
    /// The name to show for them elsewhere.
    pub display_name: String,
    /// An avatar URL the origin bridge can fetch, if any.
    pub avatar: Option<String>,
    /// Whether the account is a bot or an app.
    pub is_bot: bool,
}

impl Person {
    /// A human with a display name and no avatar.
    pub fn new(bridge: BridgeId, user: UserId, display_name: impl Into<String>) -> Self {
        Person {
            bridge,
            user,
            display_name: display_name.into(),
            avatar: None,
            is_bot: false,
        }
    }

    /// Sets the avatar.
    pub fn with_avatar(mut self, avatar: impl Into<String>) -> Self {
        self.avatar = Some(avatar.into());
        self
    }

    /// Marks the account as a bot.
    pub fn bot(mut self) -> Self {
        self.is_bot = true;
        self
    }
}

/// Who wrote an inbound event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Sender {
    /// The author.
    pub person: Person,
    /// True when our own bot, one of our puppets or a double-puppeted account
    /// wrote this on our behalf: the first echo guard. Connectors set it from
    /// whatever the platform tells them (bot id, message metadata, txn id).
    pub is_ours: bool,
}

impl Sender {
    /// A sender that is not one of ours.
    pub fn new(person: Person) -> Self {
        Sender {
            person,
            is_ours: false,
        }
    }

    /// A sender that is our own bot or one of our puppets.
    pub fn ours(person: Person) -> Self {
        Sender {
            person,
            is_ours: true,
        }
    }
}

/// How a person from elsewhere appears on a target bridge, as returned by
/// [`crate::Bridge::ensure_puppet`] and handed back with every operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PuppetRef {
    /// The puppet's user id on the target bridge. For platforms without ghost
    /// accounts this is a bridge-chosen handle (the relay still records it, so
    /// mentions and echoes of it can be recognised).
    pub user: UserId,
    /// The name shown on the target.
    pub display_name: String,
    /// The avatar shown on the target, in the target's own form (an mxc URI,
    /// an icon URL…), if any.
    pub avatar: Option<String>,
    /// True when this is the person's own linked account (double puppet).
    pub is_linked_account: bool,
}

impl PuppetRef {
    /// A puppet account with a name and no avatar.
    pub fn new(user: UserId, display_name: impl Into<String>) -> Self {
        PuppetRef {
            user,
            display_name: display_name.into(),
            avatar: None,
            is_linked_account: false,
        }
    }

    /// Sets the avatar.
    pub fn with_avatar(mut self, avatar: Option<String>) -> Self {
        self.avatar = avatar;
        self
    }

    /// Marks the puppet as the person's own linked account.
    pub fn linked(mut self) -> Self {
        self.is_linked_account = true;
        self
    }
}

/// A person's own account on a target bridge, linked by them (`switchboard
/// login`), so that what they write elsewhere appears there as themselves.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkedAccount {
    /// Their user id on the target bridge.
    pub user: UserId,
    /// The token that acts as them there. Never printed.
    pub token: String,
}

impl std::fmt::Debug for LinkedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedAccount")
            .field("user", &self.user)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// The linked accounts of one target bridge, as the daemon's store holds them
/// (encrypted at rest).
pub trait LinkedAccounts: Send + Sync + std::fmt::Debug {
    /// The account `person` linked on this bridge, if any.
    fn account_for(&self, person_bridge: &BridgeId, person_user: &UserId) -> Option<LinkedAccount>;
    /// The token of account `user` on this bridge, if it was linked.
    fn token_of(&self, user: &UserId) -> Option<String>;

    /// The bridge's own service account (the platform account that posts for
    /// people without a linked account), when it was signed in through
    /// `switchboard login <platform> --service` rather than configured.
    fn service_account(&self) -> Option<LinkedAccount> {
        None
    }

    /// Replaces the stored token of account `user` (the service account
    /// included), e.g. after the platform rotated a refresh token. The new
    /// token must be durable before this returns `Ok`.
    fn update_token(&self, user: &UserId, token: &str) -> Result<(), String> {
        let _ = (user, token);
        Err("these linked accounts cannot be updated".to_owned())
    }

    /// Records that account `user` needs its owner to sign in again
    /// (`Some(reason)`), or that it works again (`None`). Shown by
    /// `switchboard login list` and in the logs; the other accounts go on.
    fn set_needs_reauth(&self, user: &UserId, reason: Option<&str>) {
        let _ = (user, reason);
    }
}

/// Where a bridge keeps the linked accounts the daemon hands it; none
/// until it does.
#[derive(Debug)]
pub struct AccountsSlot(std::sync::RwLock<std::sync::Arc<dyn LinkedAccounts>>);

impl Default for AccountsSlot {
    fn default() -> Self {
        AccountsSlot(std::sync::RwLock::new(std::sync::Arc::new(
            NoLinkedAccounts,
        )))
    }
}

impl AccountsSlot {
    /// Replaces the accounts.
    pub fn set(&self, accounts: std::sync::Arc<dyn LinkedAccounts>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = accounts;
    }

    /// The accounts now.
    pub fn get(&self) -> std::sync::Arc<dyn LinkedAccounts> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// No linked accounts.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLinkedAccounts;

impl LinkedAccounts for NoLinkedAccounts {
    fn account_for(&self, _: &BridgeId, _: &UserId) -> Option<LinkedAccount> {
        None
    }
    fn token_of(&self, _: &UserId) -> Option<String> {
        None
    }
}
