"""mpiexec worker: Monte-Carlo check that unbiased algorithms step by the mean gradient.

usage: unbiased_mc.py OUT.json STEPS

For every registered algorithm, every compressor it declares unbiased (``unbiased_with``)
and every aggregation it implements, each rank feeds the same constant gradient g_r
(rank-dependent) for STEPS steps at lr = 1, momentum 0, float64, and records every
step's update u_t = w_t - w_{t+1}. Rank 0 writes, per combination: the mean of
<u_t, gbar> / ||gbar||^2 and its standard error, and per coordinate |mean(u) - gbar|
with the standard error of mean(u). An unbiased update has E[u_t] = gbar.
"""

import json
import sys

import numpy as np

from hpctrain.algorithms import ALGORITHMS, AlgoContext
from hpctrain.collectives import get_allreduce
from hpctrain.comm import world
from hpctrain.config import load_config

D = 64


def run(comm, cls, comp, agg, steps):
    cfg = load_config(None, {"algo": cls.name, "compressor": comp, "aggregation": agg, "momentum": 0.0,
                             "density": 0.25, "bits": 2, "dtype": "float64", "seed": 7})
    rng = np.random.default_rng([11, comm.rank])
    g_mine = rng.normal(size=D) + 0.5
    gbar = comm.allgather_array(g_mine).mean(axis=0)
    params = np.zeros(D)
    algo = cls(AlgoContext(cfg, comm, get_allreduce("ring"), D, 10, np), params)
    grad = np.empty(D)
    updates = np.empty((steps, D))
    for t in range(steps):
        before = params.copy()
        grad[...] = g_mine
        algo.step(params, grad, 1.0, t)
        updates[t] = before - params
    proj = updates @ gbar / (gbar @ gbar)
    se = updates.std(axis=0, ddof=1) / np.sqrt(steps)
    dev = np.abs(updates.mean(axis=0) - gbar)
    return {"ratio": float(proj.mean()), "ratio_se": float(proj.std(ddof=1) / np.sqrt(steps)),
            "dev": dev.tolist(), "se": se.tolist()}


def main():
    comm = world()
    steps = int(sys.argv[2])
    out = {}
    for name, cls in sorted(ALGORITHMS.items()):
        for comp in cls.unbiased_with:
            for agg in cls.aggregations:
                out[f"{name}/{comp}/{agg}"] = run(comm, cls, comp, agg, steps)
    if comm.rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
