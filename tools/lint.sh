#!/usr/bin/env bash
# Source checks: clang-format (the committed .clang-format) over every C++/CUDA source, then
# clang-tidy (the committed .clang-tidy) over src/ using a configured build's compile database.
#
#   tools/lint.sh                 # format check + clang-tidy (build/ must be configured)
#   tools/lint.sh --format-only   # what .ci/run runs: seconds
#   BUILD_DIR=build-x tools/lint.sh
#   tools/lint.sh src/importance/scorer.cpp ...   # clang-tidy on these files only
# clang-tidy takes about 10 s of CPU per file here (~15 min for src/ on 2 cores), which is why CI
# runs the format check only. Exit 0 when clean, 1 on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
format_only=0
files=()
for arg in "$@"; do
  case "$arg" in
    --format-only) format_only=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "lint.sh: unknown option $arg" >&2; exit 2 ;;
    *) files+=("$arg") ;;
  esac
done

sources() {  # tracked files when this is a git checkout, else everything under the source dirs
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files "$@"
  else
    find src tests kernels tools -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) | sort
  fi
}

command -v clang-format >/dev/null || { echo "lint.sh: clang-format not installed (apt-get install clang-format)" >&2; exit 2; }
echo "== clang-format"
mapfile -t fmt < <(sources '*.cpp' '*.h' '*.cu' '*.cuh')
if ! clang-format --dry-run --Werror "${fmt[@]}"; then
  echo "lint.sh: files above are not clang-formatted (clang-format -i FILE)" >&2
  exit 1
fi
echo "clang-format: ${#fmt[@]} files clean"
[[ $format_only == 1 ]] && exit 0

command -v run-clang-tidy >/dev/null || { echo "lint.sh: clang-tidy not installed (apt-get install clang-tidy)" >&2; exit 2; }
build=${BUILD_DIR:-build}
[[ -f $build/compile_commands.json ]] || { echo "lint.sh: $build/compile_commands.json missing: configure the build first (tools/setup.sh)" >&2; exit 2; }
if [[ ${#files[@]} == 0 ]]; then
  # The CUDA backend's sources need nvcc's view of the headers; clang-tidy checks the rest.
  mapfile -t files < <(sources 'src/*.cpp' | grep -v '^src/backend/cuda/')
fi
echo "== clang-tidy (${#files[@]} files, $build)"
run-clang-tidy -p "$build" -j "$(nproc)" -quiet "${files[@]}"
