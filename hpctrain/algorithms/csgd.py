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
Traffic (paper 001's unit, :attr:`Payload.floats`): up each rank's payload (its ring hop),
down what every worker receives of the step: the server's Q (ps), the final Q forwarded
around the ring, or w_{t+1} - w_t as sparse pairs or dense (allreduce).
"""

from ..collectives.payload_p2p import allgather_payloads, recv_payload, send_payload
from ..collectives.ps_round import server_round
from ..collectives.tags import TAGS
from .base import Algorithm, Exchange

__all__ = ["CSGD"]


class CSGD(Algorithm):
    """Compressed SGD with unbiased quantization or sparsification (stateless)."""

    name = "csgd"
    compresses = True
    # every lossy operator that is unbiased, or unbiased after a known scale (random-k: d/k)
    needs = (("unbiased", "unbiased_scaled"),)
    refuses = ("communicates", "lossless", "stateful")
    aggregations = ("allreduce", "ps", "ring")
    unbiased_with = "compressors"  # every operator it takes (set by the registry)

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.comp = self.make_compressor(params)
        self.scale = self.comp.unbias_scale(params.size)
        self.total = params * 0
        self.tmp = params * 0

    def _decode_add(self, payload, out, comp=None):
        (comp or self.comp).decompress(payload, self.tmp)
        if self.scale != 1.0:
            self.tmp *= self.scale
        out += self.tmp
        return out

    def step(self, params, grad, lr, t):
        comm, n, r = self.comm, self.comm.size, self.comm.rank
        comp, total = self.comp, self.total
        agg = self.cfg.aggregation
        total[...] = 0
        if agg == "ring" and n > 1:
            self._ring(grad, t)
        elif agg == "ps" and n > 1:
            mine = comp.compress(grad, step=t, rank=r)

            def serve(payloads):  # Q((1/N) sum_n Q(g_n)), an independent draw
                avg = self.total
                for p in payloads:
                    self._decode_add(p, avg)
                avg /= n
                return comp.independent(1).compress(avg, step=t, rank=n)

            down = server_round(comm, mine, serve)
            total[...] = 0
            self._decode_add(down, total, comp.independent(1))
            self.count_traffic(mine.floats, down.floats)
        else:
            mine = comp.compress(grad, step=t, rank=r)
            for p in allgather_payloads(comm, mine):
                self._decode_add(p, total)
            total /= n
            self.count_traffic(mine.floats, self.update_floats(total))
        params -= lr * total

    def comm_pattern(self, n=None):
        """allreduce: every payload gathered; ps: a payload up and the server's down; ring:
        a payload per hop, then the final one around (a payload travels with its 8-byte length)."""
        p = float(self.probe_payload().nbytes)
        agg = self.cfg.aggregation
        n = self.comm.size if n is None else n
        if agg == "ps":  # the server re-compresses the average
            return [Exchange("ps", p + 8, down=p + 8, decodes=True, messages=2, serial=1)]
        if agg == "ring":  # every hop decodes, adds and re-compresses before passing on
            return [Exchange("ring-hops", p + 8, messages=2, serial=max(n - 1, 0))]
        return [Exchange("allgather", p, decodes=True)]

    def _ring(self, grad, t):
        """Unpartitioned ring with a quantization at every hop, then the average around."""
        comm, n, r, comp, acc = self.comm, self.comm.size, self.comm.rank, self.comp, self.total
        right, left = (r + 1) % n, (r - 1) % n
        if r == 0:
            acc[...] = grad
        else:
            self._decode_add(recv_payload(comm, left, TAGS["ring-hop"]), acc, comp.independent(r))
            acc += grad
        if r < n - 1:
            up = comp.independent(r + 1).compress(acc, step=t, rank=r)
            send_payload(comm, up, right, TAGS["ring-hop"])
            final = recv_payload(comm, left, TAGS["ring-final"])
            if r < n - 2:
                send_payload(comm, final, right, TAGS["ring-final"])
        else:
            acc /= n
            final = comp.independent(n).compress(acc, step=t, rank=n)
            up = None  # the last rank's contribution is the average itself
            send_payload(comm, final, right, TAGS["ring-final"])
        self.count_traffic(0 if up is None else up.floats, final.floats)
        acc[...] = 0
        self._decode_add(final, acc, comp.independent(n))
