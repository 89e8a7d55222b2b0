//! Slack as its people use it: the Web API with their own user tokens, a
//! huddle through the simulator (only Slack itself starts one), and the
//! channel read back as Slack renders it.

use super::{emoji_of, http_client};
use crate::demo::view::{Shown, collapse, unescape};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use switchboard_slack_sim::SlackSim;

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
