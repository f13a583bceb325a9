"""MLP: float64 central-difference gradient check, shapes, init from seed."""

import numpy as np
import pytest

from hpctrain.models import MLP, get_model


def test_mlp_gradient_matches_central_differences():
    rng = np.random.default_rng(0)
    m = MLP(7, 4, hidden=5)
    w = m.init_params(np, np.float64, seed=3)
    w += 0.1 * rng.normal(size=w.size)  # move biases off zero so ReLU kinks are not hit
    x, y = rng.normal(size=(9, 7)), rng.integers(0, 4, size=9)
    g = np.zeros_like(w)
    m.loss_grad(w, x, y, g, weight_decay=0.01)
    h = 1e-6
    num = np.empty_like(w)
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = h
        num[i] = (m.loss_grad(w + e, x, y, np.zeros_like(w), 0.01) - m.loss_grad(w - e, x, y, np.zeros_like(w), 0.01)) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)


def test_mlp_layout_init_and_registry():
    m = get_model("mlp", 10, 3)
    assert m.hidden == 128 and m.size == 10 * 128 + 128 + 128 * 3 + 3
    a, b = m.init_params(np, np.float32, seed=1), m.init_params(np, np.float32, seed=1)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, m.init_params(np, np.float32, seed=2))
    w1, b1, w2, b2 = m.views(a)
    assert w1.shape == (10, 128) and w2.shape == (128, 3) and not b1.any() and not b2.any()
    assert np.shares_memory(w1, a)


@pytest.mark.parametrize("n", [1, 6])
def test_mlp_learns_a_separable_problem(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # XOR-like: not linearly separable
    m = MLP(4, 2, hidden=32)
    w = m.init_params(np, np.float64, seed=0)
    g = np.zeros_like(w)
    first = m.loss_grad(w, x, y, g)
    for _ in range(600):
        loss = m.loss_grad(w, x, y, g)
        w -= 0.5 * g
    assert loss < 0.5 * first
    _, correct = m.evaluate(w, x, y)
    assert correct >= 180
