"""Unpartitioned ring AllReduce: the whole vector travels around the ring (survey 003,
§1.3.3 "Why do we partition the parameter vector?": 2(n-1)(alpha + S beta)).

Rank 0 sends its vector to rank 1; each rank adds its own and passes the partial sum on;
rank n-1 ends with the full reduction and it travels once more around the ring
(n-1 -> 0 -> 1 -> ... -> n-2). Kept as the survey's baseline that shows why the ring
AllReduce partitions the vector; do not use it for training.
"""

from .ring import reduce_op

__all__ = ["unpartitioned_ring_allreduce"]


def unpartitioned_ring_allreduce(comm, buf, op="sum"):
    """AllReduce ``buf`` in place by passing the whole vector around the ring twice.

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
    right, left = (r + 1) % n, (r - 1) % n
    # reduce phase: partial sums flow 0 -> 1 -> ... -> n-1, added in rank order
    if r > 0:
        tmp = comm.buffers.scratch("naive-ring", buf.size, buf)
        comm.recv(tmp, left, tag=10)
        ufunc(tmp, buf, out=buf)
    if r < n - 1:
        comm.send(buf, right, tag=10)
    if op == "mean" and r == n - 1:
        buf /= n
    # broadcast phase: the result flows n-1 -> 0 -> 1 -> ... -> n-2
    if r != n - 1:
        comm.recv(buf, left, tag=11)
    if r != n - 2:
        comm.send(buf, right, tag=11)
    return buf


def cost_steps(n, S, messages=1, **_):
    """The whole vector n - 1 hops around (added at each), then n - 1 hops of the result;
    ``messages`` per hop (the first ones a length of 8 bytes, as a payload travels)."""
    return [("oneway", n - 1, S), ("oneway-sent", n - 1, S), ("reduce", n - 1, S),
            ("oneway", 2 * (n - 1) * (messages - 1), 8.0)]


def sent_messages(n, S, messages=1, **_):
    """Messages all ranks send together: 2(n - 1) hops of ``messages`` each."""
    return 2 * (n - 1) * messages


def sent_bytes(n, S, **_):
    """Bytes all ranks send together: the vector n - 1 hops around, the result n - 1 hops."""
    return 2.0 * (n - 1) * S
