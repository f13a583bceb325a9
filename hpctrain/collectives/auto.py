"""``auto``: pick the allreduce per message size from the alpha-beta model.

With a cached fit (``hpctrain bench fit``) it runs the candidate with the least
predicted time for this message size and world size. Without a fit it uses a built-in
threshold: recursive doubling up to ``DEFAULT_THRESHOLD_BYTES`` (64 KiB), the pipelined
ring above. The fit is read once per communicator on rank 0 and broadcast, so every rank
makes the same choice; the choice per size is memoised.
"""

from . import cost
from .recursive import recursive_doubling_allreduce
from .ring import reduce_op, ring_allreduce

__all__ = ["auto_allreduce", "choose", "shared_fit", "CANDIDATES", "DEFAULT_THRESHOLD_BYTES"]

CANDIDATES = {"recursive": recursive_doubling_allreduce, "ring": ring_allreduce}
DEFAULT_THRESHOLD_BYTES = 64 << 10


def shared_fit(comm):
    """The cached fit read on rank 0 and broadcast (JSON bytes), so all ranks agree; or None."""
    import json

    data = json.dumps(cost.load_fit()).encode() if comm.rank == 0 else b""
    return json.loads(comm.bcast_bytes(data).decode())


def _state(comm):
    st = comm.buffers.cached("auto", lambda: {"fit": shared_fit(comm), "memo": {}})
    return st


def choose(comm, nbytes):
    """Name of the algorithm ``auto`` runs for ``nbytes`` on ``comm`` (same on every rank)."""
    st = _state(comm)
    name = st["memo"].get(nbytes)
    if name is None:
        fit = st["fit"]
        if fit is None:
            name = "recursive" if nbytes <= DEFAULT_THRESHOLD_BYTES else "ring"
        else:
            name = min(CANDIDATES, key=lambda a: cost.predict(a, comm.size, nbytes, fit))
        st["memo"][nbytes] = name
    return name


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
