//! `switchboard login`: a person links their own account on a platform, so
//! that what they write elsewhere appears there as themselves.
//!
//! The platform's sign-in runs here (Slack: OAuth with a loopback redirect;
//! Teams: the device-code flow, whose refresh token is kept); the account is
//! then handed to the running daemon through the admin API (when
//! `http.admin_token` is configured and the daemon answers), or written
//! straight into the store (when the daemon is stopped). Either way the token
//! is sealed with the store key. `switchboard login list` shows the stored
//! logins the same two ways, never their tokens.

use crate::config::{BridgeKind, Config};
use crate::store::login::{LoginStatus, SERVICE_USER, SecretBox, store_key};
use crate::store::{Db, SledStore, Store};
use anyhow::{Context, bail};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_model::{BridgeId, LinkedAccount, UserId};
use switchboard_slack::login::{OAuthApp, begin};
use switchboard_slack::ratelimit::RateLimiter;
use switchboard_slack::web::{SlackApi, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Links `person` (`bridge/user` on another platform) to their own account
/// on Slack bridge `bridge`. `announce` receives the URL to open.
pub async fn slack(
    config: &Config,
    bridge: &BridgeId,
    person: (BridgeId, UserId),
    listen: SocketAddr,
    timeout: Duration,
    announce: impl Fn(&str),
) -> anyhow::Result<LinkedAccount> {
    let Some(slack) = config.bridges.iter().find(|b| &b.id == bridge) else {
        bail!("no bridge {bridge} in the configuration");
    };
    let BridgeKind::Slack(settings) = &slack.kind else {
        bail!("bridge {bridge} is not a Slack bridge");
    };
    let (Some(client_id), Some(client_secret)) = (&settings.client_id, &settings.client_secret)
    else {
        bail!(
            "bridge {bridge} needs client_id and client_secret_file (or client_secret_env) for logins"
        );
    };
    let api = SlackApi::new(settings.api_url.clone(), Arc::new(RateLimiter::new(false)))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = OAuthApp {
        client_id: client_id.clone(),
        client_secret: Token::new(client_secret.expose()),
        authorize_url: settings.oauth_url.clone(),
        api,
    };
    let pending = begin(&app, listen)
        .await
        .context("cannot listen for the login redirect")?;
    announce(&pending.url);
    let account = pending
        .finish(&app, timeout)
        .await
        .map_err(|e| anyhow::anyhow!("login failed: {e}"))?;
    save(config, bridge, &person, &account).await?;
    Ok(account)
}

/// The delegated permissions a Teams login asks for (see
/// [`switchboard_teams::auth::PERSON_SCOPES`]).
pub const TEAMS_SCOPES: &str = switchboard_teams::auth::PERSON_SCOPES;

/// What a Teams sign-in shows the person: where to go and what to type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCodePrompt {
    /// The page to open.
    pub verification_uri: String,
    /// The code to enter there.
    pub user_code: String,
}

/// Signs a Teams account in with the device-code flow and stores its
/// refresh token: the person's own (`person` = who they are elsewhere), or
/// the bridge's service account (`person` = `None`, stored as (the bridge,
/// `@service`)). `announce` receives what to show the person.
pub async fn teams(
    config: &Config,
    bridge: &BridgeId,
    person: Option<(BridgeId, UserId)>,
    timeout: Duration,
    announce: impl Fn(&DeviceCodePrompt),
) -> anyhow::Result<LinkedAccount> {
    use switchboard_teams::auth::{DeviceCodeLogin, IdentityConfig, Secret, http_client};
    let Some(teams) = config.bridges.iter().find(|b| &b.id == bridge) else {
        bail!("no bridge {bridge} in the configuration");
    };
    let BridgeKind::Teams(settings) = &teams.kind else {
        bail!("bridge {bridge} is not a Teams bridge");
    };
    let person = person.unwrap_or_else(|| (bridge.clone(), UserId::new(SERVICE_USER)));
    let http = http_client().map_err(|e| anyhow::anyhow!("{e}"))?;
    let identity = IdentityConfig {
        login_base: settings.login_url.clone(),
        tenant: settings.tenant.clone(),
        client_id: settings.client_id.clone(),
        client_secret: Some(Secret::new(settings.client_secret.expose())),
    };
    let login = DeviceCodeLogin::new(http, identity, settings.graph_url.clone(), TEAMS_SCOPES);
    let code = login
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the sign-in: {e}"))?;
    announce(&DeviceCodePrompt {
        verification_uri: code.verification_uri.clone(),
        user_code: code.user_code.clone(),
    });
    let tokens = tokio::time::timeout(timeout, login.poll(&code))
        .await
        .map_err(|_| anyhow::anyhow!("nobody signed in within {}s", timeout.as_secs()))?
        .map_err(|e| anyhow::anyhow!("sign-in failed: {e}"))?;
    let account = LinkedAccount {
        user: UserId::new(tokens.user_id.clone()),
        token: tokens.refresh_token.expose().to_owned(),
    };
    save(config, bridge, &person, &account).await?;
    Ok(account)
}

