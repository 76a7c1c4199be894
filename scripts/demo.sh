#!/usr/bin/env bash
# Run the demonstration: a controller and a small simulated fleet on this machine.
#
#   bash scripts/demo.sh [ARGS...]     (ARGS go to `muster demo`; try --help)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh"
exec "$ROOT/.venv/bin/muster" demo "$@"
