#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan) into
# build-fuzz/ and runs each for a fixed time (see fuzz/README.md).
#
# Usage: scripts/fuzz.sh [--seconds N] [--jobs J] [target...]
#   --seconds N  run time of each target (default 60)
#   --jobs J     targets run at the same time (default 1)
#   target       gguf_reader safetensors hf_config tokenizer openai_request
#                router_config (default: all)
# Environment: FUZZ_BUILD_DIR (default build-fuzz/), FUZZ_CC/FUZZ_CXX for the fuzz build
# (default clang/clang++), WF_TOKENIZER_JSON (tokenizer target).
#
# The repository's corpus (fuzz/corpus/T, fuzz/regressions/T) is only read:
# inputs libFuzzer finds go to FUZZ_BUILD_DIR/fuzz-work/T/corpus, emptied at
# the start of each run. Per target it prints libFuzzer's final figures
# (executions, exec/s, cov = covered edges, ft = features, corpus units) and
# whether it crashed; a crash, leak, UB report, timeout or OOM saves the input
# under FUZZ_BUILD_DIR/fuzz-artifacts/T/ and makes the script exit 1.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
all_targets=(gguf_reader safetensors hf_config tokenizer openai_request router_config)

seconds=60
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --jobs) jobs="$2"; shift 2 ;;
    --jobs=*) jobs="${1#*=}"; shift ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *)
      if [[ " ${all_targets[*]} " != *" $1 "* ]]; then
        echo "fuzz.sh: unknown target '$1' (targets: ${all_targets[*]})" >&2
        exit 2
      fi
      targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -ge 1 ]] || { echo "fuzz.sh: --seconds must be a positive integer" >&2; exit 2; }
[[ "$jobs" =~ ^[0-9]+$ && "$jobs" -ge 1 ]] || { echo "fuzz.sh: --jobs must be a positive integer" >&2; exit 2; }

# Same ccache settings as scripts/build.sh: one cache shared by every checkout.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$root}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
start=$(date +%s)
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER="${FUZZ_CC:-clang}" -DCMAKE_CXX_COMPILER="${FUZZ_CXX:-clang++}" \
    -DBITNET_FUZZ=ON -DBITNET_BUILD_TESTS=OFF -DBITNET_BUILD_BENCHMARKS=OFF >/dev/null
fi
# Only the fuzz binaries and the libraries they link.
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/%/_fuzz}"
echo "[fuzz] build: $(( $(date +%s) - start )) s"

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && command -v llvm-symbolizer >/dev/null; then
  export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer)"
fi

# One libFuzzer run; its figures go to fuzz-work/T/result as
# "execs exec_per_s cov ft corpus status artifact".
run_one() {
  local t="$1"
  local bin="$build/fuzz/${t}_fuzz"
  local work="$build/fuzz-work/$t"
  local artifacts="$build/fuzz-artifacts/$t"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$artifacts"
  local dirs=("$work/corpus" "$root/fuzz/corpus/$t")
  [ -d "$root/fuzz/regressions/$t" ] && dirs+=("$root/fuzz/regressions/$t")
  local log="$work/fuzz.log"
  "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=30 -rss_limit_mb=2560 \
    -artifact_prefix="$artifacts/" "${dirs[@]}" >"$log" 2>&1 &
  local pid=$! waited=0 rc=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    waited=$((waited + 1))
    if [ $((waited % 15)) -eq 0 ]; then
      local last
      last="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
      echo "[fuzz] $t: ${waited}/${seconds} s ${last}"
    fi
  done
  wait "$pid" || rc=$?
  local final execs eps cov ft corp status artifact
  final="$(grep -E '^#[0-9]+.*cov:' "$log" | tail -n 1 || true)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$final")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$final")"
  corp="$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[bkKM]*\).*/\1/p' <<<"$final")"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  eps="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
  status=ok
  if [ "$rc" -ne 0 ] || [ -n "$artifact" ]; then
    status="$(grep -m 1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer): [a-zA-Z-]+|runtime error|fuzz property violated' "$log" || true)"
    status="CRASH(${status:-exit $rc})"
    status="${status// /_}"
  fi
  echo "${execs:-0} ${eps:-0} ${cov:-?} ${ft:-?} ${corp:-?} $status ${artifact:--}" >"$work/result"
  echo "[fuzz] $t: done ($status), log $log"
}

echo "[fuzz] ${#targets[@]} target(s), ${seconds} s each, ${jobs} at a time"
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
wait

failed=0
printf '[fuzz] %-15s %12s %8s %6s %7s %12s  %s\n' target executions exec/s cov ft corpus result
for t in "${targets[@]}"; do
  read -r execs eps cov ft corp status artifact <"$build/fuzz-work/$t/result"
  printf '[fuzz] %-15s %12s %8s %6s %7s %12s  %s\n' "$t" "$execs" "$eps" "$cov" "$ft" "$corp" "$status"
  if [ "$status" != ok ]; then
    failed=1
    echo "[fuzz]   input: $artifact  (reproduce: $build/fuzz/${t}_fuzz $artifact)"
    echo "[fuzz]   log:   $build/fuzz-work/$t/fuzz.log"
  fi
done
echo "[fuzz] total: $(( $(date +%s) - start )) s"
exit "$failed"
