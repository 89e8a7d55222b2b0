//! Switchboard: one conversation across Slack, Microsoft Teams and Matrix.
//!
//! The binary (`src/main.rs`) only parses arguments and turns signals into
//! [`Controls`]; [`run`] does the work, so tests can run the daemon in-process.
//! See ARCHITECTURE.md for the map.

pub mod bridges;
pub mod config;
pub mod convert;
pub mod daemon;
pub mod demo;
pub mod login;
pub mod matrix_setup;
pub mod relay;
pub mod store;

use anyhow::Context;
use config::Config;
use daemon::http::{self, HttpState};
use daemon::metrics::Metrics;
use daemon::notify::{self, Notifier};
use daemon::status::BridgeStatuses;
use relay::{Relay, RelaySetup};
use std::collections::HashMap;
use std::sync::Arc;
use store::login::DbLinkedAccounts;
use store::space::SpaceGuard;
use store::{Db, DbCursors, SledStore, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the outside world steers a running daemon.
#[derive(Debug)]
pub struct Controls {
    /// Cancel to stop: intake stops, the outbox drains within the grace period.
    pub shutdown: CancellationToken,
    /// A newly loaded configuration (SIGHUP): portals and relay settings apply at once.
    pub reload: mpsc::Receiver<Config>,
    /// Where systemd notifications go.
    pub notifier: Notifier,
}

impl Controls {
    /// Controls with no reload source and no systemd, for tests.
    pub fn new(shutdown: CancellationToken) -> (Controls, mpsc::Sender<Config>) {
        let (tx, reload) = mpsc::channel(4);
        (
            Controls {
                shutdown,
                reload,
                notifier: Notifier::disabled(),
            },
            tx,
        )
    }
}

/// Runs the daemon until `controls.shutdown` is cancelled, then drains and
/// stops. Returns an error when it cannot start (store, listener, bridges).
pub async fn run(config: Config, controls: Controls) -> anyhow::Result<()> {
    let Controls {
        shutdown,
        mut reload,
        notifier,
    } = controls;
    std::fs::create_dir_all(&config.store.path).with_context(|| {
        format!(
            "cannot create the store directory {}",
            config.store.path.display()
        )
    })?;
    let store: Arc<dyn Store> =
        Arc::new(SledStore::open(&config.store.path).with_context(|| {
            format!("cannot open the store at {}", config.store.path.display())
        })?);
    let db = Db::open(store).context("cannot open the store")?;
    let space = Arc::new(SpaceGuard::new(
        &config.store.path,
        config.store.min_free_bytes,
    ));
    let metrics = Arc::new(Metrics::new());
    let statuses = Arc::new(BridgeStatuses::with_metrics(metrics.clone()));
    let secrets = store::login::store_key(config.store.key_file.as_deref())
        .context("cannot read the store key")?;
    let mut accounts = HashMap::new();
    let mut bridges = Vec::new();
    for bridge in &config.bridges {
        let linked = match &secrets {
            Some(secrets) => {
                let linked = DbLinkedAccounts::load(db.clone(), secrets.clone(), bridge.id.clone())
                    .with_context(|| format!("cannot read the linked accounts of {}", bridge.id))?;
                let linked = Arc::new(linked);
                accounts.insert(bridge.id.clone(), linked.clone());
                Some(linked as Arc<dyn switchboard_model::LinkedAccounts>)
            }
            None => None,
        };
        bridges.push(bridges::build(bridge, config.http.listen, linked)?);
    }
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;

    let relay = Relay::start(RelaySetup {
        db: db.clone(),
        bridges: bridges.clone(),
        portals: config.portals.clone(),
        config: config.relay.clone(),
        dedup_retention: config.store.dedup_retention,
        metrics: metrics.clone(),
        space: Some(space.clone()),
        secrets: secrets.clone(),
    })
    .context("cannot start the relay")?;
    relay.set_linked_accounts(accounts.clone());

    let tasks = TaskTracker::new();
    let stop_bridges = CancellationToken::new();
    let stop_daemon = CancellationToken::new();
    for bridge in &bridges {
        let state = statuses.register(bridge.id().clone());
        // Updated by the relay on reload, link and unlink.
        let channels = relay.channels_watch(bridge.id());
        let cursors = Arc::new(DbCursors::new(db.clone(), bridge.id().clone()));
        tasks.spawn(daemon::supervise::supervise_with(
            bridge.clone(),
            relay.sink(),
            state,
            metrics.clone(),
            stop_bridges.clone(),
            cursors,
            channels,
        ));
    }
    let mut endpoints: Vec<(String, Arc<dyn switchboard_model::HttpEndpoint>)> =
        bridges.iter().flat_map(|b| b.http_endpoints()).collect();
    if let Some(token) = &config.http.admin_token {
        let admin = daemon::admin::Admin::new(
            token.expose().to_owned(),
            db.clone(),
            secrets.clone(),
            accounts,
        )
        .with_relay(relay.clone());
        endpoints.push(("/admin/".to_owned(), Arc::new(admin)));
    }
    let http_state = HttpState {
        metrics: metrics.clone(),
        statuses: statuses.clone(),
        endpoints: Arc::new(endpoints),
    };
    let http_task = tokio::spawn(http::serve(listener, http_state, stop_daemon.clone()));
    tasks.spawn(notify::run_status(
        notifier.clone(),
        statuses.clone(),
        stop_daemon.clone(),
    ));
    tasks.spawn(notify::run_watchdog(notifier.clone(), stop_daemon.clone()));
    tracing::info!(
        bridges = bridges.len(),
        portals = relay.portals().len(),
        listen = %config.http.listen,
        "Switchboard started."
    );

    let mut current = config;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(new) = reload.recv() => {
                if new.bridges != current.bridges {
                    tracing::warn!("Bridge settings changed; they take effect at the next restart.");
                }
                space.set_min_free(new.store.min_free_bytes);
                match relay.reload(&new.portals, new.relay.clone()) {
                    Ok(()) => current = new,
                    Err(e) => tracing::error!(error = %e, "Reload failed; keeping the previous portals."),
                }
            }
        }
    }

    // Stop: no new intake, drain what was accepted, flush.
    notifier.stopping();
    statuses.set_draining();
    let depth = relay.outbox_depth();
    tracing::info!(
        pending = depth,
        grace_ms = current.relay.drain_grace.as_millis(),
        "Stopping: draining the outbox."
    );
    relay.stop_intake();
    stop_bridges.cancel();
    if !relay.drain(current.relay.drain_grace).await {
        tracing::warn!(
            pending = relay.outbox_depth(),
            "Drain grace period ended; the rest stays in the outbox for the next start."
        );
    }
    relay
        .shutdown()
        .await
        .context("store flush at shutdown failed")?;
    stop_daemon.cancel();
    tasks.close();
    tasks.wait().await;
    match http_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "HTTP listener failed."),
        Err(e) => tracing::warn!(error = %e, "HTTP listener task failed."),
    }
    tracing::info!("Switchboard stopped.");
    Ok(())
}
