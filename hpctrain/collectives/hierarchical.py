"""Hierarchical (two-level) AllReduce by hand: intra-node reduce-scatter, one inter-node ring
per local rank over its shard, intra-node allgather (Horovod's hierarchical allreduce, NCCL's
tree-of-rings idea; survey 003, §1.3.3).

Nodes come from MPI (``MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)``): the ranks that share
memory. With N nodes of R ranks each and S bytes per rank:

1. reduce-scatter inside the node (ring over R ranks): local rank l ends with shard l'
   (S/R bytes) summed over its node; (R-1) steps of S/R on the intra-node link;
2. R inter-node rings at once, ring l over the N ranks with local rank l, each allreducing its
   shard: 2(N-1) steps of S/(RN) per ring, and the R rings share the node's NIC, so each step
   moves R x S/(RN) = S/N through it;
3. allgather inside the node: (R-1) steps of S/R.

Each NIC carries 2(N-1)/N S per direction against the flat ring's 2(n-1)/n S (n = NR ranks,
every ring step crosses each node boundary once): for 2 nodes x 2 ranks S against 1.5 S.

Unequal ranks per node: G = the smallest node's rank count; local ranks l >= G first fold
their vector into local rank l mod G (one message each), the G first ranks of every node run
steps 1-3 with G shards, and the result goes back to the folded ranks. One node: steps 1 and 3
only; one rank per node: the flat ring over the nodes.
"""

from .ring import cost_steps as ring_steps
from .ring import sent_bytes as ring_sent_bytes
from .ring import own_chunk, reduce_op, ring_allgather, ring_allreduce, ring_reduce_scatter

__all__ = ["hierarchical_allreduce", "layout", "assign_nodes", "cost_steps", "cost_levels"]


def assign_nodes(comm, color):
    """Declare this rank's node as ``color`` instead of asking MPI (tests on one machine).

    Collective: call on every rank, before the first hierarchical call on ``comm``.
    """
    comm.buffers.cached("hierarchical-nodes", dict)["color"] = int(color)


class _Layout:
    """Node membership and the sub-communicators of one parent communicator."""

    def __init__(self, comm):
        import numpy as np

        color = comm.buffers.cached("hierarchical-nodes", dict).get("color")
        local = comm.split_shared() if color is None else comm.split(color)
        # the node's leader (lowest world rank) names the node; every rank learns every layout
        info = comm.allgather_array(np.array([comm.rank if local.rank == 0 else -1, local.size], dtype=np.int64))
        sizes = {}
        leaders = sorted(int(r) for r, _ in info if r >= 0)
        for r, s in info:
            if r >= 0:
                sizes[int(r)] = int(s)
        self.nodes = len(leaders)
        self.group = min(sizes.values())  # G: shards per node
        self.sizes = [sizes[r] for r in leaders]
        self.leaders = leaders  # world rank of each node's first rank
        self.local = local
        # node index of this rank: its leader is the local rank 0's world rank
        lead = local.allgather_array(np.array([comm.rank], dtype=np.int64))[0][0]
        self.node = leaders.index(int(lead))
        lr, G = local.rank, self.group
        self.active = lr < G
        self.extras = list(range(lr + G, local.size, G)) if self.active else []  # ranks folding into me
        self.fold_into = None if self.active else lr % G
        self.intra = local.split(0 if self.active else None)
        self.inter = comm.split(lr if self.active else None, key=self.node)
        self.subs = [c for c in (self.local, self.intra, self.inter) if c is not None]

    def describe(self):
        """``nodes``, ``ranks_per_node`` (list) and ``shards`` (G)."""
        return {"nodes": self.nodes, "ranks_per_node": self.sizes, "shards": self.group}


def layout(comm):
    """The (memoised) node layout of ``comm``: ``.nodes``, ``.sizes``, ``.group``... Collective
    on its first call."""
    return comm.buffers.cached("hierarchical", lambda: _Layout(comm))


def _absorb_counters(comm, lay):
    for sc in lay.subs:
        comm.bytes_sent += sc.bytes_sent
        comm.bytes_recv += sc.bytes_recv
        comm.messages_sent += sc.messages_sent
        comm.comm_time += sc.comm_time
        sc.reset_counters()


def hierarchical_allreduce(comm, buf, op="sum"):
    """AllReduce ``buf`` in place over ``comm`` in two levels (node, then across nodes).

    Args:
        comm: a :class:`~hpctrain.comm.Communicator`.
        buf: contiguous 1-D NumPy (or CuPy) array, any length (0 included).
        op: ``sum``, ``mean``, ``max`` or ``min``.

    Returns:
        ``buf``, holding the reduction on every rank. The traffic of the node and inter-node
        communicators is added to ``comm``'s byte counters.
    """
    ufunc = reduce_op(op, buf)
    if comm.size == 1:
        return buf
    lay = layout(comm)
    inner = "sum" if op == "mean" else op
    try:
        local = lay.local
        if lay.active:
            if lay.extras:
                tmp = local.buffers.scratch("hierarchical-fold", buf.size, buf)
                for e in lay.extras:
                    local.recv(tmp, e, tag=1)
                    ufunc(buf, tmp, out=buf)
            shard = buf
            if lay.intra.size > 1:
                ring_reduce_scatter(lay.intra, buf, ufunc)
                shard = own_chunk(lay.intra, buf)
            ring_allreduce(lay.inter, shard, inner)
            if op == "mean":
                shard /= comm.size
            ring_allgather(lay.intra, buf)
            for e in lay.extras:
                local.send(buf, e, tag=2)
        else:
            local.send(buf, lay.fold_into, tag=1)
            local.recv(buf, lay.fold_into, tag=2)
    finally:
        _absorb_counters(comm, lay)
    return buf


def cost_steps(n, S, **_):
    """The steps on one node (the model without a layout): the ring's."""
    return ring_steps(n, S)


def cost_levels(n, S, nodes):
    """The two levels (see :mod:`hpctrain.collectives.cost`): the ring on the node's R
    ranks over S on the intra link, and R rings over the N nodes, each on S/R, sharing the
    NIC (share R). Unequal nodes are priced as equal ones (R = n // N)."""
    R = max(1, n // nodes)
    return [(ring_steps(R, S) if R > 1 else [], "intra", 1),
            (ring_steps(nodes, S / R) if nodes > 1 else [], "inter", R)]


def sent_bytes(n, S, **_):
    """Bytes all ranks send together: the ring's (both levels move 2(m-1)/m of their part)."""
    return ring_sent_bytes(n, S)
