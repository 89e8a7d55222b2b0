//! Configuration: a TOML file plus `SWITCHBOARD__SECTION__KEY` environment
//! overrides, turned into the typed, validated [`Config`].
//!
//! How loading goes:
//!
//! 1. The `config` crate reads the TOML text and merges the environment
//!    over it (`SWITCHBOARD__RELAY__MAX_ATTEMPTS=3` sets `relay.max_attempts`).
//!    The result is a loose tree of values, not yet typed.
//! 2. The `validate` module walks that tree key by key and collects *every*
//!    problem (unknown keys with a suggestion, wrong types, missing keys, bad
//!    values, placeholders, cross-references) with its key path, so that an
//!    operator fixes a file in one round instead of one error per restart.
//! 3. On the way, secrets are read from the files or environment variables
//!    the config names; a secret written in the file itself is refused.
//!
//! The caller prints [`ConfigErrors`] (one `key.path: problem` per line) and
//! exits with [`EXIT_BAD_CONFIG`]. No message and no `Debug` output ever
//! contains a secret.

pub mod types;

mod defaults;
mod duration;
mod validate;
mod walk;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use config::{Environment, File, FileFormat, ValueKind};

pub use defaults::{
    DEFAULT_DEDUP_RETENTION, DEFAULT_LISTEN, DEFAULT_LOG_FILTER, DEFAULT_MATRIX_MAX_UPLOAD,
    DEFAULT_MIN_FREE_BYTES,
};
pub use types::*;
pub use validate::{check_portal_name, parse_portal_member};

use validate::Outcome;
use walk::{Context, Sink, io_reason};

/// Exit code for a bad configuration (`EX_USAGE` from `sysexits.h`).
pub const EXIT_BAD_CONFIG: i32 = 64;

/// Markers of values an operator must replace. `config.example.toml` uses
/// them, and any string value containing one is refused, so a copied
/// example never runs by accident.
pub const PLACEHOLDER_MARKERS: &[&str] = &["CHANGE-ME"];

/// Environment overrides start with `SWITCHBOARD__`.
pub const ENV_PREFIX: &str = "SWITCHBOARD";

/// Separates the prefix, the section and the key: `SWITCHBOARD__LOG__FORMAT`.
pub const ENV_SEPARATOR: &str = "__";

/// Sections that are arrays of tables. The `config` crate cannot address
/// their elements from the environment (it would replace the whole array),
/// so overrides of them are refused.
const ARRAY_SECTIONS: &[&str] = &["bridge", "portal"];

/// Loads a TOML file plus environment overrides, validates, returns all
/// problems at once.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    // Variables that are not valid Unicode cannot be overrides or secrets.
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .collect();
    load_with_env(path, &env)
}

/// Same as [`load`], with an explicit environment (for tests).
pub fn load_with_env(path: &Path, env: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
    load_outcome(path, env).result
}

/// Parses and validates TOML text (used by tests and SIGHUP reload).
/// Relative paths are resolved against `base_dir`.
pub fn from_toml_str(
    text: &str,
    env: &HashMap<String, String>,
    base_dir: &Path,
) -> Result<Config, ConfigErrors> {
    parse(text, env, base_dir, None).result
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// One problem, at one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key path, `bridge[1].state_dir`; empty for the file as a whole
    /// (unreadable, not TOML).
    pub path: String,
    /// What is wrong, for the operator.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.path, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigErrors {
    /// One `key.path: problem` per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

fn load_outcome(path: &Path, env: &HashMap<String, String>) -> Outcome {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            return Outcome::failed(vec![ConfigError {
                path: String::new(),
                problem: format!("cannot read {}: {}", path.display(), io_reason(&e)),
            }]);
        }
    };
    // Relative paths in the file are relative to the file, wherever the
    // daemon was started from.
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base_dir = absolute.parent().unwrap_or(Path::new(""));
    parse(&text, env, base_dir, Some(path))
}

fn parse(
    text: &str,
    env: &HashMap<String, String>,
    base_dir: &Path,
    file: Option<&Path>,
) -> Outcome {
    let mut sink = Sink::default();
    let overrides = env_overrides(env, &mut sink);
    let built = config::Config::builder()
        .add_source(File::from_str(text, FileFormat::Toml))
        .add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .source(Some(overrides)),
        )
        .build();
    let tree = match built {
        Ok(tree) => tree.cache,
        Err(e) => {
            let mut problem = toml_problem(&e.to_string());
            if let Some(file) = file {
                problem = format!("{}: {problem}", file.display());
            }
            sink.error("", problem);
            return Outcome::failed(sink.errors);
        }
    };
    let ValueKind::Table(root) = &tree.kind else {
        sink.error("", "expected a TOML table at the top level");
        return Outcome::failed(sink.errors);
    };
    let ctx = Context { env, base_dir };
    validate::validate(root, ctx, sink)
}

/// The environment variables that are overrides, sorted; refuses the ones
/// that address `[[bridge]]` or `[[portal]]`.
fn env_overrides(env: &HashMap<String, String>, sink: &mut Sink) -> config::Map<String, String> {
    // The `config` crate matches the prefix case-insensitively; so do we.
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_lowercase();
    let mut keys: Vec<&String> = env
        .keys()
        .filter(|key| key.to_lowercase().starts_with(&prefix))
        .collect();
    keys.sort();
    let mut overrides = config::Map::new();
    for key in keys {
        let lower = key.to_lowercase();
        let rest = &lower[prefix.len()..];
        let section = rest.split(ENV_SEPARATOR).next().unwrap_or(rest);
        if ARRAY_SECTIONS.contains(&section) {
            sink.error(
                section,
                format!(
                    "[[{section}]] cannot be set from the environment ({key} is set); \
                     edit the config file"
                ),
            );
            continue;
        }
        if let Some(value) = env.get(key) {
            overrides.insert(key.clone(), value.clone());
        }
    }
    overrides
}

/// A one-line message from a TOML parse error. The parser quotes the
/// offending line, which may hold a secret pasted in the wrong place, so the
/// quote is dropped and only the position and the reason are kept.
fn toml_problem(message: &str) -> String {
    let kept: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|line| {
            let quoted = line.starts_with('|')
                || line
                    .split_once('|')
                    .is_some_and(|(number, _)| number.trim().chars().all(|c| c.is_ascii_digit()));
            !line.is_empty() && !quoted
        })
        .collect();
    format!("invalid TOML: {}", kept.join(": "))
}
