"""Counter-based random numbers shared bit-for-bit with the CUDA kernels (kernels/common.cuh).

A stream is named by a 64-bit ``key`` derived on the host from (seed, step, rank, stream);
counter ``i`` of that stream is ``mix64(key + (i + 1) * GOLDEN)`` (the splitmix64
finalizer), so any element's random bits can be drawn independently, in any order, on the
CPU or on the GPU, with the very same result. Uniforms carry 53 bits:
``(bits >> 11) * 2**-53``, exactly representable in float64.

The quantizers' per-element draws use a cheaper 32-bit stream (:func:`hash32`): counter
``i`` is ``lowbias32(k32 + (i + 1) * GOLDEN32 mod 2**32)`` with ``k32`` the two halves of
the key xored, and the uniform ``bits * 2**-32`` (exact in float64). lowbias32 (C.
Wellons' "hash prospector" 2-multiply integer hash) is a bijection of 32-bit words, so
the first 2**32 counters of a stream are distinct inputs; counters of longer vectors wrap
mod 2**32. On NumPy it runs in uint32 lanes, chunk by chunk in cache (:func:`hash32_into`).
"""

import numpy as np

__all__ = [
    "GOLDEN",
    "STREAM_QUANTIZE",
    "STREAM_SAMPLE",
    "STREAM_RANDK",
    "mix64",
    "counter_key",
    "hash_u64",
    "hash_u64_into",
    "uniform",
    "sample_positions",
    "GOLDEN32",
    "key32",
    "hash32",
    "hash32_into",
    "uniform32",
    "golden32_steps",
]

_M = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
GOLDEN32 = 0x9E3779B9
_L1 = 0x7FEB352D
_L2 = 0x846CA68B
_M32 = (1 << 32) - 1

#: stream tags keep the operators' draws independent of each other
STREAM_QUANTIZE = 1
STREAM_SAMPLE = 2
STREAM_RANDK = 3


def mix64(z):
    """The splitmix64 finalizer of a Python int (mod 2**64).

    Args:
        z: an integer.

    Returns:
        The mixed 64-bit value as a Python int.
    """
    z &= _M
    z = ((z ^ (z >> 30)) * _C1) & _M
    z = ((z ^ (z >> 27)) * _C2) & _M
    return z ^ (z >> 31)


def counter_key(seed, step, rank=0, stream=0):
    """The 64-bit key of the stream (seed, step, rank, stream), computed on the host.

    Args:
        seed: user seed (non-negative int).
        step: training step.
        rank: worker rank; pass 0 for draws every rank must share (random-k).
        stream: one of the ``STREAM_*`` tags.

    Returns:
        A Python int in [0, 2**64).
    """
    k = mix64(int(seed) + GOLDEN)
    for v in (step, rank, stream):
        k = mix64(k ^ mix64((int(v) + GOLDEN) & _M))
    return k


def _mix64_array(z, tmp=None):
    """splitmix64 finalizer of a uint64 array, in place (``tmp``: optional scratch)."""
    return _xorshift_multiply(z, np.empty_like(z) if tmp is None else tmp, ((30, _C1), (27, _C2), (31, None)))


def _xorshift_multiply(z, tmp, rounds):
    """z ^= z >> shift, then z *= mult (mod the word size), per (shift, mult) of
    ``rounds``, in place (``tmp``: scratch like z)."""
    word = z.dtype.type
    for shift, mult in rounds:
        np.right_shift(z, word(shift), out=tmp)
        z ^= tmp
        if mult is not None:
            z *= word(mult)
    return z


def hash_u64(key, start, count):
    """Random bits of counters ``start .. start+count-1`` of the stream ``key``.

    Args:
        key: a stream key from :func:`counter_key`.
        start, count: the counter range.

    Returns:
        A uint64 array of length ``count``.
    """
    i = np.arange(start + 1, start + 1 + count, dtype=np.uint64)
    i *= np.uint64(GOLDEN)
    i += np.uint64(key)
    return _mix64_array(i)


def hash_u64_into(key, golden_steps, out, tmp):
    """:func:`hash_u64` of counters 0 .. n-1 into ``out`` without allocating.

    Args:
        key: a stream key.
        golden_steps: uint64 array (i + 1) * GOLDEN for i < n (reusable across keys).
        out, tmp: uint64 arrays of length n.

    Returns:
        ``out``.
    """
    np.add(golden_steps, np.uint64(key), out=out)
    return _mix64_array(out, tmp)


def uniform(key, count, start=0):
    """Uniform float64 draws in [0, 1) for counters ``start .. start+count-1``.

    Returns:
        A float64 array; each value is an integer times 2**-53 (exact).
    """
    h = hash_u64(key, start, count)
    h >>= np.uint64(11)
    return h.astype(np.float64) * (1.0 / 9007199254740992.0)


def sample_positions(key, m, d):
    """``m`` positions in [0, d), drawn with replacement: ``hash(key, j) mod d``.

    Returns:
        A uint64 array of length ``m`` (empty when ``d == 0``).
    """
    if d == 0 or m == 0:
        return np.zeros(0, dtype=np.uint64)
    return hash_u64(key, 0, m) % np.uint64(d)


def key32(key):
    """The 32-bit key of the quantizers' stream: the halves of the 64-bit ``key`` xored."""
    return (int(key) ^ (int(key) >> 32)) & _M32


def hash32_into(key, start, out, tmp, steps):
    """32 random bits of counters ``start .. start+n-1`` of the stream ``key``, into ``out``.

    Args:
        key: a stream key from :func:`counter_key`.
        start: first counter.
        out, tmp: uint32 arrays of length n (``tmp`` is scratch).
        steps: uint32 array ``j * GOLDEN32 mod 2**32`` for j < n (reusable).

    Returns:
        ``out``.
    """
    np.add(steps, np.uint32((key32(key) + (int(start) + 1) * GOLDEN32) & _M32), out=out)
    return _xorshift_multiply(out, tmp, ((16, _L1), (15, _L2), (16, None)))


def golden32_steps(n):
    """``j * GOLDEN32 mod 2**32`` for j < n (uint32)."""
    steps = np.arange(n, dtype=np.uint32)
    steps *= np.uint32(GOLDEN32)
    return steps


def hash32(key, start, count):
    """:func:`hash32_into` into new arrays: uint32 bits of counters ``start .. start+count-1``."""
    out = np.empty(count, np.uint32)
    return hash32_into(key, start, out, np.empty(count, np.uint32), golden32_steps(count))


def uniform32(key, count, start=0):
    """Uniform float64 draws ``hash32 * 2**-32`` in [0, 1) (exact: 32-bit lattice)."""
    return hash32(key, start, count) * (1.0 / 4294967296.0)
