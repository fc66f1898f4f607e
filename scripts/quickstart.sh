#!/usr/bin/env bash
# README command 1: install what is missing, build, make a demo model unless one
# is given, then serve it on this machine: wf_worker process(es) and a wf_router
# in front of them with the OpenAI-compatible HTTP API. This is also the
# single-machine mode: the same HTTP API as a cluster, in one command.
#
#   scripts/quickstart.sh                      # demo: synthetic tiny model
#   scripts/quickstart.sh --model FILE.gguf    # an existing GGUF
#   scripts/quickstart.sh --preset 2b4t        # synthetic model of the real 2B-4T shape
#   scripts/quickstart.sh --hf-repo microsoft/bitnet-b1.58-2B-4T-gguf   # fetch from the hub
#
# Serving options:
#   --workers N        worker processes, splitting the cores (--threads each) (1)
#   --http-port P      router HTTP gateway port (8080)
#   --grpc-port P      router gRPC port, -1 = off (50061)
#   --worker-port P    first worker's gRPC port; worker i uses P+i (50051)
#   --metrics-port P   first worker's /metrics port; worker i uses P+i (9091)
#   --host ADDR        router listen address; 0.0.0.0 exposes it (127.0.0.1)
#   --ready-timeout S  longest wait for the router's /ready (300)
#   --no-serve         describe the model, run one completion and exit instead
#   --build-dir DIR    use this existing build: no package install, no build
# Waits for the router's /ready, prints ready-to-paste curl commands and stays
# in the foreground; Ctrl-C (or SIGTERM) stops the router and the workers.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model=""
preset="tiny"
hf_repo=""
serve=1
workers=1
http_port=8080
grpc_port=50061
worker_port=50051
metrics_port=9091
host="127.0.0.1"
ready_timeout=300
build_dir=""
tokenizer="$root/../shared/tokenizers/llama3/tokenizer.json"

die() { echo "quickstart: $*" >&2; exit 2; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
need_int() { [[ "$2" =~ ^-?[0-9]+$ ]] || die "$1 must be an integer, got '$2'"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --model) need_value "$@"; model="$2"; shift 2 ;;
    --preset) need_value "$@"; preset="$2"; shift 2 ;;
    --hf-repo) need_value "$@"; hf_repo="$2"; shift 2 ;;
    --no-serve) serve=0; shift ;;
    --workers) need_value "$@"; need_int "$1" "$2"; workers="$2"; shift 2 ;;
    --http-port) need_value "$@"; need_int "$1" "$2"; http_port="$2"; shift 2 ;;
    --grpc-port) need_value "$@"; need_int "$1" "$2"; grpc_port="$2"; shift 2 ;;
    --worker-port) need_value "$@"; need_int "$1" "$2"; worker_port="$2"; shift 2 ;;
    --metrics-port) need_value "$@"; need_int "$1" "$2"; metrics_port="$2"; shift 2 ;;
    --host) need_value "$@"; host="$2"; shift 2 ;;
    --ready-timeout) need_value "$@"; need_int "$1" "$2"; ready_timeout="$2"; shift 2 ;;
    --build-dir) need_value "$@"; build_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ "$workers" -ge 1 ] || die "--workers must be at least 1, got $workers"
