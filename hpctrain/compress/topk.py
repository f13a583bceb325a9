"""topk: exact top-k by magnitude, and the selection pieces shared with approx_topk.py and
threshold.py.

The magnitude sparsifiers (topk, approx-topk, threshold) keep coordinates of p = g (+ u
with error feedback) by |p|, send them as (indices ascending, values) and, with memory, leave u <- p with the sent coordinates
zeroed (fused: one pass over p after the threshold is known).

Tie rule (exact top-k): every |p| > thr is kept, where thr is the k-th largest |p|, and
the remaining slots go to the coordinates with |p| == thr in increasing index order.
Approximate top-k and threshold-k keep every |p| >= thr. Inputs must be finite.
"""

import numpy as np

from . import gpu
from .base import DensityOperator, SparseCompressor

__all__ = [
    "k_for_density",
    "kth_largest",
    "topk_indices",
    "TopK",
    "prepare",
    "take_and_update",
    "topk_scratch",
    "select_on_device",
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


def kth_largest(a, k):
    """The k-th largest value (1-based) of a 1-D NumPy array ``a`` (exact order statistic)."""
    n = a.size
    return np.partition(a, n - k)[n - k]


SAMPLE_STRIDE = 16  # the candidate filter's sample: every 16th score
SAMPLE_MIN = 1 << 15  # below this many scores the whole vector is partitioned


def _candidate_bound(a, k, work):
    """A score t with (very likely) k <= #{a >= t} <= ~2k, read off a strided sample of
    ``a`` (copied into the head of ``work``): the sample's j-th largest, j twice the
    sample's share of k plus four standard deviations. None when the sample says nothing
    useful (k too close to the size of ``a``)."""
    n = a.size
    m = (n + SAMPLE_STRIDE - 1) // SAMPLE_STRIDE
    mean = k * m / n
    j = int(np.ceil(2 * mean + 4 * np.sqrt(mean) + 1))
    if j >= m:
        return None
    s = work[:m]
    s[...] = a[::SAMPLE_STRIDE]
    s.partition(m - j)
    return s[m - j]


def _kth_score(a, k, work, mask):
    """The k-th largest of the non-negative scores ``a``, using ``work`` and ``mask`` (size
    of ``a``) as scratch; the value is the exact order statistic whatever path finds it.

    Partitioning all of ``a`` costs ~8 ms at d = 1M, so at s/d <= 1/4 only the candidates
    are partitioned: the scores >= a bound read off a strided sample (about 2k of them),
    which hold the k largest whenever there are at least k of them (else the whole vector
    is partitioned). A vector that is mostly zeros (the decoded sum of sparse payloads that
    a server re-compresses, a layer without gradient) makes ``np.partition`` crawl over
    the equal values (about 14x slower at d = 1M), so only its positive scores are
    partitioned when they are fewer than half."""
    n = a.size
    np.greater(a, 0, out=mask)
    c = int(np.count_nonzero(mask))
    if c < k:
        return a.dtype.type(0)
    if 2 * c >= n and n >= SAMPLE_MIN and 4 * k <= n:
        t = _candidate_bound(a, k, work)
        if t is not None and t > 0:
            np.greater_equal(a, t, out=mask)
            c = int(np.count_nonzero(mask))
            if k <= c and 2 * c < n:
                cand = np.compress(mask, a, out=work[:c])
                cand.partition(c - k)
                return cand[c - k]
            np.greater(a, 0, out=mask)  # the sample misled: back to the positive scores
            c = int(np.count_nonzero(mask))
    if 2 * c < n:
        pos = np.compress(mask, a, out=work[:c])
        pos.partition(c - k)
        return pos[c - k]
    work[...] = a
    work.partition(n - k)
    return work[n - k]


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
        work, mask, ties = np.empty_like(a), np.empty(a.shape, np.bool_), np.empty(a.shape, np.bool_)
    thr = _kth_score(a, k, work, mask)
    np.greater(a, thr, out=mask)
    need = k - int(np.count_nonzero(mask))
    np.equal(a, thr, out=ties)
    mask[np.flatnonzero(ties)[:need]] = True
    return np.flatnonzero(mask)


def take_and_update(p, idx, memory):
    """Values p[idx]; with memory (p *is* memory here) zero the sent coordinates."""
    val = p[idx]
    if memory is not None:
        memory[idx] = 0
    return val


def topk_scratch(comp, a):
    """(work, mask, ties) scratch of ``comp`` for exact top-k of the scores ``a``."""
    d = a.size
    return comp.scratch("topk-work", d, a.dtype), comp.scratch("mask", d, np.bool_), comp.scratch("ties", d, np.bool_)


def prepare(x, memory, work=None):
    """p = x (+ memory, accumulated in place into memory) and a = |p| (into ``work``)."""
    if memory is None:
        p = x
    else:
        np.add(x, memory, out=memory)
        p = memory
    return p, np.abs(p, out=work)


def select_on_device(x, u, k):
    """CuPy twin of exact top-k of |x + u| (ties to the lower index); fused memory update.

    Returns:
        (indices int64, values) CuPy arrays; ``u`` (if given) holds the new memory.
    """
    suf = gpu.suffix(x.dtype)
    n = x.size
    if k == 0:
        if u is not None:
            gpu.ef_add_inplace(x, u)
        return gpu.cupy().zeros(0, np.int64), x[:0].copy()
    thr = gpu.radix_select("topk", suf, x, u, n, 0, k, gpu.nbits(x.dtype))
    return gpu.compact("topk", suf, x, u, n, 0, thr, k, x.dtype, mem_out=u)


class TopK(DensityOperator, SparseCompressor):
    """Exact top-k by magnitude (paper 000's top-k mask), k = round(density * d).

    Args:
        density: s/d, fraction of coordinates sent, in (0, 1].
    """

    name = "topk"
    wire = {"topk": 2}
    kernels = ("topk",)
    config_params = ("density",)
    bench_params = {"density": 0.01}

    def __init__(self, density=0.01):
        self.density = density

    class Host:
        @staticmethod
        def select(op, x, memory, step, rank):
            k = k_for_density(op.density, x.size)
            p, a = prepare(x, memory, op.scratch("abs", x.size, x.dtype))
            idx = topk_indices(a, k, *topk_scratch(op, a))
            return idx, take_and_update(p, idx, memory)

    class Device:
        @staticmethod
        def select(op, x, memory, step, rank):
            return select_on_device(x, memory, k_for_density(op.density, x.size))


OPERATOR = TopK  # what compress/__init__.py registers
