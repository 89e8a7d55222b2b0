//! Tests of loading and validation, through the public functions, plus the
//! checks that keep `config.example.toml` and the code in step.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard_model::{BridgeId, ChannelId};

use super::*;

const EXAMPLE: &str = include_str!("../../config.example.toml");

/// Two bridges and a portal, all valid.
const BASE: &str = r#"
[store]
path = "/var/lib/switchboard"

[[bridge]]
id = "memory:left"
type = "memory"
state_dir = "/srv/left"

[[bridge]]
id = "memory:right"
type = "memory"
state_dir = "/srv/right"

[[portal]]
name = "general"
members = ["memory:left/general", "memory:right/general"]
"#;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

fn base_dir() -> &'static Path {
    Path::new("/etc/switchboard")
}

fn parse_ok(text: &str, env: &HashMap<String, String>) -> Config {
    match from_toml_str(text, env, base_dir()) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors:\n{errors}"),
    }
}

/// The problems, each as its `path: problem` line.
fn problems(text: &str, env: &HashMap<String, String>) -> Vec<String> {
    problems_in(text, env, base_dir())
}

fn problems_in(text: &str, env: &HashMap<String, String>, base_dir: &Path) -> Vec<String> {
    match from_toml_str(text, env, base_dir) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

fn paths(errors: &ConfigErrors) -> Vec<&str> {
    errors.0.iter().map(|e| e.path.as_str()).collect()
}

fn member(bridge: &str, channel: &str) -> PortalMember {
    PortalMember {
        bridge: BridgeId::new(bridge),
        channel: ChannelId::new(channel),
    }
}

/// `BASE` with the lines of `extra` added to its first bridge.
fn with_left_bridge_keys(extra: &str) -> String {
    BASE.replace(
        "state_dir = \"/srv/left\"\n",
        &format!("state_dir = \"/srv/left\"\n{extra}\n"),
    )
}

// ---------------------------------------------------------------------------
// Defaults and a valid file

#[test]
fn defaults_fill_every_optional_key() {
    let config = parse_ok("[store]\npath = \"/var/lib/switchboard\"\n", &no_env());
    assert_eq!(
        config,
        Config {
            store: StoreConfig {
                path: PathBuf::from("/var/lib/switchboard"),
                dedup_retention: Duration::from_secs(7 * 86_400),
                min_free_bytes: 64 * 1024 * 1024,
                key_file: None,
            },
            http: HttpConfig {
                listen: "127.0.0.1:29340".parse().expect("address"),
                admin_token: None,
            },
            log: LogConfig {
                format: LogFormat::Plain,
                filter: "info".to_owned(),
            },
            relay: RelayConfig {
                max_attempts: 8,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(300),
                drain_grace: Duration::from_secs(20),
                dependency_wait: Duration::from_secs(600),
                reaction_fallback: ReactionFallback::Notice,
                dead_letter_notices: true,
                jitsi_url: "https://meet.jit.si".to_owned(),
                admins: Vec::new(),
            },
            bridges: vec![],
            portals: vec![],
        }
    );
    assert_eq!(config.store, StoreConfig::new("/var/lib/switchboard"));
    assert_eq!(config.http, HttpConfig::default());
    assert_eq!(config.log, LogConfig::default());
    assert_eq!(config.relay, RelayConfig::default());
}

#[test]
fn a_valid_file_gives_typed_values() {
    let config = parse_ok(BASE, &no_env());
    assert_eq!(
        config.bridges,
        vec![
            BridgeConfig {
                id: BridgeId::new("memory:left"),
                kind: BridgeKind::Memory(MemoryBridgeConfig {
                    latency: Duration::ZERO,
                    state_dir: PathBuf::from("/srv/left"),
                    capabilities: MemoryCapabilities::Full,
                    token: None,
                }),
            },
            BridgeConfig {
                id: BridgeId::new("memory:right"),
                kind: BridgeKind::Memory(MemoryBridgeConfig {
                    latency: Duration::ZERO,
                    state_dir: PathBuf::from("/srv/right"),
                    capabilities: MemoryCapabilities::Full,
                    token: None,
                }),
            },
        ]
    );
    assert_eq!(
        config.portals,
        vec![PortalConfig {
            name: "general".to_owned(),
            members: vec![
                member("memory:left", "general"),
                member("memory:right", "general"),
            ],
            calls: Default::default(),
        }]
    );
}

#[test]
fn relative_paths_are_resolved_against_the_config_directory() {
    let text = BASE
        .replace("\"/var/lib/switchboard\"", "\"data\"")
        .replace("\"/srv/left\"", "\"state/left\"");
    let config = parse_ok(&text, &no_env());
    assert_eq!(config.store.path, PathBuf::from("/etc/switchboard/data"));
    let BridgeKind::Memory(left) = &config.bridges[0].kind else {
        panic!("a memory bridge")
    };
    assert_eq!(left.state_dir, PathBuf::from("/etc/switchboard/state/left"));
}

#[test]
fn load_reads_a_file_and_resolves_paths_against_its_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, BASE.replace("\"/srv/left\"", "\"left\"")).expect("write");
    let config = load_with_env(&file, &no_env()).expect("valid");
    let BridgeKind::Memory(left) = &config.bridges[0].kind else {
        panic!("a memory bridge")
    };
    assert_eq!(left.state_dir, dir.path().join("left"));
    assert!(left.state_dir.is_absolute());
}

#[test]
fn load_uses_the_process_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, BASE).expect("write");
    // The test process sets no SWITCHBOARD__ variables, so this is the file.
    assert_eq!(load(&file), load_with_env(&file, &no_env()));
}

#[test]
fn load_reports_a_missing_file() {
    let errors = load_with_env(Path::new("/nonexistent/switchboard.toml"), &no_env())
        .expect_err("no such file");
    assert_eq!(
        errors.to_string(),
        "cannot read /nonexistent/switchboard.toml: No such file or directory"
    );
}

// ---------------------------------------------------------------------------
// Collecting every problem

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[store]
dedup_retention = "7 days"

[http]
listen = "localhost"

[log]
format = "xml"

[relay]
max_attempts = 0
max_atempts = 3
initial_backoff = 5
reaction_fallback = "shrug"

[[bridge]]
id = "memory:left"
type = "memory"
state_dir = "/srv/left"

[[bridge]]
id = "memory:right"
type = "memory"
capabilities = "everything"

