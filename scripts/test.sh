#!/usr/bin/env bash
# Run the whole test suite (unit, integration against real services, end-to-end in Chromium).
#
#   bash scripts/test.sh [PYTEST_ARGS...]   e.g. -k mosquitto, -x, tests/unit
#
# Exits non-zero if any test fails or if no test was collected. JUnit XML and the per-test
# working directories (broker logs and the like) are left under artifacts/. With no arguments the
# unit tier runs a second time under faketime, 400 days ahead.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh"

ARTIFACTS="$ROOT/artifacts"
mkdir -p "$ARTIFACTS"

# CI replays every property test the same way (see the profiles in tests/conftest.py).
if [ "${CI:-}" = "true" ]; then
    export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
fi

# With no path arguments pytest runs the testpaths from pyproject.toml. Our --basetemp comes
# first so a caller's own --basetemp wins.
status=0
"$ROOT/.venv/bin/pytest" \
    --basetemp="$ARTIFACTS/tmp" \
    --junitxml="$ARTIFACTS/junit.xml" \
    "$@" || status=$?

case "$status" in
    0) echo "test: all tests passed" ;;
    5) echo "test: error: no tests were collected; that is a failure, not a pass" >&2 ;;
    *) echo "test: pytest exited with status $status" >&2 ;;
esac

# The whole run (no arguments) also proves the suite does not depend on the calendar: the unit
# tier again, with the wall clock 400 days ahead. Servers with TLS are not started in that tier,
# so a shifted clock is safe there (see ENVIRONMENT.md on faketime).
if [ "$#" -eq 0 ] && [ "$status" -eq 0 ]; then
    echo "test: the unit tier again with the calendar 400 days ahead (faketime +400d)"
    shifted=0
    faketime -f "+400d" "$ROOT/.venv/bin/pytest" tests/unit -q \
        -p no:cacheprovider \
        --basetemp="$ARTIFACTS/tmp-400d" \
        --junitxml="$ARTIFACTS/junit-400d.xml" || shifted=$?
    case "$shifted" in
        0) echo "test: unit tier passed at +400 days" ;;
        *) echo "test: unit tier failed at +400 days (pytest status $shifted)" >&2; status=$shifted ;;
    esac
fi
exit "$status"
