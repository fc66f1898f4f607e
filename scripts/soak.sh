#!/usr/bin/env bash
# Soak benchmark (not a CI test): 2 wf_router + 2 wf_worker on this machine
# under steady mixed HTTP load from `wf_loadgen --http` for N minutes. Every
# few seconds it samples each server process's RSS, open descriptors and
# threads from /proc, then prints a table and a verdict:
#   - RSS of every process flat within 5% after the warm-up (final sample and
#     peak, against the first sample after warm-up),
#   - no leaked descriptors (final count <= count after warm-up + 2),
#   - no failed request,
#   - latency stable: each later minute's e2e p50 within 2x the first
#     minute after warm-up (shared machines: other load shows up here).
#
#   scripts/soak.sh                         # 10 minutes on the golden tiny model
#   scripts/soak.sh --minutes 3 --build-dir build
#   scripts/soak.sh --model FILE.gguf --concurrency 16 --max-tokens 64
#
# Options:
#   --minutes N          load duration (10)
#   --warmup-minutes W   not judged (1)
#   --model FILE         GGUF (default: $WF_GOLDEN_DIR or ../shared/golden, bitnet-synth-h256-l4.gguf)
#   --build-dir DIR      build holding worker/wf_worker, router/wf_router, tools/wf_loadgen (build)
#   --concurrency C      client streams, spread over the 2 routers (64)
#   --max-tokens A:B     max_tokens of each request, uniform in [A, B] (16:128)
#   --stream-fraction F  share of streamed (SSE) requests; the rest are whole (0.75)
#   --threads T          compute threads per worker (1)
#   --sample-seconds S   /proc sampling period (5)
#   --out DIR            keep logs, samples.tsv and loadgen.json there (default: a temp dir, removed)
# Exit status: 0 PASS, 1 FAIL (the verdict names why), 2 bad usage or start-up failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
minutes=10
warmup=1
model="${WF_GOLDEN_DIR:-$root/../shared/golden}/bitnet-synth-h256-l4.gguf"
build_dir="${BUILD_DIR:-$root/build}"
concurrency=64
max_tokens="16:128"
stream_fraction=0.75
threads=1
sample_seconds=5
out=""

die() { echo "soak: $*" >&2; exit 2; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
need_int() { [[ "$2" =~ ^[0-9]+$ ]] || die "$1 must be a non-negative integer, got '$2'"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) need_value "$@"; need_int "$1" "$2"; minutes="$2"; shift 2 ;;
    --warmup-minutes) need_value "$@"; need_int "$1" "$2"; warmup="$2"; shift 2 ;;
    --model) need_value "$@"; model="$2"; shift 2 ;;
    --build-dir) need_value "$@"; build_dir="$2"; shift 2 ;;
    --concurrency) need_value "$@"; need_int "$1" "$2"; concurrency="$2"; shift 2 ;;
    --max-tokens) need_value "$@"; max_tokens="$2"; shift 2 ;;
    --stream-fraction) need_value "$@"; stream_fraction="$2"; shift 2 ;;
    --threads) need_value "$@"; need_int "$1" "$2"; threads="$2"; shift 2 ;;
    --sample-seconds) need_value "$@"; need_int "$1" "$2"; sample_seconds="$2"; shift 2 ;;
    --out) need_value "$@"; out="$2"; shift 2 ;;
    -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ "$minutes" -ge 1 ] || die "--minutes must be at least 1"
[ "$warmup" -lt "$minutes" ] || die "--warmup-minutes ($warmup) must be less than --minutes ($minutes)"
[ "$concurrency" -ge 1 ] || die "--concurrency must be at least 1"
[ "$sample_seconds" -ge 1 ] || die "--sample-seconds must be at least 1"
[[ "$max_tokens" =~ ^([0-9]+)(:([0-9]+))?$ ]] || die "--max-tokens must be N or A:B, got '$max_tokens'"
tokens_min="${BASH_REMATCH[1]}"
tokens_max="${BASH_REMATCH[3]:-0}"
[ -f "$model" ] || die "--model $model: no such file"
bin="$(cd "$build_dir" 2>/dev/null && pwd)" || die "--build-dir $build_dir: no such directory"
worker_bin="$bin/worker/wf_worker"
router_bin="$bin/router/wf_router"
loadgen_bin="$bin/tools/wf_loadgen"
for b in "$worker_bin" "$router_bin" "$loadgen_bin"; do
  [ -x "$b" ] || die "$b: not built (ninja -C $bin wf_worker wf_router wf_loadgen)"
