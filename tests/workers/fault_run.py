"""mpiexec worker: run the hpctrain CLI with a fault injected into one rank's gradient.

usage: fault_run.py MODE RANK STEP -- hpctrain-args...
  MODE raise: RuntimeError on rank RANK at its STEP-th gradient (1-based)
  MODE nan:   that gradient (and loss) become NaN
  MODE sleep: that rank sleeps 0.05 s per gradient from STEP on (a slow job to signal or kill)
  MODE none:  no fault
"""

import os
import sys
import time

import hpctrain.models as models
from hpctrain.cli import main

mode, rank, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
argv = sys.argv[sys.argv.index("--") + 1 :]
me = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
orig = models.SoftmaxRegression.loss_grad
calls = [0]


def loss_grad(self, params, x, y, grad, weight_decay=0.0):
    calls[0] += 1
    loss = orig(self, params, x, y, grad, weight_decay)
    if me == rank and calls[0] >= step:
        if mode == "raise" and calls[0] == step:
            raise RuntimeError(f"injected fault at step {step}")
        if mode == "nan" and calls[0] == step:
            grad[:] = float("nan")
            return float("nan")
        if mode == "sleep":
            time.sleep(0.05)
    return loss


models.SoftmaxRegression.loss_grad = loss_grad
main(argv)
