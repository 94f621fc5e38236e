#!/usr/bin/env bash
# Install what the tests need on a fresh Debian 12 machine, and nothing twice:
# stock duplicity and GnuPG (compatibility tests), rdiff (librsync cross-checks).
set -euo pipefail
want=(duplicity gpg gpg1 rdiff)
pkgs=(duplicity gnupg gnupg1 rdiff)
missing=()
for i in "${!want[@]}"; do
  command -v "${want[$i]}" >/dev/null 2>&1 || missing+=("${pkgs[$i]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
