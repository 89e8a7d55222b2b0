//! The application-service registration file the homeserver reads
//! (`app_service_config_files` in Synapse): who we are, where we listen,
//! both tokens, and the user and alias namespaces we own exclusively.
//!
//! Spec: <https://spec.matrix.org/v1.16/application-service-api/#registration>.
//!
//! The file is YAML, but only one small shape of it: this module writes and
//! reads exactly that shape (double-quoted, single-quoted or plain scalars,
//! comments, `[]` for an empty list) with a strict reader that names the line
//! of anything it does not understand, rather than pulling in a YAML crate.
//! [`differences`] compares a file on disk with what the configuration
//! implies, so the daemon can say what to fix; tokens are compared, never
//! printed.

use crate::config::{MatrixConfig, Token};
use std::fmt;

/// One namespace entry: a regular expression (Python `re` syntax, as the
/// homeserver uses it) and whether we claim it exclusively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceEntry {
    /// Only we may create or act as what it matches.
    pub exclusive: bool,
    /// The regular expression.
    pub regex: String,
}

impl NamespaceEntry {
    /// An exclusive entry.
    pub fn exclusive(regex: impl Into<String>) -> Self {
        NamespaceEntry {
            exclusive: true,
            regex: regex.into(),
        }
    }
}

/// An application-service registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The application service's id.
    pub id: String,
    /// Where the homeserver pushes transactions (our listener).
    pub url: String,
    /// The token we send to the homeserver.
    pub as_token: Token,
    /// The token the homeserver sends to us.
    pub hs_token: Token,
    /// The bridge bot's localpart.
    pub sender_localpart: String,
    /// Whether the homeserver rate-limits our requests (we ask it not to).
    pub rate_limited: bool,
    /// User ids we own.
    pub users: Vec<NamespaceEntry>,
    /// Room aliases we own.
    pub aliases: Vec<NamespaceEntry>,
    /// Room ids we own (none).
    pub rooms: Vec<NamespaceEntry>,
}

/// Why a registration file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registration line {line}: {reason}")]
pub struct RegistrationError {
    /// The 1-based line number (0 when the problem is the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

fn err(line: usize, reason: impl Into<String>) -> RegistrationError {
    RegistrationError {
        line,
        reason: reason.into(),
    }
}

/// Escapes `text` for a Python regular expression.
pub fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if "\\.^$*+?()[]{}|".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The regular expression matching every localpart a template yields:
/// `{instance}` and `{user}` become `.*`, the rest is escaped.
pub fn template_regex(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    loop {
        let next = ["{instance}", "{user}", "{name}"]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, p.len())))
            .min();
        match next {
            Some((i, len)) => {
                out.push_str(&regex_escape(&rest[..i]));
                if !out.ends_with(".*") {
                    out.push_str(".*");
                }
                rest = &rest[i + len..];
            }
            None => {
                out.push_str(&regex_escape(rest));
                return out;
            }
        }
    }
}

impl Registration {
    /// The registration `config` implies, with the homeserver pushing to `url`.
    pub fn for_config(config: &MatrixConfig, url: &str) -> Registration {
        let server = regex_escape(&config.server_name);
        let mut users: Vec<NamespaceEntry> = Vec::new();
        for (_, template) in &config.ghost_templates {
            let entry =
                NamespaceEntry::exclusive(format!("@{}:{server}", template_regex(template)));
            if !users.contains(&entry) {
                users.push(entry);
            }
        }
        let aliases = vec![NamespaceEntry::exclusive(format!(
            "#{}:{server}",
            template_regex(&config.alias_template)
        ))];
        Registration {
            id: config.appservice_id.clone(),
            url: url.to_owned(),
            as_token: config.as_token.clone(),
            hs_token: config.hs_token.clone(),
            sender_localpart: config.sender_localpart.clone(),
            rate_limited: false,
            users,
            aliases,
            rooms: Vec::new(),
        }
    }

