"""mpiexec worker: signSGD / Signum majority-vote steps on crafted gradients.

usage: signsgd_steps.py OUT_DIR AGGREGATION MOMENTUM STEPS

Rank k's gradient at step t is drawn from a generator seeded by (k, t), rounded to
{-1, 0, 1} times a scale so that votes tie and zeros occur. Writes OUT_DIR/rank{r}.npz
with the gradients and the final parameters.
"""

import sys
from types import SimpleNamespace

import numpy as np

from hpctrain.algorithms.base import AlgoContext
from hpctrain.algorithms.signsgd import SignSGD
from hpctrain.collectives import get_allreduce
from hpctrain.comm import world

D = 1001  # not a multiple of 8: the packed tail is exercised


def main():
    out_dir, aggregation, momentum, steps = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    comm = world()
    cfg = SimpleNamespace(momentum=momentum, seed=0, aggregation=aggregation)
    ctx = AlgoContext(cfg, comm, get_allreduce("ring"), D, 10, np)
    params = np.zeros(D)
    algo = SignSGD(ctx, params)
    grads = np.stack([np.round(np.random.default_rng([comm.rank, t]).normal(size=D)) * 0.3 for t in range(steps)])
    grad = np.empty(D)
    for t in range(steps):
        grad[...] = grads[t]
        algo.step(params, grad, 0.01, t)
    np.savez(f"{out_dir}/rank{comm.rank}.npz", grads=grads, params=params)


if __name__ == "__main__":
    main()
