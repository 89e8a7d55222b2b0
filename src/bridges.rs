//! Building bridges from configuration: the one place that names each
//! platform's connector. The relay only ever sees `Arc<dyn Bridge>`.

use crate::config::{BridgeConfig, BridgeKind, MemoryCapabilities, SlackMode};
use anyhow::Context;
use std::sync::Arc;
use switchboard_model::testing::{MemoryBridge, MemoryPlatform};
use switchboard_model::{Bridge, Capabilities, LinkedAccounts};

/// Builds the connector for one `[[bridge]]`. `accounts` are the accounts
/// people linked on it (when the store key is configured).
pub fn build(
    config: &BridgeConfig,
    listen: std::net::SocketAddr,
    accounts: Option<Arc<dyn LinkedAccounts>>,
) -> anyhow::Result<Arc<dyn Bridge>> {
    match &config.kind {
        BridgeKind::Memory(memory) => {
            let platform = MemoryPlatform::open(config.id.clone(), &memory.state_dir)
                .with_context(|| {
                    format!(
                        "bridge {}: cannot open {}",
                        config.id,
                        memory.state_dir.display()
                    )
                })?;
            let capabilities = match memory.capabilities {
                MemoryCapabilities::Full => Capabilities::full(),
                MemoryCapabilities::Minimal => Capabilities::minimal(),
            };
            let mut bridge = MemoryBridge::new(platform, capabilities).with_latency(memory.latency);
            if let Some(token) = &memory.token {
                bridge = bridge.with_token(token.expose());
            }
            Ok(Arc::new(bridge))
        }
        BridgeKind::Slack(slack) => {
            use switchboard_slack::config::{InboundMode, SlackConfig};
            use switchboard_slack::web::Token;
            let mode = match &slack.mode {
                SlackMode::Socket { app_token } => InboundMode::Socket {
                    app_token: Token::new(app_token.expose()),
                },
                SlackMode::Events {
                    signing_secret,
                    path,
                } => InboundMode::Events {
                    signing_secret: Token::new(signing_secret.expose()),
                    path: path.clone(),
                },
            };
            let mut settings = SlackConfig::new(
                config.id.clone(),
                slack.api_url.clone(),
                Token::new(slack.bot_token.expose()),
                mode,
            );
            settings.rate_limits = slack.rate_limits;
            settings.max_upload = slack.max_upload;
            if let (Some(client_id), Some(client_secret), Some(public_url)) =
                (&slack.client_id, &slack.client_secret, &slack.public_url)
            {
                settings.chat_login = Some(switchboard_slack::config::ChatLogin {
                    client_id: client_id.clone(),
                    client_secret: Token::new(client_secret.expose()),
                    authorize_url: slack.oauth_url.clone(),
                    public_url: public_url.clone(),
                });
            }
            let bridge = switchboard_slack::bridge::SlackBridge::new(settings)
                .map_err(|e| anyhow::anyhow!("bridge {}: {e}", config.id))?;
            if let Some(accounts) = accounts {
                bridge.set_accounts(accounts);
            }
            Ok(bridge)
        }
        BridgeKind::Teams(teams) => {
            use switchboard_teams::auth::Secret;
            use switchboard_teams::bridge::{NotificationSettings, TeamsBridge, TeamsConfig};
            use switchboard_teams::client::{GraphClient, LimitConfig};
            use switchboard_teams::graph::crypto::NotificationKey;
            let settings = TeamsConfig {
                id: config.id.clone(),
                graph_base: teams.graph_url.clone(),
                login_base: teams.login_url.clone(),
                tenant: teams.tenant.clone(),
                client_id: teams.client_id.clone(),
                client_secret: Secret::new(teams.client_secret.expose()),
                // The service account is the one stored by `switchboard
                // login teams --service`, read through the linked accounts.
                service_account: None,
                poll_interval: teams.poll_interval,
                watch: teams.watch.clone(),
                notifications: match &teams.notifications {
                    None => None,
                    Some(n) => Some(NotificationSettings {
                        public_url: n.public_url.clone(),
                        client_state: Secret::new(n.client_state.expose()),
                        lifetime: n.lifetime,
                        renew_before: n.renew_before,
                        encryption: match &n.encryption_key_file {
                            None => None,
                            Some(path) => Some(std::sync::Arc::new(
                                NotificationKey::load_or_create(path).map_err(|e| {
                                    anyhow::anyhow!("bridge {}: notification key: {e}", config.id)
                                })?,
                            )),
                        },
                    }),
                },
                reconcile_interval: teams.reconcile_interval,
            };
            let limits = teams.rate_limits.map(|l| LimitConfig {
                app_rps: f64::from(l.app_rps),
                user_rps: f64::from(l.user_rps),
                burst: f64::from(l.burst),
            });
            let graph = GraphClient::with_limits(teams.graph_url.clone(), limits)
                .map_err(|e| anyhow::anyhow!("bridge {}: {e}", config.id))?;
            let bridge = TeamsBridge::with_graph(settings, graph)
                .map_err(|e| anyhow::anyhow!("bridge {}: {e}", config.id))?;
            match accounts {
                Some(accounts) => bridge.set_accounts(accounts),
                None => tracing::warn!(
                    bridge = %config.id,
                    "No store key (store.key_file): the Teams service account and linked accounts cannot be read, so nothing can be posted to Teams."
                ),
            }
            Ok(bridge)
        }
        BridgeKind::Matrix(matrix) => {
            let settings = matrix_config(&config.id, matrix);
            let url = matrix
                .appservice_url
                .clone()
                .unwrap_or_else(|| format!("http://{listen}"));
            if let Some(path) = &matrix.registration_file {
                check_registration(path, &settings, &url)
                    .map_err(|e| anyhow::anyhow!("bridge {}: {e}", config.id))?;
            }
            let bridge = switchboard_matrix::bridge::MatrixBridge::new(settings, url);
            // Double puppeting: people who linked their Matrix account
            // appear as it (needs the second registration's token).
            if let Some(token) = &matrix.double_puppet_token {
                bridge
                    .enable_double_puppets(switchboard_matrix::config::Token::new(token.expose()));
            }
            if let Some(accounts) = accounts {
                bridge.set_accounts(accounts);
            }
            Ok(bridge)
        }
    }
}

