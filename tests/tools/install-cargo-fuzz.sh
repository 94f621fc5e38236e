#!/usr/bin/env bash
# Install what the fuzz targets build with (fuzz/README.md): cargo-fuzz 0.13.2 from
# crates.io (about 2 minutes of cargo build) and a C++ compiler for libfuzzer-sys, which
# compiles libFuzzer's sources. Idempotent: does nothing when `cargo fuzz --version` already
# says 0.13.2. Only the stable toolchain is needed (`cargo fuzz build --sanitizer none`).
set -euo pipefail

VERSION=0.13.2

if ! command -v c++ >/dev/null 2>&1; then
  echo "install-cargo-fuzz.sh: installing g++ (libFuzzer is C++)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi

if cargo fuzz --version 2>/dev/null | grep -q "^cargo-fuzz $VERSION\b"; then
  exit 0
fi
echo "install-cargo-fuzz.sh: building cargo-fuzz $VERSION with cargo"
cargo install "cargo-fuzz@$VERSION" --locked
cargo fuzz --version
