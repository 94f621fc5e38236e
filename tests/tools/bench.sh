#!/usr/bin/env bash
# `make bench`: time swiftdup, stock duplicity 0.8.22, restic (Debian's) and rustic on the
# same work, on the same machine, in one run, to file:// and to a real local Swift.
#
# Data sets (deterministic, tests/tools/bench.py): (a) ~1 GiB mixed (8 text-like log files,
# 8 incompressible files, 10,000 small files in nested directories), (b) 100,000 small files,
# (c) one 4 GiB file. Work on each: full backup (symmetric encryption), no-change
# incremental, incremental after a ~1% change, full restore of the latest time (checked
# against the source with diff -r). Measured with GNU time: wall, CPU (user+sys, children
# included), peak RSS of the largest process; bytes added to the target. Writes a Markdown
# report with the ratios and the performance targets (met / missed by how much).
#
# Knobs (environment):
#   BENCH_SCALE=1          scale every data set (0.02: a quick check in a minute or two)
#   BENCH_SETS=a,b,c       data sets to run
#   BENCH_TARGETS=file,swift
#   BENCH_TOOLS=swiftdup,duplicity,restic,rustic
#   BENCH_WASI=auto        auto: time the wasm build on (a) to file:// when wasmtime is there; 0: skip
#   BENCH_DIR=$TARGET/bench/work   scratch (data, backups, restores, Swift); removed at the end
#   BENCH_KEEP=0           1: keep BENCH_DIR
#   BENCH_DROP_CACHES=1    0: do not drop the page cache before each run
#   BENCH_OUT=$TARGET/bench        results.md, results.tsv, logs/
# ($TARGET is CARGO_TARGET_DIR or ./target; the swiftdup binary is $TARGET/release/swiftdup.)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY=python3
HELPER="$ROOT/tests/tools/bench.py"
TGT_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${BENCH_BIN:-$TGT_DIR/release/swiftdup}"
SCALE="${BENCH_SCALE:-1}"
SETS="${BENCH_SETS:-a,b,c}"
TARGETS="${BENCH_TARGETS:-file,swift}"
TOOLS="${BENCH_TOOLS:-swiftdup,duplicity,restic,rustic}"
WASI="${BENCH_WASI:-auto}"
OUT="${BENCH_OUT:-$TGT_DIR/bench}"
WORK="${BENCH_DIR:-$OUT/work}"
KEEP="${BENCH_KEEP:-0}"
PASS="bench-passphrase-$$"
CONTAINER=swiftdup-test   # created with its keys by tests/swift/start.sh
SYS_PATH=/usr/bin:/bin

