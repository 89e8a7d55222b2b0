//! The free-space guard: refuse new intake before the disk under the store
//! fills up, rather than fail half-way through a write. Refused events are not
//! acknowledged, so the platforms redeliver them once space returns.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How long one free-space reading is trusted.
const RECHECK: Duration = Duration::from_secs(1);

/// Checks that the file system holding the store keeps a minimum free.
#[derive(Debug)]
pub struct SpaceGuard {
    path: PathBuf,
    min_free: AtomicU64,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl SpaceGuard {
    /// A guard for the file system holding `path`.
    pub fn new(path: impl Into<PathBuf>, min_free: u64) -> Self {
        SpaceGuard {
            path: path.into(),
            min_free: AtomicU64::new(min_free),
            last: Mutex::new(None),
        }
    }

    /// Changes the minimum (configuration reload).
    pub fn set_min_free(&self, min_free: u64) {
        self.min_free.store(min_free, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Ok while enough space is free; otherwise a message for logs and for the
    /// connector's refusal. Re-reads the file system at most once a second.
    pub fn check(&self) -> Result<(), String> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, verdict)) = last.as_ref()
            && at.elapsed() < RECHECK
        {
            return verdict.clone();
        }
        let min = self.min_free.load(Ordering::Relaxed);
        let verdict = match free_bytes(&self.path) {
            Ok(free) if free >= min => Ok(()),
            Ok(free) => Err(format!(
                "the store's disk has {} MiB free, below the minimum of {} MiB",
                free / (1024 * 1024),
                min / (1024 * 1024)
            )),
            Err(e) => Err(format!(
                "cannot read the free space of {}: {e}",
                self.path.display()
            )),
        };
        let changed = last.as_ref().map(|(_, v)| v.is_ok()) != Some(verdict.is_ok());
        if changed {
            match &verdict {
                Ok(()) if last.is_some() => {
                    tracing::info!("Disk space is back; accepting events again.")
                }
                Ok(()) => {}
                Err(why) => {
                    tracing::error!(reason = %why, "Refusing new events until disk space is freed; platforms will redeliver them.")
                }
            }
        }
        *last = Some((Instant::now(), verdict.clone()));
        verdict
    }
}

/// Bytes available to unprivileged writers on the file system holding `path`.
pub fn free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_free_space() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(free_bytes(dir.path()).expect("statvfs") > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_below_the_minimum_and_recovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let guard = SpaceGuard::new(dir.path(), u64::MAX);
        let err = guard.check().expect_err("nothing has u64::MAX free");
        assert!(err.contains("below the minimum"), "{err}");
        guard.set_min_free(0);
        assert!(guard.check().is_ok());
        // Cached for a second.
        guard.min_free.store(u64::MAX, Ordering::Relaxed);
        assert!(guard.check().is_ok());
        tokio::time::advance(RECHECK).await;
        assert!(guard.check().is_err());
    }
}
