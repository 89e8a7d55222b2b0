//! Ghosts: the Matrix users that stand for people from other platforms.
//!
//! A ghost's localpart comes from the configured template of the person's
//! platform (`slack` → `slack_{instance}_{user}`; a template under `*` serves
//! every other platform), with `{instance}` and `{user}` lower-cased and every
//! character a localpart does not allow escaped as `=xx` (`=` itself too, so
//! two people never share a ghost). Ghosts are registered on first use
//! (`POST /register` with `m.login.application_service`), get a display name
//! `Name (Platform)`, and an avatar uploaded once to the content repository
//! and again only when the person's avatar URL changes. What was set is
//! remembered in memory and, through the cursor store under `ghost|{mxid}`,
//! across restarts, so a restart does not re-upload every avatar.

use crate::client::{ApiError, MatrixClient, Method, enc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use switchboard_model::{BridgeError, BridgeId, ChannelId, CursorStore, Person, PuppetRef, UserId};

/// The largest avatar fetched from another platform.
const MAX_AVATAR: u64 = 5 * 1024 * 1024;

/// Escapes a value substituted into a localpart template: lower-cased, with
/// `a-z 0-9 . _ - /` kept and every other byte written as `=xx`.
pub fn escape_localpart(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.to_lowercase().bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02x}"));
        }
    }
    out
}

/// One piece of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Any,
}

fn compile(template: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = template;
    loop {
        let next = ["{instance}", "{user}"]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, p.len())))
            .min();
        match next {
            Some((i, len)) => {
                if i > 0 {
                    pieces.push(Piece::Literal(rest[..i].to_owned()));
                }
                if pieces.last() != Some(&Piece::Any) {
                    pieces.push(Piece::Any);
                }
                rest = &rest[i + len..];
            }
            None => {
                if !rest.is_empty() {
                    pieces.push(Piece::Literal(rest.to_owned()));
                }
                return pieces;
            }
        }
    }
}

/// Whether `text` matches `pieces` (`Any` matching any run, even empty).
fn matches(pieces: &[Piece], text: &str) -> bool {
    match pieces.split_first() {
        None => text.is_empty(),
        Some((Piece::Literal(l), rest)) => text
            .strip_prefix(l.as_str())
            .is_some_and(|t| matches(rest, t)),
        Some((Piece::Any, rest)) => {
            if rest.is_empty() {
                return true;
            }
            text.char_indices()
                .map(|(i, _)| i)
                .chain([text.len()])
                .any(|i| matches(rest, &text[i..]))
        }
    }
}

/// Names ghosts and recognises them (pure: no I/O).
#[derive(Debug, Clone)]
pub struct GhostNamer {
    server_name: String,
    bot: String,
    templates: Vec<(String, String)>,
    compiled: Vec<Vec<Piece>>,
}

impl GhostNamer {
    /// A namer for `templates` on `server_name`, with the bot `bot`.
    pub fn new(server_name: &str, bot: &str, templates: &[(String, String)]) -> Self {
        GhostNamer {
            server_name: server_name.to_owned(),
            bot: bot.to_owned(),
            templates: templates.to_vec(),
            compiled: templates.iter().map(|(_, t)| compile(t)).collect(),
        }
    }

    /// The ghost localpart of `user` on `bridge`, if a template covers its platform.
    pub fn localpart(&self, bridge: &BridgeId, user: &UserId) -> Option<String> {
        let platform = bridge.platform();
        let template = self
            .templates
            .iter()
            .find(|(p, _)| p == platform)
            .or_else(|| self.templates.iter().find(|(p, _)| p == "*"))
            .map(|(_, t)| t)?;
        let instance = bridge
            .as_str()
            .split_once(':')
            .map_or("", |(_, instance)| instance);
        Some(
            template
                .replace("{instance}", &escape_localpart(instance))
                .replace("{user}", &escape_localpart(user.as_str())),
        )
    }

    /// The ghost's full user id.
    pub fn user_id(&self, bridge: &BridgeId, user: &UserId) -> Option<String> {
        self.localpart(bridge, user)
            .map(|l| format!("@{l}:{}", self.server_name))
    }

    /// Whether `mxid` lies in our ghost namespace.
    pub fn is_ghost(&self, mxid: &str) -> bool {
        let Some(localpart) = self.local_localpart(mxid) else {
            return false;
        };
        self.compiled.iter().any(|p| matches(p, localpart))
    }

    /// Whether `mxid` is the bridge bot.
    pub fn is_bot(&self, mxid: &str) -> bool {
        mxid == self.bot
    }

    /// The bridge bot's user id.
    pub fn bot(&self) -> &str {
        &self.bot
    }

    /// Whether `mxid` is the bot or one of our ghosts (an echo of our own).
    pub fn is_ours(&self, mxid: &str) -> bool {
        self.is_bot(mxid) || self.is_ghost(mxid)
    }

    /// The localpart of `mxid` when it lives on our server.
    fn local_localpart<'a>(&self, mxid: &'a str) -> Option<&'a str> {
        let rest = mxid.strip_prefix('@')?;
        let (localpart, server) = rest.split_once(':')?;
        (server == self.server_name).then_some(localpart)
    }
}

