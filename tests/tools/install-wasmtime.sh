#!/usr/bin/env bash
# Install the WebAssembly runtime the wasm tests run swiftdup under: wasmtime-cli 48.0.8,
# built by cargo with only what `wasmtime run -S http` needs (12 minutes on an idle 2-core machine, 45 on a busy one).
# Idempotent: does nothing when `wasmtime --version` (on PATH or in ~/.cargo/bin) already
# says 48.0.8. Also adds the wasm32-wasip2 rustup target when it is missing. Runs under a
# lock: `make test` starts it in the background, and the call before the wasm tests waits
# for that one instead of starting a second build.
set -euo pipefail

VERSION=48.0.8
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
mkdir -p "$CARGO_BIN"
exec 9>"$CARGO_BIN/.swiftdup-wasmtime.lock"
flock 9

rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

for w in "$(command -v wasmtime || true)" "$CARGO_BIN/wasmtime"; do
  if [ -n "$w" ] && [ -x "$w" ] && "$w" --version 2>/dev/null | grep -q "^wasmtime $VERSION\b"; then
    echo "install-wasmtime.sh: $("$w" --version) at $w"
    exit 0
  fi
done

echo "install-wasmtime.sh: building wasmtime-cli $VERSION with cargo (takes a while)"
cargo install "wasmtime-cli@$VERSION" --locked --no-default-features \
  --features run,cranelift,component-model,wasi-http,parallel-compilation
"$CARGO_BIN/wasmtime" --version
