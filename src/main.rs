//! The `switchboard` command: parses arguments, loads the configuration,
//! installs signal handlers and hands over to [`switchboard::run`].

use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use switchboard::config::{self, Config, EXIT_BAD_CONFIG, LogFormat};
use switchboard::daemon::{logging, notify::Notifier};
use switchboard::{Controls, convert};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// jemalloc rather than glibc's allocator: measured in `cargo bench --bench
/// relay` to cut the engine's CPU per message by a third and to return memory
/// that glibc's per-thread pools keep (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit code for a usage error or bad input data (sysexits `EX_DATAERR`).
const EXIT_BAD_INPUT: u8 = 65;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "One conversation across Slack, Microsoft Teams and Matrix."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run(RunArgs),
    /// Link a person's own account on a platform, so that what they write
    /// elsewhere appears there as themselves; sign in a bridge's service
    /// account; list the stored logins.
    Login {
        #[command(subcommand)]
        platform: LoginPlatform,
    },
    /// Link, unlink and list portals through the running daemon (its
    /// admin API): linked portals relay at once and survive restarts,
    /// without editing the config file.
    Portal {
        #[command(subcommand)]
        action: PortalAction,
    },
    /// List the calls and meetings seen or started, newest first, with each
    /// platform's invite, from the running daemon's call registry.
    Calls(PortalListArgs),
    /// Matrix set-up: the application-service registration.
    Matrix {
        #[command(subcommand)]
        action: MatrixAction,
    },
    /// Show Switchboard relaying a scripted conversation between a
    /// simulated Slack, a simulated Teams and (when Synapse is installed) a
    /// throw-away Matrix homeserver, all on this machine, side by side.
    Demo(DemoArgs),
    /// Validate a configuration file and report every problem.
    CheckConfig {
        /// The configuration file.
        #[arg(
            long,
            short,
            env = "SWITCHBOARD_CONFIG",
            default_value = "/etc/switchboard/config.toml"
        )]
        config: PathBuf,
    },
    /// Convert a message read on stdin from one dialect to another.
    Convert {
        /// Input dialect (see --list).
        #[arg(long, required_unless_present = "list")]
        from: Option<String>,
        /// Output dialect.
        #[arg(long, required_unless_present = "list")]
        to: Option<String>,
        /// List the dialects.
        #[arg(long)]
        list: bool,
    },
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// After the script, write lines yourself: `slack> hi`, `teams> hi`,
    /// `matrix> hi`; `/quit` or the end of input ends it.
    #[arg(long)]
    interactive: bool,
    /// With --interactive: skip the script, go straight to your turn.
    #[arg(long, requires = "interactive")]
    no_script: bool,
}

#[derive(Debug, Subcommand)]
enum PortalAction {
    /// List every portal: its name, where it comes from (config or linked)
    /// and its members.
    List(PortalListArgs),
    /// Link channels into a new portal, e.g.
    /// `switchboard portal link sales slack:acme/C0123 matrix:main/!abc:example.org`.
    Link(PortalLinkArgs),
    /// Unlink a portal linked with `portal link` (config portals are
    /// removed from the config file instead).
    Unlink(PortalUnlinkArgs),
}

#[derive(Debug, clap::Args)]
struct PortalListArgs {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "SWITCHBOARD_CONFIG",
        default_value = "/etc/switchboard/config.toml"
    )]
    config: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct PortalLinkArgs {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "SWITCHBOARD_CONFIG",
        default_value = "/etc/switchboard/config.toml"
    )]
    config: PathBuf,
    /// The portal's name (A-Z, a-z, 0-9, `_`, `.` and `-`).
    name: String,
    /// Its channels, at least two, each `BRIDGE/CHANNEL` as in the config
    /// file's `[[portal]] members` (`slack:acme/C0123ABCD`).
    #[arg(required = true, num_args = 2..)]
    members: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct PortalUnlinkArgs {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "SWITCHBOARD_CONFIG",
        default_value = "/etc/switchboard/config.toml"
    )]
    config: PathBuf,
    /// The portal's name.
    name: String,
}

#[derive(Debug, Subcommand)]
enum MatrixAction {
    /// Write the application-service registration the homeserver loads:
    /// for a new bridge (fresh tokens in private files, and the
    /// `[[bridge]]` block to paste), or again for a configured one
    /// (`--config` with `--bridge`).
    Registration(RegistrationArgs),
}

