//! Switchboard's Slack connector.
//!
//! - [`mrkdwn`], [`blocks`], [`emoji`]: Slack's text dialects to RichText and back.
//! - [`events`]: Events API payloads (from Socket Mode or HTTP) to canonical events.
//! - [`signature`]: `v0` request signatures of the HTTP Events API.
//! - [`names`]: resolving user and channel ids to names for mentions.
//! - [`bridge`]: the [`bridge::SlackBridge`] itself; [`socket`]: Socket Mode; [`config`]: its settings.
//! - `direct`: commands written to the bot in its IMs, the IMs of direct portals, the
//!   directory `dm <name>` searches.
//! - [`web`]: the Web API client; [`ratelimit`]: client-side rate limits.

pub mod blocks;
pub mod bridge;
pub mod config;
mod direct;
pub mod emoji;
pub mod events;
pub mod login;
pub mod manifest;
pub mod mrkdwn;
pub mod names;
pub mod names_cache;
pub mod ratelimit;
mod reorder;
pub mod signature;
pub mod socket;
pub mod web;
