"""threshold: send every coordinate with |p| >= a fixed threshold (count varies per step).

p = g, or g + u with error feedback. The CuPy path runs topk.cu's count/compaction
passes with the threshold's score.
"""

import math

import numpy as np

from ..errors import ConfigError
from . import gpu
from .base import SparseCompressor
from .topk import prepare, take_and_update

__all__ = ["Threshold"]


class Threshold(SparseCompressor):
    """Threshold-k: send every coordinate with |p| >= threshold (count varies per step).

    Args:
        threshold: non-negative magnitude threshold.
    """

    name = "threshold"
    wire = {"threshold": 4}
    kernels = ("topk",)
    bench_params = {"threshold": 2.576}  # ~1% of a standard normal

    def __init__(self, threshold=1e-3):
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise ConfigError(f"threshold must be a number >= 0, got {threshold!r}") from None
        if not (threshold >= 0.0 and math.isfinite(threshold)):
            raise ConfigError(f"threshold must be finite and >= 0, got {threshold}")
        self.threshold = threshold

    class Host:
        @staticmethod
        def select(op, x, memory, step, rank):
            thr = np.dtype(x.dtype).type(op.threshold)
            p, a = prepare(x, memory, op.scratch("abs", x.size, x.dtype))
            mask = op.scratch("mask", x.size, np.bool_)
            np.greater_equal(a, thr, out=mask)
            idx = np.flatnonzero(mask)
            return idx, take_and_update(p, idx, memory)

    class Device:
        @staticmethod
        def select(op, x, memory, step, rank):
            """CuPy twin: every |x + u| >= thr (thr in x's dtype)."""
            thr = np.dtype(x.dtype).type(op.threshold)
            return gpu.compact("topk", gpu.suffix(x.dtype), x, memory, x.size, 0, gpu.abs_score(thr, x.dtype), None,
                               x.dtype, mem_out=memory)


OPERATOR = Threshold  # what compress/__init__.py registers
