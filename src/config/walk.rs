//! Reading the loose value tree that the `config` crate produces, one key at
//! a time, collecting every problem instead of stopping at the first.
//!
//! `serde` would stop at the first wrong field and cannot say "did you mean".
//! Instead [`Table`] hands out one key at a time; each read records the key
//! as known, and [`Table::finish`] reports whatever the file holds that
//! nobody asked for, with the closest known key as a suggestion. So the
//! schema is the validation code itself and cannot drift from a second list.
//!
//! Every read returns a [`Got`]: absent, invalid (already reported), or a
//! value. Callers read all their keys first and combine the results last, so
//! one bad key never hides the next one.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Map, Value, ValueKind};

use super::duration::{format_duration, parse_duration};
use super::{ConfigError, ENV_PREFIX, ENV_SEPARATOR, PLACEHOLDER_MARKERS};
use crate::config::types::Secret;

/// The origin the `config` crate gives every value read from the environment.
/// Values with this origin are plain strings, so integers and booleans are
/// parsed from them here (the file's values are already typed by TOML).
/// `tests::env_override_of_an_integer_is_applied` fails if the crate renames it.
const ENV_ORIGIN: &str = "the environment";

/// Collects problems, and the schema paths of every key the validation asked
/// for (`relay.max_attempts`, `bridge[].state_dir`), which the tests compare
/// with `config.example.toml`.
#[derive(Debug, Default)]
pub(super) struct Sink {
    /// Every problem, in the order found.
    pub(super) errors: Vec<ConfigError>,
    /// Every key read, as a schema path.
    pub(super) known_keys: BTreeSet<String>,
}

impl Sink {
    /// Records a problem at `path`.
    pub(super) fn error(&mut self, path: impl Into<String>, problem: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            problem: problem.into(),
        });
    }

    /// Records a problem with a value; says which environment variable set it
    /// if it did not come from the file.
    fn value_error(&mut self, path: &str, value: &Value, problem: impl Into<String>) {
        let mut problem = problem.into();
        if from_env(value) {
            problem.push_str(&format!(" (set by {})", env_var_name(path)));
        }
        self.error(path, problem);
    }
}

/// The outcome of reading one key.
#[derive(Debug)]
pub(super) enum Got<T> {
    /// The key is not there; carries its path for a "required" error.
    Absent(String),
    /// The key is there but its value is wrong; the problem is already recorded.
    Invalid,
    /// The key's value.
    Value(T),
}

impl<T> Got<T> {
    /// The value, or `default` when the key is absent; `None` when invalid.
    pub(super) fn or(self, default: T) -> Option<T> {
        match self {
            Got::Absent(_) => Some(default),
            Got::Invalid => None,
            Got::Value(value) => Some(value),
        }
    }

    /// The value; reports `required` when the key is absent.
    pub(super) fn required(self, sink: &mut Sink) -> Option<T> {
        match self {
            Got::Absent(path) => {
                sink.error(path, "required");
                None
            }
            Got::Invalid => None,
            Got::Value(value) => Some(value),
        }
    }

    /// `Some(None)` when absent, `None` when invalid.
    pub(super) fn optional(self) -> Option<Option<T>> {
        match self {
            Got::Absent(_) => Some(None),
            Got::Invalid => None,
            Got::Value(value) => Some(Some(value)),
        }
    }

    /// Converts the value; `None` from `f` means it reported a problem.
    pub(super) fn and_then<U>(self, f: impl FnOnce(T) -> Option<U>) -> Got<U> {
        match self {
            Got::Absent(path) => Got::Absent(path),
            Got::Invalid => Got::Invalid,
            Got::Value(value) => f(value).map_or(Got::Invalid, Got::Value),
        }
    }
}

/// How one secret is configured: `<name>_file` or `<name>_env`, never `<name>`.
#[derive(Debug, Clone, Copy)]
pub(super) struct SecretKeys {
    /// The forbidden literal key, `token`.
    pub(super) literal: &'static str,
    /// The key naming a file holding it, `token_file`.
    pub(super) file: &'static str,
    /// The key naming an environment variable holding it, `token_env`.
    pub(super) env: &'static str,
}

/// Where relative paths and `*_env` secrets are resolved.
#[derive(Debug, Clone, Copy)]
pub(super) struct Context<'a> {
    /// The environment (`token_env` lookups).
    pub(super) env: &'a HashMap<String, String>,
    /// The config file's directory.
    pub(super) base_dir: &'a Path,
}

