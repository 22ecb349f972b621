#!/usr/bin/env bash
# Long fuzz run of one target: tests/fuzz/run.sh TARGET SECONDS [BUILD_DIR]
# Builds the fuzz tree with clang when needed (build-fuzz/), keeps the grown
# corpus in BUILD_DIR/tests/fuzz/corpus-TARGET, and prints libFuzzer's final
# statistics. Exit status is libFuzzer's: non-zero means a finding, whose
# reproducer is written next to the corpus.
set -euo pipefail
target=${1:?usage: run.sh fuzz_session|fuzz_welcome|fuzz_message|fuzz_firmware|fuzz_http SECONDS [BUILD_DIR]}
seconds=${2:?seconds}
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${3:-$top/build-fuzz}
if [ ! -x "$build/tests/fuzz/$target" ]; then
  CC=clang-14 cmake -S "$top" -B "$build" -DOVMS_FUZZ=ON >/dev/null
  cmake --build "$build" -j"$(nproc)" --target "$target" >/dev/null
fi
work="$build/tests/fuzz/corpus-$target"
mkdir -p "$work"
exec "$build/tests/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$build/tests/fuzz/" "$work" "$top/tests/fuzz/seeds/$target"
