"""Error feedback (memory) and momentum as wrappers around any compressor, not copies of it.

``ErrorFeedback(comp).compress(g, memory)`` sends C(g + u) and keeps u <- (g + u) - sent
(paper 000's memory / survey's EC-SGD); sparse operators do the update inside their
selection pass, dense ones compute p = g + u, compress, decompress and subtract.
``Momentum(inner, momentum)`` first accumulates v <- momentum * v + g (local momentum,
as in M-DSGD / DGC's momentum correction) and hands v to ``inner``.
"""

import numpy as np

from ..errors import ConfigError
from ..xp import get_array_module

__all__ = ["ErrorFeedback", "Momentum"]


class ErrorFeedback:
    """Error-feedback wrapper: compress(g, memory) = C(g + u), memory <- (g + u) - sent.

    Args:
        compressor: any :class:`~hpctrain.compress.base.Compressor`.
    """

    def __init__(self, compressor):
        self.compressor = compressor

    @property
    def name(self):
        """Registry name of the wrapped compressor."""
        return self.compressor.name

    def init_memory(self, like):
        """A zeroed memory buffer shaped like ``like`` (same array module and dtype)."""
        return get_array_module(like).zeros_like(like)

    def compress(self, g, memory, step=0, rank=0):
        """Compress g + memory and leave the residual in ``memory`` (in place).

        Args:
            g: gradient (1-D float32/float64, NumPy or CuPy).
            memory: error-feedback memory u, same shape/dtype as g.
            step, rank: forwarded to the compressor's RNG.

        Returns:
            The :class:`~hpctrain.compress.base.Payload` of the sent vector.
        """
        return self.compressor.compress(g, step=step, rank=rank, memory=memory)

    def decompress(self, payload, out):
        """Decompress with the wrapped compressor (see Compressor.decompress)."""
        return self.compressor.decompress(payload, out)

    def decompress_add(self, payload, out):
        """``out += decompress(payload)`` with the wrapped compressor."""
        return self.compressor.decompress_add(payload, out)


class Momentum:
    """Local momentum before compression: v <- momentum * v + g, then ``inner`` sends v.

    Args:
        inner: a Compressor or an :class:`ErrorFeedback`.
        momentum: beta in [0, 1).
    """

    def __init__(self, inner, momentum=0.9):
        momentum = float(momentum)
        if not (0.0 <= momentum < 1.0):
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
        self.inner = inner
        self.momentum = momentum

    def compress(self, g, velocity, memory=None, step=0, rank=0):
        """Update ``velocity`` in place and compress it (with memory if ``inner`` has one).

        Args:
            g: gradient.
            velocity: momentum buffer v (updated in place).
            memory: error-feedback memory (required iff ``inner`` is ErrorFeedback).
            step, rank: forwarded to the RNG.

        Returns:
            The payload of the compressed velocity.
        """
        velocity *= velocity.dtype.type(self.momentum) if get_array_module(velocity) is np else self.momentum
        velocity += g
        if isinstance(self.inner, ErrorFeedback):
            if memory is None:
                raise ValueError("Momentum(ErrorFeedback(...)).compress needs memory=")
            return self.inner.compress(velocity, memory, step=step, rank=rank)
        return self.inner.compress(velocity, step=step, rank=rank)

    def decompress(self, payload, out):
        """Decompress with the inner operator."""
        return self.inner.decompress(payload, out)
