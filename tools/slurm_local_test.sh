#!/usr/bin/env bash
# Real Slurm integration test (ctest label `slurm`). On this host, in a scratch directory, it
# starts munged, slurmctld and slurmd (one node, 2 CPUs); checks that ranks that do not join
# one MPI job are refused (SLURM_NTASKS world-size check); submits jobs/smoke-cpu.sbatch (2 ranks, configs/default.yaml shortened by --set);
# after the first checkpoint sends the batch shell USR1 — what `#SBATCH --signal=B:USR1@lead`
# does before a time limit — so the job forwards it to srun, resp stops at the next checkpoint,
# the job requeues itself and its restart resumes; then it checks that the finished run equals an
# uninterrupted one (masked safetensors export compared byte for byte, same per-iteration
# table). Every daemon it started is stopped by PID on exit.
#
#   tools/slurm_local_test.sh [RESP_BINARY]        (default build/resp)
#
# Installs nothing: `tools/setup.sh --with-slurm` installs slurm-wlm and munge (as .ci/run does).
# Exit status: 0 passed, 1 failed, 77 skipped (slurm-wlm/munge missing, not root, or the daemons
# cannot start here). RESP_SLURM_TEST_REQUIRED=1 turns a skip into a failure (CI);
# RESP_SLURM_TEST_KEEP=1 keeps the scratch directory; RESP_SLURM_TEST_MPI sets the srun MPI
# plug-in (default pmix).
set -euo pipefail

readonly SKIP=77
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
resp_bin=$(realpath "${1:-$repo/build/resp}")
export PATH=$PATH:/usr/sbin:/sbin
t0=$(date +%s)

say() { echo "slurm-test [$(($(date +%s) - t0)) s]: $*"; }

