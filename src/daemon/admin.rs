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
//! - `GET /admin/portals` — every live portal (what `switchboard portal list`
//!   shows): `{"portals": [{"name", "source": "config"|"linked", "members":
//!   ["bridge/channel", …]}]}`.
//! - `POST /admin/portals` — link a portal at runtime (`switchboard portal
//!   link`): `{"name", "members": ["slack:acme/C123", "matrix:main/!abc:example.org"]}`,
//!   members spelled as in the config file. 400 for a bad name or member, 409
//!   when the name or a channel is taken.
//! - `DELETE /admin/portals/{name}` — unlink a linked portal (`switchboard
//!   portal unlink`); 404 for an unknown one, 409 for a config file's portal.

use crate::relay::{CallInfo, PortalError, PortalInfo, Relay};
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
    relay: Option<Relay>,
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
            relay: None,
        }
    }

    /// The admin API with the running relay, whose portals it lists, links
    /// and unlinks.
    pub fn with_relay(mut self, relay: Relay) -> Self {
        self.relay = Some(relay);
        self
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

/// A portal to link, as `switchboard portal link` sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPortal {
    name: String,
    members: Vec<String>,
}

/// A portal as the admin API shows it.
fn portal_json(portal: &PortalInfo) -> serde_json::Value {
    let members: Vec<String> = portal
        .members
        .iter()
        .map(|(b, c)| format!("{b}/{c}"))
        .collect();
    json!({
        "name": portal.name,
        "source": portal.source.as_str(),
        "members": members,
    })
}

/// A call of the registry in the admin API: names rather than whole people.
fn call_json(call: &CallInfo) -> serde_json::Value {
    use switchboard_model::CallState;
    let r = &call.record;
    let (state, duration_s) = match &r.state {
        CallState::Started => ("started", None),
        CallState::Updated => ("updated", None),
        CallState::Ended { duration } => ("ended", duration.map(|d| d.as_secs())),
    };
    let invites: serde_json::Map<String, serde_json::Value> = call
        .invites
        .iter()
        .map(|(b, c, ids)| (format!("{b}/{c}"), json!(ids)))
        .collect();
    json!({
        "id": call.id,
        "portal": r.portal,
        "origin": format!("{}/{}", r.origin.bridge, r.origin.channel),
        "provider": r.provider,
        "state": state,
        "duration_s": duration_s,
        "title": r.title,
        "join_url": r.join_url,
        "started_by": r.started_by.as_ref().map(|p| p.display_name.clone()),
        "participants": r.participants.iter().map(|p| p.display_name.clone()).collect::<Vec<_>>(),
        "started_ms": r.started_ms,
        "ended_ms": r.ended_ms,
        "invites": invites,
    })
}

fn portal_error(e: &PortalError) -> HttpResponse {
    let status = match e {
        PortalError::Invalid(_) => 400,
        PortalError::NotFound(_) => 404,
        PortalError::Conflict(_) => 409,
        PortalError::Store(_) => 500,
    };
    HttpResponse::json(status, &json!({ "error": e.to_string() }))
}

impl Admin {
    fn relay(&self) -> Result<&Relay, HttpResponse> {
        self.relay
            .as_ref()
            .ok_or_else(|| HttpResponse::json(503, &json!({ "error": "the relay is not running" })))
    }

    fn list_portals(&self) -> HttpResponse {
        match self.relay() {
            Ok(relay) => {
                let portals: Vec<_> = relay.portals().iter().map(portal_json).collect();
                HttpResponse::json(200, &json!({ "portals": portals }))
            }
            Err(answer) => answer,
        }
    }

    fn link_portal(&self, body: &[u8]) -> HttpResponse {
        let relay = match self.relay() {
            Ok(relay) => relay,
            Err(answer) => return answer,
        };
        let new: NewPortal = match serde_json::from_slice(body) {
            Ok(n) => n,
            Err(e) => {
                return HttpResponse::json(400, &json!({ "error": format!("bad request: {e}") }));
            }
        };
        match relay.link_portal(&new.name, &new.members) {
            Ok(portal) => HttpResponse::json(200, &json!({ "portal": portal_json(&portal) })),
            Err(e) => portal_error(&e),
        }
    }

    fn unlink_portal(&self, name: &str) -> HttpResponse {
        let relay = match self.relay() {
            Ok(relay) => relay,
            Err(answer) => return answer,
        };
        match relay.unlink_portal(name) {
            Ok(()) => HttpResponse::json(200, &json!({ "ok": true })),
            Err(e) => portal_error(&e),
        }
    }

