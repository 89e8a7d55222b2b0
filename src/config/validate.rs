//! The schema: every key, its default and its rules, and the checks that
//! span sections (bridge ids are unique, portal members name configured
//! bridges, a channel belongs to one portal).
//!
//! Everything is read before anything is combined, so one run reports every
//! problem. The only I/O is reading secret files, which must fail here, at
//! start-up or reload, rather than at the first message.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use config::{Map, Value};
use switchboard_model::{BridgeId, ChannelId, UserId};

use super::defaults::{
    DEFAULT_DEDUP_RETENTION, DEFAULT_MATRIX_MAX_UPLOAD, DEFAULT_MATRIX_SENDER,
    DEFAULT_MIN_FREE_BYTES, DEFAULT_TEAMS_GRAPH_URL, DEFAULT_TEAMS_LOGIN_URL,
    DEFAULT_TEAMS_POLL_INTERVAL, DEFAULT_TEAMS_RATE_LIMITS, DEFAULT_TEAMS_RECONCILE_INTERVAL,
    DEFAULT_TEAMS_RENEW_BEFORE, MAX_TEAMS_CLIENT_STATE_CHARS, MAX_TEAMS_SUBSCRIPTION_LIFETIME,
};
use super::duration::format_duration;
use super::types::{
    BridgeConfig, BridgeKind, Config, HttpConfig, LogConfig, LogFormat, MatrixBridgeConfig,
    MeetingProvider, MemoryBridgeConfig, MemoryCapabilities, PortalCalls, PortalConfig,
    PortalMember, ReactionFallback, RelayConfig, SlackBridgeConfig, SlackMode, StoreConfig,
    TeamsBridgeConfig, TeamsNotificationsConfig, TeamsRateLimits,
};
use super::walk::{Context, SecretKeys, Sink, Table, closest};
use super::{ConfigError, ConfigErrors};

/// The result of a validation, with the keys it knows (for the tests that
/// compare them with `config.example.toml`).
#[derive(Debug)]
pub(super) struct Outcome {
    /// The configuration, or every problem found.
    pub(super) result: Result<Config, ConfigErrors>,
    /// Schema paths of every key read: `relay.max_attempts`, `bridge[].id`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) known_keys: BTreeSet<String>,
}

impl Outcome {
    /// An outcome for problems found before there was a tree to walk.
    pub(super) fn failed(errors: Vec<ConfigError>) -> Self {
        Outcome {
            result: Err(ConfigErrors(errors)),
            known_keys: BTreeSet::new(),
        }
    }
}

/// The `[[bridge]]` types. A closed set: a new platform is a new variant
/// here and in [`BridgeKind`], and the compiler finds every `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BridgeType {
    Memory,
    Slack,
    Teams,
    Matrix,
}

impl BridgeType {
    const ALL: &[BridgeType] = &[
        BridgeType::Memory,
        BridgeType::Slack,
        BridgeType::Teams,
        BridgeType::Matrix,
    ];

    /// The `type` string; equals [`BridgeKind::type_name`].
    fn name(self) -> &'static str {
        match self {
            BridgeType::Memory => "memory",
            BridgeType::Slack => "slack",
            BridgeType::Teams => "teams",
            BridgeType::Matrix => "matrix",
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        if let Some(found) = Self::ALL.iter().find(|t| t.name() == text) {
            return Ok(*found);
        }
        let names = Self::ALL.iter().map(|t| t.name());
        Err(match closest(text, names.clone()) {
            Some(suggestion) => {
                format!("unknown bridge type {text:?}; did you mean {suggestion:?}?")
            }
            None => format!(
                "unknown bridge type {text:?} (supported: {})",
                names.collect::<Vec<_>>().join(", ")
            ),
        })
    }
}

/// The bridges' `token`.
const TOKEN: SecretKeys = SecretKeys {
    literal: "token",
    file: "token_file",
    env: "token_env",
};

/// Slack's secrets.
const BOT_TOKEN: SecretKeys = SecretKeys {
    literal: "bot_token",
    file: "bot_token_file",
    env: "bot_token_env",
};
const APP_TOKEN: SecretKeys = SecretKeys {
    literal: "app_token",
    file: "app_token_file",
    env: "app_token_env",
};
const SIGNING_SECRET: SecretKeys = SecretKeys {
    literal: "signing_secret",
    file: "signing_secret_file",
    env: "signing_secret_env",
};

