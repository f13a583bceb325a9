"""Worker (under mpiexec): the overlap engine on NumPy buffers with a simulated backward.

Writes, per rank, a JSON of checks: overlap on == off bit for bit, both against the
unbucketed allreduce (relative error) and against float64 MPI_Allreduce.
"""

import json
import sys

import numpy as np

from hpctrain.buckets import make_buckets
from hpctrain.collectives import get_allreduce
from hpctrain.comm import world
from hpctrain.overlap import OverlapEngine, profile_trace

out, collective = sys.argv[1], sys.argv[2]
comm = world()
allreduce = get_allreduce(collective)
sizes = [300, 7, 5000, 64, 20_000, 1, 9000, 128, 40_000, 10]
layers, off = [], 0
for n in sizes:
    layers.append((off, n))
    off += n
res = {}
for dtype in ("float32", "float64"):
    steps = []
    for step in range(3):
        rng = np.random.default_rng(100 * step + comm.rank)
        local = rng.standard_normal(off).astype(dtype) * 10.0 ** rng.integers(-3, 3, off)
        runs = {}
        for overlap in (True, False):
            grad = np.zeros(off, dtype)
            buckets = make_buckets(layers, grad.itemsize, bucket_size=0.05, first_size=0.01)
            eng = OverlapEngine(comm, buckets, lambda c, b, g=grad: allreduce(c, b.view(g), "mean"), overlap=overlap)
            assert eng.overlap == overlap, (eng.overlap, overlap)
            eng.begin()
            for i in reversed(range(len(layers))):  # backward: last layer first
                a, n = layers[i]
                grad[a:a + n] = local[a:a + n] * 1.0  # "compute" the layer's gradient
                eng.layer_ready(i)
            eng.finish()
            eng.close()
            runs[overlap] = grad
        whole = local.copy()
        allreduce(comm, whole, "mean")
        exact = local.astype(np.float64)
        comm.native_allreduce(exact)
        exact /= comm.size
        scale = np.abs(exact).max()
        steps.append({
            "on_equals_off": bool(np.array_equal(runs[True], runs[False])),
            "rel_vs_unbucketed": float(np.abs(runs[True].astype(np.float64) - whole).max() / scale),
            "rel_vs_float64_mpi": float(np.abs(runs[True].astype(np.float64) - exact).max() / scale),
            "n_buckets": len(buckets),
        })
    res[dtype] = steps

# a failing bucket reduction on the thread is raised by finish() (every rank fails alike)
def boom(c, b):
    raise ValueError(f"bucket {b.index} failed")


eng = OverlapEngine(comm, make_buckets(layers, 4, bucket_size=0.05, first_size=0.01), boom, overlap=True)
eng.begin()
for i in reversed(range(len(layers))):
    eng.layer_ready(i)
try:
    eng.finish()
    res["error"] = ""
except ValueError as exc:
    res["error"] = str(exc)
eng.close()

# the profile: one record per bucket per step (ready <= start <= end, in bucket order on
# the thread), the main thread's waits, and a Chrome trace of every rank's records
grad = np.ones(off, np.float32)
buckets = make_buckets(layers, 4, bucket_size=0.05, first_size=0.01)
eng = OverlapEngine(comm, buckets, lambda c, b: allreduce(c, b.view(grad), "sum"), overlap=True, profile=True)
for step in range(2):
    eng.begin()
    for i in reversed(range(len(layers))):
        eng.layer_ready(i)
    eng.finish()
eng.close()
recs = [r for r in eng.profile if r[1] >= 0]
doc = profile_trace(comm, eng)
res["profile"] = {
    "per_step": [sorted(int(r[1]) for r in recs if r[0] == s) == list(range(len(buckets))) for s in range(2)],
    "ordered": all(r[2] <= r[3] <= r[4] for r in recs),
    "waits": sum(1 for r in eng.profile if r[1] < 0),
    "trace_ranks": sorted({e["pid"] for e in doc["traceEvents"] if e.get("ph") == "X"}),
    "trace_buckets": sum(1 for e in doc["traceEvents"] if e.get("cat") == "comm"),
}
with open(f"{out}/overlap-{comm.rank}.json", "w") as f:
    json.dump(res, f)
