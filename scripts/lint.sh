#!/usr/bin/env bash
# Static checks: ruff (lint and format) over the repository, mypy --strict over the packages.
#
#   bash scripts/lint.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh"

status=0
echo "== ruff check"
"$ROOT/.venv/bin/ruff" check . || status=1
echo "== ruff format --check"
"$ROOT/.venv/bin/ruff" format --check . || status=1

packages=()
for pkg in muster edge controller provisioning; do
    [ -d "$pkg" ] && packages+=("$pkg")
done
echo "== mypy --strict ${packages[*]}"
"$ROOT/.venv/bin/mypy" --strict "${packages[@]}" || status=1

exit "$status"
