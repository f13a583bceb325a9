"""mpiexec worker: run a registered allreduce over many lengths/dtypes next to MPI's own.

usage: allreduce_cases.py OUTDIR ALGO [ALGO ...]
Writes OUTDIR/rank{r}.npz with, per case, the algorithm's result and MPI's result.
"""

import sys

import numpy as np

from hpctrain.collectives import get_allreduce
from hpctrain.comm import world

out, algos = sys.argv[1], sys.argv[2:]
comm = world()
n = comm.size
lengths = sorted({0, 1, max(n - 1, 0), n, n + 1, 1009, 1 << 20})
results = {}
for algo in algos:
    fn = get_allreduce(algo)
    for dtype in ("float32", "float64", "int32", "int64"):
        for length in lengths:
            rng = np.random.default_rng([length, comm.rank, 7])
            if dtype.startswith("int"):
                x = rng.integers(-1000, 1000, size=length).astype(dtype)
            else:
                x = rng.standard_normal(length).astype(dtype)
            ops = ("sum", "mean") if dtype.startswith("float") else ("sum", "max")
            for op in ops:
                mine, ref = x.copy(), x.copy()
                fn(comm, mine, op)
                get_allreduce("mpi")(comm, ref, op)
                key = f"{algo}|{dtype}|{length}|{op}"
                results[key + "|got"] = mine
                results[key + "|ref"] = ref
np.savez(f"{out}/rank{comm.rank}.npz", **results)
