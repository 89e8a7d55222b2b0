//! The shipped systemd unit: `systemd-analyze verify` accepts it (with
//! ExecStart pointing at the binary under test), it carries what running
//! under systemd relies on, `systemd-analyze security` rates it well, and
//! its command line is one the binary takes.

use crate::support::binary;
use std::path::Path;
use std::process::Command;

fn unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/switchboard.service");
    std::fs::read_to_string(path).expect("the unit")
}

/// The unit with ExecStart on the binary under test, in a temporary folder.
fn unit_for_test() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("switchboard.service");
    std::fs::write(&path, unit().replace("/usr/bin/switchboard", binary())).expect("write");
    (dir, path)
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze (Debian: systemd) is needed to check the unit")
}

#[test]
fn the_systemd_unit_verifies() {
    let (_dir, path) = unit_for_test();
    let path = path.to_string_lossy().into_owned();
    let out = systemd_analyze(&["verify", "--man=no", &path]);
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_systemd_unit_is_sandboxed_and_rated_well() {
    let unit = unit();
    for directive in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=64",
        "DynamicUser=yes",
        "StateDirectory=switchboard",
        "LoadCredential=store-key:",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(directive)),
            "{directive} missing"
        );
    }
    // Stopping waits longer than the relay's default drain grace (20 s).
    let stop = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse::<u64>().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(stop > 20, "TimeoutStopSec={stop}s");

    let (_dir, path) = unit_for_test();
    let path = path.to_string_lossy().into_owned();
    let out = systemd_analyze(&["security", "--offline=yes", "--no-pager", &path]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let level = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for switchboard.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    assert!(level <= 2.0, "exposure {level}: {text}");
}

#[test]
fn the_unit_s_command_line_is_one_the_binary_takes() {
    let unit = unit();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/usr/bin/switchboard "))
        .expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args, ["run", "--config", "/etc/switchboard/config.toml"]);
    let out = Command::new(binary())
        .args(["run", "--help"])
        .output()
        .expect("run --help");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config"));
    // The snippets name the same user and folders.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd");
    let sysusers = std::fs::read_to_string(root.join("switchboard.sysusers")).expect("sysusers");
    assert!(sysusers.lines().any(|l| l.starts_with("u switchboard ")));
    let tmpfiles = std::fs::read_to_string(root.join("switchboard.tmpfiles")).expect("tmpfiles");
    assert!(tmpfiles.contains("d /etc/switchboard/credentials 0700 root root"));
}

/// Every file the Debian package (`cargo deb`) takes from the repository
/// exists (the release binary aside, which `cargo deb` builds).
#[test]
fn the_debian_package_s_files_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let section = manifest
        .split("[package.metadata.deb]")
        .nth(1)
        .expect("a [package.metadata.deb] section");
    let mut sources = Vec::new();
    for line in section.lines().take_while(|l| !l.starts_with("[lints]")) {
        if let Some(rest) = line.trim().strip_prefix("[\"") {
            sources.push(rest.split('"').next().unwrap_or_default().to_owned());
        }
    }
    assert!(sources.len() >= 5, "{sources:?}");
    for source in sources.iter().filter(|s| !s.starts_with("target/")) {
        assert!(root.join(source).is_file(), "{source} is missing");
    }
    assert!(section.contains("unit-scripts = \"deploy/systemd\""));
    assert!(root.join("deploy/systemd/switchboard.service").is_file());
}
