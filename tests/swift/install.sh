#!/usr/bin/env bash
# Install the Debian packages for a real single-replica Swift on loopback (idempotent).
# Runs as root (the test machines are root); installs only what is missing.
set -euo pipefail

PKGS=(swift swift-proxy swift-account swift-container swift-object memcached python3-swiftclient)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for p in "${PKGS[@]}"; do
  # dpkg-query prints "install ok installed" only for fully installed packages.
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: installing ${missing[*]}"
  # Keep maintainer scripts from starting system swift/memcached daemons: they would
  # grab ports 6200-6202/8080/11211 and outlive our tests. Exit 101 = "action forbidden".
  # Leave an existing policy-rc.d (e.g. Docker's) alone; only remove the one we add.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  trap '[ -n "$added_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# If a service manager started system daemons anyway, stop them (ignore every failure:
# there may be no systemd/init at all). Our own servers are started by start.sh.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  for s in memcached swift-proxy swift-account swift-container swift-object \
           swift-account-auditor swift-account-reaper swift-account-replicator \
           swift-container-auditor swift-container-replicator swift-container-sync \
           swift-container-updater swift-container-sharder swift-container-reconciler \
           swift-object-auditor swift-object-replicator swift-object-updater \
           swift-object-reconstructor swift-object-expirer; do
    $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true
  done
elif command -v service >/dev/null 2>&1; then
  for s in memcached swift-proxy swift-account swift-container swift-object; do
    $SUDO service "$s" stop >/dev/null 2>&1 || true
  done
fi

# Sanity: the Debian swift must import under the system python (not a pyenv python3).
/usr/bin/python3 -c 'import swift, swiftclient; print("install.sh: swift", swift.__version__, "ready")'
