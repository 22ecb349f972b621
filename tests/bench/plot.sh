#!/usr/bin/env bash
# Relay latency against load: runs bench_server's relay phase at rising
# rates (1000 cars, one app each, bursts of 6) and plots p50 and p99 against
# messages delivered per second into docs/relay-latency.png.
#   tests/bench/plot.sh [TOP]
set -euo pipefail
top=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
data=$(mktemp /tmp/ovms-relay-XXXXXX.dat)
for rate in 10 20 30 40 60 80 100 130 160 200; do
  "$top/build/tests/bench/bench_server" --ovmsd "$top/build/server/ovmsd" --phases relay \
    --cars 1000 --rate "$rate" --burst 6 --procs 2 --seconds 4 --csv "$data" | grep relay
done
gnuplot <<GP
set terminal pngcairo size 900,520 font ",11"
set output "$top/docs/relay-latency.png"
set title "ovmsd relay latency against load (1000 cars, one app each; 2 cores shared with the load generators)"
set xlabel "messages delivered to apps per second"
set ylabel "car send to app receive (ms)"
set logscale y
set yrange [0.05:25]
set grid
set key top left
set arrow from graph 0, first 5 to graph 1, first 5 nohead dashtype 2 lc rgb "red"
set label "goal: p99 under 5 ms" at graph 0.02, first 6 textcolor rgb "red"
plot "$data" using 2:3 with linespoints title "p50", "$data" using 2:4 with linespoints title "p99"
GP
rm -f "$data"
echo "wrote $top/docs/relay-latency.png"
