//! Reactions of people without a linked Teams account are set by the
//! service account, so on Teams they collapse into one reaction per emoji
//! (the compact form: the emoji stays visible, the count says "someone
//! elsewhere"). Several people can stand behind that one reaction; it is
//! unset only when the last of them takes theirs back.
//!
//! The holders are remembered in memory. After a restart an unknown holder
//! set means "only this person", which at worst removes the shared reaction
//! early.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use switchboard_model::{ChannelId, MessageId};

/// Who holds each service-account reaction.
#[derive(Debug, Default)]
pub(super) struct SharedReactions {
    holders: Mutex<HashMap<(ChannelId, MessageId, String), HashSet<String>>>,
}

/// What to do on Teams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Call setReaction / unsetReaction.
    Apply,
    /// Nothing: someone else still holds the reaction (or already set it).
    Skip,
}

impl SharedReactions {
    /// `person` adds `key` to `target`.
    pub(super) fn add(
        &self,
        channel: &ChannelId,
        target: &MessageId,
        key: &str,
        person: &str,
    ) -> Action {
        let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        let set = holders
            .entry((channel.clone(), target.clone(), key.to_owned()))
            .or_default();
        let first = set.is_empty();
        set.insert(person.to_owned());
        if first { Action::Apply } else { Action::Skip }
    }

    /// `person` removes `key` from `target`.
    pub(super) fn remove(
        &self,
        channel: &ChannelId,
        target: &MessageId,
        key: &str,
        person: &str,
    ) -> Action {
        let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        let entry = (channel.clone(), target.clone(), key.to_owned());
        let Some(set) = holders.get_mut(&entry) else {
            return Action::Apply;
        };
        set.remove(person);
        if set.is_empty() {
            holders.remove(&entry);
            Action::Apply
        } else {
            Action::Skip
        }
    }

    /// Undoes an [`Self::add`] whose Graph call failed.
    pub(super) fn forget(&self, channel: &ChannelId, target: &MessageId, key: &str, person: &str) {
        let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        let entry = (channel.clone(), target.clone(), key.to_owned());
        if let Some(set) = holders.get_mut(&entry) {
            set.remove(person);
            if set.is_empty() {
                holders.remove(&entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_reaction_goes_only_with_its_last_holder() {
        let r = SharedReactions::default();
        let (c, m) = (ChannelId::new("t/c"), MessageId::new("1"));
        assert_eq!(r.add(&c, &m, "👍", "slack:U1"), Action::Apply);
        assert_eq!(r.add(&c, &m, "👍", "slack:U2"), Action::Skip);
        assert_eq!(
            r.add(&c, &m, "🎉", "slack:U2"),
            Action::Apply,
            "another emoji"
        );
        assert_eq!(
            r.remove(&c, &m, "👍", "slack:U1"),
            Action::Skip,
            "U2 still holds it"
        );
        assert_eq!(r.remove(&c, &m, "👍", "slack:U2"), Action::Apply);
        assert_eq!(
            r.remove(&c, &m, "👍", "slack:U3"),
            Action::Apply,
            "unknown: remove"
        );
        r.forget(&c, &m, "🎉", "slack:U2");
        assert_eq!(r.add(&c, &m, "🎉", "slack:U9"), Action::Apply, "forgotten");
    }
}
