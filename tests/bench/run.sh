#!/usr/bin/env bash
# The project's benchmark report: runs the standard set and writes its
# figures, plots and the exact commands into docs/benchmarks.md.
#
#   tests/bench/run.sh [SECONDS]      (SECONDS of load per run, default 5)
#   OVMS_SOAK_SECONDS=600             the mixed soak (default 10 minutes)
#   OVMS_LONG_SECONDS=600             the long open-loop relay at 20,000/s (default 10 minutes)
#   OVMS_BENCH_COMPONENTS=0           skip proto/, storage/ and replication
#   OVMS_BENCH_ONLY=cluster           only the cluster runs (about 3 minutes); the other
#                                     results are kept and the report written from all
#   OVMS_BENCH_ONLY=http              only the HTTP API's run (its own section of the report)
#   OVMS_BENCH_ONLY=relay             only the open-loop relay set at 2,000-100,000/s (a minute),
#                                     the report written from it and the kept results
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
only=${OVMS_BENCH_ONLY:-}
case "$only" in
  "") rm -rf "$res" ;;
  cluster) rm -f "$res"/cross* "$res"/cluster-* ;;
  http) ;;
  relay) rm -f "$res"/relay-[0-9].* "$res"/relay-[0-9][0-9].* "$res"/relay-[0-9][0-9][0-9].* ;;
  *) echo "run.sh: OVMS_BENCH_ONLY is empty, 'cluster', 'relay' or 'http'" >&2; exit 2 ;;
esac
mkdir -p "$res" "$plots"
node_pid=""

"$top/deploy/install-deps.sh"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$(nproc)" >/dev/null

cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  "$top/deploy/cluster.sh" down --dir "$work/cluster" >/dev/null 2>&1 || true
  "$top/deploy/cluster.sh" down --dir "$work/cluster2" >/dev/null 2>&1 || true
}
trap cleanup EXIT
[ -z "$only" ] && { echo "seconds=$seconds"; echo "soak=$soak"; echo "long=$long"
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

# the same against a cluster (cluster_up first), through its round-robin DNS name
cfleet() {
  local name=$1 scenario=$2
  shift 2
  echo "== $name ($NODES nodes): ovms-fleet $scenario $*"
  echo "ovms-fleet $scenario --server $NAME:$PORT --dns 127.0.0.10:$DNS_PORT --db $cdb_names --connect-window 0 $*" \
    >"$res/$name.cmd"
  "$fleet" "$scenario" --server "$NAME:$PORT" --dns "127.0.0.10:$DNS_PORT" --db "$cdbs" --connect-window 0 "$@" --json \
    --no-progress >"$res/$name.out" 2>&1 || true
  sed '$d' "$res/$name.out"
  tail -1 "$res/$name.out" >"$res/$name.json"
}
cluster_up() {   # cluster_up N DIR
  OVMS_NODE_FLAGS="$limits" "$top/deploy/cluster.sh" up "$1" --dir "$2" --name ovms.bench.test
  # shellcheck disable=SC1091
  . "$2/cluster.env"
  cdbs=$(for i in $(seq "$1"); do printf '%s/N%d/node.db,' "$2" "$i"; done | sed 's/,$//')
  cdb_names=$(for i in $(seq "$1"); do printf 'N%d.db,' "$i"; done | sed 's/,$//')
}

# CPU time of every thread of the nodes and of Redis (ovmsd names its threads):
# threads_cpu snapshots ("pid:tid name ticks"), threads_report BEFORE AFTER SECONDS
# prints ms/s per process and thread name (threads that came or went are left out)
threads_cpu() {
  for p in $(pgrep -x ovmsd) $(pgrep -x redis-server); do
    for t in /proc/"$p"/task/*; do
      printf '%s:%s %s %s\n' "$p" "${t##*/}" "$(cat "$t/comm")" "$(awk '{ print $14 + $15 }' "$t/stat")"
    done
  done 2>/dev/null | sort
}
threads_report() {
  join "$1" "$2" |
    awk -v s="$3" -v hz="$(getconf CLK_TCK)" '{ split($1, k, ":"); t[k[1] " " $2] += ($5 - $3) * 1000 / hz / s }
      END { for (x in t) if (t[x] >= 1) printf "%-8s %-12s %6.0f ms/s\n", substr(x, 1, index(x, " ") - 1), substr(x, index(x, " ") + 1), t[x] }' |
    sort -k1,1n -k2,2
}
# cfleet_threads NAME FILE SCENARIO ARGS...: cfleet, with each thread's CPU during the run in FILE
cfleet_threads() {
  local name=$1 file=$2 t0 t1 s0 s1
  shift 2
  t0=$(mktemp) t1=$(mktemp)
  threads_cpu >"$t0"; s0=$(date +%s.%N)
  cfleet "$name" "$@"
  threads_cpu >"$t1"; s1=$(date +%s.%N)
  { echo "# CPU of each thread (ms per second of the run; pid, thread) during: $(cat "$res/$name.cmd")"
    echo "# (ovmsd-w*: workers; store-write: the SQLite writer; store-read/bulk: its readers; ovmsd-repl: MP-S links)"
    threads_report "$t0" "$t1" "$(echo "$s1 - $s0" | bc)"
  } >"$file"
  rm -f "$t0" "$t1"
}

