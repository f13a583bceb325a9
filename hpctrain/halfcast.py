"""float32 <-> float16 casts on the host in whole-vector integer passes, bit for bit as NumPy's.

NumPy's casts take a slow path per element whose float16 is subnormal (|x| < 2^-14, as most
coordinates of a gradient divided by the ranks are): 68 ms per million such elements
against 2.6 ms for normal ones (and its float16 addition, which casts both ways, 15 ms
against 5.8). These do the same rounding (to nearest even, beyond 65504 inf, a NaN kept a
NaN with its top significand bits, as NumPy's ``npy_floatbits_to_halfbits``) in a dozen
integer passes over cache-sized blocks, at the same speed for every value. Used by the
``fp16`` operator, the float16 allreduce (``--fp16-allreduce``) and the collectives'
float16 additions.
"""

import threading

import numpy as np

from . import jit
from .xp import get_array_module

__all__ = ["BLOCK", "SCRATCH_DTYPES", "half_scratch", "host_to_half", "host_from_half", "cast_to_half", "cast_from_half", "half_add"]

_ABS, _SIGN = np.uint32(0x7FFFFFFF), np.uint32(0x8000)
_MIN_NORMAL = np.uint32(0x38800000)  # 2^-14: below it the half is subnormal (or zero)
_OVER = np.uint32(0x47800000)  # 2^16: at and above it the half is inf (or NaN)
_REBIAS = np.uint32(0xC8000FFF)  # (15 - 127) << 23, plus the rounding's 0xfff, mod 2^32
_HALF_MAGIC = np.float32(0.5)  # adding 0.5 puts a subnormal half's units (2^-24) in the ulp
_HALF_MAGIC_BITS = np.uint32(0x3F000000)


#: elements per block of :func:`cast_to_half` / :func:`cast_from_half`: the passes of one block
#: stay in the cache, and the scratch is 640 KB whatever the vector's size
BLOCK = 1 << 16


#: the scratch arrays of :func:`host_to_half` and :func:`host_from_half`, by name
SCRATCH_DTYPES = {"a": np.uint32, "b": np.uint32, "m": np.uint32, "mask": np.bool_}


def half_scratch(n=BLOCK):
    """The scratch of :func:`host_to_half` and :func:`host_from_half` for n values."""
    return {k: np.empty(n, dt) for k, dt in SCRATCH_DTYPES.items()}


def _blocks(cast, src, dst, scratch):
    n = src.size
    for i in range(0, n, BLOCK):
        k = min(BLOCK, n - i)
        cast(src[i:i + k], dst[i:i + k], {key: v[:k] for key, v in scratch.items()})
    return dst


def cast_to_half(x, out, scratch):
    """``out[...] = x`` rounded to float16 as NumPy's cast, bit for bit: float32 on the host
    block by block (:func:`host_to_half`; ``scratch`` from :func:`half_scratch`), any other
    array as NumPy or CuPy casts it."""
    if x.dtype == np.float32 and isinstance(x, np.ndarray):
        if _compiled(x, out):
            return jit.to_half(x, out)
        return _blocks(host_to_half, x, out, scratch)
    with np.errstate(over="ignore"):
        get_array_module(x).copyto(out, x, casting="same_kind")
    return out


def cast_from_half(h, out, scratch):
    """``out[...] = h`` widened exactly (:func:`host_from_half` for a float32 host ``out``)."""
    if out.dtype == np.float32 and isinstance(out, np.ndarray):
        if _compiled(h, out):
            return jit.from_half(h, out)
        return _blocks(host_from_half, h, out, scratch)
    get_array_module(out).copyto(out, h)
    return out


def _below(v, limit, m):
    """m = all ones where uint32 ``v`` < ``limit`` (both below 2^31), else 0: branch-free
    (a masked NumPy call on a mixed mask costs ten times a plain pass)."""
    mi = m.view(np.int32)
    np.subtract(v.view(np.int32), np.int32(limit), out=mi)
    np.right_shift(mi, 31, out=mi)


def _select(m, new, old):
    """old = new where m is all ones, else old (``new`` is clobbered)."""
    np.bitwise_xor(new, old, out=new)
    np.bitwise_and(new, m, out=new)
    np.bitwise_xor(old, new, out=old)


def _compiled(*arrays):
    """Whether :mod:`hpctrain.jit` casts these arrays (Numba there, all contiguous)."""
    return jit.enabled() and all(a.flags.c_contiguous for a in arrays)


