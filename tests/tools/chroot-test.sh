#!/usr/bin/env bash
# The static musl binary in an empty root, as in the FROM scratch image: nothing but the
# binary and the data, HOME unset, the root read-only apart from one scratch directory.
# A full backup, an incremental and a restore against the real Swift must work there and
# give a tree identical to the source.
# Usage: chroot-test.sh SWIFT_ENV_FILE [BINARY]
set -euo pipefail
ENV_FILE=${1:?usage: chroot-test.sh SWIFT_ENV_FILE [BINARY]}
BIN=${2:-target/x86_64-unknown-linux-musl/release/swiftdup}
# shellcheck disable=SC1090
source "$ENV_FILE"
file "$BIN" | grep -Eq "static(ally|-pie) linked" || { echo "chroot-test: $BIN is not static"; exit 1; }
R=$(mktemp -d "${TMPDIR:-/tmp}/swiftdup-chroot.XXXXXX")
trap 'umount -R "$R" 2>/dev/null || true; rm -rf "$R"' EXIT
mkdir -p "$R/data/sub" "$R/scratch"
cp "$BIN" "$R/swiftdup"
head -c 3000000 /dev/urandom > "$R/data/sub/blob.bin"
echo "hello from an empty root" > "$R/data/hello.txt"
ln -s hello.txt "$R/data/link"
PREFIX="chroot-$$"
run() {
  # A private mount namespace: the root is bind-mounted read-only, /scratch read-write.
  local root=$1; shift
  unshare --mount bash -c '
    set -e
    R=$1; shift
    mount --bind "$R" "$R"
    mount --bind "$R/scratch" "$R/scratch"
    mount -o remount,bind,ro "$R"
    exec chroot "$R" /swiftdup "$@"' _ "$root" "$@"
}
export -n HOME || true
common=(env -i "PATH=/usr/sbin:/usr/bin:/sbin:/bin" "SWIFT_STORAGE_URL=$SWIFT_STORAGE_URL" "SWIFT_CONTAINER_FULL_TOKEN=$SWIFTDUP_TEST_FULL_KEY"
        "PASSPHRASE=chroot-test" "TMPDIR=/scratch" "SWIFTDUP_ARCHIVE_DIR=/scratch/cache" "SWIFTDUP_HOSTNAME=chroot")
URL="swiftkeys://$SWIFTDUP_TEST_CONTAINER/$PREFIX"
"${common[@]}" bash -c "$(declare -f run); run \"$R\" full /data \"$URL\"" > /dev/null 2> "$R/log1" || { cat "$R/log1"; exit 1; }
# Writing into the read-only root must fail: proves the mount is really read-only.
if "${common[@]}" bash -c "$(declare -f run); run \"$R\" restore \"$URL\" /not-writable" 2>/dev/null; then
  echo "chroot-test: the root was writable"; exit 1
fi
echo "changed" >> "$R/data/hello.txt"
"${common[@]}" bash -c "$(declare -f run); run \"$R\" incremental /data \"$URL\"" > /dev/null 2> "$R/log2" || { cat "$R/log2"; exit 1; }
"${common[@]}" bash -c "$(declare -f run); run \"$R\" restore \"$URL\" /scratch/restored" > /dev/null 2> "$R/log3" || { cat "$R/log3"; exit 1; }
diff -r --no-dereference "$R/data" "$R/scratch/restored"
grep -q '"exit_code":0' "$R/log2"
echo "chroot-test: full, incremental and restore in an empty read-only root: OK"
