//! Emoji shortcodes ↔ Unicode, for message text and reactions.
//!
//! Slack names emoji by shortcode (`:thumbsup:` in text, `"+1"` as a
//! reaction name). Its names come from iamcal/emoji-data, which mostly agrees
//! with GitHub's gemoji (the table the `emojis` crate ships), with a few
//! differences this module papers over:
//!
//! - some emoji have a different Slack name (`thinking_face` for 🤔 where
//!   gemoji says `thinking`); [`SLACK_NAMES`] lists them, the preferred Slack
//!   name first;
//! - country flags are `flag-xx` (`flag-fr` → 🇫🇷), subdivision flags
//!   `flag-england`, `flag-scotland`, `flag-wales`;
//! - names of ZWJ sequences use hyphens (`man-shrugging`) where gemoji uses
//!   underscores (`man_shrugging`);
//! - skin tones are a suffix: `+1::skin-tone-2` is 👍🏻 (tones 2–6 are the
//!   five Fitzpatrick modifiers, `skin-tone-2-4` a two-person combination).
//!
//! Custom workspace emoji have no Unicode: [`to_unicode`] returns `None` and
//! the relay carries them as `:name:`.
//!
//! Slack documentation: <https://docs.slack.dev/messaging/formatting-message-text#emoji>
//! (the emoji list is <https://github.com/iamcal/emoji-data>),
//! reactions: <https://docs.slack.dev/reference/methods/reactions.add>.

use emojis::SkinTone;

/// Emoji whose Slack name differs from its gemoji shortcode, as
/// `(Slack name, gemoji shortcode)`. For one emoji the preferred Slack name
/// comes first. Slack also accepts most gemoji names, which
/// [`to_unicode`] falls back to.
pub const SLACK_NAMES: &[(&str, &str)] = &[
    ("thinking_face", "thinking"),
    ("face_with_rolling_eyes", "roll_eyes"),
    ("hugging_face", "hugs"),
    ("rolling_on_the_floor_laughing", "rofl"),
    ("face_palm", "facepalm"),
    ("robot_face", "robot"),
    ("the_horns", "metal"),
    ("spock-hand", "vulcan_salute"),
    ("star-struck", "star_struck"),
    ("face_with_hand_over_mouth", "hand_over_mouth"),
    ("face_with_raised_eyebrow", "raised_eyebrow"),
    ("face_with_monocle", "monocle_face"),
    ("face_with_symbols_on_mouth", "cursing_face"),
    ("serious_face_with_symbols_covering_mouth", "cursing_face"),
    ("face_vomiting", "vomiting_face"),
    (
        "smiling_face_with_3_hearts",
        "smiling_face_with_three_hearts",
    ),
    ("face_with_cowboy_hat", "cowboy_hat_face"),
    ("lion_face", "lion"),
    ("unicorn_face", "unicorn"),
    ("sleuth_or_spy", "detective"),
    ("speaking_head_in_silhouette", "speaking_head"),
    ("waving_white_flag", "white_flag"),
    ("rainbow-flag", "rainbow_flag"),
    ("dove_of_peace", "dove"),
    ("white_frowning_face", "frowning_face"),
    ("mostly_sunny", "sun_behind_small_cloud"),
    ("barely_sunny", "sun_behind_large_cloud"),
    ("partly_sunny_rain", "sun_behind_rain_cloud"),
    ("rain_cloud", "cloud_with_rain"),
    ("snow_cloud", "cloud_with_snow"),
    ("lightning", "cloud_with_lightning"),
    ("wind_blowing_face", "wind_face"),
    (
        "man_in_business_suit_levitating",
        "business_suit_levitating",
    ),
    (
        "heavy_heart_exclamation_mark_ornament",
        "heavy_heart_exclamation",
    ),
    ("male-technologist", "man_technologist"),
    ("female-technologist", "woman_technologist"),
    ("man-shrugging", "man_shrugging"),
    ("woman-shrugging", "woman_shrugging"),
    ("man-facepalming", "man_facepalming"),
    ("woman-facepalming", "woman_facepalming"),
    ("man-raising-hand", "raising_hand_man"),
    ("woman-raising-hand", "raising_hand_woman"),
    ("man-woman-boy", "family_man_woman_boy"),
    ("first_place_medal", "1st_place_medal"),
    ("second_place_medal", "2nd_place_medal"),
    ("third_place_medal", "3rd_place_medal"),
    ("glass_of_milk", "milk_glass"),
    ("octagonal_sign", "stop_sign"),
    ("shopping_trolley", "shopping_cart"),
    ("three_button_mouse", "computer_mouse"),
    ("spiral_calendar_pad", "spiral_calendar"),
    ("spiral_note_pad", "spiral_notepad"),
    ("dagger_knife", "dagger"),
    ("house_buildings", "houses"),
    ("derelict_house_building", "derelict_house"),
    ("knife_fork_plate", "plate_with_cutlery"),
    ("medal", "medal_military"),
    ("sports_medal", "medal_sports"),
    ("admission_tickets", "tickets"),
    ("film_frames", "film_strip"),
    ("helmet_with_white_cross", "rescue_worker_helmet"),
    ("weight_lifter", "weight_lifting"),
    ("golfer", "golfing"),
    ("person_with_ball", "bouncing_ball_person"),
    ("racing_motorcycle", "motorcycle"),
    ("fencer", "person_fencing"),
    ("wrestlers", "wrestling"),
    ("person_doing_cartwheel", "cartwheeling"),
    ("handball", "handball_person"),
    ("juggling", "juggling_person"),
    ("information_desk_person", "tipping_hand_person"),
    ("keycap_star", "asterisk"),
    // Slack's `email` is ✉️ and `e-mail` is 📧; gemoji has it the other way round.
    ("email", "envelope"),
    ("e-mail", "email"),
    ("flag-england", "england"),
    ("flag-scotland", "scotland"),
    ("flag-wales", "wales"),
];

