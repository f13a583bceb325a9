"""Deep gradient compression (DGC, Lin et al. 2018, as paper 001 describes it).

Per worker k, with momentum beta, lr eta and the top-k mask m_{t,k} of density s/d::

    g       <- clip(g, max_norm / sqrt(p))          (local gradient clipping, --clip)
    u_k     <- beta u_k + g / p                      (momentum correction: momentum first)
    v_k     <- v_k + u_k                             (accumulate the velocity, not g)
    send       m * v_k;   v_k <- (1 - m) * v_k       (memory)
    u_k     <- (1 - m) * u_k                         (momentum factor masking)
    w       <- w - eta sum_k m * v_k

Sparsity warm-up (--sparsity-warmup-epochs): the density falls from 0.25 to --density
geometrically over the first epochs (see :func:`~hpctrain.algorithms._common.density_at`).
"""

import math

from ._common import density_at, make_compressor, sparse_pairs, sparse_sum
from .base import Algorithm

__all__ = ["DGC"]


class DGC(Algorithm):
    """DGC: momentum correction, factor masking, optional clipping and sparsity warm-up."""

    name = "dgc"
    state_names = ("velocity", "memory")
    state_policies = {"velocity": "mean", "memory": "sum"}

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.momentum = ctx.cfg.momentum
        self.clip = ctx.cfg.clip
        self.velocity = params * 0
        self.memory = params * 0
        self.total = params * 0
        self.trace = None

    def step(self, params, grad, lr, t):
        n = self.comm.size
        if self.clip > 0:
            norm = math.sqrt(float((grad * grad).sum()))
            limit = self.clip / math.sqrt(n)
            if norm > limit:
                grad *= limit / norm
        comp = make_compressor(self.cfg, density=density_at(self.cfg, t, self.ctx.steps_per_epoch))
        u = self.velocity
        u *= self.momentum
        u += grad / n
        if self.trace is not None:
            self.trace.update(input=u.copy(), memory_old=self.memory.copy())
        payload = comp.compress(u, step=t, rank=self.comm.rank, memory=self.memory)
        idx, _ = sparse_pairs(comp, payload, t)
        u[idx] = 0  # momentum factor masking
        self.count("nnz_up", payload.count)
        if self.trace is not None:
            sent = params * 0
            comp.decompress(payload, sent)
            self.trace.update(sent=sent, memory_new=self.memory.copy())
        sparse_sum(self.comm, comp, payload, self.total, t, self.allreduce)
        params -= lr * self.total
