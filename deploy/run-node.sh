#!/usr/bin/env bash
# The project's run command: installs what is missing, builds, and runs a
# node in the foreground on an embedded SQLite database (run/node.db in the
# checkout), with a demo vehicle DEMOCAR (car password DEMOPW) provisioned.
# Listens on 127.0.0.1:6867 unless OVMS_LISTEN says otherwise. Ctrl-C stops.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
listen=${OVMS_LISTEN:-127.0.0.1:6867}
"$top/deploy/install-deps.sh"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$(nproc)" >/dev/null
mkdir -p "$top/run"
db="$top/run/node.db"
admin="$top/build/server/ovms-admin"
if ! "$admin" --db "$db" --json vehicle list | grep -q '"DEMOCAR"'; then
  "$admin" --db "$db" vehicle add DEMOCAR --password DEMOPW >/dev/null
fi
cat <<TXT
ovmsd on $listen, database $db, vehicle DEMOCAR (car password DEMOPW).
Manage vehicles: $admin --db $db vehicle list
Stop with Ctrl-C.
TXT
exec "$top/build/server/ovmsd" --db "$db" --listen "$listen"
