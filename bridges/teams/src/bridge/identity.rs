//! Who an outbound operation is carried out as, and the delegated tokens
//! behind it.
//!
//! - A person who linked their own Teams account (`switchboard login teams
//!   --for …`) acts as themselves. The store holds their *refresh* token; the
//!   first use redeems it, and every rotation is written back through
//!   [`LinkedAccounts::update_token`] before the new access token is used, so
//!   a crash never leaves the store with a refresh token Graph already
//!   retired.
//! - Everyone else is posted by the service account, with an author line. It
//!   is either given in the configuration (tests) or signed in with
//!   `switchboard login teams --service` and kept in the same store.
//! - A refresh token that is refused (`invalid_grant`: revoked, expired,
//!   password changed) marks that login as needing re-authentication
//!   ([`LinkedAccounts::set_needs_reauth`]), visibly, and the person's
//!   messages fall back to the service account with an author line. The
//!   other logins go on.

use super::{Actor, TeamsBridge};
use crate::auth::{AccessToken, AuthError, DelegatedTokens, IdentityConfig, Secret};
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_model::{BridgeError, LinkedAccounts, OutboundOp, Person, UserId};
use tokio::sync::Mutex;

/// One account's live tokens, the stored refresh token they came from (to
/// notice a new sign-in that replaced it), and the refresh tokens this
/// process redeemed since (a caller that read the store before the latest
/// rotation brings one of those: that is no new sign-in).
#[derive(Debug)]
struct Live {
    stored: String,
    tokens: DelegatedTokens,
    redeemed: Vec<String>,
}

/// How many redeemed refresh tokens an account remembers.
const REDEEMED_MEMORY: usize = 16;

impl Live {
    fn resume(identities: &Identities, user: &str, stored: &str) -> Live {
        Live {
            stored: stored.to_owned(),
            tokens: DelegatedTokens::resume(
                identities.http.clone(),
                identities.identity.clone(),
                user,
                Secret::new(stored),
            ),
            redeemed: Vec::new(),
        }
    }

    /// Whether `stored` is a refresh token these live tokens do not come
    /// from: the account signed in again since.
    fn replaced_by(&self, stored: &str) -> bool {
        self.stored != stored
            && self.tokens.refresh_token.expose() != stored
            && !self.redeemed.iter().any(|r| r == stored)
    }
}

/// The delegated identities of one bridge.
#[derive(Debug)]
pub(super) struct Identities {
    http: reqwest::Client,
    identity: IdentityConfig,
    /// The configured service account, if any (else the stored one).
    configured: Option<Arc<Mutex<DelegatedTokens>>>,
    /// Its user id, readable while its tokens are being refreshed.
    configured_user: Option<String>,
    /// Live tokens by Teams user id (linked people and the stored service
    /// account).
    live: Mutex<HashMap<String, Arc<Mutex<Live>>>>,
}

