//! The application-service API the homeserver calls:
//! [`AppserviceEndpoint`], served on the daemon's listener under
//! `{registration url path}/_matrix/app/`.
//!
//! - `PUT /_matrix/app/v1/transactions/{txnId}`: events for rooms the bridge
//!   is in. Each is converted ([`crate::events`]) and pushed into the relay;
//!   the answer is `200 {}` only once every one of them is durably stored,
//!   else 500 so the homeserver sends the transaction again. Event ids are
//!   the relay's deduplication keys, so a redelivered transaction, or a
//!   transaction id reused after a homeserver restart (Synapse with SQLite
//!   counts from 1 again), is harmless; transaction ids are never used to
//!   drop anything. Echoes (events of our ghosts and bot) are dropped, and
//!   events in rooms that are not portals ignored. One exception keeps the
//!   order: a numeric transaction id more than one above the last one
//!   stored means the homeserver skipped transactions it still holds
//!   (Synapse can leave one unsent when it is created just as its recovery
//!   from an outage ends; it goes out only after the next outage, after
//!   later ones). That transaction is answered 503 once, which starts the
//!   homeserver's recovery: it sends its oldest unsent transaction first.
//!   The same id is taken the second time, so a gap that was no gap costs
//!   one retry.
//! - `GET /_matrix/app/v1/users/{userId}`: 200 after registering the ghost
//!   when the id is in our namespace, else 404 `M_NOT_FOUND`.
//! - `GET /_matrix/app/v1/rooms/{roomAlias}`: 200 after creating the room
//!   when the alias is a configured portal channel, else 404.
//! - `POST /_matrix/app/v1/ping`: 200 `{}`.
//!
//! Every request must carry the `hs_token` (`Authorization: Bearer`),
//! compared in constant time: none is 401 `M_UNAUTHORIZED`, a wrong one 403
//! `M_FORBIDDEN`. Before `run` has handed over the relay's context the
//! endpoint answers 503, and the homeserver retries.
//!
//! Spec: <https://spec.matrix.org/v1.16/application-service-api/>.

use crate::bridge::MatrixBridge;
use crate::client::dec;
use crate::direct::Special;
use crate::events::{RoomEvent, Surroundings, to_inbound};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_model::{
    BridgeContext, ChannelId, HttpEndpoint, HttpRequest, HttpResponse, Inbound, InboundKind,
    Origin, Person, Sender, UserId,
};

/// The application-service endpoint of one [`MatrixBridge`].
#[derive(Debug)]
pub struct AppserviceEndpoint {
    bridge: Arc<MatrixBridge>,
    /// The registration URL's path (`""` or `/some/prefix`).
    base: String,
    order: std::sync::Mutex<TxnOrder>,
}

/// The numeric transaction ids seen, to notice skipped ones.
#[derive(Debug, Default)]
struct TxnOrder {
    /// The last transaction stored.
    last: Option<u64>,
    /// A transaction refused once for a gap before it.
    refused: Option<u64>,
    /// Gaps are normal here: a refused transaction came back with its gap
    /// still open. Synapse numbers the transactions of all its application
    /// services (here also the double-puppeting one) in one sequence.
    shared_sequence: bool,
}

impl TxnOrder {
    /// Whether transaction `id` comes after a gap (and was not refused for
    /// it before); remembers the refusal.
    fn skipped_before(&mut self, id: u64) -> Option<u64> {
        let last = self.last?;
        if !self.shared_sequence && id > last.saturating_add(1) && self.refused != Some(id) {
            self.refused = Some(id);
            return Some(last);
        }
        None
    }

    /// Transaction `id` was stored. A lower id than the last is a
    /// homeserver that counts from 1 again (a restart) or a repeat.
    fn stored(&mut self, id: u64) {
        if !self.shared_sequence
            && self.refused == Some(id)
            && self.last.is_some_and(|last| id > last.saturating_add(1))
        {
            self.shared_sequence = true;
            tracing::info!(
                txn = id,
                "The homeserver's transaction ids skip numbers (it numbers the transactions of all its application services together); gaps are no longer asked about."
            );
        }
        if self.last.is_none_or(|last| id > last || id == 1) {
            self.last = Some(id);
        }
    }
}

/// A Matrix error answer.
fn error(status: u16, errcode: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::json(
        status,
        &json!({ "errcode": errcode, "error": message.into() }),
    )
}

fn ok() -> HttpResponse {
    HttpResponse::json(200, &json!({}))
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    diff == 0
}