say() { printf '\033[1mbench:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# --- arguments ----------------------------------------------------------------------------
$PY -c "import sys; x=float(sys.argv[1]); assert 0 < x <= 4" "$SCALE" 2>/dev/null \
  || die "BENCH_SCALE must be a number in (0, 4], got '$SCALE'"
check_list() {  # NAME VALUE ALLOWED...
  local name=$1 value=$2; shift 2
  local x
  for x in ${value//,/ }; do
    [[ " $* " == *" $x "* ]] || die "$name: unknown '$x' (allowed: $*)"
  done
}
check_list BENCH_SETS "$SETS" a b c
check_list BENCH_TARGETS "$TARGETS" file swift
check_list BENCH_TOOLS "$TOOLS" swiftdup duplicity restic rustic
has() { [[ ",$1," == *",$2,"* ]]; }
[ -x "$BIN" ] || die "no swiftdup binary at $BIN (run 'make bench', or 'cargo build --release' first)"

# --- what the peers need (Debian packages), installed when missing -------------------------
apt_install() {
  [ "$(id -u)" -eq 0 ] || { say "not root: cannot apt-get install $*"; return 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
[ -x /usr/bin/time ] || apt_install time || die "GNU time (/usr/bin/time, package 'time') is required"
if has "$TOOLS" duplicity; then
  bash tests/tools/install-deps.sh || true
  command -v duplicity >/dev/null && command -v gpg >/dev/null \
    || { say "duplicity/gpg missing and not installable: duplicity left out"; TOOLS=${TOOLS//duplicity/}; }
fi
if has "$TOOLS" restic; then
  command -v restic >/dev/null || { say "installing restic"; apt_install restic || true; }
  command -v restic >/dev/null \
    || { say "restic missing and not installable: restic left out"; TOOLS=${TOOLS//restic/}; }
fi
RUSTIC=""
if has "$TOOLS" rustic; then
  # Built once with cargo into ~/.cargo/bin (tests/tools/install-rustic.sh), as wasmtime is.
  bash tests/tools/install-rustic.sh >&2 || true
  for r in "$(command -v rustic || true)" "${CARGO_HOME:-$HOME/.cargo}/bin/rustic"; do
    if [ -n "$r" ] && [ -x "$r" ]; then RUSTIC=$r; break; fi
  done
  [ -n "$RUSTIC" ] || { say "rustic missing and not buildable: rustic left out"; TOOLS=${TOOLS//rustic/}; }
fi
TOOLS=$(echo "$TOOLS" | tr -s ',' | sed 's/^,//; s/,$//')
if has "$TARGETS" swift; then
  bash tests/swift/install.sh >&2 \
    || { say "Swift cannot be installed: swift target left out"; TARGETS=${TARGETS//swift/}; }
  TARGETS=$(echo "$TARGETS" | tr -s ',' | sed 's/^,//; s/,$//')
fi
[ -n "$TARGETS" ] || die "no target left to run"

# --- WASI: the wasm32-wasip2 build under wasmtime, full backup of (a) to file:// -----------
WASMTIME=""
WASM="$TGT_DIR/wasm32-wasip2/release/swiftdup.wasm"
WASI_SKIP=""
if [ "$WASI" = 0 ]; then
  WASI_SKIP="BENCH_WASI=0"
elif ! has "$SETS" a || ! has "$TARGETS" file || ! has "$TOOLS" swiftdup; then
  WASI_SKIP="needs set a, target file and swiftdup"
else
  for w in "$(command -v wasmtime || true)" "${CARGO_HOME:-$HOME/.cargo}/bin/wasmtime"; do
    if [ -n "$w" ] && [ -x "$w" ]; then WASMTIME=$w; break; fi
  done
  if [ -z "$WASMTIME" ]; then
    WASI_SKIP="no wasmtime on PATH or in ~/.cargo/bin (bash tests/tools/install-wasmtime.sh)"
  else
    say "building the wasm32-wasip2 component (cargo build --release --target wasm32-wasip2)"
    if ! { rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2; } \
       || ! cargo build --release --target wasm32-wasip2 >&2; then
      WASI_SKIP="the wasm32-wasip2 build failed"; WASMTIME=""
    fi
  fi
fi
[ -z "$WASI_SKIP" ] || say "WASI comparison skipped: $WASI_SKIP"

# --- scratch, results, cleanup -------------------------------------------------------------
mkdir -p "$OUT/logs" "$WORK"
WORK="$(cd "$WORK" && pwd)"
OUT="$(cd "$OUT" && pwd)"
rm -f "$OUT"/logs/*.log
TSV="$OUT/results.tsv"
META="$OUT/meta.json"
TIMEF="$OUT/.time"
printf 'set\ttarget\twork\ttool\twall_s\tuser_s\tsys_s\tmaxrss_kib\tbytes\tstatus\n' > "$TSV"
SWIFT_DIR=""
cleanup() {
  local status=$?
  if [ -n "$SWIFT_DIR" ]; then bash tests/swift/stop.sh "$SWIFT_DIR" || true; fi
  if [ "$KEEP" != 1 ]; then rm -rf "$WORK"; else say "scratch kept in $WORK"; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A SETINFO=()
WASI_LINE=""
WASI_RATIO=""
WASI_RATIO_EXCL=""
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# Every run starts from the same memory: the page cache is dropped before each (where the
# bench may: root), so each tool reads its source or repository from disk and writes into
# free memory. Without it, the order of the tools decides who finds its repository cached,
# and who writes into pages the previous tool's deleted restore just freed (on a VM, pages
# touched for the first time cost several times more to write). Only file contents are
# dropped (1), not the cached inodes and directory entries (3): the order of the tools did
# not decide those, and a host that backs up every day keeps them.
DROP_CACHES="${BENCH_DROP_CACHES:-1}"
if [ "$DROP_CACHES" = 1 ] && ! { sync && echo 1 > /proc/sys/vm/drop_caches; } 2>/dev/null; then
  DROP_CACHES=0
  echo "bench: cannot drop the page cache (not root?): runs start from whatever it holds" >&2
fi

# --- one measured run -----------------------------------------------------------------------
# target_bytes SET TARGET TOOL: bytes stored in that tool's target now (objects only).
target_bytes() {
  local st=$1 tgt=$2 tool=$3
  if [ "$tgt" = file ]; then
    local d="$WORK/$st/file/$tool"
    if [ -d "$d" ]; then find "$d" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f\n", s}'; else echo 0; fi
  else
    $PY "$HELPER" swift-bytes "$SWIFT_DIR/env" "bench-$st-$tool"
  fi
}

# measure SET TARGET WORK TOOL CMD...: run CMD under GNU time, append a row to the TSV.
measure() {
  local st=$1 tgt=$2 work=$3 tool=$4; shift 4
  local log="$OUT/logs/$st-$tgt-$work-$tool.log" status=ok before after
  before=$(target_bytes "$st" "$tgt" "$tool")
  sync      # no tool pays for the writeback of the previous one's output
  if [ "$DROP_CACHES" = 1 ]; then echo 1 > /proc/sys/vm/drop_caches; fi
  sleep 1   # duplicity names sets by whole seconds: never two runs in one second
  printf '%-9s %-5s %-7s %-9s ' "($st)" "$tgt" "$work" "$tool" >&2
  if ! /usr/bin/time -f '%e %U %S %M' -o "$TIMEF" "$@" > "$log" 2>&1; then
    status=failed
  fi
  after=$(target_bytes "$st" "$tgt" "$tool")
  local wall user sys rss
  read -r wall user sys rss < <(tail -n 1 "$TIMEF")
  if [ "$status" = ok ] && [ "$work" = restore ]; then
    if diff -r --no-dereference -q "$WORK/$st/src" "$WORK/$st/restore-$tgt-$tool" > "$log.diff" 2>&1; then
      rm -f "$log.diff"
    else
      status=differs
    fi
    # Many-file restores stay until the set ends: deleting a tree of thousands of files
    # right before the next tool's restore makes that restore pay for it (ext4 skips
    # recently freed inodes, scanning for free ones on every create: (b)'s second restore
    # took 10x longer). One-file restores (set c) go at once, for the disk space.
    [ "$st" = c ] && rm -rf "$WORK/$st/restore-$tgt-$tool"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$st" "$tgt" "$work" "$tool" \
    "$wall" "$user" "$sys" "$rss" "$((after - before))" "$status" >> "$TSV"
  printf '%8.2f s wall %8.2f s CPU %7.1f MiB %12s B  %s\n' "$wall" \
    "$(echo "$user + $sys" | bc)" "$(echo "scale=1; $rss / 1024" | bc)" "$((after - before))" "$status" >&2
  if [ "$status" = failed ]; then say "$tool failed; last lines of $log:"; tail -n 15 "$log" >&2; fi
  if [ "$status" = differs ]; then say "RESTORE DIFFERS from the source ($log.diff):"; head -n 10 "$log.diff" >&2; fi
  return 0
}

# run_tool SET TARGET WORK TOOL: the tool's command for that work, each in its own clean env.
run_tool() {
  local st=$1 tgt=$2 work=$3 tool=$4
  local S="$WORK/$st" src="$WORK/$st/src" restore="$WORK/$st/restore-$tgt-$tool"
  local H="$S/home/$tgt-$tool"
  mkdir -p "$H/tmp"
  local base=(env -i "PATH=$SYS_PATH" "HOME=$H" "TMPDIR=$H/tmp" TZ=UTC LANG=C.UTF-8)
  case "$tool" in
    swiftdup)
      local url="file://$S/file/swiftdup" cmd=()
      if [ "$tgt" = swift ]; then
        url="swiftkeys://$CONTAINER/bench-$st-swiftdup"
        base+=("SWIFT_STORAGE_URL=$SWIFT_STORAGE_URL" "SWIFT_CONTAINER_FULL_TOKEN=$SWIFTDUP_TEST_FULL_KEY")
      fi
      local opts=(--archive-dir "$H/cache" --name bench --log-format json --progress-interval 0)
      case "$work" in
        full) cmd=(full "$src" "$url") ;;
        noop|inc1) cmd=(incremental "$src" "$url") ;;
        restore) cmd=(restore "$url" "$restore") ;;
      esac
      measure "$st" "$tgt" "$work" "$tool" "${base[@]}" "PASSPHRASE=$PASS" "$BIN" "${cmd[@]}" "${opts[@]}"
      ;;
    duplicity)
      local url="file://$S/file/duplicity" cmd=()
      mkdir -p "$H/gnupg" && chmod 700 "$H/gnupg"
      base+=("GNUPGHOME=$H/gnupg" "XDG_CACHE_HOME=$H/cache" "PASSPHRASE=$PASS")
      if [ "$tgt" = swift ]; then
        url="swift://$CONTAINER/bench-$st-duplicity"
        # duplicity 0.8.22 also talks to Swift through swiftclient's SwiftService (the size
        # check after each upload), which does not take the SWIFT_* v1 credentials: given
        # only those it tries Keystone v2, fails, and duplicity retries that check 5 times
        # with --backend-retry-delay 30 s, 120 s per backup. SwiftService reads v1
        # credentials from ST_AUTH/ST_USER/ST_KEY: set them too, as a user would.
        base+=("SWIFT_AUTHURL=$SWIFT_AUTHURL" "SWIFT_USERNAME=$SWIFT_USERNAME"
               "SWIFT_PASSWORD=$SWIFT_PASSWORD" "SWIFT_AUTHVERSION=$SWIFT_AUTHVERSION"
               "ST_AUTH=$SWIFT_AUTHURL" "ST_USER=$SWIFT_USERNAME" "ST_KEY=$SWIFT_PASSWORD")
      fi
      case "$work" in
        full) cmd=(full "$src" "$url") ;;
        noop|inc1) cmd=(incremental "$src" "$url") ;;
        restore) cmd=(restore "$url" "$restore") ;;
      esac
      measure "$st" "$tgt" "$work" "$tool" "${base[@]}" duplicity "${cmd[@]}"
      ;;
    restic)
      local repo="$S/file/restic"
      base+=("RESTIC_PASSWORD=$PASS" "RESTIC_CACHE_DIR=$H/cache")
      if [ "$tgt" = swift ]; then
        repo="swift:$CONTAINER:/bench-$st-restic"
        base+=("ST_AUTH=$SWIFT_AUTHURL" "ST_USER=$SWIFT_USERNAME" "ST_KEY=$SWIFT_PASSWORD")
      fi
      base+=("RESTIC_REPOSITORY=$repo")
      case "$work" in
        init)  # not measured: restic's repository must exist before the first backup
          "${base[@]}" restic init > "$OUT/logs/$st-$tgt-init-restic.log" 2>&1 \
            || { say "restic init failed:"; tail -n 5 "$OUT/logs/$st-$tgt-init-restic.log" >&2; } ;;
        full|noop|inc1)  # every restic snapshot is logically full; the parent speeds it up
          measure "$st" "$tgt" "$work" "$tool" env -i -C "$src" "${base[@]:2}" restic backup . --host bench ;;
        restore)
          measure "$st" "$tgt" "$work" "$tool" "${base[@]}" restic restore latest --target "$restore" ;;
      esac
      ;;
    rustic)
      base+=("RUSTIC_PASSWORD=$PASS" "RUSTIC_CACHE_DIR=$H/cache")
      if [ "$tgt" = swift ]; then
        # rustic reaches Swift through OpenDAL's swift service, which takes a storage URL
        # and a token (no v1 auth of its own): a tempauth token, in the profile rustic reads
        # from $HOME/.config/rustic/rustic.toml.
        mkdir -p "$H/.config/rustic"
        printf '[repository]\nrepository = "opendal:swift"\n[repository.options]\nendpoint = "%s"\ncontainer = "%s"\nroot = "/bench-%s-rustic"\ntoken = "%s"\n' \
          "$SWIFT_STORAGE_URL" "$CONTAINER" "$st" "$(swift_token)" > "$H/.config/rustic/rustic.toml"
      else
        base+=("RUSTIC_REPOSITORY=$S/file/rustic")
      fi
      case "$work" in
        init)  # not measured, as restic's
          "${base[@]}" "$RUSTIC" init > "$OUT/logs/$st-$tgt-init-rustic.log" 2>&1 \
            || { say "rustic init failed:"; tail -n 5 "$OUT/logs/$st-$tgt-init-rustic.log" >&2; } ;;
        full|noop|inc1)
          measure "$st" "$tgt" "$work" "$tool" env -i -C "$src" "${base[@]:2}" "$RUSTIC" backup . --host bench ;;
        restore)
          measure "$st" "$tgt" "$work" "$tool" "${base[@]}" "$RUSTIC" restore latest "$restore" ;;
      esac
      ;;
  esac
}

run_wasi() {  # full backup of the pristine (a) to file:// under wasmtime
  local S="$WORK/a" W="$WORK/a/wasi"
  mkdir -p "$W/tmp"
  # Start-up cost: every `wasmtime run` of a .wasm compiles the component first (this
  # wasmtime has no compilation cache and no `compile` command); a `--version` run is that
  # cost alone.
  say "WASI: timing the start-up alone (wasmtime run swiftdup.wasm --version)"
  local compile=""
  if /usr/bin/time -f '%e' -o "$TIMEF" "$WASMTIME" run -S http "$WASM" --version > /dev/null 2>&1; then
    compile=$(tail -n 1 "$TIMEF")
  fi
  sleep 1
  printf '%-9s %-5s %-7s %-9s ' "(a)" file full swiftdup.wasm >&2
  local status=ok
  env -i "PATH=$SYS_PATH" "HOME=$W" "PASSPHRASE=$PASS" \
    /usr/bin/time -f '%e %U %S %M' -o "$TIMEF" \
    "$WASMTIME" run -S http -S cli-exit-with-code --dir "$S/src::/data" --dir "$W::/scratch" \
      --env PASSPHRASE --env SWIFTDUP_ARCHIVE_DIR=/scratch/cache --env TMPDIR=/scratch/tmp \
      --env SWIFTDUP_HOSTNAME=bench --env SWIFTDUP_LOG_FORMAT=json --env SWIFTDUP_PROGRESS_INTERVAL=0 \
      "$WASM" full /data file:///scratch/target > "$OUT/logs/a-file-full-wasm.log" 2>&1 || status=failed
  local wall user sys rss
  read -r wall user sys rss < <(tail -n 1 "$TIMEF")
  # The native build on the same work with every stage in one thread, as under WASI.
  sync
  local native nuser nsys nrss
  env -i "PATH=$SYS_PATH" "HOME=$W" "PASSPHRASE=$PASS" "TMPDIR=$W/tmp" \
    /usr/bin/time -f '%e %U %S %M' -o "$TIMEF" \
    "$BIN" full "$S/src" "file://$W/native-target" --concurrency 1 --archive-dir "$W/native-cache" \
      --hostname bench --progress-interval 0 > "$OUT/logs/a-file-full-native1.log" 2>&1 || status=failed
  read -r native nuser nsys nrss < <(tail -n 1 "$TIMEF")
  printf '%8.2f s wall %8.2f s CPU %7.1f MiB  %s\n' "$wall" "$(echo "$user + $sys" | bc)" \
    "$(echo "scale=1; $rss / 1024" | bc)" "$status" >&2
  local bytes
  bytes=$(find "$W/target" -type f -printf '%s\n' 2>/dev/null | awk '{s+=$1} END {printf "%.0f\n", s}')
  if [ "$status" != ok ] || [ -z "$native" ]; then
    WASI_SKIP="the wasm run or the native run failed (logs/a-file-full-wasm.log)"
    tail -n 10 "$OUT/logs/a-file-full-wasm.log" >&2
  else
    WASI_RATIO=$(echo "scale=4; $wall / $native" | bc)
    local excl=""
    [ -n "$compile" ] && excl=$(echo "scale=4; ($wall - $compile) / $native" | bc)
    WASI_RATIO_EXCL=$excl
    WASI_LINE=$(printf '| build | wall s | CPU s | peak RSS MiB | written |\n|---|---|---|---|---|\n| native, `--concurrency 1` (one thread, as under WASI) | %s | %s | %s | %s |\n| wasm under %s | %s | %s | %s | %s |\n\nwasm/native wall: **%.2f×**%s.' \
      "$native" \
      "$(echo "$nuser + $nsys" | bc)" \
      "$(echo "scale=1; $nrss / 1024" | bc)" \
      "$(find "$W/native-target" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s}') B" \
      "$("$WASMTIME" --version)" "$wall" "$(echo "$user + $sys" | bc)" "$(echo "scale=1; $rss / 1024" | bc)" "$bytes B" \
      "$WASI_RATIO" \
      "${compile:+ (start-up: wasmtime compiles the component at every run; \`swiftdup.wasm --version\` alone took ${compile} s; without it: $(printf '%.2f' "$excl")×)}")
  fi
  rm -rf "$W"
}

# --- Swift per data set (a fresh one: its disk is freed with the set) -----------------------
start_swift() {
  SWIFT_DIR="$WORK/swift-$1"
  bash tests/swift/start.sh "$SWIFT_DIR" >&2
  # shellcheck disable=SC1091
  source "$SWIFT_DIR/env"
}
# A tempauth token for the test Swift's account (for rustic's OpenDAL swift service).
swift_token() {
  $PY -c 'import os, urllib.request as u
r = u.urlopen(u.Request(os.environ["SWIFT_AUTHURL"], headers={
    "X-Auth-User": os.environ["SWIFT_USERNAME"], "X-Auth-Key": os.environ["SWIFT_PASSWORD"]}))
print(r.headers["X-Auth-Token"])'
}
stop_swift() {
  [ -n "$SWIFT_DIR" ] || return 0
  bash tests/swift/stop.sh "$SWIFT_DIR" || true
  rm -rf "$SWIFT_DIR"
  SWIFT_DIR=""
}

# --- the run --------------------------------------------------------------------------------
say "scale $SCALE, sets $SETS, targets $TARGETS, tools $TOOLS; scratch $WORK; load average $LOAD_START"
T=(${TARGETS//,/ })
TL=(${TOOLS//,/ })
for st in ${SETS//,/ }; do
  est=$($PY "$HELPER" size "$st" "$SCALE")
  # Source + each tool's backups in each target (about the data size each: incompressible
  # data does not shrink) + the restores (all kept until the set ends, except set c's),
  # + 10%.
  if [ "$st" = c ]; then copies=$((2 + ${#TL[@]} * ${#T[@]})); else copies=$((1 + 2 * ${#TL[@]} * ${#T[@]})); fi
  need=$(( est * copies * 11 / 10 ))
  avail=$(( $(df -Pk "$WORK" | awk 'NR==2 {print $4}') * 1024 ))
  if [ "$avail" -lt "$need" ]; then
    say "SKIPPING set ($st): needs about $((need >> 20)) MiB free in $WORK, only $((avail >> 20)) MiB available (BENCH_DIR elsewhere, or a smaller BENCH_SCALE)"
    SETINFO[$st]="Skipped: not enough disk space (needed about $((need >> 20)) MiB, had $((avail >> 20)) MiB)."
    continue
  fi
  S="$WORK/$st"
  rm -rf "$S"; mkdir -p "$S"
  say "($st): generating the data set (~$((est >> 20)) MiB)"
  t0=$(date +%s)
  $PY "$HELPER" gen "$st" "$S/src" "$SCALE"
  nfiles=$(find "$S/src" -type f | wc -l)
  nbytes=$(find "$S/src" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f\n", s}')
  say "($st): $nfiles files, $nbytes bytes in $(( $(date +%s) - t0 )) s"
  if has "$TARGETS" swift; then start_swift "$st"; fi
  for tgt in "${T[@]}"; do
    has "$TOOLS" restic && run_tool "$st" "$tgt" init restic
    has "$TOOLS" rustic && run_tool "$st" "$tgt" init rustic
  done

  for work in full noop inc1 restore; do
    if [ "$work" = inc1 ]; then
      mutation=$($PY "$HELPER" mutate "$st" "$S/src" "$SCALE")
      say "$mutation"
    fi
    for tgt in "${T[@]}"; do
      for tool in "${TL[@]}"; do run_tool "$st" "$tgt" "$work" "$tool"; done
    done
    if [ "$work" = full ] && [ "$st" = a ] && [ -n "$WASMTIME" ] && [ -z "$WASI_SKIP" ]; then run_wasi; fi
  done
  SETINFO[$st]="Source: $nfiles files, $(echo "scale=1; $nbytes / 1048576" | bc) MiB. The 1% change: ${mutation#*: }."
  stop_swift
  [ "$KEEP" = 1 ] || rm -rf "$S"
done

# --- the report -----------------------------------------------------------------------------
setinfo_json=$(for k in "${!SETINFO[@]}"; do printf '%s\t%s\n' "$k" "${SETINFO[$k]}"; done)
versions="swiftdup $("$BIN" --version 2>/dev/null | awk '{print $NF}'), $(duplicity --version 2>/dev/null || echo 'duplicity: -'), $(restic version 2>/dev/null | awk '{print "restic", $2}' || echo 'restic: -'), $([ -n "$RUSTIC" ] && "$RUSTIC" --version 2>/dev/null || echo 'rustic: -'), $(gpg --version 2>/dev/null | head -n 1)"
SETINFO_TSV="$setinfo_json" WASI_LINE="$WASI_LINE" WASI_RATIO="$WASI_RATIO" WASI_RATIO_EXCL="$WASI_RATIO_EXCL" WASI_SKIP="$WASI_SKIP" \
VERSIONS="$versions" LOAD_START="$LOAD_START" DROP_CACHES="$DROP_CACHES" SCALE="$SCALE" SETS="$SETS" TARGETS="$TARGETS" TOOLS="$TOOLS" \
$PY - "$META" <<'EOF'
import json, os, sys, datetime, subprocess
e = os.environ
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
cmd = "make bench"
knobs = [f"BENCH_{k}={e[k]}" for k, d in (("SCALE", "1"), ("SETS", "a,b,c"), ("TARGETS", "file,swift"), ("TOOLS", "swiftdup,duplicity,restic,rustic")) if e[k] != d]
if knobs:
    cmd = " ".join(knobs) + " " + cmd
m = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), command=cmd,
         scale=e["SCALE"], sets=e["SETS"], targets=e["TARGETS"], tools=e["TOOLS"], cpu=cpu,
         nproc=os.cpu_count(), mem=f"{int(mem) / 1048576:.0f} GiB RAM", load_start=e["LOAD_START"],
         load_end=" ".join(open("/proc/loadavg").read().split()[:3]), versions=e["VERSIONS"],
         drop_caches=e["DROP_CACHES"] == "1",
         setinfo=dict(l.split("\t", 1) for l in e["SETINFO_TSV"].splitlines() if "\t" in l))
if e["WASI_RATIO"]:
    m["wasi"] = e["WASI_LINE"]
    m["wasi_ratio"] = float(e["WASI_RATIO"])
    if e["WASI_RATIO_EXCL"]:
        m["wasi_ratio_excl"] = float(e["WASI_RATIO_EXCL"])
else:
    m["wasi_skip"] = e["WASI_SKIP"] or "not run"
json.dump(m, open(sys.argv[1], "w"), indent=1)
EOF
$PY "$HELPER" report "$TSV" "$META" "$OUT/results.md"
say "report: $OUT/results.md (raw: $TSV, logs: $OUT/logs/)"
if grep -q $'\t\(failed\|differs\)$' "$TSV"; then
  say "some runs FAILED or restored a different tree: see the ✗ cells"
  exit 1
fi
