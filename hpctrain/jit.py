"""Compiled host loops for the bucketed quantizers (qsgd, minmax, sign) and the float16
casts, bit for bit equal to their NumPy paths, when Numba is installed
(``pip install hpctrain[jit]``).

NumPy runs one operation per pass over the data, so a stochastic rounding that takes
a dozen operations per coordinate reads and writes the vector a dozen times. These
loops do each coordinate's whole recipe at once, in the same correctly rounded
operations and the same order as the NumPy path (and the CUDA twins): the bucket sums in
:data:`~hpctrain.compress.minmax.LANES` interleaved float64 lanes folded
:data:`~hpctrain.compress.minmax.GROUPS` at a time, t = (x - lo) / div or (|x| / div) * s
clamped to [0, top] (NaN -> 0), the round-up test hash32(key, i) < ceil(frac * 2**32)
(float32) or < frac * 2**32 (float64), the decode table[code] * scale (+ lo), and
float32 -> float16 rounding to nearest even (NumPy's, NaN payloads included) in integer
operations, widening by a table of NumPy's own widened halves. No
fast-math: the compiler may vectorise, never reassociate. Tests compare every loop
with the NumPy path on the same inputs (tests/compress/test_jit.py).

Numba is optional: without it, or with ``HPCTRAIN_JIT=0`` in the environment, the
operators run their NumPy paths, which stay the reference. The loops are compiled on
first use in a process (about a second each) and cached on disk by Numba.
"""

import os

import numpy as np

__all__ = ["enabled", "describe", "lane_sums", "stochastic_codes", "pack", "sign_pack", "decode", "to_half", "from_half"]

_STATE = {}


def _off():
    return os.environ.get("HPCTRAIN_JIT", "1").strip().lower() in ("0", "off", "false", "no")


def enabled():
    """Whether the compiled loops are in use: Numba importable and ``HPCTRAIN_JIT`` not 0."""
    if _off():
        return False
    if "ok" not in _STATE:
        try:
            _build()
            _STATE["ok"] = True
        except ImportError:
            _STATE["ok"] = False
    return _STATE["ok"]


def describe():
    """One line for benchmark headers: which host path the quantizers and casts take."""
    if _off():
        return "host loops: NumPy (HPCTRAIN_JIT=0)"
    if not enabled():
        return "host loops: NumPy (numba not installed; pip install 'hpctrain[jit]' compiles them)"
    import numba
    return f"host loops: compiled by numba {numba.__version__} (HPCTRAIN_JIT=0 for NumPy's)"


