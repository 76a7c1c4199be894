#!/usr/bin/env bash
# Prepare this machine to run muster: system packages, the virtualenv, the editable install.
# Safe to run any number of times; when nothing changed it only checks and returns.
#
#   bash scripts/setup.sh
#
# Runs as root, or as a user with sudo for the apt step. Debian or a derivative.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMP="$VENV/.muster-install-stamp"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- system packages --------------------------------------------------------------------------

# pcscd and vpcd: PC/SC card readers and the virtual reader the simulators plug into.
# mosquitto, postgresql, chromium: the real broker, database and browser the tests run against.
# socat: linked ptys for the serial ID-card reader simulator.
# fonts-droid-fallback, fonts-dejavu-core: CJK and Latin TrueType fonts for the console's
# printable confirmation sheet.
# gcc, libpcsclite-dev, python3-dev: pyscard builds from source.
# faketime: the test command runs the unit tier again with the calendar 400 days ahead.
APT_PACKAGES=(
    libpcsclite-dev pcscd vsmartcard-vpcd
    mosquitto mosquitto-clients socat
    postgresql
    chromium chromium-driver
    fonts-droid-fallback fonts-dejavu-core
    gcc python3-dev python3-venv
    faketime
    openjdk-17-jre-headless  # the comparison's Spark engine (muster controller compare --engine spark)
    nats-server  # the 3-node MQTT broker cluster of tests/integration/test_broker_cluster.py
    nftables  # the chaos run's packet loss on a device's links (tests/chaos/links.py)
)

if [ "$(id -u)" -eq 0 ]; then
    AS_ROOT=()
elif command -v sudo >/dev/null 2>&1; then
    AS_ROOT=(sudo)
else
    AS_ROOT=()
fi

missing_packages() {
    # dpkg-query prints one status per package it knows; unknown packages go to stderr.
    local pkg status
    for pkg in "${APT_PACKAGES[@]}"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
        [ "$status" = "installed" ] || printf '%s\n' "$pkg"
    done
}

if ! command -v dpkg-query >/dev/null 2>&1; then
    die "this script installs system packages with apt; it needs Debian or a derivative"
fi

mapfile -t MISSING < <(missing_packages)
if [ "${#MISSING[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] && [ "${#AS_ROOT[@]}" -eq 0 ]; then
        die "missing packages (${MISSING[*]}) and neither root nor sudo is available to install them"
    fi
    say "installing system packages: ${MISSING[*]}"
    # env rather than export: sudo drops the caller's environment.
    "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${MISSING[@]}"
else
    say "system packages present"
fi

# --- virtualenv -------------------------------------------------------------------------------

python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if [ -x "$VENV/bin/python" ] && python_ok "$VENV/bin/python"; then
    say "virtualenv present: $("$VENV/bin/python" --version 2>&1) in .venv"
else
    if [ -e "$VENV" ]; then
        say "removing unusable .venv (no working Python 3.11+ inside)"
        rm -rf "$VENV"
    fi
    PYTHON="$(find_python)" || die "no python3.11 or newer found; install python3 (>= 3.11)"
    say "creating .venv with $PYTHON ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi

# --- the project itself -----------------------------------------------------------------------

# Reinstall only when the declared dependencies changed: a full resolve costs tens of seconds.
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
HAVE="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$WANT" = "$HAVE" ]; then
    say "python packages up to date (pyproject.toml unchanged since last install)"
else
    say "installing muster and its dev dependencies into .venv (pyproject.toml changed)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
    printf '%s\n' "$WANT" >"$STAMP"
fi

say "ready"
