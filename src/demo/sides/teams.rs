//! Teams as its people use it: Microsoft Graph with their own delegated
//! tokens, and the channel read back with the app's token.

use super::{emoji_of, http_client};
use crate::demo::view::{Shown, attribute, display_html, strip_html, unescape};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use switchboard_teams_sim::TeamsSim;

/// A person in the Teams tenant.
#[derive(Debug, Clone)]
pub struct TeamsPerson {
    /// Their handle (`bob`).
    pub handle: String,
    /// Their user principal name.
    pub upn: String,
    /// Their user id.
    pub id: String,
    /// Their display name.
    pub name: String,
}

/// The Teams tenant: the simulator, the portal's channel, its people.
#[derive(Debug)]
pub struct TeamsSide {
    /// The simulator.
    pub sim: TeamsSim,
    /// The team's id.
    pub team: String,
    /// The portal's channel id.
    pub channel: String,
    /// The service account's user id (it posts what comes from elsewhere).
    pub service: String,
    people: Vec<TeamsPerson>,
    http: reqwest::Client,
}

impl TeamsSide {
    /// The simulator, the channel and the people `(handle, upn, name)`.
    pub fn new(
        sim: TeamsSim,
        (team, channel): (String, String),
        service_upn: &str,
        people: &[(&str, &str, &str)],
    ) -> anyhow::Result<Self> {
        let users = &sim.seeded().users;
        let id_of = |upn: &str| {
            users
                .get(upn)
                .cloned()
                .with_context(|| format!("no Teams user {upn}"))
        };
        let service = id_of(service_upn)?;
        let people = people
            .iter()
            .map(|(handle, upn, name)| {
                Ok(TeamsPerson {
                    handle: (*handle).to_owned(),
                    upn: (*upn).to_owned(),
                    id: id_of(upn)?,
                    name: (*name).to_owned(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(TeamsSide {
            sim,
            team,
            channel,
            service,
            people,
            http: http_client()?,
        })
    }

    /// The person with this handle.
    pub fn person(&self, handle: &str) -> anyhow::Result<&TeamsPerson> {
        self.people
            .iter()
            .find(|p| p.handle == handle)
            .with_context(|| format!("no Teams person {handle}"))
    }

    /// `…/channels/{id}/messages`, relative to the Graph base.
    fn messages_path(&self) -> String {
        format!("/teams/{}/channels/{}/messages", self.team, self.channel)
    }

    /// The path of a message from its [`Shown::id`] (`id` or `root/id`).
    fn message_path(&self, id: &str) -> String {
        match id.split_once('/') {
            Some((root, reply)) => format!("{}/{root}/replies/{reply}", self.messages_path()),
            None => format!("{}/{id}", self.messages_path()),
        }
    }

    /// One Graph call: as `who` with their delegated token, or as the app.
    async fn graph(
        &self,
        who: Option<&str>,
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let token = match who {
            Some(handle) => {
                let upn = &self.person(handle)?.upn;
                self.sim
                    .delegated_token(upn)
                    .map_err(|e| anyhow::anyhow!("no token for {upn}: {e}"))?
            }
            None => self.sim.app_token(),
        };
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.sim.graph_url())
        };
        let mut request = self.http.request(method.clone(), &url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("Graph {method}"))?;
        let status = response.status();
        let text = response.text().await.context("Graph answer")?;
        if !status.is_success() {
            let detail: String = text.chars().take(200).collect();
            bail!("Graph {method} answered {status}: {detail}");
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).context("Graph answer is not JSON")
    }

    /// Posts a channel message (`mentions`: Graph's mentions array);
    /// returns its id. <https://learn.microsoft.com/graph/api/chatmessage-post>
    pub async fn post(&self, who: &str, html: &str, mentions: Value) -> anyhow::Result<String> {
        let body = json!({
            "body": { "contentType": "html", "content": html },
            "mentions": mentions,
        });
        let path = self.messages_path();
        let answer = self
            .graph(Some(who), reqwest::Method::POST, &path, Some(body))
            .await?;
        answer["id"]
            .as_str()
            .map(str::to_owned)
            .context("the new message has no id")
    }

    /// Replies under root message `root`.
    /// <https://learn.microsoft.com/graph/api/chatmessage-post-replies>
    pub async fn reply(&self, who: &str, root: &str, html: &str) -> anyhow::Result<String> {
        let body = json!({ "body": { "contentType": "html", "content": html } });
        let path = format!("{}/{root}/replies", self.messages_path());
        let answer = self
            .graph(Some(who), reqwest::Method::POST, &path, Some(body))
            .await?;
        answer["id"]
            .as_str()
            .map(str::to_owned)
            .context("the reply has no id")
    }

    /// Edits a message. <https://learn.microsoft.com/graph/api/chatmessage-update>
    pub async fn edit(&self, who: &str, id: &str, html: &str) -> anyhow::Result<()> {
        let body = json!({ "body": { "contentType": "html", "content": html } });
        let path = self.message_path(id);
        self.graph(Some(who), reqwest::Method::PATCH, &path, Some(body))
            .await
            .map(|_| ())
    }

    /// Deletes a message. <https://learn.microsoft.com/graph/api/chatmessage-softdelete>
    pub async fn delete(&self, who: &str, id: &str) -> anyhow::Result<()> {
        let path = format!("{}/softDelete", self.message_path(id));
        self.graph(Some(who), reqwest::Method::POST, &path, None)
            .await
            .map(|_| ())
    }

    /// Reacts to a message. <https://learn.microsoft.com/graph/api/chatmessage-setreaction>
    pub async fn react(&self, who: &str, id: &str, emoji: &str) -> anyhow::Result<()> {
        let path = format!("{}/setReaction", self.message_path(id));
        let body = json!({ "reactionType": emoji });
        self.graph(Some(who), reqwest::Method::POST, &path, Some(body))
            .await
            .map(|_| ())
    }

    /// Every page of a Graph list, in the order Graph gives them.
    async fn list(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut next = Some(format!("{path}?$top=50"));
        let mut pages = 0;
        while let Some(url) = next.take() {
            let page = self.graph(None, reqwest::Method::GET, &url, None).await?;
            if let Some(values) = page["value"].as_array() {
                out.extend(values.iter().cloned());
            }
            next = page["@odata.nextLink"].as_str().map(str::to_owned);
            pages += 1;
            if pages >= 20 {
                break;
            }
        }
        Ok(out)
    }

    /// The channel as Teams shows it (roots oldest first, each followed by
    /// its replies), read with the app's token.
    pub async fn view(&self) -> anyhow::Result<Vec<Shown>> {
        let mut roots = self.list(&self.messages_path()).await?;
        roots.reverse();
        let mut out = Vec::new();
        for root in &roots {
            let id = root["id"].as_str().unwrap_or_default();
            if let Some(shown) = self.shown(root, id.to_owned(), false) {
                out.push(shown);
            }
            let mut replies = self
                .list(&format!("{}/{id}/replies", self.messages_path()))
                .await?;
            replies.reverse();
            for reply in &replies {
                let reply_id = format!("{id}/{}", reply["id"].as_str().unwrap_or_default());
                if let Some(shown) = self.shown(reply, reply_id, true) {
                    out.push(shown);
                }
            }
        }
        Ok(out)
    }

    fn shown(&self, m: &Value, id: String, thread: bool) -> Option<Shown> {
        if m["messageType"] != "message" || !m["deletedDateTime"].is_null() {
            return None;
        }
        let from = &m["from"]["user"];
        let mut author = from["displayName"].as_str().unwrap_or("?").to_owned();
        let mut html = m["body"]["content"].as_str().unwrap_or_default().to_owned();
        // The relay marker is invisible in Teams.
        while let Some(start) = html.find("<span itemid=") {
            match html[start..].find("</span>") {
                Some(end) => html.replace_range(start..start + end + "</span>".len(), ""),
                None => break,
            }
        }
        // What the service account posts for someone else starts with their
        // name in bold and their platform: that is who Teams shows.
        if from["id"].as_str() == Some(self.service.as_str()) {
            let body = html.trim_start_matches("<p>");
            if let Some(rest) = body.strip_prefix("<b>")
                && let Some((name, rest)) = rest.split_once("</b> (")
                && let Some((platform, rest)) = rest.split_once("): ")
            {
                author = format!("{} ({platform})", unescape(name));
                html = rest.to_owned();
            }
        }
        let files = image_names(&html);
        let text = display_html(&html);
        let plain = strip_html(&html);
        Some(Shown {
            id,
            author,
            author_id: from["id"].as_str().unwrap_or_default().to_owned(),
            call: plain.contains('📞'),
            text,
            plain,
            thread,
            edited: !m["lastEditedDateTime"].is_null(),
            reactions: m["reactions"]
                .as_array()
                .map(|rs| {
                    rs.iter()
                        .filter_map(|r| r["reactionType"].as_str())
                        .map(emoji_of)
                        .collect()
                })
                .unwrap_or_default(),
            files,
        })
    }
}

/// The `alt` names of the `<img>`s in `html`.
fn image_names(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<img") {
        let end = rest[start..].find('>').map_or(rest.len(), |e| start + e);
        if let Some(alt) = attribute(&rest[start..end], "alt") {
            out.push(alt);
        }
        rest = &rest[end..];
    }
    out
}
