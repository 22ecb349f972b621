#!/usr/bin/env bash
# The project's test command: installs what is missing, builds, and runs
# every test. Each stage is a CMake build tree with its own CTest run, and
# every stage builds with -Werror (a packager's default build does not):
#
#   build/          gcc, RelWithDebInfo: unit and integration tests
#   build-release/  gcc, Release (-O3, as packagers build it): the same tests
#   build-asan/     clang-14 with ASan + UBSan: the same tests again, plus each
#                   libFuzzer target for a short bounded time
#   build-tsan/     clang-14 with ThreadSanitizer: ovmsd and ovms-admin only
#                   (Criterion cannot run under TSan); build/'s integration
#                   tests and the conformance suite run against them, and
#                   any report makes the node exit non-zero, which fails them
#
# It ends with one line, "N passed, N failed", over both stages (a stage
# that does not build counts as one failure), and exits non-zero on any
# failure. Set OVMS_STAGES="build" to run only the first stage.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
passed=0
failed=0

"$top/deploy/install-deps.sh" || { echo "0 passed, 1 failed"; exit 1; }

stage() {
  local dir=$1; shift
  local log="$top/$dir/ctest.log" buildlog="$top/$dir/build.log"
  mkdir -p "$top/$dir"
  echo "== $dir: configure and build"
  if ! { cmake -S "$top" -B "$top/$dir" "$@" && cmake --build "$top/$dir" -j"$jobs"; } \
       >"$buildlog" 2>&1; then
    echo "== $dir: BUILD FAILED"
    grep -E "error|Error" "$buildlog" | head -30
    failed=$((failed + 1))
    return
  fi
  echo "== $dir: test"
  (cd "$top/$dir" && ctest --output-on-failure --timeout 600 -j"$jobs") 2>&1 | tee "$log"
  count "$log"
}

# Add a CTest log's summary to the totals (no summary: one failure).
count() {
  local log=$1 summary f t
  summary=$(grep -Eo '[0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
  if [ -z "$summary" ]; then
    failed=$((failed + 1))
    return
  fi
  f=$(echo "$summary" | awk '{print $1}')
  t=$(echo "$summary" | awk '{print $6}')
  passed=$((passed + t - f))
  failed=$((failed + f))
}

# The TSan stage: build the programs, then run build/'s integration tests
# against them (building build/ first if an earlier stage did not).
tsan_stage() {
  local dir=build-tsan log="$top/build-tsan/ctest.log" buildlog="$top/build-tsan/build.log"
  mkdir -p "$top/$dir"
  echo "== $dir: configure and build"
  if ! { CC=clang-14 cmake -S "$top" -B "$top/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
           -DOVMS_TSAN=ON -DOVMS_WERROR=ON &&
         cmake --build "$top/$dir" -j"$jobs" --target ovmsd ovms-admin &&
         { [ -x "$top/build/tests/test_server" ] ||
           { cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOVMS_WERROR=ON &&
             cmake --build "$top/build" -j"$jobs"; }; }; } >"$buildlog" 2>&1; then
    echo "== $dir: BUILD FAILED"
    grep -E "error|Error" "$buildlog" | head -30
    failed=$((failed + 1))
    return
  fi
  echo "== $dir: integration tests and conformance against the TSan ovmsd"
  (cd "$top/build" && OVMSD_BIN="$top/$dir/server/ovmsd" OVMS_ADMIN_BIN="$top/$dir/server/ovms-admin" \
     TSAN_OPTIONS="exitcode=66 halt_on_error=0 second_deadlock_stack=1 suppressions=$top/tests/tsan.supp" \
     ctest --output-on-failure --timeout 900 -j"$jobs" \
       -R '^(test_server|test_lifecycle|test_vehicles|test_abuse|test_cluster|test_bus|test_deploy|test_car_app|conformance|conformance_cluster|http|http_slow)$') 2>&1 | tee "$log"
  count "$log"
}

stages=${OVMS_STAGES:-"build build-release build-asan build-tsan"}
for s in $stages; do
  case $s in
    build) stage build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOVMS_WERROR=ON ;;
    build-release) stage build-release -DCMAKE_BUILD_TYPE=Release -DOVMS_WERROR=ON ;;
    build-asan) CC=clang-14 stage build-asan -DCMAKE_BUILD_TYPE=Debug -DOVMS_FUZZ=ON -DOVMS_WERROR=ON ;;
    build-tsan) tsan_stage ;;
    *) echo "unknown stage $s"; failed=$((failed + 1)) ;;
  esac
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
