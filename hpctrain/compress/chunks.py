"""Cache-sized pieces of a bucketed vector, for the NumPy paths of the quantizers.

The quantizers (minmax, qsgd, sign) run their element-wise passes piece by piece: a
piece is a run of whole buckets of about :data:`CHUNK` elements (or the last, partial
bucket), viewed as a (rows, width) array so that each bucket's scale broadcasts over its
row. The intermediate arrays of a piece live in scratch owned by the operator
(:meth:`hpctrain.compress.base.Compressor.scratch`), so a call allocates nothing of the
vector's size and every pass after the first reads from cache.
"""

import math

import numpy as np

__all__ = ["CHUNK", "chunk_len", "pieces", "new_buffer"]

#: target elements per piece (float64 scratch of 256 KiB: in L2)
CHUNK = 1 << 15


def chunk_len(bucket, n):
    """Elements per full piece: a multiple of ``bucket`` and of 8, at most ``n`` rounded up."""
    per = bucket * 8 // math.gcd(bucket, 8)
    return min(per * max(1, CHUNK // per), max(n, 1))


def pieces(n, bucket):
    """(start, stop, first bucket, rows, width) of each piece of a length-n vector, in order:
    runs of whole buckets of width ``bucket``, then the partial last bucket (1 row)."""
    full = n // bucket
    per = max(1, chunk_len(bucket, n) // bucket)
    b = 0
    while b < full:
        r = min(per, full - b)
        yield b * bucket, (b + r) * bucket, b, r, bucket
        b += r
    if n > full * bucket:
        yield full * bucket, n, full, 1, n - full * bucket


def new_buffer(name, n, dtype):
    """The scratch provider of callers without an operator: a new array each time."""
    return np.empty(n, dtype)