[[portal]]
name = "general"
members = ["memory:left/general", "memory:right/general", "memory:nope/general"]
"#;
    assert_eq!(
        problems(text, &no_env()),
        vec![
            "store.path: required",
            "store.dedup_retention: invalid duration \"7 days\"; expected a whole number \
             followed by ms, s, m, h or d, e.g. \"20s\"",
            "http.listen: expected an IP address and port such as \"127.0.0.1:29340\", \
             got \"localhost\"",
            "log.format: unknown log format \"xml\" (expected plain, json or journald)",
            "relay.max_attempts: must be between 1 and 100, got 0",
            "relay.initial_backoff: expected a duration string such as \"20s\", got an \
             integer; add a unit (ms, s, m, h or d) in quotes",
            "relay.reaction_fallback: unknown reaction fallback \"shrug\" (expected notice \
             or skip)",
            "relay.max_atempts: unknown key; did you mean \"max_attempts\"?",
            "bridge[1].state_dir: required",
            "bridge[1].capabilities: unknown capabilities \"everything\" (expected full or \
             minimal)",
            "portal[0].members[2]: unknown bridge \"memory:nope\"",
        ]
    );
}

#[test]
fn errors_display_one_problem_per_line() {
    let errors = ConfigErrors(vec![
        ConfigError {
            path: "relay.max_attempts".to_owned(),
            problem: "must be between 1 and 100, got 0".to_owned(),
        },
        ConfigError {
            path: String::new(),
            problem: "cannot read /x: No such file or directory".to_owned(),
        },
    ]);
    assert_eq!(
        errors.to_string(),
        "relay.max_attempts: must be between 1 and 100, got 0\n\
         cannot read /x: No such file or directory"
    );
    let as_error: &dyn std::error::Error = &errors;
    assert!(as_error.source().is_none());
    assert_eq!(EXIT_BAD_CONFIG, 64);
}

#[test]
fn unknown_keys_get_the_closest_known_key() {
    let text = r#"
[store]
path = "/var/lib/switchboard"
colour = "blue"

[Relay]
max_attempts = 3

[log]
fromat = "json"

[[bridges]]
id = "memory:left"

[[bridge]]
id = "memory:left"
tpye = "memory"
stat_dir = "/srv/left"
"#;
    assert_eq!(
        problems(text, &no_env()),
        vec![
            "store.colour: unknown key (known keys: dedup_retention, key_file, min_free_bytes, path)",
            "log.fromat: unknown key; did you mean \"format\"?",
            "bridge[0].type: required",
            // Without a type only likely misspellings are reported.
            "bridge[0].tpye: unknown key; did you mean \"type\"?",
            "Relay: unknown key; did you mean \"relay\"?",
            "bridges: unknown key; did you mean \"bridge\"?",
        ]
    );
    let typed = BASE.replace("state_dir = \"/srv/left\"", "stat_dir = \"/srv/left\"");
    assert_eq!(
        problems(&typed, &no_env()),
        vec![
            "bridge[0].state_dir: required",
            "bridge[0].stat_dir: unknown key; did you mean \"state_dir\"?",
        ]
    );
}

#[test]
fn wrong_types_are_reported_with_what_was_found() {
    let text = r#"
relay = 5

[store]
path = 5
min_free_bytes = -1

[log]
filter = ["info"]

[bridge]
id = "memory:left"

[[portal]]
name = "general"
members = "memory:left/general"

[[portal]]
name = "other"
members = ["memory:left/x", 5]
"#;
    assert_eq!(
        problems(text, &no_env()),
        vec![
            "store.path: expected a string, got an integer",
            "store.min_free_bytes: must not be negative, got -1",
            "log.filter: expected a string, got an array",
            "relay: expected a table ([relay]), got an integer",
            "bridge: expected an array of tables ([[bridge]] sections), got a table",
            "portal[0].members: expected an array of strings, got a string",
            // Types are checked as the array is read, references after.
            "portal[1].members[1]: expected a string, got an integer",
            "portal[1].members[0]: unknown bridge \"memory:left\"",
        ]
    );
    let text = BASE.replace(
        "[[bridge]]\nid = \"memory:left\"",
        "[relay]\ndead_letter_notices = \"yes\"\nmax_backoff = \"500ms\"\n\n\
         [[bridge]]\nid = \"memory:left\"",
    );
    assert_eq!(
        problems(&text, &no_env()),
        vec![
            "relay.max_backoff: must be at least initial_backoff (1s), got 500ms",
            "relay.dead_letter_notices: expected true or false, got a string",
        ]
    );
}

#[test]
fn relay_rules() {
    let relay = |body: &str| {
        problems(
            &format!("[store]\npath = \"/s\"\n[relay]\n{body}\n"),
            &no_env(),
        )
    };
    assert_eq!(
        relay("max_attempts = 101"),
        vec!["relay.max_attempts: must be between 1 and 100, got 101"]
    );
    assert_eq!(
        relay("initial_backoff = \"10s\"\nmax_backoff = \"5s\""),
        vec!["relay.max_backoff: must be at least initial_backoff (10s), got 5s"]
    );
    assert_eq!(
        relay("initial_backoff = \"0s\""),
        vec!["relay.initial_backoff: must be at least 1ms, got \"0s\""]
    );
    let config = parse_ok(
        "[store]\npath = \"/s\"\n[relay]\nmax_attempts = 1\ninitial_backoff = \"250ms\"\n\
         max_backoff = \"250ms\"\ndrain_grace = \"0s\"\ndependency_wait = \"2h\"\n\
         reaction_fallback = \"skip\"\ndead_letter_notices = false\n",
        &no_env(),
    );
    assert_eq!(
        config.relay,
        RelayConfig {
            max_attempts: 1,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_millis(250),
            drain_grace: Duration::ZERO,
            dependency_wait: Duration::from_secs(7_200),
            reaction_fallback: ReactionFallback::Skip,
            dead_letter_notices: false,
            jitsi_url: "https://meet.jit.si".to_owned(),
            admins: Vec::new(),
        }
    );
}

#[test]
fn log_filter_is_checked() {
    let log = |filter: &str| {
        from_toml_str(
            &format!("[store]\npath = \"/s\"\n[log]\nfilter = {filter:?}\nformat = \"journald\"\n"),
            &no_env(),
            base_dir(),
        )
    };
    let config = log("switchboard::relay=debug,info").expect("valid filter");
    assert_eq!(config.log.filter, "switchboard::relay=debug,info");
    assert_eq!(config.log.format, LogFormat::Journald);
    let errors = log("switchboard=loud").expect_err("bad level");
    assert_eq!(paths(&errors), vec!["log.filter"]);
    assert!(
        errors.0[0]
            .problem
            .starts_with("invalid filter \"switchboard=loud\": "),
        "{errors}"
    );
    let errors = log(" ").expect_err("empty");
    assert_eq!(errors.to_string(), "log.filter: must not be empty");
}

