//! Integration tests for the Slack simulator: a real server on loopback, driven through its
//! HTTP, WebSocket and admin interfaces the way a connector (or a person's client) would.

mod support;

mod binary;
mod commands;
mod direct;
mod events;
mod jsonschema;
mod oauth;
mod push;
mod ratelimit;
mod schema;
mod socket;
mod web;
