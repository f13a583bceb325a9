"""Compressed SGD with an unbiased compressor Q (survey 003, Section 3): no memory.

Q is b-bit stochastic quantization (eq 3.1, ``--compressor qsgd --bits b``) or
randomized sparsification (``--compressor randk``, values scaled by d/k so that
E[Q(x)] = x). The aggregation decides where Q is applied:

* ``allreduce``: every rank gathers all Q(g_n) (ring allgatherv of the wire bytes) and
  steps with (1/N) sum_n Q(g_n);
* ``ps``: rank 0 is the server: w <- w - lr Q((1/N) sum_n Q(g_n)) (the server
  re-quantizes the average it broadcasts);
* ``ring``: the unpartitioned ring, quantizing at each hop: rank r receives
  Q(s_{r-1}), forms s_r = Q(s_{r-1}) + g_r and passes Q(s_r) on; the last rank
  quantizes the average, which travels once around the ring to everyone.

The RNG of every Q is counter-based on (seed, step, rank); the server's Q uses rank N.
Every Q of a step is an independent draw (survey (3.2)/(3.3) need each Q unbiased given
its input): random-k's coordinates are shared by the workers' uplink (draw 0), while the
server's re-compression (draw 1), ring hop r (draw r + 1) and the ring's final average
(draw N) each take their own shared seed (:meth:`Compressor.independent`); re-scaling
coordinates the same draw already selected would multiply the step by d/k.
``nnz_up`` counts the payload in float-equivalents (payload bytes / itemsize).
"""

from ..compress import compressor_names
from ._common import SERVER, allgather_payloads, make_compressor, recv_payload, send_payload, unbiased_scale
from .base import Algorithm

__all__ = ["CSGD"]


class CSGD(Algorithm):
    """Compressed SGD with unbiased quantization or sparsification (stateless)."""

    name = "csgd"
    # every unbiased operator, and random-k (made unbiased here by the d/k scale)
    compressors = tuple(n for n in compressor_names(canonical=True, unbiased=True) if n != "none") + ("randk",)
    aggregations = ("allreduce", "ps", "ring")
    unbiased_with = compressors

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.comp = make_compressor(ctx.cfg)
        self.scale = unbiased_scale(self.comp, params.size)
        self.total = params * 0
        self.tmp = params * 0

    def _decode_add(self, payload, out, comp=None):
        (comp or self.comp).decompress(payload, self.tmp)
        if self.scale != 1.0:
            self.tmp *= self.scale
        out += self.tmp
        return out

    def _floats(self, payload):
        return payload.payload_nbytes // payload.dtype.itemsize

    def step(self, params, grad, lr, t):
        comm, n, r = self.comm, self.comm.size, self.comm.rank
        comp, total = self.comp, self.total
        agg = self.cfg.aggregation
        total[...] = 0
        if agg == "ring" and n > 1:
            self._ring(grad, t)
        elif agg == "ps" and n > 1:
            mine = comp.compress(grad, step=t, rank=r)
            self.count("nnz_up", self._floats(mine))
            if r == SERVER:
                self._decode_add(mine, total)
                for src in range(n):
                    if src != SERVER:
                        self._decode_add(recv_payload(comm, src, tag=400), total)
                total /= n
                down = comp.independent(1).compress(total, step=t, rank=n)
                for dst in range(n):
                    if dst != SERVER:
                        send_payload(comm, down, dst, tag=410)
            else:
                send_payload(comm, mine, SERVER, tag=400)
                down = recv_payload(comm, SERVER, tag=410)
            total[...] = 0
            self._decode_add(down, total, comp.independent(1))
        else:
            mine = comp.compress(grad, step=t, rank=r)
            self.count("nnz_up", self._floats(mine))
            for p in allgather_payloads(comm, mine):
                self._decode_add(p, total)
            total /= n
        params -= lr * total

    def _ring(self, grad, t):
        """Unpartitioned ring with a quantization at every hop, then the average around."""
        comm, n, r, comp, acc = self.comm, self.comm.size, self.comm.rank, self.comp, self.total
        right, left = (r + 1) % n, (r - 1) % n
        if r == 0:
            acc[...] = grad
        else:
            self._decode_add(recv_payload(comm, left, tag=420), acc, comp.independent(r))
            acc += grad
        if r < n - 1:
            up = comp.independent(r + 1).compress(acc, step=t, rank=r)
            self.count("nnz_up", self._floats(up))
            send_payload(comm, up, right, tag=420)
            final = recv_payload(comm, left, tag=430)
            if r < n - 2:
                send_payload(comm, final, right, tag=430)
        else:
            acc /= n
            final = comp.independent(n).compress(acc, step=t, rank=n)
            self.count("nnz_up", self._floats(final))
            send_payload(comm, final, right, tag=430)
        acc[...] = 0
        self._decode_add(final, acc, comp.independent(n))
