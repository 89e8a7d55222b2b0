//! Bridge supervision: each bridge's receive loop runs in its own task and is
//! restarted with backoff and jitter when it fails. A failing bridge never
//! takes the daemon down; its state shows in logs, STATUS and `/ready`.

use super::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use switchboard_model::{
    Bridge, BridgeContext, BridgeError, BridgeState, ChannelId, CursorStore, InboundSink,
    MemoryCursors,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// First restart delay; doubles per consecutive failure up to [`MAX_RESTART_DELAY`].
const FIRST_RESTART_DELAY: Duration = Duration::from_secs(1);
/// Longest restart delay.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(60);
/// A run that lasted this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Runs `bridge` until `shutdown` is cancelled, restarting it after failures.
pub async fn supervise(
    bridge: Arc<dyn Bridge>,
    sink: InboundSink,
    state: watch::Sender<BridgeState>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let (_, channels) = watch::channel(Vec::new());
    let cursors: Arc<dyn CursorStore> = Arc::new(MemoryCursors::default());
    supervise_with(bridge, sink, state, metrics, shutdown, cursors, channels).await;
}

/// [`supervise`] with the bridge's catch-up cursors and portal channels.
pub async fn supervise_with(
    bridge: Arc<dyn Bridge>,
    sink: InboundSink,
    state: watch::Sender<BridgeState>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    cursors: Arc<dyn CursorStore>,
    channels: watch::Receiver<Vec<ChannelId>>,
) {
    let id = bridge.id().clone();
    let mut failures: u32 = 0;
    loop {
        state.send_replace(BridgeState::Connecting);
        let ctx = BridgeContext::new(sink.clone(), shutdown.child_token(), state.clone())
            .with_cursors(cursors.clone())
            .with_channels(channels.clone());
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            result = bridge.run(ctx) => result,
            _ = shutdown.cancelled() => Ok(()),
        };
        if shutdown.is_cancelled() {
            state.send_replace(BridgeState::Stopped);
            return;
        }
        let error = match result {
            Ok(()) => BridgeError::transient("receive loop ended"),
            Err(e) => e,
        };
        if started.elapsed() >= STABLE_AFTER {
            failures = 0;
        }
        failures = failures.saturating_add(1);
        metrics.bridge_restarted(id.as_str());
        let reason = error.to_string();
        state.send_replace(match error {
            BridgeError::Auth { .. } => BridgeState::BadCredentials(reason.clone()),
            _ => BridgeState::TransientDisconnect(reason.clone()),
        });
        let delay = FIRST_RESTART_DELAY
            .saturating_mul(1u32 << failures.saturating_sub(1).min(6))
            .min(MAX_RESTART_DELAY)
            .mul_f64(0.8 + fastrand::f64() * 0.4);
        tracing::warn!(bridge = %id, error = %reason, restart_in_ms = delay.as_millis(), "Bridge stopped; restarting it.");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => {
                state.send_replace(BridgeState::Stopped);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_model::Capabilities;
    use switchboard_model::testing::{MemoryBridge, MemoryPlatform};

    fn restarts(metrics: &Metrics) -> u64 {
        metrics
            .render()
            .lines()
            .find(|l| l.starts_with("switchboard_bridge_restarts_total{bridge=\"mem:a\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_bridge_is_restarted_with_backoff_and_reported() {
        let platform = MemoryPlatform::new("mem:a");
        platform.require_token("right");
        let bridge: Arc<dyn Bridge> =
            Arc::new(MemoryBridge::new(platform.clone(), Capabilities::full()).with_token("wrong"));
        let (sink, _rx) = InboundSink::channel(8);
        let (state, mut states) = watch::channel(BridgeState::Connecting);
        let metrics = Arc::new(Metrics::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(supervise(
            bridge,
            sink,
            state,
            metrics.clone(),
            stop.clone(),
        ));

        states
            .wait_for(|s| matches!(s, BridgeState::BadCredentials(_)))
            .await
            .expect("state reported");
        // Restarts back off: about 1 s, 2 s, 4 s (±20 %), so three within 9 s, not five.
        tokio::time::sleep(Duration::from_secs(9)).await;
        let n = restarts(&metrics);
        assert!((3..=4).contains(&n), "restarts within 9 s: {n}");
        stop.cancel();
        task.await.expect("supervisor ends");
        assert_eq!(*states.borrow(), BridgeState::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_bridge_connects_and_stops_on_shutdown() {
        let platform = MemoryPlatform::new("mem:a");
        let bridge: Arc<dyn Bridge> = Arc::new(MemoryBridge::new(platform, Capabilities::full()));
        let (sink, _rx) = InboundSink::channel(8);
        let (state, mut states) = watch::channel(BridgeState::Connecting);
        let metrics = Arc::new(Metrics::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(supervise(
            bridge,
            sink,
            state,
            metrics.clone(),
            stop.clone(),
        ));
        states
            .wait_for(|s| *s == BridgeState::Connected)
            .await
            .expect("connected");
        stop.cancel();
        task.await.expect("supervisor ends");
        assert_eq!(*states.borrow(), BridgeState::Stopped);
        assert_eq!(restarts(&metrics), 0);
    }
}
