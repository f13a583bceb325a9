#!/usr/bin/env bash
# Throughput on a real model, all measured in this one run (medians of $REPEATS repeats):
#  1. the native `--model cnn` training step (NumPy, one BLAS thread) against PyTorch CPU
#     (one thread) on the same architecture and batch (jobs/bench_cnn_step.py);
#  2. on each of $RANKS ranks, `hpctrain train --model torch:jobs/torch_cnn.py:make_cnn
#     --algo dmsgd` (autograd in torch, communication and update in hpctrain) against
#     PyTorch DDP (gloo) on the same torch CNN, batch and data (jobs/ddp_softmax.py --model cnn).
# Run from an activated environment with hpctrain and torch (or through
# MODEL=cnn jobs/bench_vs_ddp.sh). Fashion-MNIST's first $SUBSET training images, as
# HDF5 (n, 1, 28, 28), keep one repeat short.
#   RANKS="2 4"  REPEATS=5  SUBSET=12800  BATCH=128  STEPS=20
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RANKS=${RANKS:-2 4}; REPEATS=${REPEATS:-5}; SUBSET=${SUBSET:-12800}; BATCH=${BATCH:-128}; STEPS=${STEPS:-20}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python - "$tmp/fm.h5" "$SUBSET" <<'PY'
import sys
import h5py
import numpy as np
from hpctrain.data import load_dataset
d = load_dataset("fashion-mnist")
n = int(sys.argv[2])
with h5py.File(sys.argv[1], "w") as f:
    f["x"] = d.x_train[:n].reshape(-1, 1, 28, 28)
    f["y"] = d.y_train[:n]
    f["x_test"] = d.x_test[:2000].reshape(-1, 1, 28, 28)
    f["y_test"] = d.y_test[:2000]
PY
python jobs/bench_cnn_step.py --batch-size "$BATCH" --steps "$STEPS" --repeats "$REPEATS"
printf '%-6s %-44s %14s %16s\n' ranks loop "min samples/s" "median samples/s"
for n in $RANKS; do
  ours=$(mpiexec -n "$n" python jobs/bench_train.py --model torch:jobs/torch_cnn.py:make_cnn --algo dmsgd \
    --dataset "hdf5:$tmp/fm.h5" --batch-size "$BATCH" --repeats "$REPEATS" | awk '/^hpctrain/ {print $(NF-2), $NF}')
  ddp=$(python -m torch.distributed.run --nproc_per_node "$n" jobs/ddp_softmax.py --model cnn \
    --dataset "hdf5:$tmp/fm.h5" --epochs 1 --batch-size "$BATCH" --repeats "$REPEATS" 2>/dev/null \
    | awk '/^DDP/ {print $4, $6}')
  printf '%-6s %-44s %14s %16s\n' "$n" "hpctrain dmsgd, torch adapter (torch_cnn)" $ours
  printf '%-6s %-44s %14s %16s\n' "$n" "PyTorch DDP (gloo), same torch_cnn" $ddp
  python -c "import sys; print(f'ratio on $n ranks (medians): hpctrain-torch/DDP = {float(sys.argv[1]) / float(sys.argv[2]):.2f}')" \
    "$(echo $ours | cut -d' ' -f2)" "$(echo $ddp | cut -d' ' -f2)"
done
