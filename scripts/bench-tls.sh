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
cd "$(dirname "$0")/.."
[ -x target/release/canhazdb ] && [ -x target/release/canhazdb-bench ] ||
    cargo build --release --locked --bins -p canhazdb
bin=target/release
rounds=3
if [ "${1:-}" = --rounds ]; then
    rounds=$2
    shift 2
fi
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(-c 4 -P 64 -n 200000)

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

declare -A port pid options
port[plain]=7391
port[tls]=7392
options[plain]=""
options[tls]="--tls-ca $work/certs/ca.crt --tls-cert $work/certs/bench.crt --tls-key $work/certs/bench.key"
$bin/canhazdb --port 7391 --node-name plain --data-dir "$work/plain" 2>"$work/plain.log" &
pid[plain]=$!
pids+=($!)
$bin/canhazdb --port 7392 --node-name tls --data-dir "$work/tls" --certs-dir "$work/certs" 2>"$work/tls.log" &
pid[tls]=$!
pids+=($!)
sleep 2

# The server's CPU time so far, in clock ticks (utime + stime of /proc/PID/stat).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)

bench() { # MODE TEST [flags…] -> prints "OPS_PER_S P99_US CPU_US_PER_REQUEST"
    local mode=$1 test=$2
    shift 2
    local before after line
    before=$(cpu_ticks "${pid[$mode]}")
    # shellcheck disable=SC2086 # options[] is a list of flags
    line=$($bin/canhazdb-bench --port "${port[$mode]}" ${options[$mode]} "$@" --tests "$test" -q --json)
    after=$(cpu_ticks "${pid[$mode]}")
    python3 -c '
import json, sys
result = json.loads(sys.argv[1])["tests"][0]
ticks = int(sys.argv[2]) - int(sys.argv[3])
cpu_us = ticks / int(sys.argv[4]) * 1e6 / result["requests"]
print("%.0f %d %.1f" % (result["ops_per_sec"], result["latency_us"]["p99"], cpu_us))' "$line" "$after" "$before" "$ticks_per_second"
}

for mode in plain tls; do
    # shellcheck disable=SC2086
    $bin/canhazdb-bench --port "${port[$mode]}" ${options[$mode]} -c 4 -P 64 --load-only 100000 -q >/dev/null
done

declare -A results
printf '%-6s %-5s %-5s %9s %9s %14s\n' round mode test "ops/s" "p99 µs" "server µs/req"
for round in $(seq "$rounds"); do
    for test in post get; do
        for mode in plain tls; do
            read -r ops p99 cpu < <(bench "$mode" "$test" "${flags[@]}" --preload 100000)
            results[$mode.$test]+="$ops $p99 $cpu;"
            printf '%-6s %-5s %-5s %9s %9s %14s\n' "$round" "$mode" "$test" "$ops" "$p99" "$cpu"
        done
    done
done

echo
# Rounds are paired (plain then TLS, back to back), so the ratio is taken
# per round and its median reported.
python3 - "${results[plain.post]}" "${results[tls.post]}" "${results[plain.get]}" "${results[tls.get]}" <<'EOF'
import statistics, sys
def parse(text):
    return [[float(cell) for cell in row.split()] for row in text.strip(";").split(";")]
for test, plain, tls in (("post", sys.argv[1], sys.argv[2]), ("get", sys.argv[3], sys.argv[4])):
    plain, tls = parse(plain), parse(tls)
    median = lambda rows, column: statistics.median(row[column] for row in rows)
    ratio = statistics.median(t[0] / p[0] for p, t in zip(plain, tls))
    print(f"{test:4}  ops/s plain {median(plain, 0):7.0f}  tls {median(tls, 0):7.0f}  "
          f"tls/plain {ratio:6.1%} (median of rounds)   "
          f"p99 µs plain {median(plain, 1):6.0f}  tls {median(tls, 1):6.0f}   "
          f"server µs/req plain {median(plain, 2):5.1f}  tls {median(tls, 2):5.1f}")
EOF