/// The name shown for a ghost: `Name (Platform)`.
pub fn ghost_display_name(person: &Person) -> String {
    let label = match person.bridge.platform() {
        "slack" => "Slack".to_owned(),
        "teams" => "Teams".to_owned(),
        "matrix" => "Matrix".to_owned(),
        other => other.to_owned(),
    };
    format!("{} ({label})", person.display_name)
}

/// What was last set on a ghost's profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Profile {
    /// The display name set.
    #[serde(default)]
    name: Option<String>,
    /// The avatar URL it was uploaded from.
    #[serde(default)]
    avatar_src: Option<String>,
    /// The content-repository URI it got.
    #[serde(default)]
    avatar_mxc: Option<String>,
}

fn cursor_key(mxid: &str) -> ChannelId {
    ChannelId::new(format!("ghost|{mxid}"))
}

/// The ghosts of one bridge: registration and profiles.
#[derive(Debug)]
pub struct Ghosts {
    namer: GhostNamer,
    registered: Mutex<HashSet<String>>,
    profiles: Mutex<HashMap<String, Profile>>,
    people: Mutex<HashMap<String, (BridgeId, UserId)>>,
}

impl Ghosts {
    /// Ghosts named by `namer`.
    pub fn new(namer: GhostNamer) -> Self {
        Ghosts {
            namer,
            registered: Mutex::default(),
            profiles: Mutex::default(),
            people: Mutex::default(),
        }
    }

    /// The namer.
    pub fn namer(&self) -> &GhostNamer {
        &self.namer
    }

    /// The person a ghost stands for, if this process made it.
    pub fn person_of(&self, mxid: &str) -> Option<(BridgeId, UserId)> {
        lock(&self.people).get(mxid).cloned()
    }

    /// Registers `localpart` (once per process; "already registered" is fine).
    /// [`POST /_matrix/client/v3/register`](https://spec.matrix.org/v1.16/application-service-api/#server-admin-style-permissions)
    pub async fn register(
        &self,
        client: &MatrixClient,
        localpart: &str,
    ) -> Result<(), BridgeError> {
        if lock(&self.registered).contains(localpart) {
            return Ok(());
        }
        let body = json!({
            "type": "m.login.application_service",
            "username": localpart,
            "inhibit_login": true,
        });
        match client
            .call(
                Method::Post,
                "/_matrix/client/v3/register",
                None,
                Some(&body),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => {}
            Err(e) => return Err(e.into_bridge("register a ghost")),
        }
        lock(&self.registered).insert(localpart.to_owned());
        Ok(())
    }

    /// Makes sure `person`'s ghost exists with their name and avatar. A
    /// person of a platform no template covers gets no ghost: a handle
    /// (`puppet:{bridge}:{user}`) and their name, which the bot posts under.
    pub async fn ensure(
        &self,
        client: &MatrixClient,
        person: &Person,
        cursors: Option<&dyn CursorStore>,
    ) -> Result<PuppetRef, BridgeError> {
        let Some(localpart) = self.namer.localpart(&person.bridge, &person.user) else {
            // No ghost for this platform: the bot posts for them with their
            // name as a prefix (see `MatrixBridge::poster`). The handle is no
            // Matrix user id, so it is never taken for a ghost or an echo.
            let handle = UserId::new(format!("puppet:{}:{}", person.bridge, person.user));
            return Ok(PuppetRef::new(handle, ghost_display_name(person)));
        };
        let mxid = format!("@{localpart}:{}", self.namer.server_name);
        self.register(client, &localpart).await?;
        lock(&self.people).insert(mxid.clone(), (person.bridge.clone(), person.user.clone()));

        let mut profile = lock(&self.profiles).get(&mxid).cloned();
        if profile.is_none() {
            profile = cursors
                .and_then(|c| c.get(&cursor_key(&mxid)))
                .and_then(|s| serde_json::from_str(&s).ok());
        }
        let mut profile = profile.unwrap_or_default();
        let before = profile.clone();

        let name = ghost_display_name(person);
        if profile.name.as_deref() != Some(name.as_str()) {
            // PUT /_matrix/client/v3/profile/{userId}/displayname
            client
                .call(
                    Method::Put,
                    &format!("/_matrix/client/v3/profile/{}/displayname", enc(&mxid)),
                    Some(&mxid),
                    Some(&json!({ "displayname": name })),
                )
                .await
                .map_err(|e| e.into_bridge("set a ghost's display name"))?;
            profile.name = Some(name.clone());
        }

        if profile.avatar_src != person.avatar {
            match &person.avatar {
                Some(src) => match self.upload_avatar(client, &mxid, src).await {
                    Ok(mxc) => {
                        // PUT /_matrix/client/v3/profile/{userId}/avatar_url
                        client
                            .call(
                                Method::Put,
                                &format!("/_matrix/client/v3/profile/{}/avatar_url", enc(&mxid)),
                                Some(&mxid),
                                Some(&json!({ "avatar_url": mxc })),
                            )
                            .await
                            .map_err(|e| e.into_bridge("set a ghost's avatar"))?;
                        profile.avatar_src = Some(src.clone());
                        profile.avatar_mxc = Some(mxc);
                    }
                    Err(e) => {
                        // A missing avatar is not worth failing the message for.
                        tracing::warn!(ghost = %mxid, error = %e, "Could not upload a ghost's avatar; keeping the old one.");
                    }
                },
                None => {
                    profile.avatar_src = None;
                    profile.avatar_mxc = None;
                }
            }
        }

        if profile != before || !lock(&self.profiles).contains_key(&mxid) {
            if let (Some(c), Ok(json)) = (cursors, serde_json::to_string(&profile)) {
                c.put(&cursor_key(&mxid), &json);
            }
            lock(&self.profiles).insert(mxid.clone(), profile.clone());
        }
        Ok(PuppetRef::new(UserId::new(mxid), name).with_avatar(profile.avatar_mxc))
    }