/// One table of the tree being read, with its key path.
#[derive(Debug)]
pub(super) struct Table<'a> {
    /// Key path for messages: `""`, `relay`, `bridge[1]`.
    path: String,
    /// Key path for the schema: `""`, `relay`, `bridge[]`.
    schema: String,
    /// Its entries; `None` for a table missing from the file (all keys absent).
    map: Option<&'a Map<String, Value>>,
    /// Keys read so far; everything else is unknown.
    asked: Vec<&'static str>,
    /// Literal secret keys found and already reported.
    reported: Vec<&'static str>,
}

impl<'a> Table<'a> {
    /// The root table.
    pub(super) fn root(map: &'a Map<String, Value>) -> Self {
        Table {
            path: String::new(),
            schema: String::new(),
            map: Some(map),
            asked: Vec::new(),
            reported: Vec::new(),
        }
    }

    /// This table's key path (`bridge[1]`).
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// Whether the table is in the file (an absent sub-table reads as empty).
    pub(super) fn is_present(&self) -> bool {
        self.map.is_some()
    }

    /// The key path of `key` in this table (`bridge[1].state_dir`).
    pub(super) fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Looks up `key` and records it as known.
    fn get(&mut self, key: &'static str, sink: &mut Sink) -> Got<&'a Value> {
        if !self.asked.contains(&key) {
            self.asked.push(key);
            sink.known_keys.insert(join(&self.schema, key));
        }
        match self.map.and_then(|map| map.get(key)) {
            // The `config` crate uses Nil for holes, e.g. an array grown by an
            // environment override; the file cannot contain it.
            None
            | Some(Value {
                kind: ValueKind::Nil,
                ..
            }) => Got::Absent(self.key_path(key)),
            Some(value) => Got::Value(value),
        }
    }

    /// A string.
    pub(super) fn string(&mut self, key: &'static str, sink: &mut Sink) -> Got<&'a str> {
        let path = self.key_path(key);
        self.get(key, sink).and_then(|v| as_str(v, &path, sink))
    }

    /// A non-empty string, converted by `parse`; its error becomes the problem.
    pub(super) fn parsed<T>(
        &mut self,
        key: &'static str,
        sink: &mut Sink,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Got<T> {
        let path = self.key_path(key);
        self.get(key, sink).and_then(|value| {
            let text = as_str(value, &path, sink)?;
            parse(text)
                .map_err(|problem| sink.value_error(&path, value, problem))
                .ok()
        })
    }

    /// A duration string (`"20s"`) of at least `min`.
    pub(super) fn duration(
        &mut self,
        key: &'static str,
        min: Duration,
        sink: &mut Sink,
    ) -> Got<Duration> {
        let path = self.key_path(key);
        self.get(key, sink).and_then(|value| {
            if matches!(value.kind, ValueKind::I64(_) | ValueKind::Float(_)) {
                sink.value_error(
                    &path,
                    value,
                    format!(
                        "expected a duration string such as \"20s\", got {}; \
                         add a unit (ms, s, m, h or d) in quotes",
                        kind_name(&value.kind)
                    ),
                );
                return None;
            }
            let text = as_str(value, &path, sink)?;
            let duration = parse_duration(text)
                .map_err(|problem| sink.value_error(&path, value, problem))
                .ok()?;
            if duration < min {
                sink.value_error(
                    &path,
                    value,
                    format!("must be at least {}, got {text:?}", format_duration(min)),
                );
                return None;
            }
            Some(duration)
        })
    }

    /// A path; relative paths are resolved against the config file's directory.
    pub(super) fn path_value(
        &mut self,
        key: &'static str,
        ctx: Context<'_>,
        sink: &mut Sink,
    ) -> Got<PathBuf> {
        let path = self.key_path(key);
        self.get(key, sink).and_then(|value| {
            let text = as_str(value, &path, sink)?;
            if text.is_empty() {
                sink.value_error(&path, value, "must not be empty");
                return None;
            }
            Some(ctx.base_dir.join(text))
        })
    }

    /// An integer within `min..=max`.
    pub(super) fn integer<T>(
        &mut self,
        key: &'static str,
        min: T,
        max: T,
        sink: &mut Sink,
    ) -> Got<T>
    where
        T: Copy + Into<i128> + TryFrom<i128>,
    {
        let path = self.key_path(key);
        let (min, max): (i128, i128) = (min.into(), max.into());
        self.get(key, sink).and_then(|value| {
            let number = as_integer(value, &path, sink)?;
            if !(min..=max).contains(&number) {
                // Only small ranges are worth spelling out in full.
                let problem = if max < i128::from(i64::MAX) {
                    format!("must be between {min} and {max}, got {number}")
                } else if min == 0 && number < 0 {
                    format!("must not be negative, got {number}")
                } else if number < min {
                    format!("must be at least {min}, got {number}")
                } else {
                    format!("must be at most {max}, got {number}")
                };
                sink.value_error(&path, value, problem);
                return None;
            }
            // Cannot fail: the range came from `T`.
            T::try_from(number).ok()
        })
    }

    /// A boolean.
    pub(super) fn boolean(&mut self, key: &'static str, sink: &mut Sink) -> Got<bool> {
        let path = self.key_path(key);
        self.get(key, sink).and_then(|value| match &value.kind {
            ValueKind::Boolean(b) => Some(*b),
            ValueKind::String(s) if from_env(value) => {
                match s.trim().to_ascii_lowercase().as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => {
                        sink.value_error(
                            &path,
                            value,
                            format!("expected true or false, got {s:?}"),
                        );
                        None
                    }
                }
            }
            other => {
                sink.value_error(
                    &path,
                    value,
                    format!("expected true or false, got {}", kind_name(other)),
                );
                None
            }
        })
    }

    /// An array of strings; each element is returned with its path, or
    /// `None` where it was invalid (already reported).
    pub(super) fn strings(
        &mut self,
        key: &'static str,
        sink: &mut Sink,
    ) -> Got<Vec<(String, Option<&'a str>)>> {
        let path = self.key_path(key);
        self.get(key, sink).and_then(|value| match &value.kind {
            ValueKind::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let item_path = format!("{path}[{i}]");
                        let text = as_str(item, &item_path, sink);
                        (item_path, text)
                    })
                    .collect(),
            ),
            other => {
                sink.value_error(
                    &path,
                    value,
                    format!("expected an array of strings, got {}", kind_name(other)),
                );
                None
            }
        })
    }

    /// A sub-table such as `[relay]`. A missing one reads as empty, so that
    /// its keys take their defaults (or are reported as required).
    pub(super) fn table(&mut self, key: &'static str, sink: &mut Sink) -> Option<Table<'a>> {
        let path = self.key_path(key);
        let schema = join(&self.schema, key);
        match self.get(key, sink) {
            Got::Absent(_) => Some(Table::child(path, schema, None)),
            Got::Invalid => None,
            Got::Value(value) => match &value.kind {
                ValueKind::Table(map) => Some(Table::child(path, schema, Some(map))),
                other => {
                    sink.value_error(
                        &path,
                        value,
                        format!("expected a table ([{key}]), got {}", kind_name(other)),
                    );
                    None
                }
            },
        }
    }

    /// An array of tables such as `[[bridge]]`; absent reads as empty.
    /// Elements that are not tables are reported and skipped.
    pub(super) fn tables(&mut self, key: &'static str, sink: &mut Sink) -> Vec<Table<'a>> {
        let path = self.key_path(key);
        let schema = format!("{}[]", join(&self.schema, key));
        match self.get(key, sink) {
            Got::Absent(_) | Got::Invalid => Vec::new(),
            Got::Value(value) => match &value.kind {
                ValueKind::Array(items) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        let item_path = format!("{path}[{i}]");
                        match &item.kind {
                            ValueKind::Table(map) => {
                                Some(Table::child(item_path, schema.clone(), Some(map)))
                            }
                            other => {
                                sink.value_error(
                                    &item_path,
                                    item,
                                    format!(
                                        "expected a table ([[{key}]]), got {}",
                                        kind_name(other)
                                    ),
                                );
                                None
                            }
                        }
                    })
                    .collect(),
                other => {
                    sink.value_error(
                        &path,
                        value,
                        format!(
                            "expected an array of tables ([[{key}]] sections), got {}",
                            kind_name(other)
                        ),
                    );
                    Vec::new()
                }
            },
        }
    }

    /// An optional secret, from `<name>_file` or `<name>_env`. A literal
    /// `<name>` key is an error. No message ever contains the secret.
    pub(super) fn secret(
        &mut self,
        keys: SecretKeys,
        ctx: Context<'_>,
        sink: &mut Sink,
    ) -> Got<Secret> {
        let mut invalid = false;
        if self.map.is_some_and(|map| map.contains_key(keys.literal)) {
            self.reported.push(keys.literal);
            sink.error(
                self.key_path(keys.literal),
                format!(
                    "secrets cannot be written in the config file; use {} or {}",
                    keys.file, keys.env
                ),
            );
            invalid = true;
        }
        let file = self.path_value(keys.file, ctx, sink);
        let env_path = self.key_path(keys.env);
        let env = self.get(keys.env, sink).and_then(|value| {
            let name = as_str(value, &env_path, sink)?;
            if is_env_var_name(name) {
                Some(name)
            } else {
                // Not echoed: a value here that is not a variable name is
                // most likely the secret itself, pasted in the wrong key.
                sink.value_error(
                    &env_path,
                    value,
                    "must be the name of an environment variable (letters, digits and _)",
                );
                None
            }
        });
        let got = match (file, env) {
            (Got::Value(_), Got::Value(_)) => {
                sink.error(
                    env_path,
                    format!("{} is also set; set only one of them", keys.file),
                );
                Got::Invalid
            }
            (Got::Invalid, _) | (_, Got::Invalid) => Got::Invalid,
            (Got::Value(file), Got::Absent(_)) => {
                read_secret_file(&file, &self.key_path(keys.file), sink)
            }
            (Got::Absent(_), Got::Value(name)) => match ctx.env.get(name) {
                Some(value) if !value.is_empty() => Got::Value(Secret::new(value.clone())),
                Some(_) => {
                    sink.error(env_path, format!("environment variable {name} is empty"));
                    Got::Invalid
                }
                None => {
                    sink.error(env_path, format!("environment variable {name} is not set"));
                    Got::Invalid
                }
            },
            (Got::Absent(path), Got::Absent(_)) => Got::Absent(path),
        };
        if invalid { Got::Invalid } else { got }
    }

    /// Reports every key nobody asked for, suggesting the closest known one.
    pub(super) fn finish(self, sink: &mut Sink) {
        self.report_unknown(sink, false);
    }

    /// Like [`Table::finish`], but reports only unknown keys that look like a
    /// misspelt known key. For a table whose schema is unknown (a bridge
    /// without a valid `type`), where other keys may well be right.
    pub(super) fn finish_lenient(self, sink: &mut Sink) {
        self.report_unknown(sink, true);
    }

    fn child(path: String, schema: String, map: Option<&'a Map<String, Value>>) -> Self {
        Table {
            path,
            schema,
            map,
            asked: Vec::new(),
            reported: Vec::new(),
        }
    }

    fn report_unknown(self, sink: &mut Sink, only_misspellings: bool) {
        let Some(map) = self.map else { return };
        // The map is a HashMap; sort for a stable report.
        let mut unknown: Vec<(&String, &Value)> = map
            .iter()
            .filter(|(key, _)| {
                !self.asked.contains(&key.as_str()) && !self.reported.contains(&key.as_str())
            })
            .collect();
        unknown.sort_by_key(|(key, _)| key.as_str());
        for (key, value) in unknown {
            let path = self.key_path(key);
            match closest(key, self.asked.iter().copied()) {
                Some(suggestion) => sink.value_error(
                    &path,
                    value,
                    format!("unknown key; did you mean {suggestion:?}?"),
                ),
                None if only_misspellings => {}
                None => {
                    let mut known = self.asked.clone();
                    known.sort_unstable();
                    sink.value_error(
                        &path,
                        value,
                        format!("unknown key (known keys: {})", known.join(", ")),
                    );
                }
            }
        }
    }
}

