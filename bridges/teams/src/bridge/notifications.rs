//! The change-notification endpoint on the daemon's listener
//! (`/teams/{instance}/notifications` and `/teams/{instance}/lifecycle`).
//!
//! - A request with `?validationToken=` is Graph validating the URL: the
//!   decoded token is echoed as `200 text/plain` at once.
//! - Otherwise the body is a batch of notifications. Each item's
//!   `clientState` is compared in constant time with ours; items that do not
//!   match (or name another tenant) are refused and counted. Accepted items
//!   are queued for the bridge's worker and the request is answered `202` at
//!   once (Graph wants an answer within 3 s). A full queue answers `503`, so
//!   that Graph delivers again later.
//! - Encrypted resource data (when configured) is decrypted by the worker,
//!   never here, and only for items whose `clientState` matched; an item
//!   that does not decrypt falls back to reading the message with a GET.
//! - A batch whose every item was refused is answered `403`; a body that is
//!   not a notification batch `400`. Nothing is lost either way: whatever a
//!   notification would have told, reconciliation finds.

use super::TeamsBridge;
use super::inbound::Counters;
use crate::graph::{self, ChangeType, EncryptedContent, LifecycleEvent, Notification, ResourceRef};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Instant;
use switchboard_model::{HttpEndpoint, HttpRequest, HttpResponse};
use tokio::sync::mpsc;

/// How many notification items may wait for the worker.
pub(super) const QUEUE: usize = 10_000;

/// Work for the notification worker.
#[derive(Debug)]
pub(super) enum Work {
    /// A message changed: fetch it and pass it through the gate.
    Change {
        resource: ResourceRef,
        deleted: bool,
        /// When the notification came.
        received: Instant,
    },
    /// A message changed and Graph sent it, encrypted to our certificate.
    Rich {
        resource: ResourceRef,
        content: EncryptedContent,
        /// When the notification came.
        received: Instant,
    },
    /// A lifecycle event of a subscription.
    Lifecycle {
        subscription: String,
        event: LifecycleEvent,
    },
}

/// The queue between the endpoint and the worker.
pub(super) fn queue() -> (mpsc::Sender<Work>, mpsc::Receiver<Work>) {
    mpsc::channel(QUEUE)
}

/// Serves one Teams bridge's notification and lifecycle URLs.
#[derive(Debug)]
pub struct NotificationEndpoint {
    bridge: Arc<TeamsBridge>,
}

impl NotificationEndpoint {
    /// The endpoint of `bridge`.
    pub fn new(bridge: Arc<TeamsBridge>) -> Self {
        NotificationEndpoint { bridge }
    }
}

#[async_trait]
impl HttpEndpoint for NotificationEndpoint {
    async fn handle(&self, request: HttpRequest) -> HttpResponse {
        let bridge = &self.bridge;
        if request.method != "POST" {
            return HttpResponse::text(405, "POST only");
        }
        if let Some(token) = graph::validation_token(&request.query) {
            tracing::info!(bridge = %bridge.id, path = %request.path, "Answered Graph's notification URL validation.");
            return HttpResponse::text(200, token);
        }
        let Some(settings) = &bridge.notifications else {
            return HttpResponse::text(404, "change notifications are not configured");
        };
        let items = match graph::parse_notifications(&request.body) {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(bridge = %bridge.id, reason = e.label(), "Refused a request that is not a notification batch.");
                return HttpResponse::text(400, format!("not a notification batch: {}", e.label()));
            }
        };
        let received = Instant::now();
        let mut accepted = 0usize;
        let mut refused = 0usize;
        for item in items {
            if !graph::client_state_matches(settings.client_state.expose(), item.client_state()) {
                refused += 1;
                Counters::bump(&bridge.inbound.counters.refused);
                continue;
            }
            if !item.is_for_tenant(Some(&bridge.tenant)) {
                refused += 1;
                Counters::bump(&bridge.inbound.counters.refused);
                continue;
            }
            let work = match item {
                Notification::Change {
                    change_type,
                    resource,
                    encrypted_content,
                    ..
                } => {
                    let Some(resource) = graph::parse_resource(&resource) else {
                        tracing::warn!(bridge = %bridge.id, "A notification named a resource we cannot read; reconciliation covers it.");
                        continue;
                    };
                    match encrypted_content {
                        // Decrypted by the worker, after this answer: only
                        // items with our clientState get that far.
                        Some(content)
                            if settings.encryption.is_some()
                                && change_type != ChangeType::Deleted =>
                        {
                            Work::Rich {
                                resource,
                                content,
                                received,
                            }
                        }
                        _ => Work::Change {
                            resource,
                            deleted: change_type == ChangeType::Deleted,
                            received,
                        },
                    }
                }
                Notification::Lifecycle {
                    subscription_id,
                    event,
                    ..
                } => Work::Lifecycle {
                    subscription: subscription_id,
                    event,
                },
            };
            match bridge.queue.try_send(work) {
                Ok(()) => {
                    accepted += 1;
                    Counters::bump(&bridge.inbound.counters.notifications);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(bridge = %bridge.id, "The Teams notification queue is full; asking Graph to deliver again.");
                    return HttpResponse::text(503, "busy");
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return HttpResponse::text(503, "stopping");
                }
            }
        }
        if refused > 0 {
            tracing::warn!(bridge = %bridge.id, refused, "Refused notification items with a wrong clientState or tenant.");
        }
        if accepted == 0 && refused > 0 {
            return HttpResponse::text(403, "clientState mismatch");
        }
        HttpResponse::text(202, "")
    }
}
