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

from ._common import sparse_pairs
from .mdsgd import MDSGD

__all__ = ["DGC"]


class DGC(MDSGD):
    """DGC: momentum correction, factor masking, optional clipping and sparsity warm-up.

    The step is M-DSGD's (momentum first, then the memory accumulates the velocity),
    plus local gradient clipping before and momentum factor masking after compression.
    """

    name = "dgc"
    bucketing = "layerwise"

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.clip = ctx.cfg.clip

    def step(self, params, grad, lr, t):
        if self.clip > 0:
            sq = self.ctx.xp.multiply(grad, grad, out=self.total)  # total: scratch until the sum
            norm = math.sqrt(float(sq.sum()))
            limit = self.clip / math.sqrt(self.comm.size)
            if norm > limit:
                grad *= limit / norm
        super().step(params, grad, lr, t)

    def _sent(self, comp, payload, t):
        idx, _ = sparse_pairs(comp, payload, t)
        self.velocity[idx] = 0  # momentum factor masking
