//! A conversation's name and topic for the portal rooms of bridges that
//! mirror them: a channel is "Team / Channel" with its description as the
//! topic, a chat its topic (1:1 chats have none). Read with the app token.

use super::{Conversation, TeamsBridge};
use crate::client::Bearer;
use serde_json::Value;
use switchboard_model::{BridgeError, ChannelId, ChannelInfo};

impl TeamsBridge {
    /// `GET /teams/{team}/channels/{channel}` and `GET /teams/{team}`, or
    /// `GET /chats/{chat}`.
    pub(super) async fn details(
        &self,
        channel: &ChannelId,
    ) -> Result<Option<ChannelInfo>, BridgeError> {
        let app = self.app.token().await?;
        let bearer = Bearer::App(&app);
        match Conversation::of(channel)? {
            Conversation::Channel { team, channel } => {
                let path = format!("/teams/{team}/channels/{channel}");
                let channel = self.graph.get_json(&path, bearer).await?;
                // The team's name makes "General" tell which team it is; a
                // team the app may not read leaves the channel's name alone.
                let team = match self.graph.get_json(&format!("/teams/{team}"), bearer).await {
                    Ok(team) => Some(team),
                    Err(BridgeError::NotFound { .. } | BridgeError::Permanent { .. }) => None,
                    Err(e) => return Err(e),
                };
                Ok(channel_details(&channel, team.as_ref()))
            }
            Conversation::Chat(chat) => {
                let chat = self
                    .graph
                    .get_json(&format!("/chats/{chat}"), bearer)
                    .await?;
                Ok(chat_details(&chat))
            }
        }
    }
}

fn text(v: &Value, field: &str) -> Option<String> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A channel resource (and its team's) as a name and topic.
pub(crate) fn channel_details(channel: &Value, team: Option<&Value>) -> Option<ChannelInfo> {
    let name = text(channel, "displayName");
    let name = match (team.and_then(|t| text(t, "displayName")), name) {
        (Some(team), Some(name)) => Some(format!("{team} / {name}")),
        (_, name) => name,
    };
    let info = ChannelInfo {
        name,
        topic: text(channel, "description"),
        avatar: None,
    };
    (!info.is_empty()).then_some(info)
}

/// A chat resource as a name (its topic), when it has one.
pub(crate) fn chat_details(chat: &Value) -> Option<ChannelInfo> {
    let name = text(chat, "topic")?;
    Some(ChannelInfo {
        name: Some(name),
        topic: None,
        avatar: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_channel_is_named_after_its_team_and_described_by_its_description() {
        let channel = json!({"id": "19:a@thread.tacv2", "displayName": "General",
                             "description": "Everything Contoso", "membershipType": "standard"});
        let team = json!({"id": "t1", "displayName": "Contoso Sales"});
        let info = channel_details(&channel, Some(&team)).expect("info");
        assert_eq!(info.name.as_deref(), Some("Contoso Sales / General"));
        assert_eq!(info.topic.as_deref(), Some("Everything Contoso"));
        let info = channel_details(&channel, None).expect("info");
        assert_eq!(
            info.name.as_deref(),
            Some("General"),
            "no team: the channel alone"
        );
        let bare = json!({"id": "19:b@thread.tacv2", "description": null});
        assert_eq!(channel_details(&bare, None), None);
    }

    #[test]
    fn a_chat_is_named_by_its_topic_and_a_one_to_one_chat_not_at_all() {
        let group = json!({"id": "19:c@thread.v2", "chatType": "group", "topic": "Launch crew"});
        assert_eq!(
            chat_details(&group).and_then(|i| i.name).as_deref(),
            Some("Launch crew")
        );
        let one = json!({"id": "19:d@unq.gbl.spaces", "chatType": "oneOnOne", "topic": null});
        assert_eq!(chat_details(&one), None);
    }
}
