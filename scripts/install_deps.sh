#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/apt-packages.txt that are missing.
# Runs apt-get as root, or through sudo when available.
# A line "a | b" (Debian's alternatives syntax) is satisfied by any of the
# packages installed; when none is, the first is installed (e.g. Debian's
# kubernetes-client, unless another kubectl package already owns the command).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mapfile -t wanted < <(grep -v '^\s*#' "$here/apt-packages.txt" | sed 's/\s*$//' | grep -v '^$')
missing=()
for line in "${wanted[@]}"; do
  IFS='|' read -r -a alternatives <<<"$line"
  present=0
  for pkg in "${alternatives[@]}"; do
    pkg="$(echo "$pkg" | xargs)"
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      present=1
      break
    fi
  done
  if [ "$present" -eq 0 ]; then
    missing+=("$(echo "${alternatives[0]}" | xargs)")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[deps] all ${#wanted[@]} Debian packages present"
  exit 0
fi
echo "[deps] installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "[deps] need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
