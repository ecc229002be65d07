#!/usr/bin/env bash
# The browser client: builds wasm/pkg and runs its tests.
#
#   scripts/wasm.sh deps    install the Debian packages it needs (also Chromium)
#   scripts/wasm.sh build   build the ES-module package in wasm/pkg
#   scripts/wasm.sh console build it and copy the client the HTTP console
#                           embeds into native/console/wasm (committed, so
#                           the server builds without the wasm toolchain),
#                           with a stamp of the sources it was built from
#   scripts/wasm.sh test    check the console's stamp, build the package,
#                           check canhazdb-core alone for wasm32,
#                           build the server, then run the Node.js tests and
#                           the headless Chromium tests (node --test)
#   scripts/wasm.sh clippy  clippy on the wasm crate
#
# Installs what is missing (and only that): Debian's Rust with std sources
# (rustc-web, cargo-web, rust-web-src: rustup has no wasm32 target here),
# binaryen (wasm-opt), chromium, wasm-bindgen-cli (the version Cargo.lock
# pins) and the tests' npm packages (npm ci). Runs as root from a fresh clone.
#
# Environment:
#   CANHAZDB_WASM_TARGET_DIR  cargo target dir of the wasm32 build [target-wasm]
#   CANHAZDB_BIN              the server binary to test against [built here]
#   CARGO_TARGET_DIR          where the server is built [target]
#   CHROMIUM_PATH             [/usr/bin/chromium]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=${1:-test}
WASM_TARGET_DIR=${CANHAZDB_WASM_TARGET_DIR:-$ROOT/target-wasm}
PKG=$ROOT/wasm/pkg
TESTS=$ROOT/wasm/test
APT_PACKAGES=(rustc-web cargo-web rust-web-src binaryen chromium)
# wasm-bindgen's own output is named *_bindings; wasm/js/canhazdb_wasm.js
# (the entry point) loads it.
BINDINGS_NAME=canhazdb_wasm_bindings
SIZE_LIMIT=$((400 * 1024))
CONSOLE_WASM=$ROOT/native/console/wasm
CONSOLE_STAMP=$CONSOLE_WASM/sources.sha256
# What the console's wasm client is built from.
CONSOLE_SOURCES=(core/src core/Cargo.toml wasm/src wasm/js wasm/Cargo.toml Cargo.lock)

