"""mpiexec worker: a few PowerSGD steps on crafted gradients, for the NumPy oracle.

usage: powersgd_steps.py OUT_DIR RANK STEPS START DTYPE

Every rank draws its gradients from a generator seeded by (rank, step), runs
:class:`hpctrain.algorithms.powersgd.PowerSGD` over the hand-made ring allreduce, and
writes OUT_DIR/rank{r}.npz with the initial Q buffer, the gradients it used, the final
parameters, error memory and Q.
"""

import sys
from types import SimpleNamespace

import numpy as np

from hpctrain.algorithms.base import AlgoContext
from hpctrain.algorithms.powersgd import PowerSGD
from hpctrain.collectives import get_allreduce
from hpctrain.comm import world

#: a linear weight, its bias, a conv weight (c_out x c_in x k x k), a thin matrix that stays
#: dense, and a batch-norm pair
LAYOUT = [("fc.w", (20, 12)), ("fc.b", (12,)), ("conv.w", (16, 2, 3, 3)), ("thin.w", (3, 2)), ("bn", (2, 5))]


def layout():
    out, off = [], 0
    for name, shape in LAYOUT:
        out.append((name, shape, off))
        off += int(np.prod(shape))
    return out, off


def main():
    out_dir, rank, steps, start, dtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    comm = world()
    lay, d = layout()
    cfg = SimpleNamespace(momentum=0.9, seed=7, rank=rank, powersgd_start=start, model="crafted")
    ctx = AlgoContext(cfg, comm, get_allreduce("ring"), d, 10, np, layers=lay)
    params = np.random.default_rng(99).normal(size=d).astype(dtype)
    algo = PowerSGD(ctx, params)
    q0 = algo.qs.copy()
    grads = np.stack([np.random.default_rng([comm.rank, t]).normal(size=d).astype(dtype) for t in range(steps)])
    grad = np.empty(d, dtype)
    for t in range(steps):
        grad[...] = grads[t]
        algo.step(params, grad, 0.1, t)
    params, memory = params.copy(), algo.memory.copy()
    # the bytes of one compressed step against the ring allreduce of P, Q and the dense part alone
    comm.reset_counters()
    algo.step(params, grad, 0.0, max(start, steps))
    step_bytes = comm.bytes_sent
    comm.reset_counters()
    for size in (algo.p_size, algo.q_size, algo.flat_dense.size):
        get_allreduce("ring")(comm, np.zeros(size, dtype), "mean")
    np.savez(f"{out_dir}/rank{comm.rank}.npz", q0=q0, grads=grads, params=params, memory=memory,
             qs=algo.qs, wire=algo.wire_values(), step_bytes=step_bytes, ring_bytes=comm.bytes_sent)


if __name__ == "__main__":
    main()
