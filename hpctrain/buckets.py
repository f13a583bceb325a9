"""Gradient buckets: layer-aligned slices of the flat gradient buffer, in reverse layer order.

Backward finishes the last layer's gradient first, so the buckets are cut from the end of
the flat buffer towards its start: bucket 0 holds the last layers, the final bucket the
first ones. A bucket never splits a layer (a layer larger than the bucket size is a bucket
of its own), and buckets are views of the one flat buffer, never copies.

Sizes follow PyTorch DDP: the **first** bucket is small (``FIRST_BUCKET_MIB`` = 0.25 MiB),
so the first communication starts after the first few layers' backward instead of waiting
for a whole bucket, and the others hold ``bucket_size`` MiB (default ``DEFAULT_BUCKET_MIB``
= 25 MiB, DDP's ``bucket_cap_mb``), or a quarter of the model when that is smaller.
Larger buckets pay the per-message latency alpha fewer times; smaller ones start
communicating earlier and leave less of it exposed after the last layer's backward. 25 MiB
keeps the per-bucket latency well below the transfer time on 1-100 Gbit/s links and gives
several buckets for models of 100 MiB and more; with a fixed 25 MiB a smaller model would be
one bucket after the first, which completes only when backward ends, so nothing would
overlap: the quarter-of-the-model cap keeps about four buckets there (measured on the torch
CNN of jobs/torch_cnn.py, 0.9 MiB: one big bucket left communication after backward).
"""

from dataclasses import dataclass

from .errors import ConfigError

__all__ = ["Bucket", "make_buckets", "DEFAULT_BUCKET_MIB", "FIRST_BUCKET_MIB"]

#: default ``bucket_size`` in MiB (PyTorch DDP's ``bucket_cap_mb``)
DEFAULT_BUCKET_MIB = 25.0
#: the first (last layers') bucket, in MiB (DDP's first-bucket size)
FIRST_BUCKET_MIB = 0.25
_MIB = 1 << 20


@dataclass(frozen=True)
class Bucket:
    """One bucket: elements ``[start, stop)`` of the flat buffer, made of ``layers``
    (indices into the layer list, in the order backward finishes them)."""

    index: int
    start: int
    stop: int
    layers: tuple

    @property
    def size(self):
        """Number of elements."""
        return self.stop - self.start

    def view(self, flat):
        """The bucket's slice of ``flat`` (a view)."""
        return flat[self.start:self.stop]


def make_buckets(layers, itemsize, bucket_size=None, first_size=FIRST_BUCKET_MIB):
    """Cut the flat buffer into layer-aligned buckets in reverse layer order.

    Args:
        layers: ``(offset, length)`` of every layer's parameters in the flat buffer, in
            forward (layer) order; they must tile the buffer contiguously from 0.
        itemsize: bytes per element (4 for float32, 8 for float64).
        bucket_size: MiB per bucket after the first; None: :data:`DEFAULT_BUCKET_MIB`, or a
            quarter of the model when that is smaller (never below ``first_size``). A value
            given must be > 0 and no larger than the model (a bucket bigger than the model
            is one unbucketed message: ask for that with ``math.inf``).
        first_size: MiB of the first bucket (capped at ``bucket_size``).

    Returns:
        A list of :class:`Bucket`, bucket 0 holding the last layers.

    Raises:
        ConfigError: bucket size <= 0 or larger than the model; layers that do not tile
            the buffer.
    """
    layers = [(int(o), int(n)) for o, n in layers]
    off = 0
    for i, (o, n) in enumerate(layers):
        if o != off or n < 0:
            raise ConfigError(f"layer {i} covers [{o}, {o + n}) but the previous layers end at {off}")
        off += n
    total = off
    if not layers or total == 0:
        raise ConfigError("the model has no parameters to bucket")
    if bucket_size is None:  # 25 MiB; a quarter of the model when that is smaller (>= the first bucket)
        bucket_size = max(min(DEFAULT_BUCKET_MIB, total * itemsize / 4 / _MIB), first_size)
    try:
        bucket_size = float(bucket_size)
    except (TypeError, ValueError):
        raise ConfigError(f"bucket size must be a number of MiB, got {bucket_size!r}") from None
    model_mib = total * itemsize / _MIB
    if not bucket_size > 0:
        raise ConfigError(f"bucket size must be > 0 MiB, got {bucket_size:g}")
    if bucket_size != float("inf") and bucket_size > max(model_mib, FIRST_BUCKET_MIB):
        raise ConfigError(f"bucket size {bucket_size:g} MiB is larger than the model ({model_mib:.4g} MiB); "
                          "use a smaller size, or no bucketing")
    caps = [min(first_size, bucket_size) * _MIB, bucket_size * _MIB]
    buckets, cur, cur_bytes = [], [], 0
    for i in reversed(range(len(layers))):
        nbytes = layers[i][1] * itemsize
        cap = caps[min(len(buckets), 1)]
        if cur and cur_bytes + nbytes > cap:
            buckets.append(cur)
            cur, cur_bytes = [], 0
        cur.append(i)
        cur_bytes += nbytes
    buckets.append(cur)
    out = []
    for b, idx in enumerate(buckets):
        start = layers[idx[-1]][0]
        stop = layers[idx[0]][0] + layers[idx[0]][1]
        out.append(Bucket(b, start, stop, tuple(idx)))
    return out
