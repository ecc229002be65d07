#!/usr/bin/env bash
# Tests of the Node.js package `canhazdb` (node-bindings/), as
# scripts/test.sh runs them:
#   1. npm dependencies (npm ci) when missing or older than package-lock.json
#   2. the release addon and index.d.ts (scripts/build.mjs: napi build;
#      cargo's target directory is $CARGO_TARGET_DIR or ../target-node)
#   3. node --test over test/*.test.mjs, which includes the packaging test
#      (npm pack from a fresh copy of the repository, installed and run in
#      an empty project)
# Needs Node.js >= 20.17 with npm, and the Rust toolchain. Servers bind
# 127.0.0.1 only; data directories are temporary and removed.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "==> npm ci (node-bindings)"
    npm ci --no-audit --no-fund
fi

echo "==> building the addon (release)"
node scripts/build.mjs

echo "==> node --test"
exec node --test --test-reporter=spec test/*.test.mjs
