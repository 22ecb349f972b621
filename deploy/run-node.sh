#!/usr/bin/env bash
# The project's run command: installs what is missing, builds, and runs a
# node on an embedded SQLite database (run/node.db in the checkout) with a
# simulated car: the vehicle DEMOCAR (car password DEMOPW) is provisioned
# and ovms-car drives it around Greenwich, ten times faster than real time,
# so that `ovms-app ... watch` has something to follow.
#
# The node listens on 127.0.0.1:6867 unless OVMS_LISTEN says otherwise;
# OVMS_TIME_SCALE sets the car's speed-up. The node logs here; the car logs
# to run/ovms-car.log. Ctrl-C stops both.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
listen=${OVMS_LISTEN:-127.0.0.1:6867}
scale=${OVMS_TIME_SCALE:-10}
"$top/deploy/install-deps.sh"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$(nproc)" >/dev/null
mkdir -p "$top/run"
db="$top/run/node.db"
admin="$top/build/server/ovms-admin"
app="$top/build/tools/ovms-app"
if ! "$admin" --db "$db" --json vehicle list | grep -q '"DEMOCAR"'; then
  "$admin" --db "$db" vehicle add DEMOCAR --password DEMOPW >/dev/null
fi

"$top/build/server/ovmsd" --db "$db" --listen "$listen" &
node=$!
"$top/build/firmware/ovms-car" --server "$listen" --vehicle DEMOCAR --password DEMOPW \
  --state-dir "$top/run/car-DEMOCAR" --time-scale "$scale" 2>>"$top/run/ovms-car.log" &
car=$!
stop() {
  kill -INT "$car" 2>/dev/null || true
  kill -TERM "$node" 2>/dev/null || true
  wait
}
trap stop INT TERM

cat <<TXT
ovmsd on $listen, database $db; a simulated car DEMOCAR (car password DEMOPW)
is driving at ${scale}x (its log: run/ovms-car.log). In another terminal:

  $app --server $listen --vehicle DEMOCAR --password DEMOPW watch
  $app --server $listen --vehicle DEMOCAR --password DEMOPW command charge start

Manage vehicles: $admin --db $db vehicle list
Stop with Ctrl-C.
TXT
wait "$node" || true
stop
