"""Gradient compression operators: NumPy references with bit-identical CUDA twins.

Pick an operator with :func:`get_compressor`; every one has the same interface::

    comp = get_compressor("topk", density=0.01)
    payload = comp.compress(x, step=t, rank=r)      # Payload: arrays + exact nbytes
    comp.decompress(payload, out)
    ef = ErrorFeedback(comp); ef.compress(g, memory, step=t, rank=r)

========================  =================================  =======  =====  ==========================
name                      what is sent                       biased   GPU    pick it when
========================  =================================  =======  =====  ==========================
``none``                  the dense vector                   no       yes    baseline
``fp16``                  float16 values (16 bit)            ~no      yes    cheap 2x (fp32) / 4x (fp64)
``topk``                  k = density*d largest |x|: idx+val yes      yes    best accuracy per bit
``approx-topk``           |x| >= sampled threshold           yes      yes    top-k, much faster (paper 001)
``threshold``             |x| >= fixed threshold             yes      yes    known gradient scale
``randk``                 k shared-seed coordinates: values  yes      yes    dense allreduce of k values
``qsgd``                  sign + level of the l2 norm        no       yes    QSGD: unbiased, b in {2,4,8},
                          (b bits) + one norm per bucket                    s = 2^(b-1)-1 levels
``minmax``, ``quantize``  b-bit knobs [min, max] + scales   no       yes    survey eq 3.1, b in {1,2,4,8}
``sign``                  1-bit signs + mean-|x| scales      yes      yes    32x, with error feedback
========================  =================================  =======  =====  ==========================

Biased operators are meant to run under :class:`ErrorFeedback` (memory). See
docs/compress.md for semantics, tie rules and the wire format.
"""

from ..errors import ConfigError
from .base import HEADER_BYTES, Compressor, Payload, SparseCompressor, register
from .fp16 import FP16, NoCompression
from .memory import ErrorFeedback, Momentum
from .qsgd import QSGD
from .quantize import Quantize
from .randomk import RandomK
from .sign import SignScale
from .topk import ApproxTopK, Threshold, TopK

__all__ = [
    "HEADER_BYTES",
    "Payload",
    "Compressor",
    "SparseCompressor",
    "NoCompression",
    "FP16",
    "TopK",
    "ApproxTopK",
    "Threshold",
    "RandomK",
    "Quantize",
    "QSGD",
    "SignScale",
    "ErrorFeedback",
    "Momentum",
    "COMPRESSORS",
    "compressor_names",
    "get_compressor",
    "make_compressor",
]

#: registry name -> class: one line per operator (its class declares wire opcodes, layout,
#: the config fields it takes and its benchmark defaults)
COMPRESSORS = {}
for _cls in (
    NoCompression,
    FP16,
    TopK,
    ApproxTopK,
    Threshold,
    RandomK,
    Quantize,
    QSGD,
    SignScale,
):
    register(_cls)
    for _name in (_cls.name, *_cls.aliases):
        COMPRESSORS[_name] = _cls
del _cls, _name


def compressor_names(canonical=False, unbiased=None):
    """Registry names, sorted.

    Args:
        canonical: leave aliases out (each operator once).
        unbiased: True / False for only the unbiased / biased operators; None for all.
    """
    return sorted(n for n, c in COMPRESSORS.items()
                  if (not canonical or n == c.name) and (unbiased is None or c.biased != unbiased))


def get_compressor(name, **params):
    """Build the compressor registered as ``name`` (see the table in this module).

    Args:
        name: one of :func:`compressor_names`.
        **params: the operator's parameters (density, bits, bucket_size, scaling, seed, ...).

    Returns:
        A :class:`Compressor`.

    Raises:
        ConfigError: unknown name, unknown parameter, or an invalid value.
    """
    cls = COMPRESSORS.get(name)
    if cls is None:
        raise ConfigError(f"unknown compressor {name!r}; choose from {', '.join(compressor_names())}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"compressor {name!r}: {exc}") from None


def make_compressor(cfg, name=None, density=None):
    """The compressor named by ``cfg.compressor`` (or ``name``), built from the config
    fields its class declares in ``config_params`` (density, bits, seed, ...).

    Args:
        cfg: the TrainConfig.
        name: override of ``cfg.compressor``.
        density: override of ``cfg.density``.

    Returns:
        A :class:`Compressor`.
    """
    name = name or cfg.compressor
    cls = COMPRESSORS.get(name)
    params = {p: getattr(cfg, p) for p in (cls.config_params if cls else ())}
    if density is not None and "density" in params:
        params["density"] = density
    return get_compressor(name, **params)
