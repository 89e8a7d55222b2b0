//! Test support shared by every crate of the workspace (feature `testing`).
//!
//! Two pieces:
//!
//! - [`memory`]: a simulated chat platform ([`MemoryPlatform`]) and the
//!   [`Bridge`](crate::Bridge) that talks to it ([`MemoryBridge`]). Tests
//!   program it (failures, echoes, missing channels) and read back what the
//!   relay delivered. Its state can live in a directory of append-only
//!   JSON-lines files, so a test process and a daemon child process share one
//!   platform, and a daemon killed with SIGKILL finds it again on restart.
//! - [`conformance`]: the checks every bridge must pass, run through a small
//!   [`ConformanceHarness`] that gives the suite a platform-side view.
//!
//! Nothing here is meant for production paths: the files are not fsynced and
//! failure programming lives in the memory of the process that set it.

pub mod conformance;
pub mod memory;

pub use conformance::{ConformanceHarness, MemoryHarness, run_conformance};
pub use memory::{
    Attempt, DeliveryKind, DeliveryRecord, EchoMode, FailurePredicate, MeetingRecord, MemoryBridge,
    MemoryPlatform, PlatformMessage,
};

use crate::bridge::MediaSource;
use crate::error::BridgeError;
use crate::event::Attachment;
use crate::ids::BridgeId;
use async_trait::async_trait;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A [`MediaSource`] that has no files: every fetch is `NotFound`. For
/// deliveries that carry no attachments.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMedia;

#[async_trait]
impl MediaSource for NoMedia {
    async fn fetch(
        &self,
        origin: &BridgeId,
        attachment: &Attachment,
    ) -> Result<Vec<u8>, BridgeError> {
        Err(BridgeError::not_found(format!(
            "file {} on {origin}",
            attachment.id
        )))
    }
}

/// An id no other call, process or restart produces: `prefix-<process>-<n>`,
/// where `<process>` is the process id and its start time in nanoseconds (so a
/// restarted daemon that gets the same pid still differs) and `n` counts up.
pub(crate) fn unique_id(prefix: &str) -> String {
    static PROCESS: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = PROCESS.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{:x}.{nanos:x}", std::process::id())
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{process}-{n}")
}
