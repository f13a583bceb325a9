"""Shared GPU helpers of the operators: kernel loading, radix select, compaction, scatter,
bit packing, bucket statistics, dense error feedback and the counter RNG on the device.

Each operator module (topk.py, randk.py, minmax.py, ...) holds its own NumPy path and
its CuPy path side by side; the CuPy paths launch the hand-written kernels of
``kernels/`` through the helpers here. The tests in tests/gpu/ (on a GPU) and
tests/kernels/ (through the CPU execution harness, :mod:`hpctrain.cudasim`) hold every
pair together bit for bit. Small integer bookkeeping (prefix sums of per-block counts)
uses CuPy's own integer ops, which are exact. The toolchain (sources, NVRTC/nvcc,
loading) is :mod:`hpctrain.compress.cuda_build`; its names are re-exported here.
"""

import math

import numpy as np

from ..xp import cupy_or_none
from .cuda_build import (  # noqa: F401  (re-exported)
    KERNEL_FAMILIES,
    compile_options,
    get_function,
    kernel_dir,
    kernel_files,
    nvcc_compile,
    nvrtc_available,
    nvrtc_compile,
)

__all__ = [
    "BLOCK",
    "KERNEL_FAMILIES",
    "kernel_dir",
    "kernel_files",
    "compile_options",
    "nvrtc_available",
    "nvrtc_compile",
    "nvcc_compile",
    "get_function",
    "cupy",
    "suffix",
    "grid",
    "ptr",
    "nbits",
    "radix_select",
    "compact",
    "abs_score",
    "uniform",
    "uniform32",
    "scatter",
    "pack_bits",
    "unpack_bits",
    "bucket_stats",
    "ef_add",
    "ef_add_inplace",
    "ef_residual",
]

BLOCK = 256  # HT_BLOCK in kernels/common.cuh
_NULL = np.uint64(0)


def cupy():
    """The CuPy module (RuntimeError when it is not installed)."""
    cp = cupy_or_none()
    if cp is None:
        raise RuntimeError("CuPy is not installed (pip install 'hpctrain[gpu]')")
    return cp


def suffix(dtype):
    """Kernel name suffix of a float dtype: f32 or f64."""
    dt = np.dtype(dtype)
    if dt == np.float32:
        return "f32"
    if dt == np.float64:
        return "f64"
    raise TypeError(f"GPU kernels take float32 or float64, got {dt}")


def grid(n, block=BLOCK):
    """One thread per element: the grid of ``n`` elements."""
    return (max(1, math.ceil(n / block)),)


def ptr(a):
    """A kernel argument that may be NULL (None)."""
    return _NULL if a is None else a


def nbits(dtype):
    """Bits of a dtype (the width of its scores)."""
    return 8 * np.dtype(dtype).itemsize


# ------------------------------------------------------------------ score selection
def radix_select(family, suf, x, u, n, key, k, width):
    """Score (as int) of the k-th largest score, k 1-based, by 8-bit radix passes of the
    ``{family}_{suf}_hist`` kernel of kernels/{family}.cu (select.cuh)."""
    cp = cupy()
    hist_fn = get_function(family, f"{family}_{suf}_hist")
    hist = cp.empty(256, dtype=cp.uint64)
    blocks = (min(1024, max(1, math.ceil(n / BLOCK))),)
    prefix = mask = 0
    for shift in range(width - 8, -1, -8):
        hist.fill(0)
        hist_fn(blocks, (BLOCK,), (ptr(x), ptr(u), np.uint64(n), np.uint64(key), np.uint64(prefix),
                                   np.uint64(mask), np.int32(shift), hist))
        h = hist.get()
        cum = 0
        b = 255
        while b > 0 and cum + int(h[b]) < k:
            cum += int(h[b])
            b -= 1
        k -= cum
        prefix |= b << shift
        mask |= 0xFF << shift
    return prefix