def _build():
    """Define and register the Numba functions (imports numba; raises ImportError without it)."""
    from numba import njit

    from .compress.minmax import GROUPS, LANES
    from .compress.rng import GOLDEN32, _L1, _L2

    g32, l1, l2 = np.uint32(GOLDEN32), np.uint32(_L1), np.uint32(_L2)
    jit = njit(cache=True, boundscheck=False, nogil=True)

    @jit
    def lane_sums(x, bucket, square, out):
        n = x.size
        lanes = np.empty(LANES, np.float64)
        groups = np.empty(GROUPS, np.float64)
        for b in range(out.size):
            a = b * bucket
            e = min(a + bucket, n)
            for k in range(LANES):
                lanes[k] = 0.0
            i = a
            while i + LANES <= e:
                for k in range(LANES):
                    v = np.float64(x[i + k])
                    lanes[k] += v * v if square else abs(v)
                i += LANES
            k = 0
            while i < e:  # the zero padding of the last row adds nothing: skip it
                v = np.float64(x[i])
                lanes[k] += v * v if square else abs(v)
                i += 1
                k += 1
            for g in range(GROUPS):
                groups[g] = 0.0
            for k in range(LANES):
                groups[k % GROUPS] += lanes[k]
            s = groups[0] + groups[1]
            for g in range(2, GROUPS):
                s += groups[g]
            out[b] = s
        return out

    @jit
    def stochastic_codes(x, bucket, lo, div, zero, topv, s, two32, is32, scaled, sign_shift, key32, codes):
        n = x.size
        base = np.uint32(np.uint32(key32) + g32)  # counter i: key32 + (i + 1) * GOLDEN32
        for b in range(div.size):
            d = div[b]
            o = lo[b]
            a = b * bucket
            e = min(a + bucket, n)
            for i in range(a, e):
                xi = x[i]
                if scaled > 0:  # QSGD
                    t = (abs(xi) / d) * s
                else:
                    t = (xi - o) / d
                t = t if t > zero else zero  # NaN -> 0
                t = t if t < topv else topv
                fl = np.floor(t)
                f = (t - fl) * two32
                z = np.uint32(base + np.uint32(i) * g32)
                z = np.uint32(z ^ (z >> np.uint32(16)))
                z = np.uint32(z * l1)
                z = np.uint32(z ^ (z >> np.uint32(15)))
                z = np.uint32(z * l2)
                z = np.uint32(z ^ (z >> np.uint32(16)))
                if is32:  # ceil(f) <= 2**32 - 2**8: an integer compare, as the NumPy path
                    up = np.int64(z) < np.int64(np.ceil(f))
                else:
                    up = np.float64(z) < np.float64(f)
                c = np.int64(fl) + up
                if sign_shift >= 0:
                    c += np.int64(xi < zero) << sign_shift
                codes[i] = np.uint8(c)
        return codes

    @jit
    def pack(codes, bits, out):
        n = codes.size
        per = 8 // bits
        full = n // per
        for j in range(full):
            byte = np.uint8(0)
            for t in range(per):
                byte |= np.uint8(codes[j * per + t] << np.uint8(t * bits))
            out[j] = byte
        if n > full * per:
            byte = np.uint8(0)
            for t in range(n - full * per):
                byte |= np.uint8(codes[full * per + t] << np.uint8(t * bits))
            out[full] = byte
        return out

    @jit
    def sign_pack(x, out):
        n = x.size
        zero = x.dtype.type(0.0)
        full = n // 8
        for j in range(full):
            byte = np.uint8(0)
            for t in range(8):
                byte |= np.uint8(x[8 * j + t] < zero) << np.uint8(t)
            out[j] = byte
        if n > full * 8:
            byte = np.uint8(0)
            for t in range(n - full * 8):
                byte |= np.uint8(x[8 * full + t] < zero) << np.uint8(t)
            out[full] = byte
        return out

    @jit
    def decode(packed, bits, bucket, table, scale, lo, add_lo, out):
        n = out.size
        per = 8 // bits
        mask = np.uint8((1 << bits) - 1)
        for b in range(scale.size):
            sc = scale[b]
            o = lo[b]
            a = b * bucket
            e = min(a + bucket, n)
            for i in range(a, e):
                c = (packed[i // per] >> np.uint8((i % per) * bits)) & mask
                v = table[c] * sc
                out[i] = v + o if add_lo else v
        return out

    @jit
    def to_half(xu, out):
        one, top = np.uint32(1), np.uint32(31)
        for i in range(xu.size):
            u = xu[i]
            a = np.uint32(u & np.uint32(0x7FFFFFFF))
            # normal halves: rebias the exponent, round to nearest even on the 13 dropped bits
            nrm = np.uint32(np.uint32(((a >> np.uint32(13)) & one) + a + np.uint32(0xC8000FFF)) >> np.uint32(13))
            # subnormal halves: |x| / 2**-24 rounded to nearest even, in integers
            e = a >> np.uint32(23)
            mant = (a & np.uint32(0x7FFFFF)) | (np.uint32(e != 0) << np.uint32(23))
            sh = np.uint32(min(np.uint32(126) - max(e, one), top))
            q = mant >> sh
            rem = mant & ((one << sh) - one)
            hw = one << (sh - one)
            sub = q + np.uint32((rem > hw) | ((rem == hw) & ((q & one) != 0)))
            # inf, beyond 65504 + half an ulp, NaN (keeps its top significand bits, never 0)
            nan = np.uint32(max(np.uint32(0x7C01), np.uint32(0x7C00) + ((a & np.uint32(0x7FFFFF)) >> np.uint32(13))))
            big = np.uint32(0x7C00) if a <= np.uint32(0x7F800000) else nan
            r = sub if a < np.uint32(0x38800000) else (big if a >= np.uint32(0x47800000) else nrm)
            out[i] = np.uint16(r | ((u >> np.uint32(16)) & np.uint32(0x8000)))
        return out

    @jit
    def from_half(h, table, out):
        for i in range(h.size):
            v = np.uint32(h[i])
            out[i] = table[v & np.uint32(0x7FFF)] | ((v & np.uint32(0x8000)) << np.uint32(16))
        return out

    with np.errstate(all="ignore"):  # NumPy's own widening of every non-negative half
        table = np.arange(1 << 15, dtype=np.uint16).view(np.float16).astype(np.float32).view(np.uint32)
    _STATE.update(lane_sums=lane_sums, stochastic_codes=stochastic_codes, pack=pack, sign_pack=sign_pack,
                  decode=decode, to_half=to_half, from_half=from_half, half_table=table)


def lane_sums(x, bucket, square, out):
    """float64 sum of x_i**2 (``square``) or |x_i| per bucket into ``out``, in the lane order
    of :func:`hpctrain.compress.minmax.bucket_stats`."""
    return _STATE["lane_sums"](x, bucket, bool(square), out)


def stochastic_codes(x, bucket, lo, div, top, scaled, sign_shift, key32, codes):
    """Unpacked uint8 codes into ``codes`` (x's size), as
    :func:`hpctrain.compress.minmax.stochastic_codes`: ``scaled`` > 0 is QSGD's level count
    (t = (|x| / div) * s, ``lo`` ignored), 0 the min/max form t = (x - lo) / div;
    ``sign_shift`` >= 0 ors in (x < 0) << sign_shift; ``key32`` the stream's 32-bit key."""
    T = x.dtype.type
    return _STATE["stochastic_codes"](x, int(bucket), lo, div, T(0), T(top), T(scaled), T(4294967296.0),
                                      x.dtype == np.float32, int(scaled), int(sign_shift), np.uint32(key32), codes)


def pack(codes, bits, out):
    """:func:`hpctrain.compress.pack.pack_into` (codes < 2**bits) for 2, 4 or 8 bits."""
    return _STATE["pack"](codes, int(bits), out)


def sign_pack(x, out):
    """Bit i % 8 of byte i // 8 set where x_i < 0 (sign's payload)."""
    return _STATE["sign_pack"](x, out)


def decode(packed, bits, bucket, table, scale, lo, out):
    """out_i = table[code_i] * scale[bucket of i] (+ lo[bucket of i] when ``lo`` is not
    None), codes read from the packed bytes; ``table`` in out's dtype.

    Returns:
        True when done; False, leaving ``out`` alone, when the loops are off or a scale or
        offset is not finite (the NumPy path then decodes: it fixes which NaN comes out of
        NaN + NaN, which a compiler may commute).
    """
    if not (enabled() and np.isfinite(scale).all() and (lo is None or np.isfinite(lo).all())):
        return False
    add = lo is not None
    _STATE["decode"](packed, int(bits), int(bucket), table, scale, scale if lo is None else lo, add, out)
    return True


def to_half(x, out):
    """``out[...] = x.astype(float16)`` for contiguous float32 ``x`` and float16 ``out``, bit for bit."""
    _STATE["to_half"](x.view(np.uint32), out.view(np.uint16))
    return out


def from_half(h, out):
    """``out[...] = h`` widened, for contiguous float16 ``h`` and float32 ``out``, bit for bit."""
    _STATE["from_half"](h.view(np.uint16), _STATE["half_table"], out.view(np.uint32))
    return out
