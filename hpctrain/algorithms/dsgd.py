"""Synchronous data-parallel SGD: gradient averaging (dsgd) and model averaging (model-avg).

Survey 003 contrasts the two aggregation forms: averaging the gradients before one
shared step, or letting every worker step alone and averaging the models afterwards.
"""

from .base import Algorithm

__all__ = ["DSGD", "ModelAverage"]


class DSGD(Algorithm):
    """Distributed plain SGD: g <- (1/n) sum_k g_k (the configured allreduce); w <- w - lr g."""

    name = "dsgd"
    bucketing = "free"
    unbiased_with = ("none",)

    def step(self, params, grad, lr, t):
        self.allreduce(self.comm, grad, "mean")
        self.count_traffic(grad.size, grad.size)
        params -= lr * grad


class ModelAverage(Algorithm):
    """Model aggregation every step: w_k <- w_k - lr g_k locally, then w <- (1/n) sum_k w_k."""

    name = "model-avg"
    bucketing = "params"

    def step(self, params, grad, lr, t):
        params -= lr * grad
        self.allreduce(self.comm, params, "mean")
        self.count_traffic(params.size, params.size)
