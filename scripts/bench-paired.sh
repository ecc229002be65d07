# Paired benchmark rounds, sourced by bench-tls.sh and bench-http.sh (not
# run on its own). This machine is noisy: single runs swing by a quarter,
# so two modes are measured back to back in each round, the ratio is taken
# per round, and medians are reported.
#
# A script calls `paired_init "$@"`, starts its servers under "$work"
# (adding each pid to `pids`), fills `server_pid[MODE]` (the process whose
# CPU time a mode is charged) and `bench_flags[MODE]` (the canhazdb-bench
# flags that reach it), then calls `paired_rounds BASE OTHER` and
# `paired_summary BASE OTHER`.

# Parses `[--rounds N] [canhazdb-bench flags…]` into `rounds` and `flags`,
# builds the release binaries if missing, makes the scratch dir `work`,
# and at exit stops every pid in `pids` and removes `work`.
paired_init() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
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
    trap paired_cleanup EXIT INT TERM
    ticks_per_second=$(getconf CLK_TCK)
    declare -gA server_pid bench_flags results
}

paired_cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}

# The server's CPU time so far, in clock ticks (utime + stime of /proc/PID/stat).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# MODE TEST [flags…] -> prints "OPS_PER_S P99_US CPU_US_PER_REQUEST"
paired_bench() {
    local mode=$1 test=$2
    shift 2
    local before after line
    before=$(cpu_ticks "${server_pid[$mode]}")
    # shellcheck disable=SC2086 # bench_flags[] is a list of flags
    line=$($bin/canhazdb-bench ${bench_flags[$mode]} "$@" --tests "$test" -q --json)
    after=$(cpu_ticks "${server_pid[$mode]}")
    python3 -c '
import json, sys
result = json.loads(sys.argv[1])["tests"][0]
ticks = int(sys.argv[2]) - int(sys.argv[3])
cpu_us = ticks / int(sys.argv[4]) * 1e6 / result["requests"]
print("%.0f %d %.1f" % (result["ops_per_sec"], result["latency_us"]["p99"], cpu_us))' "$line" "$after" "$before" "$ticks_per_second"
}

# BASE OTHER: `rounds` rounds of POST then GET by id, each mode back to
# back, on a dataset of 100,000 documents; prints one line per run.
paired_rounds() {
    printf '%-6s %-7s %-5s %9s %9s %14s\n' round mode test "ops/s" "p99 µs" "server µs/req"
    local round test mode ops p99 cpu
    for round in $(seq "$rounds"); do
        for test in post get; do
            for mode in "$@"; do
                read -r ops p99 cpu < <(paired_bench "$mode" "$test" "${flags[@]}" --preload 100000)
                results[$mode.$test]+="$ops $p99 $cpu;"
                printf '%-6s %-7s %-5s %9s %9s %14s\n' "$round" "$mode" "$test" "$ops" "$p99" "$cpu"
            done
        done
    done
    echo
}

# BASE OTHER: per test, the medians of both modes and the median of the
# per-round OTHER/BASE throughput ratios.
paired_summary() {
    python3 - "$1" "$2" "${results[$1.post]}" "${results[$2.post]}" "${results[$1.get]}" "${results[$2.get]}" <<'PY'
import statistics, sys
base, other = sys.argv[1], sys.argv[2]
def parse(text):
    return [[float(cell) for cell in row.split()] for row in text.strip(";").split(";")]
for test, a, b in (("post", sys.argv[3], sys.argv[4]), ("get", sys.argv[5], sys.argv[6])):
    a, b = parse(a), parse(b)
    median = lambda rows, column: statistics.median(row[column] for row in rows)
    ratio = statistics.median(y[0] / x[0] for x, y in zip(a, b))
    print(f"{test:4}  ops/s {base} {median(a, 0):7.0f}  {other} {median(b, 0):7.0f}  "
          f"{other}/{base} {ratio:6.1%} (median of rounds)   "
          f"p99 µs {base} {median(a, 1):6.0f}  {other} {median(b, 1):6.0f}   "
          f"server µs/req {base} {median(a, 2):5.1f}  {other} {median(b, 2):5.1f}")
PY
}