    async fn upload_avatar(
        &self,
        client: &MatrixClient,
        mxid: &str,
        src: &str,
    ) -> Result<String, ApiError> {
        if src.starts_with("mxc://") {
            return Ok(src.to_owned());
        }
        if !(src.starts_with("https://") || src.starts_with("http://")) {
            return Err(ApiError::Decode("the avatar is not an http(s) URL".into()));
        }
        let (bytes, mime) = client.fetch_url(src, MAX_AVATAR).await?;
        client.upload(Some(mxid), "avatar", &mime, bytes).await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_ghost_templates;

    fn namer() -> GhostNamer {
        let mut templates = default_ghost_templates();
        templates.push(("*".into(), "other_{instance}_{user}".into()));
        GhostNamer::new("example.org", "@switchboard:example.org", &templates)
    }

    #[test]
    fn localparts_are_escaped_and_lower_cased() {
        let n = namer();
        assert_eq!(
            n.user_id(&BridgeId::new("slack:acme"), &UserId::new("U123ABC"))
                .as_deref(),
            Some("@slack_acme_u123abc:example.org")
        );
        assert_eq!(
            n.localpart(&BridgeId::new("teams:Contoso Ltd"), &UserId::new("a=b:c/é"))
                .as_deref(),
            Some("teams_contoso=20ltd_a=3db=3ac/=c3=a9")
        );
        assert_eq!(
            n.localpart(&BridgeId::new("irc:x"), &UserId::new("bob"))
                .as_deref(),
            Some("other_x_bob")
        );
        let no_fallback = GhostNamer::new("e", "@b:e", &default_ghost_templates());
        assert_eq!(
            no_fallback.localpart(&BridgeId::new("irc:x"), &UserId::new("bob")),
            None
        );
    }

    #[test]
    fn recognises_ghosts_and_the_bot() {
        let n = namer();
        assert!(n.is_ghost("@slack_acme_u1:example.org"));
        assert!(n.is_ghost("@teams__:example.org"));
        assert!(!n.is_ghost("@slack_acme_u1:elsewhere.org"));
        assert!(!n.is_ghost("@admin:example.org"));
        assert!(!n.is_ghost("@slackacme:example.org"));
        assert!(n.is_ours("@switchboard:example.org"));
        assert!(!n.is_ghost("@switchboard:example.org"));
        let ghost = n
            .user_id(&BridgeId::new("slack:acme"), &UserId::new("U:9"))
            .expect("templated");
        assert!(n.is_ghost(&ghost));
    }

    #[test]
    fn glob_matching() {
        let p = compile("a_{instance}_{user}_z");
        assert!(matches(&p, "a_x_y_z"));
        assert!(matches(&p, "a___z"));
        assert!(!matches(&p, "a_x_y_"));
        assert!(!matches(&p, "b_x_y_z"));
        assert_eq!(compile("{instance}{user}"), vec![Piece::Any]);
    }

    #[tokio::test]
    async fn a_platform_without_a_template_gets_a_handle_not_an_error() {
        let ghosts = Ghosts::new(GhostNamer::new(
            "e",
            "@switchboard:e",
            &default_ghost_templates(),
        ));
        // Unreachable: nothing may be asked of the homeserver.
        let client = MatrixClient::new("http://127.0.0.1:9", crate::config::Token::new("t"));
        let ann = Person::new(BridgeId::new("memory:left"), UserId::new("ann"), "Ann");
        let puppet = ghosts.ensure(&client, &ann, None).await.expect("a handle");
        assert_eq!(puppet.user.as_str(), "puppet:memory:left:ann");
        assert_eq!(puppet.display_name, "Ann (memory)");
        assert!(!ghosts.namer().is_ours(puppet.user.as_str()));
    }

    #[test]
    fn display_names_name_the_platform() {
        let p = Person::new(BridgeId::new("slack:acme"), UserId::new("U1"), "Alice");
        assert_eq!(ghost_display_name(&p), "Alice (Slack)");
    }
}
