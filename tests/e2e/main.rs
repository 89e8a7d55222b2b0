//! End-to-end tests: the `switchboard` binary as a real child process, with
//! file-backed in-memory platforms that the test process shares with it.
//! One integration-test binary; the modules are its groups.

mod calls;
mod cli;
mod conformance;
mod daemon;
mod deploy;
mod direct;
mod everywhere;
mod faults;
mod groups;
mod matrix;
mod portals;
mod slack;
mod support;
mod teams;
mod three;
