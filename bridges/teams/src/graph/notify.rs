//! Change notifications, the validation handshake and delta pages.
//!
//! - Notification bodies: `{"value":[{subscriptionId, changeType, clientState,
//!   subscriptionExpirationDateTime, resource, resourceData{id, @odata.type,
//!   @odata.id}, encryptedContent{…}, tenantId}], "validationTokens":[…]}`;
//!   lifecycle notifications carry `lifecycleEvent` instead of `changeType`
//!   (<https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks>,
//!   <https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events>,
//!   protocols/teams.md §3).
//! - Validation: Graph POSTs to `notificationUrl?validationToken=…` and
//!   expects the URL-decoded token back as `text/plain` within 10 s
//!   ([`validation_token`]).
//! - `clientState` must be compared in constant time ([`client_state_matches`]).
//! - Delta pages: `{"value":[chatMessage…], "@odata.nextLink" | "@odata.deltaLink"}`
//!   (<https://learn.microsoft.com/en-us/graph/api/chatmessage-delta>).

use super::{Obj, Rejected, opt_obj, opt_str, req_str};
use serde_json::Value;
use switchboard_model::{ChannelId, MessageId};

/// `changeType` of a change notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeType {
    /// A message was created.
    Created,
    /// A message was edited, reacted to, or otherwise changed.
    Updated,
    /// A message was deleted.
    Deleted,
    /// Anything else, as sent.
    Other(String),
}

impl ChangeType {
    fn parse(s: &str) -> Self {
        match s {
            "created" => ChangeType::Created,
            "updated" => ChangeType::Updated,
            "deleted" => ChangeType::Deleted,
            other => ChangeType::Other(other.to_owned()),
        }
    }
}

/// A lifecycle notification's `lifecycleEvent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// Reauthorize (`POST /subscriptions/{id}/reauthorize`) or renew soon.
    ReauthorizationRequired,
    /// The subscription is gone: recreate it and resync with delta.
    SubscriptionRemoved,
    /// Notifications were missed (Outlook resources only): resync.
    Missed,
    /// Anything else, as sent.
    Other(String),
}

/// `encryptedContent` of a notification with resource data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedContent {
    /// Base64 AES-CBC ciphertext of the resource.
    pub data: String,
    /// Base64 RSA-OAEP encrypted symmetric key.
    pub data_key: String,
    /// Base64 HMAC-SHA256 of `data`, if sent.
    pub data_signature: Option<String>,
    /// Our certificate id.
    pub encryption_certificate_id: Option<String>,
    /// Our certificate's thumbprint.
    pub encryption_certificate_thumbprint: Option<String>,
}

/// One item of a notification POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A resource changed.
    Change {
        /// The subscription.
        subscription_id: String,
        /// What happened.
        change_type: ChangeType,
        /// The secret we gave at subscription time (check with [`client_state_matches`]).
        client_state: Option<String>,
        /// `chats('…')/messages('…')`, `teams('…')/channels('…')/messages('…')[/replies('…')]`
        /// (see [`parse_resource`]).
        resource: String,
        /// `resourceData.id`: the message id.
        resource_id: Option<String>,
        /// The tenant.
        tenant_id: Option<String>,
        /// Encrypted resource data, when the subscription asked for it.
        encrypted_content: Option<EncryptedContent>,
    },
    /// A subscription lifecycle event.
    Lifecycle {
        /// The subscription.
        subscription_id: String,
        /// What happened.
        event: LifecycleEvent,
        /// The secret we gave at subscription time.
        client_state: Option<String>,
        /// The tenant.
        tenant_id: Option<String>,
    },
}

impl Notification {
    /// The `clientState` sent with the item.
    pub fn client_state(&self) -> Option<&str> {
        match self {
            Notification::Change { client_state, .. }
            | Notification::Lifecycle { client_state, .. } => client_state.as_deref(),
        }
    }

    /// Whether the item is for `tenant` (items without a tenant id, and any
    /// item when `tenant` is `None`, are).
    pub fn is_for_tenant(&self, tenant: Option<&str>) -> bool {
        let tenant_id = match self {
            Notification::Change { tenant_id, .. } | Notification::Lifecycle { tenant_id, .. } => {
                tenant_id.as_deref()
            }
        };
        match (tenant, tenant_id) {
            (Some(ours), Some(theirs)) => ours.eq_ignore_ascii_case(theirs),
            _ => true,
        }
    }
}

