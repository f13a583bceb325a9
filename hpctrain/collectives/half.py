"""A dense allreduce with IEEE half precision on the wire (``hpctrain train --fp16-allreduce``).

The dense 16-bit baseline that gradient compression is judged against (Agarwal et al.,
"On the utility of gradient compression in distributed training systems"), the same
arithmetic as PyTorch DDP's ``fp16_compress_hook`` and Horovod's ``Compression.fp16``:
each rank divides its gradient by the number of ranks (for ``mean``; a sum is not
divided), rounds it to float16 (round to nearest even; a value beyond 65504 becomes inf),
the configured hand-made collective sums the float16 vectors (every partial sum rounded to
float16, as NCCL sums half precision), and the sum is widened back exactly. Half the
bytes of a float32 allreduce on every link; the cost is the two casts and the float16
additions between the collective's messages.
"""

import numpy as np

from ..halfcast import cast_from_half, cast_to_half, half_scratch
from ..xp import get_array_module

__all__ = ["HalfWire"]


class HalfWire:
    """``allreduce(comm, buf, op)`` through a float16 copy of ``buf``.

    The float16 buffer is owned here and reused: one per (address, length) of the
    buffers it reduces (the gradient, or each gradient bucket), so a step allocates
    nothing. ``compress`` and ``decompress`` are the two casts, named so that the step
    clock counts them as compression (:meth:`hpctrain.metrics.StepClock.time_compressors`).

    Args:
        allreduce: the configured collective, ``allreduce(comm, buf, op) -> buf``.
    """

    def __init__(self, allreduce):
        self.allreduce = allreduce
        self._half = {}
        self._scratch_blocks = half_scratch()

    def _scratch(self, buf):
        xp = get_array_module(buf)
        key = (xp.__name__, _address(buf), buf.size)
        half = self._half.get(key)
        if half is None:
            half = self._half[key] = xp.empty(buf.size, dtype=np.float16)
        return half

    def compress(self, buf, scale):
        """``buf * scale`` (in place: ``buf`` is overwritten by the result anyway) rounded
        to float16, in the owned half buffer."""
        xp = get_array_module(buf)
        if scale != 1.0:
            xp.multiply(buf, buf.dtype.type(scale), out=buf)
        return cast_to_half(buf, self._scratch(buf), self._scratch_blocks)

    def decompress(self, half, buf):
        """``buf[...] = half`` (exact widening)."""
        return cast_from_half(half, buf, self._scratch_blocks)

    def __call__(self, comm, buf, op="sum"):
        if op not in ("sum", "mean") or buf.dtype.kind != "f":
            return self.allreduce(comm, buf, op)  # max/min, integer buffers: as they are
        half = self.compress(buf, 1.0 / comm.size if op == "mean" else 1.0)
        self.allreduce(comm, half, "sum")
        return self.decompress(half, buf)


def _address(buf):
    data = getattr(buf, "data", None)
    ptr = getattr(data, "ptr", None)  # CuPy
    return ptr if ptr is not None else buf.__array_interface__["data"][0]
