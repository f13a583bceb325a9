"""sign: sign + scale (1 bit per coordinate): Q(x) = mean|x| * sign(x) per bucket (biased).

The code is 1 where x < 0 (so +0.0 and -0.0 both decode to +scale); the scale of a
bucket is its mean absolute value (float64 sum in the lane order of minmax.bucket_stats / count,
cast to the input dtype), which makes Q the l1-optimal sign compressor used with error feedback
(survey, 1-bit quantization). kernels/sign.cu (and buckets.cu for the scales) is the CUDA twin.
"""

import math

import numpy as np

from ..errors import ConfigError
from .. import jit
from . import gpu
from .base import Compressor, Payload, coded_layout
from .pack import decode_bytes, pack_bits, unpack_bits
from .chunks import pieces
from .minmax import bucket_stats

__all__ = ["Sign"]


class Sign(Compressor):
    """1-bit sign compressor with one scale (mean |x|) per bucket.

    Args:
        bucket_size: coordinates per scale.
    """

    name = "sign"
    wire = {"sign": 8}
    kernels = ("sign",)

    @classmethod
    def layout(cls, op, dtype, index_dtype, bits, count, aux):
        """Packed 1-bit signs, then one mean-|x| scale per bucket."""
        return coded_layout(dtype, bits, count, aux)

    def __init__(self, bucket_size=512):
        if int(bucket_size) < 1 or int(bucket_size) != bucket_size:
            raise ConfigError(f"bucket_size must be a positive integer, got {bucket_size!r}")
        self.bucket_size = int(bucket_size)

    class Host:
        @staticmethod
        def encode(op, x):
            """(mean-|x| scale per bucket, packed codes): code i (x_i < 0) -> bit i % 8 of
            byte i // 8 (pack.py's layout, kernels/pack.cu)."""
            scale, _ = bucket_stats(x, op.bucket_size, "mean-abs", op.scratch)
            if jit.enabled() and x.flags.c_contiguous:
                return scale, jit.sign_pack(x, np.empty(-(-x.size // 8), np.uint8))
            neg = op.scratch("neg", x.size, np.bool_)
            np.less(x, x.dtype.type(0), out=neg)
            return scale, np.packbits(neg, bitorder="little")

        @staticmethod
        def decode(op, packed, scale, out):
            """out = code ? -scale : scale, as (+-1 from a table of the bytes) * scale: exact,
            since (+-1) * s == +-s."""
            n = out.size
            if scale.size != math.ceil(n / op.bucket_size):
                raise ValueError(f"sign payload has {scale.size} scales for {n} coordinates")
            table = np.array([1.0, -1.0], dtype=out.dtype)
            if jit.decode(packed, 1, op.bucket_size, table, scale, None, out):
                return
            decode_bytes(op, packed, 1, table, out)
            for a, b, b0, r, w in pieces(n, op.bucket_size):
                out[a:b].reshape(r, w)[...] *= scale[b0:b0 + r, None]

    class Device:
        @staticmethod
        def encode(op, x):
            """CuPy twin: (mean-|x| scale per bucket, uint8 sign codes)."""
            cp = gpu.cupy()
            n = x.size
            scale, _ = gpu.bucket_stats(x, op.bucket_size, "mean-abs")
            codes = cp.empty(n, cp.uint8)
            if n:
                gpu.get_function("sign", f"sign_encode_{gpu.suffix(x.dtype)}")(gpu.grid(n), (gpu.BLOCK,),
                                                                                (x, np.uint64(n), codes))
            return scale, codes

        @staticmethod
        def decode(op, codes, scale, out):
            """CuPy twin of the decoder: code ? -scale : scale."""
            n = out.size
            if n:
                gpu.get_function("sign", f"sign_decode_{gpu.suffix(out.dtype)}")(
                    gpu.grid(n), (gpu.BLOCK,), (codes, np.uint64(n), np.uint64(op.bucket_size), scale, out))

    def _compress(self, x, step, rank):
        if self.path(x) is self.Host:
            scale, packed = self.Host.encode(self, x)
        else:
            scale, codes = self.Device.encode(self, x)
            packed = pack_bits(codes, 1)
        return Payload(self.name, x.size, x.dtype, x.size, {"codes": packed, "scales": scale},
                       step=step, bits=1, aux=self.bucket_size)

    def _decompress(self, payload, out):
        if payload.aux != self.bucket_size:
            raise ValueError(f"payload bucket {payload.aux} does not match this compressor's {self.bucket_size}")
        if self.path(out) is self.Host:
            self.Host.decode(self, np.asarray(payload["codes"]), payload["scales"], out)
            return
        codes = unpack_bits(payload["codes"], 1, payload.size)
        self.Device.decode(self, codes, payload["scales"], out)


OPERATOR = Sign  # what compress/__init__.py registers