    /// The registration as YAML.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        out.push_str("# Switchboard's application-service registration.\n");
        out.push_str("# Generated from its configuration; add this file to the homeserver's\n");
        out.push_str("# app_service_config_files. It holds secrets: keep it private.\n");
        for (key, value) in [
            ("id", self.id.as_str()),
            ("url", self.url.as_str()),
            ("as_token", self.as_token.expose()),
            ("hs_token", self.hs_token.expose()),
            ("sender_localpart", self.sender_localpart.as_str()),
        ] {
            out.push_str(&format!("{key}: {}\n", quote(value)));
        }
        out.push_str(&format!("rate_limited: {}\n", self.rate_limited));
        out.push_str("namespaces:\n");
        for (key, entries) in [
            ("users", &self.users),
            ("aliases", &self.aliases),
            ("rooms", &self.rooms),
        ] {
            if entries.is_empty() {
                out.push_str(&format!("  {key}: []\n"));
                continue;
            }
            out.push_str(&format!("  {key}:\n"));
            for e in entries {
                out.push_str(&format!("    - exclusive: {}\n", e.exclusive));
                out.push_str(&format!("      regex: {}\n", quote(&e.regex)));
            }
        }
        out
    }

    /// Reads a registration in the shape [`Registration::to_yaml`] writes.
    pub fn from_yaml(text: &str) -> Result<Registration, RegistrationError> {
        Reader::default().read(text)
    }
}

/// Compares `registration` with what `config` and `url` imply; one line per
/// mismatch, empty when they agree. Tokens are compared, never shown.
pub fn differences(registration: &Registration, config: &MatrixConfig, url: &str) -> Vec<String> {
    let want = Registration::for_config(config, url);
    let mut out = Vec::new();
    let mut field = |name: &str, have: &str, want: &str| {
        if have != want {
            out.push(format!(
                "{name} is {have:?}, the configuration says {want:?}"
            ));
        }
    };
    field("id", &registration.id, &want.id);
    field("url", &registration.url, &want.url);
    field(
        "sender_localpart",
        &registration.sender_localpart,
        &want.sender_localpart,
    );
    if registration.as_token != want.as_token {
        out.push("as_token differs from the configured as_token".to_owned());
    }
    if registration.hs_token != want.hs_token {
        out.push("hs_token differs from the configured hs_token".to_owned());
    }
    if registration.rate_limited {
        out.push("rate_limited is true; it must be false".to_owned());
    }
    for (name, have, want) in [
        ("users", &registration.users, &want.users),
        ("aliases", &registration.aliases, &want.aliases),
    ] {
        for w in want {
            match have.iter().find(|h| h.regex == w.regex) {
                None => out.push(format!(
                    "namespaces.{name} lacks the exclusive regex {:?}",
                    w.regex
                )),
                Some(h) if !h.exclusive => out.push(format!(
                    "namespaces.{name}: regex {:?} must be exclusive",
                    w.regex
                )),
                Some(_) => {}
            }
        }
        for h in have {
            if !want.iter().any(|w| w.regex == h.regex) {
                out.push(format!(
                    "namespaces.{name} has regex {:?}, which the configuration does not imply",
                    h.regex
                ));
            }
        }
    }
    out
}

/// The second registration, for double puppeting: it lets the bridge act
/// as any user of `server_name` (non-exclusively: they stay theirs) with
/// `as_token`, so that a person who linked their Matrix account is shown as
/// that account. It has no URL, so the homeserver pushes nothing to it and
/// its namespace does not widen what the bridge hears.
pub fn double_puppet_yaml(
    appservice_id: &str,
    server_name: &str,
    as_token: &Token,
    hs_token: &Token,
) -> String {
    let mut out = String::new();
    out.push_str("# Switchboard's double-puppeting registration: lets it post as the local\n");
    out.push_str("# users who linked their account. Add it to app_service_config_files\n");
    out.push_str("# beside the bridge's own registration. It holds a secret: keep it private.\n");
    for (key, value) in [
        ("id", format!("{appservice_id}-doublepuppet")),
        ("as_token", as_token.expose().to_owned()),
        ("hs_token", hs_token.expose().to_owned()),
        ("sender_localpart", format!("{appservice_id}-doublepuppet")),
    ] {
        out.push_str(&format!("{key}: {}\n", quote(&value)));
    }
    out.push_str("url: null\nrate_limited: false\nnamespaces:\n  users:\n");
    out.push_str("    - exclusive: false\n");
    out.push_str(&format!(
        "      regex: {}\n",
        quote(&format!("@.*:{}", regex_escape(server_name)))
    ));
    out.push_str("  aliases: []\n  rooms: []\n");
    out
}

