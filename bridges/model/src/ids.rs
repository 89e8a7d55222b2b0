//! Opaque identifiers.
//!
//! Ids are minted by connectors only; the relay compares, stores and copies
//! them but never looks inside. They are persisted in the store, so their
//! string forms are a compatibility contract: a connector must produce the
//! same id for the same platform object forever.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a connector-minted string.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The id as stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// One configured connection to a platform, e.g. `slack:acme` or `teams:contoso`.
    BridgeId
);
id_type!(
    /// A channel, room, chat or DM on one bridge.
    ChannelId
);
id_type!(
    /// A person or bot account on one bridge.
    UserId
);
id_type!(
    /// A message (or another addressable object such as a reaction) on one bridge.
    MessageId
);
id_type!(
    /// A platform's unique id for one inbound event; used to drop platform retries.
    EventId
);
id_type!(
    /// One outbound operation. Stable across retries and restarts, so a bridge
    /// can make delivery idempotent (a Matrix txn id, a Slack metadata marker).
    OpId
);
id_type!(
    /// One canonical call or meeting, shared by its invites on every platform.
    CallId
);

impl BridgeId {
    /// The platform part of the id (`slack` in `slack:acme`), or the whole id.
    pub fn platform(&self) -> &str {
        self.0.split_once(':').map_or(self.0.as_str(), |(p, _)| p)
    }
}
