"""Random-k with a shared seed: every rank draws the same k coordinates at the same step.

The coordinates are a uniformly random k-subset (without replacement) that depends on
(seed, step, d, k) only, never on the rank, so only the k values travel (a dense
allreduce of k values suffices) and the receiver regenerates the indices from the step
in the payload header. Two exact rules, by density:

* sparse (8 k <= d, d < 2**32), O(k): the first k distinct values of the draws
  ``r_j = hash(key(seed, step), j) mod d``, j = 0, 1, 2, ... (sequential sampling with
  duplicates rejected: a uniform k-subset; every coordinate has probability k/d, up to
  the mod's bias of at most d / 2**64). The draws are generated in batches (any batch
  size gives the same subset): sort ``r_j * 2**32 + j``, keep each value's first draw, and
  keep the values whose first draw is among the k earliest.
* dense (otherwise): the k smallest keys ``hash(key, i)`` over all i < d, ties to the
  lower index.

The CuPy twin runs the same steps with CuPy's sort (sparse) or the radix select of
kernels/randk.cu (dense), and yields the very same indices.
"""

import sys

import numpy as np

from ..xp import get_array_module
from . import gpu
from .base import DensityOperator, Payload, SparseCompressor, check_input, index_dtype, scatter_pairs
from .rng import GOLDEN, STREAM_RANDK, counter_key, hash_u64, hash_u64_into, mix64
from .topk import k_for_density

__all__ = ["randk_indices", "select_on_device", "randk_keys", "RandK"]


def sparse_rule(d, k):
    """Whether random-k of k out of d coordinates uses the O(k) draws (see the module)."""
    return 0 < k and 8 * k <= d < (1 << 32)


def first_batch(d, k):
    """Draws of the first batch: k, the expected duplicates k^2/(2d) twice over, and slack."""
    return k + k * k // d + 4 * int(k ** 0.5) + 32


def _words(xp, a):
    """(low, high) 32-bit words of the uint64 array ``a``: strided views on a little-endian
    machine, new arrays elsewhere."""
    if sys.byteorder == "little":
        w = a.view(xp.uint32)
        return w[0::2], w[1::2]
    return (a & xp.uint64(0xFFFFFFFF)).astype(xp.uint32), (a >> xp.uint64(32)).astype(xp.uint32)


def first_distinct(xp, draws, d, k):
    """The first k distinct values of ``draws`` (uint64 hashes, in draw order; overwritten)
    mod d, ascending, as int64; None when the batch holds fewer than k distinct values.
    NumPy or CuPy (``xp``); a few arrays of the batch's size, nothing of size d."""
    m = draws.size
    draws %= xp.uint64(d)
    draws <<= xp.uint64(32)
    draws |= xp.arange(m, dtype=xp.uint64)  # m < 2**32: the draw number in the low word
    draws.sort()
    _, val = _words(xp, draws)
    first = xp.empty(m, dtype=bool)
    first[0] = True
    xp.not_equal(val[1:], val[:-1], out=first[1:])
    distinct = draws[first]  # value << 32 | its first draw, ascending in value
    if distinct.size < k:
        return None
    when, val = _words(xp, distinct)
    last = xp.partition(when, k - 1)[k - 1]  # the k-th earliest first draw
    return val[when <= last].astype(xp.int64)


def randk_indices(seed, step, d, k, comp=None):
    """The shared random-k coordinates (NumPy reference).

    Args:
        seed: shared seed.
        step: training step.
        d: vector length.
        k: coordinates to draw (0 <= k <= d).
        comp: optional :class:`RandK` whose scratch buffers to use (then nothing of
            size d is allocated).

    Returns:
        int64 indices, ascending.
    """
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    key = counter_key(seed, step, 0, STREAM_RANDK)
    if sparse_rule(d, k):
        m = first_batch(d, k)
        while True:
            idx = first_distinct(np, hash_u64(key, 0, m), d, k)
            if idx is not None:
                return idx
            m *= 2
    if comp is not None:
        work, mask, ties = (comp.scratch("tmp", d, np.uint64), comp.scratch("mask", d, np.bool_),
                            comp.scratch("ties", d, np.bool_))
        keys = hash_u64_into(key, comp.golden_steps(d), comp.scratch("keys", d, np.uint64), work)
        work[...] = keys
        work.partition(k - 1)
        thr = work[k - 1]
        np.less(keys, thr, out=mask)
        need = k - int(np.count_nonzero(mask))
        np.equal(keys, thr, out=ties)
        mask[np.flatnonzero(ties)[:need]] = True
        return np.flatnonzero(mask)
    keys = hash_u64(key, 0, d)
    thr = np.partition(keys, k - 1)[k - 1]
    mask = keys < thr
    need = k - int(np.count_nonzero(mask))
    mask[np.flatnonzero(keys == thr)[:need]] = True
    return np.flatnonzero(mask)