impl AppserviceEndpoint {
    /// The endpoint of `bridge`.
    pub fn new(bridge: Arc<MatrixBridge>) -> Self {
        let base = bridge.url_base();
        AppserviceEndpoint {
            bridge,
            base,
            order: std::sync::Mutex::new(TxnOrder::default()),
        }
    }

    /// The token presented: `Authorization: Bearer …`, or the legacy
    /// `access_token` query parameter.
    fn presented_token(request: &HttpRequest) -> Option<String> {
        if let Some(value) = request.header("authorization") {
            let (scheme, token) = value.trim().split_once(' ')?;
            return scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned());
        }
        request.query.split('&').find_map(|pair| {
            pair.strip_prefix("access_token=")
                .map(|t| dec(&t.replace('+', " ")))
        })
    }

    fn check_token(&self, request: &HttpRequest) -> Result<(), HttpResponse> {
        let Some(token) = Self::presented_token(request) else {
            return Err(error(401, "M_UNAUTHORIZED", "missing the hs_token"));
        };
        if constant_time_eq(token.as_bytes(), self.bridge.hs_token().expose().as_bytes()) {
            Ok(())
        } else {
            tracing::warn!(bridge = %self.bridge.config().id, "Refused an application-service request with a wrong hs_token.");
            Err(error(403, "M_FORBIDDEN", "wrong hs_token"))
        }
    }

    fn order(&self) -> std::sync::MutexGuard<'_, TxnOrder> {
        self.order.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn transaction(&self, txn: &str, body: &[u8]) -> HttpResponse {
        let numeric: Option<u64> = txn.parse().ok();
        // With the double-puppeting registration, the homeserver numbers
        // its transactions and ours in one sequence: gaps mean nothing.
        if self.bridge.client.double_puppets_enabled() {
            self.order().shared_sequence = true;
        }
        if let Some(id) = numeric
            && let Some(last) = self.order().skipped_before(id)
        {
            self.bridge.sweeps.schedule(crate::sweep::now_ms());
            tracing::warn!(bridge = %self.bridge.config().id, last, txn = id, "The homeserver skipped transactions; asking it to send them first.");
            return error(
                503,
                "M_UNKNOWN",
                format!("transactions after {last} are missing; send them first"),
            );
        }
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return error(400, "M_BAD_JSON", format!("the body is not JSON: {e}")),
        };
        let Some(events) = value.get("events").and_then(Value::as_array) else {
            return error(400, "M_BAD_JSON", "the body has no \"events\" array");
        };
        let Some(ctx) = self.bridge.context() else {
            return error(503, "M_UNKNOWN", "the bridge is not running yet");
        };
        let events = self.bridge.with_missed_before(events).await;
        let inbound = self.bridge.inbound_of(&ctx, &events).await;
        let count = inbound.len();
        let mut pending = Vec::with_capacity(count);
        for event in inbound {
            match ctx.inbound.submit(event).await {
                Ok(stored) => pending.push(stored),
                Err(e) => {
                    tracing::warn!(bridge = %self.bridge.config().id, error = %e, "Transaction not stored; the homeserver will send it again.");
                    self.bridge.sweeps.schedule(crate::sweep::now_ms());
                    return error(500, "M_UNKNOWN", "not stored");
                }
            }
        }
        for stored in pending {
            if let Err(e) = stored.await {
                tracing::warn!(bridge = %self.bridge.config().id, error = %e, "Transaction not stored; the homeserver will send it again.");
                self.bridge.sweeps.schedule(crate::sweep::now_ms());
                return error(500, "M_UNKNOWN", "not stored");
            }
        }
        tracing::debug!(bridge = %self.bridge.config().id, txn, events = events.len(), relayed = count, "Transaction stored.");
        if let Some(id) = numeric {
            self.order().stored(id);
        }
        ok()
    }

    async fn user_query(&self, user: &str) -> HttpResponse {
        let namer = self.bridge.namer();
        if !namer.is_ghost(user) {
            return error(404, "M_NOT_FOUND", "not one of this bridge's users");
        }
        let Some(localpart) = user
            .strip_prefix('@')
            .and_then(|rest| rest.split_once(':'))
            .map(|(l, _)| l)
        else {
            return error(404, "M_NOT_FOUND", "not a user id");
        };
        match self
            .bridge
            .ghosts
            .register(&self.bridge.client, localpart)
            .await
        {
            Ok(()) => ok(),
            Err(e) => {
                tracing::warn!(bridge = %self.bridge.config().id, error = %e, "Could not register a queried ghost.");
                error(500, "M_UNKNOWN", "could not register the user")
            }
        }
    }

    async fn alias_query(&self, alias: &str) -> HttpResponse {
        let Some(ctx) = self.bridge.context() else {
            return error(503, "M_UNKNOWN", "the bridge is not running yet");
        };
        let channel = ChannelId::new(alias);
        if !ctx.channels().contains(&channel) {
            return error(404, "M_NOT_FOUND", "not a portal of this bridge");
        }
        match self
            .bridge
            .rooms
            .create_on_query(&self.bridge.client, &channel, Some(ctx.cursors()))
            .await
        {
            Ok(true) => ok(),
            Ok(false) => error(404, "M_NOT_FOUND", "not created here"),
            Err(e) => {
                tracing::warn!(bridge = %self.bridge.config().id, %alias, error = %e, "Could not create a queried portal room.");
                error(500, "M_UNKNOWN", "could not create the room")
            }
        }
    }
}

