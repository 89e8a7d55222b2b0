//! Names for ids: how mentions (`<@U123>`, `<#C123>`) get the display names
//! RichText carries. The connector answers from a cache filled by
//! `users.info` / `conversations.info`; parsers take any implementation.

/// Looks up display names of Slack users and channels.
pub trait Names: Send + Sync {
    /// The display name of user `id`, if known.
    fn user(&self, id: &str) -> Option<String>;
    /// The name of channel `id` (without `#`), if known.
    fn channel(&self, id: &str) -> Option<String>;
}

/// Knows no names: mentions fall back to their labels or ids.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNames;

impl Names for NoNames {
    fn user(&self, _id: &str) -> Option<String> {
        None
    }
    fn channel(&self, _id: &str) -> Option<String> {
        None
    }
}

/// A fixed table of names, for tests.
#[derive(Debug, Clone, Default)]
pub struct StaticNames {
    /// (user id, name)
    pub users: Vec<(String, String)>,
    /// (channel id, name)
    pub channels: Vec<(String, String)>,
}

impl Names for StaticNames {
    fn user(&self, id: &str) -> Option<String> {
        self.users
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| v.clone())
    }
    fn channel(&self, id: &str) -> Option<String> {
        self.channels
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| v.clone())
    }
}