/// Skin tones in `emojis`' order: index `n` is `SkinTone` discriminant `n`.
const TONES: [SkinTone; 26] = [
    SkinTone::Default,
    SkinTone::Light,
    SkinTone::MediumLight,
    SkinTone::Medium,
    SkinTone::MediumDark,
    SkinTone::Dark,
    SkinTone::LightAndMediumLight,
    SkinTone::LightAndMedium,
    SkinTone::LightAndMediumDark,
    SkinTone::LightAndDark,
    SkinTone::MediumLightAndLight,
    SkinTone::MediumLightAndMedium,
    SkinTone::MediumLightAndMediumDark,
    SkinTone::MediumLightAndDark,
    SkinTone::MediumAndLight,
    SkinTone::MediumAndMediumLight,
    SkinTone::MediumAndMediumDark,
    SkinTone::MediumAndDark,
    SkinTone::MediumDarkAndLight,
    SkinTone::MediumDarkAndMediumLight,
    SkinTone::MediumDarkAndMedium,
    SkinTone::MediumDarkAndDark,
    SkinTone::DarkAndLight,
    SkinTone::DarkAndMediumLight,
    SkinTone::DarkAndMedium,
    SkinTone::DarkAndMediumDark,
];

/// The Unicode for a Slack emoji name (`thumbsup`, `+1`, `smile`, `flag-fr`,
/// `wave::skin-tone-3`; surrounding colons are tolerated), if it has one.
/// Custom emoji, unknown names and malformed skin-tone suffixes give `None`;
/// a skin tone the emoji does not take is ignored.
pub fn to_unicode(name: &str) -> Option<String> {
    let name = name.strip_prefix(':').unwrap_or(name);
    let name = name.strip_suffix(':').unwrap_or(name);
    let (base, tone) = match name.split_once("::") {
        Some((base, suffix)) => (base, Some(parse_tone(suffix)?)),
        None => (name, None),
    };
    let emoji = lookup(base)?;
    let toned = tone.and_then(|t| emoji.with_skin_tone(t));
    Some(toned.unwrap_or(emoji).as_str().to_owned())
}

/// The Slack name for a Unicode emoji (`👍` → `+1`, `🤔` → `thinking_face`,
/// `🇫🇷` → `flag-fr`, `👍🏻` → `+1::skin-tone-2`), if Slack has one.
/// Text and emoji presentation (`❤` / `❤️`) are treated alike.
pub fn to_name(unicode: &str) -> Option<String> {
    let emoji = emojis::get(unicode)?;
    match emoji.skin_tone() {
        None | Some(SkinTone::Default) => base_name(emoji),
        Some(tone) => {
            let base = emoji.skin_tones()?.next()?;
            let name = base_name(base)?;
            Some(format!("{name}::{}", tone_suffix(tone)?))
        }
    }
}

/// A reaction as the relay carries it: the Unicode emoji where there is one,
/// else `:name:` (custom emoji).
pub fn reaction_key(slack_name: &str) -> String {
    to_unicode(slack_name).unwrap_or_else(|| format!(":{slack_name}:"))
}

