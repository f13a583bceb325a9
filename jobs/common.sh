# shellcheck shell=bash
# Shared by jobs/train.sbatch, gpu.sbatch, sweep.sbatch and local.sh (sourced, not run).
#
# What lives here, in the order a job uses it:
#   hpctrain_use_venv DIR          put DIR/bin (hpctrain, and mpiexec of the MPICH wheel) on PATH
#   hpctrain_job_id                SLURM_JOB_ID, or ARRAYJOB_TASK for an array task
#   hpctrain_check_ntasks          SLURM_NTASKS from the allocation when a requeue resized it
#   hpctrain_resume_args RUN_DIR   sets RESUME_ARGS: `--resume latest` when RUN_DIR holds a
#                                  checkpoint; `--overwrite` for a restarted job without one
#   hpctrain_launcher_cmd          sets LAUNCH: `srun --mpi=pmi2 --cpu-bind=cores ...` or
#                                  `mpiexec -n N ...`; warns when the venv's MPICH wheel
#                                  would run a multi-node allocation (hpctrain_check_mpi)
#   hpctrain_run_step CMD...       runs CMD in the background, forwards SIGUSR1/SIGTERM that
#                                  reach this shell to it, waits, sets STEP_RC
#   hpctrain_after_step            exit status 75 (checkpoint written after a signal): requeue
#                                  the Slurm job (REQUEUE=1) so that it resumes by itself
#   hpctrain_slurm_train ...       all of the above for one training run in a Slurm job
#
# The preemption flow: Slurm sends SIGUSR1 to the batch shell (`--signal=B:USR1@120`,
# or `scancel --signal=USR1 --batch JOB`); the shell's trap forwards it to the launcher
# (srun / mpiexec), which passes it to every rank; hpctrain finishes the step, writes a
# checkpoint and exits 75; the shell runs `scontrol requeue $SLURM_JOB_ID`; the job starts
# again with SLURM_RESTART_COUNT=1 in the same run directory, finds the checkpoint and
# passes `--resume latest`. A signal sent to the ranks directly (`scancel --signal=USR1
# JOB`) ends the same way.

HPCTRAIN_EXIT_PREEMPTED=75
HPCTRAIN_JOB_TAG=${HPCTRAIN_JOB_TAG:-hpctrain-job}

hpctrain_log() {
  printf '%s: %s\n' "$HPCTRAIN_JOB_TAG" "$*"
}

hpctrain_die() {
  printf '%s: error: %s\n' "$HPCTRAIN_JOB_TAG" "$*" >&2
  exit 2
}

# hpctrain_use_venv DIR: prefer DIR/bin/hpctrain; fall back to hpctrain on PATH.
hpctrain_use_venv() {
  local venv=$1
  if [ -x "$venv/bin/hpctrain" ]; then
    export VIRTUAL_ENV="$venv"
    PATH="$venv/bin:$PATH"
    export PATH
  elif command -v hpctrain >/dev/null 2>&1; then
    hpctrain_log "no virtual environment at $venv; using $(command -v hpctrain)"
  else
    hpctrain_die "hpctrain not found: no $venv/bin/hpctrain and none on PATH (set VENV=...)"
  fi
}

