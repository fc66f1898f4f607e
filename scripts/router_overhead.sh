#!/usr/bin/env bash
# The router's added latency to first token (not a CI test): builds
# wf_router_bench, wf_worker and wf_router if needed, then runs the bench,
# which starts one worker on the golden tiny model and one router in front of
# it on 127.0.0.1 (see tools/router_bench/README.md).
#
#   scripts/router_overhead.sh                          # 1000 iterations, table
#   scripts/router_overhead.sh --build-dir build-x --requests 2000 --json
#   scripts/router_overhead.sh --pause-ms 1050 --requests 30   # sparse traffic
#
# Options: --build-dir DIR (default: $BUILD_DIR or build); every other
# argument goes to wf_router_bench (wf_router_bench --help).
# Environment: WF_GOLDEN_DIR (default ../shared/golden) holds the model.
# Exit status: that of the build or of wf_router_bench.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --build-dir=*) build_dir="${1#*=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
[[ "$build_dir" = /* ]] || build_dir="$root/$build_dir"
export WF_GOLDEN_DIR="${WF_GOLDEN_DIR:-$root/../shared/golden}"
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C "$build_dir" -j2 wf_router_bench wf_worker wf_router >&2
exec "$build_dir/tools/wf_router_bench" --build-dir "$build_dir" "${args[@]+"${args[@]}"}"