    fn list_calls(&self) -> HttpResponse {
        let relay = match self.relay() {
            Ok(relay) => relay,
            Err(answer) => return answer,
        };
        match relay.calls() {
            Ok(calls) => {
                let calls: Vec<_> = calls.iter().map(call_json).collect();
                HttpResponse::json(200, &json!({ "calls": calls }))
            }
            Err(e) => HttpResponse::json(500, &json!({ "error": e.to_string() })),
        }
    }

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
        if request.method == "DELETE"
            && let Some(name) = request.path.strip_prefix("/admin/portals/")
        {
            return self.unlink_portal(name);
        }
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/admin/logins") => self.login(&request.body),
            ("GET", "/admin/logins") => self.list(),
            ("GET", "/admin/portals") => self.list_portals(),
            ("GET", "/admin/calls") => self.list_calls(),
            ("POST", "/admin/portals") => self.link_portal(&request.body),
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

    /// The admin API with a relay over two memory bridges and one config
    /// portal, `general`.
    fn admin_with_relay() -> (Admin, Relay) {
        use crate::config::{PortalConfig, PortalMember, RelayConfig};
        use crate::daemon::metrics::Metrics;
        use crate::relay::RelaySetup;
        use switchboard_model::testing::{MemoryBridge, MemoryPlatform};
        use switchboard_model::{Bridge, Capabilities};
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let db = Db::open(store).expect("db");
        let bridges: Vec<Arc<dyn Bridge>> = ["mem:a", "mem:b"]
            .into_iter()
            .map(|id| {
                Arc::new(MemoryBridge::new(
                    MemoryPlatform::new(id),
                    Capabilities::full(),
                )) as Arc<dyn Bridge>
            })
            .collect();
        let relay = Relay::start(RelaySetup {
            db: db.clone(),
            bridges,
            portals: vec![PortalConfig {
                name: "general".into(),
                members: ["mem:a", "mem:b"]
                    .into_iter()
                    .map(|b| PortalMember {
                        bridge: b.into(),
                        channel: "general".into(),
                    })
                    .collect(),
                calls: Default::default(),
            }],
            config: RelayConfig::default(),
            dedup_retention: std::time::Duration::from_secs(3600),
            metrics: Arc::new(Metrics::new()),
            space: None,
            secrets: None,
        })
        .expect("relay");
        let admin =
            Admin::new("s3cret-admin".into(), db, None, HashMap::new()).with_relay(relay.clone());
        (admin, relay)
    }

    #[tokio::test]
    async fn calls_are_listed_from_the_registry_with_the_token() {
        let (admin, relay) = admin_with_relay();
        assert_eq!(
            admin
                .handle(call("GET", "/admin/calls", "wrong", ""))
                .await
                .status,
            401
        );
        let empty = admin
            .handle(call("GET", "/admin/calls", "s3cret-admin", ""))
            .await;
        assert_eq!((empty.status, json_of(&empty)), (200, json!({"calls": []})));
        let mut started = switchboard_model::CallEvent::new(
            switchboard_model::CallId::new("huddle-1"),
            switchboard_model::CallProvider::SlackHuddle,
            switchboard_model::CallState::Started,
        );
        started.title = Some("Standup".into());
        started.join_url = Some("https://example.test/j".into());
        let ann = switchboard_model::Person::new("mem:a".into(), "ann".into(), "Ann");
        started.started_by = Some(ann.clone());
        let event = switchboard_model::Inbound::new(
            switchboard_model::Origin::new("mem:a", "general"),
            switchboard_model::EventId::new("ev-1"),
            switchboard_model::Sender::new(ann),
            switchboard_model::InboundKind::Call(started),
        );
        relay
            .sink()
            .submit(event)
            .await
            .expect("submitted")
            .await
            .expect("stored");
        let listed = admin
            .handle(call("GET", "/admin/calls", "s3cret-admin", ""))
            .await;
        assert_eq!(listed.status, 200);
        let calls = json_of(&listed)["calls"].clone();
        assert_eq!(calls.as_array().map(Vec::len), Some(1), "{calls}");
        let c = &calls[0];
        assert_eq!(c["id"], "huddle-1");
        assert_eq!(c["portal"], "general");
        assert_eq!(c["origin"], "mem:a/general");
        assert_eq!(c["state"], "started");
        assert_eq!(c["title"], "Standup");
        assert_eq!(c["join_url"], "https://example.test/j");
        assert_eq!(c["started_by"], "Ann");
    }