def select_on_device(x, u, key, d, k, dtype=None):
    """CuPy twin of random-k (the module's two rules).

    Args:
        x: values (None: indices only).
        u: memory (updated in place) or None.
        key: counter key of (seed, step).
        d, k: length and count.
        dtype: dtype when x is None.

    Returns:
        (indices int64, values or None).
    """
    cp = gpu.cupy()
    dt = np.dtype(dtype if x is None else x.dtype)
    suf = gpu.suffix(dt)
    if k == 0 or d == 0:
        if u is not None:
            gpu.ef_add_inplace(x, u)
        return cp.zeros(0, cp.int64), (None if x is None else x[:0].copy())
    if sparse_rule(d, k):
        m = first_batch(d, k)
        while True:
            idx = first_distinct(cp, randk_keys(key, m), d, k)
            if idx is not None:
                break
            m *= 2
        if x is None:
            return idx, None
        if u is None:
            return idx, x[idx]
        gpu.ef_add_inplace(x, u)
        val = u[idx]
        u[idx] = 0
        return idx, val
    thr = gpu.radix_select("randk", suf, x, u, d, key, k, 64)
    return gpu.compact("randk", suf, x, u, d, key, thr, k, dt, want_values=x is not None, mem_out=u)


def randk_keys(key, n):
    """hash(key, i) for i < n on the GPU (twin of rng.hash_u64(key, 0, n))."""
    cp = gpu.cupy()
    out = cp.empty(n, cp.uint64)
    if n:
        gpu.get_function("randk", "randk_keys")(gpu.grid(n), (gpu.BLOCK,), (np.uint64(key), np.uint64(n), out))
    return out


class RandK(DensityOperator, SparseCompressor):
    """Random-k sparsifier (paper 000's random mask), k = round(density * d), shared seed.

    The payload carries values only (op ``randk``); :meth:`indices` regenerates the
    coordinates for a step. ``unbias_scale(d)`` = d / k makes it unbiased.

    Args:
        density: s/d in (0, 1].
        seed: shared seed (must be equal on every rank).
    """

    name = "randk"
    wire = {"randk": 5}
    kernels = ("randk",)
    config_params = ("density", "seed")
    bench_params = {"density": 0.01}
    shared_indices = True
    unbiased_scaled = True

    @classmethod
    def layout(cls, op, dtype, index_dtype, bits, count, aux):
        """``count`` values (the indices are regenerated from the step)."""
        return [("values", dtype, count)]

    def __init__(self, density=0.01, seed=0):
        self.density = density
        self.seed = int(seed)
        self._cache = None  # (step, d, k, on_gpu) -> indices of the last step
        self._draws = {}

    def unbias_scale(self, d):
        """d / k: the scale that makes random-k unbiased."""
        return d / k_for_density(self.density, d)

    def golden_steps(self, d):
        """(i + 1) * GOLDEN for i < d (uint64, kept: the counters of every step's keys)."""
        g = self.__dict__.get("_golden")
        if g is None or g.size != d:
            g = self._golden = np.arange(1, d + 1, dtype=np.uint64) * np.uint64(GOLDEN)
        return g

    def independent(self, draw):
        """A random-k with its own shared coordinates: the seed of draw ``draw`` (>= 1)."""
        if draw == 0:
            return self
        if draw not in self._draws:
            self._draws[draw] = RandK(self.density, mix64(self.seed ^ (draw * GOLDEN)) >> 1)
        return self._draws[draw]

    def indices(self, step, d, xp=np):
        """The k shared coordinates of ``step`` for a length-d vector (NumPy or CuPy)."""
        k = k_for_density(self.density, d)
        key = (int(step), int(d), k, xp is not np)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        if xp is np:
            idx = randk_indices(self.seed, step, d, k, self)
        else:
            idx, _ = select_on_device(None, None, counter_key(self.seed, step, 0, STREAM_RANDK), d, k,
                                      dtype=np.float32)
        self._cache = (key, idx)
        return idx

    class Host:
        @staticmethod
        def select(op, x, memory, step, rank):
            idx = op.indices(step, x.size)
            if memory is None:
                return idx, x[idx]
            np.add(x, memory, out=memory)
            val = memory[idx]
            memory[idx] = 0
            return idx, val

    class Device:
        @staticmethod
        def select(op, x, memory, step, rank):
            k = k_for_density(op.density, x.size)
            idx, val = select_on_device(x, memory, counter_key(op.seed, step, 0, STREAM_RANDK), x.size, k)
            op._cache = ((int(step), int(x.size), k, True), idx)
            return idx, val

    def compress(self, x, step=0, rank=0, memory=None):
        """Values of ``x`` (or ``x + memory``) at the shared coordinates of ``step``.

        Args:
            x: 1-D float32/float64 array.
            step: training step (with the seed, fixes the coordinates).
            rank: ignored (the coordinates are shared).
            memory: optional error-feedback memory (updated in place).

        Returns:
            A :class:`Payload` with ``values`` only.
        """
        dt = check_input(x)
        _, val = self.path(x).select(self, x, memory, step, rank)
        return Payload(self.name, x.size, dt, val.size, {"values": val}, step=step)

    def _decompress(self, payload, out):
        idx = self.indices(payload.step, payload.size, get_array_module(out))
        if idx.size != payload.count:
            raise ValueError(f"random-k payload has {payload.count} values, density gives {idx.size}")
        scatter_pairs(idx, payload["values"], out, add=False)

    def decompress_add(self, payload, out):
        """``out[indices] += values`` at the shared coordinates of the payload's step.

        Returns:
            ``out``.
        """
        return scatter_pairs(self.indices(payload.step, payload.size, get_array_module(out)), payload["values"],
                             out, add=True)

    def index_dtype(self, d):
        """Index dtype used for length-d vectors (indices never travel for random-k)."""
        return index_dtype(d)


OPERATOR = RandK  # what compress/__init__.py registers
