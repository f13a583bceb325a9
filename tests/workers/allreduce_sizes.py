"""mpiexec worker: the allreduce sizes each algorithm declares (``allreduce_sizes``) are
the sizes its steps hand to the collective.

usage: allreduce_sizes.py OUT.json

Every algorithm, aggregation and (for compressing ones) its first compressor and random-k,
d = 1000 float32, two steps with ``sync_period`` 1. Rank 0 writes
{case: {"declared": [...], "observed": [...]}}.
"""

import json
import sys

import numpy as np

from hpctrain.algorithms import ALGORITHMS, AlgoContext
from hpctrain.collectives import get_allreduce
from hpctrain.comm import world
from hpctrain.config import load_config

D = 1000


def cases():
    for name, cls in ALGORITHMS.items():
        comps = list(dict.fromkeys([c for c in cls.compressors[:1]] + [c for c in cls.compressors if c == "randk"]))
        for agg in cls.aggregations:
            for comp in comps or [None]:
                yield name, agg, comp


def build(comm, name, agg, comp, allreduce):
    """(algorithm, params) of one case: d = D float32, ``sync_period`` 1, density 0.05."""
    over = {"algo": name, "aggregation": agg, "sync_period": 1, "collective": "ring", "density": 0.05}
    if comp:
        over["compressor"] = comp
    cfg = load_config(None, over)
    params = np.random.default_rng(0).normal(size=D).astype(np.float32)
    layers = [("w", (30, 30), 0), ("b", (100,), 900)]  # a matrix (PowerSGD) and a dense rest
    return ALGORITHMS[name](AlgoContext(cfg, comm, allreduce, D, 10, np, layers=layers), params), params


def main():
    comm = world()
    ring = get_allreduce("ring")
    out = {}
    for name, agg, comp in cases():
        seen = set()

        def recording(c, buf, op="sum"):
            seen.add(int(buf.size * buf.dtype.itemsize))
            return ring(c, buf, op)

        alg, params = build(comm, name, agg, comp, recording)
        rng = np.random.default_rng(comm.rank + 1)
        for t in range(2):
            alg.step(params, rng.normal(size=D).astype(np.float32), 0.01, t)
        out[f"{name}/{agg}/{comp}"] = {"declared": sorted(set(alg.allreduce_sizes())), "observed": sorted(seen)}
    if comm.rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
