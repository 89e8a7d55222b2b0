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
            let bridge = switchboard_slack::bridge::SlackBridge::new(settings)
                .map_err(|e| anyhow::anyhow!("bridge {}: {e}", config.id))?;
            if let Some(accounts) = accounts {
                bridge.set_accounts(accounts);
            }
            Ok(bridge)
        }
    }
}
