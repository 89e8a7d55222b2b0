//! What the Slack app must grant: the scopes, events and slash commands the
//! connector uses.
//! `deploy/slack-app-manifest.yaml` must list exactly these (a test checks),
//! and `switchboard login slack` asks for [`USER_SCOPES`].

/// Bot token scopes, each used by a method or event the connector relies on.
pub const BOT_SCOPES: &[&str] = &[
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "channels:read",
    "groups:read",
    "im:read",
    "mpim:read",
    "im:write",
    "channels:join",
    "chat:write",
    "chat:write.customize",
    "metadata.message:read",
    "reactions:read",
    "reactions:write",
    "files:read",
    "files:write",
    "users:read",
    "team:read",
    "calls:read",
    "calls:write",
    "commands",
];

/// Slash commands the app declares (`features.slash_commands`, each with
/// `should_escape: false`); they need the `commands` bot scope.
pub const SLASH_COMMANDS: &[&str] = &[crate::events::command::COMMAND];

/// User token scopes for linked accounts (posting as the person).
pub const USER_SCOPES: &[&str] = &["chat:write", "reactions:write", "files:write"];

/// Bot events the connector subscribes to.
pub const BOT_EVENTS: &[&str] = &[
    "message.channels",
    "message.groups",
    "message.im",
    "message.mpim",
    "reaction_added",
    "reaction_removed",
    "member_joined_channel",
    "member_left_channel",
    "channel_rename",
    "user_change",
    "user_huddle_changed",
    "call_rejected",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The items of the YAML list under `key` (indented `- item` lines).
    fn list(yaml: &str, key: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut inside = None;
        for line in yaml.lines() {
            let indent = line.len() - line.trim_start().len();
            let trimmed = line.trim();
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            match inside {
                Some(at) if indent >= at && trimmed.starts_with("- ") => {
                    out.insert(trimmed[2..].trim().to_owned());
                }
                Some(_) => inside = None,
                None => {}
            }
            if inside.is_none() && trimmed == format!("{key}:") {
                inside = Some(indent);
            }
        }
        out
    }

    #[test]
    fn the_manifest_grants_exactly_what_the_connector_uses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/slack-app-manifest.yaml"
        );
        let yaml = std::fs::read_to_string(path).expect("deploy/slack-app-manifest.yaml");
        let set = |items: &[&str]| {
            items
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(list(&yaml, "bot"), set(BOT_SCOPES));
        assert_eq!(list(&yaml, "user"), set(USER_SCOPES));
        assert_eq!(list(&yaml, "bot_events"), set(BOT_EVENTS));
        assert!(yaml.contains("socket_mode_enabled: true"));
        let commands: BTreeSet<String> = list(&yaml, "slash_commands")
            .iter()
            .filter_map(|item| item.strip_prefix("command:"))
            .map(|c| c.trim().to_owned())
            .collect();
        assert_eq!(commands, set(SLASH_COMMANDS));
        assert!(yaml.contains("should_escape: false"));
    }
}
