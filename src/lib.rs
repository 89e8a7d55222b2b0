//! Switchboard: one conversation across Slack, Microsoft Teams and Matrix.
//!
//! The binary (`src/main.rs`) only parses arguments; everything else lives
//! here so that tests can run the daemon in-process. See ARCHITECTURE.md.

pub mod config;
pub mod daemon;
pub mod store;
pub mod relay;