/// The keys of a `type = "slack"` bridge.
fn slack(
    t: &mut Table<'_>,
    ctx: Context<'_>,
    name: &str,
    sink: &mut Sink,
) -> Option<SlackBridgeConfig> {
    let api_url = t
        .parsed("api_url", sink, |url| {
            if url.starts_with("https://") || url.starts_with("http://") {
                Ok(url.trim_end_matches('/').to_owned())
            } else {
                Err(format!("must be an http(s) URL, got {url:?}"))
            }
        })
        .or("https://slack.com/api".to_owned());
    let bot_token = t.secret(BOT_TOKEN, ctx, sink).required(sink);
    let mode_path = t.key_path("mode");
    let mode = t
        .parsed("mode", sink, |m| match m {
            "socket" | "events" => Ok(m.to_owned()),
            other => Err(format!(
                "unknown mode {other:?} (expected socket or events)"
            )),
        })
        .or("socket".to_owned());
    let app_token = t.secret(APP_TOKEN, ctx, sink).optional();
    let signing_secret = t.secret(SIGNING_SECRET, ctx, sink).optional();
    let events_path = t
        .parsed("events_path", sink, |p| {
            if p.starts_with('/') {
                Ok(p.to_owned())
            } else {
                Err(format!("must start with '/', got {p:?}"))
            }
        })
        .or(format!("/slack/{name}/events"));
    let rate_limits = t.boolean("rate_limits", sink).or(true);
    let max_upload = t
        .integer("max_upload", 1, u64::MAX, sink)
        .or(100 * 1024 * 1024);
    let client_id = t.string("client_id", sink).optional();
    let client_secret = t.secret(CLIENT_SECRET, ctx, sink).optional();
    let oauth_url = t
        .parsed("oauth_url", sink, |url| {
            if url.starts_with("https://") || url.starts_with("http://") {
                Ok(url.to_owned())
            } else {
                Err(format!("must be an http(s) URL, got {url:?}"))
            }
        })
        .or("https://slack.com/oauth/v2/authorize".to_owned());
    let public_url = t.parsed("public_url", sink, public_url).optional();
    let mode = match (mode?.as_str(), app_token?, signing_secret?) {
        ("socket", Some(app_token), _) => SlackMode::Socket { app_token },
        ("socket", None, _) => {
            sink.error(
                &mode_path,
                "socket mode needs app_token_file or app_token_env (an xapp- token)",
            );
            return None;
        }
        (_, _, Some(signing_secret)) => SlackMode::Events {
            signing_secret,
            path: events_path?,
        },
        (_, _, None) => {
            sink.error(
                &mode_path,
                "events mode needs signing_secret_file or signing_secret_env",
            );
            return None;
        }
    };
    Some(SlackBridgeConfig {
        api_url: api_url?,
        bot_token: bot_token?,
        mode,
        rate_limits: rate_limits?,
        max_upload: max_upload?,
        client_id: client_id?.map(str::to_owned),
        client_secret: client_secret?,
        oauth_url: oauth_url?,
        public_url: public_url?,
    })
}

/// A Matrix bridge's application-service tokens.
const AS_TOKEN: SecretKeys = SecretKeys {
    literal: "as_token",
    file: "as_token_file",
    env: "as_token_env",
};
const DOUBLE_PUPPET_TOKEN: SecretKeys = SecretKeys {
    literal: "double_puppet_token",
    file: "double_puppet_token_file",
    env: "double_puppet_token_env",
};
const HS_TOKEN: SecretKeys = SecretKeys {
    literal: "hs_token",
    file: "hs_token_file",
    env: "hs_token_env",
};

/// A Matrix localpart (or template): lower-case letters, digits and
/// `._=-/`, besides `{…}` placeholders.
fn localpart_like(text: &str) -> bool {
    let bare: String = text
        .replace("{instance}", "")
        .replace("{user}", "")
        .replace("{name}", "");
    !text.is_empty()
        && bare
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._=-/".contains(c))
}