/// The Slack reaction name for a relay reaction key (see [`reaction_key`]):
/// `:name:` gives `name`, a Unicode emoji its Slack name, a bare Slack name
/// itself. `Err(key)` when Slack has no name for it (the caller degrades
/// visibly, e.g. by posting the reaction as text).
pub fn reaction_name(key: &str) -> Result<String, String> {
    if let Some(inner) = key.strip_prefix(':').and_then(|k| k.strip_suffix(':'))
        && is_name(inner)
    {
        return Ok(inner.to_owned());
    }
    if let Some(name) = to_name(key) {
        return Ok(name);
    }
    if is_name(key) && to_unicode(key).is_some() {
        return Ok(key.to_owned());
    }
    Err(key.to_owned())
}

/// True when `name` can be an emoji name in Slack text: 1 to 100 characters,
/// lowercase letters, digits, `_`, `-`, `+` or non-ASCII letters, with an
/// optional `::skin-tone-N` suffix.
pub fn is_name(name: &str) -> bool {
    let (base, suffix) = match name.split_once("::") {
        Some((base, suffix)) => (base, Some(suffix)),
        None => (name, None),
    };
    let base_ok = !base.is_empty() && base.chars().count() <= 100 && base.chars().all(is_name_char);
    base_ok && suffix.is_none_or(|s| parse_tone(s).is_some())
}

/// A character allowed in an emoji name.
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase()
        || c.is_ascii_digit()
        || matches!(c, '_' | '-' | '+')
        || (!c.is_ascii() && c.is_alphanumeric())
}

/// The emoji for a base name (no skin tone): Slack's own names, gemoji,
/// `flag-xx`, then hyphens read as underscores.
fn lookup(base: &str) -> Option<&'static emojis::Emoji> {
    if let Some((_, gemoji)) = SLACK_NAMES.iter().find(|(slack, _)| *slack == base) {
        return emojis::get_by_shortcode(gemoji);
    }
    if let Some(e) = emojis::get_by_shortcode(base) {
        return Some(e);
    }
    if let Some(code) = base.strip_prefix("flag-") {
        let mut letters = code.chars();
        if let (Some(a), Some(b), None) = (letters.next(), letters.next(), letters.next())
            && a.is_ascii_alphabetic()
            && b.is_ascii_alphabetic()
        {
            let flag: String = [a, b]
                .iter()
                .filter_map(|c| {
                    char::from_u32(0x1F1E6 + u32::from(c.to_ascii_lowercase()) - u32::from('a'))
                })
                .collect();
            return emojis::get(&flag);
        }
        return None;
    }
    if base.contains('-') {
        return emojis::get_by_shortcode(&base.replace('-', "_"));
    }
    None
}

/// Slack's name for an emoji without a skin tone.
fn base_name(emoji: &emojis::Emoji) -> Option<String> {
    for (slack, gemoji) in SLACK_NAMES {
        if emojis::get_by_shortcode(gemoji) == Some(emoji) {
            return Some((*slack).to_owned());
        }
    }
    let s = emoji.as_str();
    let indicators: Vec<char> = s.chars().collect();
    if let [a, b] = indicators[..]
        && ('\u{1F1E6}'..='\u{1F1FF}').contains(&a)
        && ('\u{1F1E6}'..='\u{1F1FF}').contains(&b)
    {
        let letter = |c: char| char::from_u32(u32::from(c) - 0x1F1E6 + u32::from('a'));
        return Some(format!("flag-{}{}", letter(a)?, letter(b)?));
    }
    emoji.shortcode().map(str::to_owned)
}

/// `skin-tone-N` (N = 2…6) or `skin-tone-N-M` to a skin tone.
fn parse_tone(suffix: &str) -> Option<SkinTone> {
    let rest = suffix.strip_prefix("skin-tone-")?;
    let digit = |s: &str| -> Option<usize> {
        match s {
            "2" | "3" | "4" | "5" | "6" => s.parse::<usize>().ok().map(|n| n - 1),
            _ => None,
        }
    };
    let index = match rest.split_once('-') {
        None => digit(rest)?,
        Some((a, b)) => {
            let (a, b) = (digit(a)?, digit(b)?);
            if a == b {
                a
            } else {
                6 + (a - 1) * 4 + if b < a { b - 1 } else { b - 2 }
            }
        }
    };
    TONES.get(index).copied()
}

