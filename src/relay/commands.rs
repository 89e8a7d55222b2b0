//! Commands addressed to the bot, and direct-message portals.
//!
//! A command (`InboundKind::Command`) comes from `/switchboard …` in Slack, a
//! direct chat with the bot in Slack or Teams, or a Matrix room the bot
//! shares with a person (a management room). The intake queues it as a
//! `PendingAction::Command` on the lane of the channel it was written in
//! (inside its portal's lane if the channel is a portal, else the lane
//! [`COMMANDS`]), so it survives a crash like any delivery; the lane carries
//! it out here and queues the answer as a notice in the same channel.
//!
//! | command | who | what |
//! |---|---|---|
//! | `help` | anyone | the list below |
//! | `dm <name>` or `dm <bridge>/<user>` | anyone | a direct portal with that person |
//! | `call [title]` | anyone | (in a portal: handled as a call request by the connector) |
//! | `portal list` | admins | every portal, its source and members |
//! | `portal link <name> <member> <member>…` | admins | as `switchboard portal link` |
//! | `portal unlink <name>` | admins | as `switchboard portal unlink` |
//! | `logins` | admins | the stored logins, never their tokens |
//! | `calls` | admins | the newest calls of the registry |
//!
//! Administrators are `relay.admins` (`<bridge-id>/<user-id>`). A leading
//! `!`, or the word `switchboard` (with `!`, `/` or `@`), is ignored, so
//! `!switchboard portal list` and `!portal list` work too.
//!
//! **Direct portals.** `dm <name>` searches every other bridge
//! ([`Bridge::find_people`]); one match (or one exact name among several)
//! is opened: the person's bridge opens its bot's direct conversation with
//! them ([`Bridge::open_direct`]), the asker's bridge opens its bot's direct
//! conversation with the asker (or, where it has none, the channel the
//! command came from), and the two become a portal of source `direct` named
//! `dm-<hash of both people>`. A Matrix DM with a ghost
//! (`InboundKind::DirectChat`) does the same from the room itself: the ghost
//! stands for the person (the store's puppet mapping). Each side gets a
//! notice saying who is on the other end. A channel belongs to one portal,
//! so a newer direct portal that takes a channel of an older one replaces
//! it (both sides of the older one are told); a channel of a configured or
//! linked portal is never taken.

use super::{PortalError, PortalInfo, Shared};
use crate::store::records::{OutboxEntry, PendingAction, PortalRecord, PortalSource, stable_hash};
use crate::store::{OutboxKey, PortalId, StoreError};
use std::fmt::Write as _;
use std::sync::Arc;
use switchboard_model::{
    BridgeError, BridgeId, ChannelId, EventId, Inbound, InboundKind, Message, MessageId, Origin,
    Person, RetryKind, Sender, Timestamp, UserId,
};

/// The lane of commands written outside any portal. Never a portal's name:
/// portal names have no colon.
pub(crate) const COMMANDS: &str = "relay:commands";

/// At most this many people are listed when a name matches several.
const MAX_MATCHES: usize = 8;

/// At most this many portals or calls are listed in one answer.
const MAX_LISTED: usize = 50;

/// What anyone gets for `help`.
const HELP: &str = "Switchboard commands:\n\
• dm <name> — a direct conversation with someone on another platform (or dm <bridge>/<user> when a name matches several people)\n\
• call [title] — in a bridged conversation: a meeting for everyone in it\n\
• login <platform> — post on another platform as your own account there (login teams, login slack)\n\
• help — this list\n\
Administrators also have:\n\
• portal list — every bridged conversation and its channels\n\
• portal link <name> <bridge>/<channel> <bridge>/<channel>… — bridge channels together\n\
• portal unlink <name> — stop bridging a linked portal\n\
• logins — the linked accounts and who must sign in again\n\
• calls — the newest calls and meetings";

/// What a non-administrator gets for an administrator's command.
const ADMINS_ONLY: &str = "Only Switchboard's administrators may do that (relay.admins in its configuration). Send help for what you can do.";

/// The outbox entry a command or direct chat becomes in the intake: on the
/// lane of the channel it came from.
pub(super) fn queued(
    shared: &Shared,
    origin: &Origin,
    sender: &Person,
    action: PendingAction,
) -> Result<(OutboxKey, OutboxEntry), StoreError> {
    let portal = shared
        .portals
        .of(&origin.bridge, &origin.channel)
        .map_or_else(|| PortalId::new(COMMANDS), |(id, _)| id);
    queued_on(shared, portal, origin, sender, action)
}

