#!/usr/bin/env bash
# Configures and builds everything into build/ (Release-with-debug-info, Ninja, ccache).
# Usage: scripts/build.sh [extra cmake args...]   (BUILD_DIR overrides build/)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
# ccache keeps its default cache directory, shared by every checkout on the
# machine; paths relative to the checkout make those hits possible.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$root}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
fi
cmake --build "$build" -j"$(nproc)"