def compact(family, suf, x, u, n, key, thr, k, dtype, want_values=True, mem_out=None):
    """Keep score > thr and, in index order, ties up to k in total (k None: every tie)."""
    cp = cupy()
    nb = math.ceil(n / BLOCK)
    if n == 0:
        return cp.zeros(0, cp.int64), cp.zeros(0, dtype)
    gt = cp.empty(nb, cp.int64)
    eq = cp.empty(nb, cp.int64)
    get_function(family, f"{family}_{suf}_count")((nb,), (BLOCK,), (ptr(x), ptr(u), np.uint64(n), np.uint64(key),
                                                                     np.uint64(thr), gt, eq))
    need = n if k is None else k - int(gt.sum())
    eq_off = cp.cumsum(eq) - eq
    keep = gt + cp.clip(need - eq_off, 0, eq)
    out_off = cp.cumsum(keep) - keep
    total = int(keep.sum())
    idx = cp.empty(total, cp.int64)
    val = cp.empty(total, dtype) if want_values else None
    get_function(family, f"{family}_{suf}_write")(
        (nb,), (BLOCK,),
        (ptr(x), ptr(u), np.uint64(n), np.uint64(key), np.uint64(thr), np.int64(need), eq_off, out_off, idx,
         ptr(val), ptr(mem_out)),
    )
    return idx, val


def abs_score(value, dtype):
    """The selection score (bits of |value| in ``dtype``) of a threshold value."""
    dt = np.dtype(dtype)
    bits = np.array([value], dtype=dt).view(np.uint32 if dt == np.float32 else np.uint64)[0]
    return int(bits) & ((1 << (8 * dt.itemsize - 1)) - 1)


def _uniforms(kernel, key, n):
    cp = cupy()
    out = cp.empty(n, cp.float64)
    if n:
        get_function("memory", kernel)(grid(n), (BLOCK,), (np.uint64(key), np.uint64(n), out))
    return out


def uniform(key, n):
    """Counter-RNG uniforms on the GPU (twin of rng.uniform(key, n))."""
    return _uniforms("uniform_f64", key, n)


def uniform32(key, n):
    """The quantizers' 32-bit-stream uniforms on the GPU (twin of rng.uniform32(key, n))."""
    return _uniforms("uniform32_f64", key, n)


# ------------------------------------------------------------------ dense helpers
def scatter(idx, val, out, add=False):
    """out[idx] = val (zeroing out first) or out[idx] += val; indices unique."""
    cp = cupy()
    suf = suffix(out.dtype)
    idx = cp.ascontiguousarray(idx, dtype=cp.int64)
    if not add:
        out.fill(0)
    k = idx.size
    if k:
        get_function("scatter", f"scatter_{'add' if add else 'set'}_{suf}")(
            grid(k), (BLOCK,), (idx, cp.ascontiguousarray(val), np.uint64(k), out))
    return out


def pack_bits(codes, bits):
    """GPU twin of pack.pack_bits."""
    cp = cupy()
    n = codes.size
    nout = math.ceil(n * bits / 8)
    out = cp.empty(nout, cp.uint8)
    if nout:
        get_function("pack", "pack_bits")(grid(nout), (BLOCK,), (codes, np.uint64(n), np.int32(bits), out,
                                                                np.uint64(nout)))
    return out


def unpack_bits(packed, bits, n):
    """GPU twin of pack.unpack_bits."""
    cp = cupy()
    out = cp.empty(n, cp.uint8)
    if n:
        get_function("pack", "unpack_bits")(grid(n), (BLOCK,), (packed, np.uint64(n), np.int32(bits), out))
    return out


_KINDS = {"minmax": 0, "norm": 1, "mean-abs": 2}


def bucket_stats(x, bucket, kind):
    """GPU twin of minmax.bucket_stats (kernels/buckets.cu)."""
    cp = cupy()
    n = x.size
    nb = math.ceil(n / bucket)
    s0 = cp.empty(nb, x.dtype)
    s1 = cp.empty(nb, x.dtype) if kind == "minmax" else None
    if nb:
        get_function("buckets", f"bucket_stats_{suffix(x.dtype)}")(
            grid(nb), (BLOCK,), (x, np.uint64(n), np.uint64(bucket), np.int32(_KINDS[kind]), s0, ptr(s1)))
    return s0, s1


def ef_add(g, u):
    """p = g + u (new array), correctly rounded."""
    cp = cupy()
    p = cp.empty_like(g)
    n = g.size
    if n:
        get_function("memory", f"ef_add_{suffix(g.dtype)}")(grid(n), (BLOCK,), (g, u, np.uint64(n), p))
    return p


def ef_add_inplace(g, u):
    """u <- g + u."""
    n = g.size
    if n:
        get_function("memory", f"ef_add_{suffix(g.dtype)}")(grid(n), (BLOCK,), (g, u, np.uint64(n), u))
    return u


def ef_residual(p, q, u):
    """u <- p - q (the new error-feedback memory of a dense operator)."""
    n = p.size
    if n:
        get_function("memory", f"ef_residual_{suffix(p.dtype)}")(grid(n), (BLOCK,), (p, q, np.uint64(n), u))
    return u