/// Reads a secret file: it must exist, be readable and be non-empty once its
/// trailing newline is removed.
fn read_secret_file(file: &Path, path: &str, sink: &mut Sink) -> Got<Secret> {
    match std::fs::read_to_string(file) {
        Ok(mut text) => {
            let trimmed_len = text.trim_end_matches(['\n', '\r']).len();
            text.truncate(trimmed_len);
            if text.is_empty() {
                sink.error(path, format!("{} is empty", file.display()));
                Got::Invalid
            } else {
                Got::Value(Secret::new(text))
            }
        }
        Err(e) => {
            sink.error(
                path,
                format!("cannot read {}: {}", file.display(), io_reason(&e)),
            );
            Got::Invalid
        }
    }
}

/// An I/O error's message without the trailing ` (os error 2)`.
pub(super) fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

/// A string value; checks it for placeholders.
fn as_str<'v>(value: &'v Value, path: &str, sink: &mut Sink) -> Option<&'v str> {
    match &value.kind {
        ValueKind::String(text) => {
            if PLACEHOLDER_MARKERS
                .iter()
                .any(|marker| text.contains(marker))
            {
                sink.value_error(
                    path,
                    value,
                    "placeholder value from config.example.toml; set a real value",
                );
                None
            } else {
                Some(text)
            }
        }
        other => {
            sink.value_error(
                path,
                value,
                format!("expected a string, got {}", kind_name(other)),
            );
            None
        }
    }
}

