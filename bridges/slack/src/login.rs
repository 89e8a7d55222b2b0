//! Linking a person's own Slack account (`switchboard login slack`), with
//! OAuth v2 and a loopback redirect
//! (https://docs.slack.dev/authentication/installing-with-oauth).
//!
//! [`begin`] binds a listener on loopback and builds the authorize URL with
//! the user scopes in [`crate::manifest::USER_SCOPES`] and a random `state`;
//! the person opens it in a browser and approves; Slack redirects the browser
//! to `http://127.0.0.1:PORT/callback?code=…&state=…`; [`PendingLogin::finish`]
//! answers the browser, checks the state and exchanges the code with
//! `oauth.v2.access` for the person's user token.

use crate::config::ChatLogin;
use crate::web::{SlackApi, Token};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_model::{
    BridgeError, BridgeId, HttpEndpoint, HttpRequest, HttpResponse, LinkedAccount, LoginFlow,
    UserId,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The app's OAuth settings.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: Token,
    /// The authorize page, `https://slack.com/oauth/v2/authorize`.
    pub authorize_url: String,
    /// The Web API client (for `oauth.v2.access`).
    pub api: SlackApi,
}

/// A login waiting for the browser to come back.
#[derive(Debug)]
pub struct PendingLogin {
    /// The URL the person opens.
    pub url: String,
    listener: TcpListener,
    state: String,
    redirect_uri: String,
}

/// Starts a login: binds `listen` (loopback) and builds the authorize URL.
pub async fn begin(app: &OAuthApp, listen: SocketAddr) -> std::io::Result<PendingLogin> {
    let listener = TcpListener::bind(listen).await?;
    let port = listener.local_addr()?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let state = new_state();
    Ok(PendingLogin {
        url: authorize_url(&app.authorize_url, &app.client_id, &redirect_uri, &state),
        listener,
        state,
        redirect_uri,
    })
}

/// A random `state` for one login.
fn new_state() -> String {
    (0..32).map(|_| fastrand::alphanumeric()).collect()
}

/// The authorize page's URL asking for the user scopes.
fn authorize_url(page: &str, client_id: &str, redirect_uri: &str, state: &str) -> String {
    let query = [
        ("client_id", client_id),
        ("user_scope", &crate::manifest::USER_SCOPES.join(",")),
        ("redirect_uri", redirect_uri),
        ("state", state),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    format!("{page}?{query}")
}

/// oauth.v2.access: the person's user token for `code`
/// (https://docs.slack.dev/reference/methods/oauth.v2.access).
async fn exchange(
    api: &SlackApi,
    client_id: &str,
    client_secret: &Token,
    code: &str,
    redirect_uri: &str,
) -> Result<LinkedAccount, BridgeError> {
    let answer = api
        .call_without_token(
            "oauth.v2.access",
            json!({
                "client_id": client_id,
                "client_secret": client_secret.expose(),
                "code": code,
                "redirect_uri": redirect_uri,
            }),
        )
        .await?;
    let user = answer.pointer("/authed_user/id").and_then(Value::as_str);
    let token = answer
        .pointer("/authed_user/access_token")
        .and_then(Value::as_str);
    match (user, token) {
        (Some(user), Some(token)) => Ok(LinkedAccount {
            user: UserId::new(user),
            token: token.to_owned(),
        }),
        _ => Err(BridgeError::permanent(
            "oauth.v2.access returned no user token (were user scopes granted?)",
        )),
    }
}

impl PendingLogin {
    /// The redirect URI registered for this login.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits (up to `timeout`) for the browser's redirect, then exchanges the
    /// code for the person's token.
    pub async fn finish(
        self,
        app: &OAuthApp,
        timeout: Duration,
    ) -> Result<LinkedAccount, BridgeError> {
        let code = tokio::time::timeout(timeout, self.wait_for_code())
            .await
            .map_err(|_| BridgeError::permanent("nobody completed the login in time"))??;
        exchange(
            &app.api,
            &app.client_id,
            &app.client_secret,
            &code,
            &self.redirect_uri,
        )
        .await
    }

    /// Serves the loopback listener until the browser brings back a code or
    /// Slack's refusal. Connections are handled side by side: a browser's
    /// speculative pre-connection, a favicon request or a reloaded old tab
    /// neither blocks nor ends the login, and a connection that fails while
    /// queued (reset before it was accepted) does not close the listener.
    async fn wait_for_code(&self) -> Result<String, BridgeError> {
        let mut connections = tokio::task::JoinSet::new();
        let mut accept_failures = 0u32;
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        accept_failures = 0;
                        let state = self.state.clone();
                        connections.spawn(answer_redirect(stream, state));
                    }
                    Err(e) => {
                        accept_failures += 1;
                        if accept_failures > 50 {
                            return Err(BridgeError::transient(format!(
                                "login listener failed: {e}"
                            )));
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    if let Ok(Some(outcome)) = done {
                        return outcome;
                    }
                }
            }
        }
    }
}

