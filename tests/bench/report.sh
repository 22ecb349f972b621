#!/usr/bin/env bash
# Writes the ovms-fleet part of docs/benchmarks.md (the summary against the
# goals, every run with its command, the plots, the profile) from a results
# directory that tests/bench/run.sh filled: NAME.json (ovms-fleet --json's
# last line), NAME.cmd (the command as the report shows it), meta (the run's
# settings). Run by run.sh; run it again after re-running one benchmark by
# hand into the same directory.
#   tests/bench/report.sh [RESULTS]     (default docs/bench/results)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
res=${1:-$top/docs/bench/results}
report="$top/docs/benchmarks.md"
plots="$top/docs/bench"
work=$(mktemp -d /tmp/ovms-report-XXXXXX)
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC1091
. "$res/meta"            # seconds, soak, long, machine
j() { jq -r "$2" "$res/$1.json" 2>/dev/null || echo "?"; }

# ---- plots of the series ------------------------------------------------------------------------
series() {   # series PREFIX RATES... -> "offered delivered p50 p99" rows
  local prefix=$1
  shift
  for r in "$@"; do
    [ -s "$res/$prefix-$r.json" ] || continue
    jq -r --argjson off "$((r * 1000))" '"\($off) \(.rate_per_s) \(.latency_ms.p50) \(.latency_ms.p99)"' \
      "$res/$prefix-$r.json" 2>/dev/null || true
  done
}
series relay 2 5 10 20 50 100 >"$work/relay.dat"
series cross 5 10 20 50 >"$work/cross.dat"
for n in 2000 6000 12000 18000; do
  jq -r '"\(.connections.held) \(.server.bytes_per_conn // 0)"' "$res/idle-$n.json" 2>/dev/null || true
done >"$work/idle.dat"
gnuplot <<GP
set terminal pngcairo size 900,520 font ",11"
set grid
set key top left
set output "$plots/relay-load.png"
set title "Relay against offered load (1000 cars, one app each, open loop; load generator on the same 2 cores)"
set xlabel "messages offered per second"
set ylabel "latency, car due time to app receive (ms)"
set logscale xy
set y2label "delivered per second"
set y2tics
set ytics nomirror
set arrow from graph 0, first 5 to graph 1, first 5 nohead dashtype 2 lc rgb "red"
set arrow from graph 0, first 2 to graph 1, first 2 nohead dashtype 3 lc rgb "orange"
plot "$work/relay.dat" using 1:4 with linespoints title "one node p99", \
     "$work/relay.dat" using 1:3 with linespoints title "one node p50", \
     "$work/cross.dat" using 1:4 with linespoints title "across nodes p99", \
     "$work/cross.dat" using 1:3 with linespoints title "across nodes p50", \
     "$work/relay.dat" using 1:2 axes x1y2 with lines dashtype 2 title "one node delivered/s", \
     "$work/cross.dat" using 1:2 axes x1y2 with lines dashtype 2 title "across nodes delivered/s"
unset arrow
unset y2tics
unset y2label
unset logscale
set ytics mirror
set output "$plots/memory-per-connection.png"
set title "Server memory per idle authenticated connection (RSS growth / connections held)"
set xlabel "connections held"
set ylabel "bytes per connection"
set yrange [0:*]
set arrow from graph 0, first 1024 to graph 1, first 1024 nohead dashtype 2 lc rgb "red"
set label "goal: under 1 KiB" at graph 0.02, first 1100 textcolor rgb "red"
plot "$work/idle.dat" using 1:2 with linespoints title "ovmsd"
GP

# ---- the report ---------------------------------------------------------------------------------
met() {   # met VALUE OP LIMIT
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { ok = (op == "<" ? v + 0 < l + 0 : v + 0 >= l + 0);
    print (v == "?" ? "?" : ok ? "met" : "**missed**") }'
}
headline_rate="none"; headline_p99="over 5 ms at every offered load measured"
for r in 2 5 10 20 50 100; do
  p=$(j "relay-$r" .latency_ms.p99)
  if [ "$p" != "?" ] && awk -v p="$p" 'BEGIN { exit !(p + 0 <= 5) }'; then
    headline_rate=$(j "relay-$r" '.rate_per_s | floor'); headline_p99="$p ms"
  fi
