//! The seed: the tenant a simulator starts with (JSON or Rust).
//!
//! ```json
//! {
//!   "tenantId": "optional GUID",
//!   "app": {"clientId": "optional GUID", "clientSecret": "optional", "displayName": "Switchboard"},
//!   "users": [{"displayName": "Adele Vance", "userPrincipalName": "adele@contoso.test"}],
//!   "teams": [{"displayName": "Contoso", "members": ["adele@contoso.test"], "owners": [],
//!              "channels": [{"displayName": "General"}]}],
//!   "chats": [{"chatType": "oneOnOne", "members": ["adele@contoso.test", "bob@contoso.test"]}]
//! }
//! ```
//!
//! Members are named by `userPrincipalName` or id. Every id may be given (to reproduce
//! captured payloads) or left out (a fresh GUID / `19:…@thread.tacv2` id is made).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole seed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// Directory (tenant) id; a GUID is made when absent.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The registered application (client credentials).
    #[serde(default)]
    pub app: AppSeed,
    /// People in the directory.
    #[serde(default)]
    pub users: Vec<UserSeed>,
    /// Teams with their channels and members.
    #[serde(default)]
    pub teams: Vec<TeamSeed>,
    /// 1:1 and group chats.
    #[serde(default)]
    pub chats: Vec<ChatSeed>,
}

/// The app registration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSeed {
    /// Application (client) id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Client secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Application permissions (roles) granted with admin consent; defaults to
    /// [`DEFAULT_APP_ROLES`].
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

/// Application roles granted when the seed names none: read and subscribe, no send.
pub const DEFAULT_APP_ROLES: &[&str] = &[
    "ChannelMessage.Read.All",
    "Chat.Read.All",
    "Team.ReadBasic.All",
    "Channel.ReadBasic.All",
    "ChannelMember.Read.All",
    "User.Read.All",
];

/// Delegated scopes a completed sign-in grants when the request asks for `.default`.
pub const DEFAULT_DELEGATED_SCOPES: &[&str] = &[
    "User.Read",
    "User.ReadBasic.All",
    "ChannelMessage.Send",
    "ChannelMessage.ReadWrite",
    "ChannelMessage.Read.All",
    "Chat.ReadWrite",
    "ChatMessage.Send",
    "Team.ReadBasic.All",
    "Channel.ReadBasic.All",
    "ChannelMember.Read.All",
    "OnlineMeetings.ReadWrite",
];

/// A person.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSeed {
    /// Object id (GUID).
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub display_name: String,
    /// Sign-in name, `alias@domain`.
    pub user_principal_name: String,
    /// Mail address (defaults to the UPN).
    #[serde(default)]
    pub mail: Option<String>,
    /// Profile photo, base64 (PNG or JPEG). No photo → 404 `ImageNotFound`.
    #[serde(default)]
    pub photo: Option<String>,
}

/// A team.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamSeed {
    /// Group id (GUID).
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub display_name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Members (UPN or id).
    #[serde(default)]
    pub members: Vec<String>,
    /// Owners (UPN or id); owners are members too.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Channels; a `General` channel is added when none is named so.
    #[serde(default)]
    pub channels: Vec<ChannelSeed>,
}

/// A channel.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelSeed {
    /// `19:…@thread.tacv2`.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub display_name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// A chat.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatSeed {
    /// Chat id; `19:{a}_{b}@unq.gbl.spaces` (1:1) or `19:…@thread.v2` (group) when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// A name for [`Seeded::chats`] (defaults to the topic, then the id).
    #[serde(default)]
    pub name: Option<String>,
    /// `oneOnOne` or `group`.
    #[serde(default)]
    pub chat_type: Option<String>,
    /// Topic (group chats).
    #[serde(default)]
    pub topic: Option<String>,
    /// Members (UPN or id).
    pub members: Vec<String>,
}

/// What seeding created, by name.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Seeded {
    /// Tenant id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// userPrincipalName → user id.
    pub users: BTreeMap<String, String>,
    /// team displayName → team id.
    pub teams: BTreeMap<String, String>,
    /// `"Team/Channel"` → (team id, channel id).
    pub channels: BTreeMap<String, (String, String)>,
    /// chat name → chat id.
    pub chats: BTreeMap<String, String>,
}
