#!/usr/bin/env bash
# One command for a GPU machine, in two parts that each fit one device session:
#
#   tools/device-check.sh --tests-only   # ~3-6 min: build the GPU test binaries, run ctest -L gpu
#   tools/device-check.sh --bench-only   # ~5 min: build resp, cuBLAS reference rates, benchmarks
#   tools/device-check.sh                # both
#
# --tests-only reuses $BUILD_DIR when it is already configured (carry a prebuilt build folder to
# skip most of the compile), builds only the test targets, and runs the tests labelled `gpu`
# with a per-test timeout (TEST_TIMEOUT, default 120 s) and RESP_GPU_TEST_REQUIRED=1 when
# nvidia-smi lists a GPU, so a GPU the tests cannot use (e.g. a driver too old for this build's
# CUDA runtime) fails them instead of skipping them. --bench-only runs the benchmarks on a
# ~1.1B-parameter random Qwen3 (prefill, forward+backward, generate at batch 1/32/128).
#
# Evidence: every log and summary.json go to $OUT/device-check when OUT is set, else to
# $BUILD_DIR/device-check. summary.json: {"gpu": name or null, "tests_passed": N,
# "tests_failed": [names], "gpu_tests_skipped": N, "tests_total": N, "bench": {...}, "status": N}.
# The failed tests are printed by name.
#
# Exit status: 0 all good (also on a machine without a GPU, where the GPU tests skip: the script
# says so); 1 a test or benchmark failed; 2 missing tools or a bad option; 3 configure or build
# failed; 4 a GPU is present (nvidia-smi lists one) but GPU tests skipped.
#
#   BUILD_DIR=build-device CUDA_ARCH=90 JOBS=$(nproc) TEST_TIMEOUT=120 tools/device-check.sh ...
#
# Prerequisites: the CUDA toolkit (nvcc, cuBLAS, NCCL) plus what tools/setup.sh installs on
# Debian (cmake, g++, OpenMPI, HDF5, OpenBLAS, nlohmann-json, CLI11, yaml-cpp, ICU, gtest).
set -uo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build-device}
arch=${CUDA_ARCH:-90}
jobs=${JOBS:-$(nproc)}
test_timeout=${TEST_TIMEOUT:-120}
mode=all
for arg in "$@"; do
  case "$arg" in
    --tests-only) mode=tests ;;
    --bench-only) mode=bench ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "device-check: unknown option $arg" >&2; exit 2 ;;
  esac
done
if [[ -n ${OUT:-} ]]; then logs="$OUT/device-check"; else logs="$build/device-check"; fi
mkdir -p "$logs" || { echo "device-check: cannot create $logs" >&2; exit 2; }
logs=$(cd "$logs" && pwd)
start=$SECONDS
log() { printf '[device-check %3ds] %s\n' $((SECONDS - start)) "$*" | tee -a "$logs/device-check.log"; }
log "mode $mode, build $build, logs in $logs"

# ---- prerequisites ----------------------------------------------------------------------------
export PATH="$PATH:/usr/local/cuda/bin"
missing=()
for tool in cmake g++ nvcc mpicc python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  log "missing ${missing[*]}; install the packages listed in tools/setup.sh and the CUDA toolkit"
  exit 2
fi
gpu=""
if command -v nvidia-smi >/dev/null; then
  nvidia-smi >"$logs/nvidia-smi.txt" 2>&1
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_mode --format=csv,noheader \
    >"$logs/gpus.csv" 2>&1
  gpu=$(nvidia-smi -L 2>/dev/null | grep -m1 '^GPU ' || true)
  cat "$logs/gpus.csv"
fi
if [[ -n $gpu ]]; then
  log "GPU: $gpu"
  # A GPU the tests cannot use must fail them, not skip them (0 from the caller: see exit 4).
  export RESP_GPU_TEST_REQUIRED=${RESP_GPU_TEST_REQUIRED:-1}
else
  log "NO GPU on this machine (nvidia-smi missing or lists none): GPU tests skip (the run" \
      "checks that they build and that the tests needing no GPU pass), benchmarks do not run"
fi