/// Every stored login: from the running daemon (admin API) when it answers,
/// else from the store.
pub async fn list(config: &Config) -> anyhow::Result<Vec<LoginStatus>> {
    if let Some(token) = &config.http.admin_token {
        match request(
            config.http.listen,
            "GET",
            "/admin/logins",
            token.expose(),
            "",
        )
        .await
        {
            Ok((200, answer)) => {
                #[derive(serde::Deserialize)]
                struct Listed {
                    logins: Vec<LoginStatus>,
                }
                let listed: Listed = serde_json::from_str(&answer)
                    .context("the daemon's list of logins is not understood")?;
                return Ok(listed.logins);
            }
            Ok((status, answer)) => bail!("the daemon refused the list ({status}): {answer}"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e).context("cannot reach the daemon's admin API"),
        }
    }
    let (db, secrets) = open_store(config)?;
    Ok(db.login_statuses(&secrets)?)
}

/// The store and its key, for when the daemon is stopped.
fn open_store(config: &Config) -> anyhow::Result<(Db, SecretBox)> {
    let secrets: SecretBox = store_key(config.store.key_file.as_deref())
        .context("cannot read the store key")?
        .context("set store.key_file (or the systemd credential store-key) to link accounts")?;
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&config.store.path).with_context(|| {
        format!(
            "cannot open the store at {} (if the daemon is running, configure http.admin_token so that login talks to it)",
            config.store.path.display()
        )
    })?);
    Ok((Db::open(store)?, secrets))
}

/// Hands the account to the daemon, or stores it directly.
async fn save(
    config: &Config,
    bridge: &BridgeId,
    person: &(BridgeId, UserId),
    account: &LinkedAccount,
) -> anyhow::Result<()> {
    if let Some(token) = &config.http.admin_token {
        let body = json!({
            "bridge": bridge,
            "person_bridge": person.0,
            "person_user": person.1,
            "account_user": account.user,
            "token": account.token,
        })
        .to_string();
        match request(
            config.http.listen,
            "POST",
            "/admin/logins",
            token.expose(),
            &body,
        )
        .await
        {
            Ok((200, _)) => return Ok(()),
            Ok((status, answer)) => bail!("the daemon refused the login ({status}): {answer}"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                // The daemon is not running: write to the store ourselves.
            }
            Err(e) => return Err(e).context("cannot reach the daemon's admin API"),
        }
    }
    let (db, secrets) = open_store(config)?;
    db.put_login(&secrets, bridge, (&person.0, &person.1), account)?;
    db.forget_puppet(bridge, (&person.0, &person.1))?;
    db.flush()?;
    Ok(())
}

/// One call to the running daemon's admin API (`http.admin_token` and
/// `http.listen` from `config`): the status and the body. Fails with a clear
/// message when no admin token is configured or no daemon answers.
pub async fn admin_call(
    config: &Config,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let Some(token) = &config.http.admin_token else {
        bail!(
            "no admin token configured: set http.admin_token_file (or http.admin_token_env) so that this command can reach the running daemon"
        );
    };
    let addr = config.http.listen;
    match request(addr, method, path, token.expose(), body).await {
        Ok(answer) => Ok(answer),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => bail!(
            "the daemon is not running: nothing answers on {addr}; start it (switchboard run) and try again"
        ),
        Err(e) => Err(e).with_context(|| format!("cannot reach the daemon's admin API on {addr}")),
    }
}

/// A minimal HTTP/1.1 request to the daemon on loopback.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "the daemon did not answer")
        })??;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
