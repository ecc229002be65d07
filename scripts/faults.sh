#!/usr/bin/env bash
# The fault harness's long run (issue 11; DEVELOPERS.md, "Fault harness").
#   scripts/faults.sh --minutes 30            runs of 5 minutes, fresh seeds, report in target/faults-report.txt
#   scripts/faults.sh --seed 29 --minutes 1   replays one seed
# Needs root (it makes network namespaces). Other flags: --run-minutes M, --nodes N, --report FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p canhazdb --bins
cargo build --release -p canhazdb-tests --bin canhazdb-faults
CANHAZDB_BIN="$PWD/target/release/canhazdb" exec target/release/canhazdb-faults "$@"
