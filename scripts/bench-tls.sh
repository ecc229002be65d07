#!/usr/bin/env bash
# TLS against plain TCP in one run: one plain node and one mutual-TLS node
# (certificates made here with `canhazdb cert`), the same canhazdb-bench
# POST and GET-by-id workload against each, one after the other.
#
#   scripts/bench-tls.sh [extra canhazdb-bench flags]   (default: -c 4 -P 64 -n 200000)
#
# Uses target/release/{canhazdb,canhazdb-bench} (built when missing).
# Loopback only; everything it starts and writes is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x target/release/canhazdb ] && [ -x target/release/canhazdb-bench ] ||
    cargo build --release --locked --bins -p canhazdb
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

$bin/canhazdb cert create-ca --certs-dir "$work/certs" >/dev/null
$bin/canhazdb cert create-node --certs-dir "$work/certs" 127.0.0.1 >/dev/null
$bin/canhazdb cert create-client --certs-dir "$work/certs" bench >/dev/null

$bin/canhazdb --port 7391 --node-name plain --data-dir "$work/plain" 2>"$work/plain.log" & pids+=($!)
$bin/canhazdb --port 7392 --node-name tls --data-dir "$work/tls" --certs-dir "$work/certs" 2>"$work/tls.log" & pids+=($!)
sleep 2

flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(-c 4 -P 64 -n 200000)
tls=(--tls-ca "$work/certs/ca.crt" --tls-cert "$work/certs/bench.crt" --tls-key "$work/certs/bench.key")
echo "== plain TCP (port 7391)"
$bin/canhazdb-bench --port 7391 "${flags[@]}" --preload 100000 --tests post,get -q
echo "== mutual TLS (port 7392)"
$bin/canhazdb-bench --port 7392 "${tls[@]}" "${flags[@]}" --preload 100000 --tests post,get -q
