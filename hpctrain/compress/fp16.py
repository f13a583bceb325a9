"""Dense casts: fp16 (round-to-nearest-even to IEEE half) and none (identity).

kernels/fp16.cu converts in software with NumPy's rounding rules, bit for bit.
"""

import numpy as np

from ..xp import get_array_module
from .base import Compressor, Payload

__all__ = ["FP16", "NoCompression"]


class FP16(Compressor):
    """Cast to float16 on the wire (16 bits per coordinate; overflow becomes inf)."""

    name = "fp16"
    wire = {"fp16": 1}

    @classmethod
    def layout(cls, op, dtype, index_dtype, bits, count, aux):
        """``count`` float16 values."""
        return [("values", np.dtype(np.float16), count)]

    def _compress(self, x, step, rank):
        if get_array_module(x) is not np:
            from . import cuda

            half = cuda.to_half(x)
        else:
            half = x.astype(np.float16)
        return Payload(self.name, x.size, x.dtype, x.size, {"values": half}, step=step)

    def _decompress(self, payload, out):
        if get_array_module(out) is not np:
            from . import cuda

            cuda.from_half(payload["values"], out)
        else:
            out[...] = payload["values"]


class NoCompression(Compressor):
    """Identity: the dense vector itself travels (the baseline)."""

    name = "none"
    wire = {"none": 0}
    biased = False

    def _compress(self, x, step, rank):
        return Payload(self.name, x.size, x.dtype, x.size, {"values": x.copy()}, step=step)

    def _decompress(self, payload, out):
        out[...] = payload["values"]
