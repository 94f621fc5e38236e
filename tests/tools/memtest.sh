#!/usr/bin/env bash
# Peak memory of swiftdup on one big file: full backup, incremental after edits inside the
# file and an append, and restore of the latest state, each measured with GNU time
# (maximum resident set size). Usage: memtest.sh [SIZE_MIB] (default 4096).
set -euo pipefail
BIN=${BIN:-target/release/swiftdup}
MIB=${1:-4096}
D=$(mktemp -d "${TMPDIR:-/tmp}/swiftdup-mem.XXXXXX")
trap 'rm -rf "$D"' EXIT
export PASSPHRASE=memtest
MODE=${MODE:-}
mkdir -p "$D/src"
echo "generating ${MIB} MiB of incompressible data..."
head -c "$((MIB * 1024 * 1024))" /dev/urandom > "$D/src/big.bin"
touch -d @1700000000 "$D/src/big.bin"

measure() {
  local label=$1; shift
  /usr/bin/time -f "%M %e" -o "$D/time" "$BIN" "$@" $MODE --archive-dir "$D/cache" --log-format json 2> "$D/log" || { cat "$D/log"; exit 1; }
  read -r kb secs < "$D/time"
  printf '| %-34s | %8.1f MiB | %7.1f s |\n' "$label" "$(echo "$kb/1024" | bc -l)" "$secs"
}

echo "| run (${MIB} MiB file, symmetric OpenPGP) | peak RSS | wall |"
echo "|---|---|---|"
measure "full backup" full "$D/src" "file://$D/target" --current-time 1700000000
# Edits inside the file (1 MiB at three places) and an append.
for off in 100 $((MIB / 2)) $((MIB - 10)); do
  dd if=/dev/urandom of="$D/src/big.bin" bs=1M count=1 seek="$off" conv=notrunc status=none
done
head -c 5000000 /dev/urandom >> "$D/src/big.bin"
touch -d @1700000100 "$D/src/big.bin"
measure "incremental (3 edits + append)" incremental "$D/src" "file://$D/target" --current-time 1700000200
rm -rf "$D/cache"
measure "restore latest (no cache)" restore "file://$D/target" "$D/out"
cmp "$D/src/big.bin" "$D/out/big.bin" && echo "restored file is identical"
