"""Gossip mixing step of decentralized SGD: x_i <- sum_j W_ij x_j, exchanged only with the
graph neighbours of i (survey 003, §5.1: deg(G)(alpha + S beta) per step; no global
collective anywhere).

Rank i posts one ``Irecv`` per in-neighbour (j != i with W_ij != 0) and one ``Isend`` of
its own vector per out-neighbour (j with W_ji != 0), waits for all of them, then forms the
weighted sum in place. Receive buffers are owned by the communicator and reused.
"""

import numpy as np

from ..errors import CommError, TopologyError

__all__ = ["gossip", "neighbours"]


def _matrix(W):
    return np.asarray(getattr(W, "matrix", W), dtype=np.float64)


def neighbours(W, rank):
    """In- and out-neighbours of ``rank`` in mixing matrix ``W`` (self excluded).

    Returns:
        ``(recv_from, send_to)``: sorted lists of ranks.
    """
    W = _matrix(W)
    recv_from = [int(j) for j in np.flatnonzero(W[rank]) if j != rank]
    send_to = [int(j) for j in np.flatnonzero(W[:, rank]) if j != rank]
    return recv_from, send_to


def gossip(comm, buf, W):
    """One mixing step in place: ``buf`` on rank i becomes ``sum_j W[i, j] * x_j``.

    Args:
        comm: a :class:`~hpctrain.comm.Communicator`.
        buf: contiguous 1-D floating-point NumPy (or CuPy) array, same length on all ranks.
        W: the n x n mixing matrix (array, or a :class:`~hpctrain.topology.Topology`).

    Returns:
        ``buf``.
    """
    W = _matrix(W)
    n, r = comm.size, comm.rank
    if W.shape != (n, n):
        raise TopologyError(f"mixing matrix is {W.shape[0]}x{W.shape[-1]} but the world has {n} ranks")
    if buf.dtype.kind not in "fc":
        raise CommError(f"gossip needs a floating-point buffer, got {buf.dtype}")
    if n == 1:
        buf *= W[0, 0]
        return buf
    recv_from, send_to = neighbours(W, r)
    tmps = {j: comm.buffers.scratch(("gossip", j), buf.size, buf) for j in recv_from}
    reqs = [comm.irecv(tmps[j], j, tag=40) for j in recv_from]
    reqs += [comm.isend(buf, j, tag=40) for j in send_to]
    comm.waitall(reqs)
    buf *= W[r, r]
    for j in recv_from:
        t = tmps[j]
        t *= W[r, j]
        buf += t
    return buf


def cost_steps(n, S, degree=2, **_):
    """One exchange with each of ``degree`` neighbours, the weighted sum of their vectors.

    The sends and receives of all neighbours are posted at once: with more than one
    neighbour they are concurrent flows (the ``concurrent`` primitive, fitted on an
    all-to-all of the fit's ranks), with one a plain exchange."""
    kind = "concurrent" if degree > 1 else "exchange"
    return [(kind, degree, S), ("reduce-sent", 1, S), ("reduce", 2 * degree, S)]


def sent_bytes(n, S, degree=2, **_):
    """Bytes all ranks send together: each rank sends its vector to ``degree`` neighbours."""
    return float(n * degree * S)


def sent_messages(n, S, degree=2, **_):
    """Messages all ranks send together: one to each of ``degree`` neighbours per rank."""
    return n * degree