/// A YAML double-quoted scalar.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads one scalar (the text after `key:` or `- `), comments removed.
fn scalar(raw: &str, line: usize) -> Result<String, RegistrationError> {
    let raw = raw.trim();
    if let Some(body) = raw.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.chars();
        loop {
            match chars.next() {
                None => return Err(err(line, "unterminated double-quoted string")),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('/') => out.push('/'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('0') => out.push('\0'),
                    Some(k @ ('x' | 'u' | 'U')) => {
                        let n = match k {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = chars.by_ref().take(n).collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == n)
                            .and_then(char::from_u32)
                            .ok_or_else(|| err(line, format!("bad escape \\{k}{hex}")))?;
                        out.push(c);
                    }
                    other => {
                        return Err(err(line, format!("unsupported escape \\{other:?}")));
                    }
                },
                Some(c) => out.push(c),
            }
        }
        let rest = chars.as_str().trim();
        if !rest.is_empty() && !rest.starts_with('#') {
            return Err(err(line, format!("unexpected {rest:?} after a string")));
        }
        return Ok(out);
    }
    if let Some(body) = raw.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = body.chars().peekable();
        loop {
            match chars.next() {
                None => return Err(err(line, "unterminated single-quoted string")),
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    out.push('\'');
                }
                Some('\'') => break,
                Some(c) => out.push(c),
            }
        }
        let rest: String = chars.collect();
        let rest = rest.trim();
        if !rest.is_empty() && !rest.starts_with('#') {
            return Err(err(line, format!("unexpected {rest:?} after a string")));
        }
        return Ok(out);
    }
    // A plain scalar: up to a comment (" #").
    let plain = match raw.find(" #") {
        Some(i) => raw[..i].trim_end(),
        None => raw,
    };
    if plain.starts_with(['[', '{', '&', '*', '!', '|', '>', '%', '@', '`']) && plain != "[]" {
        return Err(err(
            line,
            format!(
                "{plain:?}: quote this value (flow collections, anchors, tags and block scalars are not supported)"
            ),
        ));
    }
    Ok(plain.to_owned())
}

fn boolean(raw: &str, line: usize) -> Result<bool, RegistrationError> {
    match scalar(raw, line)?.as_str() {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        other => Err(err(
            line,
            format!("expected true or false, found {other:?}"),
        )),
    }
}

/// Where the reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Top,
    Namespaces,
    List(usize),
}

#[derive(Default)]
struct Reader {
    id: Option<String>,
    url: Option<String>,
    as_token: Option<String>,
    hs_token: Option<String>,
    sender_localpart: Option<String>,
    rate_limited: Option<bool>,
    lists: [Vec<PartialEntry>; 3],
    seen_namespaces: bool,
}

#[derive(Default)]
struct PartialEntry {
    line: usize,
    exclusive: Option<bool>,
    regex: Option<String>,
}

const LISTS: [&str; 3] = ["users", "aliases", "rooms"];