    fn call(method: &str, path: &str, token: &str, body: &str) -> HttpRequest {
        HttpRequest::new(
            method,
            path,
            "",
            vec![("Authorization".into(), format!("Bearer {token}"))],
            body.as_bytes().to_vec(),
        )
    }

    fn json_of(answer: &HttpResponse) -> serde_json::Value {
        serde_json::from_slice(&answer.body).expect("json")
    }

    #[tokio::test]
    async fn portals_are_linked_listed_and_unlinked_with_the_token() {
        let (admin, relay) = admin_with_relay();
        let body = r#"{"name":"sales","members":["mem:a/sales","mem:b/!room:example.org"]}"#;
        for (method, path, body) in [
            ("GET", "/admin/portals", ""),
            ("POST", "/admin/portals", body),
            ("DELETE", "/admin/portals/general", ""),
        ] {
            let answer = admin.handle(call(method, path, "wrong", body)).await;
            assert_eq!(answer.status, 401, "{method} {path}");
        }
        assert_eq!(
            relay.portals().len(),
            1,
            "nothing changed without the token"
        );

        let answer = admin
            .handle(call("POST", "/admin/portals", "s3cret-admin", body))
            .await;
        assert_eq!(answer.status, 200, "{:?}", json_of(&answer));
        let linked = relay
            .portals()
            .into_iter()
            .find(|p| p.name == "sales")
            .expect("linked in the relay");
        assert_eq!(
            linked.members,
            [
                ("mem:a".into(), "sales".into()),
                ("mem:b".into(), "!room:example.org".into())
            ]
        );
        let mut watch = relay.channels_watch(&"mem:b".into());
        assert!(
            watch
                .borrow_and_update()
                .contains(&"!room:example.org".into())
        );

        let answer = admin
            .handle(call("GET", "/admin/portals", "s3cret-admin", ""))
            .await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            json_of(&answer),
            json!({"portals": [
                {"name": "general", "source": "config", "members": ["mem:a/general", "mem:b/general"]},
                {"name": "sales", "source": "linked", "members": ["mem:a/sales", "mem:b/!room:example.org"]},
            ]})
        );

        let answer = admin
            .handle(call("DELETE", "/admin/portals/sales", "s3cret-admin", ""))
            .await;
        assert_eq!(answer.status, 200);
        assert!(relay.portals().iter().all(|p| p.name != "sales"));
        assert!(
            !watch
                .borrow_and_update()
                .contains(&"!room:example.org".into())
        );
        relay.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn portal_errors_map_to_statuses_with_their_message() {
        let (admin, relay) = admin_with_relay();
        let post = |body: &str| call("POST", "/admin/portals", "s3cret-admin", body);
        let cases = [
            (
                r#"{"name":"x","members":["slack:nope/C1","mem:b/c"]}"#,
                400,
                "unknown bridge \"slack:nope\"",
            ),
            (
                r#"{"name":"x","members":["mem:a/c"]}"#,
                400,
                "a portal needs at least 2 members, got 1",
            ),
            (r#"{"name":"x"}"#, 400, "bad request"),
            ("not json", 400, "bad request"),
            (
                r#"{"name":"x","members":["mem:a/c","mem:b/general"]}"#,
                409,
                "already in portal \"general\"",
            ),
            (
                r#"{"name":"general","members":["mem:a/c","mem:b/c"]}"#,
                409,
                "portal \"general\" already exists",
            ),
        ];
        for (body, status, message) in cases {
            let answer = admin.handle(post(body)).await;
            assert_eq!(answer.status, status, "{body}");
            let error = json_of(&answer)["error"].as_str().unwrap_or("").to_owned();
            assert!(error.contains(message), "{body}: {error}");
        }
        let answer = admin
            .handle(call("DELETE", "/admin/portals/general", "s3cret-admin", ""))
            .await;
        assert_eq!(answer.status, 409);
        assert!(
            json_of(&answer)["error"]
                .as_str()
                .unwrap_or("")
                .contains("defined in the config file; remove it there")
        );
        let answer = admin
            .handle(call("DELETE", "/admin/portals/nope", "s3cret-admin", ""))
            .await;
        assert_eq!(answer.status, 404);
        assert_eq!(json_of(&answer)["error"], "no portal \"nope\"");
        assert_eq!(relay.portals().len(), 1);
        relay.shutdown().await.expect("shutdown");
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
