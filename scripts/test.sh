#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j"$(nproc)" --timeout 600
# A short libFuzzer pass over every parser of untrusted input (clang build in build-fuzz/).
"$root/scripts/fuzz.sh" --seconds 60 --jobs 2
