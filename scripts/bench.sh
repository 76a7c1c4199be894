#!/usr/bin/env bash
# Run every benchmark under tests/bench/ (bench_*.py), each printing its own figures.
#
#   bash scripts/bench.sh [ARGS...]    (ARGS go to every benchmark script)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh"

shopt -s nullglob
benches=("$ROOT"/tests/bench/bench_*.py)
if [ "${#benches[@]}" -eq 0 ]; then
    echo "bench: error: no tests/bench/bench_*.py found" >&2
    exit 1
fi

# Benchmarks reuse the test helpers (simulators, service starters) as `tests.…` imports.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

failed=()
for bench in "${benches[@]}"; do
    name="${bench#"$ROOT"/}"
    echo "== $name"
    if ! "$ROOT/.venv/bin/python" "$bench" "$@"; then
        failed+=("$name")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "bench: failed: ${failed[*]}" >&2
    exit 1
fi
