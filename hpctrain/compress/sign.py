"""Sign + scale (1 bit per coordinate): Q(x) = mean|x| * sign(x) per bucket (biased).

The code is 1 where x < 0 (so +0.0 and -0.0 both decode to +scale); the scale of a
bucket is its mean absolute value (float64 sum in index order / count, cast to the
input dtype), which makes Q the l1-optimal sign compressor used with error feedback
(survey, 1-bit quantization). kernels/quantize.cu holds the CUDA twin.
"""

import math

import numpy as np

from ..errors import ConfigError
from ..xp import get_array_module
from .base import Compressor, Payload, coded_layout
from .pack import pack_bits, unpack_bits
from .quantize import bucket_stats

__all__ = ["SignScale"]


class SignScale(Compressor):
    """1-bit sign compressor with one scale (mean |x|) per bucket.

    Args:
        bucket_size: coordinates per scale.
    """

    name = "sign"
    wire = {"sign": 8}
    biased = True

    @classmethod
    def layout(cls, op, dtype, index_dtype, bits, count, aux):
        """Packed 1-bit signs, then one mean-|x| scale per bucket."""
        return coded_layout(dtype, bits, count, aux)

    def __init__(self, bucket_size=512):
        if int(bucket_size) < 1 or int(bucket_size) != bucket_size:
            raise ConfigError(f"bucket_size must be a positive integer, got {bucket_size!r}")
        self.bucket_size = int(bucket_size)

    def _compress(self, x, step, rank):
        if get_array_module(x) is not np:
            from . import cuda

            scale, codes = cuda.sign_encode(x, self.bucket_size)
        else:
            scale, _ = bucket_stats(x, self.bucket_size, "mean-abs")
            codes = (x < 0).astype(np.uint8)
        return Payload(self.name, x.size, x.dtype, x.size, {"codes": pack_bits(codes, 1), "scales": scale},
                       step=step, bits=1, aux=self.bucket_size)

    def _decompress(self, payload, out):
        if payload.aux != self.bucket_size:
            raise ValueError(f"payload bucket {payload.aux} does not match this compressor's {self.bucket_size}")
        n = payload.size
        codes = unpack_bits(payload["codes"], 1, n)
        scale = payload["scales"]
        if get_array_module(out) is not np:
            from . import cuda

            cuda.sign_decode(codes, self.bucket_size, scale, out)
            return
        if scale.size != math.ceil(n / self.bucket_size):
            raise ValueError(f"sign payload has {scale.size} scales for {n} coordinates")
        s = np.repeat(scale, self.bucket_size)[:n]
        np.copyto(out, np.where(codes.astype(bool), -s, s))