# ---- build ------------------------------------------------------------------------------------
build_targets() {
  if [[ -f $build/CMakeCache.txt ]]; then
    log "reusing configured $build"
  else
    log "configure $build (CUDA_ARCHITECTURES=$arch)"
    if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRESP_ENABLE_CUDA=ON \
         -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$logs/configure.log" 2>&1; then
      tail -30 "$logs/configure.log"; log "configure failed"; return 1
    fi
  fi
  local targets=("$@")
  # test_nccl exists only when NCCL was found.
  if [[ " ${targets[*]} " == *" test_nccl "* ]] &&
     ! grep -qs 'test_nccl' "$build/Makefile" "$build/build.ninja"; then
    targets=("${targets[@]/test_nccl/}")
  fi
  log "build -j$jobs: ${targets[*]}"
  if ! cmake --build "$build" -j"$jobs" --target ${targets[*]} >"$logs/build.$mode.log" 2>&1; then
    grep -E "error|Error" "$logs/build.$mode.log" | head -30; log "build failed"; return 1
  fi
}

status=0
tests_json='null'
bench_json='null'

# ---- tests ------------------------------------------------------------------------------------
if [[ $mode != bench ]]; then
  if ! build_targets test_cuda_backend test_cuda_model test_nccl; then
    status=3
  else
    log "GPU tests: ctest -L gpu --timeout $test_timeout"
    (cd "$build" && timeout 330 ctest -L gpu -j2 --timeout "$test_timeout" --output-on-failure \
      --output-junit "$logs/ctest-gpu.xml") >"$logs/ctest-gpu.log" 2>&1
    ctest_rc=$?
    ((ctest_rc == 124)) && log "ctest ran past 330 s and was stopped"
    tests_json=$(python3 - "$logs/ctest-gpu.xml" "$logs/ctest-gpu.log" <<'PY'
import json, re, sys, xml.etree.ElementTree as ET
passed, failed, skipped, total = 0, [], [], 0
try:
    for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
        total += 1
        # Parameterised gtest names carry "  # GetParam() = ...": the name is enough.
        name, st = tc.get("name", "").split("  # ")[0], tc.get("status", "")
        if tc.find("failure") is not None or st == "fail":
            failed.append(name)
        elif tc.find("skipped") is not None or st in ("notrun", "disabled"):
            skipped.append(name)
        else:
            passed += 1
except Exception:  # no junit (ctest stopped early): read the log's own lists
    log = open(sys.argv[2], errors="replace").read()
    passed = len(re.findall(r"Test +#\d+: \S+ \.+ +Passed", log))
    failed = re.findall(r"^\s*\d+ - (\S+) \((?:Failed|Timeout|SEGFAULT|Exception|Not Run)", log, re.M)
    skipped = re.findall(r"^\s*\d+ - (\S+) \(Skipped\)", log, re.M)
    total = passed + len(failed) + len(skipped)
print(json.dumps({"tests_total": total, "tests_passed": passed, "tests_failed": failed,
                  "gpu_tests_skipped": len(skipped), "skipped": skipped[:50]}))
PY
)
    [[ -z $tests_json ]] && tests_json='{"tests_total": 0, "tests_passed": 0, "tests_failed": ["(ctest output unreadable)"], "gpu_tests_skipped": 0}'
    grep -E "tests passed|tests failed|Total Test time" "$logs/ctest-gpu.log"
    failed_list=$(python3 -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])["tests_failed"]))' "$tests_json")
    n_skipped=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["gpu_tests_skipped"])' "$tests_json")
    n_total=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tests_total"])' "$tests_json")
    if [[ -n $failed_list ]]; then
      log "FAILED tests:"
      while IFS= read -r t; do log "  $t"; done <<<"$failed_list"
      status=1
    elif ((ctest_rc != 0)); then
      log "ctest exited $ctest_rc without a failed test listed (see ctest-gpu.log)"; status=1
    elif ((n_total == 0)); then
      log "no GPU tests ran (see ctest-gpu.log)"; status=1
    fi
    if ((n_skipped > 0)); then
      if [[ -n $gpu ]]; then
        log "ERROR: $n_skipped GPU tests skipped although nvidia-smi lists a GPU"
        ((status == 0)) && status=4
      else
        log "$n_skipped GPU tests skipped: expected without a GPU"
      fi
    fi
  fi