/// The outbox entry of `action` on the lane of (`portal`, the origin's
/// channel).
pub(super) fn queued_on(
    shared: &Shared,
    portal: PortalId,
    origin: &Origin,
    sender: &Person,
    action: PendingAction,
) -> Result<(OutboxKey, OutboxEntry), StoreError> {
    let key = OutboxKey {
        portal,
        seq: shared.db.next_id()?,
        bridge: origin.bridge.clone(),
        channel: origin.channel.clone(),
    };
    let entry = OutboxEntry {
        origin: Some(origin.clone()),
        sender: Some(sender.clone()),
        action,
        attempts: 0,
        enqueued_ms: Timestamp::now().as_millis(),
        is_notice: false,
        maybe_delivered: false,
    };
    Ok((key, entry))
}

/// A command, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command<'a> {
    Help,
    /// `dm` and who with (possibly empty).
    Dm(&'a str),
    /// `call`, outside a portal.
    Call,
    PortalList,
    PortalLink {
        name: &'a str,
        members: Vec<&'a str>,
    },
    PortalUnlink(&'a str),
    /// `portal` with a word it does not know (or none it needs).
    PortalUsage,
    Logins,
    /// `login <platform>`: link the requester's own account there.
    Login(&'a str),
    Calls,
    Unknown(&'a str),
}

impl Command<'_> {
    fn admins_only(&self) -> bool {
        matches!(
            self,
            Command::PortalList
                | Command::PortalLink { .. }
                | Command::PortalUnlink(_)
                | Command::PortalUsage
                | Command::Logins
                | Command::Calls
        )
    }
}

/// Reads a command's text.
pub(super) fn parse(text: &str) -> Command<'_> {
    let mut text = text.trim();
    text = text.strip_prefix('!').unwrap_or(text).trim_start();
    for prefix in ["/switchboard", "@switchboard", "switchboard"] {
        if text.len() >= prefix.len()
            && text.is_char_boundary(prefix.len())
            && text[..prefix.len()].eq_ignore_ascii_case(prefix)
            && text[prefix.len()..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || c == ':' || c == ',')
        {
            text = text[prefix.len()..]
                .trim_start_matches([':', ','])
                .trim_start();
            text = text.strip_prefix('!').unwrap_or(text);
            break;
        }
    }
    let (word, rest) = text
        .split_once(char::is_whitespace)
        .map_or((text, ""), |(w, r)| (w, r.trim()));
    let mut words = rest.split_whitespace();
    match word.to_ascii_lowercase().as_str() {
        "" | "help" | "?" | "commands" => Command::Help,
        "dm" | "msg" | "message" | "chat" => Command::Dm(rest),
        "call" | "meet" => Command::Call,
        "portals" => Command::PortalList,
        "portal" => match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("list") => Command::PortalList,
            Some("link") => match words.next() {
                Some(name) => Command::PortalLink {
                    name,
                    members: words.collect(),
                },
                None => Command::PortalUsage,
            },
            Some("unlink") => match (words.next(), words.next()) {
                (Some(name), None) => Command::PortalUnlink(name),
                _ => Command::PortalUsage,
            },
            Some(_) => Command::PortalUsage,
        },
        "logins" => Command::Logins,
        "login" => match words.next() {
            Some(w) if w.eq_ignore_ascii_case("list") => Command::Logins,
            Some(w) => Command::Login(w),
            None => Command::Login(""),
        },
        "calls" => Command::Calls,
        _ => Command::Unknown(word),
    }
}

/// Why a command could not be carried out now.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failed {
    /// The store failed: try again.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A platform failed in a way worth retrying.
    #[error(transparent)]
    Bridge(#[from] BridgeError),
}

