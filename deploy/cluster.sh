#!/usr/bin/env bash
# deploy/cluster.sh: a local ovmsd cluster on this machine, for trying the
# cluster out, for tests and for benchmarks.
#
#   deploy/cluster.sh up N [--dir DIR] [--name NAME]   start (what is down of) an N-node cluster
#   deploy/cluster.sh status [--dir DIR]               nodes, peer links, Redis, DNS
#   deploy/cluster.sh down [--dir DIR]                 stop everything it started, by PID
#
# Node Ni (N1, N2, ...) listens on its own loopback address 127.0.0.(10+i),
# every node on the same port (a DNS name carries addresses, not ports), with
# full-mesh replication peers and one shared redis-server on 127.0.0.10. A
# dnsmasq on 127.0.0.10 answers NAME (default ovms.cluster.test) with every
# node's address, rotating the order at each answer (round robin). Its port is
# not 53, which resolv.conf cannot name, so clients are given it directly:
#   ovms-car --server NAME:PORT --dns 127.0.0.10:DNSPORT ...
#   ovms-app --server NAME:PORT --dns 127.0.0.10:DNSPORT ...   (or OVMS_DNS=...)
# Ports are picked free once and kept in DIR/cluster.env, so several
# clusters (each with its own --dir) run side by side on the same addresses.
#
# The programs come from build/ (built first, with deploy/install-deps.sh, when
# they are missing there), or from $OVMS_BUILD; $OVMS_NODE_FLAGS is added to
# every ovmsd command line (for example "--workers 1 --level debug").
# `up` on a running cluster starts only what is down; `up` with more nodes
# adds them and restarts the running nodes, whose peer lists changed.
# Everything lives under DIR: each node's ovmsd.conf, node.db and ovmsd.log,
# redis/ and dns/. Provision vehicles on any node's database with
# `ovms-admin --db DIR/N1/node.db vehicle add ...`: replication carries them.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${OVMS_BUILD:-$top/build}
ovmsd=$build/server/ovmsd
admin=$build/server/ovms-admin
hub=127.0.0.10                       # redis and dns
dir=${OVMS_CLUSTER_DIR:-${TMPDIR:-/tmp}/ovms-cluster-$(id -un)}
name=ovms.cluster.test

die() { echo "cluster.sh: $*" >&2; exit 1; }

