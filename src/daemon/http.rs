//! The daemon's operational HTTP listener: `/health`, `/ready` and `/metrics`.
//!
//! - `GET /health`: `200 ok` for as long as the process serves requests
//!   (liveness).
//! - `GET /ready`: `200` once every bridge has connected and the daemon is
//!   not draining, `503` otherwise; both with a JSON body
//!   `{"ready":true,"bridges":{"slack:acme":"connected",...}}`.
//! - `GET /metrics`: the Prometheus text exposition format 0.0.4.
//!
//! - Bridge endpoints (Slack's Events API, Teams notifications, the Matrix
//!   application-service API): any path under a prefix a bridge registered
//!   goes to that bridge's [`HttpEndpoint`], with the body read whole up to
//!   [`switchboard_model::http::MAX_BODY`] (413 beyond).
//!
//! Anything else is 404 (405 for another method on a known path). The
//! operational routes read no body, and theirs are capped at 4 KiB.

use crate::daemon::metrics::Metrics;
use crate::daemon::status::BridgeStatuses;
use axum::Router;
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use switchboard_model::{HttpEndpoint, HttpRequest};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The largest request body accepted, in bytes.
const MAX_BODY: usize = 4 * 1024;

/// The content type Prometheus expects for the text format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct HttpState {
    /// Rendered at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Read by `/ready`.
    pub statuses: Arc<BridgeStatuses>,
    /// Bridge endpoints by path prefix.
    pub endpoints: Arc<Vec<(String, Arc<dyn HttpEndpoint>)>>,
}

/// The routes, for [`serve`] (and for tests that want to call them directly).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .fallback(bridge_endpoint)
        .with_state(state)
}

/// Serves the routes on `listener` until `shutdown` is cancelled, then stops
/// accepting, lets requests in flight finish and returns.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    info!(%address, "HTTP listener started.");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    info!(%address, "HTTP listener stopped.");
    Ok(())
}

/// `GET /health`
async fn health() -> &'static str {
    "ok"
}

/// `GET /ready`
async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    let ready = state.statuses.is_ready();
    let bridges: serde_json::Map<String, serde_json::Value> = state
        .statuses
        .snapshot()
        .into_iter()
        .map(|(id, bridge_state)| (id.to_string(), bridge_state.to_string().into()))
        .collect();
    let body = serde_json::json!({ "ready": ready, "bridges": bridges }).to_string();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