/// The Slack suffix (`skin-tone-2`, `skin-tone-2-4`) for a skin tone.
fn tone_suffix(tone: SkinTone) -> Option<String> {
    let index = TONES.iter().position(|t| *t == tone)?;
    match index {
        1..=5 => Some(format!("skin-tone-{}", index + 1)),
        6..=25 => {
            let a = (index - 6) / 4 + 1;
            let k = (index - 6) % 4;
            let b = if k + 1 < a { k + 1 } else { k + 2 };
            Some(format!("skin-tone-{}-{}", a + 1, b + 1))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_table_entries_resolve() {
        for (slack, gemoji) in SLACK_NAMES {
            assert!(
                emojis::get_by_shortcode(gemoji).is_some(),
                "{slack} → {gemoji} is not a gemoji shortcode"
            );
            let unicode = to_unicode(slack).expect("resolves");
            let back = to_name(&unicode).expect("has a name");
            assert_eq!(to_unicode(&back), Some(unicode), "{slack}");
        }
    }

    #[test]
    fn emoji_names_to_unicode() {
        let cases = [
            ("thumbsup", "👍"),
            ("+1", "👍"),
            ("-1", "👎"),
            ("smile", "😄"),
            ("thinking_face", "🤔"),
            ("thinking", "🤔"),
            ("flag-fr", "🇫🇷"),
            ("fr", "🇫🇷"),
            ("flag-ca", "🇨🇦"),
            (
                "flag-england",
                "🏴\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}",
            ),
            ("man-shrugging", "🤷\u{200d}♂\u{fe0f}"),
            ("+1::skin-tone-2", "👍🏻"),
            ("wave::skin-tone-6", "👋🏿"),
            (":smile:", "😄"),
            ("email", "✉\u{fe0f}"),
            ("e-mail", "📧"),
            ("fox_face", "🦊"),
            ("heart", "❤\u{fe0f}"),
            ("smile::skin-tone-3", "😄"),
        ];
        for (name, unicode) in cases {
            assert_eq!(to_unicode(name).as_deref(), Some(unicode), "{name}");
        }
        for unknown in [
            "",
            "partyparrot",
            "flag-",
            "flag-zz",
            "flag-abc",
            "+1::skin-tone-9",
        ] {
            assert_eq!(to_unicode(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn emoji_unicode_to_slack_names() {
        let cases = [
            ("👍", "+1"),
            ("👎", "-1"),
            ("🤔", "thinking_face"),
            ("🇫🇷", "flag-fr"),
            ("🇺🇸", "flag-us"),
            ("👍🏻", "+1::skin-tone-2"),
            ("👋🏾", "wave::skin-tone-5"),
            ("❤", "heart"),
            ("❤️", "heart"),
            ("🦊", "fox_face"),
            ("📧", "e-mail"),
            ("✉️", "email"),
            ("😄", "smile"),
        ];
        for (unicode, name) in cases {
            assert_eq!(to_name(unicode).as_deref(), Some(name), "{unicode}");
        }
        assert_eq!(to_name("a"), None);
        assert_eq!(to_name(""), None);
    }

    #[test]
    fn emoji_two_tone_suffixes_round_trip() {
        for tone in TONES.iter().skip(1) {
            let suffix = tone_suffix(*tone).expect("suffix");
            assert_eq!(parse_tone(&suffix), Some(*tone), "{suffix}");
        }
        let handshake = to_unicode("handshake::skin-tone-2-6").expect("toned");
        assert_eq!(
            to_name(&handshake).as_deref(),
            Some("handshake::skin-tone-2-6")
        );
    }

    #[test]
    fn emoji_every_named_emoji_round_trips() {
        for emoji in emojis::iter() {
            let Some(name) = to_name(emoji.as_str()) else {
                continue;
            };
            assert_eq!(to_unicode(&name).as_deref(), Some(emoji.as_str()), "{name}");
            for toned in emoji.skin_tones().into_iter().flatten() {
                if let Some(name) = to_name(toned.as_str()) {
                    assert_eq!(to_unicode(&name).as_deref(), Some(toned.as_str()), "{name}");
                }
            }
        }
    }

    #[test]
    fn emoji_reaction_keys() {
        assert_eq!(reaction_key("thumbsup"), "👍");
        assert_eq!(reaction_key("+1::skin-tone-2"), "👍🏻");
        assert_eq!(reaction_key("partyparrot"), ":partyparrot:");
        assert_eq!(reaction_name("👍").as_deref(), Ok("+1"));
        assert_eq!(reaction_name(":partyparrot:").as_deref(), Ok("partyparrot"));
        assert_eq!(reaction_name("thumbsup").as_deref(), Ok("thumbsup"));
        assert_eq!(reaction_name("🫨🫨"), Err("🫨🫨".to_owned()));
        assert_eq!(reaction_name("hello"), Err("hello".to_owned()));
        assert_eq!(reaction_name("::"), Err("::".to_owned()));
        for key in ["👍", "🎉", "🇫🇷", "👋🏽", ":custom:"] {
            let name = reaction_name(key).expect("named");
            assert_eq!(reaction_key(&name), key, "{key}");
        }
    }
}
