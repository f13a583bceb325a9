"""Global momentum compression (GMC, paper 001): global momentum + memory gradient.

Per worker k, with momentum beta, lr eta_t and a sparse mask m_{t,k} of density s/d::

    g_{t,k}   = (1/p) grad_{t,k} - beta / (p eta_t) (w_t - w_{t-1})   (global momentum)
    send        m_{t,k} * (g_{t,k} + u_{t,k})
    u_{t+1,k} = (1 - m_{t,k}) * (g_{t,k} + u_{t,k})                   (memory gradient)
    w_{t+1}   = w_t - eta_t sum_k m_{t,k} * (g_{t,k} + u_{t,k})

``aggregation = allreduce``: every rank gathers the sparse vectors (ring allgatherv) and
applies the sum. ``aggregation = ps`` (001 Algorithm 1): rank 0 is the server (and a
worker); workers send their sparse vectors to it, it forms w_{t+1} - w_t and sends that
*sparse* difference back; ``nnz_down`` counts ||w_{t+1} - w_t||_0 per receiving worker.
With beta = 0 GMC is memory SGD (gradient dropping); with density 1 it is ``dmsgd``.
"""

from ..compress import make_compressor
from ._common import SERVER, density_at, recv_pairs, send_pairs, sparse_pairs, sparse_sum
from .base import Algorithm

__all__ = ["GMC"]


class GMC(Algorithm):
    """GMC with allreduce (allgather) or parameter-server aggregation."""

    name = "gmc"
    compressors = ("topk", "randk", "approx-topk")
    aggregations = ("allreduce", "ps")
    state_names = ("memory", "delta")
    state_policies = {"memory": "sum", "delta": "replicated"}

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.momentum = ctx.cfg.momentum
        self.memory = params * 0
        self.delta = params * 0  # w_t - w_{t-1}
        self.total = params * 0
        self.comp = make_compressor(ctx.cfg)  # built once: keeps its scratch buffers

    def step(self, params, grad, lr, t):
        comm, n, comp = self.comm, self.comm.size, self.comp
        comp.density = density_at(self.cfg, t, self.ctx.steps_per_epoch)
        g = grad  # the gradient buffer is the step's scratch (no full-size temporaries)
        g /= n
        if self.momentum:
            correction = self.total  # overwritten by the aggregation below
            self.ctx.xp.multiply(self.delta, self.momentum / (n * lr), out=correction)
            g -= correction
        payload = comp.compress(g, step=t, rank=comm.rank, memory=self.memory)
        self.count("nnz_up", payload.count)
        if self.cfg.aggregation == "ps" and n > 1:
            self._server_round(comp, payload, lr, t)
        else:
            sparse_sum(comm, comp, payload, self.total, t, self.allreduce)
            self.delta[...] = self.total
            self.delta *= -lr
        params += self.delta

    def _server_round(self, comp, payload, lr, t):
        """001 Algorithm 1: sparse vectors up to rank 0, sparse w_{t+1} - w_t back down."""
        comm, delta = self.comm, self.delta
        idx, val = sparse_pairs(comp, payload, t)
        if comm.rank == SERVER:
            total = self.total
            total[...] = 0
            total[idx] += val
            for src in range(comm.size):
                if src != SERVER:
                    i, v = recv_pairs(comm, src, val.dtype, tag=300)
                    total[i] += v
            delta[...] = total
            delta *= -lr
            down = delta.nonzero()[0]
            for dst in range(comm.size):
                if dst != SERVER:
                    send_pairs(comm, down, delta[down], dst, tag=310)
            self.count("nnz_down", down.size)
        else:
            send_pairs(comm, idx, val, SERVER, tag=300)
            i, v = recv_pairs(comm, SERVER, delta.dtype, tag=310)
            delta[...] = 0
            delta[i] = v
            self.count("nnz_down", i.size)
