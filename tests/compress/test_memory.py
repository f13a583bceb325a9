"""Error feedback conserves mass: g + u_old == decompress(sent) + u_new (float64), and
momentum composes as a wrapper."""

import numpy as np
import pytest

from hpctrain.compress import ErrorFeedback, Momentum, get_compressor

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
    ef = ErrorFeedback(get_compressor(name, **params))
    u = ef.init_memory(np.zeros(d))
    for step in range(steps):
        g = rng.standard_normal(d) * np.exp(rng.standard_normal(d))
        u_old = u.copy()
        payload = ef.compress(g, u, step=step, rank=1)
        q = np.empty(d)
        ef.decompress(payload, q)
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


def test_momentum_wrapper_composes():
    d = 5000
    rng = np.random.default_rng(1)
    comp = get_compressor("topk", density=0.02)
    mom = Momentum(ErrorFeedback(comp), momentum=0.9)
    v, u = np.zeros(d), np.zeros(d)
    for step in range(3):
        g = rng.standard_normal(d)
        v_ref = 0.9 * v + g
        u_old = u.copy()
        p = mom.compress(g, v, u, step=step)
        assert np.array_equal(v, v_ref)
        q = np.empty(d)
        mom.decompress(p, q)
        assert np.array_equal(v_ref + u_old, q + u)
    with pytest.raises(ValueError):
        mom.compress(g, v)


def test_memory_shape_checked():
    with pytest.raises(ValueError):
        get_compressor("topk").compress(np.zeros(10), memory=np.zeros(9))
