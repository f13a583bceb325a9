"""``auto``: pick the allreduce per message size from the alpha-beta model.

With a cached fit (``hpctrain bench fit``) it runs the candidate with the least
predicted time for this message size and world size. Without a fit it uses a built-in
threshold: recursive doubling up to ``DEFAULT_THRESHOLD_BYTES`` (64 KiB), the pipelined
ring above. Across several nodes (``Split_type`` shared) with more than one rank on some
node, ``hierarchical`` is a candidate too (and, without a fit, the choice above the
threshold): every candidate is then predicted with the node layout (``cost.predict(...,
nodes=N)``). The fit is read once per communicator on rank 0 and broadcast, so every rank
makes the same choice; the choice per size is memoised.
"""

from . import cost
from .hierarchical import hierarchical_allreduce, layout
from .recursive import recursive_doubling_allreduce
from .ring import reduce_op, ring_allreduce

__all__ = ["auto_allreduce", "choose", "chosen", "describe", "shared_fit", "CANDIDATES", "DEFAULT_THRESHOLD_BYTES"]

CANDIDATES = {"recursive": recursive_doubling_allreduce, "ring": ring_allreduce,
              "hierarchical": hierarchical_allreduce}
DEFAULT_THRESHOLD_BYTES = 64 << 10


def shared_fit(comm):
    """The cached fit read on rank 0 and broadcast (JSON bytes), so all ranks agree; or None."""
    import json

    data = json.dumps(cost.load_fit()).encode() if comm.rank == 0 else b""
    return json.loads(comm.bcast_bytes(data).decode())


def _state(comm):
    def make():
        lay = layout(comm)
        multi = lay.nodes > 1 and max(lay.sizes) > 1  # several nodes, several ranks on one: two levels pay
        return {"fit": shared_fit(comm), "memo": {}, "nodes": lay.nodes,
                "candidates": [a for a in CANDIDATES if multi or a != "hierarchical"]}
    return comm.buffers.cached("auto", make)


def choose(comm, nbytes):
    """Name of the algorithm ``auto`` runs for ``nbytes`` on ``comm`` (same on every rank)."""
    st = _state(comm)
    name = st["memo"].get(nbytes)
    if name is None:
        fit = st["fit"]
        if fit is None:
            big = "hierarchical" if "hierarchical" in st["candidates"] else "ring"
            name = "recursive" if nbytes <= DEFAULT_THRESHOLD_BYTES else big
        else:
            name = min(st["candidates"], key=lambda a: cost.predict(a, comm.size, nbytes, fit, nodes=st["nodes"]))
        st["memo"][nbytes] = name
    return name


def chosen(comm, collective, sizes):
    """The allreduce ``collective`` runs for each message size (same on every rank).

    Args:
        comm: a :class:`~hpctrain.comm.Communicator` (collective call when ``auto``).
        collective: the ``--collective`` value.
        sizes: message sizes in bytes (an algorithm's ``allreduce_sizes()``).

    Returns:
        dict bytes -> algorithm name (``auto`` resolved).
    """
    return {int(n): (choose(comm, int(n)) if collective == "auto" else collective) for n in sizes}


def _kib(n):
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.1f} MiB"


def describe(collective, choice):
    """``ring``, ``auto (ring for 31.4 KiB)``, or ``""`` when no allreduce is used."""
    if not choice:
        return ""
    if collective != "auto":
        return collective
    return "auto (" + ", ".join(f"{name} for {_kib(n)}" for n, name in sorted(choice.items())) + ")"


def auto_allreduce(comm, buf, op="sum"):
    """AllReduce ``buf`` in place with the algorithm the model predicts fastest.

    Args:
        comm: a :class:`~hpctrain.comm.Communicator`.
        buf: contiguous 1-D NumPy (or CuPy) array.
        op: ``sum``, ``mean``, ``max`` or ``min``.

    Returns:
        ``buf``.
    """
    if comm.size == 1:
        reduce_op(op, buf)
        return buf
    return CANDIDATES[choose(comm, buf.size * buf.dtype.itemsize)](comm, buf, op)
