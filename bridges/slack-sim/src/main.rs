//! `slack-sim` — the Slack simulator as a standalone process, for scripts and manual testing.
//!
//! ```text
//! slack-sim [--listen 127.0.0.1:0] [--seed workspace.json] [--json] [--rate-limit off|relaxed|strict]
//! ```
//!
//! Prints the base URL and every seeded token (with `--json`: one JSON object on one line),
//! then serves until SIGINT or SIGTERM. Logs go to stderr (`RUST_LOG` filters them).
//! Exit code 64 means bad arguments or a bad seed file.

use std::net::SocketAddr;
use std::process::ExitCode;

use serde_json::json;
use switchboard_slack_sim::ratelimit::Mode;
use switchboard_slack_sim::seed::Seed;
use switchboard_slack_sim::{SimConfig, SlackSim};

const USAGE: &str =
    "usage: slack-sim [--listen ADDR] [--seed FILE] [--json] [--rate-limit off|relaxed|strict]";

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

/// Registers SIGINT/SIGTERM handlers now (before the tokens are printed, so a script that
/// stops us right after reading them is not racing the registration) and returns a future
/// that completes on either signal.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
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
                eprintln!("slack-sim: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(64);
        }
    };
    let seed: Option<Seed> = match &args.seed {
        None => None,
        Some(path) => {
            let parsed = std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()));
            match parsed {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("slack-sim: seed {path}: {e}");
                    return ExitCode::from(64);
                }
            }
        }
    };
    let signal = shutdown_signal();
    let config = SimConfig {
        addr: args.listen,
        seed,
        rate_limit: args.rate_limit,
        ..SimConfig::default()
    };
    let sim = match SlackSim::start(config).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("slack-sim: seed: {e}");
            return ExitCode::from(64);
        }
        Err(e) => {
            eprintln!("slack-sim: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let s = sim.seeded();
    if args.json {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        v["base_url"] = json!(sim.base_url());
        v["api_url"] = json!(format!("{}/api/", sim.base_url()));
        println!("{v}");
    } else {
        println!("slack-sim listening on {}", sim.base_url());
        println!("  Web API          {}/api/{{method}}", sim.base_url());
        println!("  admin API        {}/_admin/", sim.base_url());
        println!("  team             {} ({})", s.team_id, s.team_domain);
        println!("  app              {}", s.app_id);
        println!("  app token        {}", s.app_token);
        println!(
            "  bot token        {}  (bot user {})",
            s.bot_token, s.bot_user_id
        );
        println!("  signing secret   {}", s.signing_secret);
        println!("  client id/secret {} / {}", s.client_id, s.client_secret);
        for (name, token) in &s.user_tokens {
            let id = s.users.get(name).map(String::as_str).unwrap_or("?");
            println!("  user token       {name} ({id}) {token}");
        }
        for (name, id) in &s.channels {
            println!("  channel          #{name} {id}");
        }
    }
    signal.await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Args, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        let a = parse(&[
            "--listen",
            "127.0.0.1:9999",
            "--seed",
            "w.json",
            "--json",
            "--rate-limit",
            "strict",
        ])
        .expect("args");
        assert_eq!(a.listen, Some(SocketAddr::from(([127, 0, 0, 1], 9999))));
        assert_eq!(a.seed.as_deref(), Some("w.json"));
        assert!(a.json);
        assert_eq!(a.rate_limit, Mode::Strict);
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--listen", "nope"]).is_err());
        assert!(parse(&["--rate-limit", "warp"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