impl Identities {
    pub(super) fn new(
        http: reqwest::Client,
        identity: IdentityConfig,
        configured: Option<DelegatedTokens>,
    ) -> Self {
        // Delegated tokens come from the device-code flow, a public-client
        // flow: their refresh never carries the client secret.
        let identity = IdentityConfig {
            client_secret: None,
            ..identity
        };
        Identities {
            http,
            identity,
            configured_user: configured.as_ref().map(|t| t.user_id.clone()),
            configured: configured.map(|t| Arc::new(Mutex::new(t))),
            live: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets every access token (Graph answered 401 to one: revoked or
    /// expired early); the next use refreshes from the refresh token.
    pub(super) async fn expire_all(&self) {
        if let Some(configured) = &self.configured {
            configured.lock().await.access = AccessToken::expired();
        }
        let live: Vec<Arc<Mutex<Live>>> = self.live.lock().await.values().cloned().collect();
        for entry in live {
            entry.lock().await.tokens.access = AccessToken::expired();
        }
    }

    /// The configured service account's user id.
    pub(super) fn configured_service_user(&self) -> Option<String> {
        // Not read through the tokens' lock: a refresh in progress must not
        // make the service account's own posts look like someone else's.
        self.configured_user.clone()
    }

    /// A valid access token for `user`, from their stored refresh token
    /// `stored`. Rotated refresh tokens are persisted first.
    async fn token_for(
        &self,
        accounts: &dyn LinkedAccounts,
        user: &str,
        stored: &str,
    ) -> Result<Secret, AuthError> {
        let entry = {
            let mut live = self.live.lock().await;
            let entry = live
                .entry(user.to_owned())
                .or_insert_with(|| Arc::new(Mutex::new(Live::resume(self, user, stored))));
            entry.clone()
        };
        let mut live = entry.lock().await;
        if live.replaced_by(stored) {
            // Signed in again since: start from the new refresh token.
            *live = Live::resume(self, user, stored);
        }
        if !live.tokens.access.needs_refresh() {
            return Ok(live.tokens.access.token.clone());
        }
        let before = live.tokens.refresh_token.clone();
        live.tokens.refresh().await?;
        let after = live.tokens.refresh_token.expose().to_owned();
        if after != before.expose() {
            if live.redeemed.len() >= REDEEMED_MEMORY {
                live.redeemed.remove(0);
            }
            live.redeemed.push(before.expose().to_owned());
            if let Err(e) = accounts.update_token(&UserId::new(user), &after) {
                // Keep going with the new token in memory; the next refresh
                // tries to persist again. Only a crash before then loses it.
                tracing::error!(user, error = %e, "Could not store a rotated Teams refresh token.");
            }
            live.stored = after;
        }
        accounts.set_needs_reauth(&UserId::new(user), None);
        Ok(live.tokens.access.token.clone())
    }
}

impl TeamsBridge {
    /// The service account's user id, if one is configured or stored.
    pub fn service_user(&self) -> Option<String> {
        self.identities.configured_service_user().or_else(|| {
            self.accounts()
                .service_account()
                .map(|a| a.user.to_string())
        })
    }

    /// The service account's access token and user id.
    pub(super) async fn service_actor(&self) -> Result<(Secret, String), BridgeError> {
        if let Some(configured) = &self.identities.configured {
            let mut tokens = configured.lock().await;
            let token = tokens.token().await?;
            return Ok((token, tokens.user_id.clone()));
        }
        let accounts = self.accounts();
        let Some(account) = accounts.service_account() else {
            return Err(BridgeError::permanent(
                "no Teams service account is signed in (switchboard login teams --service) and the author has not linked an account",
            ));
        };
        let user = account.user.as_str();
        match self
            .identities
            .token_for(accounts.as_ref(), user, &account.token)
            .await
        {
            Ok(token) => Ok((token, user.to_owned())),
            Err(AuthError::ReauthenticationRequired(why)) => {
                tracing::error!(bridge = %self.id, user, reason = %why, "The Teams service account must sign in again (switchboard login teams --service).");
                accounts.set_needs_reauth(&account.user, Some(&why));
                Err(BridgeError::auth(format!(
                    "the Teams service account must sign in again: {why}"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Who carries out `op`: the person's linked account, else the service
    /// account (with an author line).
    pub(super) async fn actor(&self, op: &OutboundOp) -> Result<Actor, BridgeError> {
        let accounts = self.accounts();
        let linked = match (&op.author, &op.on_behalf_of) {
            (Some(author), _) if author.is_linked_account => accounts
                .token_of(&author.user)
                .map(|token| (author.user.clone(), token)),
            _ => None,
        }
        .or_else(|| {
            op.on_behalf_of
                .as_ref()
                .and_then(|p| accounts.account_for(&p.bridge, &p.user))
                .map(|a| (a.user, a.token))
        });
        self.linked_else_service(linked, op.on_behalf_of.is_some())
            .await
    }

    /// Who organises a meeting asked for by `organiser`: their own Teams
    /// account when they linked one (or are a Teams person whose account is
    /// linked), else the service account. Neither → a permanent error that
    /// says how to sign the service account in.
    pub(super) async fn organiser_actor(
        &self,
        organiser: Option<&Person>,
    ) -> Result<Actor, BridgeError> {
        let accounts = self.accounts();
        let linked = organiser.and_then(|p| {
            accounts
                .account_for(&p.bridge, &p.user)
                .map(|a| (a.user, a.token))
                .or_else(|| {
                    (p.bridge == self.id)
                        .then(|| accounts.token_of(&p.user))
                        .flatten()
                        .map(|token| (p.user.clone(), token))
                })
        });
        if linked.is_none()
            && self.identities.configured.is_none()
            && accounts.service_account().is_none()
        {
            return Err(BridgeError::permanent(
                "a Teams service account must be signed in (switchboard login teams --service) to create Teams meetings for people who have not linked their own Teams account",
            ));
        }
        self.linked_else_service(linked, false).await
    }

    /// The linked account `linked` (Teams user id, stored refresh token)
    /// when its token can be had, else the service account (with an author
    /// line when `author_line`).
    async fn linked_else_service(
        &self,
        linked: Option<(UserId, String)>,
        author_line: bool,
    ) -> Result<Actor, BridgeError> {
        let accounts = self.accounts();
        if let Some((user, stored)) = linked {
            match self
                .identities
                .token_for(accounts.as_ref(), user.as_str(), &stored)
                .await
            {
                Ok(token) => {
                    return Ok(Actor {
                        token,
                        user: user.as_str().to_owned(),
                        author_line: false,
                    });
                }
                Err(AuthError::ReauthenticationRequired(why)) => {
                    tracing::warn!(bridge = %self.id, user = %user, reason = %why, "A linked Teams account must sign in again; posting through the service account meanwhile.");
                    accounts.set_needs_reauth(&user, Some(&why));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let (token, user) = self.service_actor().await?;
        Ok(Actor {
            token,
            user,
            author_line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::DeviceCodeLogin;
    use std::sync::Mutex as StdMutex;
    use std::time::Duration;
    use switchboard_model::{BridgeId, LinkedAccount};
    use switchboard_teams_sim::seed::Seed;
    use switchboard_teams_sim::{SimConfig, TeamsSim};

    const ADELE: &str = "adele@contoso.test";

    /// One stored refresh token, rotated in place, and the re-authentication
    /// marks set.
    #[derive(Debug, Default)]
    struct Stored {
        token: StdMutex<String>,
        marks: StdMutex<Vec<String>>,
    }

    impl LinkedAccounts for Stored {
        fn account_for(&self, _: &BridgeId, _: &UserId) -> Option<LinkedAccount> {
            None
        }

        fn token_of(&self, _: &UserId) -> Option<String> {
            Some(self.token.lock().expect("lock").clone())
        }

        fn update_token(&self, _: &UserId, token: &str) -> Result<(), String> {
            *self.token.lock().expect("lock") = token.to_owned();
            Ok(())
        }

        fn set_needs_reauth(&self, _: &UserId, reason: Option<&str>) {
            if let Some(why) = reason {
                self.marks.lock().expect("lock").push(why.to_owned());
            }
        }
    }

    /// Two deliveries read the stored refresh token at the same time after a
    /// start; the first redeems and rotates it, the second comes with the
    /// token it read before: that is the same sign-in, not a new one, so it
    /// gets the live access token instead of redeeming the retired token
    /// (which Graph refuses, and which marked the account as needing to sign
    /// in again).
    #[tokio::test]
    async fn a_stale_read_of_a_rotated_token_is_no_new_sign_in() {
        let seed: Seed = serde_json::from_value(serde_json::json!({
            "users": [{"displayName": "Adele Vance", "userPrincipalName": ADELE}],
            "teams": [{"displayName": "Contoso", "owners": [ADELE]}]
        }))
        .expect("seed");
        let sim = TeamsSim::start(SimConfig {
            seed: Some(seed),
            device_code_interval: Duration::from_millis(100),
            ..SimConfig::default()
        })
        .await
        .expect("sim starts");
        let s = sim.seeded();
        let identity = IdentityConfig {
            login_base: sim.login_url(),
            tenant: s.tenant_id.clone(),
            client_id: s.client_id.clone(),
            client_secret: None,
        };
        let http = reqwest::Client::new();
        let login = DeviceCodeLogin::new(
            http.clone(),
            identity.clone(),
            sim.graph_url(),
            "https://graph.microsoft.com/.default",
        );
        let code = login.start().await.expect("device code");
        sim.complete_device_code(&code.user_code, ADELE)
            .expect("sign in");
        let signed_in = login.poll(&code).await.expect("tokens");
        let first = signed_in.refresh_token.expose().to_owned();
        let user = s.users[ADELE].clone();
        let stored = Stored::default();
        *stored.token.lock().expect("lock") = first.clone();

        let identities = Identities::new(http, identity, None);
        let a = identities
            .token_for(&stored, &user, &first)
            .await
            .expect("the first use redeems the stored token");
        let rotated = stored.token.lock().expect("lock").clone();
        assert_ne!(rotated, first, "rotated and written back");
        let b = identities
            .token_for(&stored, &user, &first)
            .await
            .expect("a stale read still gets a token");
        assert_eq!(a.expose(), b.expose(), "the live access token");
        assert_eq!(*stored.token.lock().expect("lock"), rotated);
        assert!(
            stored.marks.lock().expect("lock").is_empty(),
            "not marked for re-authentication"
        );
        // A real new sign-in (a token never seen) still replaces them.
        let again = login.start().await.expect("device code");
        sim.complete_device_code(&again.user_code, ADELE)
            .expect("sign in again");
        let newer = login.poll(&again).await.expect("tokens");
        let newer = newer.refresh_token.expose().to_owned();
        *stored.token.lock().expect("lock") = newer.clone();
        let c = identities
            .token_for(&stored, &user, &newer)
            .await
            .expect("the new sign-in's token");
        assert_ne!(c.expose(), a.expose(), "tokens of the new sign-in");
        sim.shutdown().await;
    }
}
