"""Scratch buffers owned by a communicator and reused across calls (grown, never shrunk)."""

from ..xp import get_array_module

__all__ = ["scratch"]


def scratch(comm, key, n, like):
    """A reusable 1-D buffer of at least ``n`` elements of ``like``'s dtype and array module.

    Args:
        comm: the :class:`~hpctrain.comm.Communicator` owning the buffers.
        key: a name, so that two uses in one collective get two buffers.
        n: elements needed.
        like: an array giving dtype and module (NumPy/CuPy).

    Returns:
        A view of exactly ``n`` elements.
    """
    store = comm.__dict__.get("_scratch")
    if store is None:
        store = comm.__dict__["_scratch"] = {}
    k = (key, type(like), like.dtype)  # NumPy and CuPy arrays differ in type
    buf = store.get(k)
    if buf is None or buf.size < n:
        buf = get_array_module(like).empty(max(n, 1), dtype=like.dtype)
        store[k] = buf
    return buf[:n]
