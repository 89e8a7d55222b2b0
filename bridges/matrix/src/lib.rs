//! Switchboard's Matrix connector: Switchboard as a Matrix application
//! service, so that every Slack and Teams person appears in Matrix as a
//! ghost user and Matrix users take part in every portal.

pub mod config;
