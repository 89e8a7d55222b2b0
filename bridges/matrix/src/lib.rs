//! Switchboard's Matrix connector: Switchboard as a Matrix application
//! service, so that every Slack and Teams person appears in Matrix as a
//! ghost user and Matrix users take part in every portal.

pub mod appservice;
pub mod bridge;
pub mod calls;
pub mod client;
pub mod config;
pub mod direct;
pub mod events;
pub mod format;
pub mod ghosts;
pub mod media_proxy;
pub mod registration;
pub mod room_info;
pub mod rooms;
pub mod split;
mod sweep;
#[cfg(feature = "testing")]
pub mod testing;

pub use bridge::MatrixBridge;
pub use config::MatrixConfig;
