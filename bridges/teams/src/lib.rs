//! Switchboard's Microsoft Teams connector (being built).
//!
//! - [`html`]: Teams message HTML to RichText and back.
//! - [`graph`]: Microsoft Graph payloads (chatMessage, change notifications,
//!   system event messages) to canonical events.

pub mod graph;
pub mod html;
