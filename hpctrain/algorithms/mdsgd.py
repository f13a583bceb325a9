"""Memory-based distributed SGD with local momentum (M-DSGD, paper 000 Algorithm 1).

Per worker k, with momentum beta, lr eta and a sparse mask m_{t,k} of density s/d::

    g_{t,k}   = beta g_{t-1,k} + (1/p) grad_{t,k}            (local momentum, 1/(pb) sum)
    send        m_{t,k} * (g_{t,k} + u_{t,k})                (random-k, top-k, approx top-k)
    u_{t+1,k} = (1 - m_{t,k}) * (g_{t,k} + u_{t,k})          (memory gradient)
    w_{t+1}   = w_t - eta_t sum_k m_{t,k} * (g_{t,k} + u_{t,k})

Paper 000 keeps the learning rate *outside* the memory (Section 3.1 argues that the
memory is stale information and should be scaled by the newer, smaller eta_{t+1}); with a
constant lr the "eta inside the memory" form of Alistarh/Stich is identical (u' = eta u).
With density 1 every coordinate is sent and M-DSGD is exactly ``dmsgd``.
"""

from ._common import density_at, sparse_sum, sparse_sum_allreduce_sizes, sparse_sum_pattern
from .base import Algorithm

__all__ = ["MDSGD"]


class MDSGD(Algorithm):
    """M-DSGD: local momentum (``velocity``), error-feedback ``memory``, sparse aggregation."""

    name = "mdsgd"
    compresses = True
    needs = ("sparse", "density")  # a mask of density s/d (top-k, random-k, approx top-k)
    state_names = ("velocity", "memory")
    state_policies = {"velocity": "mean", "memory": "sum"}

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.momentum = ctx.cfg.momentum
        self.velocity = params * 0
        self.memory = params * 0
        self.total = params * 0
        self.comp = self.make_compressor(params)  # built once: keeps its scratch buffers

    def step(self, params, grad, lr, t):
        n, comp = self.comm.size, self.comp
        comp.density = density_at(self.cfg, t, self.ctx.steps_per_epoch)  # the checked setter
        v = self.velocity
        v *= self.momentum
        grad /= n  # the gradient buffer is the step's scratch (no full-size temporaries)
        v += grad
        payload = comp.compress(v, step=t, rank=self.comm.rank, memory=self.memory)
        self._sent(comp, payload, t)
        total = sparse_sum(self.comm, comp, payload, self.total, t, self.allreduce)
        self.count_traffic(payload.floats, self.update_floats(total))
        total *= lr
        params -= total

    def allreduce_sizes(self):
        return sparse_sum_allreduce_sizes(self.comp, self.ctx.dim, self.total.dtype.itemsize)

    def comm_pattern(self, n=None):
        """The sparse sum: the k values by allreduce (random-k), else the pairs gathered."""
        return [sparse_sum_pattern(self)]

    def _sent(self, comp, payload, t):
        """Hook after compression (DGC masks the momentum of the sent coordinates)."""
