"""Global momentum compression (GMC, paper 001): global momentum + memory gradient.

Per worker k, with momentum beta, lr eta_t and a sparse mask m_{t,k} of density s/d::

    g_{t,k}   = (1/p) grad_{t,k} - beta / (p eta_t) (w_t - w_{t-1})   (global momentum)
    send        m_{t,k} * (g_{t,k} + u_{t,k})
    u_{t+1,k} = (1 - m_{t,k}) * (g_{t,k} + u_{t,k})                   (memory gradient)
    w_{t+1}   = w_t - eta_t sum_k m_{t,k} * (g_{t,k} + u_{t,k})

``aggregation = allreduce``: every rank gathers the sparse vectors (ring allgatherv) and
applies the sum. ``aggregation = ps`` (001 Algorithm 1): rank 0 is the server (and a
worker); workers send their sparse vectors to it, it forms w_{t+1} - w_t and sends that
*sparse* difference back. Traffic is counted in 001's unit (pairs count 2): up the sent
pairs, down ||w_{t+1} - w_t||_0 pairs per worker, in both forms.
With beta = 0 GMC is memory SGD (gradient dropping); with density 1 it is ``dmsgd``.
"""

from ..collectives.payload_p2p import Pairs
from ..collectives.ps_round import SERVER, server_round
from ._common import density_at, sparse_pairs, sparse_sum, sparse_sum_allreduce_sizes, sparse_sum_pattern
from .base import Algorithm, Exchange

__all__ = ["GMC"]


class GMC(Algorithm):
    """GMC with allreduce (allgather) or parameter-server aggregation."""

    name = "gmc"
    compresses = True
    needs = ("sparse", "density")  # a mask of density s/d (top-k, random-k, approx top-k)
    aggregations = ("allreduce", "ps")
    state_names = ("memory", "delta")
    state_policies = {"memory": "sum", "delta": "replicated"}

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.momentum = ctx.cfg.momentum
        self.memory = params * 0
        self.delta = params * 0  # w_t - w_{t-1}
        self.total = params * 0
        self.comp = self.make_compressor(params)  # built once: keeps its scratch buffers

    def step(self, params, grad, lr, t):
        comm, n, comp = self.comm, self.comm.size, self.comp
        comp.density = density_at(self.cfg, t, self.ctx.steps_per_epoch)  # the checked setter
        g = grad  # the gradient buffer is the step's scratch (no full-size temporaries)
        g /= n
        if self.momentum:
            correction = self.total  # overwritten by the aggregation below
            self.ctx.xp.multiply(self.delta, self.momentum / (n * lr), out=correction)
            g -= correction
        payload = comp.compress(g, step=t, rank=comm.rank, memory=self.memory)
        up = payload.floats
        if self.cfg.aggregation == "ps" and n > 1:
            self._server_round(comp, payload, lr, t)
        else:
            sparse_sum(comm, comp, payload, self.total, t, self.allreduce)
            self.delta[...] = self.total
            self.delta *= -lr
        self.count_traffic(up, self.update_floats(self.delta))
        params += self.delta

    def allreduce_sizes(self):
        if self.cfg.aggregation != "allreduce":
            return ()
        return sparse_sum_allreduce_sizes(self.comp, self.ctx.dim, self.total.dtype.itemsize)

    def comm_pattern(self, n=None):
        """allreduce: the sparse sum. ps: the k pairs up (count, int64 indices, values),
        the union of the n workers' coordinates down (at most n k pairs, declared as n k; k for
        random-k, whose coordinates are shared)."""
        if self.cfg.aggregation != "ps":
            return [sparse_sum_pattern(self)]
        n = self.comm.size if n is None else n
        k = self.probe_payload().count
        union = k if self.comp.shared_indices else min(n * k, self.ctx.dim)  # random-k: the same k
        pair = 8 + self.total.dtype.itemsize
        return [Exchange("ps", 8.0 + k * pair, down=8.0 + union * pair, decodes=True, messages=3)]

    def _server_round(self, comp, payload, lr, t):
        """001 Algorithm 1: sparse vectors up to rank 0, sparse w_{t+1} - w_t back down."""
        delta = self.delta

        def serve(pairs):
            total, step = self.total, self.delta
            total[...] = 0
            for i, v in pairs:
                total[i] += v
            step[...] = total
            step *= -lr
            down = step.nonzero()[0]
            return down, step[down]

        i, v = server_round(self.comm, sparse_pairs(comp, payload, t), serve, up=Pairs(delta.dtype),
                            down=Pairs(delta.dtype))
        if self.comm.rank != SERVER:
            delta[...] = 0
            delta[i] = v