/// Answers one connection to the loopback listener. `Some` when it was the
/// redirect of this login (with the code, or Slack's refusal); `None` for
/// anything else, which is answered and forgotten.
async fn answer_redirect(
    mut stream: tokio::net::TcpStream,
    state: String,
) -> Option<Result<String, BridgeError>> {
    let mut buf = vec![0u8; 8192];
    let n = match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => n,
        _ => return None,
    };
    let request = String::from_utf8_lossy(&buf[..n]);
    let target = request.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/callback" {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return None;
    }
    let param = |name: &str| {
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| decode(v))
        })
    };
    let ours = param("state").is_some_and(|s| s == state);
    let (page, outcome) = match (ours, param("code"), param("error")) {
        (true, _, Some(error)) => (
            "Slack refused the login. You can close this window.",
            Some(Err(BridgeError::permanent(format!(
                "the login was refused: {error}"
            )))),
        ),
        (true, Some(code), None) => (
            "Your Slack account is linked. You can close this window.",
            Some(Ok(code)),
        ),
        // An old tab or a forged link: say so, and keep waiting for the
        // login's own redirect (the login's timeout bounds the wait).
        _ => ("This link does not belong to the login in progress.", None),
    };
    let html = format!("<!doctype html><title>Switchboard</title><p>{page}</p>");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
        html.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    outcome
}

/// How long a sign-in started from a chat waits for the browser.
const CHAT_LOGIN_WAIT: Duration = Duration::from_secs(15 * 60);

/// Sign-ins started from a chat (`login slack`), waiting for Slack to send
/// the browser back to the daemon's [`OAuthEndpoint`], by `state`.
#[derive(Debug, Default)]
pub(crate) struct ChatLogins {
    pending: Mutex<HashMap<String, oneshot::Sender<Result<String, BridgeError>>>>,
}

