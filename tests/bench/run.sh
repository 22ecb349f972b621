#!/usr/bin/env bash
# Runs the benchmarks on this machine and writes their figures into
# docs/benchmarks.md (each benchmark owns a marked section of the page).
#   tests/bench/run.sh [SECONDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-3}
"$top/deploy/install-deps.sh"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$(nproc)" >/dev/null
"$top/build/tests/bench/bench_proto" --seconds "$seconds" --report "$top/docs/benchmarks.md"
"$top/build/tests/bench/bench_store" --report "$top/docs/benchmarks.md"
