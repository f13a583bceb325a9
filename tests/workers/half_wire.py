"""mpiexec worker: --fp16-allreduce's HalfWire over every hand-made allreduce against a
NumPy oracle built from every rank's vector (MPI's own Allgatherv).

usage: half_wire.py OUTDIR
Writes OUTDIR/rank{r}.json: {"checks": {name: [ok, detail]}}.
"""

import json
import sys

import numpy as np

from hpctrain.collectives import ALLREDUCE, get_allreduce
from hpctrain.collectives.half import HalfWire
from hpctrain.comm import world

out = sys.argv[1]
comm = world()
n, r = comm.size, comm.rank
checks = {}
d = 100_003  # not a multiple of the ranks: uneven chunks

rng = np.random.default_rng(7 + r)
x = (rng.standard_normal(d) * np.exp(rng.uniform(-12, 6, d))).astype(np.float32)  # 1e-5 .. 4e2: normals, subnormals
X = np.empty(n * d, np.float32)
comm.native_allgatherv(x, X, [d] * n)
halves = [(X[k * d:(k + 1) * d] * np.float32(1.0 / n)).astype(np.float16) for k in range(n)]
exact = np.sum([h.astype(np.float64) for h in halves], axis=0)
# each of the n-1 float16 additions rounds once: |error| <= (n-1) u sum|h_k| with u = 2^-11,
# plus (n-1) half the smallest subnormal (2^-25) where the sums are subnormal
bound = (n - 1) * (2.0 ** -11 * np.sum([np.abs(h.astype(np.float64)) for h in halves], axis=0) + 2.0 ** -25)

for name in ALLREDUCE:
    wire = HalfWire(get_allreduce(name))
    buf = x.copy()
    sent0 = comm.bytes_sent
    res = wire(comm, buf, "mean")
    sent = comm.bytes_sent - sent0
    ok_self = res is buf and buf.dtype == np.float32
    ok_half = np.array_equal(buf, buf.astype(np.float16).astype(np.float32))  # a widened half
    err = np.abs(buf.astype(np.float64) - exact)
    ok_bound = bool(np.all(err <= bound))
    if n == 2:  # one addition: the oracle's own rounding, bit for bit
        ok_bound = ok_bound and np.array_equal(buf, (halves[0] + halves[1]).astype(np.float32))
    everyone = np.empty(n * d, np.float32)
    comm.native_allgatherv(buf, everyone, [d] * n)
    same = all(np.array_equal(everyone[k * d:(k + 1) * d], buf) for k in range(n))
    checks[f"{name}: mean in float16"] = [bool(ok_self and ok_half and ok_bound and same),
                                          f"max err {err.max():.3g}, same on every rank {same}"]
    first = buf.copy()  # a second call on the same buffer reuses its half buffer, same bits
    buf[...] = x
    wire(comm, buf, "mean")
    checks[f"{name}: repeatable"] = [bool(np.array_equal(first, buf) and len(wire._half) == 1), ""]
    if name == "ring":  # half the bytes of the float32 ring on every link
        f32 = x.copy()
        s0 = comm.bytes_sent
        get_allreduce(name)(comm, f32, "mean")
        full = comm.bytes_sent - s0
        checks["ring: half the bytes"] = [2 * sent == full, f"{sent} vs {full}"]
    mx = x.copy()
    wire(comm, mx, "max")  # not a sum: passed through in float32
    checks[f"{name}: max untouched"] = [bool(np.array_equal(mx, X.reshape(n, d).max(axis=0))), ""]

with open(f"{out}/rank{r}.json", "w") as f:
    json.dump({"checks": checks}, f)