/// The keys of a `type = "matrix"` bridge.
fn matrix(t: &mut Table<'_>, ctx: Context<'_>, sink: &mut Sink) -> Option<MatrixBridgeConfig> {
    let homeserver_url = t.parsed("homeserver_url", sink, http_url).required(sink);
    let server_name = t
        .parsed("server_name", sink, |text| {
            let valid = !text.is_empty()
                && !text.contains(['/', '@', '#', '!', ' '])
                && text.chars().all(|c| c.is_ascii_graphic());
            if valid {
                Ok(text.to_owned())
            } else {
                Err(format!(
                    "expected a server name such as \"example.org\", got {text:?}"
                ))
            }
        })
        .required(sink);
    let localpart = |what: &'static str| {
        move |text: &str| {
            if localpart_like(text) {
                Ok(text.to_owned())
            } else {
                Err(format!(
                    "{what} may hold only lower-case letters, digits and ._=-/, got {text:?}"
                ))
            }
        }
    };
    let appservice_id = t
        .parsed(
            "appservice_id",
            sink,
            localpart("an application service id"),
        )
        .or(DEFAULT_MATRIX_SENDER.to_owned());
    let appservice_url = t.parsed("appservice_url", sink, http_url).optional();
    let as_token = t.secret(AS_TOKEN, ctx, sink).required(sink);
    let hs_token = t.secret(HS_TOKEN, ctx, sink).required(sink);
    let sender_localpart = t
        .parsed("sender_localpart", sink, localpart("a localpart"))
        .or(DEFAULT_MATRIX_SENDER.to_owned());
    let template = |platform: &'static str| {
        move |text: &str| {
            if localpart_like(text) && text.contains("{user}") {
                Ok((platform.to_owned(), text.to_owned()))
            } else {
                Err(format!(
                    "a ghost template needs {{user}} and may otherwise hold only lower-case letters, digits and ._=-/, got {text:?}"
                ))
            }
        }
    };
    let slack_ghosts = t
        .parsed("slack_ghosts", sink, template("slack"))
        .or(("slack".to_owned(), "slack_{instance}_{user}".to_owned()));
    let teams_ghosts = t
        .parsed("teams_ghosts", sink, template("teams"))
        .or(("teams".to_owned(), "teams_{instance}_{user}".to_owned()));
    let alias_template = t
        .parsed("alias_template", sink, |text| {
            if localpart_like(text) && text.contains("{name}") {
                Ok(text.to_owned())
            } else {
                Err(format!(
                    "the alias template needs {{name}} and may otherwise hold only lower-case letters, digits and ._=-/, got {text:?}"
                ))
            }
        })
        .or("switchboard_{name}".to_owned());
    let invite = t.strings("invite", sink).optional().map(|raw| {
        raw.unwrap_or_default()
            .into_iter()
            .map(|(path, text)| {
                let text = text?;
                let valid = text.starts_with('@') && text.contains(':') && !text.contains(' ');
                if valid {
                    Some(text.to_owned())
                } else {
                    sink.error(
                        path,
                        format!(
                            "expected a Matrix user id such as \"@ann:example.org\", got {text:?}"
                        ),
                    );
                    None
                }
            })
            .collect::<Option<Vec<_>>>()
    });
    let max_upload = t
        .integer("max_upload", 1, u64::MAX, sink)
        .or(DEFAULT_MATRIX_MAX_UPLOAD);
    let registration_file = t.path_value("registration_file", ctx, sink).optional();
    let double_puppet_token = t.secret(DOUBLE_PUPPET_TOKEN, ctx, sink).optional();
    let public_url = t.parsed("public_url", sink, base_url).optional();
    Some(MatrixBridgeConfig {
        homeserver_url: homeserver_url?,
        server_name: server_name?,
        appservice_id: appservice_id?,
        appservice_url: appservice_url?,
        as_token: as_token?,
        hs_token: hs_token?,
        sender_localpart: sender_localpart?,
        ghost_templates: vec![slack_ghosts?, teams_ghosts?],
        alias_template: alias_template?,
        invite: invite??,
        max_upload: max_upload?,
        registration_file: registration_file?,
        double_puppet_token: double_puppet_token?,
        public_url: public_url?,
    })
}

/// A Teams bridge's `clientState` for change notifications.
const CLIENT_STATE: SecretKeys = SecretKeys {
    literal: "client_state",
    file: "client_state_file",
    env: "client_state_env",
};

/// An http(s) URL without a trailing `/`.
/// An http(s) base URL with a host and neither query nor fragment, without
/// a trailing `/`.
fn base_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(_) if url.contains(['?', '#']) || url.contains(char::is_whitespace) => Err(format!(
            "must be an http(s) URL without query or fragment, got {url:?}"
        )),
        Some(rest) if url_host(rest).is_empty() => {
            Err(format!("must be an http(s) URL with a host, got {url:?}"))
        }
        Some(_) => Ok(url.trim_end_matches('/').to_owned()),
        None => Err(format!("must be an http(s) URL, got {url:?}")),
    }
}

fn http_url(url: &str) -> Result<String, String> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(format!("must be an http(s) URL, got {url:?}"))
    }
}

