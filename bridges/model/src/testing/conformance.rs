//! The conformance suite: what every [`Bridge`] must do, checked the same way
//! for each.
//!
//! A bridge's tests implement [`ConformanceHarness`] (the bridge plus a view
//! of its platform, usually a simulator) and call [`run_conformance`], which
//! panics with a message naming the bridge and the failed check. The suite
//! covers the contract the relay relies on:
//!
//! 1. capabilities are sane and `health_check` succeeds;
//! 2. `ensure_puppet` is stable for one person;
//! 3. a send shows up on the platform, and delivering the same op again posts
//!    nothing and returns the same ids;
//! 4. edits, reactions and deletes work where the capabilities claim them;
//! 5. a send to a missing channel fails permanently (never `Ok`);
//! 6. `run` reports `Connected`, pushes a person's message into the relay as an
//!    [`InboundKind::Message`] from the right origin, and returns `Ok`
//!    promptly once cancelled.
//!
//! Op ids carry a per-run suffix, so the suite can run repeatedly against one
//! platform. [`MemoryHarness`] runs it on [`MemoryBridge`].

use super::memory::{MemoryBridge, MemoryPlatform};
use super::{NoMedia, unique_id};
use crate::bridge::{Bridge, BridgeContext, BridgeState, InboundSink};
use crate::error::{BridgeError, RetryKind};
use crate::event::{InboundKind, Message, Origin};
use crate::ids::{BridgeId, ChannelId, MessageId, OpId, UserId};
use crate::outbound::{Delivered, OutboundKind, OutboundOp};
use crate::person::{Person, PuppetRef};
use async_trait::async_trait;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

/// How long a single bridge call may take before the suite gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `run` may take to report `Connected`, and then to push a message.
const INBOUND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `run` may take to return once cancelled.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A bridge under test and a platform-side view of what it did.
#[async_trait]
pub trait ConformanceHarness: Send + Sync {
    /// The bridge under test.
    fn bridge(&self) -> Arc<dyn Bridge>;
    /// A channel the bridge may post to.
    fn channel(&self) -> ChannelId;
    /// A channel that does not exist on the platform.
    fn missing_channel(&self) -> ChannelId;
    /// A person on the platform (not the bridge) posts `text` in `channel`.
    async fn post_as_person(&self, channel: &ChannelId, text: &str);
    /// The current plain text of message `id` as the platform shows it; None if deleted or absent.
    async fn message_text(&self, channel: &ChannelId, id: &MessageId) -> Option<String>;
    /// How many live messages the channel holds.
    async fn message_count(&self, channel: &ChannelId) -> usize;
}

/// Runs every check against the harness's bridge.
///
/// # Panics
/// On the first failed check, with a message naming the bridge and the check.
/// Needs a tokio runtime with timers (`run` is spawned as a task).
pub async fn run_conformance(h: &dyn ConformanceHarness) {
    let bridge = h.bridge();
    let suite = Suite {
        id: bridge.id().clone(),
        bridge,
        channel: h.channel(),
        run: unique_id("conformance"),
    };
    suite.capabilities_and_health().await;
    let puppet = suite.puppet().await;
    suite.messages(h, &puppet).await;
    suite.missing_channel(h, &puppet).await;
    suite.inbound(h).await;
}

/// One run of the suite.
struct Suite {
    id: BridgeId,
    bridge: Arc<dyn Bridge>,
    channel: ChannelId,
    /// Makes op ids and texts unique to this run.
    run: String,
}

impl Suite {
    fn fail(&self, check: &str, detail: impl std::fmt::Display) -> ! {
        panic!("conformance of bridge {}: {check}: {detail}", self.id)
    }

    fn check(&self, ok: bool, check: &str, detail: impl std::fmt::Display) {
        if !ok {
            self.fail(check, detail);
        }
    }

    /// Awaits `fut`, failing the check if it takes longer than [`CALL_TIMEOUT`].
    async fn within<T>(&self, check: &str, fut: impl Future<Output = T>) -> T {
        match timeout(CALL_TIMEOUT, fut).await {
            Ok(value) => value,
            Err(_) => self.fail(check, format_args!("no answer within {CALL_TIMEOUT:?}")),
        }
    }

