"""minmax: the survey's stochastic uniform b-bit quantizer (eq 3.1), per-bucket min/max or
norm scaling. Not QSGD: it has no zero level and no sign;
real QSGD (l2 norm, s levels including zero, sign) is :mod:`hpctrain.compress.qsgd`.

The vector is cut into buckets of ``bucket_size`` coordinates (the last may be shorter).
Each bucket has 2**b knobs lo + c*delta, c = 0..L with L = 2**b - 1:

* ``scaling="minmax"``: lo = min(bucket), delta = (max - min) / L (eq 3.1);
* ``scaling="norm"``:   lo = -||bucket||_2, delta = 2 ||bucket||_2 / L (l2 normalization,
  the survey's caveat 1; with b = 1 this is the stochastic sign scaled by the norm).

x is rounded to one of its two neighbouring knobs, up with probability frac(t),
t = (x - lo) / delta, so E[Q(x)] = x (unbiased) and Var[Q(x)] = delta^2 frac(t)(1-frac(t))
<= delta^2 / 4. The uniforms come from the counter RNG (seed, step, rank), so a CuPy run
makes the same rounding decisions. All arithmetic is done in the input dtype with
correctly rounded operations; bucket norms are float64 sums in a fixed lane order
(:func:`bucket_stats`). Codes are
bit-packed (pack.py);
kernels/minmax.cu (and buckets.cu for the statistics) is the CUDA twin; the wire carries codes + scales (min and max, or the norm, per
bucket in the input dtype).
"""

import math

import numpy as np

from ..errors import ConfigError
from .. import jit
from . import gpu
from .base import Compressor, Payload, check_coded, coded_layout
from .pack import check_bits, decode_bytes, pack_codes, unpack_codes
from .chunks import chunk_len, new_buffer, pieces
from .rng import STREAM_QUANTIZE, counter_key, golden32_steps, hash32_into, key32, uniform32

__all__ = ["SCALINGS", "LANES", "GROUPS", "bucket_stats", "knobs", "quantize_codes", "dequantize", "MinMax"]

SCALINGS = ("minmax", "norm")
_KIND = {"minmax": 0, "norm": 1, "mean-abs": 2}


#: a bucket's float64 sum runs in LANES interleaved lanes, folded GROUPS at a time (see
#: :func:`bucket_stats`; kernels/buckets.cu spells the same order)
LANES, GROUPS = 64, 8


def bucket_stats(x, bucket, kind, scratch=new_buffer):
    """Per-bucket statistics, identical to kernels/buckets.cu ``bucket_stats`` (shared by the
    bucketed quantizers minmax, qsgd and sign).

    Norm and mean are float64 sums of v_i = x_i * x_i or |x_i| in one fixed order, the same
    on the GPU: the bucket's values, zero-padded to a multiple of 64, are summed in 64
    interleaved lanes (lane k = v_k + v_{k+64} + v_{k+128} + ..., left to right); lane k
    joins group k % 8 (group g = lane_g + lane_{g+8} + ... + lane_{g+56}, left to right);
    the sum is group_0 + group_1 + ... + group_7, left to right. The padding changes no
    sum (every v_i is >= +0 or NaN, and s + 0.0 == s). This order runs as contiguous
    SIMD passes in NumPy, where the plain index order needs a transposing pass.

    Args:
        x: 1-D float32/float64 NumPy array.
        bucket: bucket size.
        kind: "minmax" -> (min, max); "norm" -> (l2 norm, None); "mean-abs" -> (mean |x|, None).
            Norm and mean are the float64 sums above, then square-rooted or divided by the
            count, then cast to x's dtype.
        scratch: ``scratch(name, n, dtype)`` gives reusable buffers (an operator's
            :meth:`~hpctrain.compress.base.Compressor.scratch`); nothing of x's size is
            allocated, the sums run piece by piece (:mod:`hpctrain.compress.chunks`).

    Returns:
        (s0, s1) arrays of length ceil(n / bucket) in x's dtype (s1 None unless minmax).
    """
    dt = x.dtype
    n = x.size
    if n == 0:
        return np.zeros(0, dt), (np.zeros(0, dt) if kind == "minmax" else None)
    if kind == "minmax":
        starts = np.arange(0, n, bucket)
        zero = dt.type(0)
        return np.minimum.reduceat(x, starts) + zero, np.maximum.reduceat(x, starts) + zero
    nb = math.ceil(n / bucket)
    if jit.enabled() and x.flags.c_contiguous:
        sums = jit.lane_sums(x, bucket, kind == "norm", scratch("stats-sums", nb, np.float64))
    else:
        sums = _lane_sums_numpy(x, bucket, kind, nb, scratch)
    if kind == "norm":
        return np.sqrt(sums).astype(dt), None
    counts = np.full(nb, float(bucket))
    counts[-1] = n - (nb - 1) * bucket
    return (sums / counts).astype(dt), None


