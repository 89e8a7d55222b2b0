//! `reactions.add` and `reactions.remove` on messages.

use serde_json::json;

use super::{ApiError, ApiResult, Ctx, Reply, can_see};
use crate::ids::Ts;

/// Emoji names: lower-case letters, digits, `_`, `+`, `-`, `'`, optionally with a skin tone
/// (`thumbsup::skin-tone-2`). Colons around the name are not accepted.
fn valid_name(name: &str) -> bool {
    let (base, tone) = match name.split_once("::") {
        Some((b, t)) => (b, Some(t)),
        None => (name, None),
    };
    let ok_base = !base.is_empty()
        && base.len() <= 100
        && base
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_+-'".contains(c));
    let ok_tone = tone.is_none_or(|t| {
        matches!(
            t,
            "skin-tone-2" | "skin-tone-3" | "skin-tone-4" | "skin-tone-5" | "skin-tone-6"
        )
    });
    ok_base && ok_tone
}

fn target(ctx: &Ctx<'_>) -> Result<(String, Ts, String), ApiError> {
    let name = ctx.args.str("name").unwrap_or_default();
    let channel = ctx.args.nonempty("channel");
    let ts = ctx.args.nonempty("timestamp");
    let (channel, ts) = match (channel, ts) {
        (Some(c), Some(t)) => (c, Ts::parse(&t).ok_or("bad_timestamp")?),
        (None, None)
            if ctx.args.nonempty("file").is_some()
                || ctx.args.nonempty("file_comment").is_some() =>
        {
            return Err("not_reactable".into());
        }
        _ => return Err("no_item_specified".into()),
    };
    if !valid_name(&name) {
        return Err("invalid_name".into());
    }
    Ok((channel, ts, name))
}

// reactions.add — https://docs.slack.dev/reference/methods/reactions.add
/// Adds the caller's reaction (`already_reacted` when present).
pub fn add(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let (channel, ts, name) = target(ctx)?;
    ctx.sim.mutate(|st, out| {
        let ch = st.channel(&channel).ok_or("channel_not_found")?;
        if !can_see(c, ch) {
            return Err("channel_not_found".into());
        }
        if ch.archived {
            return Err("is_archived".into());
        }
        st.react(&channel, ts, &c.user, &name, out)?;
        Ok(Reply::json(json!({})))
    })
}

// reactions.remove — https://docs.slack.dev/reference/methods/reactions.remove
/// Removes the caller's reaction (`no_reaction` when absent).
pub fn remove(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let (channel, ts, name) = target(ctx)?;
    ctx.sim.mutate(|st, out| {
        let ch = st.channel(&channel).ok_or("channel_not_found")?;
        if !can_see(c, ch) {
            return Err("channel_not_found".into());
        }
        st.unreact(&channel, ts, &c.user, &name, out)?;
        Ok(Reply::json(json!({})))
    })
}
