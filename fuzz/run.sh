#!/usr/bin/env bash
# Run swiftdup's fuzz targets one after another, each for SECONDS (fuzz/README.md):
#   bash fuzz/run.sh SECONDS [TARGET...]      (all targets when none is named)
# `make fuzz` runs it with FUZZ_SECONDS (60), `make fuzz-smoke` (part of `make test`) with 4.
#
# Builds once with cargo fuzz on the stable toolchain (no sanitizer, debug assertions on,
# so integer overflow panics too), then runs each target on its seeds (fuzz/corpus/T) and
# regression inputs (fuzz/regressions/T); what it learns goes to fuzz/target/corpus/T,
# which git ignores. A crash, hang (-timeout) or out-of-memory is copied into
# fuzz/regressions/T/, where tests/it/fuzz_regressions.rs replays it under `cargo test`, and
# makes the run fail; the other targets still run. Knobs: FUZZ_TIMEOUT (seconds for one
# input, 10), FUZZ_RSS_MB (2048), FUZZ_ARGS (more libFuzzer flags), CARGO_FUZZ_NICE (10).
set -uo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-${FUZZ_SECONDS:-60}}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/fuzz_targets | sed -n 's/\.rs$//p')
fi
timeout_s="${FUZZ_TIMEOUT:-10}"
rss_mb="${FUZZ_RSS_MB:-2048}"
nice_n="${CARGO_FUZZ_NICE:-10}"
# The same flags for build and run, so `cargo fuzz run` finds the build up to date.
flags=(--fuzz-dir fuzz --sanitizer none --debug-assertions)

bash tests/tools/install-cargo-fuzz.sh || exit 1
echo "fuzz: building the targets (cargo fuzz build ${flags[*]})"
nice -n "$nice_n" cargo fuzz build "${flags[@]}" || exit 1

status=0
summary=()
for t in "${targets[@]}"; do
  work="fuzz/target/corpus/$t"
  artifacts="fuzz/artifacts/$t"
  mkdir -p "$work" "fuzz/regressions/$t"
  rm -rf "$artifacts"
  mkdir -p "$artifacts"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=fuzz/dict/$t.dict")
  log="fuzz/target/$t.log"
  start=$(date +%s)
  echo "fuzz: $t for ${seconds}s (log: $log)"
  nice -n "$nice_n" cargo fuzz run "${flags[@]}" "$t" "$work" "fuzz/corpus/$t" "fuzz/regressions/$t" -- \
    -max_total_time="$seconds" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" \
    -print_final_stats=1 "${dict[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  found=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | head -1)
  if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    status=1
    if [ -n "$found" ]; then
      keep="fuzz/regressions/$t/$(basename "$found")"
      cp "$found" "$keep"
      summary+=("$t: FAILED after ${took}s: reproducer $keep")
    else
      summary+=("$t: FAILED (exit $rc) after ${took}s, no reproducer written")
    fi
    echo "fuzz: $t failed; the end of $log:" >&2
    grep -v '^#[0-9]' "$log" | tail -40 >&2
  else
    summary+=("$t: ok, ${runs:-?} inputs in ${took}s")
  fi
done

echo "fuzz: summary"
printf '  %s\n' "${summary[@]}"
if [ "$status" -ne 0 ]; then
  echo "fuzz: reproduce one with: cargo fuzz run ${flags[*]} TARGET FILE;" \
    "cargo test --test fuzz_regressions replays every kept input" >&2
fi
exit "$status"