/// The Matrix connector's settings from a `type = "matrix"` bridge.
pub fn matrix_config(
    id: &switchboard_model::BridgeId,
    matrix: &crate::config::MatrixBridgeConfig,
) -> switchboard_matrix::config::MatrixConfig {
    use switchboard_matrix::config::{MatrixConfig, Token};
    MatrixConfig {
        id: id.clone(),
        homeserver_url: matrix.homeserver_url.clone(),
        server_name: matrix.server_name.clone(),
        appservice_id: matrix.appservice_id.clone(),
        as_token: Token::new(matrix.as_token.expose()),
        hs_token: Token::new(matrix.hs_token.expose()),
        sender_localpart: matrix.sender_localpart.clone(),
        ghost_templates: matrix.ghost_templates.clone(),
        alias_template: matrix.alias_template.clone(),
        invite: matrix.invite.clone(),
        max_upload: matrix.max_upload,
        public_url: matrix.public_url.clone(),
    }
}

/// Every Matrix bridge's registration file checked against the
/// configuration (before anything starts, so that a mismatch is a
/// configuration error, exit 64, which systemd does not restart).
pub fn check_registrations(config: &crate::config::Config) -> anyhow::Result<()> {
    for bridge in &config.bridges {
        if let BridgeKind::Matrix(matrix) = &bridge.kind
            && let Some(path) = &matrix.registration_file
        {
            let url = matrix
                .appservice_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.http.listen));
            check_registration(path, &matrix_config(&bridge.id, matrix), &url)
                .map_err(|e| anyhow::anyhow!("bridge {}: {e}", bridge.id))?;
        }
    }
    Ok(())
}

/// Refuses to start when the homeserver's registration file disagrees with
/// the configuration, naming every difference (tokens are compared, never
/// shown).
fn check_registration(
    path: &std::path::Path,
    settings: &switchboard_matrix::config::MatrixConfig,
    url: &str,
) -> anyhow::Result<()> {
    use switchboard_matrix::registration::{Registration, differences};
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the registration file {}", path.display()))?;
    let registration = Registration::from_yaml(&text)
        .map_err(|e| anyhow::anyhow!("the registration file {}: {e}", path.display()))?;
    let found = differences(&registration, settings, url);
    if found.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "the registration file {} disagrees with the configuration (run `switchboard matrix registration` again, and restart the homeserver):\n  {}",
        path.display(),
        found.join("\n  ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    #[test]
    fn a_teams_bridge_is_built_from_its_configuration() {
        let text = r#"
[store]
path = "/s"
[[bridge]]
id = "teams:contoso"
type = "teams"
tenant = "t-1"
client_id = "c-1"
client_secret_env = "TEAMS_SECRET"
rate_limits = false
watch = ["team-1/19:a@thread.tacv2"]
[bridge.notifications]
public_url = "https://bridge.example.com"
client_state_env = "STATE"
"#;
        let env = HashMap::from([
            ("TEAMS_SECRET".to_owned(), "app-secret-value".to_owned()),
            ("STATE".to_owned(), "state-secret-value".to_owned()),
        ]);
        let config = crate::config::from_toml_str(text, &env, Path::new("/")).expect("valid");
        for accounts in [
            None,
            Some(Arc::new(switchboard_model::NoLinkedAccounts) as _),
        ] {
            let bridge = build(&config.bridges[0], config.http.listen, accounts).expect("built");
            assert_eq!(bridge.id().as_str(), "teams:contoso");
            let shown = format!("{bridge:?}");
            assert!(!shown.contains("app-secret-value"), "{shown}");
            assert!(!shown.contains("state-secret-value"), "{shown}");
        }
    }
}
