"""Every CUDA kernel against its NumPy twin, bit for bit (same indices, codes and floats).

Cases (sizes, operators) come from tests/twin_cases.py, shared with the CPU execution
harness tests in tests/kernels/. Runs only where CuPy sees a GPU (marker ``gpu``); elsewhere each test is skipped with the
reason. Sizes cover 0, 1, block-size edges, non-multiples of the block and 10^8.
Run: ``python -m pytest tests/gpu -m gpu -q`` (see docs/gpu.md).
"""

import numpy as np
import pytest

from hpctrain.xp import cupy_or_none, gpu_available

pytestmark = pytest.mark.gpu

_OK, _WHY = gpu_available()
if not _OK:
    pytest.skip(f"GPU tests need CuPy and a CUDA GPU: {_WHY}", allow_module_level=True)

cp = cupy_or_none()
from hpctrain.compress import gpu as cuda  # noqa: E402

from twin_cases import BIG, OPS, SIZES, check_fp16_special, check_pack, check_rng, check_scatter_add, data  # noqa: E402
from twin_cases import check_op as _check_op  # noqa: E402
from twin_cases import same as _same  # noqa: E402


def same(a, b):
    return _same(cp, a, b)


def check_op(*args, **kwargs):
    _check_op(cp, *args, **kwargs)


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
                                         ("randk", {"density": 0.001}), ("qsgd", {"bits": 4}), ("minmax", {"bits": 4}), ("sign", {}),
                                         ("fp16", {}), ("threshold", {"threshold": 3.0})])
def test_operator_twins_1e8(name, params):
    if cp.__version__ == "cudasim":
        pytest.skip("10^8 elements: too slow for the CPU execution harness")
    check_op(name, params, np.random.default_rng(1).standard_normal(BIG).astype(np.float32))


@pytest.mark.parametrize("n", [0, 1, 257, 1_000_003])
def test_rng_twins(n):
    check_rng(cp, cuda, n)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1_000_003])
def test_pack_twins(bits, n):
    check_pack(cp, cuda, bits, n)


def test_fp16_special_values():
    check_fp16_special(cp, cuda)


def test_scatter_add_twin():
    check_scatter_add(cp)
