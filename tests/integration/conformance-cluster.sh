#!/usr/bin/env bash
# Runs ../shared/conformance/run.py in its cross-node mode against a real
# 3-node cluster brought up by deploy/cluster.sh (full-mesh replication, a
# Redis bus, round-robin DNS): cars log in on node N1, apps and batch
# clients on N2. The two vehicles are made on N1 and reach N2 by
# replication before the suite starts. Everything is stopped by PID at the
# end; a sanitizer report in any node's log fails the run.
#   conformance-cluster.sh BUILD_DIR SHARED_DIR
# OVMSD_BIN in the environment (the ThreadSanitizer stage) selects the
# build tree that holds it instead.
set -u
build=$1 shared=$2
[ -n "${OVMSD_BIN:-}" ] && build=$(cd "$(dirname "$OVMSD_BIN")/.." && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d /tmp/ovms-conformance-cluster-XXXXXX)
cluster() { OVMS_BUILD=$build OVMS_NODE_FLAGS="--workers 2" "$top/deploy/cluster.sh" "$@" --dir "$dir"; }
trap 'cluster down >/dev/null 2>&1' EXIT

out=$(cluster up 3) || { echo "cluster did not come up"; exit 1; }
echo "$out"
port=$(echo "$out" | awk '$1 == "node" && $2 == "N1" { split($3, a, ":"); print a[2] }')
admin=$build/server/ovms-admin
"$admin" --db "$dir/N1/node.db" vehicle add TESTCAR --password NETPASS >/dev/null 2>&1 || exit 1
"$admin" --db "$dir/N1/node.db" vehicle add OTHERCAR --password OTHERPW >/dev/null 2>&1 || exit 1
for _ in $(seq 200); do
  [ "$("$admin" --db "$dir/N2/node.db" --json vehicle list 2>/dev/null | grep -c 'CAR"')" -ge 2 ] && break
  sleep 0.05
done

python3 "$shared/conformance/run.py" --host 127.0.0.11 --port "$port" \
  --app-host 127.0.0.12 --app-port "$port" \
  --vehicle TESTCAR --password NETPASS --vehicle2 OTHERCAR --password2 OTHERPW
rc=$?
cluster status || rc=1
cluster down
trap - EXIT
if grep -l "ThreadSanitizer\|AddressSanitizer\|runtime error" "$dir"/N*/ovmsd.log; then
  echo "a sanitizer reported in the node logs above"
  rc=1
fi
[ $rc -eq 0 ] && rm -rf "$dir"
exit $rc
