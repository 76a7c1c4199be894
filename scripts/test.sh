#!/usr/bin/env bash
# Run the whole test suite (unit, integration against real services, end-to-end in Chromium).
#
#   bash scripts/test.sh [PYTEST_ARGS...]   e.g. -k mosquitto, -x, tests/unit
#
# Exits non-zero if any test fails or if no test was collected. JUnit XML and the per-test
# working directories (broker logs and the like) are left under artifacts/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh"

ARTIFACTS="$ROOT/artifacts"
mkdir -p "$ARTIFACTS"

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
exit "$status"
