"""Decentralized SGD on a mixing matrix W: D-PSGD (survey 003) and decentralized momentum (002 Algorithm 2).

W is doubly stochastic (``--topology ring``: 1/3 self and each ring neighbour, the
survey's Section 5; ``complete``: J/n). Each step exchanges vectors with graph neighbours
only (the gossip mixer), never a global collective.

D-PSGD:  x_i <- sum_j W_ij (x_j - lr g_j)      (local step, then neighbourhood average)
D-Momentum (momentum beta)::

    u~_i = beta u_i + g_i;   x~_i = x_i - lr u~_i           (Option I)
                             x~_i = x_i - lr (beta u~_i + g_i)  (Option II, --nesterov)
    u_i <- sum_j W_ji u~_j;  x_i <- sum_j W_ji x~_j          (one gossip of [x~; u~])

With W = J/n D-PSGD is ``model-avg`` and D-Momentum is ``dmsgd`` (to rounding).
"""

import numpy as np

from ..collectives import gossip
from ..collectives.gossip import neighbours
from ._common import local_momentum_step, mix_pair, mixing_matrix
from .base import Algorithm, Exchange

__all__ = ["DPSGD", "DMomentum"]


def _degree(alg, n):
    """Neighbours of a rank on ``n`` ranks (this job's when ``n`` is None or its size)."""
    if n is None or n == alg.ctx.size:
        return alg.degree
    return len(neighbours(mixing_matrix(alg.cfg.topology, n), 0)[1]) if n > 1 else 0


def _matrix(ctx):
    W = ctx.extras.get("mixing")
    return mixing_matrix(ctx.cfg.topology, ctx.size) if W is None else W


class DPSGD(Algorithm):
    """Decentralized parallel SGD: local step, then one gossip step with W."""

    name = "dpsgd"
    replicated = False

    def allreduce_sizes(self):
        return ()  # gossip with the neighbours, no allreduce

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.W = _matrix(ctx)
        self.degree = len(neighbours(self.W, ctx.rank)[1]) if ctx.size > 1 else 0

    def comm_pattern(self, n=None):
        """One gossip of x with the graph neighbours."""
        return [Exchange("gossip", float(self.ctx.dim * np.dtype(self.cfg.dtype).itemsize), degree=_degree(self, n))]

    def step(self, params, grad, lr, t):
        params -= lr * grad
        gossip(self.comm, params, self.W)
        self.count_traffic(self.degree * params.size, self.degree * params.size)


class DMomentum(Algorithm):
    """Decentralized momentum SGD: local momentum step, gossip of x and u."""

    name = "dmomentum"
    replicated = False
    state_names = ("velocity",)
    state_policies = {"velocity": "mean"}

    def allreduce_sizes(self):
        return ()  # gossip with the neighbours, no allreduce

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.W = _matrix(ctx)
        self.degree = len(neighbours(self.W, ctx.rank)[1]) if ctx.size > 1 else 0
        self.momentum = ctx.cfg.momentum
        self.nesterov = ctx.cfg.nesterov
        self.velocity = params * 0
        self.buf = ctx.xp.zeros(2 * params.size, dtype=params.dtype)

    def comm_pattern(self, n=None):
        """One gossip of [x; u] (2d values) with the graph neighbours."""
        return [Exchange("gossip", float(self.buf.nbytes), degree=_degree(self, n))]

    def step(self, params, grad, lr, t):
        local_momentum_step(params, self.velocity, grad, lr, self.momentum, self.nesterov)
        mix_pair(params, self.velocity, self.buf, lambda b: gossip(self.comm, b, self.W))
        self.count_traffic(self.degree * 2 * params.size, self.degree * 2 * params.size)
