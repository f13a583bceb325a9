"""QSGD (Alistarh et al., 2017): l2 norm per bucket, s levels including zero, and a sign.

For a bucket v (``bucket_size`` coordinates, the last may be shorter) with norm ||v||_2,
each coordinate is sent as a sign and a level l in {0, 1, ..., s}:

    r_i = |v_i| / ||v||_2 * s,   l_i = floor(r_i) + 1 with probability frac(r_i), else floor(r_i)
    Q(v)_i = sign(v_i) * ||v||_2 * l_i / s

so E[Q(v)] = v (unbiased) and E||Q(v) - v||^2 <= min(d/s^2, sqrt(d)/s) * ||v||^2 with d
the bucket size (Lemma 3.1 of the paper). Bits and levels: a code of b bits is the level
in its low b - 1 bits and the sign (1 = negative; -0.0 counts as +) in the top bit, so
s = 2**(b-1) - 1: b = 2 -> s = 1 (ternary: {-||v||, 0, +||v||}), b = 4 -> s = 7,
b = 8 -> s = 127. b = 1 leaves no room for a level and is refused.

All arithmetic is in the input dtype with correctly rounded operations
(r = (|v_i| / norm) * s, value = norm * (l / s), two roundings each); the norm is the float64
sum of squares in the lane order of minmax.bucket_stats, square-rooted and cast. A
norm of 0, or an r that is NaN (an infinite norm), gives level 0. The uniforms come from
the counter RNG on (seed, step, rank), so the CUDA twin (kernels/qsgd.cu) makes the same
rounding decisions. The wire carries the packed codes and one norm per bucket.

The survey's min/max quantizer (eq 3.1: 2**b uniform knobs between the bucket's min and
max, no zero level, no sign) is :class:`hpctrain.compress.minmax.MinMax` (``minmax``).
"""

import math

import numpy as np

from ..errors import ConfigError
from .. import jit
from . import gpu
from .base import Compressor, Payload, check_coded
from .chunks import pieces
from .pack import check_bits, decode_bytes, pack_codes, unpack_bits, unpack_codes
from .minmax import bucket_stats, stochastic_codes
from .rng import STREAM_QUANTIZE, counter_key, uniform32

__all__ = ["QSGD_BITS", "levels_for_bits", "qsgd_codes", "qsgd_decode", "variance_bound", "QSGD"]

QSGD_BITS = (2, 4, 8)


def levels_for_bits(bits):
    """s = 2**(bits-1) - 1: the number of non-zero levels a b-bit code (sign + level) holds."""
    return (1 << (int(bits) - 1)) - 1


def variance_bound(d, s):
    """min(d/s^2, sqrt(d)/s): the bound on E||Q(v)-v||^2 / ||v||^2 for a bucket of d coordinates."""
    return min(d / s**2, math.sqrt(d) / s)


def _per_element(v, bucket, n):
    return np.repeat(v, bucket)[:n]


def qsgd_codes(x, bucket, norms, bits, key):
    """QSGD codes (uint8: level | sign << (bits-1)); NumPy twin of ``qsgd_encode_f32/f64``.

    Args:
        x: 1-D float32/float64 array.
        bucket: bucket size.
        norms: per-bucket l2 norms in x's dtype (minmax.bucket_stats(x, bucket, "norm")).
        bits: b in {2, 4, 8}.
        key: counter-RNG stream key; element i uses uniform32(key, i).
    """
    n = x.size
    dt = x.dtype
    s = levels_for_bits(bits)
    nrm = _per_element(norms, bucket, n)
    r = np.zeros(n, dtype=dt)
    np.divide(np.abs(x), nrm, out=r, where=nrm > 0)
    r *= dt.type(s)
    r[np.isnan(r)] = 0
    np.clip(r, dt.type(0), dt.type(s), out=r)
    fl = np.floor(r)
    frac = r - fl
    level = fl.astype(np.uint32) + (uniform32(key, n) < frac)
    np.minimum(level, s, out=level)
    sign = (x < 0).astype(np.uint32) << (bits - 1)
    return (level | sign).astype(np.uint8)


def qsgd_decode(codes, bucket, norms, bits, out):
    """out_i = +-(norm * (level / s)); NumPy twin of ``qsgd_decode_f32/f64``."""
    n = out.size
    dt = out.dtype
    s = levels_for_bits(bits)
    c = codes[:n].astype(np.uint32)
    level = (c & np.uint32(s)).astype(dt)
    np.multiply(_per_element(norms, bucket, n), level / dt.type(s), out=out)
    neg = (c >> np.uint32(bits - 1)) & np.uint32(1)
    np.negative(out, out=out, where=neg.astype(bool))
    return out