#[derive(Debug, clap::Args)]
struct RegistrationArgs {
    /// The bridge (`matrix:example`).
    #[arg(long)]
    bridge: String,
    /// Write the registration again from this configuration's bridge.
    #[arg(long, short, conflicts_with_all = ["server_name", "homeserver_url", "url", "dir"])]
    config: Option<PathBuf>,
    /// With --config: where to write (default: the bridge's registration_file).
    #[arg(long, requires = "config")]
    output: Option<PathBuf>,
    /// New bridge: the homeserver's server name (`example.org`).
    #[arg(long, required_unless_present = "config")]
    server_name: Option<String>,
    /// New bridge: the homeserver's client-server API URL.
    #[arg(long, required_unless_present = "config")]
    homeserver_url: Option<String>,
    /// New bridge: where the homeserver reaches Switchboard (`http://` + http.listen).
    #[arg(long, required_unless_present = "config")]
    url: Option<String>,
    /// New bridge: the folder for the registration and the token files.
    #[arg(long, required_unless_present = "config")]
    dir: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
enum LoginPlatform {
    /// Link a Slack account (OAuth with a loopback redirect).
    Slack(LoginArgs),
    /// Sign in a Teams account with a device code: a person's own (--for),
    /// or the account that posts for everyone else (--service).
    Teams(TeamsLoginArgs),
    /// List the stored logins and whether they need re-authentication
    /// (never their tokens).
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
struct TeamsLoginArgs {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "SWITCHBOARD_CONFIG",
        default_value = "/etc/switchboard/config.toml"
    )]
    config: PathBuf,
    /// The Teams bridge (`teams:contoso`).
    #[arg(long)]
    bridge: String,
    /// Sign in the bridge's service account, which posts (with an author
    /// line) for everyone who has not linked their own account.
    #[arg(long, conflicts_with = "person", required_unless_present = "person")]
    service: bool,
    /// Whose account: the person on the other platform, as `BRIDGE/USER`
    /// (`slack:acme/U0123ABCD`).
    #[arg(long = "for")]
    person: Option<String>,
    /// How long to wait for the sign-in, in seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "SWITCHBOARD_CONFIG",
        default_value = "/etc/switchboard/config.toml"
    )]
    config: PathBuf,
}

#[derive(Debug, clap::Args)]
struct LoginArgs {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "SWITCHBOARD_CONFIG",
        default_value = "/etc/switchboard/config.toml"
    )]
    config: PathBuf,
    /// The Slack bridge (`slack:acme`).
    #[arg(long)]
    bridge: String,
    /// Whose account: the person on the other platform, as `BRIDGE/USER`
    /// (`matrix:example/@ann:example.org`).
    #[arg(long = "for")]
    person: String,
    /// Where the browser is sent back to (loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// How long to wait for the browser, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "SWITCHBOARD_CONFIG",
        default_value = "/etc/switchboard/config.toml"
    )]
    config: PathBuf,
    /// Log format, overriding `log.format`.
    #[arg(long, value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { config }) => check_config(&config),
        Some(Command::Convert { from, to, list }) => convert_cmd(from, to, list),
        Some(Command::Run(args)) => run(args),
        Some(Command::Demo(args)) => demo(args),
        Some(Command::Login {
            platform: LoginPlatform::Slack(args),
        }) => login_slack(args),
        Some(Command::Login {
            platform: LoginPlatform::Teams(args),
        }) => login_teams(args),
        Some(Command::Login {
            platform: LoginPlatform::List(args),
        }) => login_list(args),
        Some(Command::Matrix {
            action: MatrixAction::Registration(args),
        }) => matrix_registration(args),
        Some(Command::Portal {
            action: PortalAction::List(args),
        }) => portal_list(args),
        Some(Command::Calls(args)) => calls_list(args),
        Some(Command::Portal {
            action: PortalAction::Link(args),
        }) => portal_link(args),
        Some(Command::Portal {
            action: PortalAction::Unlink(args),
        }) => portal_unlink(args),
        None => run(RunArgs {
            config: std::env::var_os("SWITCHBOARD_CONFIG").map_or_else(
                || PathBuf::from("/etc/switchboard/config.toml"),
                PathBuf::from,
            ),
            log_format: None,
        }),
    }
}

