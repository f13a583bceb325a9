"""Single parameter server AllReduce by point-to-point messages (survey 003, §1.3.2:
2N(alpha + S beta) for N workers; here rank 0 is server and worker, N = n-1 senders).

Every worker sends its vector to rank 0, which receives them one after another (in rank
order, so the sum is deterministic), reduces, and sends the result back to each worker.
The server's link carries 2(n-1)S bytes: the bottleneck the ring removes.

A worker sends when the server gives it its turn (an empty message): the up phase is
serial at the server anyway, and n - 1 vectors sent at once into its link overflow a
switch's shallow buffer (incast), whose losses stall the flows. The turns cost n - 1
latencies more than the survey's 2(n-1)(alpha + S beta). The replies leave one at a time
too: they share the server's link either way, and n - 1 bursts at once overflow a short
queue on it (an emulated node's, ``docs/cluster.md``).
"""

import numpy as np

from .ring import reduce_op

__all__ = ["ps_allreduce"]

ROOT = 0
#: the empty message that gives a worker its turn to send (a host array on every transport)
GO = np.empty(0, np.uint8)


def ps_allreduce(comm, buf, op="sum"):
    """AllReduce ``buf`` in place through a single parameter server (rank 0).

    Args:
        comm: a :class:`~hpctrain.comm.Communicator`.
        buf: contiguous 1-D NumPy (or CuPy) array, any length.
        op: ``sum``, ``mean``, ``max`` or ``min``.

    Returns:
        ``buf``, holding the reduction on every rank.
    """
    ufunc = reduce_op(op, buf)
    n, r = comm.size, comm.rank
    if n == 1:
        return buf
    if r == ROOT:
        tmp = comm.buffers.scratch("ps", buf.size, buf)
        for src in range(1, n):  # one worker at a time: its turn, then its vector
            comm.send(GO, src, tag=22)
            comm.recv(tmp, src, tag=20)
            ufunc(buf, tmp, out=buf)
        if op == "mean":
            buf /= n
        for dst in range(1, n):  # one reply at a time, as one link carries them anyway
            comm.send(buf, dst, tag=21)
    else:
        comm.recv(GO, ROOT, tag=22)
        comm.send(buf, ROOT, tag=20)
        comm.recv(buf, ROOT, tag=21)
    return buf


def cost_steps(n, S, **_):
    """n - 1 turns (empty messages), n - 1 whole vectors into the server's scratch, added
    there, n - 1 results back into the workers' vectors (see
    :mod:`hpctrain.collectives.cost`)."""
    return [("oneway", n - 1, 0), ("oneway", n - 1, S), ("oneway-sent", n - 1, S), ("reduce", n - 1, S)]


def sent_bytes(n, S, **_):
    """Bytes all ranks send together: n - 1 vectors up, n - 1 results down."""
    return 2.0 * (n - 1) * S


def sent_messages(n, S, **_):
    """Messages all ranks send together: n - 1 turns, n - 1 up, n - 1 down."""
    return 3 * (n - 1)