for p in "$http_port" "$worker_port" "$metrics_port"; do
  [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "ports must be 1..65535, got $p"
done
[ "$grpc_port" -eq -1 ] || { [ "$grpc_port" -ge 1 ] && [ "$grpc_port" -le 65535 ]; } ||
  die "--grpc-port must be 1..65535 or -1, got $grpc_port"
[ -z "$model" ] || [ -f "$model" ] || die "--model $model: no such file"

if [ -n "$build_dir" ]; then
  bin="$(cd "$build_dir" 2>/dev/null && pwd)" || die "--build-dir $build_dir: no such directory"
else
  "$root/scripts/install_deps.sh"
  "$root/scripts/build.sh"
  bin="${BUILD_DIR:-$root/build}"
fi
convert="$bin/converter/wf_convert"
worker_bin="$bin/worker/wf_worker"
router_bin="$bin/router/wf_router"
for b in "$convert" "$worker_bin" "$router_bin"; do
  [ -x "$b" ] || die "$b: not built (scripts/build.sh, or ninja -C $bin wf_convert wf_worker wf_router)"
done

if [ -n "$hf_repo" ]; then
  mkdir -p "$root/models"
  model="$root/models/$(basename "$hf_repo").gguf"
  [ -f "$model" ] || "$convert" --hf-repo "$hf_repo" --outfile "$model"
elif [ -z "$model" ]; then
  mkdir -p "$root/models"
  ckpt="$root/models/demo-$preset-hf"
  model="$root/models/demo-$preset.gguf"
  if [ ! -f "$model" ]; then
    tok_args=()
    # The 2B-4T shape uses the real Llama 3 tokenizer when it is at hand.
    if [ "$preset" = "2b4t" ] && [ -f "$tokenizer" ]; then tok_args=(--tokenizer "$tokenizer"); fi
    "$convert" synth --preset "$preset" --seed 1 "${tok_args[@]}" --out "$ckpt"
    "$convert" "$ckpt" --outfile "$model"
  fi
fi

if [ "$serve" -eq 0 ]; then
  "$convert" inspect "$model"
  echo
  echo "Model ready: $model"
  echo "A greedy completion (a synthetic model has random weights, so expect gibberish):"
  exec "$worker_bin" --model-path "$model" --prompt "The capital of France is" -n 24 --temperature 0
fi

# --- serve: workers + router in the background, this script in the foreground ---
cores="$(nproc)"
threads=$(( cores / workers ))
[ "$threads" -ge 1 ] || threads=1
logs="$(mktemp -d "${TMPDIR:-/tmp}/wf-quickstart.XXXXXX")"
pids=()
names=()
worker_addrs=()
sleeper=""
stopping=0

stop_all() {
  # Router first (it finishes its streams), then the workers (they drain).
  local i
  for (( i=${#pids[@]}-1; i>=0; i-- )); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
  done
  local deadline=$(( SECONDS + 30 ))
  for (( i=${#pids[@]}-1; i>=0; i-- )); do
    while kill -0 "${pids[i]}" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if kill -0 "${pids[i]}" 2>/dev/null; then
      echo "quickstart: ${names[i]} did not stop within 30 s; killing it" >&2
      kill -KILL "${pids[i]}" 2>/dev/null || true
    fi
    wait "${pids[i]}" 2>/dev/null || true
  done
  rm -rf "$logs"
}
fail() {
  echo "quickstart: $*" >&2
  local i
  for (( i=0; i<${#names[@]}; i++ )); do
    echo "--- last lines of ${names[i]}'s log ---" >&2
    tail -n 20 "$logs/${names[i]}.log" >&2 2>/dev/null || true
  done
  stop_all
  exit 1
}
on_signal() {
  [ "$stopping" -eq 0 ] || return 0
  stopping=1
  [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null || true
  echo
  echo "quickstart: stopping the router and ${#worker_addrs[@]} worker(s)..."
  stop_all
  echo "quickstart: stopped"
  exit 0
}
trap on_signal INT TERM
trap 'stop_all' EXIT

for (( i=0; i<workers; i++ )); do
  port=$(( worker_port + i ))
  mport=$(( metrics_port + i ))
  "$worker_bin" --model-path "$model" --host 127.0.0.1 --port "$port" \
    --metrics-host 127.0.0.1 --metrics-port "$mport" --threads "$threads" \
    >"$logs/worker-$i.log" 2>&1 </dev/null &
  pids+=("$!")
  names+=("worker-$i")
  worker_addrs+=("127.0.0.1:$port")
done
workers_flag="$(IFS=,; echo "${worker_addrs[*]}")"
"$router_bin" --workers "$workers_flag" --host "$host" --http-port "$http_port" --grpc-port "$grpc_port" \
  >"$logs/router.log" 2>&1 </dev/null &
pids+=("$!")
names+=("router")

# The address clients use: a wildcard listen address is reachable on loopback.
case "$host" in 0.0.0.0|::|"[::]") client_host="127.0.0.1" ;; *) client_host="$host" ;; esac
case "$client_host" in *:*) client_host="[$client_host]" ;; esac
url="http://$client_host:$http_port"
echo "quickstart: $workers worker(s) x $threads thread(s) on $model; waiting for $url/ready (up to ${ready_timeout} s)"
deadline=$(( SECONDS + ready_timeout ))
while :; do
  for (( i=0; i<${#pids[@]}; i++ )); do
    kill -0 "${pids[i]}" 2>/dev/null || fail "${names[i]} exited before the router was ready"
  done
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url/ready" || true)"
  [ "$code" = "200" ] && break
  [ "$SECONDS" -lt "$deadline" ] || fail "the router's /ready did not answer 200 within ${ready_timeout} s (last: ${code:-none})"
  sleep 0.5
done
models_json="$(curl -s --max-time 10 "$url/v1/models" || true)"
model_name="$(printf '%s' "$models_json" | sed -n 's/.*"id" *: *"\([^"]*\)".*/\1/p' | head -n 1)"
[ -n "$model_name" ] || fail "GET $url/v1/models named no model: $models_json"

cat <<EOF

WrinkleFree is serving '$model_name' on $url
  router: OpenAI API on :$http_port$( [ "$grpc_port" -eq -1 ] || echo ", gRPC on :$grpc_port"); workers: $workers_flag (metrics from :$metrics_port)
  logs:   $logs (removed on exit)

Chat completion (OpenAI API):
curl -s $url/v1/chat/completions -H 'Content-Type: application/json' -d '{"model": "$model_name", "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 32}'

Completion (llama.cpp's /completion):
curl -s $url/completion -H 'Content-Type: application/json' -d '{"prompt": "The capital of France is", "n_predict": 32}'

Press Ctrl-C to stop.
EOF

# Foreground until a signal (handled by on_signal) or a process dies.
while :; do
  for (( i=0; i<${#pids[@]}; i++ )); do
    kill -0 "${pids[i]}" 2>/dev/null || fail "${names[i]} exited unexpectedly"
  done
  sleep 1 &
  sleeper=$!
  wait "$sleeper" || true
done
