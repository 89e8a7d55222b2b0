//! (being written)
use crate::names::Names;
use switchboard_model::{BridgeId, RichText};
/// stub
pub fn parse_rich_text(
    _b: &serde_json::Value,
    _bridge: &BridgeId,
    _names: &dyn Names,
) -> Option<RichText> {
    None
}
/// stub
pub fn render_rich_text(_body: &RichText, _bridge: &BridgeId) -> serde_json::Value {
    serde_json::Value::Null
}
