#!/usr/bin/env bash
# `make bench-instr`: instructions per MiB of swiftdup's backup, incremental and restore,
# counted by valgrind's callgrind on small fixed data sets. Wall time on a shared machine
# moves by tens of percent from run to run; instruction counts move by well under one, so
# a change's effect on the work done shows here even when `make bench` cannot tell.
#
# Data (tests/tools/bench.py, deterministic): (a) mixed (text-like logs, incompressible
# blobs, small files) and (c) one incompressible file, each at two sizes (a: 1% and 3% of
# `make bench`'s, ~10 and ~30 MiB; c: 8 and 24 MiB). Work on each, to file:// with a
# passphrase and --concurrency 1 (one thread, so scheduling does not move the count): full
# backup, incremental after bench.py's ~1% change, full restore (checked against the
# source with diff -r). Two sizes split each count into what a MiB costs (the slope) and
# what a run costs whatever its size (the intercept: mostly the passphrase's S2K, about a
# billion instructions per derivation under valgrind, which has no SHA extensions).
#
# Knobs: BENCH_INSTR_OUT=$TARGET/bench (instr.md, instr.tsv), BENCH_KEEP=1 keeps the scratch.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TGT_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${BENCH_BIN:-$TGT_DIR/release/swiftdup}"
OUT="${BENCH_INSTR_OUT:-$TGT_DIR/bench}"
WORK="$OUT/instr-work"
say() { printf '\033[1mbench-instr:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v valgrind >/dev/null || die "valgrind is not installed (Debian: apt-get install valgrind)"
[ -x "$BIN" ] || die "no swiftdup binary at $BIN (run 'make bench-instr')"
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
[ "${BENCH_KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT

export PASSPHRASE="bench-instr"
export SWIFTDUP_LOG_FORMAT=json
TSV="$OUT/instr.tsv"
printf 'run\twork\tmib\tinstructions\n' > "$TSV"

# count RUN WORK MIB ARGS...: run swiftdup under callgrind; append the total to the TSV.
count() {
  local run=$1 work=$2 mib=$3; shift 3
  local cg="$WORK/callgrind.$run.$work"
  valgrind --tool=callgrind --callgrind-out-file="$cg" \
    "$BIN" "$@" --concurrency 1 --archive-dir "$WORK/cache-$run" \
    > "$WORK/$run.$work.out" 2> "$WORK/$run.$work.log" \
    || { tail -20 "$WORK/$run.$work.log" >&2; die "$run $work failed"; }
  local ir
  ir=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$cg")
  [ -n "$ir" ] || die "no instruction count in $cg"
  printf '%s\t%s\t%s\t%s\n' "$run" "$work" "$mib" "$ir" >> "$TSV"
  say "$run $work: $ir instructions"
}

mib_of() { du -sb --apparent-size "$1" | awk '{printf "%.2f", $1 / 1048576}'; }

for spec in a:0.01 a:0.03 c:0.002 c:0.006; do
  set=${spec%%:*} scale=${spec#*:}
  run="$set@$scale"
  src="$WORK/src-$run" url="file://$WORK/target-$run"
  python3 tests/tools/bench.py gen "$set" "$src" "$scale"
  mib=$(mib_of "$src")
  count "$run" full "$mib" full "$src" "$url" --current-time 1700000000
  python3 tests/tools/bench.py mutate "$set" "$src" "$scale" > /dev/null
  count "$run" incremental "$mib" incremental "$src" "$url" --current-time 1700000100
  count "$run" restore "$mib" restore "$url" "$WORK/restored-$run"
  diff -r "$src" "$WORK/restored-$run" > /dev/null || die "the restore of ($run) differs from its source"
done

python3 - "$TSV" > "$OUT/instr.md" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
runs = {}
for run, work, mib, ir in rows:
    runs.setdefault((run.split("@")[0], work), []).append((float(mib), int(ir)))
print("| set | work | MiB | instructions | per MiB (slope) | per run (intercept) |")
print("|---|---|---|---|---:|---:|")
for (s, work), pts in runs.items():
    (m0, i0), (m1, i1) = sorted(pts)
    slope = (i1 - i0) / (m1 - m0)
    fixed = i0 - slope * m0
    print(f"| ({s}) | {work} | {m0:.1f}, {m1:.1f} | {i0 / 1e9:.2f} G, {i1 / 1e9:.2f} G"
          f" | {slope / 1e6:.1f} M | {fixed / 1e9:.2f} G |")
EOF
cat "$OUT/instr.md"
say "written: $OUT/instr.md, $TSV"