impl Reader {
    fn read(mut self, text: &str) -> Result<Registration, RegistrationError> {
        let mut section = Section::Top;
        let mut list_indent: Option<usize> = None;
        let mut item_indent: Option<usize> = None;
        for (index, raw_line) in text.lines().enumerate() {
            let n = index + 1;
            if raw_line.contains('\t') && raw_line.trim_start().starts_with('\t') {
                return Err(err(n, "tabs are not allowed for indentation"));
            }
            let trimmed = raw_line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "---" {
                continue;
            }
            let indent = raw_line.len() - raw_line.trim_start().len();
            if indent == 0 {
                section = Section::Top;
                list_indent = None;
                item_indent = None;
                let (key, value) = split_key(trimmed, n)?;
                self.top(key, value, n)?;
                if key == "namespaces" {
                    section = Section::Namespaces;
                }
                continue;
            }
            match section {
                Section::Top => return Err(err(n, "unexpected indentation")),
                Section::Namespaces | Section::List(_) => {
                    let is_item = trimmed.starts_with("- ") || trimmed == "-";
                    let expected_list_indent = *list_indent.get_or_insert(indent);
                    if !is_item && indent == expected_list_indent {
                        // A namespace key: users, aliases, rooms.
                        let (key, value) = split_key(trimmed, n)?;
                        let Some(which) = LISTS.iter().position(|l| *l == key) else {
                            return Err(err(n, format!("unknown namespace {key:?}")));
                        };
                        let value = value.trim();
                        if value == "[]" {
                            section = Section::Namespaces;
                        } else if value.is_empty() || value.starts_with('#') {
                            section = Section::List(which);
                        } else {
                            return Err(err(n, format!("namespaces.{key} must be a list")));
                        }
                        item_indent = None;
                        continue;
                    }
                    let Section::List(which) = section else {
                        return Err(err(n, "expected users:, aliases: or rooms:"));
                    };
                    if indent < expected_list_indent {
                        return Err(err(n, "unexpected indentation"));
                    }
                    let body = if is_item {
                        self.lists[which].push(PartialEntry {
                            line: n,
                            ..PartialEntry::default()
                        });
                        let body = trimmed[1..].trim_start();
                        // Keys after the first align with the first's column.
                        item_indent = Some(indent + trimmed.len() - body.len());
                        body
                    } else {
                        if Some(indent) != item_indent {
                            return Err(err(n, "unexpected indentation inside a namespace entry"));
                        }
                        trimmed
                    };
                    if body.is_empty() {
                        continue;
                    }
                    let (key, value) = split_key(body, n)?;
                    let Some(entry) = self.lists[which].last_mut() else {
                        return Err(err(n, "a namespace entry must start with '- '"));
                    };
                    match key {
                        "exclusive" => set(&mut entry.exclusive, boolean(value, n)?, key, n)?,
                        "regex" => set(&mut entry.regex, scalar(value, n)?, key, n)?,
                        other => {
                            return Err(err(n, format!("unknown namespace entry key {other:?}")));
                        }
                    }
                }
            }
        }
        self.finish()
    }

    fn top(&mut self, key: &str, value: &str, n: usize) -> Result<(), RegistrationError> {
        let slot = match key {
            "id" => &mut self.id,
            "url" => &mut self.url,
            "as_token" => &mut self.as_token,
            "hs_token" => &mut self.hs_token,
            "sender_localpart" => &mut self.sender_localpart,
            "rate_limited" => return set(&mut self.rate_limited, boolean(value, n)?, key, n),
            "namespaces" => {
                let v = value.trim();
                if !(v.is_empty() || v.starts_with('#')) {
                    return Err(err(
                        n,
                        "namespaces must be a mapping on the following lines",
                    ));
                }
                if self.seen_namespaces {
                    return Err(err(n, "namespaces given twice"));
                }
                self.seen_namespaces = true;
                return Ok(());
            }
            other => return Err(err(n, format!("unknown key {other:?}"))),
        };
        set(slot, scalar(value, n)?, key, n)
    }

