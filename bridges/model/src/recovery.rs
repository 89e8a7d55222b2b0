//! Finding what an earlier attempt of an op already posted, on platforms
//! that take no idempotency key.
//!
//! A connector marks each post with its op's id (Slack message metadata, a
//! hidden marker in a Teams post). When an op may have been posted before —
//! the relay says so ([`OutboundOp::maybe_delivered`]), or this process
//! already attempted it — the connector reads the conversation back and
//! looks for the marker before posting again.
//!
//! How far back is decided by time, not by a number of messages: a post of
//! the op cannot be older than the moment the relay accepted it
//! ([`OutboundOp::queued_at`], less [`CLOCK_MARGIN`] for the platform's clock),
//! however many messages other people wrote since.
//!
//! [`EarlierPosts`] keeps what such reads found, per conversation, so that
//! after a restart with thousands of ops in the outbox one read of each
//! conversation answers them all:
//!
//! - an op this process never attempted can only have been posted by an
//!   earlier process, that is before this one started: any read made since
//!   the start answers for it, if it reached back far enough;
//! - an op this process did attempt needs a read made after that attempt
//!   began, so only the part of the conversation newer than the last read is
//!   read again.

use crate::ids::{MessageId, OpId};
use crate::outbound::OutboundOp;
use crate::time::Timestamp;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// How far a platform's clock may run behind ours: reads reach back this
/// much further than the op's acceptance.
pub const CLOCK_MARGIN: Duration = Duration::from_secs(120);

/// How far back to read for an op that carries no acceptance time (ops
/// stored by an older version): this long before the process started.
const UNKNOWN_AGE: Duration = Duration::from_secs(3600);

/// How many attempted ops are remembered.
const ATTEMPTS_CAP: usize = 20_000;

/// Conversations whose reads were not used for this long are forgotten.
const IDLE: Duration = Duration::from_secs(900);

/// What has to happen before [`EarlierPosts::find`] can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// What was read already answers.
    Known,
    /// Read the messages created at or after `since` (platform time), then
    /// [`EarlierPosts::record`] what was found.
    Read {
        /// The oldest creation time the read must reach.
        since: Timestamp,
    },
}

/// What a read of one conversation covered.
#[derive(Debug)]
struct Coverage {
    /// Every message created at or after this was seen (platform clock).
    from: Timestamp,
    /// When the newest read began (our clock): posts attempted before this
    /// were there to be seen.
    read_at: Timestamp,
    /// Marker → the message carrying it.
    found: HashMap<String, MessageId>,
    /// Last use, for forgetting idle conversations.
    used: Timestamp,
}

#[derive(Debug, Default)]
struct Inner {
    /// Ops this process began posting, and when its latest attempt began.
    attempts: HashMap<OpId, Timestamp>,
    attempt_order: VecDeque<OpId>,
    conversations: HashMap<String, Coverage>,
}

/// Earlier posts found by reading conversations back; one per connector.
#[derive(Debug)]
pub struct EarlierPosts {
    started: Timestamp,
    inner: Mutex<Inner>,
}

impl Default for EarlierPosts {
    fn default() -> Self {
        Self::new()
    }
}

fn minus(at: Timestamp, d: Duration) -> Timestamp {
    Timestamp(
        at.as_millis()
            .saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    )
}

impl EarlierPosts {
    /// An empty index; the process's start is now.
    pub fn new() -> Self {
        Self::started_at(Timestamp::now())
    }

