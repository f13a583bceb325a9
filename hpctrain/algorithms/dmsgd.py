"""Distributed momentum SGD with gradient averaging (dense baseline of paper 001)."""

from .base import Algorithm

__all__ = ["DMSGD"]


class DMSGD(Algorithm):
    """Gradient averaging with heavy-ball momentum.

    g <- (1/n) sum_k g_k (the configured allreduce); v <- beta v + g; w <- w - eta v,
    with beta = ``momentum`` and eta = ``lr``.
    """

    name = "dmsgd"
    bucketing = "free"
    state_names = ("velocity",)
    state_policies = {"velocity": "replicated"}

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.momentum = ctx.cfg.momentum
        self.velocity = params * 0

    def step(self, params, grad, lr, t):
        self.allreduce(self.comm, grad, "mean")
        self.count_traffic(grad.size, grad.size)
        v = self.velocity
        v *= self.momentum
        v += grad
        self.ctx.xp.multiply(v, lr, out=grad)  # lr * v into the gradient buffer: no temporary
        params -= grad