/// What the lane does with a `Command` op: carries it out and queues the
/// answer (and, for `dm`, the notices of the new portal).
pub(super) async fn run(
    shared: &Arc<Shared>,
    key: &OutboxKey,
    requester: Option<&Person>,
    text: &str,
    message: Option<&(MessageId, Box<Message>)>,
) -> Result<(), Failed> {
    let command = parse(text);
    // Written just after `dm`, before the connector knew its chat had
    // become a direct portal: not a command but a message for the other
    // person.
    if let (Command::Unknown(_), Some((id, message)), Some(requester)) =
        (&command, message, requester)
        && shared
            .portals
            .of(&key.bridge, &key.channel)
            .is_some_and(|(portal, _)| portal.as_str().starts_with(DIRECT_PORTAL_PREFIX))
    {
        let event = Inbound::new(
            Origin::new(key.bridge.clone(), key.channel.clone()),
            EventId::new(format!("{}:as-message", id.as_str())),
            Sender::new(requester.clone()),
            InboundKind::Message {
                id: id.clone(),
                message: (**message).clone(),
            },
        );
        super::intake::release(shared, &event).await?;
        return Ok(());
    }
    let is_admin = requester.is_some_and(|p| {
        shared
            .config()
            .admins
            .iter()
            .any(|(b, u)| *b == p.bridge && *u == p.user)
    });
    tracing::info!(bridge = %key.bridge, channel = %key.channel, command = command_label(&command), admin = is_admin, "Command received.");
    let answer = if command.admins_only() && !is_admin {
        ADMINS_ONLY.to_owned()
    } else {
        match command {
            Command::Help => HELP.to_owned(),
            Command::Dm(query) => match requester {
                Some(requester) => match dm(shared, key, requester, query).await? {
                    Some(answer) => answer,
                    // The new portal's notices said it all.
                    None => return Ok(()),
                },
                None => "Nobody to open a conversation for.".to_owned(),
            },
            Command::Call => "call works in a bridged conversation: send it there, and everyone in it gets the meeting's link.".to_owned(),
            Command::PortalList => portal_list(shared),
            Command::PortalLink { name, members } => {
                let members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
                match shared.link_portal(name, &members) {
                    Ok(portal) => format!("Linked portal {}: {}.", portal.name, members_text(&portal)),
                    Err(PortalError::Store(e)) => return Err(e.into()),
                    Err(e) => format!("Not linked: {e}."),
                }
            }
            Command::PortalUnlink(name) => match shared.unlink_portal(name) {
                Ok(()) => format!("Unlinked portal {name}."),
                Err(PortalError::Store(e)) => return Err(e.into()),
                Err(e) => format!("Not unlinked: {e}."),
            },
            Command::PortalUsage => "Usage: portal list | portal link <name> <bridge>/<channel> <bridge>/<channel>… | portal unlink <name>".to_owned(),
            Command::Logins => logins(shared)?,
            Command::Login(word) => match requester {
                Some(requester) => match login(shared, key, requester, word).await? {
                    Some(answer) => answer,
                    // The sign-in's instructions were the answer.
                    None => return Ok(()),
                },
                None => "Nobody to sign in.".to_owned(),
            },
            Command::Calls => calls(shared)?,
            Command::Unknown(word) => format!("I don't know the command {word:?}. Send help for the list."),
        }
    };
    answer_in(shared, &key.portal, &key.bridge, &key.channel, &answer)?;
    Ok(())
}

/// What the lane does with a `DirectChat` op: a person opened a direct
/// conversation (`key.channel`) with `puppet`; join it with the person the
/// puppet stands for.
pub(super) async fn direct_chat(
    shared: &Arc<Shared>,
    key: &OutboxKey,
    requester: Option<&Person>,
    puppet: &UserId,
) -> Result<(), Failed> {
    let Some(requester) = requester else {
        return Ok(());
    };
    let Some(person) = shared.db.person_of_puppet(&key.bridge, puppet)? else {
        tracing::warn!(bridge = %key.bridge, %puppet, "A direct chat with an account that stands for nobody Switchboard knows; ignored.");
        return Ok(());
    };
    let answer = open(shared, key, requester, &person, Some(key.channel.clone())).await?;
    if let Some(answer) = answer {
        answer_in(shared, &key.portal, &key.bridge, &key.channel, &answer)?;
    }
    Ok(())
}