done
python=/usr/bin/python3
[ -x "$python" ] || python="$(command -v python3)" || die "python3 is needed for the report"

if [ -n "$out" ]; then
  mkdir -p "$out"
  dir="$(cd "$out" && pwd)"
else
  dir="$(mktemp -d "${TMPDIR:-/tmp}/wf-soak.XXXXXX")"
fi
pids=()
names=()
loadgen_pid=""
cleanup() {
  [ -z "$loadgen_pid" ] || kill "$loadgen_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$out" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (bounded) for "PATTERN...:PORT" in a log and prints PORT.
wait_port() {
  local log="$1" pattern="$2" pid="$3" i
  for i in $(seq 1 600); do
    if grep -q "$pattern" "$log" 2>/dev/null; then
      grep -m1 "$pattern" "$log" | sed 's/.*://'
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "soak: process exited; its log:" >&2; cat "$log" >&2; exit 2; }
    sleep 0.1
  done
  echo "soak: '$pattern' not seen in $log within 60 s" >&2
  exit 2
}

worker_addrs=()
for i in 1 2; do
  "$worker_bin" --model-path "$model" --host 127.0.0.1 --port 0 --metrics-port -1 --threads "$threads" \
    --max-running 64 --max-waiting 512 --log-level warning > "$dir/worker$i.log" 2>&1 &
  pids+=($!); names+=("worker$i")
  port="$(wait_port "$dir/worker$i.log" "grpc listening on" "$!")"
  wait_port "$dir/worker$i.log" "wf_worker: ready" "${pids[-1]}" > /dev/null
  worker_addrs+=("127.0.0.1:$port")
done
urls=()
for i in 1 2; do
  "$router_bin" --workers "$(IFS=,; echo "${worker_addrs[*]}")" --host 127.0.0.1 --http-port 0 --grpc-port -1 \
    --log-level warning > "$dir/router$i.log" 2>&1 &
  pids+=($!); names+=("router$i")
  port="$(wait_port "$dir/router$i.log" "http listening on" "$!")"
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$port/ready" > /dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$port/ready" > /dev/null || die "router$i: /ready never answered 200 (see $dir/router$i.log)"
  urls+=("http://127.0.0.1:$port")
done
echo "soak: model $model; 2 workers (${worker_addrs[*]}), 2 routers (${urls[*]})"
echo "soak: $minutes min of load ($warmup min warm-up), $concurrency streams, max_tokens $max_tokens," \
  "stream fraction $stream_fraction; sampling every $sample_seconds s into $dir"

