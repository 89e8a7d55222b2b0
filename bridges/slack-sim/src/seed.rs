//! The seed: a JSON description of a workspace (team, people, channels, the installed app) that
//! the simulator loads at start (`slack-sim --seed FILE`) or through [`crate::SlackSim::seed`].
//!
//! Every field but the names is optional; what is left out gets a Slack-shaped default
//! (fresh ids such as `U07ABCDEF12`, random secrets and tokens). The result of seeding,
//! [`Seeded`], lists every id and token that was used or created, so scripts and tests can
//! act as the app and as each person.
//!
//! ```json
//! {
//!   "team": {"id": "T0SIM00001", "name": "Acme", "domain": "acme"},
//!   "users": [
//!     {"name": "alice", "real_name": "Alice Liddell", "display_name": "alice",
//!      "avatar_url": "https://example.com/alice.png"},
//!     {"name": "deploybot", "is_bot": true},
//!     {"name": "bob", "deleted": true}
//!   ],
//!   "channels": [
//!     {"name": "general", "members": ["alice", "@bot"], "is_general": true},
//!     {"name": "secret", "private": true, "members": ["alice"]}
//!   ],
//!   "app": {"name": "Switchboard", "bot_name": "switchboard",
//!           "bot_scopes": ["chat:write", "channels:history"], "user_scopes": ["chat:write"]},
//!   "user_tokens": "all"
//! }
//! ```
//!
//! Channel members are user ids or names; `"@bot"` stands for the app's bot user.
//! `user_tokens` is `"all"` (an `xoxp` token for every living human, with the app's
//! `user_scopes`), `"none"`, or a list of `{"user", "token"?, "scopes"?}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A whole workspace description. See the module documentation for an example.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// The workspace itself.
    #[serde(default)]
    pub team: TeamSeed,
    /// People and bot users (the app's own bot user is created from [`AppSeed`]).
    #[serde(default)]
    pub users: Vec<UserSeed>,
    /// Channels with their members.
    #[serde(default)]
    pub channels: Vec<ChannelSeed>,
    /// The installed app: ids, secrets, tokens and granted scopes.
    #[serde(default)]
    pub app: AppSeed,
    /// Which people get user (`xoxp`) tokens, as an install with user scopes would give them;
    /// every living human when absent.
    #[serde(default)]
    pub user_tokens: Option<UserTokensSeed>,
}

/// The workspace (`team.info`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSeed {
    /// `T…` id; generated when absent.
    pub id: Option<String>,
    /// Display name; "Simulated Workspace" when absent.
    pub name: Option<String>,
    /// Subdomain (`{domain}.slack.com`); "sim" when absent.
    pub domain: Option<String>,
    /// Email domain; `{domain}.example.com` when absent.
    pub email_domain: Option<String>,
}

/// One person or bot user.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    /// `U…` id; generated when absent.
    pub id: Option<String>,
    /// The handle (`name`), unique in the workspace.
    pub name: String,
    /// Full name; defaults to `name`.
    pub real_name: Option<String>,
    /// Display name; defaults to empty, as for most real accounts.
    pub display_name: Option<String>,
    /// Avatar image URL, served as every `image_*` size.
    pub avatar_url: Option<String>,
    /// Email address; `{name}@{email_domain}` when absent.
    pub email: Option<String>,
    /// A bot user (another integration), not a person.
    #[serde(default)]
    pub is_bot: bool,
    /// A deactivated account.
    #[serde(default)]
    pub deleted: bool,
    /// Workspace admin.
    #[serde(default)]
    pub is_admin: bool,
    /// IANA time zone; "America/Los_Angeles" when absent.
    pub tz: Option<String>,
}

/// One conversation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSeed {
    /// `C…` (or legacy `G…`) id; generated when absent.
    pub id: Option<String>,
    /// Channel name (lower case, no `#`).
    pub name: String,
    /// A private channel.
    #[serde(default)]
    pub private: bool,
    /// Members: user ids, user names, or `"@bot"` for the app's bot user.
    #[serde(default)]
    pub members: Vec<String>,
    /// The workspace's `#general`.
    #[serde(default)]
    pub is_general: bool,
    /// Archived channels refuse posts (`is_archived`).
    #[serde(default)]
    pub archived: bool,
    /// Channel topic.
    pub topic: Option<String>,
    /// Channel purpose.
    pub purpose: Option<String>,
    /// Creator (id or name); the first member when absent.
    pub creator: Option<String>,
}

