"""fp16: cast to IEEE half (round-to-nearest-even) on the wire, exact widening back.

kernels/fp16.cu converts in software with NumPy's rounding rules, bit for bit.
"""

import numpy as np

from ..halfcast import BLOCK, SCRATCH_DTYPES, cast_from_half, cast_to_half
from . import gpu
from .base import Compressor, Payload

__all__ = ["FP16"]


class FP16(Compressor):
    """Cast to float16 on the wire (16 bits per coordinate; overflow becomes inf)."""

    name = "fp16"
    wire = {"fp16": 1}
    kernels = ("fp16",)

    @classmethod
    def layout(cls, op, dtype, index_dtype, bits, count, aux):
        """``count`` float16 values."""
        return [("values", np.dtype(np.float16), count)]

    class Host:
        @staticmethod
        def encode(op, x, step, rank):
            half = np.empty(x.size, np.float16)  # the payload (2 bytes a coordinate)
            cast_to_half(x, half, _scratch(op))
            return Payload(op.name, x.size, x.dtype, x.size, {"values": half}, step=step)

        @staticmethod
        def decode(op, payload, out):
            cast_from_half(payload["values"], out, _scratch(op))

        @staticmethod
        def decode_add(op, payload, out):
            """out += widened values (exact widening, then the one rounding of the add)."""
            h = payload["values"]
            if out.dtype != np.float32:
                np.add(out, h, out=out, dtype=out.dtype)
                return
            sc = _scratch(op)
            wide = op.scratch("wide", BLOCK, np.float32)
            for i in range(0, out.size, BLOCK):
                k = min(BLOCK, out.size - i)
                cast_from_half(h[i:i + k], wide[:k], sc)
                np.add(out[i:i + k], wide[:k], out=out[i:i + k])

    class Device:
        @staticmethod
        def encode(op, x, step, rank):
            return Payload(op.name, x.size, x.dtype, x.size, {"values": to_half(x)}, step=step)

        @staticmethod
        def decode(op, payload, out):
            from_half(payload["values"], out)


def _scratch(op):
    """The host casts' scratch (:func:`hpctrain.halfcast.half_scratch`), from the operator's
    own pool (:meth:`Compressor.scratch`)."""
    return {k: op.scratch(f"half-{k}", BLOCK, np.dtype(dt)) for k, dt in SCRATCH_DTYPES.items()}


def to_half(x):
    """GPU twin of x.astype(float16) (software round-to-nearest-even)."""
    cp = gpu.cupy()
    n = x.size
    out = cp.empty(n, cp.uint16)
    if n:
        gpu.get_function("fp16", f"to_half_{gpu.suffix(x.dtype)}")(gpu.grid(n), (gpu.BLOCK,), (x, np.uint64(n), out))
    return out.view(cp.float16)


def from_half(h, out):
    """GPU twin of out[...] = h (exact widening of float16)."""
    n = out.size
    if n:
        gpu.get_function("fp16", f"from_half_{gpu.suffix(out.dtype)}")(
            gpu.grid(n), (gpu.BLOCK,), (h.view(np.uint16), np.uint64(n), out))
    return out


OPERATOR = FP16  # what compress/__init__.py registers