/// A short name for logs.
fn command_label(command: &Command<'_>) -> &'static str {
    match command {
        Command::Help => "help",
        Command::Dm(_) => "dm",
        Command::Call => "call",
        Command::PortalList => "portal_list",
        Command::PortalLink { .. } => "portal_link",
        Command::PortalUnlink(_) => "portal_unlink",
        Command::PortalUsage => "portal",
        Command::Logins => "logins",
        Command::Login(_) => "login",
        Command::Calls => "calls",
        Command::Unknown(_) => "unknown",
    }
}

/// Queues a notice from the relay in `channel`, on the lane of `portal`.
fn answer_in(
    shared: &Arc<Shared>,
    portal: &PortalId,
    bridge: &BridgeId,
    channel: &ChannelId,
    text: &str,
) -> Result<(), StoreError> {
    shared.enqueue(
        portal.clone(),
        bridge.clone(),
        channel.clone(),
        notice(text),
    )
}

/// A notice from the relay itself, posted by the target's bot.
pub(super) fn notice(text: &str) -> OutboxEntry {
    OutboxEntry {
        origin: None,
        sender: None,
        action: PendingAction::Notice {
            text: text.to_owned(),
        },
        attempts: 0,
        enqueued_ms: Timestamp::now().as_millis(),
        is_notice: true,
        maybe_delivered: false,
    }
}

/// A platform's name for people: `Slack` for `slack:acme`.
pub(crate) fn platform(bridge: &BridgeId) -> String {
    let kind = bridge.as_str().split(':').next().unwrap_or(bridge.as_str());
    let mut chars = kind.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => bridge.as_str().to_owned(),
    }
}