/// A whole notification POST body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationBatch {
    /// The items.
    pub items: Vec<Notification>,
    /// `validationTokens` (JWTs to validate when resource data is included).
    pub validation_tokens: Vec<String>,
}

/// Parses a change-notification POST body into its items. Accepts the
/// `{"value":[…]}` envelope and, as the docs show it, a bare item.
pub fn parse_notifications(body: &[u8]) -> Result<Vec<Notification>, Rejected> {
    parse_notification_batch(body).map(|b| b.items)
}

/// [`parse_notifications`] keeping the `validationTokens`.
pub fn parse_notification_batch(body: &[u8]) -> Result<NotificationBatch, Rejected> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Rejected::InvalidJson(e.to_string()))?;
    let obj = value.as_object().ok_or(Rejected::NotAnObject)?;
    let items: Vec<&Value> = match obj.get("value") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(_) => {
            return Err(Rejected::WrongType {
                field: "value",
                expected: "an array",
            });
        }
        None if obj.contains_key("subscriptionId") => vec![&value],
        None => return Err(Rejected::MissingField("value")),
    };
    let items = items
        .into_iter()
        .map(|item| {
            item.as_object()
                .ok_or(Rejected::NotAnObject)
                .and_then(item_of)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let validation_tokens = obj
        .get("validationTokens")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(NotificationBatch {
        items,
        validation_tokens,
    })
}

fn item_of(item: &Obj) -> Result<Notification, Rejected> {
    let subscription_id = req_str(item, "subscriptionId")?.to_owned();
    let client_state = item
        .get("clientState")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let tenant_id = opt_str(item, "tenantId").map(str::to_owned);
    if let Some(event) = opt_str(item, "lifecycleEvent") {
        let event = match event {
            "reauthorizationRequired" => LifecycleEvent::ReauthorizationRequired,
            "subscriptionRemoved" => LifecycleEvent::SubscriptionRemoved,
            "missed" => LifecycleEvent::Missed,
            other => LifecycleEvent::Other(other.to_owned()),
        };
        return Ok(Notification::Lifecycle {
            subscription_id,
            event,
            client_state,
            tenant_id,
        });
    }
    let change_type = ChangeType::parse(req_str(item, "changeType")?);
    let resource = req_str(item, "resource")?.to_owned();
    let resource_id = opt_obj(item, "resourceData")
        .and_then(|d| opt_str(d, "id"))
        .map(str::to_owned);
    let encrypted_content = opt_obj(item, "encryptedContent").and_then(|e| {
        Some(EncryptedContent {
            data: opt_str(e, "data")?.to_owned(),
            data_key: opt_str(e, "dataKey")?.to_owned(),
            data_signature: opt_str(e, "dataSignature").map(str::to_owned),
            encryption_certificate_id: opt_str(e, "encryptionCertificateId").map(str::to_owned),
            encryption_certificate_thumbprint: opt_str(e, "encryptionCertificateThumbprint")
                .map(str::to_owned),
        })
    });
    Ok(Notification::Change {
        subscription_id,
        change_type,
        client_state,
        resource,
        resource_id,
        tenant_id,
        encrypted_content,
    })
}

/// The URL-decoded `validationToken` of a notification URL's query string
/// (`a=b&validationToken=Validation%3a+Testing…`), if present.
pub fn validation_token(query: &str) -> Option<String> {
    let query = query.strip_prefix('?').unwrap_or(query);
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == "validationToken").then(|| percent_decode(v, true))
    })
}