/// The host of an http(s) URL, without port or brackets.
fn url_host(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

/// Whether `host` is a loopback name or address.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The public URL Graph posts notifications to: https, or http on loopback
/// (a test or a local proxy); no query or fragment, no trailing `/`.
fn public_url(url: &str) -> Result<String, String> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!("must be an https URL, got {url:?}"));
    };
    let host = url_host(rest);
    if host.is_empty() {
        return Err(format!("has no host, got {url:?}"));
    }
    if url.contains(['?', '#']) {
        return Err(format!("must not have a query or fragment, got {url:?}"));
    }
    if !https && !is_loopback_host(host) {
        return Err(format!(
            "must be an https URL (http only for loopback hosts), got {url:?}"
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The keys of a `type = "teams"` bridge.
fn teams(t: &mut Table<'_>, ctx: Context<'_>, sink: &mut Sink) -> Option<TeamsBridgeConfig> {
    let graph_url = t
        .parsed("graph_url", sink, http_url)
        .or(DEFAULT_TEAMS_GRAPH_URL.to_owned());
    let login_url = t
        .parsed("login_url", sink, http_url)
        .or(DEFAULT_TEAMS_LOGIN_URL.to_owned());
    let tenant = t
        .parsed("tenant", sink, |text| {
            let valid = !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
            if valid {
                Ok(text.to_owned())
            } else {
                Err(format!(
                    "expected a tenant id (a GUID) or domain, got {text:?}"
                ))
            }
        })
        .required(sink);
    let client_id = t
        .parsed("client_id", sink, |text| {
            if text.trim().is_empty() || text.chars().any(char::is_whitespace) {
                Err(format!("expected the app's client id, got {text:?}"))
            } else {
                Ok(text.to_owned())
            }
        })
        .required(sink);
    let client_secret = t.secret(CLIENT_SECRET, ctx, sink).required(sink);
    let poll_interval = t
        .duration("poll_interval", Duration::from_millis(100), sink)
        .or(DEFAULT_TEAMS_POLL_INTERVAL);
    let watch = t.strings("watch", sink).optional().map(|raw| {
        raw.unwrap_or_default()
            .into_iter()
            .map(|(path, text)| {
                let text = text?;
                let valid = !text.is_empty()
                    && !text.starts_with('/')
                    && !text.ends_with('/')
                    && !text.chars().any(char::is_whitespace);
                if valid {
                    Some(ChannelId::new(text))
                } else {
                    sink.error(
                        path,
                        format!("expected \"<team id>/<channel id>\" or a chat id, got {text:?}"),
                    );
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let watch = watch.and_then(|w| w.into_iter().collect::<Option<Vec<_>>>());
    let rate_limits = t.boolean("rate_limits", sink).or(true);
    let d = DEFAULT_TEAMS_RATE_LIMITS;
    let app_rps = t.integer("app_rps", 1u32, 100_000u32, sink).or(d.app_rps);
    let user_rps = t.integer("user_rps", 1u32, 100_000u32, sink).or(d.user_rps);
    let rate_burst = t.integer("rate_burst", 1u32, 100_000u32, sink).or(d.burst);
    let notifications = t
        .table("notifications", sink)
        .and_then(|n| teams_notifications(n, ctx, sink));
    let limits = match rate_limits? {
        true => Some(TeamsRateLimits {
            app_rps: app_rps?,
            user_rps: user_rps?,
            burst: rate_burst?,
        }),
        false => None,
    };
    let (notifications, reconcile_interval) = notifications?;
    Some(TeamsBridgeConfig {
        graph_url: graph_url?,
        login_url: login_url?,
        tenant: tenant?,
        client_id: client_id?,
        client_secret: client_secret?,
        poll_interval: poll_interval?,
        watch: watch?,
        notifications,
        reconcile_interval,
        rate_limits: limits,
    })
}

/// `[bridge.notifications]`: `None` when there is a problem; the settings
/// (none when the table is absent) and the reconcile interval otherwise.
fn teams_notifications(
    mut t: Table<'_>,
    ctx: Context<'_>,
    sink: &mut Sink,
) -> Option<(Option<TeamsNotificationsConfig>, Duration)> {
    let present = t.is_present();
    let public_url = t.parsed("public_url", sink, public_url);
    let state_path = t.key_path("client_state_file");
    let client_state = t.secret(CLIENT_STATE, ctx, sink).and_then(|secret| {
        let chars = secret.expose().chars().count();
        if chars > MAX_TEAMS_CLIENT_STATE_CHARS {
            // The value itself is never shown.
            sink.error(
                &state_path,
                format!(
                    "the client state may be at most {MAX_TEAMS_CLIENT_STATE_CHARS} characters, got {chars}"
                ),
            );
            None
        } else {
            Some(secret)
        }
    });
    let lifetime_path = t.key_path("lifetime");
    let lifetime = t
        .duration("lifetime", Duration::from_secs(60), sink)
        .and_then(|lifetime| {
            if lifetime > MAX_TEAMS_SUBSCRIPTION_LIFETIME {
                sink.error(
                    &lifetime_path,
                    format!(
                        "Graph allows at most {} (4320 minutes) for Teams messages, got {}",
                        format_duration(MAX_TEAMS_SUBSCRIPTION_LIFETIME),
                        format_duration(lifetime)
                    ),
                );
                None
            } else {
                Some(lifetime)
            }
        })
        .or(MAX_TEAMS_SUBSCRIPTION_LIFETIME);
    let mut renew_before = t
        .duration("renew_before", Duration::from_secs(1), sink)
        .or(DEFAULT_TEAMS_RENEW_BEFORE);
    if let (Some(lifetime), Some(renew)) = (lifetime, renew_before)
        && renew >= lifetime
    {
        sink.error(
            t.key_path("renew_before"),
            format!(
                "must be less than lifetime ({}), got {}",
                format_duration(lifetime),
                format_duration(renew)
            ),
        );
        renew_before = None;
    }
    let reconcile_interval = t
        .duration("reconcile_interval", Duration::from_secs(1), sink)
        .or(DEFAULT_TEAMS_RECONCILE_INTERVAL);
    let encryption_key_file = t.path_value("encryption_key_file", ctx, sink).optional();
    t.finish(sink);
    if !present {
        return Some((None, reconcile_interval?));
    }
    let public_url = public_url.required(sink);
    let client_state = client_state.required(sink);
    Some((
        Some(TeamsNotificationsConfig {
            public_url: public_url?,
            client_state: client_state?,
            lifetime: lifetime?,
            renew_before: renew_before?,
            encryption_key_file: encryption_key_file?,
        }),
        reconcile_interval?,
    ))
}

/// Validates the whole tree. `sink` may already hold problems found in the
/// environment.
pub(super) fn validate(root: &Map<String, Value>, ctx: Context<'_>, mut sink: Sink) -> Outcome {
    let sink = &mut sink;
    let mut top = Table::root(root);

    let store = top.table("store", sink).and_then(|t| store(t, ctx, sink));
    let http = top.table("http", sink).and_then(|t| http(t, ctx, sink));
    let log = top.table("log", sink).and_then(|t| log(t, sink));
    let relay = top.table("relay", sink).and_then(|t| relay(t, sink));

    let bridge_tables = top.tables("bridge", sink);
    let mut bridge_ids: HashMap<&str, String> = HashMap::new();
    let mut bridges = Vec::new();
    for table in bridge_tables {
        let path = table.path().to_owned();
        let (raw_id, bridge) = bridge(table, ctx, sink);
        if let Some(raw_id) = raw_id {
            if let Some(first) = bridge_ids.get(raw_id) {
                sink.error(
                    format!("{path}.id"),
                    format!("duplicate bridge id {raw_id:?} (also {first})"),
                );
            } else {
                bridge_ids.insert(raw_id, path);
            }
        }
        bridges.push(bridge);
    }

    if let Some(relay) = &relay {
        for (i, (bridge, _)) in relay.admins.iter().enumerate() {
            if !bridge_ids.contains_key(bridge.as_str()) {
                sink.error(
                    format!("relay.admins[{i}]"),
                    format!("unknown bridge {:?}", bridge.as_str()),
                );
            }
        }
    }
    let portal_tables = top.tables("portal", sink);
    let portals = portals(portal_tables, &bridge_ids, sink);
    top.finish(sink);

    let config = assemble(store, http, log, relay, bridges, portals);
    let known_keys = std::mem::take(&mut sink.known_keys);
    let errors = std::mem::take(&mut sink.errors);
    let result = match config {
        Some(config) if errors.is_empty() => Ok(config),
        None if errors.is_empty() => Err(ConfigErrors(vec![ConfigError {
            path: String::new(),
            problem: "internal error: a value was rejected without a reason; please report this"
                .to_owned(),
        }])),
        _ => Err(ConfigErrors(errors)),
    };
    Outcome { result, known_keys }
}

fn assemble(
    store: Option<StoreConfig>,
    http: Option<HttpConfig>,
    log: Option<LogConfig>,
    relay: Option<RelayConfig>,
    bridges: Vec<Option<BridgeConfig>>,
    portals: Vec<Option<PortalConfig>>,
) -> Option<Config> {
    Some(Config {
        store: store?,
        http: http?,
        log: log?,
        relay: relay?,
        bridges: bridges.into_iter().collect::<Option<_>>()?,
        portals: portals.into_iter().collect::<Option<_>>()?,
    })
}

fn store(mut t: Table<'_>, ctx: Context<'_>, sink: &mut Sink) -> Option<StoreConfig> {
    let path = t.path_value("path", ctx, sink).required(sink);
    let dedup_retention = t
        .duration("dedup_retention", Duration::ZERO, sink)
        .or(DEFAULT_DEDUP_RETENTION);
    let min_free_bytes = t
        .integer("min_free_bytes", 0, u64::MAX, sink)
        .or(DEFAULT_MIN_FREE_BYTES);
    let key_file = t.path_value("key_file", ctx, sink).optional();
    t.finish(sink);
    Some(StoreConfig {
        path: path?,
        dedup_retention: dedup_retention?,
        min_free_bytes: min_free_bytes?,
        key_file: key_file?,
    })
}

/// The admin API's token.
const ADMIN_TOKEN: SecretKeys = SecretKeys {
    literal: "admin_token",
    file: "admin_token_file",
    env: "admin_token_env",
};

/// A Slack app's OAuth client secret.
const CLIENT_SECRET: SecretKeys = SecretKeys {
    literal: "client_secret",
    file: "client_secret_file",
    env: "client_secret_env",
};

fn http(mut t: Table<'_>, ctx: Context<'_>, sink: &mut Sink) -> Option<HttpConfig> {
    let listen = t
        .parsed("listen", sink, |text| {
            text.parse::<SocketAddr>().map_err(|_| {
                format!("expected an IP address and port such as \"127.0.0.1:29340\", got {text:?}")
            })
        })
        .or(HttpConfig::default().listen);
    let admin_token = t.secret(ADMIN_TOKEN, ctx, sink).optional();
    t.finish(sink);
    Some(HttpConfig {
        listen: listen?,
        admin_token: admin_token?,
    })
}

fn log(mut t: Table<'_>, sink: &mut Sink) -> Option<LogConfig> {
    let defaults = LogConfig::default();
    let format = t
        .parsed("format", sink, str::parse::<LogFormat>)
        .or(defaults.format);
    let filter = t
        .parsed("filter", sink, |text| {
            if text.trim().is_empty() {
                return Err("must not be empty".to_owned());
            }
            tracing_subscriber::EnvFilter::builder()
                .parse(text)
                .map(|_| text.to_owned())
                .map_err(|e| format!("invalid filter {text:?}: {e}"))
        })
        .or(defaults.filter);
    t.finish(sink);
    Some(LogConfig {
        format: format?,
        filter: filter?,
    })
}

fn relay(mut t: Table<'_>, sink: &mut Sink) -> Option<RelayConfig> {
    let d = RelayConfig::default();
    let max_attempts = t
        .integer("max_attempts", 1u32, 100u32, sink)
        .or(d.max_attempts);
    // Zero would stay zero however often it is doubled.
    let initial_backoff = t
        .duration("initial_backoff", Duration::from_millis(1), sink)
        .or(d.initial_backoff);
    let mut max_backoff = t
        .duration("max_backoff", Duration::ZERO, sink)
        .or(d.max_backoff);
    if let (Some(initial), Some(max)) = (initial_backoff, max_backoff)
        && max < initial
    {
        sink.error(
            t.key_path("max_backoff"),
            format!(
                "must be at least initial_backoff ({}), got {}",
                format_duration(initial),
                format_duration(max)
            ),
        );
        max_backoff = None;
    }
    let drain_grace = t
        .duration("drain_grace", Duration::ZERO, sink)
        .or(d.drain_grace);
    let dependency_wait = t
        .duration("dependency_wait", Duration::ZERO, sink)
        .or(d.dependency_wait);
    let reaction_fallback = t
        .parsed("reaction_fallback", sink, |text| match text {
            "notice" => Ok(ReactionFallback::Notice),
            "skip" => Ok(ReactionFallback::Skip),
            other => Err(format!(
                "unknown reaction fallback {other:?} (expected notice or skip)"
            )),
        })
        .or(d.reaction_fallback);
    let dead_letter_notices = t
        .boolean("dead_letter_notices", sink)
        .or(d.dead_letter_notices);
    let jitsi_url = t.parsed("jitsi_url", sink, base_url).or(d.jitsi_url);
    let admins = match t.strings("admins", sink).optional() {
        None => None,
        Some(None) => Some(Vec::new()),
        Some(Some(items)) => {
            let mut admins = Some(Vec::with_capacity(items.len()));
            for (path, text) in items {
                let Some(text) = text else {
                    admins = None;
                    continue;
                };
                match text
                    .split_once('/')
                    .filter(|(b, u)| !b.is_empty() && !u.is_empty())
                {
                    Some((bridge, user)) => {
                        if let Some(list) = &mut admins {
                            list.push((BridgeId::new(bridge), UserId::new(user)));
                        }
                    }
                    None => {
                        sink.error(
                            path,
                            format!(
                                "expected \"<bridge-id>/<user-id>\" such as \"slack:acme/U0123ABCD\", got {text:?}"
                            ),
                        );
                        admins = None;
                    }
                }
            }
            admins
        }
    };
    t.finish(sink);
    Some(RelayConfig {
        max_attempts: max_attempts?,
        initial_backoff: initial_backoff?,
        max_backoff: max_backoff?,
        drain_grace: drain_grace?,
        dependency_wait: dependency_wait?,
        reaction_fallback: reaction_fallback?,
        dead_letter_notices: dead_letter_notices?,
        jitsi_url: jitsi_url?,
        admins: admins?,
    })
}

/// One `[[bridge]]`. Returns its id as written (if it is a string) for the
/// duplicate and cross-reference checks, even when the bridge is otherwise
/// invalid, so that one mistake does not cascade into "unknown bridge"
/// errors in every portal.
fn bridge<'a>(
    mut t: Table<'a>,
    ctx: Context<'_>,
    sink: &mut Sink,
) -> (Option<&'a str>, Option<BridgeConfig>) {
    let raw_id = t.string("id", sink).required(sink);
    let bridge_type = t.parsed("type", sink, BridgeType::parse).required(sink);
    let id = raw_id.and_then(|raw| check_bridge_id(raw, bridge_type, &t.key_path("id"), sink));
    let kind = match bridge_type {
        Some(BridgeType::Memory) => memory(&mut t, ctx, sink).map(BridgeKind::Memory),
        Some(BridgeType::Slack) => {
            let name = raw_id
                .and_then(|r| r.split_once(':'))
                .map_or("slack", |(_, n)| n);
            slack(&mut t, ctx, name, sink).map(BridgeKind::Slack)
        }
        Some(BridgeType::Teams) => teams(&mut t, ctx, sink).map(BridgeKind::Teams),
        Some(BridgeType::Matrix) => matrix(&mut t, ctx, sink).map(BridgeKind::Matrix),
        None => None,
    };
    if bridge_type.is_some() {
        t.finish(sink);
    } else {
        // Without a type the other keys cannot be judged; only flag
        // obvious misspellings such as `tpye`.
        t.finish_lenient(sink);
    }
    let bridge = id.zip(kind).map(|(id, kind)| BridgeConfig { id, kind });
    (raw_id, bridge)
}

/// `platform:name`, the platform being the bridge's type.
fn check_bridge_id(
    raw: &str,
    bridge_type: Option<BridgeType>,
    path: &str,
    sink: &mut Sink,
) -> Option<BridgeId> {
    let Some((platform, name)) = raw
        .split_once(':')
        .filter(|(p, n)| !p.is_empty() && !n.is_empty())
    else {
        sink.error(
            path,
            format!("expected \"<type>:<name>\" such as \"memory:left\", got {raw:?}"),
        );
        return None;
    };
    let mut ok = true;
    if let Some(bridge_type) = bridge_type
        && platform != bridge_type.name()
    {
        sink.error(
            path,
            format!(
                "must start with \"{}:\" to match type = {:?}, got {raw:?}",
                bridge_type.name(),
                bridge_type.name()
            ),
        );
        ok = false;
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        sink.error(
            path,
            format!("the name after ':' may only contain a-z, 0-9, _ and -, got {raw:?}"),
        );
        ok = false;
    }
    ok.then(|| BridgeId::new(raw))
}

/// The keys of a `type = "memory"` bridge.
fn memory(t: &mut Table<'_>, ctx: Context<'_>, sink: &mut Sink) -> Option<MemoryBridgeConfig> {
    let state_dir = t.path_value("state_dir", ctx, sink).required(sink);
    let capabilities = t
        .parsed("capabilities", sink, |text| match text {
            "full" => Ok(MemoryCapabilities::Full),
            "minimal" => Ok(MemoryCapabilities::Minimal),
            other => Err(format!(
                "unknown capabilities {other:?} (expected full or minimal)"
            )),
        })
        .or(MemoryCapabilities::default());
    let token = t.secret(TOKEN, ctx, sink).optional();
    let latency = t
        .duration("latency", Duration::ZERO, sink)
        .or(Duration::ZERO);
    Some(MemoryBridgeConfig {
        state_dir: state_dir?,
        capabilities: capabilities?,
        token: token?,
        latency: latency?,
    })
}

/// Every `[[portal]]`, with the checks across portals.
fn portals(
    tables: Vec<Table<'_>>,
    bridge_ids: &HashMap<&str, String>,
    sink: &mut Sink,
) -> Vec<Option<PortalConfig>> {
    let mut names: HashMap<String, String> = HashMap::new();
    // Every member seen so far, with the path of the portal holding it.
    let mut owners: HashMap<PortalMember, String> = HashMap::new();
    let mut portals = Vec::new();
    for mut t in tables {
        let portal_path = t.path().to_owned();
        let name = t
            .parsed("name", sink, |text| {
                check_portal_name(text).map(|()| text.to_owned())
            })
            .required(sink);
        if let Some(name) = &name {
            if let Some(first) = names.get(name) {
                sink.error(
                    t.key_path("name"),
                    format!("duplicate portal name {name:?} (also {first})"),
                );
            } else {
                names.insert(name.clone(), portal_path.clone());
            }
        }

        let members_path = t.key_path("members");
        let raw_members = t.strings("members", sink).required(sink);
        let mut members = Some(Vec::new());
        if let Some(raw_members) = &raw_members {
            if raw_members.len() < 2 {
                sink.error(
                    &members_path,
                    format!(
                        "a portal needs at least 2 members, got {}",
                        raw_members.len()
                    ),
                );
                members = None;
            }
            let mut here: HashMap<PortalMember, &str> = HashMap::new();
            for (path, text) in raw_members {
                let member = text.and_then(|text| parse_member(text, path, bridge_ids, sink));
                let Some(member) = member else {
                    members = None;
                    continue;
                };
                if let Some(first) = here.get(&member) {
                    sink.error(
                        path,
                        format!("duplicate member {:?} (also {first})", display(&member)),
                    );
                    members = None;
                    continue;
                }
                here.insert(member.clone(), path);
                if let Some(owner) = owners.get(&member) {
                    sink.error(
                        path,
                        format!(
                            "channel {:?} is already in {owner}; a channel can be in only one portal",
                            display(&member)
                        ),
                    );
                    members = None;
                    continue;
                }
                owners.insert(member.clone(), portal_path.clone());
                if let Some(members) = &mut members {
                    members.push(member);
                }
            }
        }
        let relay_calls = t.boolean("calls", sink).or(true);
        let meetings_path = t.key_path("meetings");
        let meetings = t
            .parsed("meetings", sink, |text| {
                Ok(MeetingProvider::from_stored(Some(text)))
            })
            .or(MeetingProvider::Auto);
        if let (Some(MeetingProvider::Bridge(id)), Some(members)) = (&meetings, &members)
            && !members.iter().any(|m: &PortalMember| &m.bridge == id)
        {
            sink.error(
                &meetings_path,
                format!(
                    "{:?} is not one of this portal's bridges; expected \"auto\", \"jitsi\" or a member's bridge id",
                    id.as_str()
                ),
            );
        }
        t.finish(sink);
        let calls = relay_calls
            .zip(meetings)
            .map(|(relay, meetings)| PortalCalls { relay, meetings });
        portals.push(name.zip(raw_members.and(members)).zip(calls).map(
            |((name, members), calls)| PortalConfig {
                name,
                members,
                calls,
            },
        ));
    }
    portals
}

/// `bridge-id/channel-id`, split at the first `/` (channel ids may contain
/// more); the bridge must be configured.
fn parse_member(
    text: &str,
    path: &str,
    bridge_ids: &HashMap<&str, String>,
    sink: &mut Sink,
) -> Option<PortalMember> {
    match parse_portal_member(text, bridge_ids.keys().copied()) {
        Ok(member) => Some(member),
        Err(problem) => {
            sink.error(path, problem);
            None
        }
    }
}

/// Parses one portal member as `[[portal]] members` spells it:
/// `bridge-id/channel-id`, split at the first `/` (channel ids may contain
/// more). The bridge must be one of `bridges`; the error says what is wrong.
pub fn parse_portal_member<'a>(
    text: &str,
    bridges: impl Iterator<Item = &'a str> + Clone,
) -> Result<PortalMember, String> {
    let Some((bridge, channel)) = text
        .split_once('/')
        .filter(|(b, c)| !b.is_empty() && !c.is_empty())
    else {
        return Err(format!(
            "expected \"<bridge-id>/<channel-id>\" such as \"memory:left/general\", got {text:?}"
        ));
    };
    if !bridges.clone().any(|b| b == bridge) {
        return Err(match closest(bridge, bridges) {
            Some(suggestion) => {
                format!("unknown bridge {bridge:?}; did you mean {suggestion:?}?")
            }
            None => format!("unknown bridge {bridge:?}"),
        });
    }
    Ok(PortalMember {
        bridge: BridgeId::new(bridge),
        channel: ChannelId::new(channel),
    })
}

/// Checks a portal name as `[[portal]] name` does: non-empty, only A-Z,
/// a-z, 0-9, `_`, `.` and `-`.
pub fn check_portal_name(text: &str) -> Result<(), String> {
    let valid = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "may only contain A-Z, a-z, 0-9, _, . and -, got {text:?}"
        ))
    }
}

fn display(member: &PortalMember) -> String {
    format!("{}/{}", member.bridge, member.channel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn bridge_type_names_match_bridge_kinds() {
        for bridge_type in BridgeType::ALL {
            let kind = match bridge_type {
                BridgeType::Memory => BridgeKind::Memory(MemoryBridgeConfig {
                    state_dir: PathBuf::from("/x"),
                    capabilities: MemoryCapabilities::Full,
                    latency: Duration::ZERO,
                    token: None,
                }),
                BridgeType::Slack => BridgeKind::Slack(SlackBridgeConfig {
                    api_url: "https://slack.com/api".into(),
                    bot_token: crate::config::Secret::new("x"),
                    mode: SlackMode::Socket {
                        app_token: crate::config::Secret::new("y"),
                    },
                    rate_limits: true,
                    max_upload: 1,
                    client_id: None,
                    client_secret: None,
                    oauth_url: String::new(),
                    public_url: None,
                }),
                BridgeType::Teams => BridgeKind::Teams(TeamsBridgeConfig {
                    graph_url: String::new(),
                    login_url: String::new(),
                    tenant: "t".into(),
                    client_id: "c".into(),
                    client_secret: crate::config::Secret::new("s"),
                    poll_interval: Duration::from_secs(1),
                    watch: Vec::new(),
                    notifications: None,
                    reconcile_interval: Duration::from_secs(1),
                    rate_limits: None,
                }),
                BridgeType::Matrix => BridgeKind::Matrix(MatrixBridgeConfig {
                    homeserver_url: String::new(),
                    server_name: "example.org".into(),
                    appservice_id: "switchboard".into(),
                    appservice_url: None,
                    as_token: crate::config::Secret::new("a"),
                    hs_token: crate::config::Secret::new("h"),
                    sender_localpart: "switchboard".into(),
                    ghost_templates: Vec::new(),
                    alias_template: String::new(),
                    invite: Vec::new(),
                    max_upload: 1,
                    registration_file: None,
                    double_puppet_token: None,
                    public_url: None,
                }),
            };
            assert_eq!(bridge_type.name(), kind.type_name());
            assert_eq!(BridgeType::parse(bridge_type.name()), Ok(*bridge_type));
        }
        assert_eq!(
            BridgeType::parse("memroy"),
            Err("unknown bridge type \"memroy\"; did you mean \"memory\"?".to_owned())
        );
        assert_eq!(
            BridgeType::parse("irc"),
            Err("unknown bridge type \"irc\" (supported: memory, slack, teams, matrix)".to_owned())
        );
    }
}