def _lane_sums_numpy(x, bucket, kind, nb, scratch):
    """The float64 sums of :func:`bucket_stats` ("norm": x_i**2, else |x_i|) per bucket."""
    n = x.size
    padded = -(-bucket // LANES) * LANES
    rows = max(1, chunk_len(bucket, n) // bucket)
    v_all = scratch("stats-v", rows * padded, np.float64)
    lanes_all = scratch("stats-lanes", rows * LANES, np.float64)
    groups = scratch("stats-groups", nb * GROUPS, np.float64).reshape(nb, GROUPS)
    for a, b, b0, r, w in pieces(n, bucket):
        wp = -(-w // LANES) * LANES
        v = v_all[: r * wp].reshape(r, wp)
        if kind == "norm":
            np.square(x[a:b].reshape(r, w), out=v[:, :w], dtype=np.float64)
        else:
            np.abs(x[a:b].reshape(r, w), out=v[:, :w], dtype=np.float64)
        v[:, w:] = 0.0
        # a reduction over a middle axis adds whole rows in order: sequential per lane
        lanes = np.add.reduce(v.reshape(r, wp // LANES, LANES), axis=1, out=lanes_all[: r * LANES].reshape(r, LANES))
        np.add.reduce(lanes.reshape(r, LANES // GROUPS, GROUPS), axis=1, out=groups[b0:b0 + r])
    sums = groups[:, 0] + groups[:, 1]
    for g in range(2, GROUPS):
        sums += groups[:, g]
    return sums


def knobs(scaling, s0, s1, levels):
    """(lo, delta) per bucket in the scales' dtype (see module docstring)."""
    L = s0.dtype.type(levels)
    if scaling == "minmax":
        return s0, (s1 - s0) / L
    return -s0, (s0 + s0) / L


def _per_element(v, bucket, n):
    return np.repeat(v, bucket)[:n]


def quantize_codes(x, bucket, scaling, s0, s1, levels, key):
    """Stochastic-rounding codes (uint8) of ``x`` (NumPy twin of ``minmax_encode_f32/f64``).

    Args:
        x: 1-D float32/float64 array.
        bucket, scaling: bucketing and scaling mode.
        s0, s1: from :func:`bucket_stats`.
        levels: L = 2**bits - 1.
        key: counter-RNG stream key; element i uses uniform32(key, i).

    Returns:
        uint8 codes in [0, L].
    """
    n = x.size
    dt = x.dtype
    lo, delta = knobs(scaling, s0, s1, levels)
    lo_e, delta_e = _per_element(lo, bucket, n), _per_element(delta, bucket, n)
    t = np.zeros(n, dtype=dt)
    np.divide(x - lo_e, delta_e, out=t, where=delta_e > 0)
    np.clip(t, dt.type(0), dt.type(levels), out=t)
    t[np.isnan(t)] = 0  # inf/inf when a bucket's range overflows: code 0, as the kernel does
    fl = np.floor(t)
    frac = t - fl
    codes = fl.astype(np.uint32) + (uniform32(key, n) < frac)
    np.minimum(codes, levels, out=codes)
    return codes.astype(np.uint8)


def dequantize(codes, bucket, scaling, s0, s1, levels, out):
    """out = lo + code * delta per element (two correctly rounded ops)."""
    n = out.size
    lo, delta = knobs(scaling, s0, s1, levels)
    np.multiply(codes[:n].astype(out.dtype), _per_element(delta, bucket, n), out=out)
    out += _per_element(lo, bucket, n)
    return out


def stochastic_codes(op, x, key, lo, div, top, scaled=None, sign_shift=None, finite=False):
    """Stochastic rounding of t = (x - lo) / div (or of (|x| / div) * ``scaled`` when
    ``scaled`` is given: QSGD), clamped to [0, top] (NaN -> 0), one bucket per row, piece
    by piece in ``op``'s scratch; rounds up where hash32(key, i) * 2**-32 < frac(t).

    Args:
        op: the operator (its scratch, bucket size, bits).
        x: 1-D float32/float64 array.
        key: counter-RNG stream key.
        lo: per-bucket offsets (None with ``scaled``).
        div: per-bucket divisors (inf where the bucket's step is not positive: t = 0).
        top: the largest code.
        scaled: QSGD's level count s (t = (|x| / div) * s), or None (minmax).
        sign_shift: QSGD's sign bit position (code |= (x < 0) << sign_shift), or None.
        finite: the caller's promise that every scale is finite (then x is finite and t
            cannot be NaN, so one clip does the kernel's NaN -> 0 and clamp).

    Returns:
        Unpacked uint8 codes (``op``'s scratch of x's size; read before the next call).
    """
    n, dt = x.size, x.dtype
    codes = op.scratch("codes", n, np.uint8)
    if jit.enabled() and x.flags.c_contiguous:
        return jit.stochastic_codes(x, op.bucket_size, div if lo is None else lo, div, top, scaled or 0,
                                    -1 if sign_shift is None else sign_shift, key32(key), codes)
    size = chunk_len(op.bucket_size, n)
    t_all, fl_all = op.scratch("q-t", size, dt), op.scratch("q-fl", size, dt)
    h_all, tmp_all = op.scratch("q-h", size, np.uint32), op.scratch("q-tmp", size, np.uint32)
    up_all = op.scratch("q-up", size, np.bool_)
    steps = op.__dict__.get("_steps32")
    if steps is None or steps.size != size:
        steps = op._steps32 = golden32_steps(size)
    T = dt.type
    for a, b, b0, r, w in pieces(n, op.bucket_size):
        m = b - a
        xs = x[a:b].reshape(r, w)
        t, fl = t_all[:m].reshape(r, w), fl_all[:m].reshape(r, w)
        if scaled is None:
            np.subtract(xs, lo[b0:b0 + r, None], out=t)
            np.divide(t, div[b0:b0 + r, None], out=t)
        else:
            np.abs(xs, out=t)
            np.divide(t, div[b0:b0 + r, None], out=t)
            t *= T(scaled)
        if finite:  # t is not NaN: one clip
            np.clip(t, T(0), T(top), out=t)
        else:
            np.fmax(t, T(0), out=t)  # NaN -> 0
            np.minimum(t, T(top), out=t)
        np.floor(t, out=fl)
        t -= fl  # frac(t) in [0, 1)
        t *= T(4294967296.0)  # exact: u < frac  <=>  bits < frac * 2**32
        h = hash32_into(key, a, h_all[:m], tmp_all[:m], steps[:m]).reshape(r, w)
        up = up_all[:m].reshape(r, w)
        if dt == np.float32:
            # bits < t  <=>  bits < ceil(t) for integer bits, and ceil(t) <= 2**32 - 2**8
            # (frac <= 1 - 2**-24): a uint32 comparison instead of one promoted to float64
            np.ceil(t, out=t)
            thr = tmp_all[:m].reshape(r, w)  # the hash's scratch, free again
            np.copyto(thr, t, casting="unsafe")
            np.less(h, thr, out=up)
        else:
            np.less(h, t, out=up)
        c = codes[a:b].reshape(r, w)
        np.copyto(c, fl, casting="unsafe")
        c += up.view(np.uint8)
        if sign_shift is not None:
            neg = up.view(np.uint8)
            np.less(xs, T(0), out=up)
            np.left_shift(neg, np.uint8(sign_shift), out=neg)
            c |= neg
    return codes


_SCALING = {"minmax": 0, "norm": 1}


class MinMax(Compressor):
    """The survey's unbiased stochastic b-bit quantizer (eq 3.1).

    Args:
        bits: b in {1, 2, 4, 8}.
        bucket_size: coordinates per bucket (each bucket has its own scale).
        scaling: "minmax" (eq 3.1) or "norm" (l2-normalized, symmetric knobs).
        seed: RNG seed (the draws also depend on step and rank).
    """

    name = "minmax"
    # opcodes 6 and 7 were "qsgd-minmax"/"qsgd-norm" before QSGD proper took the name qsgd
    wire = {"minmax": 6, "minmax-norm": 7}
    kernels = ("minmax",)
    config_params = ("bits", "seed")
    bench_params = {"bits": 8}
    unbiased = True

    @classmethod
    def layout(cls, op, dtype, index_dtype, bits, count, aux):
        """Packed codes, then one (norm) or two (minmax: min and step) scales per bucket."""
        return coded_layout(dtype, bits, count, aux, 2 if op == "minmax" else 1)

    def __init__(self, bits=8, bucket_size=512, scaling="minmax", seed=0):
        self.bits = check_bits(bits)
        if int(bucket_size) < 1 or int(bucket_size) != bucket_size:
            raise ConfigError(f"bucket_size must be a positive integer, got {bucket_size!r}")
        if scaling not in SCALINGS:
            raise ConfigError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
        self.bucket_size = int(bucket_size)
        self.scaling = scaling
        self.seed = int(seed)
        self.levels = (1 << self.bits) - 1

    @property
    def op(self):
        """Wire operator name: minmax or minmax-norm (the scaling)."""
        return "minmax" if self.scaling == "minmax" else f"minmax-{self.scaling}"

    class Host:
        @staticmethod
        def encode(op, x, key):
            s0, s1 = bucket_stats(x, op.bucket_size, op.scaling, op.scratch)
            lo, delta = knobs(op.scaling, s0, s1, op.levels)
            with np.errstate(over="ignore", invalid="ignore"):
                codes = stochastic_codes(op, x, key, lo, np.where(delta > 0, delta, np.inf), op.levels,
                                         finite=bool(np.isfinite(lo).all() and np.isfinite(delta).all()))
            return s0, s1, codes, (s0 if s1 is None else np.concatenate([s0, s1]))

        @staticmethod
        def decode(op, packed, s0, s1, out):
            """From the packed codes: code (as a float, through a byte table) * delta + lo."""
            lo, delta = knobs(op.scaling, s0, s1, op.levels)
            table = np.arange(op.levels + 1, dtype=out.dtype)
            if jit.decode(packed, op.bits, op.bucket_size, table, delta, lo, out):
                return
            decode_bytes(op, packed, op.bits, table, out)
            for a, b, b0, r, w in pieces(out.size, op.bucket_size):
                o = out[a:b].reshape(r, w)
                o *= delta[b0:b0 + r, None]
                o += lo[b0:b0 + r, None]

    class Device:
        @staticmethod
        def encode(op, x, key):
            """CuPy twin: bucket statistics + stochastic-rounding codes."""
            cp = gpu.cupy()
            n = x.size
            s0, s1 = gpu.bucket_stats(x, op.bucket_size, op.scaling)
            codes = cp.empty(n, cp.uint8)
            if n:
                gpu.get_function("minmax", f"minmax_encode_{gpu.suffix(x.dtype)}")(
                    gpu.grid(n), (gpu.BLOCK,), (x, np.uint64(n), np.uint64(op.bucket_size),
                                                np.int32(_SCALING[op.scaling]), s0, s0 if s1 is None else s1,
                                                np.uint32(op.levels), np.uint64(key), codes))
            return s0, s1, codes, (s0 if s1 is None else cp.concatenate([s0, s1]))

        @staticmethod
        def decode(op, codes, s0, s1, out):
            """CuPy twin of :func:`dequantize`."""
            cp = gpu.cupy()
            n = out.size
            if n:
                gpu.get_function("minmax", f"minmax_decode_{gpu.suffix(out.dtype)}")(
                    gpu.grid(n), (gpu.BLOCK,), (codes, np.uint64(n), np.uint64(op.bucket_size),
                                                np.int32(_SCALING[op.scaling]), cp.ascontiguousarray(s0),
                                                cp.ascontiguousarray(s0 if s1 is None else s1), np.uint32(op.levels),
                                                out))

    def _compress(self, x, step, rank):
        key = counter_key(self.seed, step, rank, STREAM_QUANTIZE)
        _, _, codes, scales = self.path(x).encode(self, x, key)
        return Payload(self.op, x.size, x.dtype, x.size, {"codes": pack_codes(codes, self.bits), "scales": scales},
                       step=step, bits=self.bits, aux=self.bucket_size)

    def _decompress(self, payload, out):
        check_coded(payload, self.op, self.bits, self.bucket_size, self.op)
        n = payload.size
        scales = payload["scales"]
        nb = math.ceil(n / self.bucket_size)
        s0, s1 = (scales[:nb], scales[nb:]) if self.scaling == "minmax" else (scales, None)
        if self.path(out) is self.Host:
            self.Host.decode(self, np.asarray(payload["codes"]), s0, s1, out)
        else:
            self.Device.decode(self, unpack_codes(self, payload["codes"], self.bits, n, out), s0, s1, out)


OPERATOR = MinMax  # what compress/__init__.py registers
