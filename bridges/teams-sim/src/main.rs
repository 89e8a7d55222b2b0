//! `teams-sim` — the Microsoft Graph (Teams) simulator as a standalone process.
//!
//! ```text
//! teams-sim [--listen 127.0.0.1:0] [--seed tenant.json] [--json] [--rate-limit off|relaxed|strict]
//! ```
//!
//! Prints the base URLs, tenant, app credentials and every user's id (with `--json`: one JSON
//! object on one line), then serves until SIGINT or SIGTERM. Logs go to stderr (`RUST_LOG`
//! filters them). Exit code 64 means bad arguments or a bad seed file.

use std::net::SocketAddr;
use std::process::ExitCode;

use serde_json::json;
use switchboard_teams_sim::limits::Mode;
use switchboard_teams_sim::seed::Seed;
use switchboard_teams_sim::{SimConfig, TeamsSim};

const USAGE: &str =
    "usage: teams-sim [--listen ADDR] [--seed FILE] [--json] [--rate-limit off|relaxed|strict]";

#[derive(Debug)]
struct Args {
    listen: Option<SocketAddr>,
    seed: Option<String>,
    json: bool,
    rate_limit: Mode,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        listen: None,
        seed: None,
        json: false,
        rate_limit: Mode::Off,
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => {
                let v = it.next().ok_or("--listen needs an address")?;
                a.listen = Some(v.parse().map_err(|e| format!("--listen {v}: {e}"))?);
            }
            "--seed" => a.seed = Some(it.next().ok_or("--seed needs a file")?),
            "--json" => a.json = true,
            "--rate-limit" => {
                let v = it.next().ok_or("--rate-limit needs a mode")?;
                a.rate_limit = serde_json::from_value(json!(v))
                    .map_err(|_| format!("--rate-limit {v}: expected off, relaxed or strict"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("teams-sim: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(64);
        }
    };
    let seed = match &args.seed {
        None => None,
        Some(path) => {
            let parsed = std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|s| serde_json::from_str::<Seed>(&s).map_err(|e| e.to_string()));
            match parsed {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("teams-sim: --seed {path}: {e}");
                    return ExitCode::from(64);
                }
            }
        }
    };
    let config = SimConfig {
        addr: args.listen,
        seed,
        rate_limit: args.rate_limit,
        ..SimConfig::default()
    };
    let sim = match TeamsSim::start(config).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("teams-sim: bad seed: {e}");
            return ExitCode::from(64);
        }
        Err(e) => {
            eprintln!("teams-sim: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let s = sim.seeded();
    if args.json {
        let v = json!({
            "base_url": sim.base_url(),
            "graph_url": sim.graph_url(),
            "login_url": sim.login_url(),
            "token_url": sim.token_url(),
            "tenant_id": s.tenant_id,
            "client_id": s.client_id,
            "client_secret": s.client_secret,
            "users": s.users,
            "teams": s.teams,
            "channels": s.channels,
            "chats": s.chats,
        });
        println!("{v}");
    } else {
        println!("graph_url     {}", sim.graph_url());
        println!("login_url     {}", sim.login_url());
        println!("token_url     {}", sim.token_url());
        println!("tenant_id     {}", s.tenant_id);
        println!("client_id     {}", s.client_id);
        println!("client_secret {}", s.client_secret);
        for (upn, id) in &s.users {
            println!("user          {upn} {id}");
        }
        for (name, (team, channel)) in &s.channels {
            println!("channel       {name} {team} {channel}");
        }
        for (name, id) in &s.chats {
            println!("chat          {name} {id}");
        }
        println!(
            "A user's delegated token: curl -s -XPOST {}/_admin/tokens/delegated -d '{{\"user\":\"<upn or id>\"}}'",
            sim.base_url()
        );
    }
    shutdown_signal().await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}
