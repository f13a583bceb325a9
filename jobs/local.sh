#!/usr/bin/env bash
# train.sbatch for a workstation: `mpiexec -n N hpctrain train` with the same run directory
# and resume-from-latest logic, and the same stop-signal handling.
#
#   bash jobs/local.sh [N] [hpctrain train flags...]
#   NP=8 CONFIG=jobs/configs/tiny-a.toml bash jobs/local.sh --epochs 3
#   RUN_DIR=runs/my-run bash jobs/local.sh 4        # run again after a stop: resumes
#
# Parameters (environment variables; a first argument that is a number sets N):
#   NP          ranks [4]
#   CONFIG      TOML config of the run [jobs/configs/fashion-mnist.toml]
#   RUN_ROOT    where run directories go [<repo>/runs]
#   RUN_DIR     the run directory [$RUN_ROOT/local-<date>-<time>]; pass an existing one
#               to continue a stopped run
#   VENV        virtual environment with hpctrain (and MPICH's mpiexec) [<repo>/.venv]
#   MPIEXEC     the launcher [mpiexec: the venv's, else on PATH]; MPIEXEC_ARGS extra words
#   CHECKPOINT_EVERY, KEEP, TRAIN_ARGS, RESUME   as in jobs/train.sbatch
# Remaining arguments go to `hpctrain train`.
#
# SIGTERM or SIGUSR1 to this script (kill -USR1 PID) is forwarded to mpiexec and every rank:
# hpctrain writes a checkpoint and exits 75, and so does this script. Running it again with
# the same RUN_DIR resumes from that checkpoint (`--resume latest`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "$#" -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
  NP=$1
  shift
fi
NP=${NP:-4}
CONFIG=${CONFIG-$ROOT/jobs/configs/fashion-mnist.toml}
RUN_ROOT=${RUN_ROOT:-$ROOT/runs}
VENV=${VENV:-$ROOT/.venv}

# shellcheck source=jobs/common.sh
. "$ROOT/jobs/common.sh"
HPCTRAIN_JOB_TAG=local.sh
hpctrain_use_venv "$VENV"
RUN_DIR=${RUN_DIR:-$RUN_ROOT/local-$(date +%Y%m%d-%H%M%S)}
MPIEXEC=${MPIEXEC:-mpiexec}
command -v "$MPIEXEC" >/dev/null 2>&1 || hpctrain_die "$MPIEXEC not found (pip install 'hpctrain[mpich]', or load an MPI module)"

mkdir -p "$RUN_DIR"
hpctrain_resume_args "$RUN_DIR" 0
args=(train)
[ -n "$CONFIG" ] && args+=("$CONFIG")
args+=(--out "$RUN_DIR")
[ -n "${CHECKPOINT_EVERY:-}" ] && args+=(--checkpoint-every "$CHECKPOINT_EVERY")
[ -n "${KEEP:-}" ] && args+=(--keep "$KEEP")
# shellcheck disable=SC2206  # TRAIN_ARGS and MPIEXEC_ARGS are lists of words on purpose
args+=(${TRAIN_ARGS:-} "${RESUME_ARGS[@]}" "$@")
# shellcheck disable=SC2206
launch=("$MPIEXEC" -n "$NP" ${MPIEXEC_ARGS:-})
hpctrain_log "running: ${launch[*]} hpctrain ${args[*]}"
hpctrain_run_step "${launch[@]}" hpctrain "${args[@]}"
if [ "$STEP_RC" -eq "$HPCTRAIN_EXIT_PREEMPTED" ]; then
  hpctrain_log "stopped with a checkpoint; continue with: RUN_DIR=$RUN_DIR bash jobs/local.sh $NP"
fi
exit "$STEP_RC"
