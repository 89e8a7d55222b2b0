//! Integration tests for the Teams (Microsoft Graph) simulator: a real server on loopback,
//! driven over HTTP the way a connector — or a person's Teams client — would.

mod support;

mod auth;
mod binary;
mod conformance;
mod directory;
mod graph;
mod limits;
mod notify;
mod robust;
