#!/usr/bin/env bash
# Fuzzes the readers of untrusted input for longer than ctest does (docs/fuzzing.md) and prints
# the inputs executed per reader.
#
#   tools/fuzz.sh [--seconds N] [--reader R]... [--seed S] [--build DIR]
#       the seeded mutation fuzzer (test_fuzz) for N seconds per reader (default 60)
#   tools/fuzz.sh --libfuzzer [--seconds N] [--reader R]... [--build DIR]
#       libFuzzer binaries (clang, ASan + UBSan, coverage-guided); DIR defaults to
#       build-libfuzzer and is configured on first use. New inputs go to DIR/fuzz-corpus/R.
#   tools/fuzz.sh --make-corpus [--build DIR]    rewrites tests/fuzz/corpus/ (fuzz_make_corpus)
#   tools/fuzz.sh --repro FILE --reader R [--build DIR]   replays one saved input
#
# DIR defaults to build (the README's); an ASan build (build-asan, RESP_SANITIZE=ON) finds more.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=60 seed=1 build="" mode=gtest repro=""
readers=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --reader) readers+=("$2"); shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --libfuzzer) mode=libfuzzer; shift ;;
    --make-corpus) mode=corpus; shift ;;
    --repro) mode=repro; repro=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
suite=(safetensors safetensors_index model_config generation_config tokenizer_json
       tokenizer_config chat_template prune_config train_config jsonl run_checkpoint scores_h5 gguf)
# hdf5_bytes (raw bytes through libhdf5) runs only when named: its findings are libhdf5's.
[[ ${#readers[@]} -eq 0 ]] && readers=("${suite[@]}")
for r in "${readers[@]}"; do
  [[ " ${suite[*]} hdf5_bytes " == *" $r "* ]] || { echo "fuzz.sh: no reader $r (${suite[*]} hdf5_bytes)" >&2; exit 2; }
done
jobs=$(nproc 2>/dev/null || echo 2)

if [[ $mode == libfuzzer ]]; then
  build=${build:-build-libfuzzer}
  if [[ ! -f $build/CMakeCache.txt ]]; then
    # Coverage instrumentation in every library, not only in the fuzz binaries.
    CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DRESP_ENABLE_CUDA=OFF -DRESP_NATIVE=OFF -DRESP_SANITIZE=ON -DRESP_LIBFUZZER=ON \
      -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link
  fi
  cmake --build "$build" -j"$jobs" --target $(printf 'fuzz_%s ' "${readers[@]}")
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  printf '%-20s %12s %10s %8s\n' reader inputs per_s result
  status=0
  for r in "${readers[@]}"; do
    out=$build/fuzz-corpus/$r
    mkdir -p "$out" "$build/fuzz-findings"
    log=$build/fuzz-findings/$r.log
    set +e
    "$build/tests/fuzz/fuzz_$r" "$out" "tests/fuzz/corpus/$r" -max_total_time="$seconds" \
      -timeout=30 -rss_limit_mb=4096 -malloc_limit_mb=1024 -print_final_stats=1 \
      -artifact_prefix="$build/fuzz-findings/$r-" >"$log" 2>&1
    rc=$?
    set -e
    n=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    result=ok
    [[ $rc -ne 0 ]] && { result="FINDING (see $log)"; status=1; }
    printf '%-20s %12s %10s %8s\n' "$r" "$n" "$(( n / (seconds > 0 ? seconds : 1) ))" "$result"
  done
  exit $status
fi

build=${build:-build}
if [[ $mode == corpus ]]; then
  cmake --build "$build" -j"$jobs" --target fuzz_make_corpus
  "$build/tests/fuzz/fuzz_make_corpus" "$root/tests/fuzz/corpus"
  du -sh tests/fuzz/corpus
  exit 0
fi

cmake --build "$build" -j"$jobs" --target test_fuzz
if [[ $mode == repro ]]; then
  RESP_FUZZ_READER=${readers[0]} RESP_FUZZ_REPRO=$repro "$build/tests/fuzz/test_fuzz" \
    --gtest_filter='FuzzRepro.*'
  exit $?
fi

report=$(mktemp)
trap 'rm -f "$report"' EXIT
filter=$(printf 'Readers/Fuzz.Reader/%s:' "${readers[@]}")
set +e
RESP_FUZZ_SECONDS=$seconds RESP_FUZZ_SEED=$seed RESP_FUZZ_REPORT=$report RESP_FUZZ_ALL=1 \
  "$build/tests/fuzz/test_fuzz" --gtest_filter="${filter%:}"
rc=$?
set -e
python3 - "$report" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"\n{'reader':<20} {'inputs':>10} {'per s':>8} {'accepted':>9} {'slowest s':>10}  result")
for r in rows:
    per_s = r["inputs"] / max(r["seconds"], 1e-9)
    print(f"{r['reader']:<20} {r['inputs']:>10} {per_s:>8.0f} {r['accepted']:>9} "
          f"{r['slowest_s']:>10.3f}  {'FINDING' if r['failed'] else 'ok'}")
print(f"{'total':<20} {sum(r['inputs'] for r in rows):>10}")
EOF
exit $rc