fn members_text(portal: &PortalInfo) -> String {
    portal
        .members
        .iter()
        .map(|(b, c)| format!("{b}/{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn portal_list(shared: &Shared) -> String {
    let portals = shared.portals.all_with_source();
    if portals.is_empty() {
        return "No portals.".to_owned();
    }
    let mut out = format!("{} portal(s):", portals.len());
    for (id, members, source) in portals.iter().take(MAX_LISTED) {
        let members: Vec<String> = members.iter().map(|(b, c)| format!("{b}/{c}")).collect();
        let _ = write!(
            out,
            "\n• {} ({}): {}",
            id.as_str(),
            source.as_str(),
            members.join(", ")
        );
    }
    if portals.len() > MAX_LISTED {
        let _ = write!(out, "\n… and {} more", portals.len() - MAX_LISTED);
    }
    out
}

fn logins(shared: &Shared) -> Result<String, StoreError> {
    let Some(secrets) = &shared.secrets else {
        return Ok("Logins are off: the store has no key (store.key_file).".to_owned());
    };
    let statuses = shared.db.login_statuses(secrets)?;
    if statuses.is_empty() {
        return Ok("No logins.".to_owned());
    }
    let mut out = format!("{} login(s):", statuses.len());
    for s in statuses.iter().take(MAX_LISTED) {
        let _ = write!(
            out,
            "\n• {}: {}/{} as {}",
            s.bridge, s.person_bridge, s.person_user, s.account_user
        );
        if let Some(why) = &s.needs_reauth {
            let _ = write!(out, " — must sign in again ({why})");
        }
    }
    Ok(out)
}

/// How long a sign-in started from a chat may take before it is given up
/// (the platform's own code expires sooner: Teams' after 15 minutes).
const LOGIN_WAIT: std::time::Duration = std::time::Duration::from_secs(20 * 60);

/// The bridge `word` names: its id (`teams:contoso`), or its platform
/// (`teams`) when exactly one bridge is of that platform.
fn named_bridge(shared: &Shared, word: &str) -> Option<BridgeId> {
    if let Some(id) = shared
        .bridges
        .keys()
        .find(|id| id.as_str().eq_ignore_ascii_case(word))
    {
        return Some(id.clone());
    }
    let mut of_kind = shared.bridges.keys().filter(|id| {
        id.as_str()
            .split(':')
            .next()
            .is_some_and(|kind| kind.eq_ignore_ascii_case(word))
    });
    match (of_kind.next(), of_kind.next()) {
        (Some(one), None) => Some(one.clone()),
        _ => None,
    }
}

/// `login <platform>`: starts the platform's sign-in for the requester and
/// answers with its instructions; when they have signed in, their account
/// is stored (as `switchboard login` would) and they are told so here.
/// `None` when the instructions were queued already.
async fn login(
    shared: &Arc<Shared>,
    key: &OutboxKey,
    requester: &Person,
    word: &str,
) -> Result<Option<String>, Failed> {
    let others: Vec<&str> = {
        let mut ids: Vec<&str> = shared
            .bridges
            .keys()
            .filter(|id| **id != requester.bridge)
            .map(BridgeId::as_str)
            .collect();
        ids.sort_unstable();
        ids
    };
    let Some(target) = named_bridge(shared, word).filter(|t| *t != requester.bridge) else {
        return Ok(Some(if word.is_empty() {
            format!("Usage: login <platform>, one of: {}.", others.join(", "))
        } else {
            format!(
                "No other platform {word:?} here. Send login followed by one of: {}.",
                others.join(", ")
            )
        }));
    };
    let name = platform(&target);
    let Some(secrets) = shared.secrets.clone() else {
        return Ok(Some(
            "Linking accounts needs the store key (store.key_file in Switchboard's configuration): ask an administrator.".to_owned(),
        ));
    };
    let Some(entry) = shared.bridges.get(&target) else {
        return Ok(None);
    };
    let flow = match entry.bridge.begin_login().await {
        Ok(Some(flow)) => flow,
        Ok(None) => {
            return Ok(Some(format!(
                "Signing in to {name} from a chat is not available: an administrator can link your account with switchboard login on the server."
            )));
        }
        Err(e) if retryable(&e) => return Err(e.into()),
        Err(e) => return Ok(Some(format!("The sign-in to {name} could not start: {e}."))),
    };
    tracing::info!(bridge = %target, person_bridge = %requester.bridge, "Sign-in started from a chat.");
    // The instructions first, then (from the task) how it ended.
    answer_in(shared, &key.portal, &key.bridge, &key.channel, &flow.prompt)?;
    let done = flow.done;
    let task_shared = shared.clone();
    let key = key.clone();
    let person = requester.clone();
    let word = word.to_owned();
    shared.tracker.spawn(async move {
        let shared = task_shared;
        let stop = shared.lanes_stop.clone();
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            outcome = tokio::time::timeout(LOGIN_WAIT, done) => outcome,
        };
        let text = match outcome {
            Ok(Ok(account)) => match store_login(&shared, &secrets, &target, &person, &account) {
                Ok(()) => {
                    tracing::info!(bridge = %target, person_bridge = %person.bridge, "Account linked from a chat.");
                    format!(
                        "Linked: what you write now appears on {name} as your own account ({}).",
                        account.user
                    )
                }
                Err(e) => {
                    tracing::error!(bridge = %target, error = %e, "A signed-in account could not be stored.");
                    format!("You signed in to {name}, but the account could not be stored ({e}). Send login {word} to try again.")
                }
            },
            Ok(Err(e)) => format!("The sign-in to {name} did not complete: {e}. Send login {word} to start again."),
            Err(_) => format!("The sign-in to {name} was not completed in time. Send login {word} to start again."),
        };
        if let Err(e) = answer_in(&shared, &key.portal, &key.bridge, &key.channel, &text) {
            tracing::error!(error = %e, "Could not queue how a sign-in ended.");
        }
    });
    Ok(None)
}

/// Stores a linked account as the admin API does: the login, the person's
/// puppet forgotten (they now post as themselves), the bridge's cache
/// reloaded.
fn store_login(
    shared: &Shared,
    secrets: &crate::store::login::SecretBox,
    target: &BridgeId,
    person: &Person,
    account: &switchboard_model::LinkedAccount,
) -> Result<(), StoreError> {
    let who = (&person.bridge, &person.user);
    shared.db.put_login(secrets, target, who, account)?;
    shared.db.forget_puppet(target, who)?;
    if let Some(linked) = shared.linked_accounts(target) {
        linked.reload()?;
    }
    Ok(())
}

fn calls(shared: &Shared) -> Result<String, StoreError> {
    use switchboard_model::CallState;
    let calls = shared.calls()?;
    if calls.is_empty() {
        return Ok("No calls yet.".to_owned());
    }
    let mut out = String::from("Newest calls:");
    for call in calls.iter().take(10) {
        let r = &call.record;
        let state = match &r.state {
            CallState::Started | CallState::Updated => "going on".to_owned(),
            CallState::Ended {
                duration: Some(duration),
            } => format!(
                "ended after {}",
                switchboard_model::call::format_duration(*duration)
            ),
            CallState::Ended { duration: None } => "ended".to_owned(),
        };
        let _ = write!(
            out,
            "\n• {} in {} — {}",
            r.title.as_deref().unwrap_or("Call"),
            r.portal,
            state
        );
        if let Some(url) = &r.join_url {
            let _ = write!(out, " — {url}");
        }
    }
    Ok(out)
}

/// Only errors worth retrying fail the op; the rest are told to the person.
fn retryable(e: &BridgeError) -> bool {
    matches!(
        e.retry_kind(),
        RetryKind::Transient { .. } | RetryKind::RateLimited { .. }
    )
}

/// `dm <query>`: finds the person and opens the portal. Returns the answer
/// for the channel the command was written in, if it needs one beyond the
/// new portal's notices.
async fn dm(
    shared: &Arc<Shared>,
    key: &OutboxKey,
    requester: &Person,
    query: &str,
) -> Result<Option<String>, Failed> {
    let query = query.trim().trim_start_matches('@').trim();
    if query.is_empty() {
        return Ok(Some("Who with? Send dm <name>, e.g. dm Ann.".to_owned()));
    }
    let person = match find(shared, &key.bridge, query).await? {
        Found::One(p) => p,
        Found::None(searched) => {
            return Ok(Some(format!(
                "Nobody matching {query:?} on {}.",
                if searched.is_empty() {
                    "any other platform".to_owned()
                } else {
                    searched.join(", ")
                }
            )));
        }
        Found::Several(people) => {
            let mut out = format!("Several people match {query:?}; send one of:");
            for p in &people {
                let _ = write!(
                    out,
                    "\n• dm {}/{} — {} ({})",
                    p.bridge,
                    p.user,
                    p.display_name,
                    platform(&p.bridge)
                );
            }
            return Ok(Some(out));
        }
    };
    let mine = match shared.bridges.get(&key.bridge) {
        Some(entry) => match entry.bridge.open_direct(&requester.user, &person).await {
            Ok(Some(channel)) => Some(channel),
            Ok(None) => Some(key.channel.clone()),
            Err(e) if retryable(&e) => return Err(e.into()),
            Err(e) => {
                return Ok(Some(format!(
                    "I could not open a direct conversation with you on {}: {e}",
                    platform(&key.bridge)
                )));
            }
        },
        None => None,
    };
    open(shared, key, requester, &person, mine).await
}

/// The outcome of a search.
enum Found {
    One(Person),
    /// Nobody; the platforms searched.
    None(Vec<String>),
    Several(Vec<Person>),
}

/// Finds `query` on every bridge other than `asker_bridge`: an explicit
/// `<bridge>/<user>`, else the bridges' directories.
async fn find(shared: &Shared, asker_bridge: &BridgeId, query: &str) -> Result<Found, Failed> {
    if let Some((bridge, user)) = query.split_once('/')
        && let Some(entry) = shared.bridges.get(&BridgeId::new(bridge))
        && !user.is_empty()
    {
        let user = UserId::new(user);
        // Its name, where the directory knows it.
        let named = match entry.bridge.find_people(user.as_str(), MAX_MATCHES).await {
            Ok(people) => people.into_iter().find(|p| p.user == user),
            Err(e) if retryable(&e) => return Err(e.into()),
            Err(_) => None,
        };
        let person = named
            .unwrap_or_else(|| Person::new(BridgeId::new(bridge), user.clone(), user.as_str()));
        return Ok(Found::One(person));
    }
    let mut ids: Vec<&BridgeId> = shared
        .bridges
        .keys()
        .filter(|b| *b != asker_bridge)
        .collect();
    ids.sort();
    let mut searched = Vec::new();
    let mut found: Vec<Person> = Vec::new();
    for id in ids {
        let Some(entry) = shared.bridges.get(id) else {
            continue;
        };
        match entry.bridge.find_people(query, MAX_MATCHES).await {
            Ok(people) => found.extend(people.into_iter().filter(|p| !p.is_bot)),
            Err(e) if retryable(&e) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(bridge = %id, error = %e, "Could not search the people of a bridge.");
                continue;
            }
        }
        searched.push(format!("{} ({id})", platform(id)));
    }
    found.dedup_by(|a, b| a.bridge == b.bridge && a.user == b.user);
    let exact: Vec<&Person> = found
        .iter()
        .filter(|p| p.display_name.eq_ignore_ascii_case(query) || p.user.as_str() == query)
        .collect();
    Ok(match (found.len(), exact.as_slice()) {
        (0, _) => Found::None(searched),
        (1, _) => Found::One(found.remove(0)),
        (_, [one]) => Found::One((*one).clone()),
        _ => {
            found.truncate(MAX_MATCHES);
            Found::Several(found)
        }
    })
}

