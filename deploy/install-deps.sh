#!/usr/bin/env bash
# Installs the Debian 12 packages ovmsd needs to build, test and run.
# Idempotent: installs only what is missing and prints nothing when all of
# it is already there. Uses sudo when not run as root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config python3      # toolchain
  clang-14 libclang-rt-14-dev                   # fuzzers and sanitizers
  libssl-dev                                    # base64, CSPRNG, TLS
  libsqlite3-dev                                # storage/
  libuv1-dev libinih-dev                        # server/
  libhiredis-dev redis-server                   # replication/: the Redis bus, and its tests
  dnsmasq-base                                  # deploy/cluster.sh: round-robin DNS for a local cluster
  libcriterion-dev libjansson-dev               # tests; jansson also for ovms-admin, ovms-app
  node-llhttp libwslay-dev                      # the HTTP API: llhttp's C sources, WebSocket framing
  curl                                          # tests/bench/run.sh: the HTTP API's session cookie
  gnuplot-nox jq                                # benchmark plots, and tests/bench/run.sh reading ovms-fleet --json
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
