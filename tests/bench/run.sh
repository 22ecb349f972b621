#!/usr/bin/env bash
# The project's benchmark report: runs the standard set and writes its
# figures, plots and the exact commands into docs/benchmarks.md.
#
#   tests/bench/run.sh [SECONDS]      (SECONDS of load per run, default 5)
#   OVMS_SOAK_SECONDS=600             the mixed soak (default 10 minutes)
#   OVMS_LONG_SECONDS=600             the long open-loop relay at 20,000/s (default 10 minutes)
#   OVMS_BENCH_COMPONENTS=0           skip proto/, storage/ and replication
#
# The load is ovms-fleet (tools/), against one node started here on
# 127.0.0.1 and against a 3-node cluster (deploy/cluster.sh: nodes on
# 127.0.0.11-13, Redis, round-robin DNS). The component benchmarks (proto/,
# storage/, replication catch-up) run first. Takes about 45 minutes (two
# 10-minute runs, the long relay at 20,000/s and the mixed soak); nothing
# else should run meanwhile. Every node and server it starts, it stops by PID.
# Each run's JSON line and command are kept in docs/bench/results/.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-5}
soak=${OVMS_SOAK_SECONDS:-600}
long=${OVMS_LONG_SECONDS:-600}
report="$top/docs/benchmarks.md"
plots="$top/docs/bench"
b="$top/build/tests/bench"
fleet="$top/build/tools/ovms-fleet"
ovmsd="$top/build/server/ovmsd"
work=$(mktemp -d /tmp/ovms-bench-XXXXXX)
res="$plots/results"           # kept: tests/bench/report.sh writes the report from them
rm -rf "$res"
mkdir -p "$res" "$plots"
node_pid=""

"$top/deploy/install-deps.sh"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$(nproc)" >/dev/null

cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  "$top/deploy/cluster.sh" down --dir "$work/cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT
{ echo "seconds=$seconds"; echo "soak=$soak"; echo "long=$long"
  echo "machine='$(date -u +%Y-%m-%d) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ { print $2 }') GiB, $(uname -sr)'"; } >"$res/meta"

# One node on 127.0.0.1 with a fresh database (and the flags given). The whole fleet comes from
# one address, so the per-address limits on connections not yet logged in
# (guard.c) are lifted; everything else is the default.
limits="--max-connections 19500 --max-unauthenticated 19500 --max-unauthenticated-per-address 19500"
start_node() {
  stop_node
  rm -rf "$work/node" && mkdir -p "$work/node"
  port=$(( 20000 + RANDOM % 10000 ))
  # shellcheck disable=SC2086
  "$ovmsd" --db "$work/node/node.db" --listen "127.0.0.1:$port" --workers 2 $limits "$@" \
    --log-level warn >"$work/node/ovmsd.log" 2>&1 &
  node_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "run.sh: ovmsd did not start" >&2
  exit 1
}
stop_node() {
  if [ -n "$node_pid" ]; then
    kill "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
    node_pid=""
  fi
}

# fleet NAME SCENARIO ARGS...: one run against the node; keeps its output,
# its JSON line and its command (as the report shows it).
fleet() {
  local name=$1 scenario=$2
  shift 2
  echo "== $name: ovms-fleet $scenario $*"
  echo "ovms-fleet $scenario --server 127.0.0.1:PORT --db node.db --connect-window 0 $*" >"$res/$name.cmd"
  "$fleet" "$scenario" --server "127.0.0.1:$port" --db "$work/node/node.db" --connect-window 0 "$@" --json --no-progress \
    >"$res/$name.out" 2>&1 || true
  sed '$d' "$res/$name.out"
  tail -1 "$res/$name.out" >"$res/$name.json"
}

# the same against the cluster, through its round-robin DNS name
cfleet() {
  local name=$1 scenario=$2
  shift 2
  echo "== $name (3 nodes): ovms-fleet $scenario $*"
  echo "ovms-fleet $scenario --server $NAME:$PORT --dns 127.0.0.10:$DNS_PORT --db N1.db,N2.db,N3.db --connect-window 0 $*" \
    >"$res/$name.cmd"
  "$fleet" "$scenario" --server "$NAME:$PORT" --dns "127.0.0.10:$DNS_PORT" --db "$cdbs" --connect-window 0 "$@" --json \
    --no-progress >"$res/$name.out" 2>&1 || true
  sed '$d' "$res/$name.out"
  tail -1 "$res/$name.out" >"$res/$name.json"
}