/// Anything else: a bridge's endpoint if one claims the path, else 404.
async fn bridge_endpoint(State(state): State<HttpState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let endpoint = state
        .endpoints
        .iter()
        .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, endpoint)| endpoint.clone());
    let Some(endpoint) = endpoint else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, switchboard_model::http::MAX_BODY).await {
        Ok(body) => body.to_vec(),
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let headers = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let request = HttpRequest::new(
        parts.method.as_str(),
        path,
        parts.uri.query().unwrap_or_default(),
        headers,
        body,
    );
    let answer = endpoint.handle(request).await;
    let mut response = Response::new(axum::body::Body::from(answer.body));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            header::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// `GET /metrics`
async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::net::SocketAddr;
    use std::time::Duration;
    use switchboard_model::{BridgeId, BridgeState};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::task::JoinHandle;
    use tokio::time::timeout;

    /// A response as the raw client saw it.
    #[derive(Debug)]
    struct Response {
        status: u16,
        /// Header names lower-cased.
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Response {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }

        fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).expect("a JSON body")
        }
    }

    /// Sends one HTTP/1.1 request with `Connection: close` and reads the
    /// whole response. Enough for bodies sent with a Content-Length.
    async fn request(address: SocketAddr, method: &str, path: &str, body: &str) -> Response {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write request");
        let mut raw = Vec::new();
        timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
            .await
            .expect("response within 5 s")
            .expect("read response");
        let raw = String::from_utf8(raw).expect("utf-8 response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("end of headers");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Response {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    async fn get(address: SocketAddr, path: &str) -> Response {
        request(address, "GET", path, "").await
    }

    struct Running {
        address: SocketAddr,
        shutdown: CancellationToken,
        task: JoinHandle<std::io::Result<()>>,
        state: HttpState,
    }

    async fn start() -> Running {
        let metrics = Arc::new(Metrics::new());
        let statuses = Arc::new(BridgeStatuses::with_metrics(Arc::clone(&metrics)));
        let state = HttpState {
            metrics,
            statuses,
            endpoints: Arc::new(vec![
                (
                    "/bridge/".to_owned(),
                    Arc::new(Echo("short")) as Arc<dyn HttpEndpoint>,
                ),
                (
                    "/bridge/long/".to_owned(),
                    Arc::new(Echo("long")) as Arc<dyn HttpEndpoint>,
                ),
            ]),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, state.clone(), shutdown.clone()));
        Running {
            address,
            shutdown,
            task,
            state,
        }
    }

    impl Running {
        async fn stop(self) {
            self.shutdown.cancel();
            timeout(Duration::from_secs(5), self.task)
                .await
                .expect("serve returned after shutdown")
                .expect("join")
                .expect("serve succeeded");
        }
    }

    #[tokio::test]
    async fn health_is_ok() {
        let server = start().await;
        let response = get(server.address, "/health").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "ok");
        server.stop().await;
    }

    #[tokio::test]
    async fn ready_flips_with_bridges_and_draining() {
        let server = start().await;
        let statuses = &server.state.statuses;
        let left = statuses.register(BridgeId::new("memory:left"));
        let right = statuses.register(BridgeId::new("memory:right"));

        let response = get(server.address, "/ready").await;
        assert_eq!(response.status, 503);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(
            response.json(),
            json!({"ready": false, "bridges": {"memory:left": "connecting", "memory:right": "connecting"}})
        );

        left.send_replace(BridgeState::Connected);
        right.send_replace(BridgeState::Connected);
        let response = get(server.address, "/ready").await;
        assert_eq!(response.status, 200);
        assert_eq!(
            response.json(),
            json!({"ready": true, "bridges": {"memory:left": "connected", "memory:right": "connected"}})
        );

        // A later transient disconnect shows, but readiness is a latch.
        right.send_replace(BridgeState::TransientDisconnect("reset".into()));
        let response = get(server.address, "/ready").await;
        assert_eq!(response.status, 200);
        assert_eq!(
            response.json()["bridges"]["memory:right"],
            "transient_disconnect (reset)"
        );

        statuses.set_draining();
        let response = get(server.address, "/ready").await;
        assert_eq!(response.status, 503);
        assert_eq!(response.json()["ready"], false);
        server.stop().await;
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let server = start().await;
        server.state.metrics.inbound("memory:left", "message");
        server.state.metrics.set_outbox_depth(2);
        let response = get(server.address, "/metrics").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some(METRICS_CONTENT_TYPE));
        assert!(
            response
                .body
                .contains("switchboard_inbound_total{bridge=\"memory:left\",kind=\"message\"} 1\n")
        );
        assert!(response.body.contains("\nswitchboard_outbox_depth 2\n"));
        server.stop().await;
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let server = start().await;
        assert_eq!(get(server.address, "/").await.status, 404);
        assert_eq!(get(server.address, "/admin").await.status, 404);
        let response = request(server.address, "POST", "/health", "x").await;
        assert_eq!(response.status, 405);
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_ends_serve_with_an_idle_connection_open() {
        let server = start().await;
        // A keep-alive client that sent nothing must not hold shutdown up.
        let _idle = TcpStream::connect(server.address).await.expect("connect");
        assert_eq!(get(server.address, "/health").await.status, 200);
        let address = server.address;
        server.stop().await;
        assert!(
            TcpStream::connect(address).await.is_err(),
            "still accepting after shutdown"
        );
    }

    /// An endpoint that answers with its name, the method, path, query, a
    /// header and the body length.
    #[derive(Debug)]
    struct Echo(&'static str);

    #[async_trait::async_trait]
    impl HttpEndpoint for Echo {
        async fn handle(&self, r: HttpRequest) -> switchboard_model::HttpResponse {
            let text = format!(
                "{} {} {} {} {} {}",
                self.0,
                r.method,
                r.path,
                r.query,
                r.header("X-Test").unwrap_or("-"),
                r.body.len()
            );
            switchboard_model::HttpResponse::text(202, text).with_header("x-echo", "yes")
        }
    }

    #[tokio::test]
    async fn bridge_endpoints_get_their_prefix_with_the_whole_body() {
        let running = start().await;
        let r = request(running.address, "POST", "/bridge/events?a=1", "hello").await;
        assert_eq!(r.status, 202);
        assert_eq!(r.body, "short POST /bridge/events a=1 - 5");
        assert_eq!(r.header("x-echo"), Some("yes"));
        let r = request(running.address, "PUT", "/bridge/long/x", "").await;
        assert_eq!(
            r.body, "long PUT /bridge/long/x  - 0",
            "the longest prefix wins"
        );
        // Bodies above 4 KiB reach endpoints (unlike the operational routes) ...
        let big = "x".repeat(100_000);
        let r = request(running.address, "POST", "/bridge/events", &big).await;
        assert_eq!(r.body, "short POST /bridge/events  - 100000");
        // ... up to the cap.
        let huge = "x".repeat(switchboard_model::http::MAX_BODY + 1);
        let r = request(running.address, "POST", "/bridge/events", &huge).await;
        assert_eq!(r.status, 413);
        assert_eq!(
            request(running.address, "GET", "/elsewhere", "")
                .await
                .status,
            404
        );
        running.stop().await;
    }
}
