"""mpiexec worker: ALGO's allreduce REPS times on NBYTES of float32 per rank; checks the sum.

usage: repeat_allreduce.py ALGO NBYTES REPS
Exits 1 if any result differs from the exact sum, computed here without communicating
(rank r holds base + r, so the sum is n base + n(n-1)/2: small integers, exact in float32).
"""

import sys

import numpy as np

from hpctrain.collectives import get_allreduce
from hpctrain.comm import world

comm = world()
algo, nbytes, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = np.arange(nbytes // 4, dtype=np.float32) % 97
x = base + comm.rank
n = comm.size
ref = n * base + n * (n - 1) / 2
fn = get_allreduce(algo)
for _ in range(reps):
    got = fn(comm, x.copy(), "sum")
    if not np.array_equal(got, ref):
        sys.exit(f"{algo}: wrong result on rank {comm.rank}")
