"""Local (periodically averaged) SGD: local SGD (004 Algorithm 2) and PR-SGD-Momentum (002 Algorithm 1).

Local SGD, sync_period H: x_k <- x_k - lr g_k every step; every H steps
x_k <- (1/n) sum_j x_j. PR-SGD-Momentum, sync_period I, momentum beta::

    u_k <- beta u_k + g_k
    x_k <- x_k - lr u_k                      (Option I, Polyak)
    x_k <- x_k - lr (beta u_k + g_k)         (Option II, Nesterov: --nesterov)
    every I steps: x_k <- mean_j x_j, u_k <- mean_j u_j   (one allreduce of [x; u])

Step t (0-based) synchronizes when (t + 1) is a multiple of the period, as the papers'
1-based "t mod I = 0". With a period of 1, local SGD is ``model-avg`` (= dsgd on identical
starting points up to rounding) and PR-SGD-Momentum is synchronous momentum SGD (``dmsgd``).
"""

from ._common import local_momentum_step, mix_pair
from .base import Algorithm

__all__ = ["LocalSGD", "PRSGDMomentum"]


class LocalSGD(Algorithm):
    """Local SGD: plain local steps, model averaging every ``sync_period`` steps."""

    name = "local-sgd"
    bucketing = "params"
    replicated = False
    state_names = ()

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.period = ctx.cfg.sync_period

    def steps_per_sync(self):
        return self.period

    def step(self, params, grad, lr, t):
        params -= lr * grad
        if (t + 1) % self.period == 0:
            self.allreduce(self.comm, params, "mean")
            self.count_traffic(params.size, params.size)


class PRSGDMomentum(Algorithm):
    """Parallel restarted SGD with momentum: average x and u every ``sync_period`` steps."""

    name = "prsgd-momentum"
    bucketing = "params"
    replicated = False
    state_names = ("velocity",)
    state_policies = {"velocity": "mean"}

    def allreduce_sizes(self):
        return (self.buf.nbytes,)  # x and a second state in one message of 2d numbers

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.momentum = ctx.cfg.momentum
        self.nesterov = ctx.cfg.nesterov
        self.period = ctx.cfg.sync_period
        self.velocity = params * 0
        self.buf = ctx.xp.zeros(2 * params.size, dtype=params.dtype)

    def steps_per_sync(self):
        return self.period

    def step(self, params, grad, lr, t):
        local_momentum_step(params, self.velocity, grad, lr, self.momentum, self.nesterov)
        if (t + 1) % self.period == 0:
            mix_pair(params, self.velocity, self.buf, lambda b: self.allreduce(self.comm, b, "mean"))
            self.count_traffic(2 * params.size, 2 * params.size)
