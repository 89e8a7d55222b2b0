//! `slack-sim` — runs the Slack simulator standalone (filled in below).
fn main() {}
