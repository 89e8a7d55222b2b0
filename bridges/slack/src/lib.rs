//! Switchboard's Slack connector.
//!
//! - [`mrkdwn`], [`blocks`], [`emoji`]: Slack's text dialects to RichText and back.
//! - [`events`]: Events API payloads (from Socket Mode or HTTP) to canonical events.
//! - [`signature`]: `v0` request signatures of the HTTP Events API.
//! - [`names`]: resolving user and channel ids to names for mentions.

pub mod blocks;
pub mod emoji;
pub mod events;
pub mod mrkdwn;
pub mod names;
pub mod signature;
