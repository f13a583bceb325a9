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
float32 <-> float16 casts (NumPy's rounding to nearest even and its NaN payloads): by
the CPU's own conversion instructions where it has them (x86 F16C, 64-bit ARM), else in
integer operations and a table of NumPy's own widened halves. No
fast-math: the compiler may vectorise, never reassociate. Tests compare every loop
with the NumPy path on the same inputs (tests/compress/test_jit.py).

Numba is optional: without it, or with ``HPCTRAIN_JIT=0`` in the environment, the
operators run their NumPy paths, which stay the reference. The loops are compiled on
first use in each process (about a second each) and not cached on disk: they are built
inside :func:`_build` (Numba is imported only there), and Numba's cache keys such a loop by
its closure, which differs in every process, so every process would add copies to the
package's ``__pycache__`` without ever reading one back.
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
    jit = njit(cache=False, boundscheck=False, nogil=True)  # see the module docstring

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

    inline = njit(inline="always", boundscheck=False)

    @inline
    def codes_body(x, bucket, lo, div, zero, topv, s, two32, sign_shift, key32, codes, QSGD, IS32):
        n = x.size
        base = np.uint32(np.uint32(key32) + g32)  # counter i: key32 + (i + 1) * GOLDEN32
        for b in range(div.size):
            d = div[b]
            o = lo[b]
            a = b * bucket
            e = min(a + bucket, n)
            for i in range(a, e):
                xi = x[i]
                if QSGD:
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
                if IS32:  # ceil(f) <= 2**32 - 2**8: an integer compare, as the NumPy path
                    up = np.int64(z) < np.int64(np.ceil(f))
                else:
                    up = np.float64(z) < np.float64(f)
                c = np.int64(fl) + up
                if QSGD:
                    c += np.int64(xi < zero) << sign_shift
                codes[i] = np.uint8(c)
        return codes

    # one compiled loop per (form, dtype): the flags are constants inside each
    @jit
    def codes_qsgd32(x, bucket, lo, div, zero, topv, s, two32, sign_shift, key32, codes):
        return codes_body(x, bucket, lo, div, zero, topv, s, two32, sign_shift, key32, codes, True, True)

    @jit
    def codes_qsgd64(x, bucket, lo, div, zero, topv, s, two32, sign_shift, key32, codes):
        return codes_body(x, bucket, lo, div, zero, topv, s, two32, sign_shift, key32, codes, True, False)

    @jit
    def codes_minmax32(x, bucket, lo, div, zero, topv, s, two32, sign_shift, key32, codes):
        return codes_body(x, bucket, lo, div, zero, topv, s, two32, sign_shift, key32, codes, False, True)

    @jit
    def codes_minmax64(x, bucket, lo, div, zero, topv, s, two32, sign_shift, key32, codes):
        return codes_body(x, bucket, lo, div, zero, topv, s, two32, sign_shift, key32, codes, False, False)

    @inline
    def pack_body(codes, out, LOGPER, BITS):
        n = codes.size
        full = n >> LOGPER
        for j in range(full):
            byte = np.uint32(0)
            for t in range(1 << LOGPER):
                byte |= np.uint32(codes[(j << LOGPER) + t]) << np.uint32(t * BITS)
            out[j] = np.uint8(byte)
        if n > full << LOGPER:
            byte = np.uint32(0)
            for t in range(n - (full << LOGPER)):
                byte |= np.uint32(codes[(full << LOGPER) + t]) << np.uint32(t * BITS)
            out[full] = np.uint8(byte)
        return out

    @jit
    def pack2(codes, out):
        return pack_body(codes, out, 2, 2)

    @jit
    def pack4(codes, out):
        return pack_body(codes, out, 1, 4)

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

    @inline
    def decode_body(packed, bucket, table, scale, lo, out, LOGPER, BITS, ADD):
        n = out.size
        mask = np.uint32((1 << BITS) - 1)
        slot = (1 << LOGPER) - 1
        for b in range(scale.size):
            sc = scale[b]
            o = lo[b]
            a = b * bucket
            e = min(a + bucket, n)
            i = a
            while i < e and (i & slot):  # a bucket that starts inside a byte
                c = (np.uint32(packed[i >> LOGPER]) >> np.uint32((i & slot) * BITS)) & mask
                out[i] = table[c] * sc + o if ADD else table[c] * sc
                i += 1
            for j in range(i >> LOGPER, e >> LOGPER):  # whole bytes
                byte = np.uint32(packed[j])
                for t in range(1 << LOGPER):
                    c = (byte >> np.uint32(t * BITS)) & mask
                    out[(j << LOGPER) + t] = table[c] * sc + o if ADD else table[c] * sc
            i = max(i, (e >> LOGPER) << LOGPER)
            while i < e:  # a bucket that ends inside a byte
                c = (np.uint32(packed[i >> LOGPER]) >> np.uint32((i & slot) * BITS)) & mask
                out[i] = table[c] * sc + o if ADD else table[c] * sc
                i += 1
        return out

    # one compiled loop per code width, with and without the offset
    @jit
    def decode1(packed, bucket, table, scale, lo, out):
        return decode_body(packed, bucket, table, scale, lo, out, 3, 1, False)

    @jit
    def decode2(packed, bucket, table, scale, lo, out):
        return decode_body(packed, bucket, table, scale, lo, out, 2, 2, False)

    @jit
    def decode4(packed, bucket, table, scale, lo, out):
        return decode_body(packed, bucket, table, scale, lo, out, 1, 4, False)

    @jit
    def decode8(packed, bucket, table, scale, lo, out):
        return decode_body(packed, bucket, table, scale, lo, out, 0, 8, False)

    @jit
    def decode1_lo(packed, bucket, table, scale, lo, out):
        return decode_body(packed, bucket, table, scale, lo, out, 3, 1, True)

    @jit
    def decode2_lo(packed, bucket, table, scale, lo, out):
        return decode_body(packed, bucket, table, scale, lo, out, 2, 2, True)

    @jit
    def decode4_lo(packed, bucket, table, scale, lo, out):
        return decode_body(packed, bucket, table, scale, lo, out, 1, 4, True)

    @jit
    def decode8_lo(packed, bucket, table, scale, lo, out):
        return decode_body(packed, bucket, table, scale, lo, out, 0, 8, True)

    @jit
    def to_half(x, xu, out):
        one = np.uint32(1)
        for i in range(xu.size):
            u = xu[i]
            a = np.uint32(u & np.uint32(0x7FFFFFFF))
            # normal halves: rebias the exponent, round to nearest even on the 13 dropped bits
            nrm = np.uint32(np.uint32(((a >> np.uint32(13)) & one) + a + np.uint32(0xC8000FFF)) >> np.uint32(13))
            # subnormal halves (|x| < 2**-14): units of 2**-24, |x| * 2**24 exact, rounded to
            # nearest even by rint; anything else (NaN too) is cut to 0 here and not selected
            y = abs(x[i]) * np.float32(16777216.0)
            y = y if y < np.float32(2048.0) else np.float32(0.0)
            sub = np.uint32(np.int32(np.rint(y)))
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

    half_loops = {"integer": (to_half, from_half)}
    if _hardware_half():
        half_loops["hardware"] = _hardware_half_loops(jit)
    _STATE["half_loops"] = half_loops
    to_half, from_half = half_loops.get("hardware", half_loops["integer"])
    with np.errstate(all="ignore"):  # NumPy's own widening of every non-negative half
        table = np.arange(1 << 15, dtype=np.uint16).view(np.float16).astype(np.float32).view(np.uint32)
    _STATE.update(lane_sums=lane_sums, sign_pack=sign_pack, to_half=to_half, from_half=from_half, half_table=table)
    _STATE["codes"] = {(True, True): codes_qsgd32, (True, False): codes_qsgd64, (False, True): codes_minmax32,
                       (False, False): codes_minmax64}
    _STATE["pack"] = {2: pack2, 4: pack4}
    _STATE["decode"] = {(1, False): decode1, (2, False): decode2, (4, False): decode4, (8, False): decode8,
                        (1, True): decode1_lo, (2, True): decode2_lo, (4, True): decode4_lo, (8, True): decode8_lo}


def _hardware_half():
    """Whether the CPU converts float16 itself (x86 with F16C, 64-bit ARM) and Numba compiles
    for this CPU (``NUMBA_CPU_NAME`` unset or "host")."""
    import platform

    if os.environ.get("NUMBA_CPU_NAME", "host") != "host":
        return False
    if platform.machine().lower() in ("aarch64", "arm64"):
        return True
    import llvmlite.binding as llb

    return bool(llb.get_host_cpu_features().get("f16c", False))


def _hardware_half_loops(jit):
    """The casts through the CPU's own conversion (``vcvtps2ph`` / ``vcvtph2ps``: round to
    nearest even, exact widening), with NaNs taken from the integer rule: the hardware
    quiets a signalling NaN, NumPy keeps its top significand bits as they are."""
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def f32_to_f16_bits(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))
        return types.uint16(types.float32), codegen

    @intrinsic
    def f16_to_f32_bits(typingctx, h):
        def codegen(context, builder, signature, args):
            wide = builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
            return builder.bitcast(wide, ir.IntType(32))
        return types.uint32(types.uint16), codegen

    @jit
    def to_half_hw(x, xu, out):
        for i in range(xu.size):
            u = xu[i]
            a = np.uint32(u & np.uint32(0x7FFFFFFF))
            nan = np.uint32(max(np.uint32(0x7C01), np.uint32(0x7C00) + ((a & np.uint32(0x7FFFFF)) >> np.uint32(13))))
            nan |= (u >> np.uint32(16)) & np.uint32(0x8000)
            out[i] = np.uint16(nan) if a > np.uint32(0x7F800000) else f32_to_f16_bits(x[i])
        return out

    @jit
    def from_half_hw(h, table, out):  # (table unused: the same call as the integer loop's)
        for i in range(h.size):
            v = np.uint32(h[i])
            o = v & np.uint32(0x7FFF)
            nan = np.uint32((o << np.uint32(13)) + np.uint32(0x70000000)) | ((v & np.uint32(0x8000)) << np.uint32(16))
            out[i] = nan if o > np.uint32(0x7C00) else f16_to_f32_bits(h[i])
        return out

    return to_half_hw, from_half_hw