/// Decodes `%XX` (and `+` as space when `plus` is set); malformed escapes stay.
fn percent_decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if plus && b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Compares the expected `clientState` with the received one in time that
/// depends only on their lengths.
pub fn client_state_matches(expected: &str, received: Option<&str>) -> bool {
    let Some(received) = received else {
        return false;
    };
    let (a, b) = (expected.as_bytes(), received.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A notification's `resource`, taken apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRef {
    /// `teams('…')`.
    pub team: Option<String>,
    /// `channels('…')`.
    pub channel: Option<String>,
    /// `chats('…')`.
    pub chat: Option<String>,
    /// `messages('…')`: the message, or the root of a reply.
    pub message: Option<String>,
    /// `replies('…')`.
    pub reply: Option<String>,
}

impl ResourceRef {
    /// The canonical channel id (see the module docs of [`crate::graph`]).
    pub fn channel_id(&self) -> Option<ChannelId> {
        match (&self.team, &self.channel, &self.chat) {
            (Some(team), Some(channel), _) => Some(ChannelId::new(format!("{team}/{channel}"))),
            (_, _, Some(chat)) => Some(ChannelId::new(chat.clone())),
            _ => None,
        }
    }

    /// The canonical message id.
    pub fn message_id(&self) -> Option<MessageId> {
        match (&self.message, &self.reply) {
            (Some(root), Some(reply)) => Some(super::message_id(true, Some(root), reply)),
            (Some(id), None) => Some(MessageId::new(id.clone())),
            _ => None,
        }
    }
}

/// Parses `teams('T')/channels('C')/messages('M')/replies('R')`,
/// `chats('C')/messages('M')` and the path form
/// `/teams/T/channels/C/messages/M` (percent-encoded ids are decoded).
/// `None` when nothing is recognised.
pub fn parse_resource(resource: &str) -> Option<ResourceRef> {
    let mut out = ResourceRef::default();
    let mut segments = resource.trim_matches('/').split('/').peekable();
    let mut any = false;
    while let Some(seg) = segments.next() {
        let (name, value) = match seg.split_once('(') {
            Some((name, rest)) => {
                let v = rest.trim_end_matches(')').trim_matches('\'');
                (name, v.to_owned())
            }
            None => match segments.peek() {
                Some(next) if !next.contains('(') => {
                    let v = (*next).to_owned();
                    segments.next();
                    (seg, v)
                }
                _ => (seg, String::new()),
            },
        };
        let value = percent_decode(&value, false);
        if value.is_empty() || value.starts_with('$') {
            continue;
        }
        let slot = match name {
            "teams" => &mut out.team,
            "channels" => &mut out.channel,
            "chats" => &mut out.chat,
            "messages" => &mut out.message,
            "replies" => &mut out.reply,
            _ => continue,
        };
        *slot = Some(value);
        any = true;
    }
    any.then_some(out)
}

/// One page of a delta (or list) query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeltaPage {
    /// The chatMessages, for [`super::parse_message`] / [`super::diff`].
    pub messages: Vec<Value>,
    /// `@odata.nextLink`: more pages follow.
    pub next_link: Option<String>,
    /// `@odata.deltaLink`: the last page; keep it for the next round.
    pub delta_link: Option<String>,
    /// `@odata.context`.
    pub context: Option<String>,
}

impl DeltaPage {
    /// The chat or channel the page's `@odata.context` names, for
    /// [`super::parse_message_in`].
    pub fn conversation(&self) -> Option<ResourceRef> {
        self.context.as_deref().and_then(super::context_resource)
    }
}

/// Parses a delta or list response body.
pub fn parse_delta_page(body: &[u8]) -> Result<DeltaPage, Rejected> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Rejected::InvalidJson(e.to_string()))?;
    delta_page_of(value)
}

/// [`parse_delta_page`] of a page already read as JSON (taken apart, not
/// copied).
pub fn delta_page_of(value: Value) -> Result<DeltaPage, Rejected> {
    let Value::Object(mut obj) = value else {
        return Err(Rejected::NotAnObject);
    };
    let messages = match obj.remove("value") {
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(Rejected::WrongType {
                field: "value",
                expected: "an array",
            });
        }
        None => return Err(Rejected::MissingField("value")),
    };
    Ok(DeltaPage {
        messages,
        next_link: opt_str(&obj, "@odata.nextLink").map(str::to_owned),
        delta_link: opt_str(&obj, "@odata.deltaLink").map(str::to_owned),
        context: opt_str(&obj, "@odata.context").map(str::to_owned),
    })
}