    /// The person on another bridge the suite acts for.
    fn person(&self) -> Person {
        Person::new(
            BridgeId::new("conformance:elsewhere"),
            UserId::new(format!("person-{}", self.run)),
            "Conformance Person",
        )
    }

    fn op(
        &self,
        name: &str,
        channel: &ChannelId,
        puppet: &PuppetRef,
        kind: OutboundKind,
    ) -> OutboundOp {
        OutboundOp::on_behalf(
            OpId::new(format!("{}-{name}", self.run)),
            channel.clone(),
            Origin::new("conformance:elsewhere", "elsewhere"),
            self.person(),
            Some(puppet.clone()),
            kind,
        )
    }

    async fn deliver(&self, check: &str, op: &OutboundOp) -> Result<Delivered, BridgeError> {
        self.within(check, self.bridge.deliver(op, &NoMedia)).await
    }

    async fn deliver_ok(&self, check: &str, op: &OutboundOp) -> Delivered {
        match self.deliver(check, op).await {
            Ok(delivered) => delivered,
            Err(e) => self.fail(check, format_args!("deliver returned {e:?}")),
        }
    }

    async fn capabilities_and_health(&self) {
        let caps = self.bridge.capabilities();
        self.check(
            caps.max_message_len > 0,
            "capabilities",
            "max_message_len is 0",
        );
        if let Err(e) = self
            .within("health_check", self.bridge.health_check())
            .await
        {
            self.fail("health_check", format_args!("returned {e:?}"));
        }
    }

    async fn puppet(&self) -> PuppetRef {
        let person = self.person();
        let mut users = Vec::new();
        for _ in 0..2 {
            match self
                .within("ensure_puppet", self.bridge.ensure_puppet(&person))
                .await
            {
                Ok(puppet) => users.push(puppet),
                Err(e) => self.fail("ensure_puppet", format_args!("returned {e:?}")),
            }
        }
        self.check(
            users[0].user == users[1].user,
            "ensure_puppet",
            format_args!("two calls gave {} and {}", users[0].user, users[1].user),
        );
        users.swap_remove(0)
    }

    /// Send, repeated send, edit, react, unreact, delete.
    async fn messages(&self, h: &dyn ConformanceHarness, puppet: &PuppetRef) {
        let caps = self.bridge.capabilities();
        let channel = &self.channel;
        let before = h.message_count(channel).await;

        let text = format!("conformance message {}", self.run);
        let send = self.op(
            "send",
            channel,
            puppet,
            OutboundKind::Send {
                message: Message::text(&text),
            },
        );
        let sent = self.deliver_ok("send", &send).await;
        let Some(first) = sent.ids.first().cloned() else {
            self.fail("send", "deliver returned no message id")
        };
        let shown = h.message_text(channel, &first).await;
        self.check(
            shown.as_deref().is_some_and(|shown| shown.contains(&text)),
            "send",
            format_args!("the platform shows {shown:?}, expected it to contain {text:?}"),
        );
        let after_send = h.message_count(channel).await;
        self.check(
            after_send > before,
            "send",
            format_args!("the channel held {before} messages before and {after_send} after"),
        );

        let again = self.deliver_ok("idempotent send", &send).await;
        self.check(
            again == sent,
            "idempotent send",
            format_args!("the same op returned {again:?}, first {sent:?}"),
        );
        let after_again = h.message_count(channel).await;
        self.check(
            after_again == after_send,
            "idempotent send",
            format_args!("delivering the same op again changed the count to {after_again}"),
        );

        if caps.edits {
            let edited = format!("conformance edited {}", self.run);
            let edit = self.op(
                "edit",
                channel,
                puppet,
                OutboundKind::Edit {
                    parts: sent.ids.clone(),
                    message: Message::text(&edited),
                },
            );
            self.deliver_ok("edit", &edit).await;
            let shown = h.message_text(channel, &first).await;
            self.check(
                shown
                    .as_deref()
                    .is_some_and(|shown| shown.contains(&edited)),
                "edit",
                format_args!("the platform shows {shown:?}, expected it to contain {edited:?}"),
            );
        }

        if caps.reactions {
            let key = "👍".to_owned();
            let react = self.op(
                "react",
                channel,
                puppet,
                OutboundKind::React {
                    target: first.clone(),
                    key: key.clone(),
                },
            );
            let reacted = self.deliver_ok("react", &react).await;
            let unreact = self.op(
                "unreact",
                channel,
                puppet,
                OutboundKind::Unreact {
                    target: first.clone(),
                    key,
                    reaction: reacted.ids.first().cloned(),
                },
            );
            self.deliver_ok("unreact", &unreact).await;
        }

        if caps.deletes {
            let delete = self.op(
                "delete",
                channel,
                puppet,
                OutboundKind::Delete {
                    parts: sent.ids.clone(),
                },
            );
            self.deliver_ok("delete", &delete).await;
            let shown = h.message_text(channel, &first).await;
            self.check(
                shown.is_none(),
                "delete",
                format_args!("the platform still shows {shown:?}"),
            );
            let after_delete = h.message_count(channel).await;
            self.check(
                after_delete < after_send,
                "delete",
                format_args!("the channel still holds {after_delete} messages"),
            );
        }
    }