def lane_sums(x, bucket, square, out):
    """float64 sum of x_i**2 (``square``) or |x_i| per bucket into ``out``, in the lane order
    of :func:`hpctrain.compress.minmax.bucket_stats`."""
    return _STATE["lane_sums"](x, bucket, bool(square), out)


def stochastic_codes(x, bucket, lo, div, top, scaled, sign_shift, key32, codes):
    """Unpacked uint8 codes into ``codes`` (x's size), as
    :func:`hpctrain.compress.minmax.stochastic_codes`: ``scaled`` > 0 is QSGD's level count
    (t = (|x| / div) * s, ``lo`` ignored), 0 the min/max form t = (x - lo) / div;
    QSGD ors in (x < 0) << ``sign_shift``; ``key32`` is the stream's 32-bit key."""
    T = x.dtype.type
    loop = _STATE["codes"][scaled > 0, x.dtype == np.float32]
    return loop(x, int(bucket), lo, div, T(0), T(top), T(scaled), T(4294967296.0), max(int(sign_shift), 0),
                np.uint32(key32), codes)


def pack(codes, bits, out):
    """:func:`hpctrain.compress.pack.pack_into` (codes < 2**bits) for 2 or 4 bits."""
    return _STATE["pack"][int(bits)](codes, out)


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
    _STATE["decode"][int(bits), lo is not None](packed, int(bucket), table, scale, scale if lo is None else lo, out)
    return True


def to_half(x, out):
    """``out[...] = x.astype(float16)`` for contiguous float32 ``x`` and float16 ``out``, bit for bit."""
    _STATE["to_half"](x, x.view(np.uint32), out.view(np.uint16))
    return out


def from_half(h, out):
    """``out[...] = h`` widened, for contiguous float16 ``h`` and float32 ``out``, bit for bit."""
    _STATE["from_half"](h.view(np.uint16), _STATE["half_table"], out.view(np.uint32))
    return out
