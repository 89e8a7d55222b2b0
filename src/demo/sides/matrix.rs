//! Matrix as its person uses it: the client-server API with their access
//! token, and the room read back as a client shows it.

use crate::demo::view::{Shown, collapse, display_html, strip_html};
use anyhow::Context;
use serde_json::{Value, json};
use std::collections::HashMap;
use switchboard_matrix::testing::{MatrixUser, Synapse};

/// The Matrix side: a throw-away Synapse, the person on it, the portal room.
#[derive(Debug)]
pub struct MatrixSide {
    /// The homeserver.
    pub synapse: Synapse,
    /// The person (Mo).
    pub person: MatrixUser,
    /// Their display name.
    pub name: String,
    /// The portal room's id.
    pub room: String,
}

impl MatrixSide {
    /// Sends an `m.text` message with an HTML body; `relates` is its
    /// `m.relates_to` (a thread), if any. Returns the event id.
    pub async fn send(
        &self,
        plain: &str,
        html: &str,
        relates: Option<Value>,
    ) -> anyhow::Result<String> {
        let mut content = json!({
            "msgtype": "m.text",
            "body": plain,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
        });
        if let Some(relates) = relates {
            content["m.relates_to"] = relates;
        }
        self.person
            .send_event(&self.room, "m.room.message", content)
            .await
            .context("Matrix send")
    }

    /// Replaces the text of event `id` (an `m.replace` edit).
    pub async fn edit(&self, id: &str, plain: &str, html: &str) -> anyhow::Result<()> {
        let new = json!({
            "msgtype": "m.text",
            "body": plain,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
        });
        let content = json!({
            "msgtype": "m.text",
            "body": format!("* {plain}"),
            "m.new_content": new,
            "m.relates_to": { "rel_type": "m.replace", "event_id": id },
        });
        self.person
            .send_event(&self.room, "m.room.message", content)
            .await
            .map(|_| ())
            .context("Matrix edit")
    }

    /// Redacts event `id`.
    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.person
            .redact(&self.room, id, None)
            .await
            .map(|_| ())
            .context("Matrix redaction")
    }

    /// Reacts to event `id`.
    pub async fn react(&self, id: &str, key: &str) -> anyhow::Result<()> {
        self.person
            .react(&self.room, id, key)
            .await
            .map(|_| ())
            .context("Matrix reaction")
    }

    /// The room as Mo's client shows it, oldest first: edits applied,
    /// redacted events gone, reactions on their targets.
    pub async fn view(&self) -> anyhow::Result<Vec<Shown>> {
        let mut events = self
            .person
            .messages(&self.room)
            .await
            .context("reading the Matrix room")?;
        events.reverse();
        let members: HashMap<String, String> = self
            .person
            .joined_members(&self.room)
            .await
            .context("reading the Matrix room's members")?
            .into_iter()
            .collect();
        let mut edits: HashMap<&str, &Value> = HashMap::new();
        let mut reactions: HashMap<&str, Vec<String>> = HashMap::new();
        for e in &events {
            let relates = &e["content"]["m.relates_to"];
            let target = relates["event_id"].as_str().unwrap_or_default();
            match (e["type"].as_str(), relates["rel_type"].as_str()) {
                (Some("m.room.message"), Some("m.replace")) => {
                    if let Some(new) = e["content"].get("m.new_content") {
                        edits.insert(target, new);
                    }
                }
                (Some("m.reaction"), Some("m.annotation")) => {
                    if let Some(key) = relates["key"].as_str() {
                        reactions.entry(target).or_default().push(key.to_owned());
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for e in &events {
            let original = &e["content"];
            if e["type"] != "m.room.message"
                || original["m.relates_to"]["rel_type"] == "m.replace"
                || original.get("body").is_none()
            {
                continue;
            }
            let id = e["event_id"].as_str().unwrap_or_default();
            let content = edits.get(id).copied().unwrap_or(original);
            let sender = e["sender"].as_str().unwrap_or("?");
            let body = content["body"].as_str().unwrap_or_default();
            let msgtype = content["msgtype"].as_str().unwrap_or("m.text");
            let file = matches!(msgtype, "m.image" | "m.file" | "m.video" | "m.audio");
            // A reply carries a quote of what it replies to: not part of it.
            let html = content["formatted_body"].as_str().map(without_reply_quote);
            let text = match (&html, file) {
                (_, true) => String::new(),
                (Some(html), false) => display_html(html),
                (None, false) => collapse(&without_quoted_lines(body)),
            };
            let plain = match (&html, file) {
                (_, true) => String::new(),
                (Some(html), false) => strip_html(html),
                (None, false) => collapse(&without_quoted_lines(body)),
            };
            out.push(Shown {
                id: id.to_owned(),
                author_id: sender.to_owned(),
                author: members
                    .get(sender)
                    .cloned()
                    .unwrap_or_else(|| sender.to_owned()),
                call: plain.contains('📞'),
                text,
                plain,
                thread: original["m.relates_to"]["rel_type"] == "m.thread",
                edited: edits.contains_key(id),
                reactions: reactions.get(id).cloned().unwrap_or_default(),
                files: if file {
                    vec![body.to_owned()]
                } else {
                    Vec::new()
                },
            });
        }
        Ok(out)
    }
}

/// `html` without its `<mx-reply>` quote.
fn without_reply_quote(html: &str) -> String {
    match (html.find("<mx-reply>"), html.find("</mx-reply>")) {
        (Some(start), Some(end)) if end > start => {
            format!("{}{}", &html[..start], &html[end + "</mx-reply>".len()..])
        }
        _ => html.to_owned(),
    }
}

/// `body` without the `> ` lines of a reply's quote.
fn without_quoted_lines(body: &str) -> String {
    body.lines()
        .filter(|l| !l.starts_with("> "))
        .collect::<Vec<_>>()
        .join("\n")
}
