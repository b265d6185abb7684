#!/usr/bin/env bash
# One idempotent set-up for `make run`, `make test` and CI: a virtualenv in .venv with the
# project installed, PostgreSQL and Mosquitto running on this machine, and the database created.
#
#   scripts/setup.sh venv       only the virtualenv
#   scripts/setup.sh services   only PostgreSQL and Mosquitto
#   scripts/setup.sh            both
#   scripts/setup.sh browser    Chromium for the wallboard's browser tests (`make test` only)
#
# Services are started when installed but down, installed with apt-get when missing and we run
# as root, and otherwise we stop with a message that says what to do. Nothing here touches a
# service that is already up. The browser step never fails: without Chromium the browser tests
# skip, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.installed-stamp
PG_HOST=${CALLCENTER_PG_HOST:-127.0.0.1}
PG_PORT=${CALLCENTER_PG_PORT:-5432}
MQTT_PORT=${CALLCENTER_MQTT_PORT:-1883}

say() { printf 'setup: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # host port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do port_open "$1" "$2" && return 0; sleep 0.1; done
  return 1
}

apt_install() {
  [ "$(id -u)" = 0 ] || return 1
  command -v apt-get >/dev/null || return 1
  say "installing $* with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
  }
}

setup_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
      die "Python 3.11 or newer is needed ($PY is $("$PY" --version 2>&1)); set PYTHON=..."
    say "creating virtualenv in $VENV"
    "$PY" -m venv "$VENV"
  fi
  # Reinstall only when the dependency list changed, so `make test` stays quick.
  if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    say "installing the project and its test tools into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
    touch "$STAMP"
  fi
}

start_postgres() {
  port_open "$PG_HOST" "$PG_PORT" && return 0
  if ! command -v pg_ctlcluster >/dev/null && ! command -v pg_ctl >/dev/null; then
    apt_install postgresql || die "PostgreSQL is not installed and we cannot install it (not root, or no apt-get). Install PostgreSQL 13+ and start it on $PG_HOST:$PG_PORT."
  fi
  if command -v pg_ctlcluster >/dev/null; then
    local ver
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    [ -n "$ver" ] || die "PostgreSQL is installed but has no cluster in /etc/postgresql; create one with pg_createcluster."
    say "starting PostgreSQL $ver"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
  wait_port "$PG_HOST" "$PG_PORT" 30 || die "PostgreSQL did not come up on $PG_HOST:$PG_PORT; see its log under /var/log/postgresql."
}

start_mosquitto() {
  port_open 127.0.0.1 "$MQTT_PORT" && return 0
  command -v mosquitto >/dev/null || apt_install mosquitto mosquitto-clients ||
    die "Mosquitto is not installed and we cannot install it (not root, or no apt-get). Install an MQTT broker on 127.0.0.1:$MQTT_PORT."
  say "starting Mosquitto"
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    mosquitto -d -p "$MQTT_PORT"
  fi
  wait_port 127.0.0.1 "$MQTT_PORT" 15 || die "Mosquitto did not come up on 127.0.0.1:$MQTT_PORT."
}

install_browser() {
  # The wallboard's browser tests drive Debian's Chromium (/usr/bin/chromium) through
  # Playwright: a test tool's own browser download does not work everywhere.
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "Chromium is not installed: the wallboard's browser tests will skip (Debian: apt-get install chromium)"
    return 0
  fi
  say "installing chromium with apt-get, for the wallboard's browser tests"
  {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium ||
      { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
  } >/dev/null 2>&1 || say "could not install chromium; the wallboard's browser tests will skip"
  return 0
}

case "${1:-all}" in
  venv) setup_venv ;;
  services) start_postgres; start_mosquitto ;;
  browser) install_browser ;;
  all) setup_venv; start_postgres; start_mosquitto ;;
  *) die "usage: scripts/setup.sh [venv|services|browser|all]" ;;
esac
