#!/usr/bin/env bash
# The image as users run it (docs/kubernetes-and-docker.md): podman with runc, a read-only
# root, user 65532, tmpfs /tmp and /cache (an emptyDir each in Kubernetes: nothing survives
# a run), the host's network, settings in the environment and secrets in files, against the
# test Swift. Checked:
#   1. the runtime stage here is the Dockerfile's (the image users build is the one tested);
#   2. a full, then an incremental (with an empty cache: the chain comes from Swift), then a
#      restore with the read key alone into a mounted directory: identical tree, exit 0,
#      and neither key nor the passphrase in any log;
#   3. `podman stop` (SIGTERM) in the middle of a backup: exit 143 within podman's grace
#      period, with `summary` and `exit` events, and the lock released (the next run
#      starts at once);
#   4. --every as a sidecar: runs repeat until `podman stop`, which ends it with the last
#      run's code (0) while it waits, or 143 if the signal lands in a run.
# Usage: tests/image/run.sh SWIFT_ENV_FILE [IMAGE]
set -euo pipefail
ENV_FILE=${1:?usage: run.sh SWIFT_ENV_FILE [IMAGE]}
IMAGE=${2:-localhost/swiftdup:dev}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CONTAINERS_CONF="$HERE/containers.conf"
# shellcheck disable=SC1090
source "$ENV_FILE"
fail() { echo "image test: $*" >&2; exit 1; }

# 1. Everything after `FROM scratch`, comments and blank lines aside, with the one COPY
#    naming where the binary comes from.
runtime_stage() {
  sed -n '/^FROM scratch/,$p' "$1" | grep -v '^\s*#' | grep -v '^\s*$' \
    | sed -E 's#^COPY .*swiftdup /swiftdup$#COPY swiftdup /swiftdup#'
}
diff <(runtime_stage "$ROOT/Dockerfile") <(runtime_stage "$HERE/Containerfile") \
  || fail "the Dockerfile's runtime stage and tests/image/Containerfile differ"

