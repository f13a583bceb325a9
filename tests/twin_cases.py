"""One table of cases for the GPU twins, shared by tests/gpu (CuPy on a real GPU) and
tests/kernels (the CPU execution harness, hpctrain.cudasim).

Every check compares a NumPy reference with the twin that launches kernels/*.cu, bit
for bit: same indices, codes, scales, values, header and wire bytes.
"""

import numpy as np

from hpctrain.compress import COMPRESSORS, get_compressor
from hpctrain.compress.fp16 import to_half
from hpctrain.compress.randk import randk_keys
from hpctrain.compress.rng import counter_key, hash_u64, uniform, uniform32

BLOCK = 256
# sizes: empty, one, warp edges, block edges, odd sizes, 10^5, 10^6 + 3
SIZES = [0, 1, 2, 31, 32, 33, BLOCK - 1, BLOCK, BLOCK + 1, 1000, 4097, 65537, 100_000, 1_000_003]
SMALL = [d for d in SIZES if d <= 65537]
LARGE = [d for d in SIZES if d > 65537]
BIG = 10**8  # GPU only
SEEDS = [0, 1, 2]
# value distributions: heavy-tailed normal, integer ties, all equal, finite extremes
DISTS = ["normal", "ties", "equal", "extremes"]
OPS = [
    ("none", {}), ("fp16", {}), ("topk", {"density": 0.01}), ("topk", {"density": 0.5}),
    ("approx-topk", {"density": 0.01}), ("approx-topk", {"density": 0.001, "min_sample": 64}),
    ("threshold", {"threshold": 1.0}), ("randk", {"density": 0.01, "seed": 3}), ("randk", {"density": 0.5}),
    ("minmax", {"bits": 1}), ("minmax", {"bits": 2, "scaling": "norm"}), ("minmax", {"bits": 4, "bucket_size": 100}),
    ("minmax", {"bits": 8}), ("qsgd", {"bits": 2}), ("qsgd", {"bits": 4, "bucket_size": 100}), ("qsgd", {"bits": 8}),
    ("sign", {}), ("sign", {"bucket_size": 1000}),
]
# an operator registered later is covered at its benchmark parameters without an edit here
# (a layer-wise one needs its layers, so its own tests drive it)
OPS += [(name, dict(cls.bench_params)) for name, cls in sorted(COMPRESSORS.items())
        if name not in {op[0] for op in OPS} and not cls.layerwise]
# operators whose kernels use shared memory, atomics, barriers or warp votes
SELECTION_OPS = [op for op in OPS if op[0] in ("topk", "approx-topk", "threshold", "randk")]


def op_id(v):
    return v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()) or "-"


def same(cp, a, b):
    """Same dtype, shape and bytes (b may be a device array)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(cp.asnumpy(b))
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def data(d, dtype, seed=0, dist="normal", ties=False):
    """Test vector of length d (ties=True is dist='ties')."""
    rng = np.random.default_rng(seed)
    dist = "ties" if ties else dist
    if dist == "ties":
        return rng.integers(-4, 5, d).astype(dtype)
    if dist == "equal":
        return np.full(d, 0.75 if seed % 2 else -1.5, dtype=dtype)
    if dist == "extremes":
        fi = np.finfo(dtype)
        # finite values only (sums of squares may overflow to inf in the bucket norm;
        # the NumPy reference and the kernel must agree on that too)
        pool = np.array([fi.max, -fi.max, fi.tiny, -fi.tiny, fi.smallest_subnormal, 0.0, -0.0, 1.0, -1.0,
                         fi.eps, 65504.0, 6e-8], dtype=dtype)
        return pool[rng.integers(0, pool.size, d)]
    return (rng.standard_normal(d) * np.exp(rng.standard_normal(d))).astype(dtype)


def check_op(cp, name, params, x, step=5, rank=1, memory=False):
    """Compress (optionally with error feedback) and decompress on both sides; assert
    bit-identical payloads, memories, outputs and wire bytes."""
    c_cpu, c_gpu = get_compressor(name, **params), get_compressor(name, **params)
    xg = cp.asarray(x)
    with np.errstate(over="ignore", invalid="ignore"):
        if memory:
            u = data(x.size, x.dtype, seed=9)
            ug = cp.asarray(u)
            p_cpu = c_cpu.compress(x.copy(), step=step, rank=rank, memory=u)
            p_gpu = c_gpu.compress(xg, step=step, rank=rank, memory=ug)
            assert same(cp, u, ug), f"{name} memory differs"
        else:
            p_cpu = c_cpu.compress(x, step=step, rank=rank)
            p_gpu = c_gpu.compress(xg, step=step, rank=rank)
        assert (p_cpu.op, p_cpu.count, p_cpu.nbytes) == (p_gpu.op, p_gpu.count, p_gpu.nbytes)
        assert list(p_cpu.arrays) == list(p_gpu.arrays)
        for k in p_cpu.arrays:
            assert same(cp, p_cpu[k], p_gpu[k]), f"{name} {params} array {k!r} differs at d={x.size}"
        out_c, out_g = np.empty_like(x), cp.empty(x.size, x.dtype)
        c_cpu.decompress(p_cpu, out_c)
        c_gpu.decompress(p_gpu, out_g)
    assert same(cp, out_c, out_g), f"{name} decompress differs"
    if getattr(c_cpu, "last_info", None) is not None and name == "approx-topk":
        assert c_cpu.last_info == c_gpu.last_info
    assert same(cp, p_cpu.to_bytes(), p_gpu.to_bytes())


def check_rng(cp, gpu, n):
    key = counter_key(1, 2, 3, 4)
    assert same(cp, hash_u64(key, 0, n), randk_keys(key, n))
    assert same(cp, uniform(key, n), gpu.uniform(key, n))
    assert same(cp, uniform32(key, n), gpu.uniform32(key, n))


def check_pack(cp, gpu, bits, n):
    from hpctrain.compress.pack import pack_bits, unpack_bits

    codes = np.random.default_rng(n).integers(0, 2**bits, n).astype(np.uint8)
    packed = pack_bits(codes, bits)
    assert same(cp, packed, gpu.pack_bits(cp.asarray(codes), bits))
    assert same(cp, unpack_bits(packed, bits, n), gpu.unpack_bits(cp.asarray(packed), bits, n))


def check_fp16_special(cp, gpu):
    x = np.array([0.0, -0.0, 65504, 65519.99, 65520, 1e9, -1e9, 2**-24, 2**-25, 3 * 2**-26, 6e-8, np.inf, -np.inf])
    for dtype in (np.float32, np.float64):
        xs = x.astype(dtype)
        with np.errstate(over="ignore"):
            assert same(cp, xs.astype(np.float16), to_half(cp.asarray(xs)))


def check_scatter_add(cp, d=100_000, dtype=np.float64):
    comp = get_compressor("topk", density=0.05)
    x = data(d, dtype)
    p = comp.compress(x)
    acc_c = data(d, dtype, seed=3)
    acc_g = cp.asarray(acc_c)
    comp.decompress_add(p, acc_c)
    comp.decompress_add(comp.compress(cp.asarray(x)), acc_g)
    assert same(cp, acc_c, acc_g)