    fn finish(self) -> Result<Registration, RegistrationError> {
        fn need<T>(v: Option<T>, key: &str) -> Result<T, RegistrationError> {
            v.ok_or_else(|| err(0, format!("{key} is missing")))
        }
        let [users, aliases, rooms] = self.lists;
        let entries = |list: Vec<PartialEntry>, name: &str| {
            list.into_iter()
                .map(|e| {
                    Ok(NamespaceEntry {
                        exclusive: e.exclusive.ok_or_else(|| {
                            err(e.line, format!("namespaces.{name} entry lacks exclusive"))
                        })?,
                        regex: e.regex.ok_or_else(|| {
                            err(e.line, format!("namespaces.{name} entry lacks regex"))
                        })?,
                    })
                })
                .collect::<Result<Vec<_>, RegistrationError>>()
        };
        Ok(Registration {
            id: need(self.id, "id")?,
            url: need(self.url, "url")?,
            as_token: Token::new(need(self.as_token, "as_token")?),
            hs_token: Token::new(need(self.hs_token, "hs_token")?),
            sender_localpart: need(self.sender_localpart, "sender_localpart")?,
            rate_limited: self.rate_limited.unwrap_or(true),
            users: entries(users, "users")?,
            aliases: entries(aliases, "aliases")?,
            rooms: entries(rooms, "rooms")?,
        })
    }
}

fn set<T>(slot: &mut Option<T>, value: T, key: &str, n: usize) -> Result<(), RegistrationError> {
    if slot.is_some() {
        return Err(err(n, format!("{key} given twice")));
    }
    *slot = Some(value);
    Ok(())
}

/// Splits `key: value` (the value may be empty).
fn split_key(text: &str, n: usize) -> Result<(&str, &str), RegistrationError> {
    let Some((key, value)) = text.split_once(':') else {
        return Err(err(n, format!("expected `key: value`, found {text:?}")));
    };
    if !(value.is_empty() || value.starts_with(' ')) {
        return Err(err(n, format!("expected a space after {key:?}:")));
    }
    let key = key.trim();
    if key.is_empty() || key.contains(['"', '\'', ' ']) {
        return Err(err(n, format!("unsupported key {key:?}")));
    }
    Ok((key, value))
}

impl fmt::Display for NamespaceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (exclusive: {})", self.regex, self.exclusive)
    }
}

#[cfg(test)]
pub(crate) mod tests {

    #[test]
    fn the_double_puppeting_registration_covers_every_local_user_and_has_no_url() {
        let yaml = double_puppet_yaml(
            "switchboard",
            "example.org",
            &Token::new("dp-as"),
            &Token::new("dp-hs"),
        );
        assert!(
            yaml.contains("id: \"switchboard-doublepuppet\"\n"),
            "{yaml}"
        );
        assert!(yaml.contains("as_token: \"dp-as\"\n"), "{yaml}");
        assert!(yaml.contains("url: null\n"), "{yaml}");
        assert!(
            yaml.contains("    - exclusive: false\n      regex: \"@.*:example\\\\.org\"\n"),
            "{yaml}"
        );
    }

    use super::*;
    use crate::config::default_ghost_templates;
    use switchboard_model::BridgeId;

    pub(crate) fn config() -> MatrixConfig {
        MatrixConfig {
            id: BridgeId::new("matrix:example"),
            homeserver_url: "http://127.0.0.1:8008".into(),
            server_name: "example.org".into(),
            appservice_id: "switchboard".into(),
            as_token: Token::new("as-secret-1"),
            hs_token: Token::new("hs-secret-2"),
            sender_localpart: "switchboard".into(),
            ghost_templates: default_ghost_templates(),
            alias_template: "switchboard_{name}".into(),
            invite: vec!["@admin:example.org".into()],
            max_upload: 10 * 1024 * 1024,
            public_url: None,
        }
    }

