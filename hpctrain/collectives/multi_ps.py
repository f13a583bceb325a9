"""Multi-server parameter server: the vector is sharded over S servers; every worker sends
shard s to server s, the servers reduce and send the result back (survey 003, §1.3.4:
2(n-1)(alpha + S/n beta) when every rank is also a server, the ring's cost).

Co-located, each phase runs in n - 1 pairwise rounds: in round i rank r sends to r + i and
receives from r - i, so every rank has one flow in and one flow out at a time, as in the
ring. (Posting all n - 1 transfers at once is an incast: on a rate-limited link the n - 1
flows into a rank overflowed its queue and the allreduce took 1.7-2x the ring's time.)

Two placements:

* co-located (``servers=None``; the ``multi-ps`` allreduce): every rank is a worker and
  the server of shard r (S = n). The result is the reduction over all n ranks. Dense
  shards of at least the ring's ``PIPELINE_MIN_BYTES`` travel in ``SEGMENT_BYTES``
  segments through two alternating segment buffers per peer (segment by segment, each in
  n - 1 pairwise rounds), so the server's temporaries stay 2(n-1) segments instead of a
  shard per peer (bit-identical results).
* dedicated (``servers=k``): the last k ranks only aggregate, ranks 0..n-k-1 compute.
  Workers' ``buf`` ends with the reduction over the **n-k workers only** (servers
  contribute nothing); ``mean`` divides by n-k. A server's ``buf`` gives length and dtype
  and on return its own shard (``shard_bounds(len)[j]`` for server j) holds the
  reduced shard; the rest of a server's ``buf`` is untouched.

The server-side reduce step is a pluggable *reducer*: :class:`DenseSum` now; a sparse
(indices/values) or quantized reducer only has to implement the same three methods
(``encode``, ``wire_buffer``, ``reduce_into``). Servers always reduce the contributions
in worker-rank order, so both placements give bit-identical results on the same data.
"""

from ..errors import CommError
from . import ring as _ring
from .ring import chunk_bounds, reduce_op

_SEGMENT_TAG = 1 << 12  # tags of the segmented phase 1: _SEGMENT_TAG + segment index
_MAX_SEGMENTS = 1 << 14  # more segments than this (16 GiB shards): whole-shard messages

__all__ = ["MultiPS", "DenseSum", "multi_ps_allreduce"]


class DenseSum:
    """Dense shards on the wire; the server reduces them element-wise in worker order."""

    name = "dense"
    #: the payload of a slice of a shard is that slice: large shards may travel in segments
    segmentable = True

    def encode(self, comm, shard, key):
        """The array a worker sends for ``shard`` (dense: the shard itself, no copy)."""
        return shard

    def wire_buffer(self, comm, key, shard_len, like):
        """A receive buffer big enough for one worker's payload of a ``shard_len`` shard."""
        return comm.buffers.scratch(key, shard_len, like)

    def reduce_into(self, comm, acc, payloads, nbytes, ufunc):
        """``acc`` <- reduction of the decoded ``payloads``, left to right in the given order.

        ``acc`` may be one of the payloads (the server's own shard): partial results go to a
        scratch buffer and only the last operation writes ``acc``, after every other payload
        has been read. No copies: n-1 element-wise passes for n payloads.

        Args:
            comm: the communicator (owner of the scratch buffer).
            acc: output shard.
            payloads: received (or own) payload arrays, one per worker, in rank order.
            nbytes: bytes actually received for each payload (variable for sparse).
            ufunc: the element-wise reduction (``np.add``, ``np.maximum``, ...).
        """
        first, last = payloads[0], payloads[-1]
        if len(payloads) == 1:
            if first is not acc:
                acc[...] = first
            return acc
        if len(payloads) > 2:
            part = comm.buffers.scratch("mps-part", acc.size, acc)
            ufunc(first, payloads[1], out=part)
            for p in payloads[2:-1]:
                ufunc(part, p, out=part)
            first = part
        ufunc(first, last, out=acc)
        return acc


