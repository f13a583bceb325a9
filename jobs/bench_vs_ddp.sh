#!/usr/bin/env bash
# Throughput of `hpctrain train` (dmsgd, dense, hand-made allreduce) against a plain NumPy +
# MPI_Allreduce loop and PyTorch DDP (gloo, CPU) on the same softmax model, batch and data,
# on 2 and 4 ranks, all measured in this one run. Installs torch==2.13.0 (CPU) into the
# venv if it is missing: torch is optional for hpctrain users and needed only here.
#   RANKS="2 4"  REPEATS=5  EPOCHS=2  DATASET=fashion-mnist  COLLECTIVE=auto
#   ALGOS="gmc dgc"   compressed algorithms whose own samples/s and bytes/step to report
#   ALGO_ARGS="--density 0.01"   extra flags for them
#   MODEL=cnn   compare on a real model instead (jobs/bench_cnn.sh): the native cnn step
#               against PyTorch CPU (one thread each), then the torch adapter (dmsgd) against
#               DDP (gloo) on the same torch CNN on $RANKS ranks
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$HPCTRAIN_ROOT"
python -c 'import torch' 2>/dev/null || python -m pip install -q --disable-pip-version-check torch==2.13.0
if [ "${MODEL:-softmax}" = cnn ]; then
  exec bash jobs/bench_cnn.sh
fi
RANKS=${RANKS:-2 4}; REPEATS=${REPEATS:-5}; EPOCHS=${EPOCHS:-2}; DATASET=${DATASET:-fashion-mnist}
ALGOS=${ALGOS:-}; ALGO_ARGS=${ALGO_ARGS:-}; COLLECTIVE=${COLLECTIVE:-auto}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '%-6s %-36s %14s %16s %12s\n' ranks loop "min samples/s" "median samples/s" "bytes/step"
for n in $RANKS; do
  mpiexec -n "$n" python jobs/bench_loop.py --dataset "$DATASET" --epochs "$EPOCHS" --repeats "$REPEATS" \
    --collective "$COLLECTIVE" >"$tmp/loop$n"
  python -m torch.distributed.run --nproc_per_node "$n" jobs/ddp_softmax.py --dataset "$DATASET" \
    --epochs "$EPOCHS" --repeats "$REPEATS" 2>/dev/null | grep '^DDP' >"$tmp/ddp$n"
  plain=$(awk '/^plain/ {print $(NF-1), $NF}' "$tmp/loop$n")
  ours=$(awk '/^hpctrain train/ {print $(NF-1), $NF}' "$tmp/loop$n")
  ddp=$(awk '{print $4, $6}' "$tmp/ddp$n")
  printf '%-6s %-36s %14s %16s\n' "$n" "plain NumPy + MPI_Allreduce" $plain
  printf '%-6s %-36s %14s %16s\n' "$n" "hpctrain dmsgd --collective $COLLECTIVE" $ours
  printf '%-6s %-36s %14s %16s\n' "$n" "PyTorch DDP (gloo)" $ddp
  for algo in $ALGOS; do
    # shellcheck disable=SC2086
    mpiexec -n "$n" hpctrain train --algo "$algo" --dataset "$DATASET" --epochs "$EPOCHS" -q \
      --out "$tmp/$algo$n" $ALGO_ARGS >/dev/null
    python - "$tmp/$algo$n/summary.json" "$n" "$algo" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
per_step = sum(s["bytes_sent_per_rank"]) / len(s["bytes_sent_per_rank"]) / max(s["steps"], 1)
print(f"{sys.argv[2]:<6} {'hpctrain ' + sys.argv[3]:<36} {'':>14} {s['samples_per_s']:>16.0f} {per_step:>12.0f}")
PY
  done
  python - "$(echo $ours | cut -d' ' -f2)" "$(echo $plain | cut -d' ' -f2)" "$(echo $ddp | cut -d' ' -f2)" "$n" <<'PY'
import sys
ours, plain, ddp, n = map(float, sys.argv[1:])
print(f"ratios on {int(n)} ranks (medians): hpctrain/plain = {ours / plain:.2f}, hpctrain/DDP = {ours / ddp:.1f}")
PY
done
