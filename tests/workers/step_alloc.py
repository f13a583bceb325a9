"""mpiexec worker: peak memory allocated inside ``algorithm.step`` (tracemalloc, NumPy).

usage: step_alloc.py OUT.json

For dmsgd, mdsgd, dgc and gmc (each sparse mask), d = 2e5 float32 parameters: three
warm-up steps, then the peak of what three more steps allocate on top of what was
already allocated. Rank 0 writes {case: [peak bytes per rank], "_dense_bytes": 4 d}.
"""

import json
import sys
import tracemalloc

import numpy as np

from hpctrain.algorithms import AlgoContext, get_algorithm
from hpctrain.collectives import get_allreduce
from hpctrain.comm import world
from hpctrain.config import load_config

D = 200_000
CASES = [("dmsgd", "topk")] + [(a, c) for a in ("mdsgd", "dgc", "gmc") for c in ("topk", "approx-topk", "randk")]


def peak_of_steps(comm, algo, comp):
    cfg = load_config(None, {"algo": algo, "compressor": comp, "density": 0.01, "collective": "ring"})
    params = np.zeros(D, np.float32)
    alg = get_algorithm(algo)(AlgoContext(cfg, comm, get_allreduce("ring"), D, 10, np), params)
    rng = np.random.default_rng(comm.rank)
    grads = [rng.normal(size=D).astype(np.float32) for _ in range(6)]
    grad = np.empty(D, np.float32)
    for t in range(3):
        grad[...] = grads[t]
        alg.step(params, grad, 0.05, t)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for t in range(3, 6):
        grad[...] = grads[t]
        alg.step(params, grad, 0.05, t)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def main():
    comm = world()
    out = {"_dense_bytes": 4 * D}
    for algo, comp in CASES:
        peak = peak_of_steps(comm, algo, comp)
        out[f"{algo}/{comp}"] = comm.allgather_array(np.array([peak], np.int64))[:, 0].tolist()
    if comm.rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