#[async_trait]
impl HttpEndpoint for AppserviceEndpoint {
    async fn handle(&self, request: HttpRequest) -> HttpResponse {
        let Some(rest) = request
            .path
            .strip_prefix(self.base.as_str())
            .and_then(|r| r.strip_prefix("/_matrix/app/"))
        else {
            return error(404, "M_UNRECOGNIZED", "unknown path");
        };
        if let Err(refused) = self.check_token(&request) {
            return refused;
        }
        let segments: Vec<&str> = rest.split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("PUT", ["v1", "transactions", txn]) if !txn.is_empty() => {
                self.transaction(&dec(txn), &request.body).await
            }
            ("GET", ["v1", "users", user]) => self.user_query(&dec(user)).await,
            ("GET", ["v1", "rooms", alias]) => self.alias_query(&dec(alias)).await,
            ("POST", ["v1", "ping"]) => ok(),
            (_, ["v1", "transactions" | "users" | "rooms" | "ping", ..]) => {
                error(405, "M_UNRECOGNIZED", "method not allowed")
            }
            _ => error(404, "M_UNRECOGNIZED", "unknown endpoint"),
        }
    }
}

/// What a transaction's event is wanted for.
enum Want {
    /// Relayed through its portal.
    Relay,
    /// A command to the bot (a management room).
    Command(String),
    /// A direct chat opened with this ghost.
    Direct(String),
}

