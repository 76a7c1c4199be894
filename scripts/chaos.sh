#!/usr/bin/env bash
# The chaos suite on demand: real devices, controller replicas, Mosquitto and PostgreSQL under
# seeded faults, then the counts (lost and doubled must be 0).
#
#   bash scripts/chaos.sh [--faults 1000 --records 100000 ...]   (try --help)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh"
# The run lives in tests/chaos/ (it starts controllers and devices, which no package may import
# together), so the checkout goes on the path.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$ROOT/.venv/bin/python" -m tests.chaos "$@"
