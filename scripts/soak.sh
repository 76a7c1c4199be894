#!/usr/bin/env bash
# The fleet soak over the broker cluster: 100,000 simulated devices through a 3-node NATS
# cluster into two controller replicas on PostgreSQL for 30 minutes; heartbeats held, offline
# detection right, each process's memory flat (tests/bench/soak_cluster.py).
#
#   bash scripts/soak.sh [--devices 100000 --minutes 30 --out soak.json ...]   (try --help)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$ROOT/.venv/bin/python" "$ROOT/tests/bench/soak_cluster.py" "$@"
