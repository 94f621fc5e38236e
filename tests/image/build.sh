#!/usr/bin/env bash
# Build the FROM scratch image from the static musl binary, with no registry: podman (with
# this folder's containers.conf), or docker where a Docker engine answers.
# Usage: tests/image/build.sh BINARY [IMAGE]
set -euo pipefail
BIN=${1:?usage: build.sh BINARY [IMAGE]}
IMAGE=${2:-localhost/swiftdup:dev}
HERE=$(cd "$(dirname "$0")" && pwd)
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$HERE/../../Cargo.toml" | head -n 1)
file "$BIN" | grep -Eq "static(ally|-pie) linked" || { echo "build.sh: $BIN is not static" >&2; exit 1; }
if docker info >/dev/null 2>&1; then
  tool=docker
else
  bash "$HERE/install.sh"
  tool=podman
  export CONTAINERS_CONF="$HERE/containers.conf"
fi
ctx=$(mktemp -d "${TMPDIR:-/tmp}/swiftdup-image-ctx.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp "$BIN" "$ctx/swiftdup"
cp "$HERE/Containerfile" "$ctx/Containerfile"
"$tool" build -q --build-arg "VERSION=$VERSION" -t "$IMAGE" -f "$ctx/Containerfile" "$ctx" >/dev/null
size=$("$tool" image inspect -f '{{.Size}}' "$IMAGE")
echo "build.sh: $IMAGE built with $tool: $size bytes ($(( size / 1024 / 1024 )) MiB), swiftdup $VERSION"
