#!/usr/bin/env bash
# Runs the benchmarks on this machine and writes their figures into
# docs/benchmarks.md (each benchmark owns a marked section of the page).
#   tests/bench/run.sh [SECONDS]
# Takes a few minutes; nothing else should be running meanwhile.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-5}
report="$top/docs/benchmarks.md"
b="$top/build/tests/bench"
"$top/deploy/install-deps.sh"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$(nproc)" >/dev/null
echo "== proto"
"$b/bench_proto" --seconds "$seconds" --report "$report"
echo "== storage"
"$b/bench_store" --report "$report"
echo "== ovmsd: idle connections and logins"
"$b/bench_server" --ovmsd "$top/build/server/ovmsd" --section server-idle-logins \
  --phases idle,logins --idle 18000 --procs 4 --seconds "$seconds" --report "$report"
echo "== ovmsd: relay, one app per car, the load where p99 stays under 5 ms"
"$b/bench_server" --ovmsd "$top/build/server/ovmsd" --section server-relay-1to1 \
  --phases probe,relay --probe-seconds 75 --cars 1000 --rate 40 --burst 6 --procs 2 --seconds "$seconds" \
  --report "$report"
echo "== ovmsd: relay, ten apps per car, 200,000 delivered per second"
"$b/bench_server" --ovmsd "$top/build/server/ovmsd" --section server-relay-fanout \
  --phases relay --cars 100 --apps-per-car 10 --rate 200 --burst 6 --procs 2 --seconds "$seconds" \
  --report "$report"
echo "== ovmsd: relay flat out"
"$b/bench_server" --ovmsd "$top/build/server/ovmsd" --section server-relay-flat \
  --phases relay --cars 200 --rate 0 --procs 2 --seconds "$seconds" --report "$report"
echo "== across nodes (Redis bus): flat out, and at 20,000 and 50,000 messages/s offered"
"$b/bench_server" --ovmsd "$top/build/server/ovmsd" --section cross-node-flat \
  --phases cross --cars 200 --rate 0 --procs 2 --seconds "$seconds" --report "$report"
"$b/bench_server" --ovmsd "$top/build/server/ovmsd" --section cross-node-20k \
  --phases cross --cars 1000 --rate 20 --burst 1 --procs 2 --seconds 10 --report "$report"
"$b/bench_server" --ovmsd "$top/build/server/ovmsd" --section cross-node-50k \
  --phases cross --cars 1000 --rate 50 --burst 1 --procs 2 --seconds 10 --report "$report"
echo "== replication: catch-up of 1,000,000 records, lag at 20,000 records/s"
"$b/bench_repl" --ovmsd "$top/build/server/ovmsd" --records 1000000 --rate 20000 --seconds 10 \
  --report "$report"
command -v gnuplot >/dev/null && "$top/tests/bench/plot.sh" "$top" || true
