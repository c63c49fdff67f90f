#!/usr/bin/env bash
# One-step set-up on Debian 12: installs every Debian package resp needs, then configures and
# builds it (Release) into build/. Re-running is cheap: apt skips installed packages and the
# build is incremental.
#
#   tools/setup.sh                 # packages + build
#   tools/setup.sh --no-install    # build only (packages already present)
#   tools/setup.sh --with-python   # also the Python packages of the reference tools in tools/
#   tools/setup.sh --with-slurm    # also slurm-wlm + munge (the local Slurm test, label slurm)
#   BUILD_DIR=... CMAKE_ARGS="..." tools/setup.sh
set -euo pipefail

cd "$(dirname "$0")/.."
install=1
python=0
slurm=0
for arg in "$@"; do
  case "$arg" in
    --no-install) install=0 ;;
    --with-python) python=1 ;;
    --with-slurm) slurm=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential cmake pkg-config git
  libopenmpi-dev openmpi-bin          # MPI: ranks, collectives
  libhdf5-openmpi-dev hdf5-tools      # checkpoints (parallel HDF5)
  libopenblas-openmp-dev              # sgemm; the OpenMP build shares our thread pool
  nlohmann-json3-dev libcli11-dev libyaml-cpp-dev libicu-dev
  libgtest-dev                        # tests
  qemu-user                           # tests: the portable binary on emulated older CPUs
)
if [[ $python == 1 ]]; then
  packages+=(python3-torch python3-numpy python3-h5py python3-matplotlib)
fi
if [[ $slurm == 1 ]]; then
  packages+=(slurm-wlm munge)  # tools/slurm_local_test.sh starts its own daemons
fi

if [[ $install == 1 ]]; then
  sudo=""
  if [[ $(id -u) != 0 ]]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

build_dir=${BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
echo "setup.sh: built $build_dir/resp"
