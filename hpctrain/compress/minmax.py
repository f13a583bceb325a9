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
correctly rounded operations; bucket norms are float64 sums in index order. Codes are
bit-packed (pack.py);
kernels/minmax.cu (and buckets.cu for the statistics) is the CUDA twin; the wire carries codes + scales (min and max, or the norm, per
bucket in the input dtype).
"""

import math

import numpy as np

from ..errors import ConfigError
from . import gpu
from .base import Compressor, Payload, check_coded, coded_layout
from .pack import check_bits, pack_bits, unpack_bits
from .rng import STREAM_QUANTIZE, counter_key, uniform

__all__ = ["SCALINGS", "bucket_stats", "knobs", "quantize_codes", "dequantize", "MinMax"]

SCALINGS = ("minmax", "norm")
_KIND = {"minmax": 0, "norm": 1, "mean-abs": 2}


def _sequential_rowsum(v, bucket):
    """Float64 sum of each bucket of ``v`` (float64), strictly in index order."""
    n = v.size
    full = n // bucket
    out = np.empty(math.ceil(n / bucket), dtype=np.float64)
    if full:
        out[:full] = np.cumsum(v[: full * bucket].reshape(full, bucket), axis=1)[:, -1]
    if n > full * bucket:
        out[full] = np.cumsum(v[full * bucket:])[-1]
    return out


def bucket_stats(x, bucket, kind):
    """Per-bucket statistics, identical to kernels/buckets.cu ``bucket_stats`` (shared by the
    bucketed quantizers minmax, qsgd and sign).

    Args:
        x: 1-D float32/float64 NumPy array.
        bucket: bucket size.
        kind: "minmax" -> (min, max); "norm" -> (l2 norm, None); "mean-abs" -> (mean |x|, None).
            Norm and mean are float64 sums in index order, then cast to x's dtype.

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
    v = x.astype(np.float64)
    if kind == "norm":
        np.multiply(v, v, out=v)
        return np.sqrt(_sequential_rowsum(v, bucket)).astype(dt), None
    np.abs(v, out=v)
    counts = np.full(math.ceil(n / bucket), float(bucket))
    counts[-1] = n - (counts.size - 1) * bucket
    return (_sequential_rowsum(v, bucket) / counts).astype(dt), None


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
        key: counter-RNG stream key; element i uses uniform(key, i).

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
    codes = fl.astype(np.uint32) + (uniform(key, n) < frac)
    np.minimum(codes, levels, out=codes)
    return codes.astype(np.uint8)


def dequantize(codes, bucket, scaling, s0, s1, levels, out):
    """out = lo + code * delta per element (two correctly rounded ops)."""
    n = out.size
    lo, delta = knobs(scaling, s0, s1, levels)
    np.multiply(codes[:n].astype(out.dtype), _per_element(delta, bucket, n), out=out)
    out += _per_element(lo, bucket, n)
    return out


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
            s0, s1 = bucket_stats(x, op.bucket_size, op.scaling)
            codes = quantize_codes(x, op.bucket_size, op.scaling, s0, s1, op.levels, key)
            return s0, s1, codes, (s0 if s1 is None else np.concatenate([s0, s1]))

        @staticmethod
        def decode(op, codes, s0, s1, out):
            dequantize(codes, op.bucket_size, op.scaling, s0, s1, op.levels, out)

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
        return Payload(self.op, x.size, x.dtype, x.size, {"codes": pack_bits(codes, self.bits), "scales": scales},
                       step=step, bits=self.bits, aux=self.bucket_size)

    def _decompress(self, payload, out):
        check_coded(payload, self.op, self.bits, self.bucket_size, self.op)
        n = payload.size
        codes = unpack_bits(payload["codes"], self.bits, n)
        scales = payload["scales"]
        nb = math.ceil(n / self.bucket_size)
        s0, s1 = (scales[:nb], scales[nb:]) if self.scaling == "minmax" else (scales, None)
        self.path(out).decode(self, codes, s0, s1, out)


OPERATOR = MinMax  # what compress/__init__.py registers
