#!/usr/bin/env bash
# Run every benchmark under tests/bench/ (bench_*.py), each printing its own figures, then the
# issue's table: each figure beside its limit or peer measured in the same run, and the goal.
#
#   bash scripts/bench.sh [ARGS...]    (ARGS go to every benchmark script)
#   BENCH_ARGS_bench_fleet="--devices 20000 --burst 20000" bash scripts/bench.sh
#                                      (one benchmark's own arguments, instead of ARGS)
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

# The fleet's 0.8x row needs several controller processes sharing the subscription (one process
# is bound by the Python MQTT client): measure 1..N, N = 2, or 3 with 3 or more cores.
if [ "$#" -eq 0 ] && [ -z "${BENCH_ARGS_bench_fleet:-}" ]; then
    if [ "$(nproc)" -ge 3 ]; then
        export BENCH_ARGS_bench_fleet="--controllers 3"
    else
        export BENCH_ARGS_bench_fleet="--controllers 2"
    fi
fi

results="$(mktemp -d -t muster-bench-results-XXXXXX)"
failed=()
for bench in "${benches[@]}"; do
    name="${bench#"$ROOT"/}"
    base="$(basename "$bench" .py)"
    own="BENCH_ARGS_$base"
    if [ -n "${!own:-}" ]; then
        read -r -a args <<<"${!own}"
    else
        args=("$@")
    fi
    echo "== $name ${args[*]:-}"
    if ! "$ROOT/.venv/bin/python" "$bench" "${args[@]}" | tee "$results/$base.out"; then
        failed+=("$name")
    fi
done

"$ROOT/.venv/bin/python" "$ROOT/tests/bench/summary.py" "$results"
echo "bench: each benchmark's output is in $results"

if [ "${#failed[@]}" -gt 0 ]; then
    echo "bench: failed: ${failed[*]}" >&2
    exit 1
fi
