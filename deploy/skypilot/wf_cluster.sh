#!/usr/bin/env bash
# Starts one wf_router and N wf_worker processes on this machine and keeps them
# running until SIGTERM/SIGINT or until one of them exits (then stops the rest).
# Used by the SkyPilot tasks' `run:`; works on any Linux host.
#
#   wf_cluster.sh --build BUILD_DIR --model FILE.gguf [options]
#
# Options (defaults from the environment variables in brackets):
#   --layout numa|cores     numa: one worker per NUMA node, pinned to its CPUs;
#                           cores: one worker per --cores-per-worker CPUs   [WF_LAYOUT, numa]
#   --cores-per-worker N    CPUs per worker with --layout cores             [WF_CORES_PER_WORKER, 4]
#   --http-port P           router OpenAI gateway (/health /ready /metrics) [WF_HTTP_PORT, 8080]
#   --policy P              router policy                                   [WF_POLICY, kv_affinity]
#   --model-name NAME       model name served                               [WF_MODEL_NAME, file name]
#   --dry-run               print the commands instead of running them
# Workers listen on 127.0.0.1:50051+i (gRPC) and 0.0.0.0:9091+i (metrics).
# The router reads API keys from WF_API_KEYS (k1,k2) when it is set.
set -euo pipefail

build="" model=""
layout="${WF_LAYOUT:-numa}"
cores_per_worker="${WF_CORES_PER_WORKER:-4}"
http_port="${WF_HTTP_PORT:-8080}"
policy="${WF_POLICY:-kv_affinity}"
model_name="${WF_MODEL_NAME:-}"
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --layout) layout="$2"; shift 2 ;;
    --cores-per-worker) cores_per_worker="$2"; shift 2 ;;
    --http-port) http_port="$2"; shift 2 ;;
    --policy) policy="$2"; shift 2 ;;
    --model-name) model_name="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "wf_cluster: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$build" ] || { echo "wf_cluster: --build BUILD_DIR is required" >&2; exit 2; }
[ -n "$model" ] || { echo "wf_cluster: --model FILE.gguf is required" >&2; exit 2; }
worker_bin="${WF_WORKER_BIN:-$build/worker/wf_worker}"
router_bin="${WF_ROUTER_BIN:-$build/router/wf_router}"
if [ "$dry_run" -eq 0 ]; then
  for f in "$worker_bin" "$router_bin"; do
    [ -x "$f" ] || { echo "wf_cluster: $f is not an executable (build it first)" >&2; exit 1; }
  done
  [ -s "$model" ] || { echo "wf_cluster: model file $model is missing or empty" >&2; exit 1; }
fi

# "0-3,8,10-11" -> "0 1 2 3 8 10 11"
expand_cpus() {
  local part out=()
  IFS=',' read -r -a parts <<<"$1"
  for part in "${parts[@]}"; do
    if [[ "$part" == *-* ]]; then
      out+=($(seq "${part%-*}" "${part#*-}"))
    elif [ -n "$part" ]; then
      out+=("$part")
    fi
  done
  echo "${out[@]}"
}

# One CPU list (comma-separated) per worker.
groups=()
allowed="$(expand_cpus "$(awk '/^Cpus_allowed_list/{print $2}' /proc/self/status)")"
if [ "$layout" = "numa" ] && ls -d /sys/devices/system/node/node[0-9]* >/dev/null 2>&1; then
  for node in /sys/devices/system/node/node[0-9]*; do
    cpus=()
    for c in $(expand_cpus "$(cat "$node/cpulist")"); do
      [[ " $allowed " == *" $c "* ]] && cpus+=("$c")
    done
    [ ${#cpus[@]} -gt 0 ] && groups+=("$(IFS=,; echo "${cpus[*]}")")
  done
elif [ "$layout" = "cores" ] || [ "$layout" = "numa" ]; then
  [ "$layout" = "numa" ] && cores_per_worker=1000000  # no NUMA information: one worker
  cpus=($allowed)
  for ((i = 0; i < ${#cpus[@]}; i += cores_per_worker)); do
    groups+=("$(IFS=,; echo "${cpus[*]:i:cores_per_worker}")")
  done
else
  echo "wf_cluster: --layout must be numa or cores, not '$layout'" >&2; exit 2
fi

pids=()
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
start() {  # start CMD...: runs it in the background (or prints it with --dry-run)
  echo "+ $*"
  if [ "$dry_run" -eq 0 ]; then
    "$@" &
    pids+=("$!")
  fi
}

workers=()
for i in "${!groups[@]}"; do
  list="${groups[$i]}"
  n_threads=$(echo "$list" | tr ',' '\n' | wc -l)
  name_args=()
  [ -n "$model_name" ] && name_args=(--model-name "$model_name")
  start taskset -c "$list" "$worker_bin" --model-path "$model" "${name_args[@]}" \
    --host 127.0.0.1 --port $((50051 + i)) --metrics-host 0.0.0.0 --metrics-port $((9091 + i)) \
    --threads "$n_threads" --log-level info
  workers+=("127.0.0.1:$((50051 + i))")
done
start "$router_bin" --workers "$(IFS=,; echo "${workers[*]}")" --host 0.0.0.0 \
  --http-port "$http_port" --grpc-port=-1 --policy "$policy" --log-level info
[ "$dry_run" -eq 1 ] && exit 0

trap 'stop_all; exit 0' TERM INT
echo "wf_cluster: ${#workers[@]} worker(s) and a router; gateway on port $http_port"
set +e
wait -n "${pids[@]}"
status=$?
echo "wf_cluster: a process exited with status $status; stopping the others" >&2
stop_all
exit "$status"