fn load_or_report(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        eprintln!(
            "{}: invalid configuration ({} problems):",
            path.display(),
            errors.0.len()
        );
        eprintln!("{errors}");
        ExitCode::from(u8::try_from(EXIT_BAD_CONFIG).unwrap_or(64))
    })
}

/// Checks what the configuration names outside itself (Matrix registration
/// files); a disagreement is a configuration error.
fn preflight(path: &Path, cfg: &Config) -> Result<(), ExitCode> {
    switchboard::bridges::check_registrations(cfg).map_err(|e| {
        eprintln!("{}: invalid configuration: {e:#}", path.display());
        ExitCode::from(u8::try_from(EXIT_BAD_CONFIG).unwrap_or(64))
    })
}

fn check_config(path: &Path) -> ExitCode {
    match load_or_report(path) {
        Ok(cfg) => {
            if let Err(code) = preflight(path, &cfg) {
                return code;
            }
            println!(
                "{}: ok ({} bridges, {} portals)",
                path.display(),
                cfg.bridges.len(),
                cfg.portals.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn convert_cmd(from: Option<String>, to: Option<String>, list: bool) -> ExitCode {
    if list {
        for d in convert::dialects() {
            println!("{}", d.name());
        }
        return ExitCode::SUCCESS;
    }
    let (Some(from), Some(to)) = (from, to) else {
        eprintln!("convert needs --from and --to");
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cannot read stdin: {e}");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    match convert::convert(&from, &to, &input) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    let cfg = match load_or_report(&args.config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    if let Err(code) = preflight(&args.config, &cfg) {
        return code;
    }
    let format = args.log_format.unwrap_or(cfg.log.format);
    if let Err(e) = logging::init(format, &cfg.log.filter) {
        eprintln!("cannot set up logging: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "Cannot start the async runtime.");
            return ExitCode::FAILURE;
        }
    };
    let store_path = cfg.store.path.clone();
    let result = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let (reload_tx, reload) = mpsc::channel(4);
        tokio::spawn(handle_signals(
            args.config.clone(),
            shutdown.clone(),
            reload_tx,
        ));
        let controls = Controls {
            shutdown,
            reload,
            notifier: Notifier::from_env(),
        };
        switchboard::run(cfg, controls).await
    });
    // Every task goes with the runtime, and with them the store's handles.
    drop(runtime);
    if result.is_ok() {
        switchboard::store::sled_store::settle(&store_path);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "Switchboard failed.");
            ExitCode::FAILURE
        }
    }
}

/// `BRIDGE/USER` of `--for`, e.g. `slack:acme/U0123ABCD`.
fn parse_person(
    text: &str,
) -> Result<(switchboard_model::BridgeId, switchboard_model::UserId), ExitCode> {
    match text.split_once('/') {
        Some((bridge, user)) if !bridge.is_empty() && !user.is_empty() => {
            Ok((bridge.into(), user.into()))
        }
        _ => {
            eprintln!("--for must be BRIDGE/USER, e.g. slack:acme/U0123ABCD");
            Err(ExitCode::from(EXIT_BAD_INPUT))
        }
    }
}

/// Runs a CLI command's future on a small runtime of its own.
fn block_on<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(future))
}

