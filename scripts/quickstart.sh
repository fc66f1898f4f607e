#!/usr/bin/env bash
# README command 1: install what is missing, build, make a demo model unless one
# is given, and bring it up.
#
#   scripts/quickstart.sh                      # demo: synthetic tiny model
#   scripts/quickstart.sh --model FILE.gguf    # an existing GGUF
#   scripts/quickstart.sh --preset 2b4t        # synthetic model of the real 2B-4T shape
#   scripts/quickstart.sh --hf-repo microsoft/bitnet-b1.58-2B-4T-gguf   # fetch from the hub
#
# Today it converts and describes the model and runs one completion with
# wf_worker; it grows into serving a router and workers as those land, under
# the same name.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model=""
preset="tiny"
hf_repo=""
tokenizer="$root/../shared/tokenizers/llama3/tokenizer.json"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --preset) preset="$2"; shift 2 ;;
    --hf-repo) hf_repo="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
bin="${BUILD_DIR:-$root/build}"
convert="$bin/converter/wf_convert"
mkdir -p "$root/models"

if [ -n "$hf_repo" ]; then
  model="$root/models/$(basename "$hf_repo").gguf"
  [ -f "$model" ] || "$convert" --hf-repo "$hf_repo" --outfile "$model"
elif [ -z "$model" ]; then
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

"$convert" inspect "$model"
echo
echo "Model ready: $model"
echo "A greedy completion (a synthetic model has random weights, so expect gibberish):"
"$bin/worker/wf_worker" --model-path "$model" --prompt "The capital of France is" -n 24 --temperature 0
