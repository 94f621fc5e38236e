#!/usr/bin/env bash
# Install rustic (restic's repository format, in Rust) for `make bench`: rustic-rs 0.11.4,
# built by cargo without its default features (about 6 minutes on an idle 2-core machine)
# into ~/.cargo/bin, once. Idempotent: does nothing when `rustic --version` (on PATH or in
# ~/.cargo/bin) already says 0.11.4. Runs under a lock, so two callers build it once.
set -euo pipefail

VERSION=0.11.4
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
mkdir -p "$CARGO_BIN"
exec 9>"$CARGO_BIN/.swiftdup-rustic.lock"
flock 9

for r in "$(command -v rustic || true)" "$CARGO_BIN/rustic"; do
  if [ -n "$r" ] && [ -x "$r" ] && "$r" --version 2>/dev/null | grep -q "rustic v\?$VERSION\b"; then
    echo "install-rustic.sh: $("$r" --version) at $r"
    exit 0
  fi
done

echo "install-rustic.sh: building rustic-rs $VERSION with cargo (takes a while)"
cargo install "rustic-rs@$VERSION" --locked --no-default-features
"$CARGO_BIN/rustic" --version