# hpctrain_job_id: the id a run directory is named after (array tasks: ARRAYJOB_TASK).
hpctrain_job_id() {
  if [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
    printf '%s_%s\n' "$SLURM_ARRAY_JOB_ID" "$SLURM_ARRAY_TASK_ID"
  elif [ -n "${SLURM_JOB_ID:-}" ]; then
    printf '%s\n' "$SLURM_JOB_ID"
  else
    printf 'local-%s\n' "$(date +%Y%m%d-%H%M%S)"
  fi
}

# hpctrain_resume_args RUN_DIR [RESTARTS]: sets the array RESUME_ARGS.
#   RESUME=auto (default): resume from the newest checkpoint in RUN_DIR when there is one;
#   a restarted job (RESTARTS > 0) without a checkpoint starts over (--overwrite).
#   RESUME=no: never add either flag.
hpctrain_resume_args() {
  local run_dir=$1 restarts=${2:-0}
  RESUME_ARGS=()
  [ "${RESUME:-auto}" = no ] && return 0
  if compgen -G "$run_dir/checkpoints/ckpt-*.h5" >/dev/null; then
    RESUME_ARGS=(--resume latest)
    hpctrain_log "restart $restarts: resuming from the latest checkpoint in $run_dir/checkpoints"
  elif [ "$restarts" -gt 0 ]; then
    RESUME_ARGS=(--overwrite)
    hpctrain_log "restart $restarts: no checkpoint in $run_dir; starting the run again"
  fi
}

# hpctrain_alloc_tasks: the number of tasks of this allocation, from SLURM_TASKS_PER_NODE
# ("2(x3),1" -> 7); empty outside Slurm.
hpctrain_alloc_tasks() {
  local part count rep total=0
  [ -n "${SLURM_TASKS_PER_NODE:-}" ] || return 0
  local IFS=,
  for part in $SLURM_TASKS_PER_NODE; do
    count=${part%%(*}
    rep=1
    case "$part" in *"(x"*) rep=${part#*(x}; rep=${rep%)} ;; esac
    total=$((total + count * rep))
  done
  printf '%s\n' "$total"
}

# hpctrain_check_ntasks: a job requeued onto fewer nodes (`scontrol update jobid=J
# NumNodes=3 NumTasks=3` while it waits) keeps the SLURM_NTASKS of its first run, and srun
# would start that many ranks on the nodes it has now; use the allocation's count.
hpctrain_check_ntasks() {
  local alloc
  alloc=$(hpctrain_alloc_tasks)
  if [ -n "$alloc" ] && [ -n "${SLURM_NTASKS:-}" ] && [ "$alloc" != "$SLURM_NTASKS" ]; then
    hpctrain_log "SLURM_NTASKS=$SLURM_NTASKS is not this allocation's $alloc tasks ($SLURM_TASKS_PER_NODE per node" \
      "on ${SLURM_JOB_NODELIST:-?}; a requeued job that was resized?): starting $alloc ranks"
    export SLURM_NTASKS=$alloc SLURM_NPROCS=$alloc
  fi
}

# hpctrain_check_mpi: one warning line when this job spans several nodes and the Python
# on PATH (the venv's) has the MPICH wheel from PyPI: mpi4py then loads that MPICH, which
# talks TCP between nodes instead of the site MPI's interconnect (InfiniBand, Slingshot).
# HPCTRAIN_NO_MPI_WARNING=1 silences it (a site that ships that MPICH on purpose).
hpctrain_check_mpi() {
  local nodes=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
  [ "$nodes" -gt 1 ] 2>/dev/null || return 0
  local py
  py=$(command -v python3 || command -v python) || return 0
  if "$py" -c 'import importlib.metadata as m; m.distribution("mpich")' 2>/dev/null \
      && [ -z "${HPCTRAIN_NO_MPI_WARNING:-}" ]; then
    hpctrain_log "WARNING: the MPICH wheel from PyPI (pip package mpich in ${VIRTUAL_ENV:-this Python}) runs" \
      "this $nodes-node job over TCP, not the site MPI: load the site's MPI module and" \
      "'pip uninstall mpich' in the venv (or set VENV to one built for it); docs/cluster.md"
  fi
}

# hpctrain_launcher_cmd: sets the array LAUNCH from LAUNCHER (srun | mpiexec), NTASKS and
# SRUN_MPI / SRUN_WAIT / SRUN_CPU_BIND / SRUN_ARGS / MPIEXEC_ARGS.
hpctrain_launcher_cmd() {
  local n=${NTASKS:-${SLURM_NTASKS:-1}}
  hpctrain_check_mpi
  case "${LAUNCHER:-srun}" in
    srun)
      # --wait: once one task has ended, the others get SRUN_WAIT seconds before they are
      # killed. A rank that is killed (its node lost, out of memory) or dies in MPI_Init
      # leaves the others blocked in MPI for good; every rank of a healthy job leaves through
      # the same final agreement and MPI_Finalize, within milliseconds of the first. Not
      # --kill-on-bad-exit: after a stop signal every rank exits 75 at the same moment, and
      # killing the slower ones would turn the job's status into 137.
      # shellcheck disable=SC2206  # SRUN_ARGS is a list of words on purpose
      # --cpu-bind: one core per rank (BLAS threads stay on their cores); SRUN_CPU_BIND
      # overrides it (e.g. none, sockets, or the site's map_cpu list). Left out where the
      # cluster has no affinity plugin (TaskPlugin=task/none), where srun would only complain.
      local bind=(--cpu-bind="${SRUN_CPU_BIND:-cores}")
      if [ -z "${SRUN_CPU_BIND:-}" ] && scontrol show config 2>/dev/null | grep -Eq '^TaskPlugin +=( task/none)+$'; then
        bind=()
      fi
      LAUNCH=(srun "--mpi=${SRUN_MPI:-pmi2}" "--wait=${SRUN_WAIT:-10}" "${bind[@]}" ${SRUN_ARGS:-})
      ;;
    mpiexec | mpirun)
      # The MPI library's own launcher inside the allocation (MPICH's hydra and Open MPI
      # read the Slurm allocation and start their daemons with srun).
      command -v "$LAUNCHER" >/dev/null 2>&1 || hpctrain_die "$LAUNCHER not found (load the MPI module, or LAUNCHER=srun)"
      # shellcheck disable=SC2206
      LAUNCH=("$LAUNCHER" -n "$n" ${MPIEXEC_ARGS:-})
      ;;
    *)
      hpctrain_die "LAUNCHER=${LAUNCHER} (use srun or mpiexec)"
      ;;
  esac
}

