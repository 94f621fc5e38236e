#!/usr/bin/env bash
# `make demo`: start a real Swift on 127.0.0.1 (container keys in its proxy pipeline),
# back up a sample tree to swiftkeys:// with the full key, change it, run an incremental,
# restore with the read key into a fresh directory (no cache: a new pod), and compare.
# The JSON-lines logs of every run are shown as they happen.
set -euo pipefail
BIN=${BIN:-target/release/swiftdup}
D=$(mktemp -d "${TMPDIR:-/tmp}/swiftdup-demo.XXXXXX")
SW="$D/swift"
cleanup() { bash tests/swift/stop.sh "$SW" >/dev/null 2>&1 || true; rm -rf "$D"; }
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting a local Swift (tests/swift/start.sh)"
bash tests/swift/install.sh
bash tests/swift/start.sh "$SW"
# shellcheck disable=SC1091
source "$SW/env"
export SWIFT_STORAGE_URL PASSPHRASE=demo-passphrase SWIFTDUP_HOSTNAME=demo
URL="swiftkeys://$SWIFTDUP_TEST_CONTAINER/demo-$$"

mkdir -p "$D/src/docs" "$D/src/data"
for i in $(seq 1 50); do echo "document $i" > "$D/src/docs/doc$i.txt"; done
head -c 3000000 /dev/urandom > "$D/src/data/blob.bin"
ln -s docs/doc1.txt "$D/src/latest"

step "full backup of $D/src to $URL (full key)"
SWIFT_CONTAINER_FULL_TOKEN=$SWIFTDUP_TEST_FULL_KEY "$BIN" backup "$D/src" "$URL" --archive-dir "$D/cache" --log-format json
sleep 1
echo "changed" >> "$D/src/docs/doc7.txt"
rm "$D/src/docs/doc9.txt"
echo "new" > "$D/src/docs/new.txt"
step "incremental backup"
SWIFT_CONTAINER_FULL_TOKEN=$SWIFTDUP_TEST_FULL_KEY "$BIN" backup "$D/src" "$URL" --archive-dir "$D/cache" --log-format json
step "restore with the read key into $D/restored (no cache, as a fresh pod)"
SWIFT_CONTAINER_READ_TOKEN=$SWIFTDUP_TEST_READ_KEY "$BIN" restore "$URL" "$D/restored" --archive-dir "$D/cache2" --log-format json
step "compare"
diff -r --no-dereference "$D/src" "$D/restored" && echo "restored tree is identical to the source"
