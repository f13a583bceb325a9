"""Buffers and cached state owned by a communicator, declared rather than stashed.

Collectives reuse scratch buffers across calls (grown, never shrunk) and keep per-
communicator state (the ``auto`` choice's fit, the multi-PS plan) alive as long as the
communicator: both live here, under names, so no module writes into another object's
``__dict__``.
"""

from ..xp import get_array_module

__all__ = ["Buffers"]


class Buffers:
    """The scratch buffers and caches of one communicator (``comm.buffers``)."""

    def __init__(self):
        self._scratch = {}
        self._cache = {}

    def scratch(self, key, n, like):
        """A reusable 1-D buffer of exactly ``n`` elements of ``like``'s dtype and module.

        Args:
            key: a name, so that two uses in one collective get two buffers.
            n: elements needed.
            like: an array giving dtype and module (NumPy/CuPy).

        Returns:
            A view of ``n`` elements (contents undefined).
        """
        k = (key, type(like), like.dtype)  # NumPy and CuPy arrays differ in type
        buf = self._scratch.get(k)
        if buf is None or buf.size < n:
            buf = self._scratch[k] = get_array_module(like).empty(max(n, 1), dtype=like.dtype)
        return buf[:n]

    def cached(self, key, make):
        """The object cached under ``key``, made by ``make()`` on first use."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]
