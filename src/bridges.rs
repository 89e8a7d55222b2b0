//! Building bridges from configuration: the one place that names each
//! platform's connector. The relay only ever sees `Arc<dyn Bridge>`.

use crate::config::{BridgeConfig, BridgeKind, MemoryCapabilities};
use anyhow::Context;
use std::sync::Arc;
use switchboard_model::testing::{MemoryBridge, MemoryPlatform};
use switchboard_model::{Bridge, Capabilities};

/// Builds the connector for one `[[bridge]]`.
pub fn build(config: &BridgeConfig) -> anyhow::Result<Arc<dyn Bridge>> {
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
    }
}
