//! systemd notifications: READY=1, STATUS=, WATCHDOG=1 and STOPPING=1.
//!
//! The unit runs with `Type=notify` and `WatchdogSec=`: systemd considers the
//! daemon started only once it sends READY=1 (after every bridge connected),
//! shows the last STATUS= line in `systemctl status`, and restarts the daemon
//! if WATCHDOG=1 stops arriving. See sd_notify(3):
//! <https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html>
//!
//! The protocol is one datagram of `KEY=VALUE` lines sent to the Unix socket
//! named by `NOTIFY_SOCKET`. Outside systemd that variable is unset and every
//! call here does nothing. We never unset the variable (the `unset_env`
//! argument of the `sd-notify` crate is always `false`): later notifications
//! need it, and changing the environment of a threaded process is unsound.
//!
//! Notifying is best effort: a failure is logged at WARN and otherwise
//! ignored, since the daemon relays chat just as well without systemd
//! knowing about it.

use crate::daemon::status::BridgeStatuses;
use sd_notify::NotifyState;
use std::fmt::Write as _;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Sends notifications to the service manager, or nowhere outside systemd.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Notifier {
    target: Target,
    watchdog: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Target {
    /// Not under systemd: notifications go nowhere.
    Off,
    /// The socket named by `NOTIFY_SOCKET`, through the `sd-notify` crate.
    Env,
    /// A socket path given explicitly (tests, or a supervisor that is not systemd).
    Socket(PathBuf),
}

impl Notifier {
    /// The notifier systemd set up for this process: enabled when
    /// `NOTIFY_SOCKET` is set, with a watchdog interval of half `WATCHDOG_USEC`
    /// when that is set and `WATCHDOG_PID` is this process. Reads the
    /// environment without changing it.
    pub fn from_env() -> Self {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return Notifier::disabled();
        }
        let mut usec = 0u64;
        let watchdog = (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec / 2));
        Notifier {
            target: Target::Env,
            watchdog,
        }
    }

    /// A notifier that does nothing.
    pub fn disabled() -> Self {
        Notifier {
            target: Target::Off,
            watchdog: None,
        }
    }

    /// A notifier that sends to the datagram socket at `path` (with no
    /// watchdog unless [`Notifier::with_watchdog_interval`] sets one).
    pub fn with_socket(path: impl Into<PathBuf>) -> Self {
        Notifier {
            target: Target::Socket(path.into()),
            watchdog: None,
        }
    }

    /// The same notifier, pinging the watchdog every `interval` in
    /// [`run_watchdog`] (`None`: never).
    pub fn with_watchdog_interval(mut self, interval: Option<Duration>) -> Self {
        self.watchdog = interval;
        self
    }

    /// Whether notifications go anywhere.
    pub fn is_enabled(&self) -> bool {
        !matches!(self.target, Target::Off)
    }

    /// How often to send WATCHDOG=1: half the watchdog timeout, as
    /// sd_watchdog_enabled(3) recommends; `None` when there is no watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `states` in one datagram. The building block of the methods below,
    /// which log failures instead of returning them.
    pub fn notify(&self, states: &[NotifyState<'_>]) -> io::Result<()> {
        match &self.target {
            Target::Off => Ok(()),
            Target::Env => sd_notify::notify(false, states),
            Target::Socket(path) => {
                let mut message = String::new();
                for state in states {
                    let _ = writeln!(message, "{state}");
                }
                let socket = UnixDatagram::unbound()?;
                let sent = socket.send_to(message.as_bytes(), path)?;
                if sent == message.len() {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "incomplete notification",
                    ))
                }
            }
        }
    }

    /// READY=1: startup is finished.
    pub fn ready(&self) {
        self.notify_logged(&[NotifyState::Ready]);
    }

    /// STATUS=`status`, shown by `systemctl status`. Newlines become spaces,
    /// since each line of a notification is a separate key.
    pub fn status(&self, status: &str) {
        let status = one_line(status);
        self.notify_logged(&[NotifyState::Status(&status)]);
    }

    /// STOPPING=1: the daemon is shutting down.
    pub fn stopping(&self) {
        self.notify_logged(&[NotifyState::Stopping]);
    }

    /// WATCHDOG=1: the daemon is alive.
    pub fn watchdog(&self) {
        self.notify_logged(&[NotifyState::Watchdog]);
    }

    fn notify_logged(&self, states: &[NotifyState<'_>]) {
        if let Err(e) = self.notify(states) {
            warn!(error = %e, "Could not notify the service manager.");
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Sends WATCHDOG=1 every [`Notifier::watchdog_interval`] until `shutdown` is
/// cancelled; returns at once when there is no watchdog.
///
/// Cancel `shutdown` only when the process is about to exit, not when
/// draining starts, so that a long drain is not mistaken for a hang.
pub async fn run_watchdog(notifier: Notifier, shutdown: CancellationToken) {
    let Some(every) = notifier
        .watchdog_interval()
        .filter(|_| notifier.is_enabled())
    else {
        return;
    };
    debug!(
        interval_ms = every.as_millis(),
        "Pinging the systemd watchdog."
    );
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => notifier.watchdog(),
        }
    }
}

/// Keeps systemd's STATUS= line in step with the bridges' states, and sends
/// READY=1 (with the status, in one datagram) once, when `statuses` first
/// says the daemon is ready. Runs until `shutdown` is cancelled; returns at
/// once when notifications go nowhere.
pub async fn run_status(
    notifier: Notifier,
    statuses: Arc<BridgeStatuses>,
    shutdown: CancellationToken,
) {
    if !notifier.is_enabled() {
        return;
    }
    let mut ready_sent = false;
    let mut last_status: Option<String> = None;
    loop {
        // Subscribe before reading, so a change in between wakes us.
        let changed = statuses.changed();
        let status = one_line(&statuses.summary());
        if !ready_sent && statuses.is_ready() {
            notifier.notify_logged(&[NotifyState::Ready, NotifyState::Status(&status)]);
            debug!("Told systemd the daemon is ready.");
            ready_sent = true;
            last_status = Some(status);
        } else if last_status.as_deref() != Some(status.as_str()) {
            notifier.status(&status);
            last_status = Some(status);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = changed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_model::{BridgeId, BridgeState};
    use tokio::time::timeout;

    /// A socket standing in for systemd's, in a temporary directory.
    struct FakeSystemd {
        _dir: tempfile::TempDir,
        path: PathBuf,
        socket: tokio::net::UnixDatagram,
    }

    impl FakeSystemd {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("notify.sock");
            let socket = tokio::net::UnixDatagram::bind(&path).expect("bind notify socket");
            FakeSystemd {
                _dir: dir,
                path,
                socket,
            }
        }

        fn notifier(&self) -> Notifier {
            Notifier::with_socket(&self.path)
        }

        async fn recv(&self) -> String {
            let mut buf = vec![0u8; 4096];
            let n = timeout(Duration::from_secs(5), self.socket.recv(&mut buf))
                .await
                .expect("no notification within 5 s")
                .expect("recv");
            String::from_utf8(buf[..n].to_vec()).expect("utf-8 notification")
        }

        async fn nothing_more(&self) {
            let mut buf = vec![0u8; 4096];
            let got = timeout(Duration::from_millis(100), self.socket.recv(&mut buf)).await;
            assert!(got.is_err(), "unexpected notification: {got:?}");
        }
    }

    #[tokio::test]
    async fn sends_each_notification() {
        let systemd = FakeSystemd::new();
        let notifier = systemd.notifier();
        assert!(notifier.is_enabled());
        notifier.ready();
        assert_eq!(systemd.recv().await, "READY=1\n");
        notifier.status("memory:a connected\nSTOPPING=1");
        assert_eq!(
            systemd.recv().await,
            "STATUS=memory:a connected STOPPING=1\n"
        );
        notifier.watchdog();
        assert_eq!(systemd.recv().await, "WATCHDOG=1\n");
        notifier.stopping();
        assert_eq!(systemd.recv().await, "STOPPING=1\n");
    }

    #[tokio::test]
    async fn a_missing_socket_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("temp dir");
        let notifier = Notifier::with_socket(dir.path().join("absent.sock"));
        assert!(notifier.notify(&[NotifyState::Ready]).is_err());
        notifier.ready(); // logged, not returned
    }

    #[tokio::test]
    async fn disabled_does_nothing() {
        let notifier = Notifier::disabled();
        assert!(!notifier.is_enabled());
        assert_eq!(notifier.watchdog_interval(), None);
        assert!(notifier.notify(&[NotifyState::Ready]).is_ok());
        let shutdown = CancellationToken::new();
        // Both return at once rather than waiting for shutdown.
        timeout(
            Duration::from_secs(5),
            run_watchdog(notifier.clone(), shutdown.clone()),
        )
        .await
        .expect("run_watchdog returned");
        let statuses = Arc::new(BridgeStatuses::new());
        timeout(
            Duration::from_secs(5),
            run_status(notifier, statuses, shutdown),
        )
        .await
        .expect("run_status returned");
    }

    #[tokio::test]
    async fn watchdog_pings_until_shutdown() {
        let systemd = FakeSystemd::new();
        let notifier = systemd
            .notifier()
            .with_watchdog_interval(Some(Duration::from_millis(20)));
        assert_eq!(
            notifier.watchdog_interval(),
            Some(Duration::from_millis(20))
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_watchdog(notifier, shutdown.clone()));
        for _ in 0..3 {
            assert_eq!(systemd.recv().await, "WATCHDOG=1\n");
        }
        shutdown.cancel();
        timeout(Duration::from_secs(5), task)
            .await
            .expect("watchdog stopped")
            .expect("join");
    }

    #[tokio::test]
    async fn status_follows_bridges_and_ready_is_sent_once() {
        let systemd = FakeSystemd::new();
        let statuses = Arc::new(BridgeStatuses::new());
        let a = statuses.register(BridgeId::new("memory:a"));
        let b = statuses.register(BridgeId::new("memory:b"));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_status(
            systemd.notifier(),
            Arc::clone(&statuses),
            shutdown.clone(),
        ));

        assert_eq!(
            systemd.recv().await,
            "STATUS=memory:a connecting, memory:b connecting\n"
        );
        a.send_replace(BridgeState::Connected);
        assert_eq!(
            systemd.recv().await,
            "STATUS=memory:a connected, memory:b connecting\n"
        );
        b.send_replace(BridgeState::Connected);
        assert_eq!(
            systemd.recv().await,
            "READY=1\nSTATUS=memory:a connected, memory:b connected\n"
        );
        b.send_replace(BridgeState::TransientDisconnect("reset".into()));
        assert_eq!(
            systemd.recv().await,
            "STATUS=memory:a connected, memory:b transient_disconnect (reset)\n"
        );
        b.send_replace(BridgeState::Connected);
        assert_eq!(
            systemd.recv().await,
            "STATUS=memory:a connected, memory:b connected\n"
        );
        statuses.set_draining();
        assert_eq!(
            systemd.recv().await,
            "STATUS=draining; memory:a connected, memory:b connected\n"
        );
        systemd.nothing_more().await;

        shutdown.cancel();
        timeout(Duration::from_secs(5), task)
            .await
            .expect("status task stopped")
            .expect("join");
    }
}