/// Opens `person`'s side, links the direct portal between `mine` (the
/// requester's side, on `key.bridge`) and it, and queues the notices.
/// Returns the answer for `key.channel`, if it needs one beyond the notices.
async fn open(
    shared: &Arc<Shared>,
    key: &OutboxKey,
    requester: &Person,
    person: &Person,
    mine: Option<ChannelId>,
) -> Result<Option<String>, Failed> {
    let name = format!("{} ({})", person.display_name, platform(&person.bridge));
    let Some(mine) = mine else {
        return Ok(Some(format!(
            "{} is not a bridge of this Switchboard.",
            key.bridge
        )));
    };
    let Some(target) = shared.bridges.get(&person.bridge) else {
        return Ok(Some(format!(
            "{} is not a bridge of this Switchboard.",
            person.bridge
        )));
    };
    let theirs = match target.bridge.open_direct(&person.user, requester).await {
        Ok(Some(channel)) => channel,
        Ok(None) => {
            return Ok(Some(format!(
                "{} has no direct conversations I can open.",
                platform(&person.bridge)
            )));
        }
        Err(e) if retryable(&e) => return Err(e.into()),
        Err(e) => {
            return Ok(Some(format!(
                "I could not open a direct conversation with {name}: {e}"
            )));
        }
    };
    let id = direct_portal_id(requester, person);
    let members = vec![
        (key.bridge.clone(), mine.clone()),
        (person.bridge.clone(), theirs.clone()),
    ];
    let linked = match link_direct(shared, &id, members) {
        Ok(linked) => linked,
        Err(PortalError::Store(e)) => return Err(e.into()),
        Err(e) => return Ok(Some(format!("I could not connect you with {name}: {e}"))),
    };
    let replaced = match linked {
        Linked::Already => {
            let answer =
                format!("You are already connected with {name}: write in this conversation.");
            answer_in(shared, &id, &key.bridge, &mine, &answer)?;
            return Ok((mine != key.channel).then(|| {
                format!("You are already connected with {name}, in your direct messages with Switchboard.")
            }));
        }
        Linked::New { replaced } => replaced,
    };
    tracing::info!(portal = %id, requester = %requester.bridge, person = %person.bridge, "Direct portal opened.");
    for (old, members) in &replaced {
        for (bridge, channel) in members.iter() {
            let still = (bridge == &key.bridge && channel == &mine)
                || (bridge == &person.bridge && channel == &theirs);
            if !still {
                answer_in(
                    shared,
                    old,
                    bridge,
                    channel,
                    "This direct conversation is closed: the other side opened another one.",
                )?;
            }
        }
    }
    answer_in(
        shared,
        &id,
        &key.bridge,
        &mine,
        &format!(
            "You are now connected with {name}. What you write here reaches them, and their replies appear here."
        ),
    )?;
    answer_in(
        shared,
        &id,
        &person.bridge,
        &theirs,
        &format!(
            "{} ({}) started a direct conversation with you through Switchboard. Reply here to answer.",
            requester.display_name,
            platform(&requester.bridge)
        ),
    )?;
    Ok((mine != key.channel).then(|| {
        format!(
            "Opened a direct conversation with {name} in your direct messages with Switchboard."
        )
    }))
}