/// An integer; from the environment, also a string holding one.
fn as_integer(value: &Value, path: &str, sink: &mut Sink) -> Option<i128> {
    match &value.kind {
        ValueKind::I64(n) => Some(i128::from(*n)),
        ValueKind::I128(n) => Some(*n),
        ValueKind::U64(n) => Some(i128::from(*n)),
        ValueKind::U128(n) => i128::try_from(*n).ok().or_else(|| {
            sink.value_error(path, value, "integer too large");
            None
        }),
        ValueKind::String(text) if from_env(value) => text.trim().parse().ok().or_else(|| {
            sink.value_error(path, value, format!("expected an integer, got {text:?}"));
            None
        }),
        other => {
            sink.value_error(
                path,
                value,
                format!("expected an integer, got {}", kind_name(other)),
            );
            None
        }
    }
}

fn from_env(value: &Value) -> bool {
    value.origin() == Some(ENV_ORIGIN)
}

/// The variable that sets `relay.max_attempts`: `SWITCHBOARD__RELAY__MAX_ATTEMPTS`.
fn env_var_name(path: &str) -> String {
    format!(
        "{}{ENV_SEPARATOR}{}",
        ENV_PREFIX,
        path.to_ascii_uppercase().replace('.', ENV_SEPARATOR)
    )
}

fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// "a string", "an integer", … for messages. Never the value itself.
fn kind_name(kind: &ValueKind) -> &'static str {
    match kind {
        ValueKind::Nil => "nothing",
        ValueKind::Boolean(_) => "a boolean",
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => {
            "an integer"
        }
        ValueKind::Float(_) => "a float",
        ValueKind::String(_) => "a string",
        ValueKind::Table(_) => "a table",
        ValueKind::Array(_) => "an array",
    }
}

/// The candidate closest to `word`, if it is close enough to be a likely
/// misspelling: at most one edit per four characters (at least one), so
/// `memory:rigth` finds `memory:right` but `memory:nope` finds nothing.
pub(super) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|(distance, candidate)| {
            *distance <= (word.chars().count().max(candidate.chars().count()) / 4).max(1)
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and transpositions of neighbours (`fromat` is one edit from `format`).
/// ASCII case is ignored, so `Relay` finds `relay`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(!a[i - 1].eq_ignore_ascii_case(&b[j - 1]));
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let known = [
            "max_attempts",
            "initial_backoff",
            "format",
            "bridge",
            "relay",
        ];
        assert_eq!(closest("max_atempts", known), Some("max_attempts"));
        assert_eq!(closest("fromat", known), Some("format"));
        assert_eq!(closest("bridges", known), Some("bridge"));
        assert_eq!(closest("Relay", known), Some("relay"));
        assert_eq!(closest("colour", known), None);
        assert_eq!(closest("x", known), None);
    }

    #[test]
    fn env_var_names() {
        assert_eq!(
            env_var_name("relay.max_attempts"),
            "SWITCHBOARD__RELAY__MAX_ATTEMPTS"
        );
        assert!(is_env_var_name("MEMORY_LEFT_TOKEN"));
        assert!(is_env_var_name("_X1"));
        assert!(!is_env_var_name(""));
        assert!(!is_env_var_name("1X"));
        assert!(!is_env_var_name("xoxb-123-abc"));
    }

    #[test]
    fn io_reason_drops_the_os_error_number() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_reason(&e), "No such file or directory");
        let e = std::io::Error::other("plain");
        assert_eq!(io_reason(&e), "plain");
    }
}
