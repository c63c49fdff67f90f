#!/usr/bin/env bash
# Builds the method-comparison testbed models/resp-math-reasoner from nothing but this
# repository (docs/training.md, "The testbed"):
#   1. harder synthetic word problems (3-6 operations, values up to 500) with terse GSM8K-markup
#      gold rationales and model-style thinking traces   (resp synth-math, seed 2)
#                                                          -> data/synthetic-reasoning/
#   2. the byte-level BPE tokenizer (tools/train_tokenizer.py) -> models/resp-math-reasoner/
#   3. the model (resp train, configs/train/math-reasoner.yaml) -> runs/train-math-reasoner/
#   4. copy weights + configs into models/resp-math-reasoner/, evaluate on 500 held-out problems.
# Resumable: run it again after an interruption (or a SIGTERM) and training continues from its
# last checkpoint (train_state.h5, every 50 steps) with exactly the weights an uninterrupted run
# would reach. Deterministic for a given number of ranks and threads.
#
#   tools/make_testbed_model.sh [--ranks N] [--threads N] [--skip-data] [--max-steps N]
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=1
threads=1
skip_data=0
max_steps=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ranks) ranks="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --skip-data) skip_data=1; shift ;;
    --max-steps) max_steps=(--max-steps "$2"); shift 2 ;;
    *) echo "make_testbed_model.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
resp=./build/resp
[[ -x $resp ]] || { echo "make_testbed_model.sh: build first (tools/setup.sh)" >&2; exit 1; }
model=models/resp-math-reasoner
data=data/synthetic-reasoning
cfg=configs/train/math-reasoner.yaml
run=runs/train-math-reasoner

if [[ $skip_data == 0 ]]; then
  $resp synth-math --seed 2 --train 40000 --test 1000 --min-ops 3 --max-ops 6 --min-start 20 \
    --max-start 150 --max-addend 90 --max-factor 5 --max-pack 24 --max-value 500 --gold-markup \
    --thinking --out "$data.tmp"
  # Committed: the held-out split and the calibration prompts (the first 2000 training
  # problems), without the traces the model was trained on (calibration never reads them).
  python3 - "$data.tmp" "$data" <<'PY'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
def strip(inp, out, n=None):
    with open(inp) as f, open(out, "w") as g:
        for i, line in enumerate(f):
            if n is not None and i >= n:
                break
            row = json.loads(line)
            row.pop("thinking", None)
            g.write(json.dumps(row) + "\n")
strip(f"{src}/test.jsonl", f"{dst}/test.jsonl")
strip(f"{src}/train.jsonl", f"{dst}/calibration.jsonl", 2000)
PY
  mv "$data.tmp/train.jsonl" "$data/train.jsonl"
  rm -rf "$data.tmp"
  mkdir -p "$model"
  python3 tools/train_tokenizer.py --data "$data/train.jsonl" --vocab-size 1024 \
    --model-max-length 1024 --out "$model"
fi

resume=()
[[ -f $run/train_state.h5 ]] && resume=(--resume)
if [[ $ranks -gt 1 ]]; then
  mpirun --allow-run-as-root --oversubscribe -n "$ranks" $resp train --config "$cfg" --out "$run" \
    --threads "$threads" "${resume[@]}" "${max_steps[@]}"
else
  $resp train --config "$cfg" --out "$run" --threads "$threads" "${resume[@]}" "${max_steps[@]}"
fi
[[ -f $run/model/model.safetensors ]] || { echo "make_testbed_model.sh: training not finished; run again to resume" >&2; exit 0; }
cp "$run"/model/{config.json,model.safetensors,generation_config.json} "$model/"
cp "$run/log.jsonl" "$model/training_log.jsonl"
$resp eval --model "$model" --task gsm8k --data "$data/test.jsonl" --shots 0 --chat \
  --thinking on --temperature 0 --max-new-tokens 900 --limit 500 --batch-size 32 \
  --threads "$threads" --items "$run/eval.items.jsonl" --out "$run/eval.json"