def host_to_half(x, out, scratch):
    """``out[...] = x.astype(float16)`` for float32 ``x``, bit for bit, without NumPy's
    per-element slow path for subnormal results (NumPy passes; :func:`cast_to_half` takes the
    compiled loop of :mod:`hpctrain.jit` instead when there is one)."""
    a, b, m, mask = scratch["a"], scratch["b"], scratch["m"], scratch["mask"]
    u = x.view(np.uint32)
    np.bitwise_and(u, _ABS, out=a)  # |x|
    np.right_shift(a, 13, out=b)  # normal results: rebias the exponent, round to nearest even
    np.bitwise_and(b, 1, out=b)
    np.add(b, a, out=b)
    np.add(b, _REBIAS, out=b)
    np.right_shift(b, 13, out=b)
    np.greater_equal(a, _OVER, out=mask)
    if mask.any():  # rare: inf, NaN, or beyond the largest half
        for i in np.flatnonzero(mask):
            ai = int(a[i])
            b[i] = 0x7C00 if ai <= 0x7F800000 else max(0x7C01, 0x7C00 + ((ai & 0x7FFFFF) >> 13))
    _below(a, _MIN_NORMAL, m)  # subnormal halves: the float32 add rounds |x| to units of 2^-24
    f = a.view(np.float32)
    with np.errstate(all="ignore"):  # the other elements' bits may be NaN as floats
        np.add(f, _HALF_MAGIC, out=f)
    np.subtract(a, _HALF_MAGIC_BITS, out=a)
    _select(m, a, b)
    np.right_shift(u, 16, out=a)  # the sign
    np.bitwise_and(a, _SIGN, out=a)
    np.bitwise_or(b, a, out=b)
    np.copyto(out.view(np.uint16), b, casting="unsafe")
    return out


def host_from_half(h, out, scratch):
    """``out[...] = h`` (float16 to float32, exact), bit for bit as NumPy's cast, without
    its per-element slow path for subnormals (NumPy passes; :func:`cast_from_half` takes the
    compiled loop of :mod:`hpctrain.jit` instead when there is one)."""
    a, b, m, mask = scratch["a"], scratch["b"], scratch["m"], scratch["mask"]
    o = out.view(np.uint32)
    np.copyto(o, h.view(np.uint16))
    np.bitwise_and(o, _SIGN, out=a)
    np.left_shift(a, 16, out=a)  # the sign
    np.bitwise_and(o, 0x7FFF, out=o)
    _below(o, 0x400, m)  # zero and subnormals (exponent 0)
    np.left_shift(o, 13, out=o)
    np.add(o, np.uint32(0x38000000), out=o)  # rebias: right for normal halves
    np.add(o, np.uint32(1 << 23), out=b)  # subnormals: 2^-14 (1 + m/1024) - 2^-14 = m 2^-24, exactly
    fb = b.view(np.float32)
    np.subtract(fb, np.float32(2.0 ** -14), out=fb)
    _select(m, b, o)
    np.greater_equal(o, _OVER, out=mask)
    if mask.any():  # rare: inf and NaN, the largest exponent
        np.add(o, np.uint32(0x38000000), out=o, where=mask)
    np.bitwise_or(o, a, out=o)
    return out


class HalfAdd:
    """``np.add`` of two float16 host arrays, bit for bit (NumPy widens both to float32,
    adds, rounds the sum to float16), through the casts above block by block: the
    collectives' reduction of float16 buffers. Called as a ufunc: ``add(a, b, out=c)``.
    One instance per thread (its scratch)."""

    def __init__(self):
        self.scratch = half_scratch()
        self.x = np.empty(BLOCK, np.float32)
        self.y = np.empty(BLOCK, np.float32)

    def __call__(self, a, b, out):
        n = a.size
        for i in range(0, n, BLOCK):
            k = min(BLOCK, n - i)
            sc = {key: v[:k] for key, v in self.scratch.items()}
            x, y = self.x[:k], self.y[:k]
            cast_from_half(a[i:i + k], x, sc)
            cast_from_half(b[i:i + k], y, sc)
            with np.errstate(all="ignore"):  # inf - inf is NaN, as in NumPy's float16 add
                np.add(x, y, out=x)
            cast_to_half(x, out[i:i + k], sc)
        return out


_local = threading.local()


def half_add():
    """This thread's :class:`HalfAdd` (the communication thread of ``--overlap`` gets its own)."""
    add = getattr(_local, "add", None)
    if add is None:
        add = _local.add = HalfAdd()
    return add
