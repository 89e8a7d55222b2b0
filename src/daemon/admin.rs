//! The admin API on the daemon's listener (`/admin/…`), for what operators do
//! while the daemon runs. Off unless `http.admin_token` is configured; every
//! request must carry it as `Authorization: Bearer …` (compared in constant
//! time). The listener binds to loopback by default.
//!
//! - `POST /admin/logins` — store a linked account (what `switchboard login`
//!   sends): `{"bridge", "person_bridge", "person_user", "account_user", "token"}`.
//!   The token is sealed with the store key; the bridge starts using it at once.
//! - `GET /admin/logins` — every stored login (what `switchboard login list`
//!   shows): `{"logins": [{"bridge", "person_bridge", "person_user",
//!   "account_user", "needs_reauth"}]}`. Never a token.

use crate::store::Db;
use crate::store::login::{DbLinkedAccounts, LoginStatus, SecretBox};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_model::{BridgeId, HttpEndpoint, HttpRequest, HttpResponse, LinkedAccount, UserId};

/// The admin API.
pub struct Admin {
    token: String,
    db: Db,
    secrets: Option<SecretBox>,
    accounts: HashMap<BridgeId, Arc<DbLinkedAccounts>>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// A linked account, as `switchboard login` sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLogin {
    bridge: BridgeId,
    person_bridge: BridgeId,
    person_user: UserId,
    account_user: UserId,
    token: String,
}

impl Admin {
    /// The admin API with its token, the store, the store key (logins are
    /// refused without one) and each bridge's linked accounts.
    pub fn new(
        token: String,
        db: Db,
        secrets: Option<SecretBox>,
        accounts: HashMap<BridgeId, Arc<DbLinkedAccounts>>,
    ) -> Self {
        Admin {
            token,
            db,
            secrets,
            accounts,
        }
    }

    fn authorised(&self, request: &HttpRequest) -> bool {
        let given = request
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.as_bytes(), self.token.as_bytes())
    }

    fn login(&self, body: &[u8]) -> HttpResponse {
        let new: NewLogin = match serde_json::from_slice(body) {
            Ok(n) => n,
            Err(e) => {
                return HttpResponse::json(400, &json!({ "error": format!("bad request: {e}") }));
            }
        };
        let Some(secrets) = &self.secrets else {
            return HttpResponse::json(
                409,
                &json!({ "error": "no store key: set store.key_file (or the store-key credential)" }),
            );
        };
        let Some(accounts) = self.accounts.get(&new.bridge) else {
            return HttpResponse::json(
                404,
                &json!({ "error": format!("no bridge {}", new.bridge) }),
            );
        };
        let account = LinkedAccount {
            user: new.account_user,
            token: new.token,
        };
        let person = (&new.person_bridge, &new.person_user);
        let stored = self
            .db
            .put_login(secrets, &new.bridge, person, &account)
            .and_then(|()| self.db.forget_puppet(&new.bridge, person))
            .and_then(|()| accounts.reload());
        match stored {
            Ok(()) => {
                tracing::info!(bridge = %new.bridge, person_bridge = %new.person_bridge, "Account linked.");
                HttpResponse::json(200, &json!({ "ok": true }))
            }
            Err(e) => HttpResponse::json(500, &json!({ "error": e.to_string() })),
        }
    }
}

impl Admin {
    fn list(&self) -> HttpResponse {
        let mut bridges: Vec<&Arc<DbLinkedAccounts>> = self.accounts.values().collect();
        bridges.sort_by(|a, b| a.target().as_str().cmp(b.target().as_str()));
        let logins: Vec<LoginStatus> = bridges.iter().flat_map(|a| a.statuses()).collect();
        HttpResponse::json(200, &json!({ "logins": logins }))
    }
}

#[async_trait]
impl HttpEndpoint for Admin {
    async fn handle(&self, request: HttpRequest) -> HttpResponse {
        if !self.authorised(&request) {
            return HttpResponse::json(401, &json!({ "error": "missing or wrong admin token" }));
        }
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/admin/logins") => self.login(&request.body),
            ("GET", "/admin/logins") => self.list(),
            _ => HttpResponse::json(404, &json!({ "error": "no such admin call" })),
        }
    }
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Store};
    use switchboard_model::LinkedAccounts;

    fn admin() -> (Admin, Arc<DbLinkedAccounts>) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let db = Db::open(store).expect("db");
        let secrets = SecretBox::from_key(&[3; 32]);
        let accounts = Arc::new(
            DbLinkedAccounts::load(db.clone(), secrets.clone(), "slack:a".into()).expect("load"),
        );
        let map = HashMap::from([(BridgeId::new("slack:a"), accounts.clone())]);
        (
            Admin::new("s3cret-admin".into(), db, Some(secrets), map),
            accounts,
        )
    }

    fn post(path: &str, token: &str, body: &str) -> HttpRequest {
        HttpRequest::new(
            "POST",
            path,
            "",
            vec![("Authorization".into(), format!("Bearer {token}"))],
            body.as_bytes().to_vec(),
        )
    }

    #[tokio::test]
    async fn logins_need_the_token_and_take_effect_at_once() {
        let (admin, accounts) = admin();
        let body = r#"{"bridge":"slack:a","person_bridge":"matrix:hs","person_user":"@ann:hs","account_user":"U1","token":"xoxp-1"}"#;
        assert_eq!(
            admin
                .handle(post("/admin/logins", "wrong", body))
                .await
                .status,
            401
        );
        assert_eq!(
            admin.handle(post("/admin/logins", "", body)).await.status,
            401
        );
        assert_eq!(
            admin
                .handle(post("/admin/logins", "s3cret-admin", body))
                .await
                .status,
            200
        );
        assert_eq!(accounts.token_of(&"U1".into()).as_deref(), Some("xoxp-1"));
        let unknown = body.replace("slack:a", "slack:zz");
        assert_eq!(
            admin
                .handle(post("/admin/logins", "s3cret-admin", &unknown))
                .await
                .status,
            404
        );
        assert_eq!(
            admin
                .handle(post("/admin/logins", "s3cret-admin", "{"))
                .await
                .status,
            400
        );
        assert_eq!(
            admin
                .handle(post("/admin/nothing", "s3cret-admin", ""))
                .await
                .status,
            404
        );
        assert!(!format!("{admin:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn logins_are_listed_with_their_status_and_without_tokens() {
        let (admin, accounts) = admin();
        let get = |token: &str| {
            HttpRequest::new(
                "GET",
                "/admin/logins",
                "",
                vec![("Authorization".into(), format!("Bearer {token}"))],
                Vec::new(),
            )
        };
        assert_eq!(admin.handle(get("wrong")).await.status, 401);
        let body = r#"{"bridge":"slack:a","person_bridge":"matrix:hs","person_user":"@ann:hs","account_user":"U1","token":"xoxp-listed"}"#;
        assert_eq!(
            admin
                .handle(post("/admin/logins", "s3cret-admin", body))
                .await
                .status,
            200
        );
        accounts.set_needs_reauth(&"U1".into(), Some("token revoked"));
        let answer = admin.handle(get("s3cret-admin")).await;
        assert_eq!(answer.status, 200);
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        assert!(!text.contains("xoxp-listed"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            v["logins"],
            json!([{
                "bridge": "slack:a",
                "person_bridge": "matrix:hs",
                "person_user": "@ann:hs",
                "account_user": "U1",
                "needs_reauth": "token revoked",
            }])
        );
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
