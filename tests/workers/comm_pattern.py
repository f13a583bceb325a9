"""mpiexec worker: each algorithm's declared communication (``comm_pattern``) moves the
bytes its step really sends.

usage: comm_pattern.py OUT.json

Every algorithm, aggregation and compressor (random-k and the first other one), d = 1000
float32, ``sync_period`` 1 (every step communicates), the ring allreduce. One step; rank 0
writes {case: {"declared": bytes, "observed": bytes, "kinds": [...]}}, bytes summed over
all ranks (the communicator's ``bytes_sent``).
"""

import json
import sys

import numpy as np

from hpctrain.algorithms import ALGORITHMS, AlgoContext
from hpctrain.collectives import get_allreduce
from hpctrain.collectives.cost import exchange_bytes
from hpctrain.comm import world
from hpctrain.config import load_config

D = 1000


def cases():
    for name, cls in ALGORITHMS.items():
        comps = list(dict.fromkeys([c for c in cls.compressors[:1]] + [c for c in cls.compressors if c == "randk"]))
        for agg in cls.aggregations:
            for comp in comps or [None]:
                yield name, agg, comp


def main():
    comm = world()
    n = comm.size
    out = {}
    for name, agg, comp in cases():
        over = {"algo": name, "aggregation": agg, "sync_period": 1, "collective": "ring", "density": 0.05}
        if comp:
            over["compressor"] = comp
        cfg = load_config(None, over)
        params = np.random.default_rng(0).normal(size=D).astype(np.float32)
        layers = [("w", (30, 30), 0), ("b", (100,), 900)]
        alg = ALGORITHMS[name](AlgoContext(cfg, comm, get_allreduce("ring"), D, 10, np, layers=layers), params)
        pattern = alg.comm_pattern()
        declared = sum(ex.per_step * exchange_bytes(ex.kind, n, ex.nbytes, collective="ring", **ex.options())
                       for ex in pattern)
        grad = np.random.default_rng(comm.rank + 1).normal(size=D).astype(np.float32)
        comm.reset_counters()
        alg.step(params, grad, 0.01, 0)
        sent = comm.allgather_array(np.array([comm.bytes_sent], dtype=np.int64))[:, 0]
        out[f"{name}/{agg}/{comp}"] = {"declared": declared, "observed": int(sent.sum()),
                                       "kinds": [ex.kind for ex in pattern]}
    if comm.rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
