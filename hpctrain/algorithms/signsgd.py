"""signSGD with majority vote and its momentum form Signum (Bernstein, Zhao,
Azizzadenesheli, Anandkumar, "signSGD with Majority Vote is Communication Efficient and
Fault Tolerant", ICLR 2019, Algorithm 1).

Worker k keeps momentum m_k <- beta m_k + (1 - beta) g_k (beta = ``--momentum``; 0 gives
plain signSGD) and sends sign(m_k), one bit per coordinate. The vote is
V = sign(sum_k sign(m_k)), one bit per coordinate back, and every worker steps
w <- w - lr V. A tie (an even number of workers split evenly) votes +1: the bit of a
zero, as sign(0) packs to 1 (x >= 0).

``aggregation = ps``: rank 0 is the server, gathers the packed signs, votes and sends the
packed vote (1 bit up, 1 bit down per coordinate and worker). ``aggregation = allreduce``:
the packed signs go round a ring allgather and every rank counts the votes itself (same
result, no server bottleneck, (n - 1) d / 8 bytes in per rank).
"""

import numpy as np

from ..collectives.ps_round import server_round
from ..collectives.sparse import ring_allgatherv
from ..xp import get_array_module
from .base import Algorithm, Exchange

__all__ = ["SignSGD", "majority_vote"]


def pack_signs(x):
    """sign(x) as bits, 1 for x >= 0, packed eight to a byte (``packbits`` order)."""
    return get_array_module(x).packbits(x >= 0)


def majority_vote(packed, d, out):
    """The vote sign(sum_k sign_k) of packed sign rows, ties to +1.

    Args:
        packed: ``(n, ceil(d / 8))`` uint8, one worker's packed signs per row.
        d: number of coordinates.
        out: float array of ``d`` values, set to +1 or -1.

    Returns:
        ``out``.
    """
    xp = get_array_module(out)
    n = packed.shape[0]
    ones = xp.zeros(d, dtype=np.int32)
    for row in packed:
        ones += xp.unpackbits(row)[:d]
    # +1 where the ones are at least half: 2 * ones >= n
    out[...] = xp.where(2 * ones >= n, 1, -1)
    return out


class _PackedSigns:
    """Wire codec of one packed sign vector (its byte count known to both sides)."""

    def __init__(self, xp, nbytes):
        self.xp, self.nbytes = xp, nbytes

    def send(self, comm, msg, dest, tag):
        comm.send(msg, dest, tag=tag)

    def recv(self, comm, source, tag):
        buf = self.xp.empty(self.nbytes, dtype=np.uint8)
        comm.recv(buf, source, tag=tag)
        return buf


class SignSGD(Algorithm):
    """signSGD / Signum with majority vote (see the module)."""

    name = "signsgd"
    aggregations = ("allreduce", "ps")
    state_names = ("velocity",)
    state_policies = {"velocity": "mean"}
    unbiased_with = ()
    compress_methods = {"_encode": "compress", "_vote": "decompress", "_unpack_vote": "decompress"}

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.momentum = ctx.cfg.momentum
        self.velocity = params * 0
        self.vote = params * 0
        self.nbytes = (params.size + 7) // 8
        self.codec = _PackedSigns(ctx.xp, self.nbytes)

    def _encode(self, x):
        """sign(x), packed (the compression: its time is ``compress_time``)."""
        return pack_signs(x)

    def _vote(self, rows):
        """The majority vote of the packed sign rows, into ``self.vote`` (decoding)."""
        return majority_vote(rows, self.vote.size, self.vote)

    def _unpack_vote(self, packed):
        """The packed vote as it came down the wire, into ``self.vote`` (+1 or -1)."""
        xp = self.ctx.xp
        self.vote[...] = xp.where(xp.unpackbits(packed)[:self.vote.size] == 1, 1, -1)
        return self.vote

    def _gather_vote(self, bits):
        comm, n = self.comm, self.comm.size
        xp = self.ctx.xp
        if self.cfg.aggregation == "ps" and n > 1:
            def serve(rows):
                return self._encode(self._vote(xp.stack(rows)))

            reply = server_round(comm, bits, serve, up=self.codec, down=self.codec)
            # every rank (the server too) steps with the vote as it went down the wire
            return self._unpack_vote(reply)
        gathered = xp.empty(n * self.nbytes, dtype=np.uint8)
        ring_allgatherv(comm, (bits,), (gathered,), np.full(n, self.nbytes, dtype=np.int64))
        return self._vote(gathered.reshape(n, self.nbytes))

    def allreduce_sizes(self):
        """None: the votes travel by allgather (or to the servers), never by allreduce."""
        return ()

    def comm_pattern(self, n=None):
        """The packed signs (d/8 bytes) gathered by every rank, or up to the server and the
        packed vote down."""
        if self.cfg.aggregation == "ps":
            return [Exchange("ps", float(self.nbytes), down=float(self.nbytes), decodes=True)]
        return [Exchange("allgather", float(self.nbytes), decodes=True)]

    def decode_one(self):
        """Count one more worker's packed signs into the vote."""
        xp, d = self.ctx.xp, self.vote.size
        row, ones = pack_signs(self.vote), xp.zeros(d, dtype=np.int32)
        return lambda: ones.__iadd__(xp.unpackbits(row)[:d])

    def step(self, params, grad, lr, t):
        m = self.velocity
        if self.momentum:
            m *= self.momentum
            m += (1 - self.momentum) * grad
        else:
            m[...] = grad
        vote = self._gather_vote(self._encode(m))
        d = params.size
        self.count_traffic(d / 32, d / 32)  # one bit each way, in 32-bit float units
        params -= lr * vote