impl ChatLogins {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Result<String, BridgeError>>>>
    {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The redirect path of bridge `id` under the daemon's listener.
pub(crate) fn redirect_path(id: &BridgeId) -> String {
    let name = id.as_str().split_once(':').map_or(id.as_str(), |(_, n)| n);
    format!("/slack/{name}/oauth")
}

/// Starts a sign-in from a chat: the authorize URL to show, and the
/// future that exchanges the code once the browser is back.
pub(crate) fn begin_in_chat(
    api: &SlackApi,
    id: &BridgeId,
    settings: &ChatLogin,
    logins: &Arc<ChatLogins>,
) -> LoginFlow {
    let state = new_state();
    let redirect_uri = format!("{}{}", settings.public_url, redirect_path(id));
    let url = authorize_url(
        &settings.authorize_url,
        &settings.client_id,
        &redirect_uri,
        &state,
    );
    let (tx, rx) = oneshot::channel();
    {
        let mut pending = logins.lock();
        pending.retain(|_, waiting| !waiting.is_closed());
        pending.insert(state.clone(), tx);
    }
    let api = api.clone();
    let settings = settings.clone();
    let logins = logins.clone();
    let done = async move {
        let code = match tokio::time::timeout(CHAT_LOGIN_WAIT, rx).await {
            Ok(Ok(code)) => code?,
            Ok(Err(_)) => return Err(BridgeError::permanent("the sign-in was dropped")),
            Err(_) => {
                logins.lock().remove(&state);
                return Err(BridgeError::permanent(
                    "nobody approved it in Slack within 15 minutes",
                ));
            }
        };
        exchange(
            &api,
            &settings.client_id,
            &settings.client_secret,
            &code,
            &redirect_uri,
        )
        .await
    };
    LoginFlow {
        prompt: format!(
            "To post in Slack as yourself, open this link and approve Switchboard (within 15 minutes): {url}\nI will tell you here when it is done."
        ),
        done: Box::pin(done),
    }
}

/// Where Slack sends the browser back after a sign-in from a chat: hands
/// the code (or Slack's refusal) to the sign-in waiting for its `state`.
#[derive(Debug)]
pub struct OAuthEndpoint {
    logins: Arc<ChatLogins>,
}

impl OAuthEndpoint {
    pub(crate) fn new(logins: Arc<ChatLogins>) -> Self {
        OAuthEndpoint { logins }
    }
}

fn page(status: u16, text: &str) -> HttpResponse {
    let mut response = HttpResponse::text(
        status,
        format!("<!doctype html><title>Switchboard</title><p>{text}</p>"),
    );
    response.headers = vec![("content-type".into(), "text/html; charset=utf-8".into())];
    response
}

#[async_trait]
impl HttpEndpoint for OAuthEndpoint {
    async fn handle(&self, request: HttpRequest) -> HttpResponse {
        if request.method != "GET" {
            return HttpResponse::text(405, "GET only");
        }
        let param = |name: &str| {
            request.query.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == name).then(|| decode(v))
            })
        };
        let waiting = param("state").and_then(|state| self.logins.lock().remove(&state));
        let Some(waiting) = waiting else {
            return page(
                400,
                "This link does not belong to a sign-in in progress. Send login slack to Switchboard to start one.",
            );
        };
        match (param("code"), param("error")) {
            (_, Some(error)) => {
                let _ = waiting.send(Err(BridgeError::permanent(format!(
                    "Slack refused it: {error}"
                ))));
                page(200, "Slack refused the sign-in. You can close this window.")
            }
            (Some(code), None) => {
                let _ = waiting.send(Ok(code));
                page(
                    200,
                    "Thank you. Switchboard is linking your Slack account and tells you in your chat when it is done. You can close this window.",
                )
            }
            (None, None) => {
                let _ = waiting.send(Err(BridgeError::permanent(
                    "Slack sent the browser back without a code",
                )));
                page(400, "Slack sent no code. Send login slack to start again.")
            }
        }
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Decodes a percent-encoded query value (`+` as space).
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn raw_get(port: u16, path: &str) -> tokio::net::TcpStream {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        s
    }

    async fn answer(mut s: tokio::net::TcpStream) -> String {
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    fn login_on_loopback(listener: TcpListener) -> PendingLogin {
        PendingLogin {
            url: String::new(),
            listener,
            state: "the-state".into(),
            redirect_uri: String::new(),
        }
    }

    #[tokio::test]
    async fn stalled_stray_and_foreign_connections_neither_block_nor_end_the_login() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let login = login_on_loopback(listener);
        let waiting = tokio::spawn(async move { login.wait_for_code().await });
        // A browser's pre-connection that never sends anything.
        let _idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        // A connection reset before anything is read.
        drop(tokio::net::TcpStream::connect(("127.0.0.1", port)).await);
        let favicon = answer(raw_get(port, "/favicon.ico").await).await;
        assert!(favicon.starts_with("HTTP/1.1 404"), "{favicon}");
        let stale = answer(raw_get(port, "/callback?code=old&state=other").await).await;
        assert!(stale.contains("does not belong"), "{stale}");
        assert!(
            !waiting.is_finished(),
            "a foreign link does not end the login"
        );
        let ok = answer(raw_get(port, "/callback?code=c%2F1&state=the-state").await).await;
        assert!(ok.contains("is linked"), "{ok}");
        let code = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("in time")
            .expect("joined")
            .expect("a code");
        assert_eq!(code, "c/1");
    }

    #[tokio::test]
    async fn slack_s_refusal_ends_the_login_with_its_reason() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let login = login_on_loopback(listener);
        let waiting = tokio::spawn(async move { login.wait_for_code().await });
        let page =
            answer(raw_get(port, "/callback?error=access_denied&state=the-state").await).await;
        assert!(page.contains("refused"), "{page}");
        let err = waiting.await.expect("joined").expect_err("refused");
        assert!(err.to_string().contains("access_denied"), "{err}");
    }

    #[test]
    fn query_values_round_trip() {
        for v in [
            "a b&c=d/é",
            "chat:write,files:write",
            "http://127.0.0.1:5/callback",
            "%",
            "%zz",
            "%é",
        ] {
            assert_eq!(decode(&encode(v)), v);
        }
        assert_eq!(decode("a+b%20c"), "a b c");
        assert_eq!(decode("bad%2"), "bad%2");
        assert_eq!(decode("%é%"), "%é%", "never splits a character");
    }
}