class MultiPS:
    """A multi-server parameter server over ``comm``.

    Args:
        comm: a :class:`~hpctrain.comm.Communicator`.
        servers: None for co-located (every rank serves one shard), or k (1 <= k < n)
            dedicated server ranks n-k..n-1.
        reducer: the server-side reduce step (default :class:`DenseSum`).
    """

    def __init__(self, comm, servers=None, reducer=None):
        n = comm.size
        if servers is not None and not (1 <= int(servers) < n):
            raise CommError(f"multi-ps with dedicated servers needs 1 <= servers < {n} ranks, got {servers}")
        self.comm = comm
        self.servers = None if servers is None else int(servers)
        self.reducer = reducer or DenseSum()

    @property
    def workers(self):
        """Number of ranks that contribute data."""
        return self.comm.size if self.servers is None else self.comm.size - self.servers

    def is_server(self, rank=None):
        """Whether ``rank`` (default: this rank) aggregates a shard."""
        rank = self.comm.rank if rank is None else rank
        return self.servers is None or rank >= self.workers

    def shard_bounds(self, length):
        """Offsets of the shards of a ``length``-element vector, one per server."""
        return chunk_bounds(length, self.comm.size if self.servers is None else self.servers)

    def allreduce(self, buf, op="sum"):
        """Reduce ``buf`` through the servers, in place (see the module docstring).

        Returns:
            ``buf``.
        """
        ufunc = reduce_op(op, buf)
        if self.comm.size == 1:
            return buf
        if self.servers is None:
            return self._colocated(buf, op, ufunc)
        return self._dedicated(buf, op, ufunc)

    def _colocated(self, buf, op, ufunc):
        comm, red = self.comm, self.reducer
        n, r = comm.size, comm.rank
        b = chunk_bounds(buf.size, n)
        shard = lambda i: buf[b[i] : b[i + 1]]  # noqa: E731
        own = shard(r)
        seg = max(1, _ring.SEGMENT_BYTES // buf.dtype.itemsize)
        if (getattr(red, "segmentable", False) and (b[1] - b[0]) * buf.dtype.itemsize >= _ring.PIPELINE_MIN_BYTES
                and (b[1] - b[0] + seg - 1) // seg <= _MAX_SEGMENTS):
            self._segmented_phase1(shard, own, n, r, seg, ufunc)
        else:
            self._whole_phase1(buf, shard, own, n, r, ufunc)
        if op == "mean":
            own /= n
        # phase 2: every server sends its reduced shard to every other rank, in pairwise rounds
        for i in range(1, n):
            comm.waitall([comm.irecv(shard((r - i) % n), (r - i) % n, tag=31), comm.isend(own, (r + i) % n, tag=31)])
        return buf

    def _segmented_phase1(self, shard, own, n, r, seg, ufunc):
        """Phase 1 for large dense shards: like the ring's pipeline, each peer's copy of my
        shard arrives in segments through two alternating segment buffers per peer. Segment
        k travels in n - 1 pairwise exchanges (round i: its piece of shard r+i to rank r+i,
        rank r-i's piece of my shard in); segment k is reduced (in rank order) once its
        n - 1 pieces are in, while the next exchange travels. The temporaries stay
        2 (n-1) segments long, so the working set does not grow by a shard per peer."""
        comm, red = self.comm, self.reducer
        sources = [(r - i) % n for i in range(1, n)]
        dests = [(r + i) % n for i in range(1, n)]
        halves = [[comm.buffers.scratch(("mps-seg", h, src), seg, own) for src in sources] for h in (0, 1)]
        nseg = (own.size + seg - 1) // seg
        # shards differ by at most one element, so a peer's shard may have one segment more
        rounds = [(k, j) for k in range(max((shard(d).size + seg - 1) // seg for d in range(n))) for j in range(n - 1)]

        def post(e):
            k, j = rounds[e]
            reqs = []
            if k < nseg:
                m = min(seg, own.size - k * seg)
                reqs.append(comm.irecv(halves[k & 1][j][:m], sources[j], tag=_SEGMENT_TAG + k))
            piece = shard(dests[j])[k * seg : (k + 1) * seg]
            if piece.size:
                reqs.append(comm.isend(piece, dests[j], tag=_SEGMENT_TAG + k))
            return reqs

        payloads = [None] * n
        reqs = post(0) if rounds else []
        for e, (k, j) in enumerate(rounds):
            comm.waitall(reqs)  # one exchange at a time: posting the next one early is an incast again
            reqs = post(e + 1) if e + 1 < len(rounds) else []
            if j == n - 2 and k < nseg:  # every piece of segment k is in
                part = own[k * seg : (k + 1) * seg]
                for jj, src in enumerate(sources):
                    payloads[src] = halves[k & 1][jj][: part.size]
                payloads[r] = part
                red.reduce_into(comm, part, payloads, [p.nbytes for p in payloads], ufunc)

    def _whole_phase1(self, buf, shard, own, n, r, ufunc):
        """Phase 1 with whole-shard messages: shard s -> server s; my shard's copies reduced."""
        comm, red = self.comm, self.reducer
        payloads, nbytes = [None] * n, [0] * n
        for i in range(1, n):  # pairwise rounds: one flow in and one out per rank
            src, dst = (r - i) % n, (r + i) % n
            payloads[src] = red.wire_buffer(comm, ("mps-in", src), own.size, buf)
            nbytes[src] = comm.waitall([comm.irecv(payloads[src], src, tag=30),
                                        comm.isend(red.encode(comm, shard(dst), ("mps-out", i)), dst, tag=30)])[0]
        payloads[r] = red.encode(comm, own, ("mps-own",))
        nbytes[r] = own.size * own.dtype.itemsize
        red.reduce_into(comm, own, payloads, nbytes, ufunc)

    def _dedicated(self, buf, op, ufunc):
        comm, red = self.comm, self.reducer
        w, k, r = self.workers, self.servers, comm.rank
        b = chunk_bounds(buf.size, k)
        if r < w:  # worker: send shard j to server j, then receive the reduced shards
            sends = [comm.isend(red.encode(comm, buf[b[j] : b[j + 1]], ("mps-out", j)), w + j, tag=32)
                     for j in range(k)]
            comm.waitall(sends)
            comm.waitall([comm.irecv(buf[b[j] : b[j + 1]], w + j, tag=33) for j in range(k)])
            return buf
        j = r - w
        own = buf[b[j] : b[j + 1]]
        payloads = [red.wire_buffer(comm, ("mps-in", src), own.size, buf) for src in range(w)]
        nbytes = comm.waitall([comm.irecv(payloads[src], src, tag=32) for src in range(w)])
        red.reduce_into(comm, own, payloads, nbytes, ufunc)
        if op == "mean":
            own /= w
        comm.waitall([comm.isend(own, src, tag=33) for src in range(w)])
        return buf


def multi_ps_allreduce(comm, buf, op="sum"):
    """AllReduce ``buf`` in place with the co-located multi-server parameter server.

    Args:
        comm: a :class:`~hpctrain.comm.Communicator`.
        buf: contiguous 1-D NumPy (or CuPy) array, any length.
        op: ``sum``, ``mean``, ``max`` or ``min``.

    Returns:
        ``buf``, holding the reduction on every rank.
    """
    if comm.size == 1:
        reduce_op(op, buf)
        return buf
    mps = comm.buffers.cached("multi-ps", lambda: MultiPS(comm))
    return mps.allreduce(buf, op)


def cost_steps(n, S, **_):
    """The ring's bytes, messages and adds (see :mod:`hpctrain.collectives.cost`): each
    phase is n - 1 pairwise exchanges of a shard S/n (phase 1 in segments above
    ``PIPELINE_MIN_BYTES``, into scratch; phase 2 into the shards each rank has sent), one
    flow in and one out per rank at a time, as in the ring."""
    return _ring.cost_steps(n, S)


def sent_bytes(n, S, **_):
    """Bytes all ranks send together (co-located servers): the ring's 2(n-1)/n S each."""
    return 2.0 * (n - 1) * S
