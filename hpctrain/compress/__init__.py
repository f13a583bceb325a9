"""Gradient compression operators: NumPy references with bit-identical CUDA twins.

Pick an operator with :func:`get_compressor`; every one has the same interface::

    comp = get_compressor("topk", density=0.01)
    payload = comp.compress(x, step=t, rank=r)      # Payload: arrays + exact nbytes
    comp.decompress(payload, out)
    comp.compress(g, step=t, rank=r, memory=u)      # error feedback: u <- (g + u) - sent

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
``minmax``                b-bit knobs [min, max] + scales   no       yes    survey eq 3.1, b in {1,2,4,8}
``sign``                  1-bit signs + mean-|x| scales      yes      yes    32x, with error feedback
========================  =================================  =======  =====  ==========================

Biased operators are meant to run with error feedback (``memory=``). See
docs/compress.md for semantics, tie rules and the wire format.

One module per operator (``none.py``, ``fp16.py``, ``topk.py``, ``approx_topk.py``,
``threshold.py``, ``randk.py``, ``minmax.py``, ``qsgd.py``, ``sign.py``) holds its NumPy
path and its CuPy path; its CUDA kernels are ``kernels/<name>.cu`` and the shared GPU
helpers are :mod:`hpctrain.compress.gpu`. Adding an operator takes its module (and kernel
file) plus one line in :data:`OPERATOR_MODULES` below. Operators declare capabilities
(:data:`~hpctrain.compress.base.CAPABILITIES`); algorithms accept them by capability.
"""

from importlib import import_module

from ..errors import ConfigError
from .approx_topk import ApproxTopK
from .base import CAPABILITIES, HEADER_BYTES, Compressor, DensityOperator, Payload, SparseCompressor, register
from .cuda_build import KERNEL_FAMILIES
from .fp16 import FP16
from .minmax import MinMax
from .none import NoneCompressor
from .qsgd import QSGD
from .randk import RandK
from .sign import Sign
from .threshold import Threshold
from .topk import TopK

__all__ = [
    "is_half_precision",
    "is_lossless",
    "HEADER_BYTES",
    "CAPABILITIES",
    "Payload",
    "Compressor",
    "SparseCompressor",
    "DensityOperator",
    "NoneCompressor",
    "FP16",
    "TopK",
    "ApproxTopK",
    "Threshold",
    "RandK",
    "MinMax",
    "QSGD",
    "Sign",
    "OPERATORS",
    "OPERATOR_MODULES",
    "COMPRESSORS",
    "RENAMED",
    "compressor_names",
    "kernel_families",
    "get_compressor",
    "make_compressor",
]

#: the operators' modules, one line each: ``compress/<module>.py`` holds the operator and
#: names it ``OPERATOR``; its class declares its name, wire opcodes, layout, capabilities,
#: kernel files, the config fields it takes and its benchmark defaults
OPERATOR_MODULES = (
    "none",
    "fp16",
    "topk",
    "approx_topk",
    "threshold",
    "randk",
    "minmax",
    "qsgd",
    "sign",
)
OPERATORS = tuple(import_module(f"{__name__}.{m}").OPERATOR for m in OPERATOR_MODULES)

#: former names -> the operator's one name (refused with a pointer to the new one)
RENAMED = {"quantize": "minmax"}

#: registry name -> class
COMPRESSORS = {}
for _cls in OPERATORS:
    register(_cls)
    COMPRESSORS[_cls.name] = _cls
del _cls


def is_half_precision(name):
    """Whether operator ``name`` sends every coordinate as an IEEE half: the dense 16-bit
    baseline that compression is judged against."""
    return COMPRESSORS.get(name) is FP16


def is_lossless(name):
    """Whether operator ``name`` sends the values unchanged (``none``)."""
    return bool(getattr(COMPRESSORS.get(name), "lossless", False))


def compressor_names(accepted_by=None):
    """Registry names, sorted.

    Args:
        accepted_by: an algorithm class: only the operators it accepts (by capability,
            see :meth:`hpctrain.algorithms.base.Algorithm.refusal`); None for all.
    """
    return sorted(n for n, c in COMPRESSORS.items() if accepted_by is None or accepted_by.refusal(c) is None)


def kernel_families():
    """Every kernel file (``kernels/<family>.cu`` stem) the operators and the shared GPU
    helpers launch, sorted."""
    return sorted(set(KERNEL_FAMILIES).union(*(c.kernels for c in OPERATORS)))


def _class(name):
    cls = COMPRESSORS.get(name)
    if cls is None:
        if name in RENAMED:
            raise ConfigError(f"compressor {name!r} is now called {RENAMED[name]!r}")
        raise ConfigError(f"unknown compressor {name!r}; choose from {', '.join(compressor_names())}")
    return cls


def get_compressor(name, **params):
    """Build the compressor registered as ``name`` (see the table in this module).

    Args:
        name: one of :func:`compressor_names`.
        **params: the operator's parameters (density, bits, bucket_size, scaling, seed, ...).

    Returns:
        A :class:`Compressor`.

    Raises:
        ConfigError: unknown (or former) name, unknown parameter, or an invalid value.
    """
    cls = _class(name)
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
    params = {p: getattr(cfg, p) for p in _class(name).config_params}
    if density is not None and "density" in params:
        params["density"] = density
    return get_compressor(name, **params)