_hpctrain_forward() {
  local sig=$1
  HPCTRAIN_SIGNALLED=$sig
  hpctrain_log "got SIG$sig; forwarding it to the job step (pid $HPCTRAIN_STEP_PID): checkpoint and stop"
  kill -s "$sig" "$HPCTRAIN_STEP_PID" 2>/dev/null || true
}

# hpctrain_run_step CMD...: run CMD in the background so that this shell can take signals
# (bash runs a trap only between commands, never while a foreground command runs), forward
# SIGUSR1 and SIGTERM to it, and wait for it to end; STEP_RC is its exit status.
hpctrain_run_step() {
  HPCTRAIN_SIGNALLED=
  "$@" &
  HPCTRAIN_STEP_PID=$!
  trap '_hpctrain_forward USR1' USR1
  trap '_hpctrain_forward TERM' TERM
  while :; do
    STEP_RC=0
    wait "$HPCTRAIN_STEP_PID" || STEP_RC=$?
    # A trapped signal ends `wait` early (status > 128) while the step still runs
    # (or is not yet reaped): wait again for its real exit status.
    kill -0 "$HPCTRAIN_STEP_PID" 2>/dev/null || break
  done
  trap - USR1 TERM
}

# hpctrain_after_step: exit with the step's status, after requeueing a preempted Slurm job.
hpctrain_after_step() {
  if [ "$STEP_RC" -eq "$HPCTRAIN_EXIT_PREEMPTED" ]; then
    if [ -n "${SLURM_JOB_ID:-}" ] && [ "${REQUEUE:-1}" = 1 ]; then
      hpctrain_log "checkpoint written after a stop signal${HPCTRAIN_SIGNALLED:+ (SIG$HPCTRAIN_SIGNALLED to this shell)}" \
        "(exit $STEP_RC); requeueing job $SLURM_JOB_ID"
      if scontrol requeue "$SLURM_JOB_ID"; then
        exit 0  # the requeue ends this run of the job; the next one resumes
      fi
      hpctrain_log "scontrol requeue failed (job submitted with --no-requeue, or JobRequeue=0?);" \
        "resubmit with the same RUN_DIR to resume"
    else
      hpctrain_log "checkpoint written after a stop signal (exit $STEP_RC); run again to resume"
    fi
  elif [ "$STEP_RC" -gt 128 ]; then
    hpctrain_log "job step failed with exit status $STEP_RC: a rank was killed (SIG$(kill -l "$((STEP_RC - 128))" 2>/dev/null || echo "$((STEP_RC - 128))")):" \
      "its node was lost, or it ran out of memory; the launcher's error lines above name the node and task." \
      "The last complete checkpoint is kept: submit again (or scontrol requeue ${SLURM_JOB_ID:-JOB}) to resume"
  elif [ "$STEP_RC" -ne 0 ]; then
    hpctrain_log "job step failed with exit status $STEP_RC"
  fi
  exit "$STEP_RC"
}

# hpctrain_slurm_train RUN_DIR CONFIG [RANK_WRAPPER...]: one training run inside a Slurm
# batch job; extra hpctrain flags come from TRAIN_ARGS (words) and CHECKPOINT_EVERY / KEEP.
hpctrain_slurm_train() {
  local run_dir=$1 config=$2
  shift 2
  local restarts=${SLURM_RESTART_COUNT:-0}
  mkdir -p "$run_dir"
  hpctrain_check_ntasks
  hpctrain_log "job ${SLURM_JOB_ID:-?} restart $restarts on ${SLURM_JOB_NODELIST:-$(hostname -s)}:" \
    "${SLURM_NTASKS:-?} tasks, launcher ${LAUNCHER:-srun}, config $config, run dir $run_dir"
  hpctrain_resume_args "$run_dir" "$restarts"
  hpctrain_launcher_cmd
  local args=(train)
  [ -n "$config" ] && args+=("$config")
  args+=(--out "$run_dir")
  [ -n "${CHECKPOINT_EVERY:-}" ] && args+=(--checkpoint-every "$CHECKPOINT_EVERY")
  [ -n "${KEEP:-}" ] && args+=(--keep "$KEEP")
  # shellcheck disable=SC2206  # TRAIN_ARGS is a list of words on purpose
  args+=(${TRAIN_ARGS:-} "${RESUME_ARGS[@]}")
  hpctrain_log "running: ${LAUNCH[*]}${*:+ $*} hpctrain ${args[*]}"
  hpctrain_run_step "${LAUNCH[@]}" "$@" hpctrain "${args[@]}"
  hpctrain_after_step
}
