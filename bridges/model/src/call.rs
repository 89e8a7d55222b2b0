//! Calls and meetings.
//!
//! Call media is never bridged (no platform allows it); the invite, its state
//! and the join link are. A call started anywhere becomes one [`CallEvent`]
//! stream keyed by [`CallId`]; later states edit the first invite on every
//! platform instead of posting again.

use crate::ids::CallId;
use crate::person::Person;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which product hosts a call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallProvider {
    /// A Slack huddle.
    SlackHuddle,
    /// A call posted through Slack's Calls API (Slack's own or a third-party app).
    SlackCall,
    /// A Microsoft Teams meeting.
    TeamsMeeting,
    /// A Matrix widget (Element Call and similar).
    MatrixWidget,
    /// A Jitsi Meet room.
    Jitsi,
    /// Anything else, by name (Zoom, Webex…).
    Other(String),
}

/// A meeting a bridge created on request ([`crate::Bridge::create_meeting`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Meeting {
    /// The platform's id of the meeting.
    pub id: String,
    /// The link anyone can use to join.
    pub join_url: String,
    /// The product hosting it.
    pub provider: CallProvider,
}

impl Meeting {
    /// A meeting from its parts.
    pub fn new(id: impl Into<String>, join_url: impl Into<String>, provider: CallProvider) -> Self {
        Meeting {
            id: id.into(),
            join_url: join_url.into(),
            provider,
        }
    }
}

/// Where a call is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum CallState {
    /// The call has just started.
    Started,
    /// Title or participants changed.
    Updated,
    /// The call is over.
    Ended {
        /// How long it lasted, if the platform said.
        #[serde(default, with = "opt_duration_ms")]
        duration: Option<Duration>,
    },
}

/// One state of one call, as seen on one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallEvent {
    /// The canonical call id (minted by the connector that saw the call first).
    pub call: CallId,
    /// The product hosting the call.
    pub provider: CallProvider,
    /// Its state.
    pub state: CallState,
    /// A title, if any.
    pub title: Option<String>,
    /// The link anyone can use to join, if there is one.
    pub join_url: Option<String>,
    /// Who started it, if known.
    pub started_by: Option<Person>,
    /// Who is in it, as far as the platform reports.
    pub participants: Vec<Person>,
}

impl CallEvent {
    /// A call event with no title, link or participants.
    pub fn new(call: CallId, provider: CallProvider, state: CallState) -> Self {
        CallEvent {
            call,
            provider,
            state,
            title: None,
            join_url: None,
            started_by: None,
            participants: Vec::new(),
        }
    }

    /// Sets the join link.
    pub fn with_join_url(mut self, url: impl Into<String>) -> Self {
        self.join_url = Some(url.into());
        self
    }

    /// Sets the title.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// A one-line human description, used where a platform has no native form.
    pub fn describe(&self) -> String {
        let what = self.title.as_deref().unwrap_or("a call");
        let who = self.started_by.as_ref().map(|p| p.display_name.as_str());
        let mut line = match (&self.state, who) {
            (CallState::Started, Some(who)) => format!("📞 {who} started {what}"),
            (CallState::Started, None) => format!("📞 {what} started"),
            (CallState::Updated, _) => format!("📞 {what} is in progress"),
            (CallState::Ended { duration: Some(d) }, _) => {
                format!("📞 {what} ended after {}", format_duration(*d))
            }
            (CallState::Ended { duration: None }, _) => format!("📞 {what} ended"),
        };
        if let (false, Some(url)) = (
            matches!(self.state, CallState::Ended { .. }),
            &self.join_url,
        ) {
            line.push_str(" — join: ");
            line.push_str(url);
        }
        line
    }
}

/// `1h 02m 03s`, `4m 05s`, `7s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

mod opt_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_each_state() {
        let mut ev = CallEvent::new(CallId::new("c1"), CallProvider::Jitsi, CallState::Started)
            .with_join_url("https://meet.example/x");
        assert_eq!(
            ev.describe(),
            "📞 a call started — join: https://meet.example/x"
        );
        ev.state = CallState::Ended {
            duration: Some(Duration::from_secs(3723)),
        };
        assert_eq!(ev.describe(), "📞 a call ended after 1h 02m 03s");
    }

    #[test]
    fn serde_round_trip() {
        let ev = CallEvent::new(
            CallId::new("c1"),
            CallProvider::Other("zoom".into()),
            CallState::Ended {
                duration: Some(Duration::from_secs(65)),
            },
        );
        let json = serde_json::to_string(&ev).expect("serialises");
        let back: CallEvent = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, ev);
    }
}
