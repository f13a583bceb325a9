"""mpiexec worker: gossip, multi-PS dedicated, sparse allgather, staged transport, fuzz.

usage: collective_misc.py OUTDIR SEED [fuzz-only]
Writes OUTDIR/rank{r}.json: {"checks": {name: [ok, detail]}, "gossip": {...}}.
Every comparison is made here (arrays stay in the job); the test asserts on the JSON.
"""

import json
import sys

import numpy as np

from hpctrain.collectives import ALLREDUCE, MultiPS, get_allreduce, gossip, sparse_allgather
from hpctrain.comm import Communicator, world
from hpctrain.comm.transport import StagedTransport
from hpctrain.topology import BUILDERS, build

out, seed = sys.argv[1], int(sys.argv[2])
fuzz_only = len(sys.argv) > 3
comm = world()
n, r = comm.size, comm.rank
checks, gossip_info = {}, {}


def check(name, ok, detail=""):
    checks[name] = [bool(ok), str(detail)]


def gathered(x):
    """All ranks' vectors as an (n, len) float64 matrix, by MPI's Allgatherv (the oracle)."""
    X = np.empty(n * x.size, dtype=x.dtype)
    comm.native_allgatherv(x, X, [x.size] * n)
    return X.reshape(n, x.size).astype(np.float64)


# -- fuzz: random lengths, every allreduce against MPI ----------------------------------
rng = np.random.default_rng(seed)  # same seed on every rank: same lengths
for case in range(12):
    length = int(rng.choice([rng.integers(0, 64), rng.integers(0, 5000), rng.integers(0, 300_000)]))
    dtype = ["float64", "int64", "float32"][case % 3]
    local = np.random.default_rng([seed, case, r])
    x = (local.integers(-1000, 1000, length) if dtype.startswith("int") else local.standard_normal(length)).astype(dtype)
    ref = get_allreduce("mpi")(comm, x.copy(), "sum")
    for algo in ALLREDUCE:
        got = get_allreduce(algo)(comm, x.copy(), "sum")
        ok = np.array_equal(got, ref) if dtype.startswith("int") else np.allclose(got, ref, rtol=1e-5, atol=1e-4)
        check(f"fuzz|{algo}|{dtype}|{length}", ok)