/// The installed Slack app.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSeed {
    /// `A…` id; generated when absent.
    pub app_id: Option<String>,
    /// App name (shown in `bot_profile.name`); "Switchboard" when absent.
    pub name: Option<String>,
    /// OAuth client id; generated (`{digits}.{digits}`) when absent.
    pub client_id: Option<String>,
    /// OAuth client secret.
    pub client_secret: Option<String>,
    /// Events API signing secret.
    pub signing_secret: Option<String>,
    /// The deprecated verification token carried in every event's `token` field.
    pub verification_token: Option<String>,
    /// App-level token (`xapp-…`) with `connections:write`.
    pub app_token: Option<String>,
    /// Bot token (`xoxb-…`).
    pub bot_token: Option<String>,
    /// The bot user's id.
    pub bot_user_id: Option<String>,
    /// The bot user's handle; the app name in lower case when absent.
    pub bot_name: Option<String>,
    /// The bot's `B…` id.
    pub bot_id: Option<String>,
    /// Scopes granted to the bot token; a broad default set when absent.
    pub bot_scopes: Option<Vec<String>>,
    /// Scopes granted to user tokens; a broad default set when absent.
    pub user_scopes: Option<Vec<String>>,
    /// OAuth redirect URLs the app allows (any URL when empty).
    #[serde(default)]
    pub redirect_urls: Vec<String>,
    /// Events the app subscribes to (`"message.channels"`, `"reaction_added"`, …);
    /// all of them when absent.
    pub bot_events: Option<Vec<String>>,
    /// Slash commands the app declares (`"/switchboard"`), as its manifest's
    /// `features.slash_commands`; none when absent. Delivered only with the `commands` scope.
    pub slash_commands: Option<Vec<String>>,
}

/// Which people get user tokens at seeding time.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserTokensSeed {
    /// `"all"` or `"none"`.
    Keyword(UserTokensKeyword),
    /// An explicit list.
    List(Vec<UserTokenSeed>),
}

/// `"all"` / `"none"`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UserTokensKeyword {
    /// Every living human gets an `xoxp` token with the app's user scopes.
    All,
    /// Nobody does (tests then issue them through the admin API or OAuth).
    None,
}

/// One pre-issued user token.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTokenSeed {
    /// User id or name.
    pub user: String,
    /// The token string; generated when absent.
    pub token: Option<String>,
    /// Scopes; the app's user scopes when absent.
    pub scopes: Option<Vec<String>>,
}

/// Everything seeding created or used: ids by name and every token.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Seeded {
    /// Workspace id.
    pub team_id: String,
    /// Workspace domain.
    pub team_domain: String,
    /// App id.
    pub app_id: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Events API signing secret.
    pub signing_secret: String,
    /// Verification token found in event payloads.
    pub verification_token: String,
    /// App-level token (`xapp-…`), for `apps.connections.open`.
    pub app_token: String,
    /// Bot token (`xoxb-…`).
    pub bot_token: String,
    /// The bot user's id.
    pub bot_user_id: String,
    /// The bot's `B…` id.
    pub bot_id: String,
    /// User ids by name (people and bot users, the app's bot user included).
    pub users: BTreeMap<String, String>,
    /// Channel ids by name.
    pub channels: BTreeMap<String, String>,
    /// User tokens by user name.
    pub user_tokens: BTreeMap<String, String>,
}

/// Bot scopes granted when the seed names none: enough for a relay bot.
pub const DEFAULT_BOT_SCOPES: &[&str] = &[
    "app_mentions:read",
    "calls:read",
    "calls:write",
    "channels:history",
    "channels:join",
    "channels:manage",
    "channels:read",
    "chat:write",
    "chat:write.customize",
    "chat:write.public",
    "commands",
    "files:read",
    "files:write",
    "groups:history",
    "groups:read",
    "groups:write",
    "im:history",
    "im:read",
    "im:write",
    "mpim:history",
    "mpim:read",
    "mpim:write",
    "reactions:read",
    "reactions:write",
    "team:read",
    "users.profile:read",
    "users:read",
    "users:read.email",
];

/// User scopes granted when the seed names none: what a person's linked account needs.
pub const DEFAULT_USER_SCOPES: &[&str] = &[
    "channels:history",
    "channels:read",
    "channels:write",
    "chat:write",
    "files:read",
    "files:write",
    "groups:history",
    "groups:read",
    "groups:write",
    "im:history",
    "im:read",
    "im:write",
    "mpim:history",
    "mpim:read",
    "mpim:write",
    "reactions:read",
    "reactions:write",
    "team:read",
    "users.profile:read",
    "users:read",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_full_seeds_parse() {
        let s: Seed = serde_json::from_str("{}").expect("empty seed");
        assert!(s.users.is_empty());
        let s: Seed = serde_json::from_str(
            r#"{"users":[{"name":"alice"}],"channels":[{"name":"general","members":["alice","@bot"]}],
                "user_tokens":"none"}"#,
        )
        .expect("seed");
        assert!(matches!(
            s.user_tokens,
            Some(UserTokensSeed::Keyword(UserTokensKeyword::None))
        ));
        let s: Seed =
            serde_json::from_str(r#"{"user_tokens":[{"user":"alice","scopes":["chat:write"]}]}"#)
                .expect("seed");
        assert!(matches!(s.user_tokens, Some(UserTokensSeed::List(ref l)) if l.len() == 1));
        assert!(serde_json::from_str::<Seed>(r#"{"bogus":1}"#).is_err());
    }
}