/// Prints a linking result the same way for every platform.
fn report_login(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn login_slack(args: LoginArgs) -> ExitCode {
    let cfg = match load_or_report(&args.config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let person = match parse_person(&args.person) {
        Ok(person) => person,
        Err(code) => return code,
    };
    let result = block_on(switchboard::login::slack(
        &cfg,
        &args.bridge.as_str().into(),
        person,
        args.listen,
        std::time::Duration::from_secs(args.timeout),
        |url| {
            println!("Open this link in a browser and approve Switchboard:\n{url}");
        },
    ));
    report_login(result.map(|account| {
        format!(
            "Linked: {} now appears on {} as {}.",
            args.person, args.bridge, account.user
        )
    }))
}

fn login_teams(args: TeamsLoginArgs) -> ExitCode {
    let cfg = match load_or_report(&args.config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let person = match args.person.as_deref().map(parse_person).transpose() {
        Ok(person) => person,
        Err(code) => return code,
    };
    let result = block_on(switchboard::login::teams(
        &cfg,
        &args.bridge.as_str().into(),
        person,
        std::time::Duration::from_secs(args.timeout),
        |prompt| {
            println!(
                "To sign in, open {} and enter the code {}",
                prompt.verification_uri, prompt.user_code
            );
        },
    ));
    report_login(result.map(|account| match &args.person {
        Some(person) => format!(
            "Linked: {person} now appears on {} as {}.",
            args.bridge, account.user
        ),
        None => format!(
            "Signed in: {} now posts on {} for people without their own account.",
            account.user, args.bridge
        ),
    }))
}

fn matrix_registration(args: RegistrationArgs) -> ExitCode {
    use switchboard::matrix_setup::{NewBridge, existing_bridge, new_bridge};
    let id: switchboard_model::BridgeId = args.bridge.as_str().into();
    let written = match (
        &args.config,
        &args.server_name,
        &args.homeserver_url,
        &args.url,
        &args.dir,
    ) {
        (Some(path), ..) => {
            let cfg = match load_or_report(path) {
                Ok(cfg) => cfg,
                Err(code) => return code,
            };
            existing_bridge(&cfg, &id, args.output.as_deref(), args.force)
        }
        (None, Some(server_name), Some(homeserver_url), Some(url), Some(dir)) => {
            new_bridge(&NewBridge {
                id,
                server_name: server_name.clone(),
                homeserver_url: homeserver_url.trim_end_matches('/').to_owned(),
                url: url.trim_end_matches('/').to_owned(),
                dir: dir.clone(),
                force: args.force,
            })
        }
        _ => {
            eprintln!("give --config, or --server-name, --homeserver-url, --url and --dir");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    match written {
        Ok(written) => {
            println!(
                "Wrote {}. Add it to the homeserver's app_service_config_files.\n\n{}",
                written.registration.display(),
                written.advice
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn login_list(args: ListArgs) -> ExitCode {
    let cfg = match load_or_report(&args.config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let result = block_on(switchboard::login::list(&cfg));
    match result {
        Ok(logins) if logins.is_empty() => {
            println!("No logins stored.");
            ExitCode::SUCCESS
        }
        Ok(logins) => {
            for login in logins {
                let status = match &login.needs_reauth {
                    Some(reason) => format!("needs re-authentication: {reason}"),
                    None => "ok".to_owned(),
                };
                let whose = if login.person_bridge == login.bridge
                    && login.person_user.as_str() == switchboard::store::login::SERVICE_USER
                {
                    "service account".to_owned()
                } else {
                    format!("{}/{}", login.person_bridge, login.person_user)
                };
                println!(
                    "{}\t{whose}\tas {}\t{status}",
                    login.bridge, login.account_user
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A portal as the admin API lists it.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct ListedPortal {
    name: String,
    source: String,
    members: Vec<String>,
}

/// What the daemon answered to a portal command: the body of a 200, or the
/// exit code after printing its error (65 for a bad request).
fn portal_answer(what: &str, answer: anyhow::Result<(u16, String)>) -> Result<String, ExitCode> {
    match answer {
        Ok((200, body)) => Ok(body),
        Ok((status, body)) => {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(body);
            eprintln!("cannot {what}: {message}");
            Err(if status == 400 {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::FAILURE
            })
        }
        Err(e) => {
            eprintln!("cannot {what}: {e:#}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// A GET on the running daemon's admin API: the body of a 200, or the exit
/// code after printing why not.
fn admin_get(config: &std::path::Path, path: &str, what: &str) -> Result<String, ExitCode> {
    let cfg = load_or_report(config)?;
    let answer = block_on(switchboard::login::admin_call(&cfg, "GET", path, ""));
    portal_answer(what, answer)
}

fn portal_list(args: PortalListArgs) -> ExitCode {
    let body = match admin_get(&args.config, "/admin/portals", "list the portals") {
        Ok(body) => body,
        Err(code) => return code,
    };
    #[derive(serde::Deserialize)]
    struct Listed {
        portals: Vec<ListedPortal>,
    }
    let listed: Listed = match serde_json::from_str(&body) {
        Ok(listed) => listed,
        Err(e) => {
            eprintln!("the daemon's list of portals is not understood: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&listed.portals) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("cannot print the portals: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    if listed.portals.is_empty() {
        println!("No portals.");
        return ExitCode::SUCCESS;
    }
    let width = listed
        .portals
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    println!("{:width$}  {:6}  MEMBERS", "NAME", "SOURCE");
    for portal in &listed.portals {
        println!(
            "{:width$}  {:6}  {}",
            portal.name,
            portal.source,
            portal.members.join(" ")
        );
    }
    ExitCode::SUCCESS
}

fn calls_list(args: PortalListArgs) -> ExitCode {
    let body = match admin_get(&args.config, "/admin/calls", "list the calls") {
        Ok(body) => body,
        Err(code) => return code,
    };
    let listed: serde_json::Value = match serde_json::from_str(&body) {
        Ok(listed) => listed,
        Err(e) => {
            eprintln!("the daemon's list of calls is not understood: {e}");
            return ExitCode::FAILURE;
        }
    };
    let calls = listed["calls"].as_array().cloned().unwrap_or_default();
    if args.json {
        println!("{}", serde_json::Value::Array(calls));
        return ExitCode::SUCCESS;
    }
    if calls.is_empty() {
        println!("No calls.");
        return ExitCode::SUCCESS;
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    for call in &calls {
        let state = match call["duration_s"].as_u64() {
            Some(s) => format!("ended after {s}s"),
            None => text(&call["state"]),
        };
        println!(
            "{}  [{}] {} — {} — started by {} in {}",
            text(&call["portal"]),
            state,
            call["title"].as_str().unwrap_or("(untitled)"),
            text(&call["join_url"]),
            text(&call["started_by"]),
            text(&call["origin"]),
        );
        if let Some(invites) = call["invites"].as_object() {
            for (member, ids) in invites {
                println!("    invite in {member}: {ids}");
            }
        }
    }
    ExitCode::SUCCESS
}

fn portal_link(args: PortalLinkArgs) -> ExitCode {
    let cfg = match load_or_report(&args.config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let body = serde_json::json!({ "name": args.name, "members": args.members }).to_string();
    let answer = block_on(switchboard::login::admin_call(
        &cfg,
        "POST",
        "/admin/portals",
        &body,
    ));
    match portal_answer(&format!("link portal {}", args.name), answer) {
        Ok(_) => {
            println!("Linked portal {}: {}", args.name, args.members.join(" "));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn portal_unlink(args: PortalUnlinkArgs) -> ExitCode {
    let cfg = match load_or_report(&args.config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    if let Err(e) = config::check_portal_name(&args.name) {
        eprintln!("cannot unlink portal {:?}: the name {e}", args.name);
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let answer = block_on(switchboard::login::admin_call(
        &cfg,
        "DELETE",
        &format!("/admin/portals/{}", args.name),
        "",
    ));
    match portal_answer(&format!("unlink portal {}", args.name), answer) {
        Ok(_) => {
            println!("Unlinked portal {}.", args.name);
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn demo(args: DemoArgs) -> ExitCode {
    let options = switchboard::demo::Options {
        script: !args.no_script,
        interactive: args.interactive,
    };
    if let Err(e) = logging::init(LogFormat::Plain, "warn") {
        eprintln!("cannot set up logging: {e:#}");
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(switchboard::demo::run(options)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<switchboard::demo::Interrupted>() => {
            eprintln!("demo interrupted; everything it started is stopped");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM and SIGINT stop the daemon; SIGHUP reloads the configuration file.
async fn handle_signals(path: PathBuf, shutdown: CancellationToken, reload: mpsc::Sender<Config>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("Cannot install signal handlers; stopping.");
        shutdown.cancel();
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!(signal = "SIGTERM", "Stop requested."); shutdown.cancel(); return; }
            _ = int.recv() => { tracing::info!(signal = "SIGINT", "Stop requested."); shutdown.cancel(); return; }
            _ = hup.recv() => match config::load(&path) {
                Ok(cfg) => {
                    tracing::info!(signal = "SIGHUP", "Configuration reloaded from disk.");
                    let _ = reload.send(cfg).await;
                }
                Err(errors) => {
                    tracing::error!(problems = errors.0.len(), errors = %errors, "Reload refused: the configuration file is invalid; keeping the running one.");
                }
            },
        }
    }
}