    async fn missing_channel(&self, h: &dyn ConformanceHarness, puppet: &PuppetRef) {
        let missing = h.missing_channel();
        let send = self.op(
            "missing",
            &missing,
            puppet,
            OutboundKind::Send {
                message: Message::text("conformance: this channel does not exist"),
            },
        );
        match self.deliver("send to a missing channel", &send).await {
            Err(e) if e.retry_kind() == RetryKind::Permanent => {}
            other => self.fail(
                "send to a missing channel",
                format_args!("expected NotFound or Permanent, got {other:?}"),
            ),
        }
    }

    /// `run` connects, reports a person's message, and stops when cancelled.
    async fn inbound(&self, h: &dyn ConformanceHarness) {
        let (sink, mut relay) = InboundSink::channel(256);
        let shutdown = CancellationToken::new();
        let (state_tx, mut state) = watch::channel(BridgeState::Connecting);
        // The relay tells a bridge which of its channels are portals.
        let (_channels_tx, channels) = watch::channel(vec![self.channel.clone()]);
        let ctx = BridgeContext::new(sink, shutdown.clone(), state_tx).with_channels(channels);
        let bridge = Arc::clone(&self.bridge);
        let mut runner = tokio::spawn(async move { bridge.run(ctx).await });

        let connected = timeout(
            INBOUND_TIMEOUT,
            state.wait_for(|s| *s == BridgeState::Connected),
        )
        .await
        .map(|waited| waited.map(|_| ()));
        match connected {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                // The context (and with it the state sender) is gone: run ended.
                let ended = (&mut runner).await;
                self.fail("run", format_args!("ended before Connected: {ended:?}"));
            }
            Err(_) => {
                let now = state.borrow().clone();
                self.fail(
                    "run",
                    format_args!("not Connected within {INBOUND_TIMEOUT:?} ({now})"),
                );
            }
        }

        let text = format!("conformance inbound {}", self.run);
        h.post_as_person(&self.channel, &text).await;
        let deadline = Instant::now() + INBOUND_TIMEOUT;
        loop {
            let envelope = match tokio::time::timeout_at(deadline, relay.recv()).await {
                Ok(Some(envelope)) => envelope,
                Ok(None) => self.fail("run", "stopped pushing events"),
                Err(_) => self.fail(
                    "run",
                    format_args!("did not push the person's message within {INBOUND_TIMEOUT:?}"),
                ),
            };
            let (event, stored) = envelope;
            // Play the relay: the event is "stored" at once. The bridge may
            // have stopped waiting, which is not this check's concern.
            let _ = stored.send(Ok(()));
            let InboundKind::Message { message, .. } = &event.kind else {
                continue;
            };
            let plain = message.body.to_plain();
            if !plain.contains(&text) {
                continue;
            }
            let expected = Origin::new(self.id.clone(), self.channel.clone());
            self.check(
                event.origin == expected,
                "run",
                format_args!(
                    "the message came from {}, expected {expected}",
                    event.origin
                ),
            );
            self.check(
                !event.sender.is_ours,
                "run",
                "a person's message was marked as the bridge's own",
            );
            break;
        }

