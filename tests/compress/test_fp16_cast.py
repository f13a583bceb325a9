"""The host float16 casts in integer passes equal NumPy's casts bit for bit: every float16
widened, and float32 bit patterns drawn at random (NaNs, infinities, subnormals included)
plus the rounding boundaries, across block edges; on the NumPy passes and, with Numba, on
the compiled loops (hpctrain.jit) alike."""

import numpy as np
import pytest

from hpctrain.halfcast import BLOCK, cast_from_half, cast_to_half, half_scratch



@pytest.fixture(autouse=True, params=["numpy", "compiled"])
def host_path(request, monkeypatch):
    """Every test once on the NumPy integer passes and once on the compiled loops."""
    if request.param == "compiled":
        pytest.importorskip("numba", reason="the compiled loops need numba (pip install hpctrain[jit])")
    monkeypatch.setenv("HPCTRAIN_JIT", "1" if request.param == "compiled" else "0")
    return request.param


EDGES = [0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0x7F802000, 0xFFFFFFFF,
         0x477FEFFF, 0x477FF000, 0x477FE000, 0x47800000, 0x38800000, 0x387FFFFF, 0x387FF000,
         0x33000000, 0x33000001, 0x32FFFFFF, 0x337FFFFF, 0x38000000, 1, 0x00800000, 0x3F800000]


@pytest.mark.parametrize("n", [BLOCK * 3 + 17, 5])
def test_to_half_equals_numpy(n):
    rng = np.random.default_rng(n)
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    bits[:min(n, len(EDGES))] = EDGES[:n]
    for x in (bits.view(np.float32), (rng.standard_normal(n) * 1e-5).astype(np.float32)):
        out = np.empty(n, np.float16)
        cast_to_half(x, out, half_scratch())
        with np.errstate(all="ignore"):
            want = x.astype(np.float16)
        np.testing.assert_array_equal(out.view(np.uint16), want.view(np.uint16))


def test_from_half_equals_numpy_for_every_half():
    h = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    out = np.empty(h.size, np.float32)
    cast_from_half(h, out, half_scratch())
    np.testing.assert_array_equal(out.view(np.uint32), h.astype(np.float32).view(np.uint32))


def test_other_dtypes_cast_as_numpy():
    x = np.array([1e-6, 70000.0, -0.1], np.float64)
    out = np.empty(3, np.float16)
    cast_to_half(x, out, half_scratch())
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, x.astype(np.float16))
    back = np.empty(3, np.float64)
    np.testing.assert_array_equal(cast_from_half(out, back, half_scratch()), out.astype(np.float64))


def test_half_add_equals_numpy_float16_addition():
    """The collectives' float16 reduction (ring, recursive, ps...) is NumPy's addition."""
    from hpctrain.collectives.ring import reduce_op

    rng = np.random.default_rng(3)
    n = BLOCK + 999
    a = rng.integers(0, 2**16, n, dtype=np.uint32).astype(np.uint16).view(np.float16)
    b = rng.integers(0, 2**16, n, dtype=np.uint32).astype(np.uint16).view(np.float16)
    b[: n // 2] = (rng.standard_normal(n // 2) * 1e-5).astype(np.float16)  # subnormal sums
    add = reduce_op("sum", a)
    assert add is not np.add and reduce_op("max", a) is np.maximum
    out = a.copy()
    add(out, b, out=out)
    with np.errstate(all="ignore"):
        want = a + b
    nan = np.isnan(want)  # which operand's NaN payload survives is the hardware's choice
    np.testing.assert_array_equal(np.isnan(out), nan)
    np.testing.assert_array_equal(out.view(np.uint16)[~nan], want.view(np.uint16)[~nan])
