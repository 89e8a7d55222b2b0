//! Who wrote a message or did an action, and whether it was us.
//!
//! Slack describes authors in several overlapping ways: `user` (`U…`),
//! `bot_id` (`B…`) with a `bot_profile`, per-message `username`/`icons`
//! overrides (`chat:write.customize`, which is how our puppets post), and
//! sometimes an inline `user_profile`. See
//! <https://docs.slack.dev/reference/events/message/bot_message> and
//! <https://docs.slack.dev/reference/scopes/chat.write.customize>.

use super::ParseContext;
use super::json::{self, Obj};
use switchboard_model::{Person, Sender, UserId};

/// Slack's own system user: author of tombstones and huddle messages, and
/// the actor we name when Slack reports none.
pub(super) const SLACKBOT: &str = "USLACKBOT";

/// The author of a message object (a message event, `message`,
/// `previous_message`), or None when it names neither a user nor a bot.
pub(super) fn of_message(msg: &Obj, ctx: &ParseContext<'_>) -> Option<Sender> {
    let user = json::opt_nonempty(msg, "user");
    let bot_id = json::opt_nonempty(msg, "bot_id");
    let id = user.or(bot_id)?;
    let bot_profile = json::opt_obj(msg, "bot_profile");
    let is_bot =
        bot_id.is_some() || json::opt_str(msg, "subtype") == Some("bot_message") || id == SLACKBOT;
    let mut person = Person::new(
        ctx.bridge.clone(),
        UserId::new(id),
        display_name(msg, id, bot_profile, ctx),
    );
    person.avatar = avatar(msg, bot_profile);
    person.is_bot = is_bot;
    Some(if is_ours(msg, bot_profile, ctx) {
        Sender::ours(person)
    } else {
        Sender::new(person)
    })
}

/// A user known only by id (reactions, membership): their name from `names`,
/// ours when it is our bot user.
pub(super) fn of_user(user: &str, ctx: &ParseContext<'_>) -> Sender {
    let person = user_person(user, ctx);
    if ctx.our_bot_user == Some(user) {
        Sender::ours(person)
    } else {
        Sender::new(person)
    }
}

/// A person known only by their Slack user id.
pub(super) fn user_person(user: &str, ctx: &ParseContext<'_>) -> Person {
    let name = ctx.names.user(user).unwrap_or_else(|| user.to_owned());
    let person = Person::new(ctx.bridge.clone(), UserId::new(user), name);
    if user == SLACKBOT {
        person.bot()
    } else {
        person
    }
}

/// Slack itself, for actions reported without an actor.
pub(super) fn slackbot(ctx: &ParseContext<'_>) -> Sender {
    let name = ctx
        .names
        .user(SLACKBOT)
        .unwrap_or_else(|| "Slackbot".to_owned());
    Sender::new(Person::new(ctx.bridge.clone(), UserId::new(SLACKBOT), name).bot())
}

/// The name to show: a per-message `username` override, the inline
/// `user_profile`, our name cache, the bot's profile name, else the id.
fn display_name(msg: &Obj, id: &str, bot_profile: Option<&Obj>, ctx: &ParseContext<'_>) -> String {
    let profile = json::opt_obj(msg, "user_profile");
    json::opt_nonempty(msg, "username")
        .or_else(|| profile.and_then(|p| json::opt_nonempty(p, "display_name")))
        .or_else(|| profile.and_then(|p| json::opt_nonempty(p, "real_name")))
        .map(str::to_owned)
        .or_else(|| ctx.names.user(id))
        .or_else(|| {
            bot_profile
                .and_then(|b| json::opt_nonempty(b, "name"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| id.to_owned())
}

/// The avatar: a per-message `icons` override, the inline `user_profile`,
/// else the bot's profile icons (largest first).
fn avatar(msg: &Obj, bot_profile: Option<&Obj>) -> Option<String> {
    json::opt_obj(msg, "icons")
        .and_then(pick)
        .or_else(|| json::opt_obj(msg, "user_profile").and_then(pick))
        .or_else(|| {
            bot_profile
                .and_then(|b| json::opt_obj(b, "icons"))
                .and_then(pick)
        })
        .map(str::to_owned)
}

/// The largest of an icon set's images.
fn pick(icons: &Obj) -> Option<&str> {
    const SIZES: [&str; 4] = ["image_72", "image_64", "image_48", "image_36"];
    SIZES.iter().find_map(|k| json::opt_nonempty(icons, k))
}

/// True when our bot, our app or our bot user posted this, or it carries our
/// relay marker in its `metadata`.
fn is_ours(msg: &Obj, bot_profile: Option<&Obj>, ctx: &ParseContext<'_>) -> bool {
    let same = |ours: Option<&str>, theirs: Option<&str>| matches!((ours, theirs), (Some(a), Some(b)) if !a.is_empty() && a == b);
    let app_id = json::opt_nonempty(msg, "app_id")
        .or_else(|| bot_profile.and_then(|b| json::opt_nonempty(b, "app_id")));
    let marker = json::opt_obj(msg, "metadata").and_then(|m| json::opt_str(m, "event_type"));
    same(ctx.our_bot_id, json::opt_nonempty(msg, "bot_id"))
        || same(ctx.our_app_id, app_id)
        || same(ctx.our_bot_user, json::opt_nonempty(msg, "user"))
        || same(Some(ctx.relay_marker), marker)
}
