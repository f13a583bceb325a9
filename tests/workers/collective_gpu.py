"""mpiexec worker: every allreduce, gossip and sparse allgather on CuPy arrays.

usage: collective_gpu.py OUTDIR TRANSPORT
"""

import json
import sys

import numpy as np

from hpctrain.collectives import ALLREDUCE, gossip, sparse_allgather
from hpctrain.comm import world
from hpctrain.topology import build
from hpctrain.xp import cupy_or_none

cp = cupy_or_none()
out, transport = sys.argv[1], sys.argv[2]
comm = world(transport)
n, r = comm.size, comm.rank
res = {}
for algo, fn in ALLREDUCE.items():
    for length in (0, 1, n + 1, 1009, 1 << 20):
        x = np.random.default_rng([length, r]).integers(-50, 50, length).astype(np.float32)
        ref = x.copy()
        comm.native_allreduce(ref)
        got = fn(comm, cp.asarray(x), "sum")
        res[f"{algo}|{length}"] = bool(np.array_equal(cp.asnumpy(got), ref))
x = cp.ones(1000)
gossip(comm, x, build("ring", n))
res["gossip"] = bool(cp.allclose(x, 1.0))
idx = cp.arange(r, 100, 7, dtype=cp.int32)
val = cp.ones(idx.size, dtype=cp.float32)
outv = cp.empty(100, dtype=cp.float32)
sparse_allgather(comm, idx, val, outv)
want = np.zeros(100, np.float32)
for q in range(n):
    want[np.arange(q, 100, 7)] += 1
res["sparse"] = bool(np.array_equal(cp.asnumpy(outv), want))
with open(f"{out}/rank{r}.json", "w") as f:
    json.dump(res, f)
