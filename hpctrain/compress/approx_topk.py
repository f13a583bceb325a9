"""approx-topk: approximate top-k by a sampled threshold (paper 001; DGC-style correction).

Every |p| >= thr is kept (p = g, or g + u with error feedback); the threshold comes from a
counter-RNG sample of |p| and is corrected until the count lies in a band around k, with
exact top-k (topk.py) as the fallback. The CuPy path samples with
kernels/approx_topk.cu and counts/compacts with topk.cu's selection passes.
"""

import math

import numpy as np

from ..errors import ConfigError
from . import gpu
from .base import DensityOperator, SparseCompressor
from .rng import STREAM_SAMPLE, counter_key, sample_positions
from .topk import k_for_density, kth_largest, prepare, select_on_device, take_and_update, topk_indices, topk_scratch

__all__ = ["count_band", "ApproxTopK"]


def count_band(k, low=0.8, high=1.3):
    """The accepted count band [ceil(low*k), floor(high*k)] of approximate top-k."""
    return max(1, math.ceil(low * k - 1e-9)) if k else 0, int(math.floor(high * k + 1e-9))



class ApproxTopK(DensityOperator, SparseCompressor):
    """Approximate top-k by a sampled threshold (paper 001; DGC-style correction).

    Draw m = min(d, max(min_sample, ceil(sample_fraction * d))) positions with replacement
    from the counter RNG (seed, step, rank); the threshold is the kk-th largest |p| of the
    sample, kk = round(density * m). Every |p| >= thr is sent. If the count c falls outside
    [ceil(0.8 k), floor(1.3 k)], kk is rescaled by k / c and the threshold recomputed from
    the same sample (at most ``refine_steps`` times); if it is still outside, exact top-k
    is used, so the count is always inside the band.

    Args:
        density: s/d in (0, 1].
        sample_fraction: fraction of coordinates sampled (0.01 in paper 001).
        min_sample: lower bound on the sample size.
        refine_steps: threshold corrections before falling back to exact top-k.
        band: (low, high) accepted count band as multiples of k.
        seed: RNG seed.
    """

    name = "approx-topk"
    wire = {"approx-topk": 3}
    kernels = ("approx_topk", "topk")
    config_params = ("density", "seed")
    bench_params = {"density": 0.01}

    def __init__(self, density=0.01, sample_fraction=0.01, min_sample=1024, refine_steps=3,
                 band=(0.8, 1.3), seed=0):
        self.density = density
        if not (0.0 < float(sample_fraction) <= 1.0):
            raise ConfigError(f"sample_fraction must be in (0, 1], got {sample_fraction}")
        if int(min_sample) < 1 or int(refine_steps) < 0:
            raise ConfigError("min_sample must be >= 1 and refine_steps >= 0")
        low, high = (float(b) for b in band)
        if not (0.0 < low <= 1.0 <= high):
            raise ConfigError(f"band must satisfy 0 < low <= 1 <= high, got {band}")
        self.sample_fraction = float(sample_fraction)
        self.min_sample = int(min_sample)
        self.refine_steps = int(refine_steps)
        self.band = (low, high)
        self.seed = int(seed)
        self.last_info = {}

    def sample_size(self, d):
        """m, the number of sampled positions for a length-d vector."""
        return min(d, max(self.min_sample, math.ceil(self.sample_fraction * d)))

    def plan(self, d, step, rank):
        """(k, band, m, sample key, first kk) for a length-d vector at (step, rank)."""
        k = k_for_density(self.density, d)
        m = self.sample_size(d)
        kk = int(min(m, max(1, round(self.density * m))))
        key = counter_key(self.seed, step, rank, STREAM_SAMPLE)
        return k, count_band(k, *self.band), m, key, kk

    @staticmethod
    def rescale(kk, count, k, m):
        """The corrected sample rank: round(kk * k / count), clamped to [1, m]."""
        return int(min(m, max(1, round(kk * k / max(count, 1)))))

    def begin(self, d, step, rank):
        """:meth:`plan` of a length-d selection, or None for an empty vector (then
        ``last_info`` is already set)."""
        if d == 0:
            self.last_info = {"count": 0, "k": 0, "refinements": 0, "fallback": False}
            return None
        return self.plan(d, step, rank)

    def refine(self, plan, kth, count, as_float):
        """The threshold search of both the NumPy path and its CUDA twin (one loop, any
        array module): ``kth(kk)`` is the kk-th largest sampled score, ``count(thr)`` the
        number of scores >= thr, ``as_float(thr)`` the threshold as a Python float. Sets
        ``last_info``.

        Returns:
            The accepted threshold, or None: exact top-k must be used (the count stayed
            outside the band after ``refine_steps`` corrections, or the correction stalled).
        """
        k, (lo_k, hi_k), m, _, kk = plan
        attempt = 0
        for attempt in range(self.refine_steps + 1):
            thr = kth(kk)
            c = count(thr)
            if lo_k <= c <= hi_k:
                self.last_info = {"count": c, "k": k, "threshold": as_float(thr), "refinements": attempt,
                                  "fallback": False}
                return thr
            new = self.rescale(kk, c, k, m)
            if new == kk:
                break
            kk = new
        self.last_info = {"count": k, "k": k, "refinements": attempt, "fallback": True}
        return None

    class Host:
        @staticmethod
        def select(op, x, memory, step, rank):
            d = x.size
            plan = op.begin(d, step, rank)
            if plan is None:
                return np.zeros(0, np.int64), x[:0].copy()
            k, _, m, key, _ = plan
            mask = op.scratch("mask", d, np.bool_)
            p, a = prepare(x, memory, op.scratch("abs", d, x.dtype))
            sample = a[sample_positions(key, m, d)]

            def count(thr):
                np.greater_equal(a, thr, out=mask)
                return int(np.count_nonzero(mask))

            if op.refine(plan, lambda kk: kth_largest(sample, kk), count, float) is not None:
                idx = np.flatnonzero(mask)  # the mask of the accepted threshold
            else:
                idx = topk_indices(a, k, *topk_scratch(op, a))
            return idx, take_and_update(p, idx, memory)

    class Device:
        @staticmethod
        def select(op, x, u, step, rank):
            """CuPy twin of Host.select (same sample, same refinements, same fallback)."""
            cp = gpu.cupy()
            suf = gpu.suffix(x.dtype)
            d = x.size
            plan = op.begin(d, step, rank)
            if plan is None:
                return cp.zeros(0, cp.int64), x[:0].copy()
            k, _, m, key, _ = plan
            sample = cp.empty(m, x.dtype)
            gpu.get_function("approx_topk", f"approx_topk_sample_{suf}")(
                gpu.grid(m), (gpu.BLOCK,), (x, gpu.ptr(u), np.uint64(d), np.uint64(key), np.uint64(m), sample))
            width = gpu.nbits(x.dtype)
            nb = math.ceil(d / gpu.BLOCK)
            gt = cp.empty(nb, cp.int64)
            eq = cp.empty(nb, cp.int64)
            count_kernel = gpu.get_function("topk", f"topk_{suf}_count")

            def count(thr):
                count_kernel((nb,), (gpu.BLOCK,), (x, gpu.ptr(u), np.uint64(d), np.uint64(0), np.uint64(thr), gt, eq))
                return int(gt.sum()) + int(eq.sum())

            def as_float(thr):  # the threshold's bits back as a value of x's dtype
                return float(np.array([thr], dtype=np.uint32 if width == 32 else np.uint64).view(x.dtype)[0])

            thr = op.refine(plan, lambda kk: gpu.radix_select("topk", suf, sample, None, m, 0, kk, width), count,
                            as_float)
            if thr is None:
                return select_on_device(x, u, k)
            return gpu.compact("topk", suf, x, u, d, 0, thr, None, x.dtype, mem_out=u)


OPERATOR = ApproxTopK  # what compress/__init__.py registers