if [ -z "$only" ] && [ "${OVMS_BENCH_COMPONENTS:-1}" = 1 ]; then
  echo "== proto"
  "$b/bench_proto" --seconds "$seconds" --report "$report"
  echo "== storage"
  "$b/bench_store" --report "$report"
  echo "== replication: catch-up of 1,000,000 records, lag at 20,000 records/s"
  "$b/bench_repl" --ovmsd "$ovmsd" --records 1000000 --rate 20000 --seconds 10 --report "$report"
fi

# the HTTP API: GET /api/status/<V> with keep-alive from 100 clients (a session cookie, so no
# password is hashed per request), the vehicle's reports made by a simulated car
http_bench() {
  local hport=$(( 20000 + RANDOM % 10000 ))
  start_node --http "127.0.0.1:$hport"
  "$top/build/server/ovms-admin" --db "$work/node/node.db" owner add benchowner --password benchpw >/dev/null
  local cars=() v
  for v in BENCHCAR BENCH0 BENCH1 BENCH2 BENCH3 BENCH4 BENCH5 BENCH6 BENCH7 BENCH8 BENCH9; do
    "$top/build/server/ovms-admin" --db "$work/node/node.db" vehicle add "$v" --password carpw \
      --owner benchowner >/dev/null
  done
  sleep 1.5                                   # the node sees the new vehicles
  for v in BENCHCAR BENCH0 BENCH1 BENCH2 BENCH3 BENCH4 BENCH5 BENCH6 BENCH7 BENCH8 BENCH9; do
    "$top/build/firmware/ovms-car" --server "127.0.0.1:$port" --vehicle "$v" --password carpw \
      --state-dir "$work/car-$v" >/dev/null 2>&1 &
    cars+=($!)
  done
  sleep 2
  local cookie
  cookie=$(curl -s -D - -o /dev/null "http://127.0.0.1:$hport/api/cookie?username=benchowner&password=benchpw" |
    tr -d '\r' | sed -n 's/^Set-Cookie: \(ovmsapisession=[^;]*\).*/\1/p')
  echo "== http: bench_http --clients 100 --seconds 10 (GET /api/status/BENCHCAR)"
  "$b/bench_http" --port "$hport" --path /api/status/BENCHCAR --header "Cookie: $cookie" --clients 100 \
    --seconds 10 --report "$report" || echo "run.sh: bench_http failed" >&2
  echo "== http-spread: bench_http --clients 100 --seconds 10 (GET /api/status/BENCH0..9, client k polls BENCH<k mod 10>)"
  "$b/bench_http" --port "$hport" --path '/api/status/BENCH{i}' --spread 10 --header "Cookie: $cookie" \
    --clients 100 --seconds 10 --report "$report" --name http-spread || echo "run.sh: bench_http failed" >&2
  kill "${cars[@]}" 2>/dev/null || true
  wait "${cars[@]}" 2>/dev/null || true
}
if [ "$only" = http ]; then
  http_bench
  stop_node
  exit 0
fi
relay_set() {
  start_node
  for r in 2 5 10 20 50 100; do
    fleet "relay-$r" relay --cars 1000 --apps-per-car 1 --rate "$r" --duration "$seconds"
  done
}
if [ "$only" = relay ]; then
  relay_set
  stop_node
  "$top/tests/bench/report.sh" "$res"
  exit 0
fi

if [ -z "$only" ]; then
# ---- one node -------------------------------------------------------------------------------
start_node
fleet login-storm login-storm --cars 128 --connect-window 64 --duration "$seconds"
for n in 2000 6000 12000 18000; do
  start_node
  fleet "idle-$n" idle --cars "$n" --hold 12
done
relay_set
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

http_bench

# the soak: a realistic day, ten minutes of it
start_node
fleet soak mixed --cars 5000 --apps-per-car 1 --active 0.1 --duration "$soak" --plot "$plots"
stop_node

fi

# ---- issue 10's set-up: a car on node 1, its app on node 2, Redis, on 2 nodes -------------------
cluster_up 2 "$work/cluster2"
cfleet cross2-flat cross-node --cars 300 --apps-per-car 1 --rate 0 --window 8 --duration "$seconds"
cfleet cross2-5 cross-node --cars 1000 --apps-per-car 1 --rate 5 --duration "$seconds"
cfleet_threads cross2-20 "$plots/threads-cross2-20.txt" cross-node --cars 1000 --apps-per-car 1 --rate 20 \
  --duration "$seconds"
"$top/deploy/cluster.sh" down --dir "$work/cluster2" >/dev/null

# ---- a 3-node cluster --------------------------------------------------------------------------
cluster_up 3 "$work/cluster"
cfleet cross-flat cross-node --cars 300 --apps-per-car 1 --rate 0 --window 8 --duration "$seconds"
for r in 5 10 50; do
  cfleet "cross-$r" cross-node --cars 1000 --apps-per-car 1 --rate "$r" --duration "$seconds"
done
cfleet_threads cross-20 "$plots/threads-cross-20.txt" cross-node --cars 1000 --apps-per-car 1 --rate 20 \
  --duration "$seconds" --plot "$plots"
cfleet cluster-relay relay --cars 1000 --apps-per-car 1 --rate 20 --duration "$seconds"
cfleet cluster-mixed mixed --cars 3000 --apps-per-car 1 --active 0.1 --duration 30
"$top/deploy/cluster.sh" down --dir "$work/cluster" >/dev/null

# ---- the report -------------------------------------------------------------------------------
"$top/tests/bench/report.sh" "$res"
