#!/bin/bash
# Per-rank wrapper of jobs/gpu.sbatch: pin this MPI rank to one GPU, then exec the command.
#   usage: gpu_rank.sh COMMAND [ARGS...]      (run by srun / mpiexec once per rank)
#
# Local rank (this rank's index on its node), first found of:
#   OMPI_COMM_WORLD_LOCAL_RANK (Open MPI), MPI_LOCALRANKID (MPICH hydra), SLURM_LOCALID (srun).
#   (Under mpiexec inside Slurm, SLURM_LOCALID belongs to MPI's proxy, so it comes last.)
# The node's GPUs: CUDA_VISIBLE_DEVICES as Slurm set it for this task. One entry means Slurm
# already bound the task to its GPU (srun with --gpus-per-task): keep it. Several entries
# (the whole node's GPUs, e.g. under mpiexec or with --gres=gpu:N): take entry
# local_rank mod count. None: use GPU number local_rank.
# Prints one line per rank: "gpu_rank: rank R local L on HOST -> CUDA_VISIBLE_DEVICES=X ...".
set -euo pipefail

local_rank=${OMPI_COMM_WORLD_LOCAL_RANK:-${MPI_LOCALRANKID:-${SLURM_LOCALID:-0}}}
rank=${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-${SLURM_PROCID:-0}}}
visible=${CUDA_VISIBLE_DEVICES:-${SLURM_STEP_GPUS:-${SLURM_JOB_GPUS:-}}}
IFS=, read -r -a gpus <<< "$visible"

if [ "${#gpus[@]}" -eq 1 ]; then
  gpu=${gpus[0]}
  how="bound by Slurm"
elif [ "${#gpus[@]}" -gt 1 ]; then
  gpu=${gpus[$((local_rank % ${#gpus[@]}))]}
  how="local rank $local_rank of GPUs $visible"
  if [ "$local_rank" -ge "${#gpus[@]}" ]; then
    how="$how; more ranks than GPUs on this node: GPU shared"
  fi
else
  gpu=$local_rank
  how="no GPU list from Slurm; GPU = local rank"
fi
export CUDA_VISIBLE_DEVICES=$gpu
echo "gpu_rank: rank $rank local $local_rank on $(hostname -s) -> CUDA_VISIBLE_DEVICES=$gpu ($how)"
exec "$@"
