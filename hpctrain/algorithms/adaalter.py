"""Adaptive methods of paper 004: distributed AdaGrad (Algorithm 1) and Local AdaAlter (Algorithm 3).

AdaGrad, lr eta, epsilon eps::

    G = (1/n) sum_i G_i;  B^2 <- B^2 + G o G;  x <- x - eta G / sqrt(B^2 + eps^2)

Local AdaAlter, sync_period H, t' = ((t - 1) mod H) + 1 (local steps since the last sync)::

    y_i  = x_i - eta_t G_i / sqrt(B^2_{t-t'} + t' eps^2)     (lazy, synchronized denominator)
    A_i^2 = A_i^2 + G_i o G_i                                  (local accumulation)
    every H steps: x_i <- mean_j y_j; A_i^2 <- mean_j A_j^2; B^2 <- A^2   (one allreduce)

t' eps^2 is the placeholder for the t' squared gradients not yet added to B^2. Warm-up
(--adaalter-warmup W): eta_t = lr min(1, t / W). B^2 starts at b0^2 (--adagrad-b0; the
paper's theorem takes b0 >= 1; b0 = 0 is Algorithm 1's B_0 = 0).
"""

from ._common import mix_pair
from .base import Algorithm

__all__ = ["AdaGrad", "LocalAdaAlter"]


class AdaGrad(Algorithm):
    """Distributed AdaGrad on the averaged gradient (every step synchronous)."""

    name = "adagrad"
    bucketing = "free"
    state_names = ("accum_sq",)
    state_policies = {"accum_sq": "replicated"}

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.eps_sq = ctx.cfg.adagrad_eps ** 2
        self.accum_sq = params * 0 + ctx.cfg.adagrad_b0 ** 2

    def step(self, params, grad, lr, t):
        xp = self.ctx.xp
        self.allreduce(self.comm, grad, "mean")
        self.count_traffic(grad.size, grad.size)
        self.accum_sq += grad * grad
        params -= lr * grad / xp.sqrt(self.accum_sq + self.eps_sq)


class LocalAdaAlter(Algorithm):
    """Local AdaAlter: lazy denominators, x and B^2 averaged every ``sync_period`` steps."""

    name = "local-adaalter"
    bucketing = "params"
    replicated = False
    state_names = ("accum_sq", "denom_sq")
    state_policies = {"accum_sq": "mean", "denom_sq": "replicated"}

    def allreduce_sizes(self):
        return (self.buf.nbytes,)  # x and a second state in one message of 2d numbers

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.period = ctx.cfg.sync_period
        self.warmup = ctx.cfg.adaalter_warmup
        self.eps_sq = ctx.cfg.adagrad_eps ** 2
        self.accum_sq = params * 0 + ctx.cfg.adagrad_b0 ** 2  # A_i^2
        self.denom_sq = self.accum_sq.copy()  # B^2 at the last synchronization
        self.buf = ctx.xp.zeros(2 * params.size, dtype=params.dtype)

    def steps_per_sync(self):
        return self.period

    def lr_at(self, lr, t):
        """eta_t = lr min(1, t / warmup) for the 1-based step t."""
        return lr * min(1.0, t / self.warmup) if self.warmup else lr

    def step(self, params, grad, lr, t):
        xp = self.ctx.xp
        t1 = t + 1
        local = (t1 - 1) % self.period + 1  # t'
        params -= self.lr_at(lr, t1) * grad / xp.sqrt(self.denom_sq + local * self.eps_sq)
        self.accum_sq += grad * grad
        if t1 % self.period == 0:
            mix_pair(params, self.accum_sq, self.buf, lambda b: self.allreduce(self.comm, b, "mean"))
            self.denom_sq[...] = self.accum_sq
            self.count_traffic(2 * params.size, 2 * params.size)