#[test]
fn toml_syntax_errors_give_the_position_but_not_the_line() {
    let text = "[store]\npath = \"/s\"\n[[bridge]]\ntoken = \"xoxb-SYNTAX-SECRET\nid = 1\n";
    let lines = problems(text, &no_env());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("invalid TOML: TOML parse error at line 4"),
        "{lines:?}"
    );
    assert!(!lines[0].contains("SYNTAX-SECRET"), "{lines:?}");
    assert!(!lines[0].contains('\n'), "{lines:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[store\n").expect("write");
    let errors = load_with_env(&file, &no_env()).expect_err("bad TOML");
    assert!(
        errors.to_string().starts_with(&format!(
            "{}: invalid TOML: TOML parse error at line 1",
            file.display()
        )),
        "{errors}"
    );
}

// ---------------------------------------------------------------------------
// Environment overrides

#[test]
fn env_override_of_an_integer_is_applied() {
    let text = BASE.replace(
        "[[bridge]]\nid = \"memory:left\"",
        "[relay]\nmax_attempts = 5\n\n[[bridge]]\nid = \"memory:left\"",
    );
    let config = parse_ok(&text, &env(&[("SWITCHBOARD__RELAY__MAX_ATTEMPTS", "3")]));
    assert_eq!(config.relay.max_attempts, 3);
    let config = parse_ok(
        &text,
        &env(&[("SWITCHBOARD__STORE__MIN_FREE_BYTES", "1048576")]),
    );
    assert_eq!(config.store.min_free_bytes, 1_048_576);
    assert_eq!(config.relay.max_attempts, 5);
}

#[test]
fn env_overrides_of_strings_durations_and_booleans_are_applied() {
    let config = parse_ok(
        BASE,
        &env(&[
            ("SWITCHBOARD__LOG__FORMAT", "json"),
            // The prefix and keys are matched regardless of case.
            ("switchboard__log__filter", "debug"),
            ("SWITCHBOARD__HTTP__LISTEN", "0.0.0.0:8080"),
            ("SWITCHBOARD__STORE__PATH", "data"),
            ("SWITCHBOARD__RELAY__INITIAL_BACKOFF", "250ms"),
            ("SWITCHBOARD__RELAY__MAX_BACKOFF", "2h"),
            ("SWITCHBOARD__RELAY__DEAD_LETTER_NOTICES", "FALSE"),
            ("SWITCHBOARD__RELAY__REACTION_FALLBACK", "skip"),
            // Not overrides: wrong prefix.
            ("SWITCHBOARD_LOG__FORMAT", "nonsense"),
            ("PATH", "/usr/bin"),
        ]),
    );
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.filter, "debug");
    assert_eq!(
        config.http.listen,
        "0.0.0.0:8080".parse::<SocketAddr>().expect("address")
    );
    assert_eq!(config.store.path, PathBuf::from("/etc/switchboard/data"));
    assert_eq!(config.relay.initial_backoff, Duration::from_millis(250));
    assert_eq!(config.relay.max_backoff, Duration::from_secs(7_200));
    assert!(!config.relay.dead_letter_notices);
    assert_eq!(config.relay.reaction_fallback, ReactionFallback::Skip);
    assert_eq!(config.bridges.len(), 2);
}

#[test]
fn bad_env_overrides_are_reported_with_their_path_and_variable() {
    let lines = problems(
        BASE,
        &env(&[
            ("SWITCHBOARD__RELAY__MAX_ATTEMPTS", "lots"),
            ("SWITCHBOARD__RELAY__DRAIN_GRACE", "20"),
            ("SWITCHBOARD__RELAY__DEAD_LETTER_NOTICES", "yes"),
            ("SWITCHBOARD__STORE__MIN_FREE_BYTES", "-5"),
            ("SWITCHBOARD__LOG__FROMAT", "json"),
            ("SWITCHBOARD__LOG__FORMAT", "CHANGE-ME"),
        ]),
    );
    assert_eq!(
        lines,
        vec![
            "store.min_free_bytes: must not be negative, got -5 \
             (set by SWITCHBOARD__STORE__MIN_FREE_BYTES)",
            "log.format: placeholder value from config.example.toml; set a real value \
             (set by SWITCHBOARD__LOG__FORMAT)",
            "log.fromat: unknown key; did you mean \"format\"? \
             (set by SWITCHBOARD__LOG__FROMAT)",
            "relay.max_attempts: expected an integer, got \"lots\" \
             (set by SWITCHBOARD__RELAY__MAX_ATTEMPTS)",
            "relay.drain_grace: invalid duration \"20\"; expected a whole number followed \
             by ms, s, m, h or d, e.g. \"20s\" (set by SWITCHBOARD__RELAY__DRAIN_GRACE)",
            "relay.dead_letter_notices: expected true or false, got \"yes\" \
             (set by SWITCHBOARD__RELAY__DEAD_LETTER_NOTICES)",
        ]
    );
    let lines = problems(BASE, &env(&[("SWITCHBOARD__RELAY__MAX_ATTEMPTS", "0")]));
    assert_eq!(
        lines,
        vec![
            "relay.max_attempts: must be between 1 and 100, got 0 \
             (set by SWITCHBOARD__RELAY__MAX_ATTEMPTS)"
        ]
    );
}

#[test]
fn env_cannot_override_bridges_or_portals() {
    let lines = problems(
        BASE,
        &env(&[
            ("SWITCHBOARD__BRIDGE__0__STATE_DIR", "/elsewhere"),
            ("SWITCHBOARD__PORTAL", "x"),
        ]),
    );
    // Exactly these: the bridges themselves are left intact.
    assert_eq!(
        lines,
        vec![
            "bridge: [[bridge]] cannot be set from the environment \
             (SWITCHBOARD__BRIDGE__0__STATE_DIR is set); edit the config file",
            "portal: [[portal]] cannot be set from the environment \
             (SWITCHBOARD__PORTAL is set); edit the config file",
        ]
    );
}

// ---------------------------------------------------------------------------
// Secrets

#[test]
fn secret_from_a_file_has_its_trailing_newline_trimmed() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("left.token"), "left-secret\n").expect("write");
    std::fs::write(dir.path().join("right.token"), "right secret \r\n").expect("write");
    let text = with_left_bridge_keys("token_file = \"left.token\"").replace(
        "state_dir = \"/srv/right\"",
        &format!(
            "state_dir = \"/srv/right\"\ntoken_file = {:?}",
            dir.path().join("right.token")
        ),
    );
    let config = from_toml_str(&text, &no_env(), dir.path()).expect("valid");
    let tokens: Vec<Option<&str>> = config
        .bridges
        .iter()
        .map(|b| {
            let BridgeKind::Memory(memory) = &b.kind else {
                panic!("a memory bridge")
            };
            memory.token.as_ref().map(Secret::expose)
        })
        .collect();
    assert_eq!(tokens, vec![Some("left-secret"), Some("right secret ")]);
}

