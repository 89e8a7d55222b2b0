//! The connector's cache of user and channel names, filled from
//! `users.info` (https://docs.slack.dev/reference/methods/users.info) and
//! `conversations.info` as ids show up, and read synchronously by parsers.

use crate::names::Names;
use crate::web::{SlackApi, Token};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::RwLock;

/// What we know about a Slack user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The name to show.
    pub name: String,
    /// An avatar URL.
    pub avatar: Option<String>,
    /// A bot account.
    pub is_bot: bool,
}

/// Names by id.
#[derive(Debug, Default)]
pub struct NameCache {
    users: RwLock<HashMap<String, UserInfo>>,
    channels: RwLock<HashMap<String, String>>,
}

impl Names for NameCache {
    fn user(&self, id: &str) -> Option<String> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|u| u.name.clone())
    }

    fn channel(&self, id: &str) -> Option<String> {
        self.channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
}

/// The display name Slack clients show: display name, else real name, else handle.
pub fn display_name(user: &Value) -> Option<String> {
    let profile = user.get("profile");
    [
        profile.and_then(|p| p.get("display_name")),
        profile.and_then(|p| p.get("real_name")),
        user.get("real_name"),
        user.get("name"),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
    .find(|s| !s.trim().is_empty())
    .map(str::to_owned)
}

impl UserInfo {
    /// What a user object (`users.info`, `users.list`) says about `id`:
    /// the name Slack clients show, the 192 px avatar (else the 72 px one).
    pub fn of(user: &Value, id: &str) -> Self {
        UserInfo {
            name: display_name(user).unwrap_or_else(|| id.to_owned()),
            avatar: user
                .pointer("/profile/image_192")
                .or_else(|| user.pointer("/profile/image_72"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            is_bot: user.get("is_bot").and_then(Value::as_bool).unwrap_or(false),
        }
    }
}

impl NameCache {
    /// A cached user.
    pub fn cached_user(&self, id: &str) -> Option<UserInfo> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Records a user (from an event that carried the profile, or `user_change`).
    pub fn put_user(&self, id: &str, info: UserInfo) {
        self.users
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), info);
    }

    /// A user, fetched with `users.info` when not cached. Errors leave it unknown.
    pub async fn user_info(&self, api: &SlackApi, token: &Token, id: &str) -> Option<UserInfo> {
        if let Some(u) = self.cached_user(id) {
            return Some(u);
        }
        if !id.starts_with('U') && !id.starts_with('W') {
            return None;
        }
        match api
            .call("users.info", token, json!({ "user": id }), None)
            .await
        {
            Ok(v) => {
                let info = UserInfo::of(v.get("user")?, id);
                self.put_user(id, info.clone());
                Some(info)
            }
            Err(e) => {
                tracing::debug!(error = %e, "users.info failed; showing the id.");
                None
            }
        }
    }
}