W=$(mktemp -d "${TMPDIR:-/tmp}/swiftdup-image.XXXXXX")
NAME="swiftdup-image-test-$$"
cleanup() {
  podman rm -f "$NAME" "$NAME-every" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/data/sub" "$W/secrets" "$W/out" "$W/big"
head -c 3000000 /dev/urandom > "$W/data/sub/blob.bin"
echo "hello from the image" > "$W/data/hello.txt"
ln -s hello.txt "$W/data/link"
mkdir "$W/data/empty-dir"
# Secret files as a mounted Secret gives them (kubectl create secret --from-literal: no newline).
printf '%s' "$SWIFTDUP_TEST_FULL_KEY" > "$W/secrets/full-key"
printf '%s' "$SWIFTDUP_TEST_READ_KEY" > "$W/secrets/read-key"
printf '%s' "image-test-passphrase" > "$W/secrets/passphrase"
chmod -R a+rX "$W/data" "$W/secrets"
chown 65532:65532 "$W/out"
PREFIX="image-$$"
URL="swiftkeys://$SWIFTDUP_TEST_CONTAINER/$PREFIX"

# The flags of every run: as k8s/cronjob.yaml sets the pod up.
base=(--network host --read-only --user 65532:65532
      --tmpfs /tmp:rw,size=256m,mode=1777 --tmpfs /cache:rw,size=64m,mode=1777
      -v "$W/secrets:/run/secrets/swiftdup:ro"
      -e "SWIFT_STORAGE_URL=$SWIFT_STORAGE_URL"
      -e PASSPHRASE_FILE=/run/secrets/swiftdup/passphrase
      -e SWIFTDUP_HOSTNAME=image-test)
full_key=(-e SWIFT_CONTAINER_FULL_TOKEN_FILE=/run/secrets/swiftdup/full-key)
read_key=(-e SWIFT_CONTAINER_READ_TOKEN_FILE=/run/secrets/swiftdup/read-key)
no_secrets() {
  for s in "$SWIFTDUP_TEST_FULL_KEY" "$SWIFTDUP_TEST_READ_KEY" image-test-passphrase; do
    if grep -qF "$s" "$1"; then fail "a secret reached the log $1"; fi
  done
}
# One event of a JSON-lines log: `event LOG NAME FIELD` prints FIELD of the last NAME event.
event() {
  python3 - "$@" <<'PY'
import json, sys
log, name, field = sys.argv[1:4]
found = None
for line in open(log):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == name:
        found = e
print("" if found is None else found.get(field, ""))
PY
}

# 2. Full, incremental, restore with the read key.
podman run --rm "${base[@]}" "${full_key[@]}" -v "$W/data:/data:ro" "$IMAGE" \
  full /data "$URL" > /dev/null 2> "$W/log-full" || { cat "$W/log-full"; fail "full backup"; }
echo "changed in the image test" >> "$W/data/hello.txt"
head -c 100000 /dev/urandom > "$W/data/sub/new.bin"
podman run --rm "${base[@]}" "${full_key[@]}" -v "$W/data:/data:ro" "$IMAGE" \
  incremental /data "$URL" > /dev/null 2> "$W/log-inc" || { cat "$W/log-inc"; fail "incremental"; }
[ "$(event "$W/log-inc" summary type)" = incremental ] \
  || { cat "$W/log-inc"; fail "the second run was not an incremental"; }
podman run --rm "${base[@]}" "${read_key[@]}" -v "$W/out:/out" "$IMAGE" \
  restore "$URL" /out/restored > /dev/null 2> "$W/log-restore" \
  || { cat "$W/log-restore"; fail "restore with the read key"; }
diff -r --no-dereference "$W/data" "$W/out/restored" || fail "the restored tree differs"
for l in "$W"/log-*; do
  no_secrets "$l"
  [ "$(event "$l" exit exit_code)" = 0 ] || { cat "$l"; fail "$l: no exit event with code 0"; }
done
echo "image test: full, incremental (empty cache) and read-key restore: OK"

# 3. SIGTERM in the middle of a backup. A sparse 64 GiB file takes minutes to read and no
#    room on disk; `podman stop` waits 30 s before it kills.
truncate -s 64G "$W/big/disk.img"
chmod -R a+rX "$W/big"
podman run -d --name "$NAME" "${base[@]}" "${full_key[@]}" -v "$W/big:/data:ro" "$IMAGE" \
  full /data "$URL-big" > /dev/null
for _ in $(seq 1 300); do
  podman logs "$NAME" 2> "$W/log-term" > /dev/null || true
  grep -q '"event":"start"' "$W/log-term" && break
  sleep 0.1
done
grep -q '"event":"start"' "$W/log-term" || { cat "$W/log-term"; fail "the big backup did not start"; }
sleep 1
t0=$(date +%s)
podman stop -t 30 "$NAME" > /dev/null
code=$(podman wait "$NAME" 2>/dev/null || podman inspect -f '{{.State.ExitCode}}' "$NAME")
took=$(( $(date +%s) - t0 ))
podman logs "$NAME" 2> "$W/log-term" > /dev/null
podman rm "$NAME" > /dev/null
[ "$code" = 143 ] || { cat "$W/log-term"; fail "podman stop: exit $code, not 143"; }
[ "$took" -lt 30 ] || fail "podman stop had to kill after its grace period"
[ "$(event "$W/log-term" summary error_code)" = interrupted ] || { cat "$W/log-term"; fail "no summary saying interrupted after SIGTERM"; }
[ "$(event "$W/log-term" exit exit_code)" = 143 ] || { cat "$W/log-term"; fail "no exit event 143"; }
no_secrets "$W/log-term"
# The lock went with it: the next run on that target starts without waiting or refusing.
podman run --rm "${base[@]}" "${full_key[@]}" -v "$W/data:/data:ro" "$IMAGE" \
  full /data "$URL-big" > /dev/null 2> "$W/log-after" || { cat "$W/log-after"; fail "the run after SIGTERM"; }
echo "image test: podman stop mid-backup: exit 143 in ${took}s with summary and exit events, lock released: OK"

# 4. The sidecar: --every repeats until stopped.
podman run -d --name "$NAME-every" "${base[@]}" "${full_key[@]}" -v "$W/data:/data:ro" \
  -e SWIFTDUP_EVERY=4s "$IMAGE" backup /data "$URL-every" > /dev/null
for _ in $(seq 1 300); do
  podman logs "$NAME-every" 2> "$W/log-every" > /dev/null || true
  [ "$(grep -c '"event":"summary"' "$W/log-every")" -ge 2 ] && break
  sleep 0.2
done
[ "$(grep -c '"event":"summary"' "$W/log-every")" -ge 2 ] || { cat "$W/log-every"; fail "--every did not repeat"; }
podman stop -t 30 "$NAME-every" > /dev/null
code=$(podman wait "$NAME-every" 2>/dev/null || podman inspect -f '{{.State.ExitCode}}' "$NAME-every")
podman logs "$NAME-every" 2> "$W/log-every" > /dev/null
case "$code" in 0|143) ;; *) cat "$W/log-every"; fail "the sidecar ended with $code";; esac
[ "$(event "$W/log-every" exit exit_code)" = "$code" ] || { cat "$W/log-every"; fail "exit event and exit code differ"; }
no_secrets "$W/log-every"
echo "image test: --every sidecar repeated and stopped cleanly: OK"
echo "image test: $IMAGE is $(podman image inspect -f '{{.Size}}' "$IMAGE") bytes"
