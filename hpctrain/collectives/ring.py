"""Ring AllReduce by hand: reduce-scatter then allgather over n chunks (survey 003, §1.3.3:
2(n-1) alpha + 2(n-1)/n S beta).

Each rank exchanges with its ring neighbours only. Small chunks go with one ``Sendrecv``
per step. Large chunks are pipelined: a reduce-scatter step sends its chunk in segments and
receives the neighbour's segments through two alternating segment buffers, adding segment k
while segment k+1 is arriving, so the reduction overlaps the transfer and the temporary
stays two segments long whatever the message size. The reduction is in place; the
temporary (one chunk below the pipelining size, two segments above) is owned by the
communicator (``comm.buffers``, :mod:`hpctrain.comm.buffers`) and reused across calls: no allocation per call
once warm.
"""

import math
from functools import lru_cache

from ..errors import CommError
from ..trace import span

__all__ = ["ring_allreduce", "ring_reduce_scatter", "ring_allgather", "own_chunk", "chunk_bounds", "reduce_op", "REDUCE_UFUNCS", "SEGMENT_BYTES", "PIPELINE_MIN_BYTES"]

#: segment size of the pipelined reduce-scatter (bytes)
SEGMENT_BYTES = 1 << 20
#: chunks at least this large are pipelined (smaller ones use one Sendrecv per step)
PIPELINE_MIN_BYTES = 4 << 20


def _ufuncs():
    import numpy as np

    return {"sum": np.add, "mean": np.add, "max": np.maximum, "min": np.minimum}


REDUCE_UFUNCS = _ufuncs()


@lru_cache(maxsize=256)
def chunk_bounds(length, n):
    """Offsets of ``n`` near-equal chunks of ``length`` elements (first ones longer).

    Returns:
        A tuple of ``n + 1`` offsets, ``0`` first and ``length`` last (memoised: every
        collective call on the same buffer asks for the same bounds).
    """
    base, rem = divmod(length, n)
    return tuple(i * base + min(i, rem) for i in range(n + 1))


def reduce_op(op, buf):
    """Validate ``op`` for ``buf``'s dtype and return its element-wise ufunc."""
    try:
        ufunc = REDUCE_UFUNCS[op]
    except KeyError:
        raise CommError(f"unknown reduction {op!r}; choose from {', '.join(REDUCE_UFUNCS)}") from None
    if op == "mean" and buf.dtype.kind not in "fc":
        raise CommError(f"op='mean' needs a floating-point buffer, got {buf.dtype}")
    if op in ("sum", "mean") and buf.dtype == "float16" and type(buf).__module__ == "numpy":
        from ..halfcast import half_add

        return half_add()  # NumPy's float16 addition, bit for bit, without its subnormal slow path
    return ufunc


