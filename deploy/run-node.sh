#!/usr/bin/env bash
# The project's run command: installs what is missing, builds, and runs the
# main job. It grows with the project; today only proto/ exists, so it
# builds everything and runs the protocol library's benchmark as a
# self-check. (A node with a simulated car arrives with the server.)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$(nproc)" >/dev/null
exec "$top/build/tests/bench/bench_proto" --seconds 1
