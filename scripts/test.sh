#!/usr/bin/env bash
# Installs what the test suite needs and runs all of it: formatting, lints,
# unit tests, the end-to-end tests (real daemon processes) and doc tests.
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh relay::    # only tests whose name matches (nextest filter)
#
# SWITCHBOARD_CONFORMANCE_DIR, when set, points at the folder of real platform
# payloads; tests that read it fail if it is set but missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# The test runner: cargo-nextest (installed from crates.io when missing).
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "Installing cargo-nextest..."
  cargo install --locked cargo-nextest
fi

# The Matrix tests run a real Synapse: install it into a venv (pinned
# version, cached under target/ or at $SWITCHBOARD_SYNAPSE_VENV).
./scripts/synapse.sh install

if [ -n "${SWITCHBOARD_CONFORMANCE_DIR:-}" ]; then
  if [ ! -d "$SWITCHBOARD_CONFORMANCE_DIR" ]; then
    echo "SWITCHBOARD_CONFORMANCE_DIR=$SWITCHBOARD_CONFORMANCE_DIR does not exist" >&2
    exit 1
  fi
  # Each crate's tests run in that crate's folder: make the path absolute.
  SWITCHBOARD_CONFORMANCE_DIR="$(cd "$SWITCHBOARD_CONFORMANCE_DIR" && pwd)"
  export SWITCHBOARD_CONFORMANCE_DIR
fi

if [ $# -eq 0 ]; then
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
fi
cargo nextest run --workspace --all-features --locked --no-fail-fast "$@"
if [ $# -eq 0 ]; then
  cargo test --workspace --all-features --locked --doc
fi
