//! The HTTP server: routes, and an accept loop that can refuse connections or drop one
//! mid-request (fault injection) — things `axum::serve` cannot do — while serving HTTP/1.1
//! with upgrades for Socket Mode.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::Sim;
use crate::web::{files, oauth};

/// Lets a handler drop its own connection (fault injection).
#[derive(Clone, Debug)]
pub struct ConnCtl {
    kill: CancellationToken,
}

impl ConnCtl {
    /// Closes the connection without answering.
    pub fn kill(&self) {
        self.kill.cancel();
    }
}

/// A 1×1 transparent PNG, served for every avatar and icon URL the simulator hands out.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

async fn avatar() -> Response {
    let mut r = Response::new(Body::from(PNG));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    r
}

async fn not_found() -> Response {
    (axum::http::StatusCode::NOT_FOUND, "Not Found").into_response()
}

/// Every route the simulator serves.
pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/api/{method}", any(crate::web::handle))
        .route("/link", get(crate::socket::link))
        .route("/link/", get(crate::socket::link))
        .route("/upload/v1/{ticket}", post(files::upload))
        .route("/files-pri/{*rest}", get(files::download))
        .route("/oauth/v2/authorize", get(oauth::authorize))
        .route(
            "/oauth/v2/authorize/approve",
            get(oauth::approve).post(oauth::approve),
        )
        .route("/avatars/{name}", get(avatar))
        .route(
            "/commands/{team}/{n}/{secret}",
            post(crate::commands::response_url),
        )
        .merge(crate::admin::routes())
        .fallback(not_found)
        .with_state(sim)
}

/// Accepts connections until shutdown, applying connection-level faults.
pub async fn serve(listener: TcpListener, router: Router, sim: Arc<Sim>) {
    let shutdown = sim.shutdown.clone();
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "Accept failed; retrying.");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        if sim.faults.refusing() {
            sim.counters
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            // Dropping at once makes the client see a reset / closed connection.
            drop(stream);
            continue;
        }
        let kill = CancellationToken::new();
        let ctl = ConnCtl { kill: kill.clone() };
        let router = router.clone();
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ctl.clone());
            router.clone().oneshot(req.map(Body::new))
        });
        let shutdown = shutdown.clone();
        sim.tracker.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = kill.cancelled() => {}
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
        });
    }
}