done
errors=0
for f in "$res"/*.json; do
  e=$(jq -r '.errors // 1' "$f" 2>/dev/null || echo 1)
  errors=$((errors + e))
done
rss_first=$(awk '$1 >= 60 && $1 < 61 { print $9 }' "$plots/mixed-timeline.dat" 2>/dev/null | head -1)
rss_last=$(awk 'END { print $9 }' "$plots/mixed-timeline.dat" 2>/dev/null)
worst_second=$(awk 'NR > 1 && $8 > m { m = $8 } END { print m + 0 }' "$plots/mixed-timeline.dat" 2>/dev/null)
# the long relay at 20,000/s: p99 of each second, first and last minute and the worst second
long_p99() {   # long_p99 FROM TO: the median of the per-second p99s in [FROM, TO) seconds
  awk -v a="$1" -v b="$2" 'NR > 1 && $1 > a && $1 <= b { print $7 }' "$plots/relay-timeline.dat" 2>/dev/null |
    sort -n | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "?") }'
}
long_end=$(awk 'END { print int($1) }' "$plots/relay-timeline.dat" 2>/dev/null)
long_first=$(long_p99 0 60)
long_last=$(long_p99 $(( ${long_end:-60} - 60 )) "${long_end:-60}")
long_worst=$(awk 'NR > 1 && $7 > m { m = $7 } END { print m + 0 }' "$plots/relay-timeline.dat" 2>/dev/null)

row() {   # row NAME: one table row of a run's figures
  local n=$1
  [ -s "$res/$n.json" ] || { echo "| $n | (no result) | | | | | | | |"; return; }
  local cmd
  cmd="$(cat "$res/$n.cmd")"
  [ -s "$res/$n.node" ] && cmd="$cmd\` on a node started with \`$(tr -d '()' <"$res/$n.node" | sed 's/^node: //')"
  jq -r --arg n "$n" --arg cmd "$cmd" \
    '"| `\($cmd)` | \(.rate_per_s | floor) /s | \(.latency_ms.p50) | \(.latency_ms.p99) | \(.latency_ms.p999) | \(.latency_ms.max) | \(.relay.send_lag_ms.p99 // "") | \(.machine.steal_pct // "" | if . == "" then . else (. * 10 | floor / 10) end) | \(.sent)/\(.received)/\(.lost)/\(.dups)/\(.misrouted) |"' \
    "$res/$n.json"
}

section="$work/section.md"
{
  echo "Written by \`tests/bench/run.sh $seconds\` on $machine; ovmsd RelWithDebInfo with 2 workers; the load generator (ovms-fleet, 2 processes) runs on the same 2 cores. The results (each run's JSON line and command) are in \`docs/bench/results/\`; \`tests/bench/report.sh\` writes this section again from them."
  echo
  echo "### Summary against the goals"
  echo
  echo "| goal | measured | |"
  echo "|---|---|---|"
  echo "| 25,000 logins/s, p99 handshake under 10 ms | $(j login-storm '.rate_per_s | floor') logins/s, p99 $(j login-storm .latency_ms.p99) ms | $(met "$(j login-storm .rate_per_s)" ">=" 25000) / $(met "$(j login-storm .latency_ms.p99)" "<" 10) |"
  echo "| under 1 KiB of server memory per idle connection | $(j idle-18000 '.server.bytes_per_conn // "?" | floor') bytes ($(j idle-18000 .connections.held) held) | $(met "$(j idle-18000 '.server.bytes_per_conn // "?"')" "<" 1024) |"
  echo "| relay p99 under 2 ms at 50,000 messages/s offered, one node | p99 $(j relay-50 .latency_ms.p99) ms ($(j relay-50 '.rate_per_s | floor') /s delivered) | $(met "$(j relay-50 .latency_ms.p99)" "<" 2) |"
  echo "| headline: the most one node carries with p99 under 5 ms | $headline_rate$( [ "$headline_rate" = none ] || echo " messages/s") (p99 $headline_p99) | |"
  echo "| relay p99 under 2 ms and p99.9 under 5 ms at 20,000 messages/s (1,000 cars x 1 app, random phases) | p99 $(j relay-20 .latency_ms.p99) ms, p99.9 $(j relay-20 .latency_ms.p999) ms (of which the generator's own lateness: p99 $(j relay-20 '.relay.send_lag_ms.p99 // "?"') ms) | $(met "$(j relay-20 .latency_ms.p99)" "<" 2) / $(met "$(j relay-20 .latency_ms.p999)" "<" 5) |"
  echo "| relay p99 under 5 ms at 50,000 messages/s | p99 $(j relay-50 .latency_ms.p99) ms | $(met "$(j relay-50 .latency_ms.p99)" "<" 5) |"
  echo "| server CPU per delivered message at 20,000/s under 8 us | $(j relay-20 '.server.cpu_us_per_item // "?" | . * 100 | floor / 100') us | $(met "$(j relay-20 '.server.cpu_us_per_item // "?"')" "<" 8) |"
  echo "| $((long / 60)) minutes at 20,000/s: the tail stays flat | median per-second p99 $long_first ms in the first minute, $long_last ms in the last; worst second's p99 $long_worst ms; $(j relay-20-long .errors) errors; steal $(j relay-20-long '.machine.steal_pct // "?" | floor') % over the run | |"
  echo "| 250,000 messages/s flat out, one node | $(j relay-flat '.rate_per_s | floor') /s | $(met "$(j relay-flat .rate_per_s)" ">=" 250000) |"
  echo "| 50,000 cross-node messages/s, 2 nodes (car on one, app on the other, Redis) | $(j cross2-flat '.rate_per_s | floor') /s (closed loop) | $(met "$(j cross2-flat .rate_per_s)" ">=" 50000) |"
  echo "| cross-node p99 under 5 ms at 20,000/s, 2 nodes | p99 $(j cross2-20 .latency_ms.p99) ms (p99 $(j cross2-5 .latency_ms.p99) ms at 5,000/s) | $(met "$(j cross2-20 .latency_ms.p99)" "<" 5) |"
  echo "| the same on 3 nodes: 50,000 messages/s | $(j cross-flat '.rate_per_s | floor') /s (closed loop) | $(met "$(j cross-flat .rate_per_s)" ">=" 50000) |"
  echo "| the same on 3 nodes: p99 under 5 ms at 20,000/s | p99 $(j cross-20 .latency_ms.p99) ms | $(met "$(j cross-20 .latency_ms.p99)" "<" 5) |"
  echo "| zero lost, duplicated or misrouted, every scenario | $errors errors over $(ls "$res"/*.json | wc -l) runs | $(met "$errors" "<" 1) |"
  echo "| $((soak / 60))-minute mixed soak: no stall, no memory growth, nothing lost | worst second's max latency $worst_second ms; node RSS $((${rss_first:-0} / 1024)) MiB at 1 min, $((${rss_last:-0} / 1024)) MiB at the end; $(j soak .errors) errors | |"
  echo
  echo "### Every run"
  echo
  echo "Latency in ms: relay from the message's due time (open loop) or send time (closed loop) to the app; commands app to car to app; history record to ack; logins connect to first Z. *Lag*: the generator's own lateness, p99 (open-loop relay: how late after its due time a car sent; part of the latency). *Steal*: the share of the machine's CPU time the hypervisor took during the run. Counts: sent/received/lost/dups/misrouted (deliveries owed and made; commands; records; logins)."
  echo
  echo "| command | rate | p50 | p99 | p99.9 | max | lag | steal % | counts |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for n in login-storm idle-2000 idle-6000 idle-12000 idle-18000 relay-2 relay-5 relay-10 relay-20 relay-50 relay-100 \
           relay-20-long relay-flat commands history churn relay-20-profiled relay-50-profiled soak cross2-flat cross2-5 cross2-20 cross-flat cross-5 cross-10 cross-20 cross-50 \
           cluster-relay cluster-mixed; do
    row "$n"
  done
  echo
  echo "Memory per idle connection: $(for n in 2000 6000 12000 18000; do printf '%s held: %s B; ' "$(j "idle-$n" .connections.held)" "$(j "idle-$n" '.server.bytes_per_conn // "?" | floor')"; done)"
  echo "server CPU per delivered message: $(for r in 2 5 10 20 50 100; do printf '%s/s: %s us; ' "$((r * 1000))" "$(j "relay-$r" '.server.cpu_us_per_item // "?" | . * 100 | floor / 100')"; done)"
  echo "flat out $(j relay-flat '.server.cpu_us_per_item // "?" | . * 100 | floor / 100') us."
  echo
  echo "### Plots"
  echo
  echo "![relay against offered load](bench/relay-load.png)"
  echo "![memory per connection](bench/memory-per-connection.png)"
  echo "![cross-node latency over time at 20,000/s](bench/cross-node-latency-time.png)"
  echo "![cross-node latency by percentile at 20,000/s](bench/cross-node-latency-distribution.png)"
  echo "![10 minutes at 20,000/s: relay latency each second](bench/relay-latency-time.png)"
  echo "![10 minutes at 20,000/s: the machine's CPU each second, and what the hypervisor took](bench/relay-machine.png)"
  echo "![the soak: relay latency each second](bench/mixed-latency-time.png)"
  echo "![the soak: the node's memory](bench/mixed-memory.png)"
  echo
  for n in cross2-20 cross-20; do
    f="$plots/threads-$n.txt"
    [ -s "$f" ] || continue
    echo "### Where the CPU goes across nodes at 20,000 messages/s ($(j "$n" '.nodes // "?"') nodes, per thread)"
    echo
    echo '```'
    cat "$f"
    echo '```'
    echo
  done
  for r in 20 50; do
    profile="$plots/profile-relay-${r}k.txt"
    [ -s "$profile" ] || continue
    echo "### Where the time goes at $((r * 1000)) messages/s offered (perf, the node)"
    echo
    echo '```'
    cat "$profile"
    echo '```'
    echo
  done
} >"$section"

# splice it between the markers (appended the first time)
if grep -q '<!-- bench:fleet -->' "$report"; then
  awk -v f="$section" '
    /<!-- bench:fleet -->/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
    /<!-- \/bench:fleet -->/ { skip = 0 }
    !skip { print }' "$report" >"$work/report.md"
else
  { cat "$report"; echo; echo "<!-- bench:fleet -->"; cat "$section"; echo "<!-- /bench:fleet -->"; } >"$work/report.md"
fi
cp "$work/report.md" "$report"
echo "wrote $report and $plots/"
