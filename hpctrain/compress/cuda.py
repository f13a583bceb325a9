"""GPU twins: CuPy functions that launch the hand-written kernels of ``kernels/``.

Every function here is the CuPy twin of a NumPy reference in this package; the tests in
tests/gpu/ (on a GPU) and tests/kernels/ (through the CPU execution harness,
:mod:`hpctrain.cudasim`) hold each pair together bit for bit. Small integer bookkeeping
(prefix sums of per-block counts) uses CuPy's own integer ops, which are exact. The
toolchain (sources, NVRTC/nvcc, loading) is :mod:`hpctrain.compress.cuda_build`; its
names are re-exported here.
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
    "topk_select",
    "approx_topk_select",
    "threshold_select",
    "randk_select",
    "randk_keys",
    "uniform",
    "scatter",
    "pack_bits",
    "unpack_bits",
    "quantize",
    "dequantize",
    "qsgd_encode",
    "qsgd_decode",
    "sign_encode",
    "sign_decode",
    "to_half",
    "from_half",
    "ef_add",
    "ef_residual",
]

BLOCK = 256  # HT_BLOCK in kernels/common.cuh
_NULL = np.uint64(0)


def _cupy():
    cp = cupy_or_none()
    if cp is None:
        raise RuntimeError("CuPy is not installed (pip install 'hpctrain[gpu]')")
    return cp


def _suffix(dtype):
    dt = np.dtype(dtype)
    if dt == np.float32:
        return "f32"
    if dt == np.float64:
        return "f64"
    raise TypeError(f"GPU kernels take float32 or float64, got {dt}")


def _grid(n, block=BLOCK):
    return (max(1, math.ceil(n / block)),)


def _ptr(a):
    return _NULL if a is None else a


# ------------------------------------------------------------------ score selection
def _radix_select(family, suf, x, u, n, key, k, nbits):
    """Score (as int) of the k-th largest score, k 1-based, by 8-bit radix passes."""
    cp = _cupy()
    hist_fn = get_function(family, f"{family if family != 'randomk' else 'randk'}_{suf}_hist")
    hist = cp.empty(256, dtype=cp.uint64)
    grid = (min(1024, max(1, math.ceil(n / BLOCK))),)
    prefix = mask = 0
    for shift in range(nbits - 8, -1, -8):
        hist.fill(0)
        hist_fn(grid, (BLOCK,), (_ptr(x), _ptr(u), np.uint64(n), np.uint64(key), np.uint64(prefix),
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


def _compact(family, suf, x, u, n, key, thr, k, dtype, want_values=True, mem_out=None):
    """Keep score > thr and, in index order, ties up to k in total (k None: every tie)."""
    cp = _cupy()
    name = family if family != "randomk" else "randk"
    nb = math.ceil(n / BLOCK)
    if n == 0:
        return cp.zeros(0, cp.int64), cp.zeros(0, dtype)
    gt = cp.empty(nb, cp.int64)
    eq = cp.empty(nb, cp.int64)
    get_function(family, f"{name}_{suf}_count")((nb,), (BLOCK,), (_ptr(x), _ptr(u), np.uint64(n), np.uint64(key),
                                                                   np.uint64(thr), gt, eq))
    need = n if k is None else k - int(gt.sum())
    eq_off = cp.cumsum(eq) - eq
    keep = gt + cp.clip(need - eq_off, 0, eq)
    out_off = cp.cumsum(keep) - keep
    total = int(keep.sum())
    idx = cp.empty(total, cp.int64)
    val = cp.empty(total, dtype) if want_values else None
    get_function(family, f"{name}_{suf}_write")(
        (nb,), (BLOCK,),
        (_ptr(x), _ptr(u), np.uint64(n), np.uint64(key), np.uint64(thr), np.int64(need), eq_off, out_off, idx,
         _ptr(val), _ptr(mem_out)),
    )
    return idx, val


def _nbits(dtype):
    return 8 * np.dtype(dtype).itemsize


def topk_select(x, u, k):
    """GPU twin of TopK: exact top-k of |x + u| (ties to the lower index); fused memory update.

    Returns:
        (indices int64, values) CuPy arrays; ``u`` (if given) holds the new memory.
    """
    suf = _suffix(x.dtype)
    n = x.size
    if k == 0:
        if u is not None:
            ef_add_inplace(x, u)
        return _cupy().zeros(0, np.int64), x[:0].copy()
    thr = _radix_select("topk", suf, x, u, n, 0, k, _nbits(x.dtype))
    return _compact("topk", suf, x, u, n, 0, thr, k, x.dtype, mem_out=u)


def _abs_score(value, dtype):
    dt = np.dtype(dtype)
    bits = np.array([value], dtype=dt).view(np.uint32 if dt == np.float32 else np.uint64)[0]
    return int(bits) & ((1 << (8 * dt.itemsize - 1)) - 1)


def approx_topk_select(comp, x, u, step, rank):
    """GPU twin of ApproxTopK._select (same sample, same refinements, same fallback).

    Returns:
        (indices int64, values).
    """
    cp = _cupy()
    suf = _suffix(x.dtype)
    d = x.size
    if d == 0:
        comp.last_info = {"count": 0, "k": 0, "refinements": 0, "fallback": False}
        return cp.zeros(0, cp.int64), x[:0].copy()
    plan = comp.plan(d, step, rank)
    k, _, m, key, _ = plan
    sample = cp.empty(m, x.dtype)
    get_function("topk", f"topk_sample_{suf}")(_grid(m), (BLOCK,), (x, _ptr(u), np.uint64(d), np.uint64(key),
                                                                     np.uint64(m), sample))
    nbits = _nbits(x.dtype)
    nb = math.ceil(d / BLOCK)
    gt = cp.empty(nb, cp.int64)
    eq = cp.empty(nb, cp.int64)
    count_kernel = get_function("topk", f"topk_{suf}_count")

    def count(thr):
        count_kernel((nb,), (BLOCK,), (x, _ptr(u), np.uint64(d), np.uint64(0), np.uint64(thr), gt, eq))
        return int(gt.sum()) + int(eq.sum())

    def as_float(thr):  # the threshold's bits back as a value of x's dtype
        return float(np.array([thr], dtype=np.uint32 if nbits == 32 else np.uint64).view(x.dtype)[0])

    thr = comp.refine(plan, lambda kk: _radix_select("topk", suf, sample, None, m, 0, kk, nbits), count, as_float)
    if thr is None:
        return topk_select(x, u, k)
    return _compact("topk", suf, x, u, d, 0, thr, None, x.dtype, mem_out=u)


def threshold_select(x, u, thr):
    """GPU twin of Threshold: every |x + u| >= thr (thr already in x's dtype).

    Returns:
        (indices int64, values).
    """
    return _compact("topk", _suffix(x.dtype), x, u, x.size, 0, _abs_score(thr, x.dtype), None, x.dtype, mem_out=u)


def randk_select(x, u, key, d, k, dtype=None):
    """GPU twin of random-k: the k smallest keys hash(key, i), ties to the lower index.

    Args:
        x: values (None: indices only).
        u: memory (updated in place) or None.
        key: counter key of (seed, step).
        d, k: length and count.
        dtype: dtype when x is None.

    Returns:
        (indices int64, values or None).
    """
    cp = _cupy()
    dt = np.dtype(dtype if x is None else x.dtype)
    suf = _suffix(dt)
    if k == 0 or d == 0:
        if u is not None:
            ef_add_inplace(x, u)
        return cp.zeros(0, cp.int64), (None if x is None else x[:0].copy())
    thr = _radix_select("randomk", suf, x, u, d, key, k, 64)
    return _compact("randomk", suf, x, u, d, key, thr, k, dt, want_values=x is not None, mem_out=u)


def randk_keys(key, n):
    """hash(key, i) for i < n on the GPU (twin of rng.hash_u64(key, 0, n))."""
    cp = _cupy()
    out = cp.empty(n, cp.uint64)
    if n:
        get_function("randomk", "randk_keys")(_grid(n), (BLOCK,), (np.uint64(key), np.uint64(n), out))
    return out


def uniform(key, n):
    """Counter-RNG uniforms on the GPU (twin of rng.uniform(key, n))."""
    cp = _cupy()
    out = cp.empty(n, cp.float64)
    if n:
        get_function("memory", "uniform_f64")(_grid(n), (BLOCK,), (np.uint64(key), np.uint64(n), out))
    return out


# ------------------------------------------------------------------ dense helpers
def scatter(idx, val, out, add=False):
    """out[idx] = val (zeroing out first) or out[idx] += val; indices unique."""
    cp = _cupy()
    suf = _suffix(out.dtype)
    idx = cp.ascontiguousarray(idx, dtype=cp.int64)
    if not add:
        out.fill(0)
    k = idx.size
    if k:
        get_function("scatter", f"scatter_{'add' if add else 'set'}_{suf}")(
            _grid(k), (BLOCK,), (idx, cp.ascontiguousarray(val), np.uint64(k), out))
    return out


def pack_bits(codes, bits):
    """GPU twin of pack.pack_bits."""
    cp = _cupy()
    n = codes.size
    nout = math.ceil(n * bits / 8)
    out = cp.empty(nout, cp.uint8)
    if nout:
        get_function("pack", "pack_bits")(_grid(nout), (BLOCK,), (codes, np.uint64(n), np.int32(bits), out,
                                                                  np.uint64(nout)))
    return out


def unpack_bits(packed, bits, n):
    """GPU twin of pack.unpack_bits."""
    cp = _cupy()
    out = cp.empty(n, cp.uint8)
    if n:
        get_function("pack", "unpack_bits")(_grid(n), (BLOCK,), (packed, np.uint64(n), np.int32(bits), out))
    return out


_KINDS = {"minmax": 0, "norm": 1, "mean-abs": 2}
_SCALING = {"minmax": 0, "norm": 1}


def bucket_stats(x, bucket, kind):
    """GPU twin of quantize.bucket_stats."""
    cp = _cupy()
    n = x.size
    nb = math.ceil(n / bucket)
    s0 = cp.empty(nb, x.dtype)
    s1 = cp.empty(nb, x.dtype) if kind == "minmax" else None
    if nb:
        get_function("quantize", f"bucket_stats_{_suffix(x.dtype)}")(
            _grid(nb), (BLOCK,), (x, np.uint64(n), np.uint64(bucket), np.int32(_KINDS[kind]), s0, _ptr(s1)))
    return s0, s1


def quantize(x, bucket, scaling, levels, key):
    """GPU twin of quantize.bucket_stats + quantize_codes.

    Returns:
        (s0, s1 or None, uint8 codes).
    """
    cp = _cupy()
    n = x.size
    s0, s1 = bucket_stats(x, bucket, scaling)
    codes = cp.empty(n, cp.uint8)
    if n:
        get_function("quantize", f"quantize_{_suffix(x.dtype)}")(
            _grid(n), (BLOCK,), (x, np.uint64(n), np.uint64(bucket), np.int32(_SCALING[scaling]), s0,
                                 s0 if s1 is None else s1, np.uint32(levels), np.uint64(key), codes))
    return s0, s1, codes


def dequantize(codes, bucket, scaling, s0, s1, levels, out):
    """GPU twin of quantize.dequantize."""
    cp = _cupy()
    n = out.size
    if n:
        get_function("quantize", f"dequantize_{_suffix(out.dtype)}")(
            _grid(n), (BLOCK,), (codes, np.uint64(n), np.uint64(bucket), np.int32(_SCALING[scaling]),
                                 cp.ascontiguousarray(s0), cp.ascontiguousarray(s0 if s1 is None else s1),
                                 np.uint32(levels), out))
    return out


def qsgd_encode(x, bucket, bits, key):
    """GPU twin of QSGD's encoder: (per-bucket l2 norms, uint8 codes level | sign << (bits-1))."""
    cp = _cupy()
    n = x.size
    norms, _ = bucket_stats(x, bucket, "norm")
    codes = cp.empty(n, cp.uint8)
    if n:
        get_function("qsgd", f"qsgd_encode_{_suffix(x.dtype)}")(
            _grid(n), (BLOCK,), (x, np.uint64(n), np.uint64(bucket), norms, np.int32(bits), np.uint64(key), codes))
    return norms, codes


def qsgd_decode(codes, bucket, norms, bits, out):
    """GPU twin of QSGD's decoder: out = +-(norm * (level / s))."""
    cp = _cupy()
    n = out.size
    if n:
        get_function("qsgd", f"qsgd_decode_{_suffix(out.dtype)}")(
            _grid(n), (BLOCK,), (codes, np.uint64(n), np.uint64(bucket), cp.ascontiguousarray(norms),
                                 np.int32(bits), out))
    return out


def sign_encode(x, bucket):
    """GPU twin of SignScale's encoder: (mean-|x| scale per bucket, uint8 sign codes)."""
    cp = _cupy()
    n = x.size
    scale, _ = bucket_stats(x, bucket, "mean-abs")
    codes = cp.empty(n, cp.uint8)
    if n:
        get_function("quantize", f"sign_codes_{_suffix(x.dtype)}")(_grid(n), (BLOCK,), (x, np.uint64(n), codes))
    return scale, codes


def sign_decode(codes, bucket, scale, out):
    """GPU twin of SignScale's decoder."""
    n = out.size
    if n:
        get_function("quantize", f"sign_decode_{_suffix(out.dtype)}")(
            _grid(n), (BLOCK,), (codes, np.uint64(n), np.uint64(bucket), scale, out))
    return out


def to_half(x):
    """GPU twin of x.astype(float16) (software round-to-nearest-even)."""
    cp = _cupy()
    n = x.size
    out = cp.empty(n, cp.uint16)
    if n:
        get_function("fp16", f"to_half_{_suffix(x.dtype)}")(_grid(n), (BLOCK,), (x, np.uint64(n), out))
    return out.view(cp.float16)


def from_half(h, out):
    """GPU twin of out[...] = h (exact widening of float16)."""
    n = out.size
    if n:
        get_function("fp16", f"from_half_{_suffix(out.dtype)}")(_grid(n), (BLOCK,), (h.view(np.uint16), np.uint64(n),
                                                                                     out))
    return out


def ef_add(g, u):
    """p = g + u (new array), correctly rounded."""
    cp = _cupy()
    p = cp.empty_like(g)
    n = g.size
    if n:
        get_function("memory", f"ef_add_{_suffix(g.dtype)}")(_grid(n), (BLOCK,), (g, u, np.uint64(n), p))
    return p


def ef_add_inplace(g, u):
    """u <- g + u."""
    n = g.size
    if n:
        get_function("memory", f"ef_add_{_suffix(g.dtype)}")(_grid(n), (BLOCK,), (g, u, np.uint64(n), u))
    return u


def ef_residual(p, q, u):
    """u <- p - q (the new error-feedback memory of a dense operator)."""
    n = p.size
    if n:
        get_function("memory", f"ef_residual_{_suffix(p.dtype)}")(_grid(n), (BLOCK,), (p, q, np.uint64(n), u))
    return u
