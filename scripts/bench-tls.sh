#!/usr/bin/env bash
# TLS against plain TCP: one plain node and one mutual-TLS node (certificates
# made here with `canhazdb cert`), the same canhazdb-bench POST and
# GET-by-id workload against each, alternating for several rounds so that a
# noisy machine hits both alike. Per round and test it prints throughput and
# the server's CPU time per request (user + system, from /proc), then the
# medians and the TLS/plain ratios.
#
#   scripts/bench-tls.sh [--rounds N] [extra canhazdb-bench flags]
#                        (defaults: --rounds 3, -c 4 -P 64 -n 200000)
#
# Uses target/release/{canhazdb,canhazdb-bench} (built when missing).
# Loopback only; everything it starts and writes is removed at the end.
set -euo pipefail
# shellcheck source=scripts/bench-paired.sh
. "$(dirname "$0")/bench-paired.sh"
paired_init "$@"

$bin/canhazdb cert create-ca --certs-dir "$work/certs" >/dev/null
$bin/canhazdb cert create-node --certs-dir "$work/certs" 127.0.0.1 >/dev/null
$bin/canhazdb cert create-client --certs-dir "$work/certs" bench >/dev/null

bench_flags[plain]="--port 7391"
bench_flags[tls]="--port 7392 --tls-ca $work/certs/ca.crt --tls-cert $work/certs/bench.crt --tls-key $work/certs/bench.key"
$bin/canhazdb --port 7391 --node-name plain --data-dir "$work/plain" 2>"$work/plain.log" &
server_pid[plain]=$!
pids+=($!)
$bin/canhazdb --port 7392 --node-name tls --data-dir "$work/tls" --certs-dir "$work/certs" 2>"$work/tls.log" &
server_pid[tls]=$!
pids+=($!)
sleep 2

for mode in plain tls; do
    # shellcheck disable=SC2086
    $bin/canhazdb-bench ${bench_flags[$mode]} -c 4 -P 64 --load-only 100000 -q >/dev/null
done

paired_rounds plain tls
paired_summary plain tls