    #[test]
    fn namespaces_come_from_the_templates() {
        let r = Registration::for_config(&config(), "http://127.0.0.1:9000");
        assert_eq!(
            r.users,
            vec![
                NamespaceEntry::exclusive(r"@slack_.*_.*:example\.org"),
                NamespaceEntry::exclusive(r"@teams_.*_.*:example\.org"),
            ]
        );
        assert_eq!(
            r.aliases,
            vec![NamespaceEntry::exclusive(r"#switchboard_.*:example\.org")]
        );
        assert!(!r.rate_limited);
        assert_eq!(template_regex("a.b{user}{instance}+"), r"a\.b.*\+");
    }

    #[test]
    fn yaml_round_trip() {
        let mut r = Registration::for_config(&config(), "http://127.0.0.1:9000/x");
        r.id = "odd \"id\"\\ with\ttab and ünïcode".into();
        let yaml = r.to_yaml();
        assert!(
            yaml.contains("regex: \"@slack_.*_.*:example\\\\.org\""),
            "{yaml}"
        );
        assert!(yaml.contains("  rooms: []"), "{yaml}");
        let back = Registration::from_yaml(&yaml).expect("reads its own output");
        assert_eq!(back, r);
        assert!(differences(&back, &config(), "http://127.0.0.1:9000/x").len() == 1);
    }

    #[test]
    fn reads_hand_written_yaml() {
        let yaml = "\
# comment
id: switchboard
url: 'http://127.0.0.1:9000'   # trailing comment
as_token: as-secret-1
hs_token: \"hs-secret-2\"
sender_localpart: switchboard
rate_limited: false
namespaces:
    users:
    -   exclusive: true
        regex: '@slack_.*_.*:example\\.org'
    -   regex: \"@teams_.*_.*:example\\\\.org\"
        exclusive: true
    aliases:
    - exclusive: true
      regex: '#switchboard_.*:example\\.org'
";
        let r = Registration::from_yaml(yaml).expect("reads");
        assert_eq!(r.url, "http://127.0.0.1:9000");
        assert_eq!(r.rooms, vec![]);
        assert_eq!(
            differences(&r, &config(), "http://127.0.0.1:9000"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn strict_reader_names_the_line() {
        let good = Registration::for_config(&config(), "http://h").to_yaml();
        let bad = good.replace("rate_limited: false", "rate_limited: maybe");
        let e = Registration::from_yaml(&bad).expect_err("refused");
        assert!(e.reason.contains("true or false"), "{e}");
        assert!(e.line > 0);
        let unknown = format!("{good}push_ephemeral: true\n");
        let e = Registration::from_yaml(&unknown).expect_err("refused");
        assert!(e.reason.contains("unknown key"), "{e}");
        let missing = good.replace("hs_token", "# hs_token");
        let e = Registration::from_yaml(&missing).expect_err("refused");
        assert_eq!(e.reason, "hs_token is missing");
        let unterminated = good.replace("id: \"switchboard\"", "id: \"switchboard");
        assert!(Registration::from_yaml(&unterminated).is_err());
        let flow = good.replace("id: \"switchboard\"", "id: [a, b]");
        assert!(Registration::from_yaml(&flow).is_err());
    }

    #[test]
    fn differences_name_each_mismatch_without_tokens() {
        let cfg = config();
        let mut r = Registration::for_config(&cfg, "http://h");
        assert!(differences(&r, &cfg, "http://h").is_empty());
        r.as_token = Token::new("wrong-as");
        r.hs_token = Token::new("wrong-hs");
        r.url = "http://other".into();
        r.rate_limited = true;
        r.users[0].exclusive = false;
        r.users.remove(1);
        r.aliases.push(NamespaceEntry::exclusive("#other_.*"));
        let diffs = differences(&r, &cfg, "http://h");
        let all = diffs.join("\n");
        assert_eq!(diffs.len(), 7, "{all}");
        for secret in ["wrong-as", "wrong-hs", "as-secret-1", "hs-secret-2"] {
            assert!(!all.contains(secret), "{all}");
        }
        assert!(all.contains("as_token differs"));
        assert!(all.contains("must be exclusive"));
        assert!(all.contains(r"lacks the exclusive regex "));
        assert!(all.contains("#other_.*"));
    }
}