class QSGD(Compressor):
    """QSGD: unbiased stochastic quantization to s levels of the bucket's l2 norm, with sign.

    Args:
        bits: b in {2, 4, 8} bits per coordinate (s = 2**(b-1) - 1 levels besides zero).
        bucket_size: coordinates per bucket (d in the variance bound).
        seed: RNG seed (the draws also depend on step and rank).
    """

    name = "qsgd"
    wire = {"qsgd": 9}
    kernels = ("qsgd",)
    unbiased = True
    config_params = ("bits", "seed")
    bench_params = {"bits": 8}

    @classmethod
    def layout(cls, op, dtype, index_dtype, bits, count, aux):
        """Packed b-bit codes (sign + level), then one l2 norm per bucket."""
        nb = math.ceil(count / aux) if aux else 0
        return [("codes", np.dtype(np.uint8), math.ceil(count * bits / 8)), ("norms", dtype, nb)]

    def __init__(self, bits=8, bucket_size=512, seed=0):
        b = check_bits(bits)
        if b not in QSGD_BITS:
            raise ConfigError(f"qsgd needs bits in {{2, 4, 8}} (a sign bit plus a level), got {bits!r}; "
                              "for 1 bit use sign, or minmax (the survey's min/max quantizer)")
        if int(bucket_size) < 1 or int(bucket_size) != bucket_size:
            raise ConfigError(f"bucket_size must be a positive integer, got {bucket_size!r}")
        self.bits = b
        self.bucket_size = int(bucket_size)
        self.seed = int(seed)
        self.levels = levels_for_bits(b)

    @property
    def op(self):
        """Wire operator name."""
        return "qsgd"

    class Host:
        @staticmethod
        def encode(op, x, key):
            norms, _ = bucket_stats(x, op.bucket_size, "norm", op.scratch)
            with np.errstate(over="ignore", invalid="ignore"):
                codes = stochastic_codes(op, x, key, None, np.where(norms > 0, norms, np.inf), op.levels,
                                         scaled=op.levels, sign_shift=op.bits - 1,
                                         finite=bool(np.isfinite(norms).all()))
            return norms, codes

        @staticmethod
        def decode(op, packed, norms, out):
            """From the packed codes: norm * (+-level / s) through a byte table (exact for a
            finite norm: norm * (+-q) == +-(norm * q)); the reference where a norm is not
            finite (inf * 0 = NaN, whose sign the reference fixes by negating)."""
            if not np.all(np.isfinite(norms)):
                qsgd_decode(unpack_bits(packed, op.bits, out.size), op.bucket_size, norms, op.bits, out)
                return
            c = np.arange(1 << op.bits, dtype=np.uint32)
            table = (c & np.uint32(op.levels)).astype(out.dtype) / out.dtype.type(op.levels)
            np.negative(table, out=table, where=(c >> np.uint32(op.bits - 1)).astype(bool))
            if jit.decode(packed, op.bits, op.bucket_size, table, norms, None, out):
                return
            decode_bytes(op, packed, op.bits, table, out)
            for a, b, b0, r, w in pieces(out.size, op.bucket_size):
                out[a:b].reshape(r, w)[...] *= norms[b0:b0 + r, None]

    class Device:
        @staticmethod
        def encode(op, x, key):
            """CuPy twin: (per-bucket l2 norms, uint8 codes level | sign << (bits-1))."""
            cp = gpu.cupy()
            n = x.size
            norms, _ = gpu.bucket_stats(x, op.bucket_size, "norm")
            codes = cp.empty(n, cp.uint8)
            if n:
                gpu.get_function("qsgd", f"qsgd_encode_{gpu.suffix(x.dtype)}")(
                    gpu.grid(n), (gpu.BLOCK,), (x, np.uint64(n), np.uint64(op.bucket_size), norms, np.int32(op.bits),
                                                np.uint64(key), codes))
            return norms, codes

        @staticmethod
        def decode(op, codes, norms, out):
            """CuPy twin: out = +-(norm * (level / s))."""
            cp = gpu.cupy()
            n = out.size
            if n:
                gpu.get_function("qsgd", f"qsgd_decode_{gpu.suffix(out.dtype)}")(
                    gpu.grid(n), (gpu.BLOCK,), (codes, np.uint64(n), np.uint64(op.bucket_size),
                                                cp.ascontiguousarray(norms), np.int32(op.bits), out))

    def _compress(self, x, step, rank):
        key = counter_key(self.seed, step, rank, STREAM_QUANTIZE)
        norms, codes = self.path(x).encode(self, x, key)
        return Payload(self.op, x.size, x.dtype, x.size, {"codes": pack_codes(codes, self.bits), "norms": norms},
                       step=step, bits=self.bits, aux=self.bucket_size)

    def _decompress(self, payload, out):
        check_coded(payload, self.op, self.bits, self.bucket_size, "qsgd")
        n = payload.size
        norms = payload["norms"]
        if math.ceil(n / self.bucket_size) != norms.size:
            raise ValueError(f"payload has {norms.size} norms for {n} coordinates in buckets of {self.bucket_size}")
        if self.path(out) is self.Host:
            self.Host.decode(self, np.asarray(payload["codes"]), norms, out)
        else:
            self.Device.decode(self, unpack_codes(self, payload["codes"], self.bits, n, out), norms, out)


OPERATOR = QSGD  # what compress/__init__.py registers
