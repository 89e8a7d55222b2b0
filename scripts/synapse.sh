#!/usr/bin/env bash
# A throw-away Synapse homeserver for the test suite and the demo.
#
#   scripts/synapse.sh install
#       Creates a Python venv at $SWITCHBOARD_SYNAPSE_VENV (default
#       <repo>/target/synapse-venv; relative to <repo>) and installs matrix-synapse 1.163.2 into
#       it; does nothing when that version is already there.
#   scripts/synapse.sh start DIR [--registration FILE]... [--parent PID]
#       Writes a homeserver.yaml in DIR (unless DIR already holds one: then it
#       is reused, port and database included), starts Synapse in the
#       background (pid in DIR/pid), waits until it answers and prints one
#       line of JSON:
#       {"base_url":…,"server_name":…,"port":…,"dir":…,"shared_secret_file":…}
#       --registration adds an application service registration file (only
#       when the config is written); --parent stops Synapse when that
#       process is gone.
#   scripts/synapse.sh stop DIR
#       SIGTERM, then SIGKILL if Synapse has not stopped within 20 s.
#
# Everything it prints besides the JSON line goes to stderr. Secrets (the
# registration shared secret) are written to files, never printed.
set -euo pipefail

readonly SYNAPSE_VERSION="1.163.2"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
VENV="${SWITCHBOARD_SYNAPSE_VENV:-$REPO/target/synapse-venv}"
# A relative SWITCHBOARD_SYNAPSE_VENV is taken from the repository's root
# (as the Rust harness does), wherever this script is run from.
case "$VENV" in
  /*) ;;
  *) VENV="$REPO/$VENV" ;;
esac
readonly VENV
readonly READY_TIMEOUT=60
readonly STOP_TIMEOUT=20

say() { printf 'synapse.sh: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

usage() {
  sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 64
}

# The installed matrix-synapse version in the venv, or nothing.
installed_version() {
  [ -x "$VENV/bin/python" ] || return 0
  "$VENV/bin/python" - <<'EOF' 2>/dev/null || true
import importlib.metadata as m
try:
    print(m.version("matrix-synapse"))
except m.PackageNotFoundError:
    pass
EOF
}

cmd_install() {
  [ $# -eq 0 ] || usage
  if [ "$(installed_version)" = "$SYNAPSE_VERSION" ]; then
    say "Synapse $SYNAPSE_VERSION is already installed in $VENV"
    return 0
  fi
  command -v python3 >/dev/null 2>&1 ||
    die "python3 is missing: install Python 3 (Debian/Ubuntu: apt-get install python3 python3-venv)"
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 ||
    die "python3 cannot create venvs (the venv/ensurepip modules are missing): install python3-venv (Debian/Ubuntu: apt-get install python3-venv)"

  mkdir -p "$(dirname "$VENV")"
  # Test processes may install at the same time: one at a time, and the
  # others find the version installed once they get the lock.
  exec 9>"$VENV.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9
    if [ "$(installed_version)" = "$SYNAPSE_VERSION" ]; then
      say "Synapse $SYNAPSE_VERSION is already installed in $VENV"
      return 0
    fi
  fi

  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    say "Creating a Python venv in $VENV ($(python3 --version 2>&1))"
    rm -rf "$VENV"
    python3 -m venv "$VENV" ||
      die "python3 -m venv $VENV failed: install python3-venv (Debian/Ubuntu: apt-get install python3-venv)"
  fi
  say "Installing matrix-synapse==$SYNAPSE_VERSION into $VENV (pip, about 30 s)"
  local started=$SECONDS
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "matrix-synapse==$SYNAPSE_VERSION" >&2 ||
    die "pip install matrix-synapse==$SYNAPSE_VERSION failed (is PyPI reachable?)"
  [ "$(installed_version)" = "$SYNAPSE_VERSION" ] ||
    die "matrix-synapse $SYNAPSE_VERSION is not importable in $VENV after installing it"
  say "Installed Synapse $SYNAPSE_VERSION in $((SECONDS - started)) s"
}

# The venv's interpreter runs the helpers below: it starts quicker than a
# python3 shim (pyenv, asdf), and the start path calls it several times.
readonly PY="$VENV/bin/python"

# A free TCP port on 127.0.0.1 (the OS picks one).
free_port() {
  "$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Three random secrets, one a line.
random_secrets() {
  "$PY" -c 'import secrets
for _ in range(3):
    print(secrets.token_hex(32))'
}

# Quotes a string for YAML (a single-quoted scalar: ' is doubled).
yaml_str() {
  printf "'%s'" "${1//\'/\'\'}"
}

# Writes DIR/homeserver.yaml, DIR/log.config, DIR/port, DIR/shared-secret.
write_config() {
  local dir=$1 port=$2
  shift 2
  local secret macaroon form
  { read -r secret && read -r macaroon && read -r form; } < <(random_secrets)
  (
    umask 077
    printf '%s\n' "$secret" >"$dir/shared-secret"
  )
  printf '%s\n' "$port" >"$dir/port"

  cat >"$dir/log.config" <<EOF
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: $(yaml_str "$dir/homeserver.log")
    encoding: utf8
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
EOF

  local rc="{per_second: 10000, burst_count: 10000}"
  {
    cat <<EOF
# Throw-away test homeserver written by scripts/synapse.sh.
server_name: "localhost:$port"
public_baseurl: "http://127.0.0.1:$port/"
pid_file: $(yaml_str "$dir/homeserver.pid")
listeners:
  - port: $port
    type: http
    tls: false
    bind_addresses: ['127.0.0.1']
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: $(yaml_str "$dir/homeserver.db")
log_config: $(yaml_str "$dir/log.config")
media_store_path: $(yaml_str "$dir/media_store")
signing_key_path: $(yaml_str "$dir/signing.key")
registration_shared_secret: "$secret"
macaroon_secret_key: "$macaroon"
form_secret: "$form"
enable_registration: false
bcrypt_rounds: 4
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
presence:
  enabled: false
url_preview_enabled: false
rc_message: $rc
rc_registration: $rc
rc_registration_token_validity: $rc
rc_login:
  address: $rc
  account: $rc
  failed_attempts: $rc
rc_admin_redaction: $rc
rc_joins:
  local: $rc
  remote: $rc
rc_joins_per_room: $rc
rc_3pid_validation: $rc
rc_invites:
  per_room: $rc
  per_user: $rc
  per_issuer: $rc
rc_third_party_invite: $rc
rc_room_creation: $rc
rc_media_create: $rc
rc_key_requests: $rc
rc_reports: $rc
rc_presence:
  per_user: $rc
rc_delayed_event_mgmt: $rc
rc_profile_update: $rc
EOF
    if [ $# -eq 0 ]; then
      echo "app_service_config_files: []"
    else
      echo "app_service_config_files:"
      local f
      for f in "$@"; do
        echo "  - $(yaml_str "$f")"
      done
    fi
  } >"$dir/homeserver.yaml"
}

# Whether PID is a live (not zombie) Synapse started with DIR's config.
is_running() {
  local pid=$1 dir=$2
  [ -n "$pid" ] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/stat" ]; then
    local state
    state="$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)"
    [ "$state" != "Z" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/homeserver.yaml" || return 1
  fi
  return 0
}

read_pid() {
  local dir=$1
  if [ -f "$dir/pid" ]; then
    tr -dc '0-9' <"$dir/pid"
  fi
}

# Prints the end of Synapse's logs to stderr (after a failed start).
show_logs() {
  local dir=$1 f
  for f in "$dir/stdout.log" "$dir/homeserver.log"; do
    if [ -s "$f" ]; then
      say "--- last lines of $f ---"
      tail -n 25 "$f" >&2
    fi
  done
}

# Polls GET /_matrix/client/versions until it answers 200, Synapse exits or
# the time is up. Exit status 0 ready, 1 exited, 2 timed out.
wait_ready() {
  local url=$1 pid=$2 timeout=$3
  "$VENV/bin/python" - "$url" "$pid" "$timeout" <<'EOF'
import os, sys, time, urllib.request
url, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
def alive():
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url + "/_matrix/client/versions", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    if not alive():
        sys.exit(1)
    time.sleep(0.05)
sys.exit(2)
EOF
}

cmd_start() {
  [ $# -ge 1 ] || usage
  local dir=$1
  shift
  local regs=() parent=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --registration)
        [ $# -ge 2 ] || usage
        [ -f "$2" ] || die "registration file $2 does not exist"
        regs+=("$(cd "$(dirname "$2")" && pwd)/$(basename "$2")")
        shift 2
        ;;
      --parent)
        [ $# -ge 2 ] || usage
        parent=$2
        shift 2
        ;;
      *) usage ;;
    esac
  done
  [ "$(installed_version)" = "$SYNAPSE_VERSION" ] ||
    die "Synapse $SYNAPSE_VERSION is not installed in $VENV: run scripts/synapse.sh install"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local old_pid
  old_pid="$(read_pid "$dir")"
  if is_running "$old_pid" "$dir"; then
    die "Synapse is already running in $dir (pid $old_pid): stop it first"
  fi

  local fresh=0
  if [ -f "$dir/homeserver.yaml" ] && [ -f "$dir/port" ]; then
    if [ ${#regs[@]} -gt 0 ]; then
      say "reusing $dir/homeserver.yaml (a restart): its application services are kept, --registration is ignored"
    fi
  else
    fresh=1
  fi

  local attempt port pid status
  for attempt in 1 2 3; do
    if [ "$fresh" = 1 ]; then
      port="$(free_port)"
      write_config "$dir" "$port" ${regs[@]+"${regs[@]}"}
    else
      port="$(tr -dc '0-9' <"$dir/port")"
    fi
    if [ ! -s "$dir/signing.key" ]; then
      # signedjson (a Synapse dependency) is quicker than importing Synapse.
      "$PY" -c 'import secrets, sys, signedjson.key as k
with open(sys.argv[1], "w") as f:
    k.write_signing_keys(f, [k.generate_signing_key("a_" + secrets.token_hex(2))])' \
        "$dir/signing.key" 2>/dev/null ||
        "$VENV/bin/python" -m synapse.app.homeserver -c "$dir/homeserver.yaml" --generate-keys >&2
    fi
    mkdir -p "$dir/media_store"

    # Not detached from our process group: interrupting the test run (or
    # nextest ending a test) ends this Synapse too.
    "$VENV/bin/python" -m synapse.app.homeserver -c "$dir/homeserver.yaml" \
      </dev/null >>"$dir/stdout.log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$dir/pid"

    status=0
    wait_ready "http://127.0.0.1:$port" "$pid" "$READY_TIMEOUT" || status=$?
    if [ "$status" = 0 ]; then
      break
    fi
    if [ "$status" = 2 ]; then
      kill -KILL "$pid" 2>/dev/null || true
      show_logs "$dir"
      die "Synapse in $dir did not answer on port $port within $READY_TIMEOUT s"
    fi
    # Exited. A fresh config's port may have been taken since we picked it:
    # try another one.
    if [ "$fresh" = 1 ] && [ "$attempt" -lt 3 ] &&
      grep -q "Address already in use" "$dir/stdout.log" "$dir/homeserver.log" 2>/dev/null; then
      say "port $port was taken; trying another one"
      rm -f "$dir/homeserver.yaml" "$dir/stdout.log" "$dir/homeserver.log"
      continue
    fi
    show_logs "$dir"
    die "Synapse in $dir exited during startup (logs above; config in $dir/homeserver.yaml)"
  done

  if [ -n "$parent" ]; then
    # Stops Synapse when the process that wanted it is gone (killed without
    # running its cleanup).
    (
      while kill -0 "$parent" 2>/dev/null && is_running "$pid" "$dir"; do
        sleep 1
      done
      if is_running "$pid" "$dir"; then
        kill -TERM "$pid" 2>/dev/null || true
      fi
    ) </dev/null >/dev/null 2>&1 &
  fi

  local server_name
  server_name="$(sed -n 's/^server_name: "\(.*\)"$/\1/p' "$dir/homeserver.yaml")"
  "$PY" -c 'import json, sys
print(json.dumps({"base_url": sys.argv[1], "server_name": sys.argv[2], "port": int(sys.argv[3]),
                  "dir": sys.argv[4], "shared_secret_file": sys.argv[5]}))' \
    "http://127.0.0.1:$port" "$server_name" "$port" "$dir" "$dir/shared-secret"
}

cmd_stop() {
  [ $# -eq 1 ] || usage
  local dir=$1
  [ -d "$dir" ] || die "$dir does not exist"
  dir="$(cd "$dir" && pwd)"
  local pid
  pid="$(read_pid "$dir")"
  if ! is_running "$pid" "$dir"; then
    say "Synapse in $dir is not running"
    rm -f "$dir/pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while is_running "$pid" "$dir"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "Synapse (pid $pid) did not stop within $STOP_TIMEOUT s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  rm -f "$dir/pid"
}

main() {
  [ $# -ge 1 ] || usage
  local cmd=$1
  shift
  case "$cmd" in
    install) cmd_install "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

main "$@"