/// How the names of direct portals begin.
pub(crate) const DIRECT_PORTAL_PREFIX: &str = "dm-";

/// The name of the direct portal between two people, the same whoever asks.
pub(crate) fn direct_portal_id(a: &Person, b: &Person) -> PortalId {
    let mut sides = [
        format!("{}/{}", a.bridge, a.user),
        format!("{}/{}", b.bridge, b.user),
    ];
    sides.sort();
    PortalId::new(format!(
        "{DIRECT_PORTAL_PREFIX}{:016x}",
        stable_hash(&format!("{}\u{1f}{}", sides[0], sides[1]))
    ))
}

/// What [`link_direct`] did.
enum Linked {
    /// The same portal was already there.
    Already,
    /// Linked, replacing these direct portals (with their members).
    New {
        replaced: Vec<(PortalId, super::portals::Members)>,
    },
}

/// Stores a direct portal, replacing any direct portal holding one of its
/// channels (or of its name).
fn link_direct(
    shared: &Arc<Shared>,
    id: &PortalId,
    members: Vec<(BridgeId, ChannelId)>,
) -> Result<Linked, PortalError> {
    let _edit = shared.portals.edit_lock();
    let mut replaced: Vec<(PortalId, super::portals::Members)> = Vec::new();
    if let Some((existing, source)) = shared.portals.get(id) {
        if source != PortalSource::Direct {
            return Err(PortalError::Conflict(format!(
                "portal {:?} already exists",
                id.as_str()
            )));
        }
        let same = existing.len() == members.len() && members.iter().all(|m| existing.contains(m));
        if same {
            return Ok(Linked::Already);
        }
        replaced.push((id.clone(), existing));
    }
    for (bridge, channel) in &members {
        let Some((other, other_members)) = shared.portals.of(bridge, channel) else {
            continue;
        };
        if replaced.iter().any(|(r, _)| *r == other) {
            continue;
        }
        match shared.portals.get(&other).map(|(_, source)| source) {
            Some(PortalSource::Direct) => replaced.push((other, other_members)),
            _ => {
                return Err(PortalError::Conflict(format!(
                    "{bridge}/{channel} already relays portal {:?}",
                    other.as_str()
                )));
            }
        }
    }
    for (old, _) in &replaced {
        shared.db.remove_portal(old)?;
        tracing::info!(portal = %old, "Direct portal replaced by a newer one.");
    }
    shared.db.put_portal(
        id,
        &PortalRecord {
            members,
            relay_calls: true,
            meetings: None,
            source: PortalSource::Direct,
        },
    )?;
    shared.db.flush()?;
    let stored = shared.db.portals()?;
    shared.portals.replace(&stored);
    Ok(Linked::New { replaced })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_with_or_without_a_prefix() {
        assert_eq!(parse(""), Command::Help);
        assert_eq!(parse("  HELP "), Command::Help);
        assert_eq!(parse("dm Bob Builder"), Command::Dm("Bob Builder"));
        assert_eq!(parse("!dm bob"), Command::Dm("bob"));
        assert_eq!(parse("!switchboard dm bob"), Command::Dm("bob"));
        assert_eq!(parse("Switchboard: portal list"), Command::PortalList);
        assert_eq!(parse("@switchboard portals"), Command::PortalList);
        assert_eq!(parse("portal"), Command::PortalList);
        assert_eq!(
            parse("portal link sales slack:a/C1 teams:b/19:x"),
            Command::PortalLink {
                name: "sales",
                members: vec!["slack:a/C1", "teams:b/19:x"],
            }
        );
        assert_eq!(parse("portal unlink sales"), Command::PortalUnlink("sales"));
        assert_eq!(parse("portal unlink"), Command::PortalUsage);
        assert_eq!(parse("portal frobnicate"), Command::PortalUsage);
        assert_eq!(parse("login list"), Command::Logins);
        assert_eq!(parse("logins"), Command::Logins);
        assert_eq!(parse("login teams"), Command::Login("teams"));
        assert_eq!(
            parse("Login Teams:contoso"),
            Command::Login("Teams:contoso")
        );
        assert_eq!(parse("login"), Command::Login(""));
        assert_eq!(parse("calls"), Command::Calls);
        assert_eq!(parse("call Standup"), Command::Call);
        assert_eq!(parse("dm"), Command::Dm(""));
        assert_eq!(parse("switchboardx"), Command::Unknown("switchboardx"));
        assert_eq!(parse("frobnicate now"), Command::Unknown("frobnicate"));
        assert_eq!(parse("ésw"), Command::Unknown("ésw"));
    }

    #[test]
    fn administrators_only_for_administration() {
        assert!(!parse("help").admins_only());
        assert!(!parse("dm bob").admins_only());
        assert!(parse("portal list").admins_only());
        assert!(parse("portal link a b c").admins_only());
        assert!(parse("portal unlink a").admins_only());
        assert!(parse("logins").admins_only());
        assert!(parse("calls").admins_only());
    }

    #[test]
    fn a_direct_portal_has_one_name_whoever_asks() {
        let ann = Person::new("slack:a".into(), "U1".into(), "Ann");
        let bob = Person::new("teams:b".into(), "u-2".into(), "Bob");
        let id = direct_portal_id(&ann, &bob);
        assert_eq!(id, direct_portal_id(&bob, &ann));
        assert!(id.as_str().starts_with("dm-"));
        assert!(crate::config::check_portal_name(id.as_str()).is_ok());
        let cid = Person::new("teams:b".into(), "u-3".into(), "Cid");
        assert_ne!(id, direct_portal_id(&ann, &cid));
    }

    #[test]
    fn platforms_are_named_from_the_bridge_type() {
        assert_eq!(platform(&"slack:acme".into()), "Slack");
        assert_eq!(platform(&"teams:contoso".into()), "Teams");
        assert_eq!(platform(&"matrix:main".into()), "Matrix");
    }
}
