"""mpiexec worker: every registered allreduce over lengths {0, 1, n-1, n, n+1, 1009, 2^20}
and dtypes next to MPI's own Allreduce (lighter than allreduce_cases.py: the 2^20 length
runs ``sum`` only).

usage: collective_cases.py OUTDIR ALGO [ALGO ...]
Writes OUTDIR/rank{r}.npz with, per case, the algorithm's result and MPI's result (for
2^20 elements the comparison is made here and only its outcome is stored).
"""

import os
import sys

import numpy as np

from hpctrain.collectives import get_allreduce
from hpctrain.collectives.hierarchical import assign_nodes
from hpctrain.comm import world

out, algos = sys.argv[1], sys.argv[2:]
comm = world()
colors = os.environ.get("HPCTRAIN_TEST_NODE_COLORS")  # "0,0,1": fake nodes for hierarchical
if colors:
    assign_nodes(comm, int(colors.split(",")[comm.rank]))
n = comm.size
lengths = sorted({0, 1, max(n - 1, 0), n, n + 1, 1009, 1 << 20})
results = {}
mpi = get_allreduce("mpi")
for dtype in ("float32", "float64", "int32", "int64"):
    for length in lengths:
        rng = np.random.default_rng([length, comm.rank, 11])
        if dtype.startswith("int"):
            x = rng.integers(-1000, 1000, size=length).astype(dtype)
            ops = ("sum", "max", "min")
        else:
            x = rng.standard_normal(length).astype(dtype)
            ops = ("sum", "mean", "max")
        if length == 1 << 20:
            ops = ("sum",) if dtype in ("float32", "float64", "int64") else ()
        for op in ops:
            ref = mpi(comm, x.copy(), op)
            for algo in algos:
                key = f"{algo}|{dtype}|{length}|{op}"
                got = get_allreduce(algo)(comm, x.copy(), op)
                if length < 1 << 20:
                    results[key + "|got"], results[key + "|ref"] = got, ref
                elif dtype.startswith("int"):  # big: compare here, keep the files small
                    results[key + "|got"] = np.array([np.count_nonzero(got != ref)])
                    results[key + "|ref"] = np.array([0])
                else:  # excess over the test's rtol, which then must be within its atol
                    tol = 1e-5 if dtype == "float32" else 1e-12
                    excess = np.abs(got.astype(np.float64) - ref) - tol * np.abs(ref.astype(np.float64))
                    results[key + "|got"] = np.array([max(float(excess.max()), 0.0)], dtype=dtype)
                    results[key + "|ref"] = np.zeros(1, dtype=dtype)
np.savez(f"{out}/rank{comm.rank}.npz", **results)