work=""
dump_logs() {
  [[ -n $work && -d $work ]] || return 0
  local f
  for f in "$work"/log/*.log "$work"/*.out; do
    [[ -f $f ]] || continue
    echo "---- tail of $f"
    tail -n 40 "$f"
  done
}
fail() {
  echo "FAIL: $*" >&2
  dump_logs >&2
  exit 1
}
skip() {
  if [[ ${RESP_SLURM_TEST_REQUIRED:-0} == 1 ]]; then
    fail "cannot run ($*) and RESP_SLURM_TEST_REQUIRED=1"
  fi
  echo "SKIP: $*"
  exit "$SKIP"
}

[[ -x $resp_bin ]] || fail "no resp binary at $resp_bin"
missing=()
for c in munged munge unmunge slurmctld slurmd sbatch salloc srun scontrol squeue sinfo scancel; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
if ((${#missing[@]} > 0)); then
  skip "slurm-wlm/munge not installed (missing: ${missing[*]}); install with tools/setup.sh --with-slurm"
fi
[[ $(id -u) == 0 ]] || skip "needs root (slurmd must run as root to start jobs)"

# Never talk to a site's Slurm: forget any job/cluster settings inherited from the caller.
while IFS= read -r v; do unset "$v"; done < <(compgen -v SLURM_ || true)

work=$(mktemp -d "${TMPDIR:-/tmp}/resp-slurm.XXXXXX")
chmod 755 "$work"
# Every process started from here on (daemons, slurmstepd, job shells, srun, resp) inherits
# this tag; the clean-up finds leftovers by it and kills them by PID.
export RESP_SLURM_TEST_TAG=$work

daemon_pids=()
tagged_pids() {
  local p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    if { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qxF "RESP_SLURM_TEST_TAG=$work"; then
      echo "$p"
    fi
  done
}
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? i p
  set +e
  trap - EXIT INT TERM
  if ((${#daemon_pids[@]} > 0)) && [[ -n ${SLURM_CONF:-} ]]; then
    scancel --quiet --user=root 2>/dev/null
    for ((i = 0; i < 50; i++)); do
      [[ -z $(squeue -h -t R,CG 2>/dev/null) ]] && break
      sleep 0.2
    done
  fi
  for ((i = ${#daemon_pids[@]} - 1; i >= 0; i--)); do stop_pid "${daemon_pids[i]}"; done
  for p in $(tagged_pids); do
    echo "slurm-test: killing leftover process $p ($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-80))"
    kill -KILL "$p" 2>/dev/null
  done
  if [[ $rc == 0 && ${RESP_SLURM_TEST_KEEP:-0} != 1 ]]; then
    rm -rf "$work"
  else
    echo "slurm-test: scratch directory kept: $work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS COMMAND...: polls every 0.2 s; false on timeout. COMMAND must be quiet.
wait_until() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@"; do
    (($(date +%s) < deadline)) || return 1
    sleep 0.2
  done
}

# ---- The workload: configs/default.yaml, made short. The uninterrupted reference runs (one
# process, outside Slurm) while the daemons start.
iterations=${RESP_SLURM_TEST_ITERATIONS:-16}
sets=(schedule.iterations="$iterations" data.num_prompts=8 generation.max_new_tokens=32)
set_args=()
for s in "${sets[@]}"; do set_args+=(--set "$s"); done
mkdir -p "$work/log"
(cd "$repo" && OMP_NUM_THREADS=1 "$resp_bin" prune --config configs/default.yaml \
  "${set_args[@]}" --out "$work/ref" >"$work/log/reference.log" 2>&1) &
ref_pid=$!

# ---- munge: key in a 700 directory, socket directory 755, everything under $work.
mkdir -p "$work/etc" "$work/run" "$work/lib" "$work/state" "$work/spool"
chmod 700 "$work/etc"
chmod 755 "$work/run" "$work/log" "$work/lib"
dd if=/dev/urandom of="$work/etc/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/etc/munge.key"
sock=$work/run/munge.sock
munged --foreground --socket="$sock" --key-file="$work/etc/munge.key" \
  --pid-file="$work/run/munged.pid" --log-file="$work/log/munged.log" \
  --seed-file="$work/lib/munged.seed" >"$work/log/munged.out.log" 2>&1 &
daemon_pids+=($!)
munge_ok() { munge -n -S "$sock" 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1; }
wait_until 15 munge_ok || skip "munged does not start here (see $work/log/munged.log)"

# ---- slurm.conf: one node (this host, 2 CPUs whatever it has), free ports, state in $work.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=$((20000 + RANDOM % 20000))
while ! port_free "$port" || ! port_free $((port + 1)); do port=$((port + 2)); done
host=$(hostname -s)
export SLURM_CONF=$work/etc/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=resptest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock,cred_expire=10
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
InactiveLimit=0
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -f "$SLURM_CONF" >"$work/log/slurmctld.out.log" 2>&1 &
daemon_pids+=($!)
slurmd -D -N "$host" -f "$SLURM_CONF" >"$work/log/slurmd.out.log" 2>&1 &
daemon_pids+=($!)
node_idle() { [[ $(sinfo -h -N -o %T 2>/dev/null) == idle ]]; }
wait_until 30 node_idle || skip "slurmctld/slurmd do not come up here (logs in $work/log)"
say "munged, slurmctld, slurmd up (pids ${daemon_pids[*]}), node $host idle"

# ---- Processes that do not join one MPI job must not each run the whole job: the batch shell
# without srun (salloc runs its command here, SLURM_NTASKS=2) hits resp's world-size check; a
# wrong srun plug-in (none) fails too (with Debian's OpenMPI, inside MPI_Init already).
mpi=${RESP_SLURM_TEST_MPI:-pmix}
set +e
(cd "$repo" && salloc --ntasks=2 "$resp_bin" prune --config configs/default.yaml \
  "${set_args[@]}" --out "$work/no-srun" >"$work/log/no-srun.log" 2>&1)
rc_nosrun=$?
(cd "$repo" && srun --mpi=none --ntasks=2 --kill-on-bad-exit=1 "$resp_bin" prune \
  --config configs/default.yaml "${set_args[@]}" --out "$work/singletons" \
  >"$work/log/singletons.log" 2>&1)
rc_none=$?
set -e
[[ $rc_nosrun == 1 ]] || fail "resp without srun in a 2-task allocation: exit $rc_nosrun, expected 1"
grep -q "^resp: error: MPI world size is 1 but SLURM_NTASKS=2" "$work/log/no-srun.log" ||
  fail "no world-size error without srun: $(head -c 400 "$work/log/no-srun.log")"
[[ $rc_none != 0 ]] || fail "srun --mpi=none started 2 singletons and resp ran them (exit 0)"
[[ ! -e $work/no-srun/latest && ! -e $work/singletons/latest ]] || fail "singletons wrote checkpoints"
say "a singleton in a 2-task allocation is refused (exit 1); srun --mpi=none fails (exit $rc_none)"

wait "$ref_pid" || fail "the reference run failed: $(tail -n 5 "$work/log/reference.log")"
say "reference run (1 process, uninterrupted) finished"

# ---- The smoke job, submitted as a user would (from the repository root).
export RESP_HOME=$repo RESP_BIN=$resp_bin RESP_OUT=$work/run RESP_SRUN_MPI=$mpi
export RESP_SMOKE_SETS="${sets[*]}" OMP_NUM_THREADS=1
job=$(cd "$repo" && sbatch --parsable --output="$work/smoke-%j.out" jobs/smoke-cpu.sbatch)
job=${job%%;*}
out=$work/smoke-$job.out
say "submitted job $job"
job_field() { scontrol -o show job "$job" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p"; }
ended() { [[ $(job_field JobState) =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE)$ ]]; }
first_ckpt() { [[ -e $work/run/iter_0000.h5 ]] || ended; }
wait_until 180 first_ckpt || fail "no first checkpoint within 180 s (job state $(job_field JobState))"
[[ $(job_field JobState) == RUNNING ]] || fail "job $job is $(job_field JobState), not RUNNING, when its first checkpoint should exist"
# What Slurm does at --signal=B:USR1@lead: USR1 to the batch shell only.
scancel --batch --signal=USR1 "$job"
say "sent USR1 to the batch shell of job $job"

requeued() { [[ $(job_field Restarts) -ge 1 ]] || ended; }
if ! wait_until 120 requeued || [[ $(job_field Restarts) -lt 1 ]]; then
  fail "job $job was not requeued (state $(job_field JobState), restarts $(job_field Restarts))"
fi
stopped_at=$(sed -n 's/.*stop requested: checkpoint of iteration \([0-9][0-9]*\).*/\1/p' "$out" | head -n 1)
[[ -n $stopped_at ]] || fail "no 'stop requested' line from resp in $out"
((stopped_at < iterations - 1)) || fail "the stop came at iteration $stopped_at, not mid-run"
say "job requeued after a collective stop at iteration $stopped_at of $iterations"
# Slurm holds a requeued job until the old launch credential expires (cred_expire=10 here,
# 120 s by default; the scheduler looks again every sched_interval=2 s). Forcing an earlier
# start (scontrol update StartTime=now) can make slurmd refuse the launch ("Job credential
# revoked"), so the test just waits.

wait_until 300 ended || fail "job $job did not finish (state $(job_field JobState))"
[[ $(job_field JobState) == COMPLETED ]] || fail "job $job ended $(job_field JobState)"
[[ $(job_field ExitCode) == 0:0 ]] || fail "job $job exit code $(job_field ExitCode)"
say "job $job completed after one restart"

# ---- The job log: appended across both starts, with the whole story in order.
expect_log() { grep -q -- "$1" "$out" || fail "job log $out lacks: $1"; }
expect_log "start 0 of job resp-smoke"
expect_log "got SIGUSR1"
expect_log "requeueing job $job"
expect_log "start 1 of job resp-smoke"
expect_log "restart 1: resuming from the newest checkpoint (iter_"
expect_log "layout: 1 node, 2 ranks (2 per node), tp=1 x dp=2, devices: cpu"
expect_log "slurm job $job.0, SLURM_NTASKS=2"
expect_log "resuming $work/run after iteration $stopped_at"
expect_log "resp prune: finished"
[[ $(grep -c "layout: " "$out") == 2 ]] || fail "expected the layout line once per start"

# ---- Same result as the uninterrupted run: the per-iteration table (timings cut) and the
# exported masked model, byte for byte.
# Columns 1-74 of `resp inspect` are iteration..loss; the phase times follow. Line 1 names the run.
table() { "$resp_bin" inspect "$1" --layers | tail -n +2 | cut -c1-74; }
diff <(table "$work/ref") <(table "$work/run") >"$work/log/table.diff" ||
  fail "per-iteration tables differ: $(head -n 20 "$work/log/table.diff")"
last=$((iterations - 1))
for r in ref run; do
  "$resp_bin" export --run "$work/$r" --iteration "$last" --format masked \
    --out "$work/export-$r" >"$work/log/export-$r.log" 2>&1 ||
    fail "export of $r failed: $(tail -n 3 "$work/log/export-$r.log")"
done
diff -r "$work/export-ref" "$work/export-run" >/dev/null ||
  fail "the exported models of the interrupted and the uninterrupted run differ"
cmp -s "$work/export-ref/model.safetensors" "$work/export-run/model.safetensors" ||
  fail "model.safetensors differs"
say "PASS: requeued run == uninterrupted run (table and masked export, iteration $last)"
