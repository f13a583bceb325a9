"""Error-compensated SGD (EC-SGD) and DoubleSqueeze (survey 003, eqs 3.8-3.12).

Worker n, with compressor Q (1-bit ``sign``, b-bit ``qsgd``, ``topk`` or ``randk``)::

    v_t^(n)     = g_t^(n) + delta_{t-1}^(n)                  (3.8)
    delta_t^(n) = v_t^(n) - Q(v_t^(n))                        (3.9, worker memory)

EC-SGD steps with the average x_{t+1} = x_t - lr (1/N) sum_n Q(v_t^(n)). DoubleSqueeze
also compresses what the server sends, with a server memory delta::

    v_t     = (1/N) sum_n Q(v_t^(n)) + delta_{t-1}            (3.10)
    delta_t = v_t - Q(v_t)                                    (3.11)
    x_{t+1} = x_t - lr Q(v_t)                                 (3.12)

``aggregation = ps``: rank 0 is the server (EC-SGD sends the dense average back,
DoubleSqueeze sends Q(v_t)). ``aggregation = allreduce``: every rank gathers the workers'
payloads (ring allgatherv) and, for DoubleSqueeze, runs the server step itself; the
server memory is then replicated and the server's Q uses the RNG stream of rank N.
"""

from ..collectives.payload_p2p import PAYLOAD, Dense, allgather_payloads
from ..collectives.ps_round import SERVER, server_round
from .base import Algorithm, Exchange

__all__ = ["ECSGD", "DoubleSqueeze"]


class ECSGD(Algorithm):
    """EC-SGD: worker-side error compensation, uncompressed server reply."""

    name = "ecsgd"
    compresses = True  # error feedback takes any operator that leaves communication to it
    aggregations = ("allreduce", "ps")
    state_names = ("memory",)
    state_policies = {"memory": "sum"}
    server_compresses = False

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.comp = self.make_compressor(params)
        self.memory = params * 0
        self.server_memory = params * 0
        self.total = params * 0
        self.tmp = params * 0

    def _average(self, payloads, out):
        out[...] = 0
        for p in payloads:
            self.comp.decompress_add(p, out)
        out /= self.comm.size
        return out

    def _server(self, t):
        """Turn the worker average in ``total`` into the step direction (in place)."""
        if not self.server_compresses:
            return None
        down = self.comp.compress(self.total, step=t, rank=self.comm.size, memory=self.server_memory)
        self.comp.decompress(down, self.total)
        return down

    def comm_pattern(self, n=None):
        """allreduce: every payload gathered; ps: a payload up (with its 8-byte length), the
        dense average down (DoubleSqueeze: the server's payload)."""
        p = float(self.probe_payload().nbytes)
        if self.cfg.aggregation != "ps":
            return [Exchange("allgather", p, decodes=True)]
        down = p + 8 if self.server_compresses else float(self.total.nbytes)
        return [Exchange("ps", p + 8, down=down, decodes=True, messages=2,
                         down_messages=2 if self.server_compresses else 1, serial=int(self.server_compresses))]

    def step(self, params, grad, lr, t):
        comm, n, r = self.comm, self.comm.size, self.comm.rank
        mine = self.comp.compress(grad, step=t, rank=r, memory=self.memory)
        total = self.total
        if self.cfg.aggregation == "ps" and n > 1:
            def serve(payloads):  # the average, and DoubleSqueeze's compressed reply
                self._average(payloads, total)
                down = self._server(t)
                return total if down is None else down

            reply = server_round(comm, mine, serve, down=PAYLOAD if self.server_compresses else Dense(total))
            if self.server_compresses and r != SERVER:
                self.comp.decompress(reply, total)
        else:
            self._average(allgather_payloads(comm, mine), total)
            reply = self._server(t)
        self.count_traffic(mine.floats, reply.floats if self.server_compresses else self.update_floats(total))
        params -= lr * total


class DoubleSqueeze(ECSGD):
    """DoubleSqueeze: EC-SGD plus server-side error compensation of the reply."""

    name = "doublesqueeze"
    # the server compresses with the same operator: one operator state cannot serve two streams
    refuses = ("communicates", "stateful")
    state_names = ("memory", "server_memory")
    state_policies = {"memory": "sum", "server_memory": "replicated"}
    server_compresses = True



