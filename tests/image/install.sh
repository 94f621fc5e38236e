#!/usr/bin/env bash
# podman and runc for `make image` and the image tests (Debian 12's podman 4.3; crun, its
# default runtime, fails on the hybrid cgroup layout of machines like CI's).
set -euo pipefail
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  echo "installing: podman runc"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq podman runc >/dev/null
fi
