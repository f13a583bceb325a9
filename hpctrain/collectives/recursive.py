"""Recursive-doubling AllReduce: the latency-optimal algorithm for small messages
(ceil(log2 n) (alpha + S beta) for a power of two; two more steps otherwise).

At step k every rank exchanges its whole partial sum with the rank whose number differs
in bit k and adds it. For n not a power of two, with p the largest power of two <= n and
rem = n - p, the first 2*rem ranks fold in pairs first (even rank sends to the odd one and
waits), the p remaining ranks run the doubling, and the odd ranks send the result back.
Every addition is ``mine + theirs`` or ``theirs + mine`` of the same two partial sums, so
all ranks end with bit-identical results. For n = 2 it is one ``Sendrecv`` and one add.
"""

import math

from .ring import reduce_op

__all__ = ["recursive_doubling_allreduce"]


def recursive_doubling_allreduce(comm, buf, op="sum"):
    """AllReduce ``buf`` in place by recursive doubling.

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
    tmp = comm.buffers.scratch("recursive", buf.size, buf)
    if n == 2:  # the common fast path: one exchange
        comm.sendrecv(buf, 1 - r, tmp, 1 - r)
        ufunc(buf, tmp, out=buf) if r == 0 else ufunc(tmp, buf, out=buf)
    else:
        p = 1 << (n.bit_length() - 1)
        rem = n - p
        # fold: ranks < 2*rem pair up; the even one hands its data to the odd one
        if r < 2 * rem:
            if r % 2 == 0:
                comm.send(buf, r + 1, tag=1)
                comm.recv(buf, r + 1, tag=2)
                newrank = -1
            else:
                comm.recv(tmp, r - 1, tag=1)
                ufunc(tmp, buf, out=buf)
                newrank = r // 2
        else:
            newrank = r - rem
        if newrank >= 0:
            mask = 1
            while mask < p:
                peer_new = newrank ^ mask
                peer = peer_new * 2 + 1 if peer_new < rem else peer_new + rem
                comm.sendrecv(buf, peer, tmp, peer, sendtag=3)
                if newrank < peer_new:
                    ufunc(buf, tmp, out=buf)
                else:
                    ufunc(tmp, buf, out=buf)
                mask <<= 1
            if r < 2 * rem:
                comm.send(buf, r - 1, tag=2)
    if op == "mean":
        buf /= n
    return buf


def cost_steps(n, S, **_):
    """log2 p whole-vector exchanges added into the buffer just sent, plus the fold of the
    n - p extra ranks in and out (p the largest power of two <= n)."""
    # Each doubling step is one Sendrecv with one peer: one flow out and one in per rank,
    # every pair at once. That is exactly the ``exchange`` primitive bench fit times (pairs
    # 2i, 2i+1 Sendrecv at once), so its alpha and beta already hold what a duplex flow pair
    # costs; the concurrent term (alpha_c, beta_c) prices n-1 flows into and out of every
    # rank at once, which this algorithm never has. On 4 emulated nodes the exchange line
    # predicted recursive doubling's 4 MB calls within the fit's tolerance, so no beta_c.
    p = 1 << (n.bit_length() - 1)
    f = 0 if p == n else 1
    lg = int(math.log2(p))
    return [("oneway", f, S), ("oneway-sent", f, S), ("exchange", lg, S), ("reduce", f, S), ("reduce-sent", lg, S)]


def sent_bytes(n, S, **_):
    """Bytes all ranks send together: p ranks log2 p whole vectors, plus the fold in and out."""
    p = 1 << (n.bit_length() - 1)
    return p * math.log2(p) * S + 2.0 * (n - p) * S


def sent_messages(n, S, **_):
    """Messages all ranks send together: p ranks log2 p exchanges, the fold in and out."""
    p = 1 << (n.bit_length() - 1)
    return p * int(math.log2(p)) + 2 * (n - p)
