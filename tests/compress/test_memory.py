"""Error feedback (``compress(g, memory=u)``) conserves mass: g + u_old == decompress(sent)
+ u_new (float64)."""

import numpy as np
import pytest

from hpctrain.compress import get_compressor

SPARSE_AND_CASTS = [
    ("topk", {"density": 0.01}),
    ("approx-topk", {"density": 0.01}),
    ("threshold", {"threshold": 1.5}),
    ("randk", {"density": 0.05}),
    ("fp16", {}),
    ("none", {}),
]
LOSSY_DENSE = [
    ("qsgd", {"bits": 2}), ("minmax", {"bits": 2}),
    ("minmax", {"bits": 8, "scaling": "norm"}), ("qsgd", {"bits": 8}),
    ("sign", {}),
]


def run_ef(name, params, steps=4, d=20_000):
    rng = np.random.default_rng(0)
    comp = get_compressor(name, **params)
    u = np.zeros(d)
    for step in range(steps):
        g = rng.standard_normal(d) * np.exp(rng.standard_normal(d))
        u_old = u.copy()
        payload = comp.compress(g, step=step, rank=1, memory=u)
        q = np.empty(d)
        comp.decompress(payload, q)
        yield g, u_old, q, u.copy()


@pytest.mark.parametrize("name,params", SPARSE_AND_CASTS)
def test_conservation_exact(name, params):
    for g, u_old, q, u_new in run_ef(name, params):
        assert np.array_equal(g + u_old, q + u_new)


def two_sum_error(a, b):
    """Exact rounding error of a + b (Knuth's TwoSum): a + b == s + e exactly."""
    s = a + b
    bb = s - a
    return (a - (s - bb)) + (b - bb)


@pytest.mark.parametrize("name,params", LOSSY_DENSE)
def test_conservation_dense_lossy(name, params):
    for g, u_old, q, u_new in run_ef(name, params):
        p = g + u_old
        assert np.array_equal(u_new, p - q)  # the memory is exactly fl(p - q)
        e = two_sum_error(p, -q)  # p - q == u_new + e exactly
        assert np.all(np.abs(e) <= np.spacing(np.abs(u_new)) / 2)
        exact = e == 0
        assert np.array_equal((q + u_new)[exact], p[exact])


def test_sparse_memory_zero_exactly_where_sent():
    for g, u_old, q, u_new in run_ef("topk", {"density": 0.01}):
        sent = q != 0
        assert np.all(u_new[sent] == 0) and np.array_equal(u_new[~sent], (g + u_old)[~sent])


@pytest.mark.parametrize("name", ["topk", "qsgd", "fp16"])
def test_memory_shape_and_dtype_checked(name):
    with pytest.raises(ValueError):
        get_compressor(name).compress(np.zeros(10), memory=np.zeros(9))
    u = np.zeros(10, np.float32)
    with pytest.raises(ValueError):
        get_compressor(name).compress(np.ones(10), memory=u)
    assert not u.any()  # left as it was