#[test]
fn secret_from_the_environment() {
    let text = with_left_bridge_keys("token_env = \"LEFT_TOKEN\"");
    let config = parse_ok(&text, &env(&[("LEFT_TOKEN", "from-env")]));
    let BridgeKind::Memory(left) = &config.bridges[0].kind else {
        panic!("a memory bridge")
    };
    assert_eq!(left.token, Some(Secret::new("from-env")));
}

#[test]
fn secret_problems() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("empty.token"), "\n").expect("write");
    let check = |keys: &str, env: &HashMap<String, String>| {
        problems_in(&with_left_bridge_keys(keys), env, dir.path())
    };
    let missing = dir.path().join("missing.token");
    assert_eq!(
        check("token_file = \"missing.token\"", &no_env()),
        vec![format!(
            "bridge[0].token_file: cannot read {}: No such file or directory",
            missing.display()
        )]
    );
    assert_eq!(
        check("token_file = \"empty.token\"", &no_env()),
        vec![format!(
            "bridge[0].token_file: {} is empty",
            dir.path().join("empty.token").display()
        )]
    );
    assert_eq!(
        check("token_env = \"LEFT_TOKEN\"", &no_env()),
        vec!["bridge[0].token_env: environment variable LEFT_TOKEN is not set"]
    );
    assert_eq!(
        check("token_env = \"LEFT_TOKEN\"", &env(&[("LEFT_TOKEN", "")])),
        vec!["bridge[0].token_env: environment variable LEFT_TOKEN is empty"]
    );
    assert_eq!(
        check(
            "token_file = \"empty.token\"\ntoken_env = \"LEFT_TOKEN\"",
            &env(&[("LEFT_TOKEN", "x")])
        ),
        vec!["bridge[0].token_env: token_file is also set; set only one of them"]
    );
    assert_eq!(
        check("token = \"abc\"", &no_env()),
        vec![
            "bridge[0].token: secrets cannot be written in the config file; \
             use token_file or token_env"
        ]
    );
    assert_eq!(
        check("token_env = \"xoxb-1-abc\"", &no_env()),
        vec![
            "bridge[0].token_env: must be the name of an environment variable \
             (letters, digits and _)"
        ]
    );
}

#[test]
fn secrets_never_appear_in_errors_or_debug_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("left.token"), "FILE-SECRET-1\n").expect("write");
    let secrets = [
        "FILE-SECRET-1",
        "ENV-SECRET-2",
        "LITERAL-SECRET-3",
        "PASTED-SECRET-4",
    ];
    let environment = env(&[("RIGHT_TOKEN", "ENV-SECRET-2")]);
    let valid = with_left_bridge_keys("token_file = \"left.token\"").replace(
        "state_dir = \"/srv/right\"",
        "state_dir = \"/srv/right\"\ntoken_env = \"RIGHT_TOKEN\"",
    );

    // A valid config: Debug shows neither secret, yet both were read.
    let config = from_toml_str(&valid, &environment, dir.path()).expect("valid");
    let debug = format!("{config:?} {config:#?}");
    assert!(debug.contains("Secret([redacted])"), "{debug}");
    for secret in secrets {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }

    // The same secrets read successfully next to other problems, plus
    // secrets written where they do not belong.
    let invalid = valid.replace("[[portal]]", "[[portal]]\nunknown = \"PASTED-SECRET-4\"")
        + "\n[[bridge]]\nid = \"memory:third\"\ntype = \"memory\"\nstate_dir = \"/s\"\n\
           token = \"LITERAL-SECRET-3\"\n\
           [[bridge]]\nid = \"memory:fourth\"\ntype = \"memory\"\nstate_dir = \"/s\"\n\
           token_env = \"PASTED-SECRET-4\"\n\
           [[bridge]]\nid = \"memory:fifth\"\ntype = \"memory\"\nstate_dir = \"/s\"\n\
           tokne = \"LITERAL-SECRET-3\"\n";
    let errors = from_toml_str(&invalid, &environment, dir.path()).expect_err("invalid");
    assert_eq!(
        paths(&errors),
        vec![
            "bridge[2].token",
            "bridge[3].token_env",
            "bridge[4].tokne",
            "portal[0].unknown",
        ]
    );
    let text = format!("{errors} {errors:?} {errors:#?}");
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

// ---------------------------------------------------------------------------
// Bridges, portals and the references between them

#[test]
fn bridge_ids_must_be_well_formed_and_match_the_type() {
    let text = r#"
[store]
path = "/s"
[[bridge]]
id = "left"
type = "memory"
state_dir = "/s"
[[bridge]]
id = "slack:right"
type = "memory"
state_dir = "/s"
[[bridge]]
id = "memory:Mixed Case"
type = "memory"
state_dir = "/s"
[[bridge]]
id = "memory:x"
type = "memroy"
state_dir = "/s"
[[bridge]]
id = "irc:y"
type = "irc"
tenant = "z"
[[portal]]
name = "p"
members = ["irc:y/a", "memory:x/b", "slack:right/c"]
"#;
    // The portal does not repeat the bridges' problems: its members name
    // bridges that are configured, however badly.
    assert_eq!(
        problems(text, &no_env()),
        vec![
            "bridge[0].id: expected \"<type>:<name>\" such as \"memory:left\", got \"left\"",
            "bridge[1].id: must start with \"memory:\" to match type = \"memory\", \
             got \"slack:right\"",
            "bridge[2].id: the name after ':' may only contain a-z, 0-9, _ and -, \
             got \"memory:Mixed Case\"",
            "bridge[3].type: unknown bridge type \"memroy\"; did you mean \"memory\"?",
            "bridge[4].type: unknown bridge type \"irc\" (supported: memory, slack, teams, matrix)",
        ]
    );
}

#[test]
fn duplicate_bridge_ids_and_portal_names() {
    let text = BASE.replace("memory:right\"", "memory:left\"")
        + "\n[[portal]]\nname = \"general\"\nmembers = [\"memory:left/a\", \"memory:left/b\"]\n";
    assert_eq!(
        problems(&text, &no_env()),
        vec![
            "bridge[1].id: duplicate bridge id \"memory:left\" (also bridge[0])",
            "portal[0].members[1]: unknown bridge \"memory:right\"",
            "portal[1].name: duplicate portal name \"general\" (also portal[0])",
        ]
    );
}

#[test]
fn a_channel_belongs_to_one_portal_once() {
    let text = BASE.replace(
        "\"memory:right/general\"]",
        "\"memory:right/general\", \"memory:left/general\"]",
    ) + "\n[[portal]]\nname = \"second\"\n\
         members = [\"memory:right/general\", \"memory:left/other\"]\n";
    assert_eq!(
        problems(&text, &no_env()),
        vec![
            "portal[0].members[2]: duplicate member \"memory:left/general\" \
             (also portal[0].members[0])",
            "portal[1].members[0]: channel \"memory:right/general\" is already in portal[0]; \
             a channel can be in only one portal",
        ]
    );
}

