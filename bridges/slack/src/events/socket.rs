//! Socket Mode frames.
//!
//! After `apps.connections.open` the WebSocket carries JSON text frames
//! (<https://docs.slack.dev/apis/events-api/using-socket-mode>):
//!
//! - `{"type":"hello","num_connections":2,…}` once connected;
//! - `{"type":"disconnect","reason":"warning"|"refresh_requested"|"too_many_websockets",…}`
//!   before Slack closes the socket (reconnect through a fresh URL);
//! - envelopes `{"envelope_id","type":"events_api"|"interactive"|"slash_commands",
//!   "payload":{…},"accepts_response_payload",("retry_attempt","retry_reason")}`,
//!   each to be acknowledged with `{"envelope_id":…}`. An `events_api`
//!   payload is byte for byte what an HTTP Request URL would receive, so it
//!   goes to [`parse_payload`](super::parse_payload).

use super::Rejected;
use super::json;
use serde_json::Value;

/// One frame Slack sent over a Socket Mode connection.
#[derive(Clone, PartialEq, Eq)]
pub enum SocketFrame {
    /// The connection is ready.
    Hello {
        /// How many connections the app holds, if Slack said.
        num_connections: Option<u32>,
    },
    /// Slack will close this connection; open a new one.
    Disconnect {
        /// Slack's reason (`warning`, `refresh_requested`,
        /// `too_many_websockets`); `unknown` when absent.
        reason: String,
    },
    /// A delivery to acknowledge with `{"envelope_id": …}`.
    Envelope {
        /// The id to acknowledge.
        envelope_id: String,
        /// `events_api`, `interactive`, `slash_commands`, or a newer kind.
        kind: String,
        /// 0 for a first delivery, then 1, 2… for redeliveries.
        retry_attempt: u32,
        /// Why Slack redelivers (`timeout`…), if it does.
        retry_reason: Option<String>,
        /// The payload as JSON bytes (for `events_api`: the body
        /// [`parse_payload`](super::parse_payload) takes).
        payload: Vec<u8>,
        /// Whether the ack may carry a response payload.
        accepts_response_payload: bool,
    },
    /// A frame type this parser does not know.
    Unknown(String),
}

impl std::fmt::Debug for SocketFrame {
    /// Payloads carry message bodies and Slack's verification token, so
    /// Debug shows only their size.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketFrame::Hello { num_connections } => f
                .debug_struct("Hello")
                .field("num_connections", num_connections)
                .finish(),
            SocketFrame::Disconnect { reason } => f
                .debug_struct("Disconnect")
                .field("reason", reason)
                .finish(),
            SocketFrame::Envelope {
                envelope_id,
                kind,
                retry_attempt,
                retry_reason,
                payload,
                accepts_response_payload,
            } => f
                .debug_struct("Envelope")
                .field("envelope_id", envelope_id)
                .field("kind", kind)
                .field("retry_attempt", retry_attempt)
                .field("retry_reason", retry_reason)
                .field("payload_bytes", &payload.len())
                .field("accepts_response_payload", accepts_response_payload)
                .finish(),
            SocketFrame::Unknown(kind) => f.debug_tuple("Unknown").field(kind).finish(),
        }
    }
}

/// Parses one Socket Mode text frame. Any frame with an `envelope_id` is an
/// envelope (so it can be acknowledged), whatever its type.
pub fn parse_socket_frame(text: &str) -> Result<SocketFrame, Rejected> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| Rejected::InvalidJson(e.to_string()))?;
    let frame = value.as_object().ok_or(Rejected::NotAnObject)?;
    let kind = json::req_str(frame, "type")?;
    if frame.contains_key("envelope_id") {
        return envelope(frame, kind);
    }
    Ok(match kind {
        "hello" => SocketFrame::Hello {
            num_connections: json::opt_i64(frame, "num_connections")
                .and_then(|n| u32::try_from(n).ok()),
        },
        "disconnect" => SocketFrame::Disconnect {
            reason: json::opt_nonempty(frame, "reason")
                .unwrap_or("unknown")
                .to_owned(),
        },
        other => SocketFrame::Unknown(other.to_owned()),
    })
}

/// An envelope frame of type `kind`.
fn envelope(frame: &json::Obj, kind: &str) -> Result<SocketFrame, Rejected> {
    let envelope_id = json::req_nonempty(frame, "envelope_id")?.to_owned();
    let payload = match frame.get("payload") {
        None | Some(Value::Null) => return Err(Rejected::MissingField("payload")),
        Some(p) => serde_json::to_vec(p).map_err(|e| Rejected::InvalidJson(e.to_string()))?,
    };
    Ok(SocketFrame::Envelope {
        envelope_id,
        kind: kind.to_owned(),
        retry_attempt: json::opt_i64(frame, "retry_attempt")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        retry_reason: json::opt_nonempty(frame, "retry_reason").map(str::to_owned),
        payload,
        accepts_response_payload: json::flag(frame, "accepts_response_payload"),
    })
}
