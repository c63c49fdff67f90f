# Shared part of the sbatch scripts in jobs/ (sourced, not executed): where resp lives, the
# run's configuration from the environment or the script's arguments, the site environment
# file, one header per start in the (appended) job log, and the preemption pattern:
#
#   trap USR1/TERM -> forward the signal to the srun step -> wait for it (resp finishes the
#   current iteration, checkpoints and exits 0) -> USR1: `scontrol requeue` the job, whose next
#   start (SLURM_RESTART_COUNT > 0) resumes from the run directory's newest checkpoint.
#
# Settings (environment; the script's arguments win):
#   RESP_HOME      repository root (default: the submit directory; environment only)
#   RESP_BIN       resp binary (default: $RESP_HOME/build/resp)          --bin FILE
#   RESP_CONFIG    run configuration (default: per job script)          --config FILE
#   RESP_OUT       run directory (default: runs/<config name>)          --out DIR
#   RESP_SETS      config overrides, whitespace-separated key=value     --set key=value (repeatable)
#   RESP_ENV_FILE  site settings sourced before the run (jobs/env/)     --env FILE
#   RESP_SRUN_MPI  srun's MPI plug-in (default pmix)
#   RESP_SRUN_ARGS extra srun arguments (whitespace-separated)
#   RESP_RESUME    1 (default): also the first start resumes a run directory that already has
#                  checkpoints (same configuration); 0: the first start refuses such a directory
#   RESP_REQUEUE   1 (default): requeue after USR1; 0: just stop (checkpointed)
# Any other argument is passed to `resp prune` unchanged (e.g. --max-iterations 5).
# shellcheck shell=bash

resp_job_die() {
  echo "resp-job: error: $*" >&2
  exit 2
}

resp_job_log() {
  echo "resp-job[${SLURM_JOB_ID:-none}]: $*"
}

# resp_job_init DEFAULT_CONFIG DEFAULT_ENV_FILE "$@"  (the script's arguments)
resp_job_init() {
  local default_config=$1 default_env=$2
  shift 2
  RESP_JOB_SETS=()
  RESP_JOB_EXTRA=()
  # read -a splits on whitespace without glob expansion ([0.2,0.4] stays as written).
  if [[ -n ${RESP_SETS:-} ]]; then read -r -a RESP_JOB_SETS <<<"$RESP_SETS"; fi
  while (($# > 0)); do
    case $1 in
      --bin) RESP_BIN=$2; shift 2 ;;
      --config) RESP_CONFIG=$2; shift 2 ;;
      --out) RESP_OUT=$2; shift 2 ;;
      --set) RESP_JOB_SETS+=("$2"); shift 2 ;;
      --env) RESP_ENV_FILE=$2; shift 2 ;;
      *) RESP_JOB_EXTRA+=("$1"); shift ;;
    esac
  done
  RESP_HOME=${RESP_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
  RESP_BIN=${RESP_BIN:-$RESP_HOME/build/resp}
  RESP_CONFIG=${RESP_CONFIG:-$RESP_HOME/$default_config}
  RESP_ENV_FILE=${RESP_ENV_FILE:-$RESP_HOME/$default_env}
  local name
  name=$(basename "$RESP_CONFIG")
  RESP_OUT=${RESP_OUT:-runs/${name%.*}}
  RESP_SRUN_MPI=${RESP_SRUN_MPI:-pmix}
  [[ -x $RESP_BIN ]] || resp_job_die "no resp binary at $RESP_BIN (set RESP_BIN or RESP_HOME)"
  [[ -f $RESP_CONFIG ]] || resp_job_die "no configuration at $RESP_CONFIG (set RESP_CONFIG)"
  if [[ -n $RESP_ENV_FILE && $RESP_ENV_FILE != none ]]; then
    [[ -f $RESP_ENV_FILE ]] || resp_job_die "no site environment file $RESP_ENV_FILE (RESP_ENV_FILE=none skips it)"
    # shellcheck disable=SC1090
    source "$RESP_ENV_FILE"
  fi

  local restart=${SLURM_RESTART_COUNT:-0}
  RESP_JOB_RESUME=()
  if ((restart > 0)) || [[ ${RESP_RESUME:-1} == 1 ]]; then RESP_JOB_RESUME=(--resume); fi
  resp_job_log "start $restart of job ${SLURM_JOB_NAME:-?} at $(date -Is)" \
    "on ${SLURM_JOB_NUM_NODES:-1} node(s) [${SLURM_JOB_NODELIST:-$(hostname -s)}]," \
    "${SLURM_NTASKS:-?} task(s); run directory $RESP_OUT"
  if ((restart > 0)); then
    local latest=none
    [[ -f $RESP_OUT/latest ]] && latest=$(<"$RESP_OUT/latest")
    resp_job_log "restart $restart: resuming from the newest checkpoint ($latest)"
  fi
}