#[test]
fn members_split_at_the_first_slash() {
    let text = BASE.replace(
        "[\"memory:left/general\", \"memory:right/general\"]",
        "[\"memory:left/team/general\", \"memory:right/!room:example.org/x\"]",
    );
    let config = parse_ok(&text, &no_env());
    assert_eq!(
        config.portals[0].members,
        vec![
            member("memory:left", "team/general"),
            member("memory:right", "!room:example.org/x"),
        ]
    );

    let text = BASE.replace(
        "[\"memory:left/general\", \"memory:right/general\"]",
        "[\"memory:left\", \"memory:left/\", \"/general\", \"memory:rigth/general\"]",
    );
    assert_eq!(
        problems(&text, &no_env()),
        vec![
            "portal[0].members[0]: expected \"<bridge-id>/<channel-id>\" such as \
             \"memory:left/general\", got \"memory:left\"",
            "portal[0].members[1]: expected \"<bridge-id>/<channel-id>\" such as \
             \"memory:left/general\", got \"memory:left/\"",
            "portal[0].members[2]: expected \"<bridge-id>/<channel-id>\" such as \
             \"memory:left/general\", got \"/general\"",
            "portal[0].members[3]: unknown bridge \"memory:rigth\"; did you mean \
             \"memory:right\"?",
        ]
    );
}

#[test]
fn portals_need_a_valid_name_and_two_members() {
    let text = r#"
[store]
path = "/s"
[[bridge]]
id = "memory:left"
type = "memory"
state_dir = "/s"
[[portal]]
name = "with space"
members = ["memory:left/a"]
[[portal]]
[[portal]]
name = "ok.name-1_x"
members = []
"#;
    assert_eq!(
        problems(text, &no_env()),
        vec![
            "portal[0].name: may only contain A-Z, a-z, 0-9, _, . and -, got \"with space\"",
            "portal[0].members: a portal needs at least 2 members, got 1",
            "portal[1].name: required",
            "portal[1].members: required",
            "portal[2].members: a portal needs at least 2 members, got 0",
        ]
    );
}