# Appends one sample of every server process (seconds since the load began).
sample_all() {
  local phase="$1" now k p
  now=$(( $(date +%s) - start ))
  for k in "${!pids[@]}"; do
    p="${pids[$k]}"
    [ -d "/proc/$p" ] || { echo "soak: ${names[$k]} (pid $p) died; see $dir" >&2; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$now" "$phase" "${names[$k]}" "$p" \
      "$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")" "$(ls "/proc/$p/fd" | wc -l)" \
      "$(ls "/proc/$p/task" | wc -l)" >> "$dir/samples.tsv"
  done
}
printf 'seconds\tphase\tprocess\tpid\trss_kb\tfds\tthreads\n' > "$dir/samples.tsv"
start=$(date +%s)
sample_all before
"$loadgen_bin" --http --urls "$(IFS=,; echo "${urls[*]}")" --concurrency "$concurrency" \
  --duration-seconds "$((minutes * 60))" --endpoint mix --stream-fraction "$stream_fraction" \
  --max-tokens "$tokens_min" --max-tokens-max "$tokens_max" --interval-seconds 60 --request-timeout-seconds 120 \
  --json --no-progress > "$dir/loadgen.json" 2> "$dir/loadgen.log" &
loadgen_pid=$!
while kill -0 "$loadgen_pid" 2>/dev/null; do
  sample_all load
  elapsed=$(( $(date +%s) - start ))
  if (( elapsed % 60 < sample_seconds )); then echo "soak: $elapsed s"; fi
  sleep "$sample_seconds"
done
loadgen_status=0
wait "$loadgen_pid" || loadgen_status=$?
loadgen_pid=""
# Once the clients have gone, descriptors should be back to their idle count.
sleep 2
sample_all after
[ "$loadgen_status" -le 3 ] || { cat "$dir/loadgen.log" >&2; die "wf_loadgen failed (exit $loadgen_status)"; }

"$python" - "$dir" "$warmup" "$minutes" <<'EOF'
import csv, json, sys
d, warmup, minutes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
warm_s, load_end = warmup * 60, minutes * 60
rows = list(csv.DictReader(open(f"{d}/samples.tsv"), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault(r["process"], []).append(
        (int(r["seconds"]), int(r["rss_kb"]), int(r["fds"]), int(r["threads"]), r["phase"]))
problems = []
print("\nprocess   RSS MiB: warm-up end   final    peak  change  peak+   fds: before  under load  after  threads")
for name, s in by.items():
    during = [x for x in s if x[4] == "load" and x[0] >= warm_s]
    if not during:
        problems.append(f"{name}: no sample after the warm-up")
        continue
    idle = s[-1] if s[-1][4] == "after" else during[-1]
    before = s[0] if s[0][4] == "before" else during[0]
    base, final = during[0], during[-1]
    peak = max(x[1] for x in during)
    change = 100.0 * (final[1] - base[1]) / base[1]
    growth = 100.0 * (peak - base[1]) / base[1]
    print(f"{name:9} {base[1]/1024:19.1f} {final[1]/1024:7.1f} {peak/1024:7.1f} {change:+6.1f}% {growth:+5.1f}% "
          f"{before[2]:12d} {min(x[2] for x in during):5d}-{max(x[2] for x in during):<5d} {idle[2]:6d}  "
          f"{min(x[3] for x in s)}-{max(x[3] for x in s)}")
    if abs(change) > 5 or growth > 5:
        problems.append(f"{name}: RSS moved {change:+.1f}% (peak {growth:+.1f}%) after the warm-up, limit 5%")
    if final[2] > base[2] + 2:
        problems.append(f"{name}: descriptors grew from {base[2]} to {final[2]} under steady load")
    if idle[2] > before[2] + 2:
        problems.append(f"{name}: {idle[2]} descriptors after the load, {before[2]} before it")

doc = json.load(open(f"{d}/loadgen.json"))
t = doc["total"]
def ms(dist, key):
    v = dist.get(key)
    return float("nan") if v is None else v * 1e3
print(f"\nminute   ok  failed  gen tok/s  req/s   TTFT ms p50/p99    ITL ms p50/p99    e2e ms p50/p99   by status")
for i, m in enumerate(doc["intervals"]):
    status = " ".join(f"{k}:{v}" for k, v in m["by_status"].items())
    print(f"{i + 1:6d} {m['requests_ok']:5d} {m['requests_failed']:6d} {m['generated_tokens_per_second']:10.1f} "
          f"{m['requests_per_second']:6.1f} {ms(m['ttft_seconds'], 'p50'):8.1f}/{ms(m['ttft_seconds'], 'p99'):<8.1f} "
          f"{ms(m['itl_seconds'], 'p50'):7.1f}/{ms(m['itl_seconds'], 'p99'):<8.1f} "
          f"{ms(m['e2e_seconds'], 'p50'):8.1f}/{ms(m['e2e_seconds'], 'p99'):<8.1f} {status}")
print(f"total  {t['requests_ok']:5d} {t['requests_failed']:6d} {t['generated_tokens_per_second']:10.1f} "
      f"{t['requests_per_second']:6.1f}  peak open {t['peak_open']}")
if t["requests_failed"]:
    problems.append(f"{t['requests_failed']} requests failed: {t['failed_by_code']} {t['first_error']}")
judged = [m for m in doc["intervals"][warmup:minutes] if m["e2e_seconds"]["count"]]
if judged:
    ref = judged[0]["e2e_seconds"]["p50"]
    for i, m in enumerate(judged[1:], start=warmup + 2):
        p50 = m["e2e_seconds"]["p50"]
        if ref and (p50 > 2 * ref or p50 < ref / 2):
            problems.append(f"minute {i}: e2e p50 {p50 * 1e3:.0f} ms against {ref * 1e3:.0f} ms in minute {warmup + 1}")
print("\nverdict: " + ("PASS" if not problems else "FAIL\n  " + "\n  ".join(problems)))
sys.exit(1 if problems else 0)
EOF
