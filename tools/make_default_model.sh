#!/usr/bin/env bash
# Rebuilds the embedded default model models/resp-math-tiny from nothing but this repository:
#   1. the synthetic word problems   (resp synth-math, seeded)  -> data/synthetic-math/
#      (train.jsonl is not committed: 10 MB that this step regenerates bit for bit)
#   2. the byte-level BPE tokenizer  (tools/train_tokenizer.py)  -> models/resp-math-tiny/
#   3. the model                     (resp train)                -> runs/train-math-tiny/model
#   4. copy weights + configs into models/resp-math-tiny/, then evaluate on the held-out split.
# Deterministic: the same commit rebuilds the same files (on the same thread count).
#
#   tools/make_default_model.sh [--threads N] [--skip-data]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=1
skip_data=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --skip-data) skip_data=1; shift ;;
    *) echo "make_default_model.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
resp=./build/resp
[[ -x $resp ]] || { echo "make_default_model.sh: build first (tools/setup.sh)" >&2; exit 1; }
model=models/resp-math-tiny
cfg=configs/train/math-tiny.yaml

if [[ $skip_data == 0 ]]; then
  $resp synth-math --seed 1 --train 30000 --test 1000 --max-start 30 --max-addend 20 \
    --max-factor 4 --max-pack 9 --max-value 120 --out data/synthetic-math
  # The calibration prompts of configs/default.yaml: the first 2000 training problems.
  head -2000 data/synthetic-math/train.jsonl > data/synthetic-math/calibration.jsonl
  mkdir -p "$model"
  python3 tools/train_tokenizer.py --data data/synthetic-math/train.jsonl --vocab-size 640 \
    --out "$model"
fi
rm -rf runs/train-math-tiny
$resp train --config "$cfg" --out runs/train-math-tiny --threads "$threads"
cp runs/train-math-tiny/model/{config.json,model.safetensors,generation_config.json} "$model/"
$resp eval --model "$model" --task gsm8k --data data/synthetic-math/test.jsonl --shots 0 --chat \
  --thinking on --temperature 0 --max-new-tokens 160 --limit 200 --threads "$threads" \
  --out runs/train-math-tiny/eval.json
