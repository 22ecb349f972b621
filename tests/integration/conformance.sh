#!/usr/bin/env bash
# Runs ../shared/conformance/run.py against a real ovmsd: a fresh database
# with the two vehicles it needs (made with ovms-admin), a free loopback
# port, the server stopped by PID at the end. Exit status: the suite's.
#   conformance.sh OVMSD OVMS_ADMIN SHARED_DIR
# OVMSD_BIN and OVMS_ADMIN_BIN in the environment replace the first two
# (the ThreadSanitizer stage runs the suite against TSan builds).
set -u
ovmsd=${OVMSD_BIN:-$1} admin=${OVMS_ADMIN_BIN:-$2} shared=$3
dir=$(mktemp -d /tmp/ovms-conformance-XXXXXX)
# a random free port below the kernel's ephemeral range (not bind(0): see
# harness_free_port, ovmsd listens with SO_REUSEPORT)
port=$(python3 -c '
import random, socket
for _ in range(1000):
    p = random.randint(15000, 31999)
    try:
        s = socket.socket(); s.bind(("127.0.0.1", p)); s.close(); print(p); break
    except OSError:
        pass')
"$admin" --db "$dir/node.db" --node CONFORMANCE vehicle add TESTCAR --password NETPASS >/dev/null || exit 1
"$admin" --db "$dir/node.db" vehicle add OTHERCAR --password OTHERPW >/dev/null || exit 1
"$ovmsd" --db "$dir/node.db" --listen "127.0.0.1:$port" >"$dir/ovmsd.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.05
done
python3 "$shared/conformance/run.py" --host 127.0.0.1 --port "$port" \
  --vehicle TESTCAR --password NETPASS --vehicle2 OTHERCAR --password2 OTHERPW
rc=$?
kill -TERM $pid && wait $pid
stop=$?
trap - EXIT
[ $stop -eq 0 ] || { echo "ovmsd did not stop cleanly (status $stop); log: $dir/ovmsd.log"; exit 1; }
[ $rc -eq 0 ] && rm -rf "$dir"
exit $rc
