"""Magnitude sparsifiers: exact top-k, approximate top-k (sampled threshold) and threshold-k.

All three keep coordinates of p = g (+ u with error feedback) by |p|, send them as
(indices ascending, values) and, with memory, leave u <- p with the sent coordinates
zeroed (fused: one pass over p after the threshold is known).

Tie rule (exact top-k): every |p| > thr is kept, where thr is the k-th largest |p|, and
the remaining slots go to the coordinates with |p| == thr in increasing index order.
Approximate top-k and threshold-k keep every |p| >= thr. Inputs must be finite.
"""

import math

import numpy as np

from ..errors import ConfigError
from ..xp import get_array_module
from .base import SparseCompressor, check_density
from .rng import STREAM_SAMPLE, counter_key, sample_positions

__all__ = [
    "k_for_density",
    "count_band",
    "kth_largest",
    "select_by_threshold",
    "topk_indices",
    "TopK",
    "ApproxTopK",
    "Threshold",
]


def k_for_density(density, d):
    """Number of coordinates s kept at density s/d: round(density * d), at least 1 (d > 0).

    Args:
        density: s/d in (0, 1].
        d: vector length.

    Returns:
        An int in [min(1, d), d].
    """
    if d == 0:
        return 0
    return int(min(d, max(1, round(density * d))))


def count_band(k, low=0.8, high=1.3):
    """The accepted count band [ceil(low*k), floor(high*k)] of approximate top-k."""
    return max(1, math.ceil(low * k - 1e-9)) if k else 0, int(math.floor(high * k + 1e-9))


def kth_largest(a, k):
    """The k-th largest value (1-based) of a 1-D NumPy array ``a`` (exact order statistic)."""
    n = a.size
    return np.partition(a, n - k)[n - k]


def select_by_threshold(a, thr, need=None):
    """Indices (ascending) with a > thr, plus the first ``need`` with a == thr (None: all).

    Args:
        a: 1-D NumPy array of scores (|p|).
        thr: threshold scalar.
        need: how many ties at ``thr`` to keep, in index order; None keeps every a >= thr.

    Returns:
        An int64 index array.
    """
    if need is None:
        return np.flatnonzero(a >= thr)
    mask = a > thr
    ties = np.flatnonzero(a == thr)[:need]
    mask[ties] = True
    return np.flatnonzero(mask)


def topk_indices(a, k, work=None, mask=None, ties=None):
    """Exact top-k of the scores ``a`` with the documented tie rule (lower index wins).

    Args:
        a: 1-D NumPy array of non-negative scores.
        k: how many to keep (0 <= k <= a.size).
        work, mask, ties: optional scratch (a copy of ``a``'s size and dtype, two bool
            arrays of that size): with them nothing of size d is allocated.

    Returns:
        int64 indices, ascending.
    """
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if work is None:
        thr = kth_largest(a, k)
        need = k - int(np.count_nonzero(a > thr))
        return select_by_threshold(a, thr, need)
    n = a.size
    work[...] = a
    work.partition(n - k)
    thr = work[n - k]
    np.greater(a, thr, out=mask)
    need = k - int(np.count_nonzero(mask))
    np.equal(a, thr, out=ties)
    mask[np.flatnonzero(ties)[:need]] = True
    return np.flatnonzero(mask)


def _take_and_update(p, idx, memory):
    """Values p[idx]; with memory (p *is* memory here) zero the sent coordinates."""
    val = p[idx]
    if memory is not None:
        memory[idx] = 0
    return val


def _topk_scratch(comp, a):
    """(work, mask, ties) scratch of ``comp`` for exact top-k of the scores ``a``."""
    d = a.size
    return comp.scratch("topk-work", d, a.dtype), comp.scratch("mask", d, np.bool_), comp.scratch("ties", d, np.bool_)


def _prepare(x, memory, work=None):
    """p = x (+ memory, accumulated in place into memory) and a = |p| (into ``work``)."""
    if memory is None:
        p = x
    else:
        np.add(x, memory, out=memory)
        p = memory
    return p, np.abs(p, out=work)


class TopK(SparseCompressor):
    """Exact top-k by magnitude (paper 000's top-k mask), k = round(density * d).

    Args:
        density: s/d, fraction of coordinates sent, in (0, 1].
    """

    name = "topk"
    wire = {"topk": 2}
    config_params = ("density",)
    bench_params = {"density": 0.01}

    def __init__(self, density=0.01):
        self.density = check_density(density)

    def _select(self, x, memory, step, rank):
        k = k_for_density(self.density, x.size)
        if get_array_module(x) is not np:
            from . import cuda

            return cuda.topk_select(x, memory, k)
        p, a = _prepare(x, memory, self.scratch("abs", x.size, x.dtype))
        idx = topk_indices(a, k, *_topk_scratch(self, a))
        return idx, _take_and_update(p, idx, memory)


class ApproxTopK(SparseCompressor):
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
    config_params = ("density", "seed")
    bench_params = {"density": 0.01}

    def __init__(self, density=0.01, sample_fraction=0.01, min_sample=1024, refine_steps=3,
                 band=(0.8, 1.3), seed=0):
        self.density = check_density(density)
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

    def _select(self, x, memory, step, rank):
        d = x.size
        if get_array_module(x) is not np:
            from . import cuda

            return cuda.approx_topk_select(self, x, memory, step, rank)
        if d == 0:
            self.last_info = {"count": 0, "k": 0, "refinements": 0, "fallback": False}
            return np.zeros(0, np.int64), x[:0].copy()
        plan = self.plan(d, step, rank)
        k, _, m, key, _ = plan
        mask = self.scratch("mask", d, np.bool_)
        p, a = _prepare(x, memory, self.scratch("abs", d, x.dtype))
        sample = a[sample_positions(key, m, d)]

        def count(thr):
            np.greater_equal(a, thr, out=mask)
            return int(np.count_nonzero(mask))

        if self.refine(plan, lambda kk: kth_largest(sample, kk), count, float) is not None:
            idx = np.flatnonzero(mask)  # the mask of the accepted threshold
        else:
            idx = topk_indices(a, k, *_topk_scratch(self, a))
        return idx, _take_and_update(p, idx, memory)

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


class Threshold(SparseCompressor):
    """Threshold-k: send every coordinate with |p| >= threshold (count varies per step).

    Args:
        threshold: non-negative magnitude threshold.
    """

    name = "threshold"
    wire = {"threshold": 4}
    bench_params = {"threshold": 2.576}  # ~1% of a standard normal

    def __init__(self, threshold=1e-3):
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise ConfigError(f"threshold must be a number >= 0, got {threshold!r}") from None
        if not (threshold >= 0.0 and math.isfinite(threshold)):
            raise ConfigError(f"threshold must be finite and >= 0, got {threshold}")
        self.threshold = threshold

    def _select(self, x, memory, step, rank):
        thr = np.dtype(x.dtype).type(self.threshold)
        if get_array_module(x) is not np:
            from . import cuda

            return cuda.threshold_select(x, memory, thr)
        p, a = _prepare(x, memory)
        idx = select_by_threshold(a, thr)
        return idx, _take_and_update(p, idx, memory)
