#!/usr/bin/env bash
# `make demo`: back up a sample tree, change it, run an incremental, restore, compare.
# The JSON-lines logs of every run are shown as they happen.
set -euo pipefail
BIN=${BIN:-target/release/swiftdup}
D=$(mktemp -d /tmp/swiftdup-demo.XXXXXX)
trap 'rm -rf "$D"' EXIT
export PASSPHRASE=demo-passphrase
TARGET="file://$D/target"
mkdir -p "$D/src/docs" "$D/src/data"
for i in $(seq 1 50); do echo "document $i $(date +%s)" > "$D/src/docs/doc$i.txt"; done
head -c 3000000 /dev/urandom > "$D/src/data/blob.bin"
ln -s docs/doc1.txt "$D/src/latest"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "full backup of $D/src to $TARGET"
"$BIN" backup "$D/src" "$TARGET" --archive-dir "$D/cache" --log-format json
sleep 1
echo "changed" >> "$D/src/docs/doc7.txt"
rm "$D/src/docs/doc9.txt"
echo "new" > "$D/src/docs/new.txt"
step "incremental backup"
"$BIN" backup "$D/src" "$TARGET" --archive-dir "$D/cache" --log-format json
step "remote files"
ls -l "$D/target"
step "restore into $D/restored (no cache: a fresh pod)"
"$BIN" restore "$TARGET" "$D/restored" --archive-dir "$D/cache2" --log-format json
step "compare"
diff -r --no-dereference "$D/src" "$D/restored" && echo "restored tree is identical"
