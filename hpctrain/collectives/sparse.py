"""Sparse aggregation by allgather: every rank contributes (indices, values) of its own
length; all ranks end with the dense sum. Hand-made over point-to-point (a ring allgather
of the counts, then a ring allgatherv of the payloads) or MPI's ``Allgatherv``.

Payloads are gathered into one buffer in rank order (like ``MPI_Allgatherv``) and then
scatter-added in that order, so every rank and both methods give bit-identical results.
Cost (ring): 2(n-1) alpha + (n-1) P beta for P payload bytes per rank (survey 003: sparse
sums densify, so sparse data is gathered rather than reduced).
"""

import numpy as np

from ..errors import CommError
from ..xp import get_array_module
from .tags import TAGS

__all__ = ["sparse_allgather", "ring_allgatherv", "METHODS"]

METHODS = ("ring", "mpi")


def _ring_counts(comm, k):
    """Every rank's element count, gathered around the ring (n-1 small Sendrecv)."""
    n, r = comm.size, comm.rank
    counts = np.zeros(n, dtype=np.int64)
    counts[r] = k
    right, left = (r + 1) % n, (r - 1) % n
    for s in range(n - 1):
        i, j = (r - s) % n, (r - s - 1) % n
        comm.sendrecv(counts[i : i + 1], right, counts[j : j + 1], left, sendtag=TAGS["sparse-count"])
    return counts


def ring_allgatherv(comm, arrays, gathered, counts):
    """Ring allgatherv of several same-count arrays at once.

    Args:
        arrays: this rank's arrays (e.g. ``(idx, val)``), each ``counts[rank]`` long.
        gathered: output arrays, each ``sum(counts)`` long, filled in rank order.
        counts: elements per rank.
    """
    n, r = comm.size, comm.rank
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    blk = lambda g, i: g[off[i] : off[i + 1]]  # noqa: E731
    for a, g in zip(arrays, gathered):
        blk(g, r)[...] = a
    right, left = (r + 1) % n, (r - 1) % n
    for s in range(n - 1):
        i, j = (r - s) % n, (r - s - 1) % n
        reqs = [comm.irecv(blk(g, j), left, tag=TAGS["sparse-data"] + t) for t, g in enumerate(gathered)]
        reqs += [comm.isend(blk(g, i), right, tag=TAGS["sparse-data"] + t) for t, g in enumerate(gathered)]
        comm.waitall(reqs)
    return gathered


def sparse_allgather(comm, idx, val, out, method="ring"):
    """Sum every rank's sparse vector (``idx``, ``val``) into the dense ``out``.

    Args:
        comm: a :class:`~hpctrain.comm.Communicator`.
        idx: 1-D integer indices into ``out`` (any count per rank, 0 included).
        val: 1-D values, same length as ``idx``, same dtype as ``out``.
        out: dense 1-D result, overwritten with ``sum_r scatter(idx_r, val_r)``.
        method: ``ring`` (hand-made) or ``mpi`` (``MPI_Allgatherv``).

    Returns:
        ``out``.
    """
    if method not in METHODS:
        raise CommError(f"unknown sparse-allgather method {method!r}; choose from {', '.join(METHODS)}")
    if idx.shape != val.shape:
        raise CommError(f"indices and values differ in length: {idx.shape} vs {val.shape}")
    xp = get_array_module(out)
    out[...] = 0
    if comm.size == 1:
        xp.add.at(out, idx, val)
        return out
    k = int(idx.size)
    if method == "ring":
        counts = _ring_counts(comm, k)
    else:
        counts = comm.allgather_array(np.array([k], dtype=np.int64))[:, 0]
    total = int(counts.sum())
    gidx = comm.buffers.scratch("sparse-idx", total, idx)
    gval = comm.buffers.scratch("sparse-val", total, val)
    if method == "ring":
        ring_allgatherv(comm, (idx, val), (gidx, gval), counts)
    else:
        comm.native_allgatherv(idx, gidx, counts)
        comm.native_allgatherv(val, gval, counts)
    xp.add.at(out, gidx, gval)
    return out


def cost_steps(n, S, payload_ratio=None, **_):
    """The counts around the ring, the payloads around the ring, n scatter-adds; P the
    sparse payload bytes per rank (``payload_ratio`` x S)."""
    P = S * (1.0 if payload_ratio is None else payload_ratio)
    return [("exchange", n - 1, 8.0), ("exchange", n - 1, P), ("reduce", n, P)]


def allgather_cost_steps(n, S, messages=1, **_):
    """The ring allgatherv of S bytes per rank (a gathered payload, decoded by its user):
    one exchange of the lengths, n - 1 exchanges of a payload in ``messages`` messages (the
    extra ones small: a count, the indices beside the values)."""
    return [("exchange", 1, 8.0), ("exchange", n - 1, S), ("exchange", (n - 1) * (messages - 1), 8.0)]


def allgather_sent_bytes(n, S, **_):
    """Bytes all ranks send together in the ring allgatherv: each forwards n - 1 payloads."""
    return float(n * (n - 1) * S)


def allgather_sent_messages(n, S, messages=1, **_):
    """Messages all ranks send together in the ring allgatherv: n - 1 steps of ``messages``."""
    return n * (n - 1) * messages