step() { printf '\n==> wasm: %s\n' "$*"; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

ensure_apt_packages() {
    local missing=()
    for package in "${APT_PACKAGES[@]}"; do
        installed "$package" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        step "installing ${missing[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    fi
}

# The wasm32 build uses Debian's rustc (it ships std sources for build-std)
# with the linker from the rustup toolchain, and its own target dir, with
# size-first release settings that leave the workspace's profile alone.
wasm_env() {
    local sysroot
    sysroot=$(rustc --print sysroot)
    export RUSTC=/usr/bin/rustc
    export RUSTC_BOOTSTRAP=1
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$sysroot/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
    export CARGO_TARGET_DIR=$WASM_TARGET_DIR
    export CARGO_PROFILE_RELEASE_OPT_LEVEL=z
    export CARGO_PROFILE_RELEASE_LTO=fat
    export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
    export CARGO_PROFILE_RELEASE_DEBUG=0
    export CARGO_PROFILE_RELEASE_PANIC=abort
    export CARGO_PROFILE_RELEASE_STRIP=debuginfo
    # Debian's binaryen (108) mistranslates wasm-bindgen's externref table:
    # without reference types (and multivalue) wasm-bindgen keeps its
    # JavaScript object heap in JS, which every wasm-opt handles.
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=-reference-types,-multivalue"
}

wasm_cargo() {
    (wasm_env && /usr/bin/cargo "$@" --release --locked --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort)
}

lock_version() {
    awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

ensure_wasm_bindgen() {
    local want have=""
    want=$(lock_version wasm-bindgen)
    [[ -n $want ]] || { echo "wasm-bindgen is not in Cargo.lock" >&2; exit 1; }
    if command -v wasm-bindgen >/dev/null; then
        have=$(wasm-bindgen --version | awk '{print $2}')
    fi
    if [[ $have != "$want" ]]; then
        step "installing wasm-bindgen-cli $want${have:+ (found $have)}"
        # Not --locked: its lockfile may pin a crate version the registry no longer serves.
        cargo install wasm-bindgen-cli --version "$want" --force
    fi
}

build_package() {
    ensure_apt_packages
    step "building canhazdb-wasm for wasm32 (build-std; the first build takes minutes)"
    wasm_cargo build -p canhazdb-wasm
    local wasm=$WASM_TARGET_DIR/wasm32-unknown-unknown/release/canhazdb_wasm.wasm
    ensure_wasm_bindgen
    step "wasm-bindgen --target web"
    rm -rf "$PKG"
    mkdir -p "$PKG"
    wasm-bindgen --target web --out-dir "$PKG" --out-name "$BINDINGS_NAME" "$wasm"
    local out=$PKG/${BINDINGS_NAME}_bg.wasm
    local before after
    before=$(stat -c %s "$out")
    if command -v wasm-opt >/dev/null; then
        wasm-opt -Oz --strip-debug --strip-producers "$out" -o "$out.opt"
        mv "$out.opt" "$out"
    else
        echo "wasm-opt not found: the .wasm is not size-optimised further" >&2
    fi
    after=$(stat -c %s "$out")
    cp wasm/js/canhazdb_wasm.js wasm/js/canhazdb_wasm.d.ts wasm/js/package.json "$PKG/"
    echo "wasm size: $before bytes after wasm-bindgen, $after bytes after wasm-opt -Oz ($((after / 1024)) KiB; limit $((SIZE_LIMIT / 1024)) KiB)"
    if ((after > SIZE_LIMIT)); then
        echo "error: $out is larger than $SIZE_LIMIT bytes" >&2
        exit 1
    fi
}

# One sha256 over the console client's sources: each file's own hash, in a
# sorted list of paths relative to the repository, hashed again.
sources_digest() {
    find "${CONSOLE_SOURCES[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

build_console() {
    build_package
    step "copying the wasm client into native/console/wasm"
    rm -rf "$CONSOLE_WASM"
    mkdir -p "$CONSOLE_WASM"
    cp "$PKG/canhazdb_wasm.js" "$PKG/$BINDINGS_NAME.js" "$PKG/${BINDINGS_NAME}_bg.wasm" "$CONSOLE_WASM/"
    echo "$(sources_digest)  ${CONSOLE_SOURCES[*]}" >"$CONSOLE_STAMP"
    echo "stamp: $(cat "$CONSOLE_STAMP")"
}

# The stamp, not the bytes, is compared: builds of the same sources differ
# between checkouts (panic messages carry source paths).
check_console_stamp() {
    step "checking that the console's wasm client is built from these sources"
    local want
    want=$(sources_digest)
    if [[ ! -f $CONSOLE_STAMP ]] || [[ $(cut -d' ' -f1 "$CONSOLE_STAMP") != "$want" ]]; then
        echo "error: the console's wasm client is stale: run scripts/wasm.sh console" >&2
        exit 1
    fi
}

check_core() {
    step "checking that canhazdb-core alone builds for wasm32 (no default features)"
    wasm_cargo build -p canhazdb-core --no-default-features
}

build_server() {
    step "building the canhazdb server"
    cargo build --locked -p canhazdb --bin canhazdb
    export CANHAZDB_BIN=${CANHAZDB_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/canhazdb}
    [[ -x $CANHAZDB_BIN ]] || { echo "no server binary at $CANHAZDB_BIN" >&2; exit 1; }
}

install_test_packages() {
    command -v node >/dev/null && command -v npm >/dev/null || {
        step "installing nodejs and npm"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
    }
    # npm ci only when the lockfile changed since the last install.
    if ! cmp -s "$TESTS/package-lock.json" "$TESTS/node_modules/.canhazdb-lock"; then
        step "npm ci (playwright-core, ws, typescript) in wasm/test"
        (cd "$TESTS" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
        cp "$TESTS/package-lock.json" "$TESTS/node_modules/.canhazdb-lock"
    fi
}

reap_servers() {
    local file
    for file in "$CANHAZDB_TEST_PID_DIR"/*; do
        [[ -e $file ]] && kill -9 "$(basename "$file")" 2>/dev/null || true
    done
    rm -rf "$CANHAZDB_TEST_PID_DIR"
}

run_tests() {
    local flags=()
    # Node.js 20 has WebSocket behind a flag; newer ones have it anyway, and
    # without either the tests use the `ws` package.
    if node --experimental-websocket -e 0 2>/dev/null; then
        flags+=(--experimental-websocket)
    fi
    rm -rf "$TESTS/artifacts"
    # The tests note the servers they start here; any left behind by a run
    # that died (or timed out) are killed below.
    CANHAZDB_TEST_PID_DIR=$(mktemp -d)
    export CANHAZDB_TEST_PID_DIR
    trap reap_servers EXIT
    step "Node.js tests and headless Chromium tests (node --test)"
    (cd "$TESTS" && timeout --kill-after=10 600 node "${flags[@]}" --test --test-concurrency=1 \
        node/transport.test.mjs node/client.test.mjs node/types.test.mjs browser/browser.test.mjs \
        browser/console.test.mjs)
    if [[ -f $TESTS/artifacts/example.png ]]; then
        echo "screenshot of the example page: wasm/test/artifacts/example.png"
    fi
    if compgen -G "$TESTS/artifacts/console-*.png" >/dev/null; then
        echo "screenshots of the console's views: wasm/test/artifacts/console-*.png"
    fi
}

clippy() {
    # Debian's Rust has no clippy, and rustup's clippy cannot build std for
    # wasm32 here (no rust-src component for it). The crate has no
    # target-specific code and wasm-bindgen compiles for the host, so clippy
    # checks it there (as `cargo clippy --workspace` does).
    step "clippy on canhazdb-wasm"
    cargo clippy --locked -p canhazdb-wasm --all-targets -- -D warnings
}

case $MODE in
    deps)
        ensure_apt_packages
        ;;
    build)
        build_package
        ;;
    console)
        build_console
        ;;
    test)
        check_console_stamp
        build_package
        check_core
        build_server
        install_test_packages
        run_tests
        ;;
    clippy)
        clippy
        ;;
    *)
        echo "usage: scripts/wasm.sh [deps|build|console|test|clippy]" >&2
        exit 2
        ;;
esac