#[test]
fn placeholders_are_refused_in_any_string() {
    for marker in PLACEHOLDER_MARKERS {
        let text = BASE
            .replace("/srv/left", &format!("/srv/{marker}"))
            .replace("\"general\"", &format!("\"x{marker}x\""))
            + &format!("[log]\nfilter = \"{marker}\"\n");
        let errors = from_toml_str(&text, &no_env(), base_dir()).expect_err("placeholders");
        assert_eq!(
            paths(&errors),
            vec!["log.filter", "bridge[0].state_dir", "portal[0].name"]
        );
        for error in &errors.0 {
            assert_eq!(
                error.problem,
                "placeholder value from config.example.toml; set a real value"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// config.example.toml

/// The keys `config.example.toml` documents, as schema paths (`relay`,
/// `relay.max_attempts`, `bridge[].id`), including commented-out ones
/// (`# token_env = ...`).
fn documented_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            keys.insert(name.to_owned());
            section = format!("{name}[]");
        } else if let Some(name) = line
            .strip_prefix("# ")
            .unwrap_or(line)
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .filter(|name| !name.starts_with('['))
        {
            // `[bridge.notifications]` is a table of the last `[[bridge]]`.
            let name = match name.strip_prefix("bridge.") {
                Some(sub) => format!("bridge[].{sub}"),
                None => name.to_owned(),
            };
            keys.insert(name.clone());
            section = name;
        } else {
            let line = line.strip_prefix("# ").unwrap_or(line);
            if let Some((key, _)) = line.split_once(" = ")
                && !key.is_empty()
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            {
                keys.insert(format!("{section}.{key}"));
            }
        }
    }
    keys
}

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The example with its commented-out bridges uncommented (a line `# [[bridge]]`
/// starts one; its `# key = value` lines follow until a blank line), so that
/// validating it reads every documented key.
fn uncommented_example() -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in EXAMPLE.lines() {
        if line == "# [[bridge]]" {
            inside = true;
        } else if line.trim().is_empty() {
            inside = false;
        }
        match line.strip_prefix("# ") {
            Some(rest) if inside && (rest.starts_with('[') || rest.contains(" = ")) => {
                out.push_str(rest)
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn the_example_documents_exactly_the_known_keys() {
    let outcome = parse(
        &uncommented_example(),
        &env(&[("MEMORY_RIGHT_TOKEN", "x")]),
        &example_dir(),
        None,
    );
    assert_eq!(documented_keys(EXAMPLE), outcome.known_keys);
    assert!(
        outcome.known_keys.contains("bridge[].bot_token_file"),
        "the commented Slack bridge was read"
    );
    assert!(
        outcome
            .known_keys
            .contains("bridge[].notifications.client_state_file"),
        "the commented Teams bridge and its notifications table were read"
    );
    // Sanity check of the check itself.
    assert!(outcome.known_keys.contains("relay.max_attempts"));
    assert!(outcome.known_keys.contains("bridge[].token_env"));
    assert!(!outcome.known_keys.contains("bridge[].token"));
}

#[test]
fn the_example_fails_only_on_its_placeholders() {
    let errors = load_with_env(
        &example_dir().join("config.example.toml"),
        &env(&[("MEMORY_RIGHT_TOKEN", "right-secret")]),
    )
    .expect_err("placeholders");
    assert_eq!(
        paths(&errors),
        vec![
            "bridge[0].token_file",
            "portal[0].members[0]",
            "portal[0].members[1]",
        ],
        "{errors}"
    );
    for error in &errors.0 {
        assert_eq!(
            error.problem, "placeholder value from config.example.toml; set a real value",
            "{errors}"
        );
    }
}

#[test]
fn the_example_with_real_values_validates_fully() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("left.token"), "left-secret\n").expect("write");
    let text = EXAMPLE
        .replace("\"/etc/switchboard/CHANGE-ME.token\"", "\"left.token\"")
        .replace("memory:left/CHANGE-ME", "memory:left/general")
        .replace("memory:right/CHANGE-ME", "memory:right/town-square");
    assert!(
        text.lines()
            .all(|line| line.starts_with('#') || !line.contains("CHANGE-ME"))
    );
    let file = dir.path().join("config.toml");
    std::fs::write(&file, text).expect("write");

    let config = load_with_env(&file, &env(&[("MEMORY_RIGHT_TOKEN", "right-secret")]))
        .expect("the example is valid once its placeholders are replaced");
    assert_eq!(
        config,
        Config {
            store: StoreConfig::new("/var/lib/switchboard"),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            relay: RelayConfig::default(),
            bridges: vec![
                BridgeConfig {
                    id: BridgeId::new("memory:left"),
                    kind: BridgeKind::Memory(MemoryBridgeConfig {
                        latency: Duration::ZERO,
                        state_dir: PathBuf::from("/var/lib/switchboard/memory-left"),
                        capabilities: MemoryCapabilities::Full,
                        token: Some(Secret::new("left-secret")),
                    }),
                },
                BridgeConfig {
                    id: BridgeId::new("memory:right"),
                    kind: BridgeKind::Memory(MemoryBridgeConfig {
                        latency: Duration::ZERO,
                        state_dir: PathBuf::from("/var/lib/switchboard/memory-right"),
                        capabilities: MemoryCapabilities::Minimal,
                        token: Some(Secret::new("right-secret")),
                    }),
                },
            ],
            portals: vec![PortalConfig {
                name: "general".to_owned(),
                members: vec![
                    member("memory:left", "general"),
                    member("memory:right", "town-square"),
                ],
                calls: Default::default(),
            }],
        }
    );
}

const SLACK: &str = r#"
[store]
path = "/var/lib/switchboard"

[[bridge]]
id = "memory:left"
type = "memory"
state_dir = "/srv/left"

[[bridge]]
id = "slack:acme"
type = "slack"
bot_token_env = "BOT"
"#;

#[test]
fn slack_bridges_in_socket_and_events_mode() {
    let socket = format!("{SLACK}app_token_env = \"APP\"\n");
    let config = parse_ok(&socket, &env(&[("BOT", "xoxb-1"), ("APP", "xapp-1")]));
    let BridgeKind::Slack(slack) = &config.bridges[1].kind else {
        panic!("a slack bridge")
    };
    assert_eq!(slack.api_url, "https://slack.com/api");
    assert_eq!(slack.bot_token, Secret::new("xoxb-1"));
    assert_eq!(
        slack.mode,
        SlackMode::Socket {
            app_token: Secret::new("xapp-1")
        }
    );
    assert!(slack.rate_limits);

    let events = format!(
        "{SLACK}mode = \"events\"\nsigning_secret_env = \"SIG\"\napi_url = \"http://127.0.0.1:9/api/\"\n"
    );
    let config = parse_ok(&events, &env(&[("BOT", "xoxb-1"), ("SIG", "s3")]));
    let BridgeKind::Slack(slack) = &config.bridges[1].kind else {
        panic!("a slack bridge")
    };
    assert_eq!(slack.api_url, "http://127.0.0.1:9/api");
    assert_eq!(
        slack.mode,
        SlackMode::Events {
            signing_secret: Secret::new("s3"),
            path: "/slack/acme/events".into()
        }
    );
}

#[test]
fn slack_bridges_need_their_tokens_and_refuse_inline_secrets() {
    let text = format!("{SLACK}bot_token = \"xoxb-inline\"\nmode = \"webhooks\"\n");
    let found = problems(&text, &env(&[("BOT", "xoxb-1")]));
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("bridge[1].bot_token: secrets cannot be written")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("bridge[1].mode: unknown mode \"webhooks\"")),
        "{found:?}"
    );
    assert!(
        found.iter().all(|p| !p.contains("xoxb-inline")),
        "{found:?}"
    );
    let found = problems(SLACK, &env(&[("BOT", "xoxb-1")]));
    assert_eq!(
        found,
        ["bridge[1].mode: socket mode needs app_token_file or app_token_env (an xapp- token)"]
    );
}

const TEAMS: &str = r#"
[store]
path = "/var/lib/switchboard"

[[bridge]]
id = "memory:left"
type = "memory"
state_dir = "/srv/left"

[[bridge]]
id = "teams:contoso"
type = "teams"
tenant = "0d3a9c1e-0000-4000-8000-000000000001"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "TEAMS_SECRET"
"#;

fn teams_of(config: &Config) -> &TeamsBridgeConfig {
    match &config.bridges[1].kind {
        BridgeKind::Teams(teams) => teams,
        other => panic!("a teams bridge, got {other:?}"),
    }
}

#[test]
fn teams_bridges_take_graph_s_defaults() {
    let config = parse_ok(TEAMS, &env(&[("TEAMS_SECRET", "app-secret")]));
    assert_eq!(config.bridges[1].kind.type_name(), "teams");
    assert_eq!(
        teams_of(&config),
        &TeamsBridgeConfig {
            graph_url: "https://graph.microsoft.com/v1.0".into(),
            login_url: "https://login.microsoftonline.com".into(),
            tenant: "0d3a9c1e-0000-4000-8000-000000000001".into(),
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            client_secret: Secret::new("app-secret"),
            poll_interval: Duration::from_secs(10),
            watch: Vec::new(),
            notifications: None,
            reconcile_interval: Duration::from_secs(300),
            rate_limits: Some(TeamsRateLimits {
                app_rps: 30,
                user_rps: 4,
                burst: 10,
            }),
        }
    );
}

#[test]
fn teams_bridges_with_every_key() {
    let text = format!(
        "{TEAMS}graph_url = \"http://127.0.0.1:9/v1.0/\"\nlogin_url = \"http://127.0.0.1:9\"\n\
         poll_interval = \"300ms\"\nwatch = [\"team-1/19:a@thread.tacv2\", \"19:chat@thread.v2\"]\n\
         rate_limits = false\n\
         [bridge.notifications]\npublic_url = \"https://bridge.example.com/\"\n\
         client_state_env = \"STATE\"\nlifetime = \"1d\"\nrenew_before = \"2h\"\nreconcile_interval = \"1m\"\n\
         encryption_key_file = \"/var/lib/switchboard/teams.pem\"\n"
    );
    let config = parse_ok(
        &text,
        &env(&[("TEAMS_SECRET", "app-secret"), ("STATE", "opaque-state")]),
    );
    let teams = teams_of(&config);
    assert_eq!(teams.graph_url, "http://127.0.0.1:9/v1.0");
    assert_eq!(teams.poll_interval, Duration::from_millis(300));
    assert_eq!(
        teams.watch,
        vec![
            ChannelId::new("team-1/19:a@thread.tacv2"),
            ChannelId::new("19:chat@thread.v2")
        ]
    );
    assert_eq!(teams.rate_limits, None);
    assert_eq!(teams.reconcile_interval, Duration::from_secs(60));
    assert_eq!(
        teams.notifications,
        Some(TeamsNotificationsConfig {
            public_url: "https://bridge.example.com".into(),
            client_state: Secret::new("opaque-state"),
            lifetime: Duration::from_secs(24 * 3600),
            renew_before: Duration::from_secs(2 * 3600),
            encryption_key_file: Some("/var/lib/switchboard/teams.pem".into()),
        })
    );
    // Limits can be tuned; a notifications table takes Graph's maximum lifetime.
    let text = format!(
        "{TEAMS}app_rps = 50\nuser_rps = 2\nrate_burst = 5\n\
         [bridge.notifications]\npublic_url = \"http://localhost:8080\"\nclient_state_env = \"STATE\"\n"
    );
    let config = parse_ok(&text, &env(&[("TEAMS_SECRET", "s"), ("STATE", "x")]));
    let teams = teams_of(&config);
    assert_eq!(
        teams.rate_limits,
        Some(TeamsRateLimits {
            app_rps: 50,
            user_rps: 2,
            burst: 5
        })
    );
    let notifications = teams.notifications.as_ref().expect("notifications");
    assert_eq!(notifications.lifetime, Duration::from_secs(4320 * 60));
    assert_eq!(notifications.renew_before, Duration::from_secs(12 * 3600));
}

#[test]
fn teams_problems_are_reported_by_key_path() {
    let text = r#"
[store]
path = "/s"
[[bridge]]
id = "teams:contoso"
type = "teams"
client_secret = "inline-app-secret"
graph_url = "graph.microsoft.com"
poll_interval = "10"
watch = ["/19:a", ""]
app_rps = 0
[bridge.notifications]
public_url = "http://bridge.example.com"
client_state_env = "STATE"
lifetime = "4d"
renew_before = "1h"
reconcile_interval = "5m"
publc_url = "x"
"#;
    let long_state = "s".repeat(129);
    let found = problems(text, &env(&[("STATE", &long_state)]));
    assert_eq!(
        found,
        vec![
            "bridge[0].graph_url: must be an http(s) URL, got \"graph.microsoft.com\"",
            "bridge[0].tenant: required",
            "bridge[0].client_id: required",
            "bridge[0].client_secret: secrets cannot be written in the config file; use client_secret_file or client_secret_env",
            "bridge[0].poll_interval: invalid duration \"10\"; expected a whole number followed by ms, s, m, h or d, e.g. \"20s\"",
            "bridge[0].watch[0]: expected \"<team id>/<channel id>\" or a chat id, got \"/19:a\"",
            "bridge[0].watch[1]: expected \"<team id>/<channel id>\" or a chat id, got \"\"",
            "bridge[0].app_rps: must be between 1 and 100000, got 0",
            "bridge[0].notifications.public_url: must be an https URL (http only for loopback hosts), got \"http://bridge.example.com\"",
            "bridge[0].notifications.client_state_file: the client state may be at most 128 characters, got 129",
            "bridge[0].notifications.lifetime: Graph allows at most 3d (4320 minutes) for Teams messages, got 4d",
            "bridge[0].notifications.publc_url: unknown key; did you mean \"public_url\"?",
        ]
    );
    assert!(found.iter().all(|p| !p.contains("inline-app-secret")));
    assert!(found.iter().all(|p| !p.contains(&long_state)));

    // Required inside a notifications table; renew_before below lifetime;
    // CHANGE-ME refused.
    let text =
        format!("{TEAMS}[bridge.notifications]\nlifetime = \"12h\"\nrenew_before = \"12h\"\n");
    assert_eq!(
        problems(&text, &env(&[("TEAMS_SECRET", "s")])),
        vec![
            "bridge[1].notifications.renew_before: must be less than lifetime (12h), got 12h",
            "bridge[1].notifications.public_url: required",
            "bridge[1].notifications.client_state_file: required",
        ]
    );
    let text = TEAMS.replace("0d3a9c1e-0000-4000-8000-000000000001", "CHANGE-ME");
    assert_eq!(
        problems(&text, &env(&[("TEAMS_SECRET", "s")])),
        vec!["bridge[1].tenant: placeholder value from config.example.toml; set a real value"]
    );
    assert_eq!(
        problems(TEAMS, &no_env()),
        vec!["bridge[1].client_secret_env: environment variable TEAMS_SECRET is not set"]
    );
}

#[test]
fn notification_urls_allow_http_only_on_loopback() {
    for ok in [
        "https://bridge.example.com",
        "https://bridge.example.com:8443/prefix",
        "http://127.0.0.1:29340",
        "http://localhost",
        "http://[::1]:8080",
    ] {
        let text = format!(
            "{TEAMS}[bridge.notifications]\npublic_url = \"{ok}\"\nclient_state_env = \"STATE\"\n"
        );
        parse_ok(&text, &env(&[("TEAMS_SECRET", "s"), ("STATE", "x")]));
    }
    for bad in [
        "http://10.0.0.1",
        "http://localhost.example.com",
        "ftp://x",
        "https://",
        "https://x/?a=b",
    ] {
        let text = format!(
            "{TEAMS}[bridge.notifications]\npublic_url = \"{bad}\"\nclient_state_env = \"STATE\"\n"
        );
        let found = problems(&text, &env(&[("TEAMS_SECRET", "s"), ("STATE", "x")]));
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert!(
            found[0].starts_with("bridge[1].notifications.public_url: "),
            "{found:?}"
        );
    }
}

const MATRIX: &str = r#"
[store]
path = "/var/lib/switchboard"

[http]
listen = "127.0.0.1:29340"

[[bridge]]
id = "memory:left"
type = "memory"
state_dir = "/srv/left"

[[bridge]]
id = "matrix:example"
type = "matrix"
homeserver_url = "http://127.0.0.1:8008/"
server_name = "example.org"
as_token_env = "AS"
hs_token_env = "HS"
"#;

fn matrix_of(config: &Config) -> &MatrixBridgeConfig {
    match &config.bridges[1].kind {
        BridgeKind::Matrix(matrix) => matrix,
        other => panic!("a matrix bridge, got {other:?}"),
    }
}

#[test]
fn matrix_bridges_take_defaults_and_every_key() {
    let tokens = env(&[("AS", "as-secret"), ("HS", "hs-secret")]);
    let config = parse_ok(MATRIX, &tokens);
    let matrix = matrix_of(&config);
    assert_eq!(config.bridges[1].kind.type_name(), "matrix");
    assert_eq!(matrix.homeserver_url, "http://127.0.0.1:8008");
    assert_eq!(matrix.appservice_url, None, "http.listen is used");
    assert_eq!(matrix.sender_localpart, "switchboard");
    assert_eq!(
        matrix.ghost_templates,
        vec![
            ("slack".to_owned(), "slack_{instance}_{user}".to_owned()),
            ("teams".to_owned(), "teams_{instance}_{user}".to_owned())
        ]
    );
    assert_eq!(matrix.alias_template, "switchboard_{name}");
    assert_eq!(matrix.max_upload, 50 * 1024 * 1024);
    assert_eq!(matrix.public_url, None);
    assert_eq!(matrix.as_token, Secret::new("as-secret"));
    let text = format!(
        "{MATRIX}appservice_url = \"http://bridge.internal:29340\"\nsender_localpart = \"relay\"\n\
         slack_ghosts = \"s_{{user}}\"\nalias_template = \"bridged_{{name}}\"\n\
         invite = [\"@ann:example.org\"]\nmax_upload = 1024\nregistration_file = \"/etc/reg.yaml\"\n\
         public_url = \"https://switchboard.example.org/base/\"\n"
    );
    let config = parse_ok(&text, &tokens);
    let matrix = matrix_of(&config);
    assert_eq!(
        matrix.appservice_url.as_deref(),
        Some("http://bridge.internal:29340")
    );
    assert_eq!(matrix.sender_localpart, "relay");
    assert_eq!(matrix.ghost_templates[0].1, "s_{user}");
    assert_eq!(matrix.alias_template, "bridged_{name}");
    assert_eq!(matrix.invite, vec!["@ann:example.org".to_owned()]);
    assert_eq!(matrix.max_upload, 1024);
    assert_eq!(
        matrix.registration_file,
        Some(PathBuf::from("/etc/reg.yaml"))
    );
    assert_eq!(
        matrix.public_url.as_deref(),
        Some("https://switchboard.example.org/base"),
        "without the trailing slash"
    );
}

#[test]
fn matrix_public_urls_are_http_base_urls() {
    let tokens = env(&[("AS", "as-secret"), ("HS", "hs-secret")]);
    for bad in [
        "switchboard.example.org",
        "ftp://switchboard.example.org",
        "https://switchboard.example.org/?x=1",
        "https://switchboard.example.org/#top",
        "https:///path",
        "https://",
    ] {
        let text = format!("{MATRIX}public_url = \"{bad}\"\n");
        let joined = problems(&text, &tokens).join("\n");
        assert!(
            joined.contains("bridge[1].public_url"),
            "{bad}: public_url missing from:\n{joined}"
        );
    }
    let text = format!("{MATRIX}public_url = \"http://10.0.0.5:8080\"\n");
    let config = parse_ok(&text, &tokens);
    assert_eq!(
        matrix_of(&config).public_url.as_deref(),
        Some("http://10.0.0.5:8080")
    );
}

#[test]
fn matrix_bridges_report_every_problem() {
    let text = format!(
        "{MATRIX}server_name = \"bad name\"\nslack_ghosts = \"Slack_NoUser\"\n\
         alias_template = \"room\"\ninvite = [\"ann\"]\n"
    )
    .replace("server_name = \"example.org\"\n", "");
    let found = problems(&text, &env(&[]));
    let joined = found.join("\n");
    for key in [
        "bridge[1].server_name",
        "bridge[1].slack_ghosts",
        "bridge[1].alias_template",
        "bridge[1].invite[0]",
        "bridge[1].as_token",
        "bridge[1].hs_token",
    ] {
        assert!(joined.contains(key), "{key} missing from:\n{joined}");
    }
    assert!(!joined.contains("as-secret"));
}

#[test]
fn portal_calls_and_meetings() {
    let text = BASE.replace(
        "[[portal]]",
        "[relay]\njitsi_url = \"https://jitsi.example.org/\"\n\n[[portal]]\ncalls = false\nmeetings = \"memory:right\"",
    );
    let config = parse_ok(&text, &no_env());
    assert_eq!(config.relay.jitsi_url, "https://jitsi.example.org");
    assert_eq!(
        config.portals[0].calls,
        PortalCalls {
            relay: false,
            meetings: MeetingProvider::Bridge("memory:right".into()),
        }
    );
    let jitsi = parse_ok(
        &BASE.replace("[[portal]]", "[[portal]]\nmeetings = \"jitsi\""),
        &no_env(),
    );
    assert_eq!(jitsi.portals[0].calls.meetings, MeetingProvider::Jitsi);
    assert!(jitsi.portals[0].calls.relay, "calls are on by default");
    let found = problems(
        &BASE.replace(
            "[[portal]]",
            "[relay]\njitsi_url = \"meet.jit.si\"\n\n[[portal]]\nmeetings = \"memory:elsewhere\"",
        ),
        &no_env(),
    );
    assert_eq!(
        found,
        [
            "relay.jitsi_url: must be an http(s) URL, got \"meet.jit.si\"",
            "portal[0].meetings: \"memory:elsewhere\" is not one of this portal's bridges; expected \"auto\", \"jitsi\" or a member's bridge id",
        ]
    );
}

#[test]
fn relay_admins_name_people_on_configured_bridges() {
    let config = parse_ok(
        &BASE.replace(
            "[[portal]]",
            "[relay]\nadmins = [\"memory:right/root\", \"memory:left/@ann:example.org\"]\n\n[[portal]]",
        ),
        &no_env(),
    );
    assert_eq!(
        config.relay.admins,
        vec![
            ("memory:right".into(), "root".into()),
            ("memory:left".into(), "@ann:example.org".into()),
        ]
    );
    assert!(parse_ok(BASE, &no_env()).relay.admins.is_empty());
    let found = problems(
        &BASE.replace(
            "[[portal]]",
            "[relay]\nadmins = [\"root\", \"memory:nope/U1\", 3]\n\n[[portal]]",
        ),
        &no_env(),
    );
    assert_eq!(
        found,
        [
            "relay.admins[2]: expected a string, got an integer",
            "relay.admins[0]: expected \"<bridge-id>/<user-id>\" such as \"slack:acme/U0123ABCD\", got \"root\"",
        ]
    );
    let found = problems(
        &BASE.replace(
            "[[portal]]",
            "[relay]\nadmins = [\"memory:nope/U1\"]\n\n[[portal]]",
        ),
        &no_env(),
    );
    assert_eq!(found, ["relay.admins[0]: unknown bridge \"memory:nope\""]);
}

#[test]
fn a_slack_public_url_for_logins_from_a_chat_is_https_or_loopback() {
    let env = env(&[("BOT", "xoxb-1"), ("APP", "xapp-1"), ("CS", "secret")]);
    let base = format!(
        "{SLACK}app_token_env = \"APP\"\nclient_id = \"1.2\"\nclient_secret_env = \"CS\"\n"
    );
    let config = parse_ok(
        &format!("{base}public_url = \"https://switchboard.example.com/\"\n"),
        &env,
    );
    let BridgeKind::Slack(slack) = &config.bridges[1].kind else {
        panic!("a slack bridge")
    };
    assert_eq!(
        slack.public_url.as_deref(),
        Some("https://switchboard.example.com")
    );
    let loopback = parse_ok(
        &format!("{base}public_url = \"http://127.0.0.1:8080\"\n"),
        &env,
    );
    let BridgeKind::Slack(slack) = &loopback.bridges[1].kind else {
        panic!("a slack bridge")
    };
    assert_eq!(slack.public_url.as_deref(), Some("http://127.0.0.1:8080"));
    assert_eq!(
        problems(
            &format!("{base}public_url = \"http://switchboard.example.com\"\n"),
            &env
        ),
        vec![
            "bridge[1].public_url: must be an https URL (http only for loopback hosts), got \"http://switchboard.example.com\""
        ]
    );
}
