//! Switchboard's Microsoft Teams connector (being built).
//!
//! - [`html`]: Teams message HTML to RichText and back.
//! - [`graph`]: Microsoft Graph payloads (chatMessage, change notifications,
//!   system event messages) to canonical events.
//! - [`auth`]: Microsoft identity platform tokens (client credentials, device
//!   code, rotating refresh tokens).
//! - [`client`]: the Microsoft Graph v1.0 HTTP client (errors, paging, limits).
//! - [`bridge`]: [`bridge::TeamsBridge`], the connector itself (delegated
//!   posting, delta polling).

pub mod auth;
pub mod bridge;
pub mod client;
pub mod graph;
pub mod html;