        shutdown.cancel();
        match timeout(SHUTDOWN_TIMEOUT, &mut runner).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => self.fail("run", format_args!("returned {e:?} on shutdown")),
            Ok(Err(e)) => self.fail("run", format_args!("panicked: {e}")),
            Err(_) => {
                runner.abort();
                self.fail(
                    "run",
                    format_args!("still running {SHUTDOWN_TIMEOUT:?} after cancel"),
                );
            }
        }
        // Keep the relay's end open until run has returned, so it never sees
        // the relay go away.
        drop(relay);
    }
}

/// A [`ConformanceHarness`] for a [`MemoryBridge`]: the platform view comes
/// straight from its [`MemoryPlatform`].
#[derive(Debug, Clone)]
pub struct MemoryHarness {
    bridge: Arc<MemoryBridge>,
    channel: ChannelId,
    missing: ChannelId,
}

impl MemoryHarness {
    /// The channel [`ConformanceHarness::channel`] returns.
    pub const CHANNEL: &'static str = "conformance";
    /// The channel removed from the platform for the missing-channel check.
    pub const MISSING_CHANNEL: &'static str = "conformance-missing";

    /// A harness for `bridge`; removes [`Self::MISSING_CHANNEL`] from its platform.
    pub fn new(bridge: MemoryBridge) -> Self {
        bridge.platform().remove_channel(Self::MISSING_CHANNEL);
        MemoryHarness {
            bridge: Arc::new(bridge),
            channel: ChannelId::new(Self::CHANNEL),
            missing: ChannelId::new(Self::MISSING_CHANNEL),
        }
    }

    /// The platform behind the bridge.
    pub fn platform(&self) -> &MemoryPlatform {
        self.bridge.platform()
    }
}

#[async_trait]
impl ConformanceHarness for MemoryHarness {
    fn bridge(&self) -> Arc<dyn Bridge> {
        self.bridge.clone()
    }

    fn channel(&self) -> ChannelId {
        self.channel.clone()
    }

    fn missing_channel(&self) -> ChannelId {
        self.missing.clone()
    }

    async fn post_as_person(&self, channel: &ChannelId, text: &str) {
        if let Err(e) = self.platform().post(
            channel.as_str(),
            "conformance-person",
            "Conformance Person",
            text,
        ) {
            panic!("conformance harness: cannot post as a person: {e}");
        }
    }

    async fn message_text(&self, channel: &ChannelId, id: &MessageId) -> Option<String> {
        self.platform()
            .messages(channel.as_str())
            .into_iter()
            .find(|m| &m.id == id && !m.deleted)
            .map(|m| m.text)
    }

    async fn message_count(&self, channel: &ChannelId) -> usize {
        self.platform()
            .messages(channel.as_str())
            .iter()
            .filter(|m| !m.deleted)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::Capabilities;

    #[tokio::test]
    async fn memory_bridge_passes_ephemeral() {
        let platform = MemoryPlatform::new("memory:conformance");
        let harness = MemoryHarness::new(MemoryBridge::new(platform, Capabilities::full()));
        run_conformance(&harness).await;
    }

    #[tokio::test]
    async fn memory_bridge_passes_file_backed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let platform = MemoryPlatform::open("memory:conformance", dir.path()).expect("opens");
        let harness = MemoryHarness::new(MemoryBridge::new(platform, Capabilities::full()));
        run_conformance(&harness).await;
        // Twice on one platform: op ids are unique per run.
        run_conformance(&harness).await;
    }

    #[tokio::test]
    async fn memory_bridge_passes_with_minimal_capabilities() {
        let platform = MemoryPlatform::new("memory:minimal");
        let harness = MemoryHarness::new(MemoryBridge::new(platform, Capabilities::minimal()));
        run_conformance(&harness).await;
    }

    /// A bridge that answers a send to a missing channel with `Ok` fails the suite.
    #[tokio::test]
    #[should_panic(expected = "send to a missing channel")]
    async fn suite_catches_a_bridge_that_ignores_missing_channels() {
        let platform = MemoryPlatform::new("memory:sloppy");
        let harness = MemoryHarness::new(MemoryBridge::new(platform, Capabilities::full()));
        harness
            .platform()
            .restore_channel(MemoryHarness::MISSING_CHANNEL);
        run_conformance(&harness).await;
    }
}