if [ "${OVMS_BENCH_COMPONENTS:-1}" = 1 ]; then
  echo "== proto"
  "$b/bench_proto" --seconds "$seconds" --report "$report"
  echo "== storage"
  "$b/bench_store" --report "$report"
  echo "== replication: catch-up of 1,000,000 records, lag at 20,000 records/s"
  "$b/bench_repl" --ovmsd "$ovmsd" --records 1000000 --rate 20000 --seconds 10 --report "$report"
fi

# ---- one node -------------------------------------------------------------------------------
start_node
fleet login-storm login-storm --cars 128 --connect-window 64 --duration "$seconds"
for n in 2000 6000 12000 18000; do
  start_node
  fleet "idle-$n" idle --cars "$n" --hold 12
done
start_node
for r in 2 5 10 20 50 100; do
  fleet "relay-$r" relay --cars 1000 --apps-per-car 1 --rate "$r" --duration "$seconds"
done
# the cost of a message at realistic load: 1,000 cars at random phases, 20 messages/s each,
# for long enough to show whether the tail stays flat (latency and memory each second)
start_node
fleet relay-20-long relay --cars 1000 --apps-per-car 1 --rate 20 --duration "$long" --plot "$plots"
start_node
fleet relay-flat relay --cars 200 --apps-per-car 1 --rate 0 --window 8 --duration "$seconds"
start_node
fleet commands commands --cars 200 --duration "$seconds"
# history ingest: the node's per-vehicle budget (120 a minute, 1000 at once) is an abuse limit,
# not its capacity, so it is lifted here (the fleet's 200 cars send far more than real ones)
start_node --history-per-minute 1000000 --history-burst 1000000
echo "(node: --history-per-minute 1000000 --history-burst 1000000)" >"$res/history.node"
fleet history history --cars 200 --window 8 --duration "$seconds"
start_node
fleet churn churn --cars 500 --rate 2 --lifetime 5 --duration $((seconds * 2))

# where the time goes at 20,000 and 50,000 messages/s offered: the node's profile
# (self time, and with children: the kernel's share, the syscalls and the scheduler)
profiled() {   # profiled RATE
  local r=$1 profile="$plots/profile-relay-$1k.txt"
  start_node
  ( sleep 4; perf record -F 499 -g -p "$node_pid" -o "$work/perf.data" -- sleep 4 >/dev/null 2>&1 ) &
  local perf_job=$!
  fleet "relay-$r-profiled" relay --cars 1000 --apps-per-car 1 --rate "$r" --duration 10
  wait "$perf_job" || true
  { echo "# perf record -F 499 -g -p <ovmsd> during: $(cat "$res/relay-$r-profiled.cmd")"
    echo "# (4 s in the middle of the run; self time, top entries)"
    perf report -i "$work/perf.data" --stdio --no-children --sort symbol -g none 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -25
    echo "# by object"
    perf report -i "$work/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -6
    echo "# with children: syscalls, TCP and the scheduler"
    perf report -i "$work/perf.data" --stdio --children --sort symbol -g none 2>/dev/null |
      grep -E '^ +[0-9.]+%' | grep -E 'libc_write|epoll_wait|\] read$|__schedule|tcp_v4_rcv|tcp_sendmsg|sock_def_readable|ovms_rc4' | head -12
  } >"$profile" || true
}
if command -v perf >/dev/null; then
  profiled 20
  profiled 50
fi

# the soak: a realistic day, ten minutes of it
start_node
fleet soak mixed --cars 5000 --apps-per-car 1 --active 0.1 --duration "$soak" --plot "$plots"
stop_node

# ---- a 3-node cluster --------------------------------------------------------------------------
OVMS_NODE_FLAGS="$limits" "$top/deploy/cluster.sh" up 3 --dir "$work/cluster" --name ovms.bench.test
# shellcheck disable=SC1091
. "$work/cluster/cluster.env"
cdbs="$work/cluster/N1/node.db,$work/cluster/N2/node.db,$work/cluster/N3/node.db"
cfleet cross-flat cross-node --cars 300 --apps-per-car 1 --rate 0 --window 8 --duration "$seconds"
for r in 5 10 20 50; do
  extra=()
  [ "$r" = 20 ] && extra=(--plot "$plots")
  cfleet "cross-$r" cross-node --cars 1000 --apps-per-car 1 --rate "$r" --duration "$seconds" "${extra[@]}"
done
cfleet cluster-relay relay --cars 1000 --apps-per-car 1 --rate 20 --duration "$seconds"
cfleet cluster-mixed mixed --cars 3000 --apps-per-car 1 --active 0.1 --duration 30
"$top/deploy/cluster.sh" down --dir "$work/cluster" >/dev/null

# ---- the report -------------------------------------------------------------------------------
"$top/tests/bench/report.sh" "$res"
