#!/bin/sh
# Runs the ISA tests on emulated CPUs (qemu user mode): a Nehalem (no AVX) must run the portable
# binary on the baseline kernels, a Haswell (AVX2 + FMA, no AVX-512) on the avx2 ones, each path
# matching the baseline. Catches AVX instructions leaking into code every CPU runs, which this
# machine's own CPU cannot. Exit 77 (skipped) without qemu-x86_64 (Debian: qemu-user).
set -u
test_bin=$1
command -v qemu-x86_64 >/dev/null 2>&1 || { echo "qemu-x86_64 not installed: skipped"; exit 77; }
status=0
for spec in Nehalem:baseline Haswell:avx2; do
  cpu=${spec%%:*}
  expect=${spec#*:}
  echo "== qemu-x86_64 -cpu $cpu (expect $expect)"
  out=$(env -u RESP_CPU_ISA RESP_CPU_ISA_EXPECT="$expect" OMP_NUM_THREADS=2 \
    qemu-x86_64 -cpu "$cpu" "$test_bin" --gtest_brief=1 2>&1)
  rc=$?
  # qemu warns about every host-only CPUID feature it cannot emulate: noise.
  printf '%s\n' "$out" | grep -v "^qemu-x86_64: warning"
  [ $rc -eq 0 ] || { echo "FAILED on $cpu (exit $rc)"; status=1; }
done
exit $status
