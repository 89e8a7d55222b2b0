//! Names for people Teams reports by id only: a call's initiator and
//! participants in `callStarted`/`callEnded` system messages carry no
//! `displayName`. Names are learned from the messages people write, and
//! otherwise looked up once with `GET /users/{id}` (application permission
//! `User.Read.All`; without it the id stays, as before). Bounded.

use super::TeamsBridge;
use crate::client::Bearer;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use switchboard_model::{BridgeError, Inbound, InboundKind, Person};

/// The most names kept; the whole map is dropped when it is full.
const CAPACITY: usize = 10_000;

/// Display names by Teams user id (`None`: looked up, not found or refused).
#[derive(Debug, Default)]
pub(super) struct PeopleNames {
    names: Mutex<HashMap<String, Option<String>>>,
}

impl PeopleNames {
    fn get(&self, user: &str) -> Option<Option<String>> {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .cloned()
    }

    fn put(&self, user: &str, name: Option<String>) {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.len() >= CAPACITY {
            names.clear();
        }
        names.insert(user.to_owned(), name);
    }

    /// Remembers the name of whoever wrote `event`, when it has one.
    fn learn(&self, person: &Person) {
        if !unnamed(person) {
            self.put(person.user.as_str(), Some(person.display_name.clone()));
        }
    }
}

fn unnamed(person: &Person) -> bool {
    person.display_name.is_empty() || person.display_name == person.user.as_str()
}

impl TeamsBridge {
    /// Learns the senders' names, and names the people of call events.
    pub(super) async fn name_people(&self, events: &mut [Inbound]) {
        for event in events.iter() {
            self.people.learn(&event.sender.person);
        }
        for event in events.iter_mut() {
            let InboundKind::Call(call) = &mut event.kind else {
                continue;
            };
            for person in call
                .started_by
                .iter_mut()
                .chain(call.participants.iter_mut())
            {
                if !unnamed(person) {
                    continue;
                }
                if let Some(name) = self.name_of(person.user.as_str()).await {
                    person.display_name = name;
                }
            }
        }
    }

    /// A user's display name, from memory or `GET /users/{id}`.
    async fn name_of(&self, user: &str) -> Option<String> {
        if let Some(known) = self.people.get(user) {
            return known;
        }
        let app = self.app.token().await.ok()?;
        let path = format!("/users/{user}?$select=displayName");
        let name = match self.graph.get_json(&path, Bearer::App(&app)).await {
            Ok(v) => display_name(&v),
            Err(e @ (BridgeError::NotFound { .. } | BridgeError::Permanent { .. })) => {
                tracing::debug!(bridge = %self.id, error = %e, "A Teams user's name is not readable; the id stays.");
                None
            }
            // Worth another try next time.
            Err(_) => return None,
        };
        self.people.put(user, name.clone());
        name
    }
}

fn display_name(user: &Value) -> Option<String> {
    user.get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_model::BridgeId;

    #[test]
    fn names_are_learned_only_from_named_people_and_stay_bounded() {
        let names = PeopleNames::default();
        let bridge = BridgeId::new("teams:contoso");
        names.learn(&Person::new(bridge.clone(), "u1".into(), "Adele Vance"));
        names.learn(&Person::new(bridge.clone(), "u2".into(), "u2"));
        assert_eq!(names.get("u1"), Some(Some("Adele Vance".to_owned())));
        assert_eq!(names.get("u2"), None, "an id is no name");
        for i in 0..CAPACITY + 1 {
            names.put(&format!("x{i}"), None);
        }
        assert!(names.names.lock().map(|n| n.len()).unwrap_or(0) <= CAPACITY);
        assert_eq!(
            display_name(&serde_json::json!({"displayName": " Bob "})).as_deref(),
            Some("Bob")
        );
        assert_eq!(
            display_name(&serde_json::json!({"displayName": null})),
            None
        );
    }
}