    /// An empty index for a process that started at `started`.
    pub fn started_at(started: Timestamp) -> Self {
        EarlierPosts {
            started,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that an attempt to post `op` begins now. Call it before the
    /// first request of every attempt that may post.
    pub fn attempting(&self, op: &OpId) {
        self.attempting_at(op, Timestamp::now());
    }

    fn attempting_at(&self, op: &OpId, at: Timestamp) {
        let mut inner = self.lock();
        if inner.attempts.insert(op.clone(), at).is_none() {
            inner.attempt_order.push_back(op.clone());
            while inner.attempt_order.len() > ATTEMPTS_CAP {
                if let Some(old) = inner.attempt_order.pop_front() {
                    inner.attempts.remove(&old);
                }
            }
        }
    }

    /// Whether this process attempted `op` before.
    pub fn attempted(&self, op: &OpId) -> bool {
        self.lock().attempts.contains_key(op)
    }

    /// Whether `op` must be looked for before it is posted: the relay says
    /// an earlier attempt may have reached the platform, or this process
    /// made one.
    pub fn must_look(&self, op: &OutboundOp) -> bool {
        op.maybe_delivered || self.attempted(&op.id)
    }

    /// What must be read of `conversation` before [`find`](Self::find) can
    /// answer for `op`.
    pub fn plan(&self, conversation: &str, op: &OutboundOp) -> Lookup {
        self.plan_at(conversation, op, Timestamp::now())
    }

    fn plan_at(&self, conversation: &str, op: &OutboundOp, now: Timestamp) -> Lookup {
        let queued = op
            .queued_at
            .unwrap_or_else(|| minus(self.started, UNKNOWN_AGE));
        let since = minus(queued, CLOCK_MARGIN);
        let mut inner = self.lock();
        // An op this process attempted may have been posted by that attempt.
        let attempt = inner.attempts.get(&op.id).copied();
        let must_have_read = attempt.unwrap_or(self.started);
        if inner.conversations.len() > 64 {
            let idle = minus(now, IDLE);
            inner.conversations.retain(|_, c| c.used >= idle);
        }
        match inner.conversations.get_mut(conversation) {
            Some(c) if c.from <= since => {
                c.used = now;
                if c.read_at >= must_have_read {
                    Lookup::Known
                } else {
                    // Only what is newer than the last read is unknown.
                    Lookup::Read {
                        since: minus(c.read_at, CLOCK_MARGIN),
                    }
                }
            }
            _ => Lookup::Read { since },
        }
    }

    /// Records a read of `conversation` that began at `read_at` (our clock,
    /// taken before its first request) and saw every message created at or
    /// after `since`, with the markers it found.
    pub fn record(
        &self,
        conversation: &str,
        since: Timestamp,
        read_at: Timestamp,
        found: impl IntoIterator<Item = (String, MessageId)>,
    ) {
        let mut inner = self.lock();
        let c = inner
            .conversations
            .entry(conversation.to_owned())
            .or_insert_with(|| Coverage {
                from: since,
                read_at,
                found: HashMap::new(),
                used: read_at,
            });
        if since <= c.from {
            // Reaches at least as far back: the coverage is this read's.
            c.from = since;
            c.read_at = c.read_at.max(read_at);
        } else if since <= c.read_at {
            // Joins the earlier coverage at its newest end.
            c.read_at = c.read_at.max(read_at);
        } else {
            // A gap between the two reads: only the newer one counts.
            c.from = since;
            c.read_at = read_at;
        }
        c.used = c.used.max(read_at);
        c.found.extend(found);
    }

    /// The message carrying `marker` in `conversation`, if a read found it.
    pub fn find(&self, conversation: &str, marker: &str) -> Option<MessageId> {
        self.lock()
            .conversations
            .get(conversation)
            .and_then(|c| c.found.get(marker).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ChannelId;
    use crate::outbound::OutboundKind;

    const MIN: u64 = 60_000;

    fn op(id: &str, queued: u64, maybe: bool) -> OutboundOp {
        OutboundOp::new(
            OpId::new(id),
            ChannelId::new("C"),
            OutboundKind::Delete {
                parts: vec![MessageId::new("m")],
            },
        )
        .queued_at(Timestamp(queued))
        .maybe_delivered(maybe)
    }

    #[test]
    fn reads_reach_back_to_the_op_s_acceptance_less_the_margin() {
        let index = EarlierPosts::started_at(Timestamp(100 * MIN));
        let first = op("a", 90 * MIN, true);
        assert_eq!(
            index.plan_at("c", &first, Timestamp(101 * MIN)),
            Lookup::Read {
                since: Timestamp(88 * MIN)
            }
        );
    }

    #[test]
    fn one_read_after_the_start_answers_every_op_of_an_earlier_process() {
        let index = EarlierPosts::started_at(Timestamp(100 * MIN));
        index.record(
            "c",
            Timestamp(88 * MIN),
            Timestamp(101 * MIN),
            [("a".to_owned(), MessageId::new("m1"))],
        );
        for (id, queued) in [("a", 90), ("b", 95), ("c", 99)] {
            assert_eq!(
                index.plan_at("c", &op(id, queued * MIN, true), Timestamp(102 * MIN)),
                Lookup::Known,
                "{id}"
            );
        }
        assert_eq!(index.find("c", "a"), Some(MessageId::new("m1")));
        assert_eq!(index.find("c", "b"), None);
        // Another conversation has its own reads.
        assert!(matches!(
            index.plan_at("d", &op("a", 90 * MIN, true), Timestamp(102 * MIN)),
            Lookup::Read { .. }
        ));
    }

    #[test]
    fn an_older_op_than_the_read_reached_reads_further_back() {
        let index = EarlierPosts::started_at(Timestamp(100 * MIN));
        index.record("c", Timestamp(88 * MIN), Timestamp(101 * MIN), []);
        assert_eq!(
            index.plan_at("c", &op("old", 50 * MIN, true), Timestamp(102 * MIN)),
            Lookup::Read {
                since: Timestamp(48 * MIN)
            }
        );
        index.record("c", Timestamp(48 * MIN), Timestamp(102 * MIN), []);
        assert_eq!(
            index.plan_at("c", &op("old", 50 * MIN, true), Timestamp(103 * MIN)),
            Lookup::Known
        );
    }

    #[test]
    fn an_op_attempted_by_this_process_rereads_only_what_is_newer() {
        let index = EarlierPosts::started_at(Timestamp(100 * MIN));
        index.record("c", Timestamp(88 * MIN), Timestamp(101 * MIN), []);
        let retried = op("r", 100 * MIN, false);
        assert!(!index.must_look(&retried));
        index.attempting_at(&retried.id, Timestamp(105 * MIN));
        assert!(index.must_look(&retried), "attempted here: looked for");
        assert_eq!(
            index.plan_at("c", &retried, Timestamp(106 * MIN)),
            Lookup::Read {
                since: Timestamp(99 * MIN)
            },
            "from the last read, less the margin"
        );
        index.record(
            "c",
            Timestamp(99 * MIN),
            Timestamp(106 * MIN),
            [("r".to_owned(), MessageId::new("m9"))],
        );
        assert_eq!(
            index.plan_at("c", &retried, Timestamp(107 * MIN)),
            Lookup::Known
        );
        assert_eq!(index.find("c", "r"), Some(MessageId::new("m9")));
    }

    #[test]
    fn a_read_with_a_gap_replaces_the_coverage() {
        let index = EarlierPosts::started_at(Timestamp(100 * MIN));
        index.record("c", Timestamp(88 * MIN), Timestamp(101 * MIN), []);
        index.record("c", Timestamp(150 * MIN), Timestamp(160 * MIN), []);
        assert!(matches!(
            index.plan_at("c", &op("a", 90 * MIN, true), Timestamp(161 * MIN)),
            Lookup::Read { since } if since == Timestamp(88 * MIN)
        ));
    }

    #[test]
    fn ops_without_an_acceptance_time_read_an_hour_before_the_start() {
        let index = EarlierPosts::started_at(Timestamp(100 * MIN));
        let mut legacy = op("l", 0, true);
        legacy.queued_at = None;
        assert_eq!(
            index.plan_at("c", &legacy, Timestamp(101 * MIN)),
            Lookup::Read {
                since: Timestamp(38 * MIN)
            }
        );
    }

    #[test]
    fn remembered_attempts_are_bounded() {
        let index = EarlierPosts::started_at(Timestamp(0));
        for n in 0..ATTEMPTS_CAP + 10 {
            index.attempting_at(&OpId::new(format!("o{n}")), Timestamp(1));
        }
        assert!(!index.attempted(&OpId::new("o0")));
        assert!(index.attempted(&OpId::new(format!("o{}", ATTEMPTS_CAP + 9))));
        assert_eq!(index.lock().attempts.len(), ATTEMPTS_CAP);
    }
}
