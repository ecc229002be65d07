#!/usr/bin/env bash
# Runs every test of the project, installing what is missing first.
# This is the README's test command, and .ci/run calls it as it is.
#
#   1. formatting and lints (cargo fmt --check, cargo clippy -D warnings)
#   2. the Rust workspace: unit, property and integration tests (the
#      integration tests start real `canhazdb` processes on loopback), then
#      the process tests once more with CANHAZDB_TEST_TLS=1 (mutual TLS)
#   3. the wasm client: build for wasm32, Node.js and headless Chromium tests
#   4. the Node.js package: build the addon, node --test, npm pack + install
set -euo pipefail
cd "$(dirname "$0")/.."

# No incremental compilation: a test run builds once, and the incremental
# caches would take gigabytes of disk for nothing.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

step() { printf '\n==> %s\n' "$*"; }

ensure_rust_components() {
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
}

step "formatting and lints"
ensure_rust_components
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Debian packages (Chromium renders the HTTP console in the Rust tests too)"
scripts/wasm.sh deps

step "Rust workspace tests"
# The integration tests in tests/ start the real binaries: build them first.
cargo build --locked --bins -p canhazdb
cargo test --locked

step "the process tests again, every node and connection over mutual TLS"
CANHAZDB_TEST_TLS=1 cargo test --locked -p canhazdb-tests

step "wasm client (browser and Node.js)"
scripts/wasm.sh test

step "Node.js package"
node-bindings/test.sh

step "all tests passed"