usage() {
  sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

node_addr() { echo "127.0.0.$((10 + $1))"; }

# A port that is free for TCP (and UDP with --udp) on every address given.
free_port() {
  python3 - "$@" <<'PY'
import random, socket, sys
args = sys.argv[1:]
udp = "--udp" in args
addrs = [a for a in args if a != "--udp"]
for _ in range(200):
    port = random.randint(20000, 59999)
    try:
        for a in addrs:
            for kind in ([socket.SOCK_STREAM, socket.SOCK_DGRAM] if udp else [socket.SOCK_STREAM]):
                s = socket.socket(socket.AF_INET, kind)
                s.bind((a, port))
                s.close()
    except OSError:
        continue
    print(port)
    sys.exit(0)
sys.exit("no free port")
PY
}

# Is the process in PIDFILE alive and still the one we started (its command
# line holds MARK)? A recycled PID is not ours.
alive() {
  local pidfile=$1 mark=$2 pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$mark"
}

can_connect() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Has PID exited (gone, or a zombie nobody reaped)? Not an empty command
# line: a process in the middle of its exec shows one too, and taking that
# for an exit left a redis-server running that no pidfile knew of.
exited() {
  [ -r "/proc/$1/stat" ] || return 0
  [ "$(sed 's/^.*) //' "/proc/$1/stat" | cut -c1)" = Z ]
}

wait_port() {
  local host=$1 port=$2 pidfile=$3 what=$4 log=$5
  for _ in $(seq 200); do
    can_connect "$host" "$port" && return 0
    [ -s "$pidfile" ] && exited "$(cat "$pidfile")" && break
    sleep 0.05
  done
  echo "cluster.sh: $what did not come up on $host:$port; the end of its log ($log):" >&2
  tail -n 5 "$log" >&2 || true
  # not left running behind a pidfile that the next attempt overwrites
  [ -s "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null
  rm -f "$pidfile"
  return 1
}

# Stops the process in PIDFILE (if it is ours): TERM, then KILL after 10 s.
stop_pid() {
  local pidfile=$1 mark=$2 pid
  alive "$pidfile" "$mark" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do
    alive "$pidfile" "$mark" || break      # (a zombie no init reaps counts as gone)
    sleep 0.05
  done
  alive "$pidfile" "$mark" && kill -KILL "$pid" 2>/dev/null
  rm -f "$pidfile"
}

load_env() {
  [ -f "$dir/cluster.env" ] || return 1
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
}

save_env() {
  mkdir -p "$dir"
  cat >"$dir/cluster.env" <<ENV
NODES=$NODES
PORT=$PORT
REDIS_PORT=$REDIS_PORT
DNS_PORT=$DNS_PORT
NAME=$NAME
SECRET=$SECRET
ENV
}

write_node_conf() {
  local i=$1 j conf="$dir/N$1/ovmsd.conf.new"
  mkdir -p "$dir/N$i"
  {
    echo "; written by deploy/cluster.sh; rewritten at every 'up'"
    echo "[server]"
    echo "node_id = N$i"
    echo "listen = $(node_addr "$i"):$PORT"
    echo "[db]"
    echo "path = $dir/N$i/node.db"
    echo "[redis]"
    echo "redis = $hub:$REDIS_PORT"
    for j in $(seq "$NODES"); do
      [ "$j" = "$i" ] && continue
      echo "[peer N$j]"
      echo "secret = $SECRET"
      echo "address = $(node_addr "$j"):$PORT"
    done
  } >"$conf"
}

start_redis() {
  local d="$dir/redis"
  mkdir -p "$d"
  alive "$d/redis.pid" "$hub:$REDIS_PORT" && return 0
  setsid redis-server --bind "$hub" --port "$REDIS_PORT" --save "" --appendonly no \
    --daemonize no --dir "$d" --logfile "$d/redis.log" </dev/null >>"$d/redis.log" 2>&1 &
  echo $! >"$d/redis.pid"
  wait_port "$hub" "$REDIS_PORT" "$d/redis.pid" redis-server "$d/redis.log"
}

write_hosts() {
  local i
  mkdir -p "$dir/dns"
  for i in $(seq "$NODES"); do echo "$(node_addr "$i") $NAME"; done >"$dir/dns/hosts"
}

start_dns() {
  local d="$dir/dns" mark="--port=$DNS_PORT"
  write_hosts
  if alive "$d/dnsmasq.pid" "$mark"; then
    kill -HUP "$(cat "$d/dnsmasq.pid")"      # re-read the hosts file
    return 0
  fi
  command -v dnsmasq >/dev/null || die "dnsmasq is missing (deploy/install-deps.sh installs it)"
  # --addn-hosts entries are answered in rotating order: the round robin.
  setsid dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --bind-interfaces --listen-address="$hub" "$mark" --addn-hosts="$d/hosts" \
    --local-ttl=1 --pid-file= --user="$(id -un)" --log-facility="$d/dnsmasq.log" \
    </dev/null >>"$d/dnsmasq.log" 2>&1 &
  echo $! >"$d/dnsmasq.pid"
  wait_port "$hub" "$DNS_PORT" "$d/dnsmasq.pid" dnsmasq "$d/dnsmasq.log"
}

start_node() {
  local i=$1 d="$dir/N$1" addr
  addr=$(node_addr "$i")
  if alive "$d/ovmsd.pid" "$d/ovmsd.conf"; then
    if cmp -s "$d/ovmsd.conf.new" "$d/ovmsd.conf"; then
      rm -f "$d/ovmsd.conf.new"
      return 0
    fi
    echo "cluster.sh: restarting N$i: its peers changed" >&2
    stop_pid "$d/ovmsd.pid" "$d/ovmsd.conf"
  fi
  mv "$d/ovmsd.conf.new" "$d/ovmsd.conf"
  # shellcheck disable=SC2086  # OVMS_NODE_FLAGS is a list of flags
  setsid "$ovmsd" --config "$d/ovmsd.conf" ${OVMS_NODE_FLAGS:-} </dev/null >>"$d/ovmsd.log" 2>&1 &
  echo $! >"$d/ovmsd.pid"
  wait_port "$addr" "$PORT" "$d/ovmsd.pid" "ovmsd N$i" "$d/ovmsd.log"
}

print_lines() {
  local i
  for i in $(seq "$NODES"); do
    echo "node N$i $(node_addr "$i"):$PORT db $dir/N$i/node.db"
  done
  echo "redis $(cat "$dir/redis/redis.pid") $hub:$REDIS_PORT"
  echo "dns $NAME $hub:$DNS_PORT"
}

cmd_up() {
  local n=$1 i fresh=
  [[ "$n" =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 200 ] || die "up needs a node count from 1 to 200, not '$n'"
  if [ -z "${OVMS_BUILD:-}" ] && ! { [ -x "$ovmsd" ] && [ -x "$admin" ] && [ -x "$build/firmware/ovms-car" ]; }; then
    echo "cluster.sh: building first (deploy/install-deps.sh, cmake)" >&2
    "$top/deploy/install-deps.sh"
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j"$(nproc)" >/dev/null
  fi
  [ -x "$ovmsd" ] && [ -x "$admin" ] || die "no ovmsd in $build (build first, or set OVMS_BUILD)"
  command -v redis-server >/dev/null || die "redis-server is missing (deploy/install-deps.sh installs it)"
  local addrs=()
  for i in $(seq "$n"); do addrs+=("$(node_addr "$i")"); done
  if load_env; then
    for i in $(seq $((n + 1)) "$NODES"); do
      alive "$dir/N$i/ovmsd.pid" "$dir/N$i/ovmsd.conf" &&
        die "this cluster runs $NODES nodes; 'down' it first to run fewer"
    done
    if [ "$n" -gt "$NODES" ]; then
      # the new addresses must have the cluster's port free
      for i in $(seq $((NODES + 1)) "$n"); do
        can_connect "$(node_addr "$i")" "$PORT" && die "port $PORT is taken on $(node_addr "$i")"
      done
    fi
    NODES=$n
    [ "$name_given" ] && [ "$name_given" != "$NAME" ] && die "this cluster's name is $NAME"
  else
    fresh=1
    NODES=$n
    NAME=${name_given:-$name}
    PORT=$(free_port "${addrs[@]}")
    REDIS_PORT=$(free_port "$hub")
    DNS_PORT=$(free_port --udp "$hub")
    SECRET=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  fi
  save_env
  # a port taken between its pick and the start (another cluster coming up
  # at the same moment): a new cluster picks again, twice at most
  for attempt in 1 2 3; do
    start_redis && break
    [ "$fresh" ] && [ "$attempt" -lt 3 ] || die "redis-server did not start"
    REDIS_PORT=$(free_port "$hub"); save_env
  done
  for attempt in 1 2 3; do
    start_dns && break
    [ "$fresh" ] && [ "$attempt" -lt 3 ] || die "dnsmasq did not start"
    DNS_PORT=$(free_port --udp "$hub"); save_env
  done
  for i in $(seq "$NODES"); do write_node_conf "$i"; done
  for i in $(seq "$NODES"); do start_node "$i"; done
  print_lines
}

cmd_status() {
  load_env || die "no cluster in $dir"
  local i d state rc=0
  for i in $(seq "$NODES"); do
    d="$dir/N$i"
    if alive "$d/ovmsd.pid" "$d/ovmsd.conf"; then state="up pid $(cat "$d/ovmsd.pid")"; else state=down; rc=1; fi
    echo "node N$i $(node_addr "$i"):$PORT db $d/node.db: $state"
    if [ "$state" != down ]; then
      "$admin" --db "$d/node.db" cluster status 2>/dev/null |
        awk '/^PEER/{p=1; next} /^$/{p=0} p{printf "  link %s %s since %s %s\n", $1, $2, $3, $4}' ||
        echo "  (no link status yet)"
    fi
  done
  if alive "$dir/redis/redis.pid" "$hub:$REDIS_PORT" && can_connect "$hub" "$REDIS_PORT"; then
    echo "redis $(cat "$dir/redis/redis.pid") $hub:$REDIS_PORT: up"
  else
    echo "redis - $hub:$REDIS_PORT: down"; rc=1
  fi
  if alive "$dir/dns/dnsmasq.pid" "--port=$DNS_PORT"; then
    echo "dns $NAME $hub:$DNS_PORT: up pid $(cat "$dir/dns/dnsmasq.pid")"
  else
    echo "dns $NAME $hub:$DNS_PORT: down"; rc=1
  fi
  return $rc
}

cmd_down() {
  load_env || { echo "cluster.sh: no cluster in $dir" >&2; return 0; }
  local i
  for i in $(seq "$NODES"); do stop_pid "$dir/N$i/ovmsd.pid" "$dir/N$i/ovmsd.conf"; done
  stop_pid "$dir/dns/dnsmasq.pid" "--port=$DNS_PORT"
  stop_pid "$dir/redis/redis.pid" "$hub:$REDIS_PORT"
  echo "cluster.sh: stopped the cluster in $dir (its data stays there)"
}

[ $# -ge 1 ] || usage
verb=$1; shift
count=
if [ "$verb" = up ]; then
  [ $# -ge 1 ] || die "up needs a node count"
  count=$1; shift
fi
name_given=
while [ $# -gt 0 ]; do
  case $1 in
    --dir) [ $# -ge 2 ] || die "--dir needs a directory"; dir=$2; shift 2 ;;
    --name) [ $# -ge 2 ] || die "--name needs a DNS name"; name_given=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case $verb in
  up) cmd_up "$count" ;;
  status) cmd_status ;;
  down) cmd_down ;;
  -h|--help|help) usage 0 ;;
  *) die "unknown command '$verb' (up N, status or down)" ;;
esac
