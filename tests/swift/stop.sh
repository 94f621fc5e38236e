#!/usr/bin/env bash
# Stop exactly the processes start.sh recorded in DIR/pids ("NAME PID STARTTIME").
# Idempotent: a missing pids file, dead or reused pids are fine; never fails.
# Usage: stop.sh [DIR]   (default /tmp/swiftdup-swift)
set -euo pipefail

DIR="${1:-/tmp/swiftdup-swift}"
PIDS="$DIR/pids"
[ -f "$PIDS" ] || exit 0

# Ours = alive (not a zombie awaiting its reaper) with the recorded start time
# (guards against pid reuse).
ours() {
  local stat; stat=$(cut -d' ' -f3,22 "/proc/$1/stat" 2>/dev/null) || return 1
  [ "${stat%% *}" != Z ] && [ "${stat#* }" = "$2" ]
}

live=()
while read -r name pid start; do
  if [ -n "${pid:-}" ] && ours "$pid" "$start"; then live+=("$pid $start"); fi
done < "$PIDS"

# TERM first (each server is its own session leader, so this reaches nothing else).
for p in "${live[@]}"; do kill -TERM "${p%% *}" 2>/dev/null || true; done
# Up to ~5 s for a graceful exit, then KILL what is left.
for _ in $(seq 50); do
  left=()
  for p in "${live[@]}"; do if ours $p; then left+=("$p"); fi; done
  live=("${left[@]}")
  [ "${#live[@]}" -eq 0 ] && break
  sleep 0.1
done
for p in "${live[@]}"; do kill -KILL "${p%% *}" 2>/dev/null || true; done

# The servers were orphaned when start.sh exited, so PID 1 reaps them, lazily (up to
# ~1 s here); wait (bounded) for that so `pgrep` shows no <defunct> leftovers.
for _ in $(seq 30); do
  zombies=0
  while read -r name pid start; do
    if [ "$(cut -d' ' -f22 "/proc/${pid:-0}/stat" 2>/dev/null)" = "${start:-}" ]; then zombies=1; fi
  done < "$PIDS"
  [ "$zombies" -eq 0 ] && break
  sleep 0.1
done
rm -f "$PIDS"