def _pipelined_step(comm, ufunc, send, dst, tmp, right, left, seg):
    """One reduce-scatter step in segments: send ``send`` right, add left's data into ``dst``.

    ``send`` goes as ``ceil(len(send) / seg)`` messages; left sends its chunk, which is
    ``dst``'s, as ``ceil(len(dst) / seg)`` messages, so both sides agree on every count.
    Receives alternate between the two halves of ``tmp`` (``2 * seg`` elements): segment
    k+1 arrives while segment k is added.
    """
    sends = [comm.isend(send[k : k + seg], right, tag=k // seg) for k in range(0, send.size, seg)]
    halves = (tmp[:seg], tmp[seg : 2 * seg])
    nrecv = (dst.size + seg - 1) // seg
    req = comm.irecv(halves[0][: min(seg, dst.size)], left, tag=0) if nrecv else None
    for k in range(nrecv):
        d = dst[k * seg : (k + 1) * seg]
        nxt = None
        if k + 1 < nrecv:  # post the next segment into the other half before adding this one
            nxt = comm.irecv(halves[(k + 1) & 1][: min(seg, dst.size - (k + 1) * seg)], left, tag=k + 1)
        comm.wait(req)
        ufunc(d, halves[k & 1][: d.size], out=d)
        req = nxt
    comm.waitall(sends)


def ring_reduce_scatter(comm, buf, ufunc):
    """The ring's reduce-scatter, in place: afterwards rank r holds the full reduction of
    chunk ``(r + 1) % n`` of ``buf`` (``chunk_bounds(buf.size, n)``, :func:`own_chunk`); the
    other chunks hold partial sums. Pipelined in segments for chunks of at least
    ``PIPELINE_MIN_BYTES``."""
    n, r = comm.size, comm.rank
    if n == 1:
        return buf
    bounds = chunk_bounds(buf.size, n)
    right, left = (r + 1) % n, (r - 1) % n
    clen = bounds[1] - bounds[0]
    itemsize = buf.dtype.itemsize
    seg = max(1, SEGMENT_BYTES // itemsize)
    pipelined = clen * itemsize >= PIPELINE_MIN_BYTES
    tmp = comm.buffers.scratch("ring", 2 * seg if pipelined else clen, buf)

    def chunk(i):
        i %= n
        return buf[bounds[i] : bounds[i + 1]]

    # after n-1 steps rank r owns the full reduction of chunk r+1
    with span("reduce-scatter", "comm"):
        for s in range(n - 1):
            send, dst = chunk(r - s), chunk(r - s - 1)
            if pipelined:
                _pipelined_step(comm, ufunc, send, dst, tmp, right, left, seg)
            else:
                recv = tmp[: dst.size]
                comm.sendrecv(send, right, recv, left)
                ufunc(dst, recv, out=dst)
    return buf


def own_chunk(comm, buf):
    """The chunk of ``buf`` this rank holds reduced after :func:`ring_reduce_scatter`."""
    n = comm.size
    bounds = chunk_bounds(buf.size, n)
    i = (comm.rank + 1) % n
    return buf[bounds[i] : bounds[i + 1]]


def ring_allgather(comm, buf):
    """The ring's allgather, in place: from each rank's :func:`own_chunk`, every chunk on
    every rank (passed around the ring, received straight into ``buf``)."""
    n, r = comm.size, comm.rank
    if n == 1:
        return buf
    bounds = chunk_bounds(buf.size, n)
    right, left = (r + 1) % n, (r - 1) % n

    def chunk(i):
        i %= n
        return buf[bounds[i] : bounds[i + 1]]

    with span("allgather", "comm"):
        for s in range(n - 1):
            comm.sendrecv(chunk(r + 1 - s), right, chunk(r - s), left)
    return buf


def ring_allreduce(comm, buf, op="sum"):
    """AllReduce ``buf`` in place over ``comm`` with the bandwidth-optimal ring.

    Args:
        comm: a :class:`~hpctrain.comm.Communicator`.
        buf: contiguous 1-D NumPy (or CuPy) array, any length (0 included).
        op: ``sum``, ``mean``, ``max`` or ``min``.

    Returns:
        ``buf``, holding the reduction on every rank.
    """
    ufunc = reduce_op(op, buf)
    if comm.size == 1:
        return buf
    ring_reduce_scatter(comm, buf, ufunc)
    if op == "mean":
        own = own_chunk(comm, buf)
        own /= comm.size
    return ring_allgather(comm, buf)


def cost_steps(n, S, **_):
    """The alpha-beta steps of the ring (see :mod:`hpctrain.collectives.cost`): n - 1
    exchanges of a chunk S/n into scratch (the reduce-scatter, segmented above
    ``PIPELINE_MIN_BYTES``, each added as it arrives), n - 1 into the own vector."""
    chunk = S / n
    if chunk >= PIPELINE_MIN_BYTES:  # the reduce-scatter travels and adds segment by segment
        k = math.ceil(chunk / SEGMENT_BYTES)
        seg = chunk / k
        return [("exchange", (n - 1) * k, seg), ("exchange-sent", n - 1, chunk), ("reduce", (n - 1) * k, seg)]
    return [("exchange", n - 1, chunk), ("exchange-sent", n - 1, chunk), ("reduce", n - 1, chunk)]


def sent_bytes(n, S, **_):
    """Bytes all n ranks send together in one ring allreduce of S bytes: 2(n-1)/n S each."""
    return 2.0 * (n - 1) * S


def sent_messages(n, S, **_):
    """Messages all n ranks send together: n - 1 reduce-scatter steps (in k segments each
    above ``PIPELINE_MIN_BYTES`` chunks) and n - 1 allgather steps, on every rank."""
    chunk = S / n
    k = math.ceil(chunk / SEGMENT_BYTES) if chunk >= PIPELINE_MIN_BYTES else 1
    return n * (n - 1) * (k + 1)
