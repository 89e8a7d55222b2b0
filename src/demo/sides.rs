//! The three platforms as the demo's people use and see them. Each person
//! acts through the platform's own API with their own token (Slack's Web
//! API with a user token, Microsoft Graph with a delegated token, the Matrix
//! client-server API with an access token); what only the platform itself
//! does (a huddle) goes through the simulator's admin calls. Each
//! platform's view is read back through the same APIs.

use super::view::{Shown, collapse, display_html, strip_html, unescape};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt;
use switchboard_matrix::testing::{MatrixUser, Synapse};
use switchboard_slack_sim::SlackSim;
use switchboard_teams_sim::TeamsSim;

/// One of the platforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// Slack (the simulator).
    Slack,
    /// Microsoft Teams (the simulator).
    Teams,
    /// Matrix (a throw-away Synapse).
    Matrix,
}

impl Side {
    /// Every side, in column order.
    pub const ALL: [Side; 3] = [Side::Slack, Side::Teams, Side::Matrix];

    /// Its name, as in the column headers.
    pub fn name(self) -> &'static str {
        match self {
            Side::Slack => "Slack",
            Side::Teams => "Teams",
            Side::Matrix => "Matrix",
        }
    }

    /// `slack`, `teams` or `matrix` (any case).
    pub fn parse(s: &str) -> Option<Side> {
        Side::ALL
            .into_iter()
            .find(|side| side.name().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .context("cannot build an HTTP client")
}

/// Slack's emoji names for the reactions the demo uses.
fn emoji_of(name: &str) -> String {
    match name {
        "+1" | "thumbsup" | "like" => "👍".to_owned(),
        "tada" => "🎉".to_owned(),
        "heart" => "❤️".to_owned(),
        other => other.to_owned(),
    }
}

// ----------------------------------------------------------------- Slack

/// A person in the Slack workspace.
#[derive(Debug, Clone)]
pub struct SlackPerson {
    /// Their handle (`ann`).
    pub handle: String,
    /// Their `U…` id.
    pub id: String,
    /// Their full name.
    pub name: String,
    token: String,
}

/// The Slack workspace: the simulator, the portal's channel, its people.
#[derive(Debug)]
pub struct SlackSide {
    /// The simulator.
    pub sim: SlackSim,
    /// The portal's channel id.
    pub channel: String,
    people: Vec<SlackPerson>,
    http: reqwest::Client,
}

impl SlackSide {
    /// The simulator and the people named `(handle, full name)` with their
    /// user tokens.
    pub fn new(sim: SlackSim, channel: String, people: &[(&str, &str)]) -> anyhow::Result<Self> {
        let seeded = sim.seeded();
        let people = people
            .iter()
            .map(|(handle, name)| {
                Ok(SlackPerson {
                    handle: (*handle).to_owned(),
                    id: seeded
                        .users
                        .get(*handle)
                        .cloned()
                        .with_context(|| format!("no Slack user {handle}"))?,
                    name: (*name).to_owned(),
                    token: seeded
                        .user_tokens
                        .get(*handle)
                        .cloned()
                        .with_context(|| format!("no Slack user token for {handle}"))?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(SlackSide {
            sim,
            channel,
            people,
            http: http_client()?,
        })
    }

    fn person(&self, handle: &str) -> anyhow::Result<&SlackPerson> {
        self.people
            .iter()
            .find(|p| p.handle == handle)
            .with_context(|| format!("no Slack person {handle}"))
    }

    /// The person's full name.
    pub fn name_of(&self, handle: &str) -> String {
        self.person(handle)
            .map(|p| p.name.clone())
            .unwrap_or_else(|_| handle.to_owned())
    }

    /// One Web API call as `who`, form-encoded, with their token.
    async fn api(&self, who: &str, method: &str, args: &[(&str, &str)]) -> anyhow::Result<Value> {
        let person = self.person(who)?;
        let answer: Value = self
            .http
            .post(self.sim.api_url(method))
            .bearer_auth(&person.token)
            .form(args)
            .send()
            .await
            .with_context(|| format!("Slack {method}"))?
            .json()
            .await
            .with_context(|| format!("Slack {method}: the answer is not JSON"))?;
        if answer["ok"] != true {
            bail!(
                "Slack {method} as {who} failed: {}",
                answer["error"].as_str().unwrap_or("no error given")
            );
        }
        Ok(answer)
    }

    /// `chat.postMessage` (in a thread under `thread_ts`); returns its ts.
    /// <https://docs.slack.dev/reference/methods/chat.postMessage>
    pub async fn post(
        &self,
        who: &str,
        text: &str,
        thread: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut args = vec![("channel", self.channel.as_str()), ("text", text)];
        if let Some(ts) = thread {
            args.push(("thread_ts", ts));
        }
        let answer = self.api(who, "chat.postMessage", &args).await?;
        answer["ts"]
            .as_str()
            .map(str::to_owned)
            .context("chat.postMessage gave no ts")
    }

    /// `chat.update`. <https://docs.slack.dev/reference/methods/chat.update>
    pub async fn edit(&self, who: &str, ts: &str, text: &str) -> anyhow::Result<()> {
        let args = [
            ("channel", self.channel.as_str()),
            ("ts", ts),
            ("text", text),
        ];
        self.api(who, "chat.update", &args).await.map(|_| ())
    }

    /// `chat.delete`. <https://docs.slack.dev/reference/methods/chat.delete>
    pub async fn delete(&self, who: &str, ts: &str) -> anyhow::Result<()> {
        let args = [("channel", self.channel.as_str()), ("ts", ts)];
        self.api(who, "chat.delete", &args).await.map(|_| ())
    }

    /// `reactions.add`. <https://docs.slack.dev/reference/methods/reactions.add>
    pub async fn react(&self, who: &str, ts: &str, name: &str) -> anyhow::Result<()> {
        let args = [
            ("channel", self.channel.as_str()),
            ("timestamp", ts),
            ("name", name),
        ];
        self.api(who, "reactions.add", &args).await.map(|_| ())
    }

    /// Shares a file with a comment through the upload flow:
    /// `files.getUploadURLExternal`, the upload, `files.completeUploadExternal`.
    /// <https://docs.slack.dev/messaging/working-with-files#upload>
    pub async fn upload(
        &self,
        who: &str,
        name: &str,
        bytes: &[u8],
        comment: &str,
    ) -> anyhow::Result<()> {
        let length = bytes.len().to_string();
        let slot = self
            .api(
                who,
                "files.getUploadURLExternal",
                &[("filename", name), ("length", &length)],
            )
            .await?;
        let url = slot["upload_url"].as_str().context("no upload_url")?;
        let status = self
            .http
            .post(url)
            .body(bytes.to_vec())
            .send()
            .await
            .context("Slack file upload")?
            .status();
        if !status.is_success() {
            bail!("Slack file upload answered {status}");
        }
        let files = json!([{ "id": slot["file_id"], "title": name }]).to_string();
        let args = [
            ("files", files.as_str()),
            ("channel_id", self.channel.as_str()),
            ("initial_comment", comment),
        ];
        self.api(who, "files.completeUploadExternal", &args)
            .await
            .map(|_| ())
    }

    /// `who` starts a huddle in the channel (only Slack itself does that);
    /// returns its id.
    pub fn start_huddle(&self, who: &str) -> anyhow::Result<String> {
        let person = self.person(who)?;
        let (huddle, _) = self
            .sim
            .start_huddle(&self.channel, &person.id)
            .map_err(|e| anyhow::anyhow!("cannot start a huddle: {e}"))?;
        Ok(huddle)
    }

    /// Everyone leaves the huddle.
    pub fn end_huddle(&self, huddle: &str) -> anyhow::Result<()> {
        self.sim
            .end_huddle(huddle)
            .map_err(|e| anyhow::anyhow!("cannot end the huddle: {e}"))
    }

    fn name_of_id(&self, id: &str) -> String {
        if id == "USLACKBOT" {
            return "Slackbot".to_owned();
        }
        self.people
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| id.to_owned())
    }

    /// `<@U…>` as `@Name`, `<url|label>` as `label`, `<url>` as `url`.
    fn resolve(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('<') {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('>') else {
                rest = &rest[start..];
                break;
            };
            let inner = &rest[start + 1..start + end];
            if let Some(user) = inner.strip_prefix('@') {
                let id = user.split('|').next().unwrap_or(user);
                out.push('@');
                out.push_str(&self.name_of_id(id));
            } else {
                out.push_str(inner.rsplit('|').next().unwrap_or(inner));
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        unescape(&out)
    }

    /// The channel as Slack shows it, oldest first.
    pub fn view(&self) -> Vec<Shown> {
        self.sim
            .messages(&self.channel)
            .iter()
            .filter(|m| {
                m["hidden"] != true
                    && matches!(
                        m["subtype"].as_str(),
                        None | Some(
                            "bot_message" | "file_share" | "huddle_thread" | "thread_broadcast"
                        )
                    )
            })
            .map(|m| self.shown(m))
            .collect()
    }

    fn shown(&self, m: &Value) -> Shown {
        let ts = m["ts"].as_str().unwrap_or_default().to_owned();
        let author = match m["username"].as_str() {
            Some(name) if m.get("bot_id").is_some() => name.to_owned(),
            _ => self.name_of_id(m["user"].as_str().unwrap_or("?")),
        };
        let raw = m["text"].as_str().unwrap_or_default();
        let huddle = m["subtype"] == "huddle_thread";
        let call_block = m["blocks"]
            .as_array()
            .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "call"));
        let mut text = collapse(&self.resolve(raw));
        if huddle {
            let ended = m["room"]["date_end"].as_i64().is_some_and(|end| end > 0);
            text = if ended {
                "📞 A huddle happened (ended)".to_owned()
            } else {
                "📞 A huddle started".to_owned()
            };
        }
        let plain = collapse(&text.replace(['*', '_', '`', '~'], ""));
        Shown {
            author,
            author_id: m["user"].as_str().unwrap_or_default().to_owned(),
            plain,
            thread: m["thread_ts"].as_str().is_some_and(|t| t != ts),
            edited: m.get("edited").is_some(),
            reactions: m["reactions"]
                .as_array()
                .map(|rs| {
                    rs.iter()
                        .filter_map(|r| r["name"].as_str())
                        .map(emoji_of)
                        .collect()
                })
                .unwrap_or_default(),
            files: m["files"]
                .as_array()
                .map(|fs| {
                    fs.iter()
                        .filter_map(|f| f["name"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            call: huddle || call_block || text.contains('📞'),
            text,
            id: ts,
        }
    }
}

// ----------------------------------------------------------------- Teams

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
        if let Some(alt) = super::view::attribute(&rest[start..end], "alt") {
            out.push(alt);
        }
        rest = &rest[end..];
    }
    out
}

// ----------------------------------------------------------------- Matrix

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

// ----------------------------------------------------------------- all

/// The platforms of the demo: Slack and Teams always, Matrix when Synapse
/// runs.
#[derive(Debug)]
pub struct Sides {
    /// Slack.
    pub slack: SlackSide,
    /// Teams.
    pub teams: TeamsSide,
    /// Matrix, when Synapse runs.
    pub matrix: Option<MatrixSide>,
}

impl Sides {
    /// The sides taking part, in column order.
    pub fn active(&self) -> Vec<Side> {
        Side::ALL
            .into_iter()
            .filter(|s| *s != Side::Matrix || self.matrix.is_some())
            .collect()
    }

    /// The Matrix side, or an error saying it is not running.
    pub fn matrix(&self) -> anyhow::Result<&MatrixSide> {
        self.matrix
            .as_ref()
            .context("Matrix is not part of this demo (Synapse is not running)")
    }

    /// What `side` shows now.
    pub async fn view(&self, side: Side) -> anyhow::Result<Vec<Shown>> {
        match side {
            Side::Slack => Ok(self.slack.view()),
            Side::Teams => self.teams.view().await,
            Side::Matrix => self.matrix()?.view().await,
        }
    }
}
