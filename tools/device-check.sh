#!/usr/bin/env bash
# One command for a GPU machine: configure with CUDA, build, run the GPU tests, then the GPU
# benchmarks on a ~1.1B-parameter random Qwen3 (forward prefill, forward+backward, generate at
# batch 1/32/128) and the cuBLAS GEMM reference rates, and print a summary. Needs ~5 minutes on
# an H200 with 16 cores (budget: 8).
#
#   tools/device-check.sh                  # build-device/, sm_90
#   BUILD_DIR=... CUDA_ARCH=80 tools/device-check.sh
#   tools/device-check.sh --tests-only | --bench-only
#
# Prerequisites: the CUDA toolkit (nvcc, cuBLAS, NCCL) plus what tools/setup.sh installs on
# Debian (cmake, g++, OpenMPI, HDF5, OpenBLAS, nlohmann-json, CLI11, yaml-cpp, ICU, gtest). The
# machine may have no network: run `tools/setup.sh --no-install`-style checks here and install
# beforehand with `tools/setup.sh` where a package mirror is reachable.
set -uo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build-device}
arch=${CUDA_ARCH:-90}
jobs=$(nproc)
mode=all
for arg in "$@"; do
  case "$arg" in
    --tests-only) mode=tests ;;
    --bench-only) mode=bench ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "device-check: unknown option $arg" >&2; exit 2 ;;
  esac
done
start=$SECONDS
log() { printf '[device-check %3ds] %s\n' $((SECONDS - start)) "$*"; }

# ---- prerequisites ----------------------------------------------------------------------------
export PATH="$PATH:/usr/local/cuda/bin"
missing=()
for tool in cmake g++ nvcc mpicc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  echo "device-check: missing ${missing[*]}; install the packages listed in tools/setup.sh" \
       "(tools/setup.sh installs them on Debian) and the CUDA toolkit" >&2
  exit 2
fi
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
else
  log "nvidia-smi not found (continuing)"
fi

# ---- build ------------------------------------------------------------------------------------
log "configure $build (CUDA_ARCHITECTURES=$arch)"
if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRESP_ENABLE_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$build.configure.log" 2>&1; then
  tail -30 "$build.configure.log"; echo "device-check: configure failed" >&2; exit 1
fi
log "build (-j$jobs)"
targets=(resp test_cuda_backend test_cuda_model)
if grep -q 'test_nccl' "$build/Makefile" "$build/build.ninja" 2>/dev/null; then targets+=(test_nccl); fi
if ! cmake --build "$build" -j"$jobs" --target "${targets[@]}" >"$build.build.log" 2>&1; then
  grep -E "error|Error" "$build.build.log" | head -30; echo "device-check: build failed" >&2
  exit 1
fi
status=0

# ---- tests ------------------------------------------------------------------------------------
if [[ $mode != bench ]]; then
  log "GPU tests (ctest -L gpu)"
  if ! (cd "$build" && timeout 300 ctest -L gpu -j2 --output-on-failure >ctest-gpu.log 2>&1); then
    status=1
  fi
  tail -4 "$build/ctest-gpu.log"
  if grep -q "(Skipped)" "$build/ctest-gpu.log"; then
    log "WARNING: GPU tests were skipped: is the device visible (CUDA_VISIBLE_DEVICES)?"
  fi
fi

# ---- benchmarks -------------------------------------------------------------------------------
if [[ $mode != tests ]]; then
  out="$build/device-check"
  mkdir -p "$out"
  # ~1.1B parameters: 16 layers of Qwen3 at hidden 2048 (GQA 16/8, head_dim 128, FFN 6144) plus
  # a tied 151936 x 2048 embedding.
  cat >"$out/qwen3-1b.json" <<'JSON'
{"architectures": ["Qwen3ForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 16,
 "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
 "intermediate_size": 6144, "vocab_size": 151936, "max_position_embeddings": 8192,
 "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true}
JSON
  resp="$build/resp"
  log "cuBLAS reference GEMM rates"
  if nvcc -O2 -std=c++17 -arch=sm_"$arch" tools/cublas_gemm_rate.cu -lcublas \
       -o "$out/gemm_rate" >"$out/gemm_rate.build.log" 2>&1; then
    timeout 120 "$out/gemm_rate" | tee "$out/gemm.jsonl"
  else
    tail -5 "$out/gemm_rate.build.log"; status=1
  fi
  log "bench forward (prefill, 4 x 2048 tokens)"
  timeout 180 "$resp" bench forward --device cuda --config "$out/qwen3-1b.json" --batch 4 \
    --seq 2048 --json "$out/forward.json" >"$out/forward.log" 2>&1 || status=1
  tail -3 "$out/forward.log"
  log "bench backward (forward + backward, 2 x 2048 tokens)"
  timeout 180 "$resp" bench backward --device cuda --config "$out/qwen3-1b.json" --samples 2 \
    --seq 2048 --json "$out/backward.json" >"$out/backward.log" 2>&1 || status=1
  tail -3 "$out/backward.log"
  log "bench generate (batch 1, 32, 128; 256 prompt + 64 new tokens)"
  timeout 240 "$resp" bench generate --device cuda --config "$out/qwen3-1b.json" \
    --batches 1,32,128 --prompt-len 256 --new-tokens 64 --json "$out/generate.json" \
    >"$out/generate.log" 2>&1 || status=1
  tail -6 "$out/generate.log"

  log "summary"
  python3 - "$out" <<'PY' || true
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except Exception as e:
        return {"error": str(e)}
gemm = {}
try:
    for line in open(os.path.join(out, "gemm.jsonl")):
        g = json.loads(line); gemm[g["gemm"]] = g["tflops"]
except Exception:
    pass
print("cuBLAS TFLOP/s:", gemm)
fwd = load("forward.json"); bwd = load("backward.json"); gen = load("generate.json")
def show(name, d, keys):
    print(name + ":", {k: d.get(k) for k in keys if k in d} or d)
show("forward", fwd, ["tokens_per_s", "gflops", "sgemm_gflops", "fraction_of_sgemm"])
show("backward", bwd, [k for k in bwd if "per_s" in k or "gflop" in k or "ratio" in k])
print("generate:", json.dumps(gen)[:1500])
if "gflops" in fwd and gemm.get("bf16_in_f32_out"):
    print("forward / cuBLAS bf16 rate: %.1f%%" % (100 * fwd["gflops"] / 1e3 / gemm["bf16_in_f32_out"]))
PY
fi
log "done in $((SECONDS - start)) s, status $status"
exit $status
