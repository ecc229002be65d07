#!/usr/bin/env bash
# REST against the binary protocol: one node with --http-port, the same
# canhazdb-bench POST and GET-by-id workload over its binary port and over
# its REST routes (`canhazdb-bench --http`: HTTP/1.1 keep-alive, one
# connection per request in flight, so -c 4 -P 64 means 4 binary
# connections with 64 in flight each against 256 HTTP connections with one
# each), alternating for several rounds so that a noisy machine hits both
# alike. Per round and test it prints throughput, p99 and the server's CPU
# time per request (user + system, from /proc), then the medians and the
# http/binary ratios (the target is at least 50%).
#
#   scripts/bench-http.sh [--rounds N] [extra canhazdb-bench flags]
#                         (defaults: --rounds 3, -c 4 -P 64 -n 200000)
#
# Uses target/release/{canhazdb,canhazdb-bench} (built when missing).
# Loopback only; everything it starts and writes is removed at the end.
set -euo pipefail
# shellcheck source=scripts/bench-paired.sh
. "$(dirname "$0")/bench-paired.sh"
paired_init "$@"

$bin/canhazdb --port 7393 --http-port 7394 --node-name node --data-dir "$work/node" 2>"$work/node.log" &
server_pid[binary]=$!
server_pid[http]=$!
pids+=($!)
bench_flags[binary]="--port 7393"
bench_flags[http]="--http --port 7394"
sleep 2

# One dataset serves both: they read the same collection of the same node.
$bin/canhazdb-bench ${bench_flags[binary]} -c 4 -P 64 --load-only 100000 -q >/dev/null

paired_rounds binary http
paired_summary binary http