fi

# ---- benchmarks -------------------------------------------------------------------------------
if [[ $mode != tests && $status -ne 3 ]]; then
  if [[ -z $gpu ]]; then
    log "benchmarks skipped: no GPU"
  elif ! build_targets resp; then
    status=3
  else
    # ~1.1B parameters: 16 layers of Qwen3 at hidden 2048 (GQA 16/8, head_dim 128, FFN 6144)
    # plus a tied 151936 x 2048 embedding.
    cat >"$logs/qwen3-1b.json" <<'JSON'
{"architectures": ["Qwen3ForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 16,
 "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
 "intermediate_size": 6144, "vocab_size": 151936, "max_position_embeddings": 8192,
 "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true}
JSON
    resp="$build/resp"
    log "cuBLAS reference GEMM rates"
    if nvcc -O2 -std=c++17 -arch=sm_"$arch" tools/cublas_gemm_rate.cu -lcublas \
         -o "$logs/gemm_rate" >"$logs/gemm_rate.build.log" 2>&1; then
      timeout 120 "$logs/gemm_rate" >"$logs/gemm.jsonl" 2>"$logs/gemm_rate.log" || status=1
      cat "$logs/gemm.jsonl"
    else
      tail -5 "$logs/gemm_rate.build.log"; status=1
    fi
    log "bench forward (prefill, 4 x 2048 tokens)"
    timeout 180 "$resp" bench forward --device cuda --config "$logs/qwen3-1b.json" --batch 4 \
      --seq 2048 --json "$logs/forward.json" >"$logs/forward.log" 2>&1 || status=1
    tail -3 "$logs/forward.log"
    log "bench backward (forward + backward, 2 x 2048 tokens)"
    timeout 180 "$resp" bench backward --device cuda --config "$logs/qwen3-1b.json" --samples 2 \
      --seq 2048 --json "$logs/backward.json" >"$logs/backward.log" 2>&1 || status=1
    tail -3 "$logs/backward.log"
    log "bench generate (batch 1, 32, 128; 256 prompt + 64 new tokens)"
    timeout 240 "$resp" bench generate --device cuda --config "$logs/qwen3-1b.json" \
      --batches 1,32,128 --prompt-len 256 --new-tokens 64 --json "$logs/generate.json" \
      >"$logs/generate.log" 2>&1 || status=1
    tail -6 "$logs/generate.log"
    bench_json=$(python3 - "$logs" <<'PY'
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
res = {"cublas_tflops": gemm, "forward": load("forward.json"), "backward": load("backward.json"),
       "generate": load("generate.json")}
fwd = res["forward"]
if isinstance(fwd, dict) and "gflops" in fwd and gemm.get("bf16_in_f32_out"):
    res["forward_fraction_of_cublas_bf16"] = fwd["gflops"] / 1e3 / gemm["bf16_in_f32_out"]
print(json.dumps(res))
PY
)
    [[ -z $bench_json ]] && bench_json='{"error": "summary failed"}'
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("cuBLAS TFLOP/s:", d.get("cublas_tflops")); print("forward / cuBLAS bf16:", d.get("forward_fraction_of_cublas_bf16"))' "$bench_json"
  fi
fi

# ---- summary ----------------------------------------------------------------------------------
python3 - "$logs/summary.json" "$gpu" "$mode" "$status" "$tests_json" "$bench_json" \
  "$((SECONDS - start))" <<'PY'
import json, sys
path, gpu, mode, status, tests, bench, secs = sys.argv[1:8]
s = {"gpu": gpu or None, "mode": mode, "status": int(status), "seconds": int(secs)}
t = json.loads(tests)
s.update(t if t else {"tests_passed": None, "tests_failed": [], "gpu_tests_skipped": None})
s["bench"] = json.loads(bench)
with open(path, "w") as f:
    json.dump(s, f, indent=1)
PY
log "summary: $logs/summary.json"
log "done in $((SECONDS - start)) s, status $status"
exit $status