impl MatrixBridge {
    /// The relay events a transaction's events mean, in order: echoes,
    /// events outside portals and events that mean nothing dropped.
    pub(crate) async fn inbound_of(&self, ctx: &BridgeContext, events: &[Value]) -> Vec<Inbound> {
        let portals = ctx.channels();
        let mut wanted: Vec<(RoomEvent, ChannelId, Want)> = Vec::new();
        for raw in events {
            let event = match RoomEvent::from_json(raw) {
                Ok(e) => e,
                Err(reason) => {
                    tracing::warn!(bridge = %self.config().id, %reason, "Skipped a malformed event.");
                    continue;
                }
            };
            if event.kind == "m.room.member"
                && event.state_key.as_deref() == Some(event.sender.as_str())
                && let Some(name) = event.content.get("displayname").and_then(Value::as_str)
            {
                self.remember_name(&event.sender, name);
                if let Some(mxc) = event.content.get("avatar_url").and_then(Value::as_str) {
                    self.remember_avatar(&event.sender, mxc);
                }
            }
            tracing::trace!(bridge = %self.config().id, event = %event.event_id, kind = %event.kind, sender = %event.sender, "Event in a transaction.");
            let special = self.note_membership(&event);
            // Ours: from the bot or a ghost, or sent by us as a linked
            // account (double puppeting), which every event we send says.
            if self.namer().is_ours(&event.sender)
                || event.content.get(crate::bridge::TXN_KEY).is_some()
            {
                tracing::trace!(bridge = %self.config().id, event = %event.event_id, kind = %event.kind, "Our own event.");
                continue;
            }
            match special {
                Special::BotInvited => {
                    self.bot_accepts(&event.room_id).await;
                    continue;
                }
                Special::GhostInvited { ghost } => {
                    let earlier = self
                        .ghost_accepts(&event.room_id, &ghost, ctx.cursors())
                        .await;
                    let room = ChannelId::new(event.room_id.clone());
                    wanted.push((event, room.clone(), Want::Direct(ghost)));
                    // Written before the ghost joined: after the direct
                    // chat, which the relay holds them behind.
                    wanted.extend(earlier.into_iter().map(|e| (e, room.clone(), Want::Relay)));
                    continue;
                }
                Special::None => {}
            }
            // A room the bridge knows is a portal only while its channel is
            // one (the bot also posts in management rooms).
            let channel = self
                .rooms
                .channel_of(&event.room_id)
                .filter(|c| portals.contains(c))
                .or_else(|| {
                    let as_channel = ChannelId::new(event.room_id.clone());
                    portals.contains(&as_channel).then_some(as_channel)
                });
            let is_call = crate::calls::is_call_event(&event.kind, event.state_key.is_some());
            let relayable = is_call
                || (event.state_key.is_none()
                    && matches!(
                        event.kind.as_str(),
                        "m.room.message" | "m.sticker" | "m.reaction" | "m.room.redaction"
                    ));
            let Some(channel) = channel else {
                // Outside portals, only commands to the bot mean something,
                // and what is written in a direct chat with a ghost whose
                // portal is still being set up (the relay holds it until then).
                if let Some(text) = self.command_in(&event, ctx.cursors()).await {
                    // `link <code>`: finishes a link started elsewhere.
                    if let Some(answer) = self.pending_links.complete(
                        &text,
                        &event.sender,
                        &self.config().server_name,
                    ) {
                        self.answer_link(&event, &answer).await;
                        continue;
                    }
                    let room = ChannelId::new(event.room_id.clone());
                    wanted.push((event, room, Want::Command(text)));
                } else if relayable && self.is_direct(&event.room_id, ctx.cursors()) {
                    let room = ChannelId::new(event.room_id.clone());
                    wanted.push((event, room, Want::Relay));
                } else {
                    tracing::debug!(bridge = %self.config().id, event = %event.event_id, kind = %event.kind, room = %event.room_id, "An event outside portals.");
                }
                continue;
            };
            if !is_call
                && (event.state_key.is_some()
                    || !matches!(
                        event.kind.as_str(),
                        "m.room.message" | "m.sticker" | "m.reaction" | "m.room.redaction"
                    ))
            {
                continue;
            }
            wanted.push((event, channel, Want::Relay));
        }

        let mut names: HashMap<String, String> = HashMap::new();
        for (event, _, _) in &wanted {
            if !names.contains_key(&event.sender) {
                let name = self.display_name(&event.sender).await;
                names.insert(event.sender.clone(), name);
            }
        }

        let cursors = ctx.cursors();
        let mut out = Vec::with_capacity(wanted.len());
        self.with_format(|format| {
            for (event, channel, want) in &wanted {
                let name = names
                    .get(&event.sender)
                    .cloned()
                    .unwrap_or_else(|| event.sender.clone());
                let mut person = Person::new(
                    self.config().id.clone(),
                    UserId::new(event.sender.clone()),
                    name,
                );
                person.avatar = self.avatar_url(&event.sender);
                let special = match want {
                    Want::Relay => None,
                    Want::Command(text) => Some(InboundKind::Command {
                        text: text.clone(),
                        message: None,
                    }),
                    Want::Direct(ghost) => Some(InboundKind::DirectChat {
                        puppet: UserId::new(ghost.clone()),
                    }),
                };
                if let Some(kind) = special {
                    out.push(self.special_inbound(event, person, kind));
                    continue;
                }
                let reaction = |id: &str| self.reaction(Some(cursors), id);
                let s = Surroundings {
                    origin: Origin::new(self.config().id.clone(), channel.clone()),
                    sender: Sender::new(person),
                    format,
                    reaction: &reaction,
                    calls: cursors,
                };
                let Some(inbound) = to_inbound(event, &s) else {
                    tracing::debug!(bridge = %self.config().id, event = %event.event_id, kind = %event.kind, "An event that means nothing to relay.");
                    continue;
                };
                if let InboundKind::Reaction {
                    target,
                    key,
                    added: true,
                } = &inbound.kind
                {
                    self.remember_reaction(cursors, &event.event_id, target.as_str(), key);
                }
                out.push(inbound);
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn tokens_from_header_or_query() {
        let with = |headers: Vec<(String, String)>, query: &str| {
            AppserviceEndpoint::presented_token(&HttpRequest::new(
                "PUT",
                "/_matrix/app/v1/transactions/1",
                query,
                headers,
                Vec::new(),
            ))
        };
        assert_eq!(
            with(vec![("Authorization".into(), "Bearer s3cret".into())], ""),
            Some("s3cret".into())
        );
        assert_eq!(
            with(vec![("authorization".into(), "bearer s3cret".into())], ""),
            Some("s3cret".into())
        );
        assert_eq!(
            with(vec![("authorization".into(), "Basic s3cret".into())], ""),
            None
        );
        assert_eq!(
            with(vec![], "a=1&access_token=s%33cret"),
            Some("s3cret".into())
        );
        assert_eq!(with(vec![], ""), None);
    }
}

#[cfg(test)]
mod endpoint_tests {
    use super::*;
    use crate::registration::tests::config;
    use switchboard_model::{Bridge, BridgeState, InboundSink, IntakeError, MessageId};
    use tokio::sync::{mpsc, watch};
    use tokio_util::sync::CancellationToken;

    const ROOM: &str = "!1LPf4nZ_CpUaXcFn3Yr8XnfiYoXgU2AsMW1QCQZ9_4M";
    const CHANNEL: &str = "#switchboard_general:localhost";

    /// The transaction captured from Synapse, from
    /// `$SWITCHBOARD_CONFORMANCE_DIR` (which CI sets); `None`, with a note,
    /// when the variable is unset.
    fn captured() -> Option<Value> {
        let Some(root) = std::env::var_os("SWITCHBOARD_CONFORMANCE_DIR") else {
            println!(
                "note: SWITCHBOARD_CONFORMANCE_DIR is unset; skipping the captured transaction"
            );
            return None;
        };
        let path = std::path::Path::new(&root).join("matrix/synapse-appservice-transaction.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("the captured transaction {}: {e}", path.display()));
        Some(serde_json::from_str(&text).expect("JSON"))
    }

    /// A bridge on `localhost` whose homeserver is unreachable (name lookups
    /// fall back to localparts), with ghosts `slack_{user}` as in the capture.
    fn bridge() -> Arc<MatrixBridge> {
        let mut cfg = config();
        cfg.server_name = "localhost".into();
        cfg.homeserver_url = "http://127.0.0.1:9".into();
        cfg.ghost_templates = vec![("slack".into(), "slack_{user}".into())];
        let bridge = MatrixBridge::new(cfg, "http://127.0.0.1:29333".into());
        bridge.rooms.remember(&ChannelId::new(CHANNEL), ROOM);
        bridge
    }

    fn running(
        bridge: &MatrixBridge,
        capacity: usize,
    ) -> mpsc::Receiver<switchboard_model::bridge::InboundEnvelope> {
        let (sink, rx) = InboundSink::channel(capacity);
        let (state, _) = watch::channel(BridgeState::Connecting);
        let (_, channels) = watch::channel(vec![ChannelId::new(CHANNEL)]);
        bridge.set_context(Some(
            BridgeContext::new(sink, CancellationToken::new(), state).with_channels(channels),
        ));
        rx
    }

    fn put(path: &str, token: Option<&str>, body: &Value) -> HttpRequest {
        let headers = token
            .map(|t| vec![("Authorization".to_owned(), format!("Bearer {t}"))])
            .unwrap_or_default();
        HttpRequest::new("PUT", path, "", headers, body.to_string().into_bytes())
    }

    fn endpoint(bridge: &Arc<MatrixBridge>) -> Arc<dyn HttpEndpoint> {
        let endpoints = bridge.http_endpoints();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0].0, "/_matrix/app/");
        endpoints[0].1.clone()
    }

    fn errcode(response: &HttpResponse) -> String {
        let v: Value = serde_json::from_slice(&response.body).expect("JSON answer");
        v["errcode"].as_str().unwrap_or_default().to_owned()
    }

    /// Acknowledges every event as stored and collects them.
    fn ack_all(
        mut rx: mpsc::Receiver<switchboard_model::bridge::InboundEnvelope>,
    ) -> tokio::task::JoinHandle<Vec<Inbound>> {
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some((event, ack)) = rx.recv().await {
                let _ = ack.send(Ok(()));
                seen.push(event);
            }
            seen
        })
    }

    #[tokio::test]
    async fn refuses_missing_and_wrong_tokens() {
        let bridge = bridge();
        let _rx = running(&bridge, 8);
        let ep = endpoint(&bridge);
        let body = json!({"events": []});
        let r = ep
            .handle(put("/_matrix/app/v1/transactions/1", None, &body))
            .await;
        assert_eq!((r.status, errcode(&r).as_str()), (401, "M_UNAUTHORIZED"));
        let r = ep
            .handle(put(
                "/_matrix/app/v1/transactions/1",
                Some("hs-secret-X"),
                &body,
            ))
            .await;
        assert_eq!((r.status, errcode(&r).as_str()), (403, "M_FORBIDDEN"));
        assert!(!String::from_utf8_lossy(&r.body).contains("hs-secret"));
        let r = ep
            .handle(put(
                "/_matrix/app/v1/transactions/1",
                Some("hs-secret-2"),
                &body,
            ))
            .await;
        assert_eq!(r.status, 200);
        let ping = HttpRequest::new(
            "POST",
            "/_matrix/app/v1/ping",
            "",
            vec![("authorization".into(), "Bearer hs-secret-2".into())],
            b"{}".to_vec(),
        );
        assert_eq!(ep.handle(ping).await.status, 200);
    }

    #[tokio::test]
    async fn refuses_malformed_bodies() {
        let bridge = bridge();
        let _rx = running(&bridge, 8);
        let ep = endpoint(&bridge);
        let path = "/_matrix/app/v1/transactions/2";
        let mut req = put(path, Some("hs-secret-2"), &json!({}));
        req.body = b"{not json".to_vec();
        let r = ep.handle(req).await;
        assert_eq!((r.status, errcode(&r).as_str()), (400, "M_BAD_JSON"));
        assert!(String::from_utf8_lossy(&r.body).contains("not JSON"));
        let r = ep
            .handle(put(path, Some("hs-secret-2"), &json!({"events": "nope"})))
            .await;
        assert_eq!((r.status, errcode(&r).as_str()), (400, "M_BAD_JSON"));
        assert!(String::from_utf8_lossy(&r.body).contains("events"));
    }

    /// PUTs an empty transaction `id` with the right token.
    async fn empty_transaction(ep: &Arc<dyn HttpEndpoint>, id: &str) -> HttpResponse {
        ep.handle(put(
            &format!("/_matrix/app/v1/transactions/{id}"),
            Some("hs-secret-2"),
            &json!({"events": []}),
        ))
        .await
    }

    /// Transaction 7 after 5: 6 was skipped. 7 is refused once (503), the
    /// homeserver sends 6 and then 7 again, both taken; a restarted
    /// homeserver's 1 is taken, and so is a non-numeric id.
    #[tokio::test]
    async fn a_skipped_transaction_is_asked_for_before_a_later_one() {
        let bridge = bridge();
        let rx = running(&bridge, 8);
        let _collected = ack_all(rx);
        let ep = endpoint(&bridge);
        let send = |id: &'static str| empty_transaction(&ep, id);
        assert_eq!(send("5").await.status, 200);
        let r = send("7").await;
        assert_eq!((r.status, errcode(&r).as_str()), (503, "M_UNKNOWN"));
        assert_eq!(send("6").await.status, 200);
        assert_eq!(send("7").await.status, 200);
        assert_eq!(send("8").await.status, 200);
        // A gap that was none: the same id again is taken.
        assert_eq!(send("10").await.status, 503);
        assert_eq!(send("10").await.status, 200);
        assert_eq!(send("1").await.status, 200, "a restarted homeserver");
        assert_eq!(send("2").await.status, 200);
        assert_eq!(send("txn-abc").await.status, 200);
    }

    /// Synapse numbers the transactions of all its application services in
    /// one sequence: with another one registered, every transaction of ours
    /// skips numbers. Once a refused transaction comes back with its gap
    /// still open, gaps are taken as they come.
    #[tokio::test]
    async fn gaps_that_keep_coming_back_are_the_homeserver_s_shared_numbering() {
        let bridge = bridge();
        let rx = running(&bridge, 8);
        let _collected = ack_all(rx);
        let ep = endpoint(&bridge);
        let send = |id: &'static str| empty_transaction(&ep, id);
        assert_eq!(send("1").await.status, 200);
        assert_eq!(send("3").await.status, 503, "the first gap is asked about");
        assert_eq!(send("3").await.status, 200, "and came back unfilled");
        for id in ["5", "7", "10", "12"] {
            assert_eq!(send(id).await.status, 200, "{id}: no more refusals");
        }
    }

    #[tokio::test]
    async fn answers_503_before_run() {
        let bridge = bridge();
        let ep = endpoint(&bridge);
        let r = ep
            .handle(put(
                "/_matrix/app/v1/transactions/3",
                Some("hs-secret-2"),
                &json!({"events": []}),
            ))
            .await;
        assert_eq!(r.status, 503);
    }

    #[tokio::test]
    async fn the_captured_synapse_transactions_become_one_message() {
        let bridge = bridge();
        let rx = running(&bridge, 64);
        let collected = ack_all(rx);
        let ep = endpoint(&bridge);
        let Some(capture) = captured() else { return };
        for txn in capture["all_transactions"].as_array().expect("list") {
            let path = txn["path"].as_str().expect("path");
            let r = ep
                .handle(put(path, Some("hs-secret-2"), &txn["body"]))
                .await;
            assert_eq!(
                r.status,
                200,
                "{path}: {:?}",
                String::from_utf8_lossy(&r.body)
            );
            assert_eq!(r.body, b"{}");
        }
        // The request on its own, as Synapse may redeliver it: same event id.
        let r = ep
            .handle(put(
                "/_matrix/app/v1/transactions/8",
                Some("hs-secret-2"),
                &capture["body"],
            ))
            .await;
        assert_eq!(r.status, 200);
        bridge.set_context(None);
        let seen = collected.await.expect("collector");
        // State events and the ghost's own message (an echo) are dropped; the
        // person's message arrives twice with one event id (the relay dedups).
        assert_eq!(seen.len(), 2, "{seen:#?}");
        let event = &seen[0];
        assert_eq!(seen[1].event, event.event);
        assert_eq!(
            event.event.as_str(),
            "$nhTAQNa49ZOZ-mCKCOYjTfuvirGo8SqNint0R9bwsFA"
        );
        assert_eq!(event.origin, Origin::new("matrix:example", CHANNEL));
        assert_eq!(event.sender.person.user.as_str(), "@admin:localhost");
        assert_eq!(event.sender.person.display_name, "admin");
        assert!(!event.sender.is_ours);
        assert_eq!(event.at.as_millis(), 1795305619515);
        match &event.kind {
            InboundKind::Message { id, message } => {
                assert_eq!(
                    id,
                    &MessageId::new("$nhTAQNa49ZOZ-mCKCOYjTfuvirGo8SqNint0R9bwsFA")
                );
                assert_eq!(message.body.to_plain(), "hello from a real matrix user");
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn answers_only_after_the_events_are_stored() {
        let bridge = bridge();
        let mut rx = running(&bridge, 8);
        let ep = endpoint(&bridge);
        let Some(capture) = captured() else { return };
        let body = capture["body"].clone();
        let handling = {
            let ep = ep.clone();
            let body = body.clone();
            tokio::spawn(async move {
                ep.handle(put(
                    "/_matrix/app/v1/transactions/8",
                    Some("hs-secret-2"),
                    &body,
                ))
                .await
            })
        };
        let (event, ack) = rx.recv().await.expect("pushed");
        assert!(matches!(event.kind, InboundKind::Message { .. }));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !handling.is_finished(),
            "answered before the event was stored"
        );
        ack.send(Ok(())).expect("endpoint waits");
        assert_eq!(handling.await.expect("task").status, 200);

        // Not stored: 500, so the homeserver sends the transaction again.
        let handling = tokio::spawn({
            let ep = ep.clone();
            async move {
                ep.handle(put(
                    "/_matrix/app/v1/transactions/9",
                    Some("hs-secret-2"),
                    &body,
                ))
                .await
            }
        });
        let (_, ack) = rx.recv().await.expect("pushed");
        ack.send(Err(IntakeError::NotStored("disk full".into())))
            .expect("endpoint waits");
        let r = handling.await.expect("task");
        assert_eq!(r.status, 500);
    }

    #[tokio::test]
    async fn drops_echoes_and_foreign_rooms() {
        let bridge = bridge();
        let rx = running(&bridge, 8);
        let collected = ack_all(rx);
        let ep = endpoint(&bridge);
        let msg = |sender: &str, room: &str, id: &str| {
            json!({"type": "m.room.message", "event_id": id, "room_id": room, "sender": sender,
                   "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": "x"}})
        };
        let body = json!({"events": [
            msg("@slack_bob:localhost", ROOM, "$ghost"),
            msg("@switchboard:localhost", ROOM, "$bot"),
            msg("@carol:localhost", "!elsewhere:localhost", "$foreign"),
            {"type": "m.room.message", "room_id": ROOM},
            msg("@carol:localhost", ROOM, "$kept"),
        ]});
        let r = ep
            .handle(put(
                "/_matrix/app/v1/transactions/10",
                Some("hs-secret-2"),
                &body,
            ))
            .await;
        assert_eq!(r.status, 200);
        bridge.set_context(None);
        let seen = collected.await.expect("collector");
        let ids: Vec<&str> = seen.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(ids, vec!["$kept"]);
    }

    #[tokio::test]
    async fn direct_invites_of_ghosts_and_prefixed_commands_outside_portals() {
        let bridge = bridge();
        let rx = running(&bridge, 8);
        let collected = ack_all(rx);
        let ep = endpoint(&bridge);
        let member = |sender: &str, target: &str, room: &str, id: &str, content: Value| {
            json!({"type": "m.room.member", "event_id": id, "room_id": room, "sender": sender,
                   "state_key": target, "origin_server_ts": 5, "content": content})
        };
        let text = |room: &str, id: &str, body: &str| {
            json!({"type": "m.room.message", "event_id": id, "room_id": room,
                   "sender": "@carol:localhost", "origin_server_ts": 6,
                   "content": {"msgtype": "m.text", "body": body}})
        };
        let body = json!({"events": [
            // Carol opens a DM with Bob's ghost (it cannot join here: the
            // homeserver is unreachable, but the relay is told).
            member("@carol:localhost", "@slack_bob:localhost", "!dm:localhost", "$invite",
                   json!({"membership": "invite", "is_direct": true})),
            // An invitation that is not a DM means nothing.
            member("@carol:localhost", "@slack_bob:localhost", "!group:localhost", "$group",
                   json!({"membership": "invite"})),
            // The bot is in a room that is no portal: a prefixed message is a
            // command, anything else nothing (its size is unknown here).
            member("@switchboard:localhost", "@switchboard:localhost", "!ops:localhost", "$join",
                   json!({"membership": "join"})),
            text("!ops:localhost", "$cmd", "!switchboard portal list"),
            text("!ops:localhost", "$chat", "just chatting"),
            // In a room without the bot, even a prefixed message is nothing.
            text("!other:localhost", "$other", "!switchboard help"),
        ]});
        let r = ep
            .handle(put(
                "/_matrix/app/v1/transactions/20",
                Some("hs-secret-2"),
                &body,
            ))
            .await;
        assert_eq!(r.status, 200);
        bridge.set_context(None);
        let seen = collected.await.expect("collector");
        let kinds: Vec<(&str, &str, &InboundKind)> = seen
            .iter()
            .map(|e| (e.event.as_str(), e.origin.channel.as_str(), &e.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (
                    "$invite",
                    "!dm:localhost",
                    &InboundKind::DirectChat {
                        puppet: UserId::new("@slack_bob:localhost")
                    }
                ),
                (
                    "$cmd",
                    "!ops:localhost",
                    &InboundKind::Command {
                        text: "portal list".into(),
                        message: None,
                    }
                ),
            ]
        );
        assert_eq!(seen[0].sender.person.user.as_str(), "@carol:localhost");
    }

    #[tokio::test]
    async fn reaction_redactions_become_removals() {
        let bridge = bridge();
        let rx = running(&bridge, 8);
        let collected = ack_all(rx);
        let ep = endpoint(&bridge);
        let body = json!({"events": [
            {"type": "m.reaction", "event_id": "$r1", "room_id": ROOM, "sender": "@carol:localhost",
             "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$m1", "key": "👍"}}},
            {"type": "m.room.redaction", "event_id": "$x1", "room_id": ROOM, "sender": "@carol:localhost",
             "content": {"redacts": "$r1"}},
            {"type": "m.room.redaction", "event_id": "$x2", "room_id": ROOM, "sender": "@carol:localhost",
             "redacts": "$m1", "content": {}},
        ]});
        let r = ep
            .handle(put(
                "/_matrix/app/v1/transactions/11",
                Some("hs-secret-2"),
                &body,
            ))
            .await;
        assert_eq!(r.status, 200);
        bridge.set_context(None);
        let kinds: Vec<InboundKind> = collected
            .await
            .expect("collector")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                InboundKind::Reaction {
                    target: MessageId::new("$m1"),
                    key: "👍".into(),
                    added: true
                },
                InboundKind::Reaction {
                    target: MessageId::new("$m1"),
                    key: "👍".into(),
                    added: false
                },
                InboundKind::Delete {
                    target: MessageId::new("$m1")
                },
            ]
        );
    }

    #[tokio::test]
    async fn user_and_alias_queries_outside_our_namespace_are_404() {
        let bridge = bridge();
        let _rx = running(&bridge, 8);
        let ep = endpoint(&bridge);
        let get = |path: &str| {
            HttpRequest::new(
                "GET",
                path,
                "",
                vec![("authorization".into(), "Bearer hs-secret-2".into())],
                Vec::new(),
            )
        };
        let r = ep
            .handle(get("/_matrix/app/v1/users/%40carol%3Alocalhost"))
            .await;
        assert_eq!((r.status, errcode(&r).as_str()), (404, "M_NOT_FOUND"));
        let r = ep
            .handle(get("/_matrix/app/v1/rooms/%23random%3Alocalhost"))
            .await;
        assert_eq!((r.status, errcode(&r).as_str()), (404, "M_NOT_FOUND"));
        let r = ep.handle(get("/_matrix/app/v1/unknown")).await;
        assert_eq!((r.status, errcode(&r).as_str()), (404, "M_UNRECOGNIZED"));
    }
}