if not fuzz_only:
    # -- gossip: one step == W @ X; mean preserved; convergence at rate rho ----------------
    for name in BUILDERS:
        topo = build(name, n)
        W = topo.matrix
        x = np.random.default_rng([seed, 99, r]).standard_normal(1001)
        X0 = gathered(x)
        gossip(comm, x, topo)
        X1 = gathered(x)
        check(f"gossip-step|{name}", np.allclose(X1, W @ X0, rtol=1e-12, atol=1e-12),
              np.abs(X1 - W @ X0).max())
        check(f"gossip-mean|{name}", np.allclose(X1.mean(0), X0.mean(0), rtol=1e-12, atol=1e-12))
        # repeated steps: consensus error ||X_t - mean|| <= rho^t ||X_0 - mean|| (+ rounding)
        mean = X0.mean(0)
        e0 = np.linalg.norm(X0 - mean)
        steps = 20
        for _ in range(steps - 1):
            gossip(comm, x, W)
        Xt = gathered(x)
        et = np.linalg.norm(Xt - mean)
        bound = topo.rho ** steps * e0 + 1e-9
        gossip_info[name] = {"rho": topo.rho, "e0": e0, "et": et, "bound": bound}
        check(f"gossip-rate|{name}", et <= bound, f"{et} > {bound}")

    # -- ring's pipelined reduce-scatter at every length near a segment boundary ----------------
    # Tiny segments (2 int64) make every chunk of >= 4 elements pipelined, so chunk lengths
    # straddling a segment boundary (neighbours sending different segment counts) all occur.
    # Each length runs twice: a stray message left by the first call would corrupt the second.
    from hpctrain.collectives import ring as ring_mod

    saved = ring_mod.SEGMENT_BYTES, ring_mod.PIPELINE_MIN_BYTES
    for key in [k for k in comm.buffers._scratch if k[0] == "ring"]:  # grown by the fuzz above
        del comm.buffers._scratch[key]
    ring_mod.SEGMENT_BYTES, ring_mod.PIPELINE_MIN_BYTES = 16, 32
    try:
        for length in range(0, 12 * n + n + 1):
            for call in range(2):
                x = np.random.default_rng([seed, 5, r, length, call]).integers(-999, 999, length)
                ref = get_allreduce("mpi")(comm, x.copy(), "sum")
                got = ring_mod.ring_allreduce(comm, x.copy(), "sum")
                check(f"ring-pipelined|{length}|{call}", np.array_equal(got, ref))
                got = get_allreduce("multi-ps")(comm, x.copy(), "sum")  # segmented phase 1 as well
                check(f"mps-segmented|{length}|{call}", np.array_equal(got, ref))
        # floats: segments change no rounding (same left-to-right order): bit-identical
        floats = {length: np.random.default_rng([seed, 6, r, length]).standard_normal(length) for length in (9 * n, 13 * n + 1)}
        seg_out = {length: get_allreduce("multi-ps")(comm, x.copy(), "mean") for length, x in floats.items()}
        # the temporary stays two segments long (4 elements), not a chunk (up to 13 here)
        ring_tmp = [b.size for k, b in comm.buffers._scratch.items() if k[0] == "ring" and b.dtype == np.int64]
        check("ring-pipelined-scratch", n == 1 or ring_tmp == [4], ring_tmp)
    finally:
        ring_mod.SEGMENT_BYTES, ring_mod.PIPELINE_MIN_BYTES = saved
    for length, x in floats.items():
        whole = get_allreduce("multi-ps")(comm, x.copy(), "mean")
        check(f"mps-segmented-bits|{length}", np.array_equal(seg_out[length], whole))

    # -- multi-PS dedicated == co-located over the workers' sub-communicator ------------------
    for k in range(1, n):
        workers = n - k
        sub = comm.split(0 if r < workers else 1)
        for dtype, length in (("float64", 1), ("float64", 10_007), ("int64", 999), ("float32", 3 * k + 1)):
            local = np.random.default_rng([seed, k, r, length])
            x = (local.integers(-99, 99, length) if dtype.startswith("int") else local.standard_normal(length)).astype(dtype)
            ded = MultiPS(comm, servers=k).allreduce(x.copy(), "sum")
            if r < workers:
                sub_x = MultiPS(sub, servers=None).allreduce(x.copy(), "sum")
                # both placements add the workers' data in worker-rank order: bit-identical
                check(f"mps-dedicated|k={k}|{dtype}|{length}", np.array_equal(ded, sub_x))
    # dedicated vs numpy sum of the workers' data (exact for integers)
    if n > 1:
        x = np.arange(50, dtype=np.int64) * (r + 1)
        got = MultiPS(comm, servers=1).allreduce(x.copy(), "sum")
        want = np.arange(50, dtype=np.int64) * sum(i + 1 for i in range(n - 1))
        if r < n - 1:
            check("mps-dedicated-sum", np.array_equal(got, want), got[:5])

    # -- sparse allgather: ring == MPI Allgatherv == dense sum --------------------------------
    d = 5003
    for density in (0.0, 0.001, 0.1, 1.0):
        local = np.random.default_rng([seed, 7, r, int(density * 1000)])
        k = int(density * d) + (r % 2)  # per-rank counts differ
        k = min(k, d)
        idx = np.sort(local.choice(d, k, replace=False)).astype(np.int32)
        val = local.integers(-20, 20, k).astype(np.float64)
        dense = np.zeros(d)
        np.add.at(dense, idx, val)
        want = gathered(dense).sum(0)
        for method in ("ring", "mpi"):
            outv = np.full(d, np.nan)
            sparse_allgather(comm, idx, val, outv, method=method)
            check(f"sparse|{method}|{density}", np.array_equal(outv, want), np.abs(outv - want).max())

    # -- staged transport (CPU test double of the GPU path) -----------------------------------
    staged = Communicator(comm.mpi_comm, transport=StagedTransport(stage_host=True))
    for algo in ("ring", "recursive", "multi-ps", "ps", "ring-unpartitioned", "mpi"):
        for length in (0, 1, n + 1, 70_001):
            x = np.random.default_rng([seed, 5, r, length]).integers(-50, 50, length).astype(np.float64)
            ref = get_allreduce("mpi")(comm, x.copy(), "sum")
            got = get_allreduce(algo)(staged, x.copy(), "sum")
            check(f"staged|{algo}|{length}", np.array_equal(got, ref))
    x = np.ones(1000)
    gossip(staged, x, build("ring", n))
    check("staged|gossip", np.allclose(x, 1.0))
    tr = staged.transport
    before = tr.allocations
    for _ in range(5):
        get_allreduce("ring")(staged, np.ones(70_001), "sum")
        get_allreduce("multi-ps")(staged, np.ones(70_001), "sum")
    check("staged|pool-reused", tr.allocations == before and not tr._busy, (before, tr.allocations, len(tr._busy)))
    check("staged|copied", n == 1 or tr.copies > 0, tr.copies)

with open(f"{out}/rank{r}.json", "w") as f:
    json.dump({"checks": checks, "gossip": gossip_info}, f)