# RESP_JOB_ARGS: the `resp prune` arguments (--config, --out, --set ..., --resume, extras);
# RESP_JOB_SRUN_EXTRA: RESP_SRUN_ARGS as an array.
resp_job_prune_args() {
  RESP_JOB_ARGS=(prune --config "$RESP_CONFIG" --out "$RESP_OUT")
  local s
  # ${a[@]+"${a[@]}"}: empty arrays under `set -u` on bash < 4.4 too.
  for s in ${RESP_JOB_SETS[@]+"${RESP_JOB_SETS[@]}"}; do RESP_JOB_ARGS+=(--set "$s"); done
  RESP_JOB_ARGS+=(${RESP_JOB_RESUME[@]+"${RESP_JOB_RESUME[@]}"})
  RESP_JOB_ARGS+=(${RESP_JOB_EXTRA[@]+"${RESP_JOB_EXTRA[@]}"})
  RESP_JOB_SRUN_EXTRA=()
  # shellcheck disable=SC2034  # used by the job scripts
  if [[ -n ${RESP_SRUN_ARGS:-} ]]; then read -r -a RESP_JOB_SRUN_EXTRA <<<"$RESP_SRUN_ARGS"; fi
}

RESP_JOB_SIGNAL=""
RESP_JOB_CHILD=""
resp_job_on_signal() {
  RESP_JOB_SIGNAL=$1
  resp_job_log "got SIG$1 at $(date -Is): forwarding it to the job step; resp stops after" \
    "the current iteration's checkpoint"
  if [[ -n $RESP_JOB_CHILD ]]; then kill -s "$1" "$RESP_JOB_CHILD" 2>/dev/null || true; fi
}

# True when the run directory's newest checkpoint is the schedule's last iteration.
resp_job_run_finished() {
  local done_iters total
  done_iters=$("$RESP_BIN" inspect "$RESP_OUT" 2>/dev/null |
    sed -n '1s/.*, \([0-9][0-9]*\) iterations done.*/\1/p') || return 1
  total=$(awk '/^schedule:/ {s = 1; next} /^[^ ]/ {s = 0} s && $1 == "iterations:" {print $2}' \
    "$RESP_OUT/config.yaml" 2>/dev/null) || return 1
  [[ -n $done_iters && -n $total && $done_iters -ge $total ]]
}

# resp_job_run COMMAND...: runs the job step in the background, forwards USR1/TERM to it, waits,
# and requeues after USR1 unless the run finished. Exits with the step's status.
resp_job_run() {
  trap 'resp_job_on_signal USR1' USR1
  trap 'resp_job_on_signal TERM' TERM
  if [[ $RESP_JOB_SIGNAL == USR1 ]]; then  # the signal came before the step started
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
  fi
  resp_job_log "step: $*"
  "$@" &
  RESP_JOB_CHILD=$!
  local rc=0
  while :; do
    wait "$RESP_JOB_CHILD" && rc=0 || rc=$?
    # A trapped signal interrupts `wait` (status > 128) while the step still runs.
    if [[ -n $RESP_JOB_SIGNAL ]] && kill -0 "$RESP_JOB_CHILD" 2>/dev/null; then continue; fi
    break
  done
  RESP_JOB_CHILD=""
  resp_job_log "step finished with status $rc at $(date -Is)"
  if [[ $RESP_JOB_SIGNAL == USR1 && $rc == 0 && ${RESP_REQUEUE:-1} == 1 ]]; then
    if resp_job_run_finished; then
      resp_job_log "the run finished before it could stop: not requeued"
    else
      resp_job_log "requeueing job $SLURM_JOB_ID; the next start resumes from $RESP_OUT"
      scontrol requeue "$SLURM_JOB_ID"
    fi
  fi
  exit "$rc"
}
