"""Every CUDA kernel against its NumPy twin, bit for bit (same indices, codes and floats).

Runs only where CuPy sees a GPU (marker ``gpu``); elsewhere each test is skipped with the
reason. Sizes cover 0, 1, block-size edges, non-multiples of the block and 10^8.
Run: ``python -m pytest tests/gpu -m gpu -q`` (see docs/gpu.md).
"""

import numpy as np
import pytest

from hpctrain.compress import ErrorFeedback, get_compressor
from hpctrain.compress.rng import counter_key, hash_u64, uniform
from hpctrain.xp import cupy_or_none, gpu_available

pytestmark = pytest.mark.gpu

_OK, _WHY = gpu_available()
if not _OK:
    pytest.skip(f"GPU tests need CuPy and a CUDA GPU: {_WHY}", allow_module_level=True)

cp = cupy_or_none()
from hpctrain.compress import cuda  # noqa: E402

SIZES = [0, 1, 2, 255, 256, 257, 1000, 4097, 65537, 1_000_003]
BIG = 10**8
OPS = [
    ("none", {}), ("fp16", {}), ("topk", {"density": 0.01}), ("topk", {"density": 0.5}),
    ("approx-topk", {"density": 0.01}), ("approx-topk", {"density": 0.001, "min_sample": 64}),
    ("threshold", {"threshold": 1.0}), ("randk", {"density": 0.01, "seed": 3}),
    ("qsgd", {"bits": 1}), ("qsgd", {"bits": 2, "scaling": "norm"}), ("qsgd", {"bits": 4, "bucket_size": 100}),
    ("qsgd", {"bits": 8}), ("sign", {}), ("sign", {"bucket_size": 1000}),
]


def same(a, b):
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(cp.asnumpy(b))
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def data(d, dtype, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(-4, 5, d).astype(dtype)
    return (rng.standard_normal(d) * np.exp(rng.standard_normal(d))).astype(dtype)


def check_op(name, params, x, step=5, rank=1, memory=False):
    c_cpu, c_gpu = get_compressor(name, **params), get_compressor(name, **params)
    xg = cp.asarray(x)
    if memory:
        u = data(x.size, x.dtype, seed=9)
        ug = cp.asarray(u)
        p_cpu = ErrorFeedback(c_cpu).compress(x.copy(), u, step=step, rank=rank)
        p_gpu = ErrorFeedback(c_gpu).compress(xg, ug, step=step, rank=rank)
        assert same(u, ug), f"{name} memory differs"
    else:
        p_cpu = c_cpu.compress(x, step=step, rank=rank)
        p_gpu = c_gpu.compress(xg, step=step, rank=rank)
    assert (p_cpu.op, p_cpu.count, p_cpu.nbytes) == (p_gpu.op, p_gpu.count, p_gpu.nbytes)
    assert list(p_cpu.arrays) == list(p_gpu.arrays)
    for k in p_cpu.arrays:
        assert same(p_cpu[k], p_gpu[k]), f"{name} {params} array {k!r} differs at d={x.size}"
    out_c, out_g = np.empty_like(x), cp.empty(x.size, x.dtype)
    c_cpu.decompress(p_cpu, out_c)
    c_gpu.decompress(p_gpu, out_g)
    assert same(out_c, out_g), f"{name} decompress differs"
    if getattr(c_cpu, "last_info", None) is not None and name == "approx-topk":
        assert c_cpu.last_info == c_gpu.last_info
    bytes_g = p_gpu.to_bytes()
    assert same(p_cpu.to_bytes(), bytes_g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", SIZES)
@pytest.mark.parametrize("name,params", OPS, ids=lambda v: v if isinstance(v, str) else str(v))
def test_operator_twins(name, params, d, dtype):
    check_op(name, params, data(d, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,params", OPS, ids=lambda v: v if isinstance(v, str) else str(v))
def test_operator_twins_with_memory(name, params, dtype):
    check_op(name, params, data(100_003, dtype), memory=True)


@pytest.mark.parametrize("density", [0.001, 0.1, 0.9])
def test_topk_ties(density):
    for dtype in (np.float32, np.float64):
        check_op("topk", {"density": density}, data(300_007, dtype, ties=True))
        check_op("approx-topk", {"density": density}, data(300_007, dtype, ties=True))


@pytest.mark.parametrize("name,params", [("topk", {"density": 0.001}), ("approx-topk", {"density": 0.001}),
                                         ("randk", {"density": 0.001}), ("qsgd", {"bits": 4}), ("sign", {}),
                                         ("fp16", {}), ("threshold", {"threshold": 3.0})])
def test_operator_twins_1e8(name, params):
    check_op(name, params, np.random.default_rng(1).standard_normal(BIG).astype(np.float32))


@pytest.mark.parametrize("n", [0, 1, 257, 1_000_003])
def test_rng_twins(n):
    key = counter_key(1, 2, 3, 4)
    assert same(hash_u64(key, 0, n), cuda.randk_keys(key, n))
    assert same(uniform(key, n), cuda.uniform(key, n))


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1_000_003])
def test_pack_twins(bits, n):
    from hpctrain.compress.pack import pack_bits, unpack_bits

    codes = np.random.default_rng(n).integers(0, 2**bits, n).astype(np.uint8)
    packed = pack_bits(codes, bits)
    assert same(packed, cuda.pack_bits(cp.asarray(codes), bits))
    assert same(unpack_bits(packed, bits, n), cuda.unpack_bits(cp.asarray(packed), bits, n))


def test_fp16_special_values():
    x = np.array([0.0, -0.0, 65504, 65519.99, 65520, 1e9, -1e9, 2**-24, 2**-25, 3 * 2**-26, 6e-8, np.inf, -np.inf])
    for dtype in (np.float32, np.float64):
        xs = x.astype(dtype)
        with np.errstate(over="ignore"):
            assert same(xs.astype(np.float16), cuda.to_half(cp.asarray(xs)))


def test_scatter_add_twin():
    comp = get_compressor("topk", density=0.05)
    x = data(100_000, np.float64)
    p = comp.compress(x)
    acc_c = data(100_000, np.float64, seed=3)
    acc_g = cp.asarray(acc_c)
    comp.decompress_add(p, acc_c)
    comp.decompress_add(comp.compress(cp.asarray(x)), acc_g)
    assert same(acc_c, acc_g)
